"""A database that refuses a statement for reasons of its own (read-only after a failover, a
DBA's lock_timeout behind another session's lock) is unavailable to Relay: 503
DATABASE_UNAVAILABLE, never a 500."""

from __future__ import annotations

from collections.abc import Iterator

import asyncpg
import msgspec
import pytest

from relayq.config import Settings
from relayq.domain.errors import RelayError
from relayq.runtime import Relay
from relayq.services.maintenance import Maintenance, PassReport, QueueSchedule
from relayq.services.messages import NewMessage
from tests.support.server import fresh_database


@pytest.fixture(scope="module")
def service_dsn() -> Iterator[str]:
    with fresh_database("relay_refusals") as url:
        yield url


async def test_writes_to_a_read_only_database_are_503(service_dsn: str) -> None:
    relay = await Relay.start(Settings.from_env(environ={}, dotenv=None), service_dsn, background=False)
    admin = await asyncpg.connect(service_dsn)
    try:
        await relay.queues.create({"name": "ro", "queue_type": "standard"})
        (stored,) = await relay.messages.enqueue([NewMessage(queue="ro", type="t", payload=msgspec.Raw(b"1"))])
        name = await admin.fetchval("SELECT current_database()")
        await admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        await relay.db.pool.expire_connections()  # as after a failover: every new connection lands on a standby
        writes = [
            relay.messages.enqueue([NewMessage(queue="ro", type="t", payload=msgspec.Raw(b"2"))]),
            relay.messages.dequeue("ro", 1),
            relay.messages.ack([(stored.id, None)]),
            relay.queues.create({"name": "ro2", "queue_type": "standard"}),
        ]
        for write in writes:
            with pytest.raises(RelayError) as refused:
                await write
            assert (refused.value.status, refused.value.code) == (503, "DATABASE_UNAVAILABLE")
        assert [q["name"] for q in await relay.queues.list() if q["name"] == "ro"] == ["ro"]  # reads still work
    finally:
        name = await admin.fetchval("SELECT current_database()")
        await admin.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
        await admin.close()
        await relay.stop()


async def test_a_lock_timeout_behind_another_sessions_lock_is_503(service_dsn: str) -> None:
    """lock_timeout set on the database (as DBAs do) and a long lock on relay.messages: was a 500.
    Maintenance, which sets its own short lock_timeout for partition DDL, still only skips."""
    relay = await Relay.start(Settings.from_env(environ={}, dotenv=None), service_dsn, background=False)
    admin = await asyncpg.connect(service_dsn)
    locker = await asyncpg.connect(service_dsn)
    name = await admin.fetchval("SELECT current_database()")
    try:
        await relay.queues.create({"name": "locked", "queue_type": "standard"})
        await relay.queues.resolve("locked")
        await admin.execute(f'ALTER DATABASE "{name}" SET lock_timeout = 200')
        await relay.db.pool.expire_connections()
        await locker.execute("BEGIN; LOCK TABLE relay.messages IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(RelayError) as refused:
            await relay.messages.enqueue([NewMessage(queue="locked", type="t", payload=msgspec.Raw(b"1"))])
        assert (refused.value.status, refused.value.code) == (503, "DATABASE_UNAVAILABLE")

        report = PassReport()
        queue = QueueSchedule(0, "locked", "standard", None, None)
        ddl = "ALTER TABLE relay.messages ADD COLUMN never int"
        assert await Maintenance(relay.db, relay.settings)._locked_ddl(queue, ddl, report) is False
        assert report.skipped == ["locked"]
    finally:
        await locker.close()
        await admin.execute(f'ALTER DATABASE "{name}" RESET lock_timeout')
        await admin.close()
        await relay.stop()
