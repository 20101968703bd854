"""The admin operations whose work grows with a queue run under POSTGRES_BULK_STATEMENT_TIMEOUT_MS,
not the request path's statement timeout.

At 2.5 s per million rows, a queue of 12 million could never be deleted, purged or cleared under
the default 30 s: every attempt rolled back at the timeout. The long statement is stood in for
by a trigger that sleeps for three request-path timeouts (writes), or by a lock another session
holds that long (an export, whose lock waits are not bounded). Without the bulk timeout, each of
these answered 503. A bulk write still gives up waiting for a lock at the request path's bound.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import asyncpg
import pytest

from relayq.config import Settings
from relayq.db.database import BULK_WRITE_SQL, bulk_statement_ms
from relayq.domain.errors import RelayError
from relayq.runtime import Relay
from relayq.services.admin import MessageFilter
from tests.support.inprocess import inprocess_relay, message, slow_writes
from tests.support.server import fresh_database

TIMEOUT_MS = 300  # the request path's statement timeout here
HOLD = 3 * TIMEOUT_MS / 1000


@pytest.fixture(scope="module")
def bulk_dsn() -> Iterator[str]:
    with fresh_database("relay_bulk") as url:
        yield url


@pytest.fixture
async def relay(bulk_dsn: str) -> AsyncIterator[Relay]:
    async with inprocess_relay(bulk_dsn, POSTGRES_STATEMENT_TIMEOUT_MS=str(TIMEOUT_MS),
                               POSTGRES_BULK_STATEMENT_TIMEOUT_MS="60000", ENQUEUE_BUFFER_ENABLED="false") as r:
        yield r


async def filled_queue(r: Relay) -> str:
    name = "bulk_" + secrets.token_hex(4)
    await r.queues.create({"name": name, "queue_type": "standard"})
    await r.messages.enqueue([message(name) for _ in range(20)], batch=True)
    return name


async def outlasting(r: Relay, lock_sql: str, operation: Callable[[], Awaitable[Any]], *args: Any) -> Any:
    """Run `operation` while another session holds `lock_sql`'s lock for HOLD seconds."""
    blocker = await asyncpg.connect(r.db.dsn)
    try:
        async with blocker.transaction():
            await blocker.execute(lock_sql, *args)
            started = time.monotonic()
            running = asyncio.ensure_future(operation())
            await asyncio.sleep(HOLD)
            assert not running.done(), "the operation should be waiting for the lock"
        result = await running
        assert time.monotonic() - started >= HOLD
        return result
    finally:
        await blocker.close()


OPERATIONS: dict[str, Callable[[Relay, str], Awaitable[Any]]] = {
    "purge": lambda r, q: r.queues.purge(q, "all"),
    "clear": lambda r, q: r.admin.clear(None, q),
    "delete_by_time": lambda r, q: r.admin.delete_by_time(0, time.time() + 60, q),
    "rename": lambda r, q: r.queues.rename(q, q + "_renamed"),
    "queue_delete": lambda r, q: r.queues.delete(q, True),
}


async def count(r: Relay, queue: str) -> int:
    return int(await r.db.fetchval("SELECT count(*) FROM relay.messages WHERE queue_name = $1", queue))


@pytest.mark.parametrize("operation", OPERATIONS)
async def test_bulk_operations_outlast_the_statement_timeout(relay: Relay, operation: str) -> None:
    q = await filled_queue(relay)
    async with slow_writes(relay, HOLD):
        started = time.monotonic()
        await OPERATIONS[operation](relay, q)
        assert time.monotonic() - started >= HOLD
    assert await count(relay, q) == 0  # deleted, or renamed away
    if operation == "rename":
        assert await count(relay, q + "_renamed") == 20


async def test_a_bulk_write_waits_for_a_lock_no_longer_than_a_request(relay: Relay) -> None:
    """While it waits for a lock, every later request for that lock queues behind it: a bulk
    write gives up as soon as a request's statement would."""
    q = await filled_queue(relay)
    blocker = await asyncpg.connect(relay.db.dsn)
    try:
        async with blocker.transaction():
            await blocker.execute("SELECT 1 FROM relay.messages WHERE queue_name = $1 FOR UPDATE", q)
            started = time.monotonic()
            with pytest.raises(RelayError) as failure:
                await relay.queues.purge(q, "all")
            assert failure.value.status == 503 and time.monotonic() - started < HOLD
    finally:
        await blocker.close()
    assert await count(relay, q) == 20


async def test_an_export_outlasts_the_statement_timeout(relay: Relay) -> None:
    r = relay
    q = await filled_queue(r)

    async def export() -> int:
        return sum([len(rows) async for rows in r.admin.iter_messages(MessageFilter(queue=q), "created_at", "asc")])

    assert await outlasting(r, "LOCK TABLE relay.messages IN ACCESS EXCLUSIVE MODE", export) == 20


async def test_only_bulk_transactions_get_the_longer_timeout(relay: Relay) -> None:
    async with relay.db.transaction(bulk="write") as tx:
        assert await tx.fetchval("SHOW statement_timeout") == "1min"
        assert await tx.fetchval("SHOW lock_timeout") == f"{TIMEOUT_MS}ms"
    async with relay.db.transaction(bulk="read") as tx:
        assert await tx.fetchval("SHOW lock_timeout") == "0"  # as it was: not loosened, not tightened
    for before, after in (("100ms", "100ms"), ("10s", f"{TIMEOUT_MS}ms"), ("0", f"{TIMEOUT_MS}ms")):
        async with relay.db.transaction() as tx:  # lock_timeout as a DBA set it, then a bulk write's
            await tx.execute(f"SET LOCAL lock_timeout = '{before}'")
            await tx.execute(BULK_WRITE_SQL, "60000", TIMEOUT_MS)
            assert await tx.fetchval("SHOW lock_timeout") == after  # only ever tightened
    assert await relay.db.fetchval("SHOW statement_timeout") == f"{TIMEOUT_MS}ms"  # SET LOCAL: nothing leaks
    with pytest.raises(Exception, match="DATABASE_UNAVAILABLE|unavailable|canceling"):
        await relay.db.fetchval("SELECT pg_sleep($1)", 2 * TIMEOUT_MS / 1000)


@pytest.mark.parametrize(("normal", "bulk", "expected"), [
    (30_000, 3_600_000, 3_600_000),
    (0, 3_600_000, 0),  # statement timeouts off: bulk ones too
    (30_000, 0, 0),
    (7_200_000, 3_600_000, 7_200_000),  # never tighter than the request path's
])
def test_the_bulk_timeout_is_never_tighter(normal: int, bulk: int, expected: int) -> None:
    settings = Settings.from_env(environ={"POSTGRES_STATEMENT_TIMEOUT_MS": str(normal),
                                          "POSTGRES_BULK_STATEMENT_TIMEOUT_MS": str(bulk)}, dotenv=None)
    assert bulk_statement_ms(settings) == expected
