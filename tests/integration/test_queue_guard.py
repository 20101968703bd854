"""An enqueue racing a queue delete or rename never leaves orphaned messages (migration 0009).

The usual enqueue statement guards its queue with a shared advisory lock and a fresh-snapshot
check (relay.queue_open) instead of FOR KEY SHARE; queue delete and rename take the lock
exclusively. Both orders of the race are played on real connections.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import msgspec
import pytest
from asyncpg.transaction import Transaction

from relayq.config import Settings
from relayq.db.migrate import migrate
from relayq.db.queries import QUERIES
from relayq.runtime import Relay
from relayq.services.messages import NewMessage
from relayq.services.queues import _lock_queue
from tests.support.server import fresh_database

WAIT = 0.3  # long enough for a statement that is not blocked to finish
STATEMENTS = ("enqueue_uniform", "enqueue")


@pytest.fixture(scope="module")
def guard_dsn() -> Iterator[str]:
    with fresh_database("relay_guard") as url:
        yield url


@pytest.fixture
async def conns(guard_dsn: str) -> AsyncIterator[list[asyncpg.Connection]]:
    opened = [await asyncpg.connect(guard_dsn) for _ in range(3)]
    await migrate(opened[0])
    yield opened
    for conn in opened:
        await conn.close()


async def new_queue(conn: asyncpg.Connection, name: str) -> int:
    qid: int = await conn.fetchval(
        "INSERT INTO relay.queues (name, ack_timeout_seconds, max_attempts) VALUES ($1, 30, 3) RETURNING id", name)
    return qid


def enqueue(conn: asyncpg.Connection, name: str, qid: int, statement: str) -> Any:
    """The usual batch's statement, or the general one (idempotency keys, several queues)."""
    if statement == "enqueue_uniform":
        return conn.fetchrow(QUERIES.get(statement, "standard"), f"s{name}1,s{name}2", "[1,2]", name, qid,
                             "t", 0, None, None, 0.0)
    items = f'[{{"queue":"{name}","type":"t","payload":1,"idempotencyKey":"k1"}},{{"queue":"{name}","type":"t","payload":2}}]'
    return conn.fetchrow(QUERIES.get(statement, "standard"), [f"s{name}1", f"s{name}2"], items, [name], [qid], [name], ["k1"])


async def remove(conn: asyncpg.Connection, action: str, name: str, qid: int) -> None:
    """What QueueService.delete / rename do to the queue once they hold its lock."""
    await conn.execute("DELETE FROM relay.messages WHERE queue_name = $1", name)
    if action == "delete":
        await conn.execute("DELETE FROM relay.queues WHERE id = $1", qid)
    else:
        await conn.execute("UPDATE relay.queues SET name = name || '_renamed' WHERE id = $1", qid)


async def open_race(conns: list[asyncpg.Connection], name: str, first: int) -> tuple[int, Transaction]:
    """A new queue, and a transaction open on conns[first] (the side that goes first)."""
    qid = await new_queue(conns[0], name)
    tx = conns[first].transaction()
    await tx.start()
    return qid, tx


@pytest.mark.parametrize("statement", STATEMENTS)
@pytest.mark.parametrize("action", ["delete", "rename"])
async def test_an_enqueue_arriving_during_a_delete_waits_then_finds_the_queue_gone(
    conns: list[asyncpg.Connection], action: str, statement: str
) -> None:
    admin, holder, producer = conns
    name = f"g_late_{action}_{statement}"
    qid, tx = await open_race(conns, name, first=1)
    await _lock_queue(holder, name)  # type: ignore[arg-type]  # a Connection has fetchrow/execute too
    await remove(holder, action, name, qid)
    insert = asyncio.ensure_future(enqueue(producer, name, qid, statement))
    await asyncio.sleep(WAIT)
    assert not insert.done()  # it waits for the delete's transaction
    await tx.commit()
    row = await insert
    assert row["all_found"] is False  # the service answers QUEUE_NOT_FOUND
    assert await admin.fetchval("SELECT count(*) FROM relay.messages WHERE queue_id = $1", qid) == 0


@pytest.mark.parametrize("statement", STATEMENTS)
@pytest.mark.parametrize("action", ["delete", "rename"])
async def test_a_delete_waits_for_an_enqueue_in_flight_and_removes_its_messages(
    conns: list[asyncpg.Connection], action: str, statement: str
) -> None:
    admin, holder, producer = conns
    name = f"g_early_{action}_{statement}"
    qid, tx = await open_race(conns, name, first=2)
    assert (await enqueue(producer, name, qid, statement))["all_found"] is True  # not committed yet

    async def delete() -> None:
        async with holder.transaction():
            await _lock_queue(holder, name)  # type: ignore[arg-type]
            await remove(holder, action, name, qid)

    deleting = asyncio.ensure_future(delete())
    await asyncio.sleep(WAIT)
    assert not deleting.done()  # it waits for the enqueue to commit
    await tx.commit()
    await deleting
    assert await admin.fetchval("SELECT count(*) FROM relay.messages WHERE queue_id = $1", qid) == 0


@pytest.mark.parametrize("action", ["delete", "rename"])
async def test_a_delete_or_rename_that_deadlocks_with_a_worker_runs_again(
    guard_dsn: str, conns: list[asyncpg.Connection], action: str
) -> None:
    """A worker that holds a message row (a batch ack in flight) and then waits for the queue (an
    enqueue) deadlocks with a delete or rename that holds the queue and waits for that row.
    PostgreSQL rolls the delete back; the service runs its transaction again instead of
    answering 500."""
    relay = await Relay.start(Settings.from_env(environ={}, dotenv=None), guard_dsn, background=False)
    try:
        name = f"deadlock_{action}"
        await relay.queues.create({"name": name, "queue_type": "standard"})
        [message] = await relay.messages.enqueue([NewMessage(queue=name, type="t", payload=msgspec.Raw(b"1"))])
        qid = (await relay.queues.resolve(name)).id
        worker = conns[1]
        await worker.execute("SET deadlock_timeout = '10s'")  # the delete, waiting first, is the one to detect it
        tx = worker.transaction()
        await tx.start()
        await worker.execute("SELECT 1 FROM relay.messages WHERE id = $1 FOR UPDATE", message.id)
        task = asyncio.ensure_future(
            relay.queues.delete(name, force=True) if action == "delete" else relay.queues.rename(name, name + "_new"))
        await asyncio.sleep(WAIT)  # it holds the queue's lock now and waits for the row
        assert not task.done()
        assert await worker.fetchval("SELECT relay.queue_open($1, $2)", qid, name)  # granted once it rolled back
        await tx.commit()
        result = await asyncio.wait_for(task, 10)
        names = {q["name"] for q in await relay.queues.list()}
        if action == "delete":
            assert result == 1 and name not in names
        else:
            assert result["name"] == name + "_new" and name not in names
    finally:
        await relay.stop()
