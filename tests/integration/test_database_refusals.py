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


def test_health_says_unhealthy_when_the_database_is_read_only(service_dsn: str) -> None:
    """`pools.write` was always true: a standby that refuses every write looked healthy."""
    import asyncio

    import httpx

    from tests.support.server import start_server

    async def set_read_only(on: bool) -> None:
        admin = await asyncpg.connect(service_dsn, server_settings={"default_transaction_read_only": "off"})
        try:
            name = await admin.fetchval("SELECT current_database()")
            value = "SET default_transaction_read_only = on" if on else "RESET default_transaction_read_only"
            await admin.execute(f'ALTER DATABASE "{name}" {value}')
            await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE datname = $1 AND application_name = 'relayq'", name)
        finally:
            await admin.close()

    with start_server(service_dsn) as server:
        healthy = httpx.get(server.api + "/health", timeout=10)
        assert healthy.status_code == 200 and healthy.json()["details"]["postgres"]["pools"]["write"] is True
        asyncio.run(set_read_only(True))
        try:
            for _ in range(20):  # the pool notices its terminated connections on first use
                sick = httpx.get(server.api + "/health", timeout=10)
                if sick.status_code == 500 and "read-only" in sick.text:
                    break
            assert sick.status_code == 500, sick.text
            assert sick.json()["details"]["postgres"]["pools"] == {"write": False, "read": True}
        finally:
            asyncio.run(set_read_only(False))
        for _ in range(20):
            again = httpx.get(server.api + "/health", timeout=10)
            if again.status_code == 200:
                break
        assert again.status_code == 200, again.text
