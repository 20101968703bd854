"""Dashboard listings over many partitioned queues are planned without JIT."""

from __future__ import annotations

import re
from collections.abc import Iterator

import asyncpg
import pytest
from benchmarks.scale.fill import fill_messages

from relayq.config import Settings
from relayq.runtime import Relay
from relayq.services.admin import MessageFilter
from tests.support.server import fresh_database

QUEUES = 60  # hourly: 5 time partitions each (this hour, 3 ahead, default), 300 in all


@pytest.fixture(scope="module")
def partitions_dsn() -> Iterator[str]:
    with fresh_database("relay_partitions") as url:
        yield url


async def test_listings_over_many_partitions_do_not_compile_each_one(partitions_dsn: str) -> None:
    """A listing across queues reads every partition of the partitioned table, and JIT compiled
    each one's expressions first: with 150 partitioned queues, GET /queue/main/messages spent 11 s
    compiling to run 0.6 s. Here every statement is compiled (jit_above_cost = 0, as a listing over
    a million messages passes the default 100,000), so the statement timeout turns compiling 300
    partitions into a failure; planned without JIT, each statement takes a fraction of a second."""
    conn = await asyncpg.connect(partitions_dsn)
    relay = None
    try:
        if not await conn.fetchval("SELECT pg_jit_available()"):
            pytest.skip("this PostgreSQL has no JIT")
        database = await conn.fetchval("SELECT current_database()")
        for setting in ("jit_above_cost", "jit_inline_above_cost", "jit_optimize_above_cost"):
            await conn.execute(f'ALTER DATABASE "{database}" SET {setting} = 0')
        settings = Settings.from_env(environ={"POSTGRES_STATEMENT_TIMEOUT_MS": "5000"}, dotenv=None)
        relay = await Relay.start(settings, partitions_dsn, background=False)
        for i in range(QUEUES):
            await relay.queues.create({"name": f"p{i}", "queue_type": "partitioned",
                                       "partition_interval": "hourly", "retention_interval": "1 day"})
        for i in range(0, QUEUES, 10):
            await fill_messages(conn, f"p{i}", "queued", 20, table="relay.messages_partitioned")
        rows = await relay.admin.list_messages(MessageFilter(status="queued"), "created_at", "desc", 50, 0)
        assert len(rows) == 50
        _, total, exact = await relay.admin.page(MessageFilter(status="queued", types=["type_0"]), "created_at", "desc",
                                                 10, 0, 50)
        assert (total, exact) == (30, True)
        status = await relay.admin.status(None, True)
        assert status["counts"]["queued"] == 120 and len(status["lists"]["queued"]) == 120
    finally:
        await conn.close()
        if relay is not None:
            await relay.stop()


@pytest.fixture(scope="module")
def own_dsn() -> Iterator[str]:
    """Its own database: the JIT test above leaves its database compiling every statement."""
    with fresh_database("relay_own_partitions") as url:
        yield url


async def test_one_partitioned_queue_is_read_from_its_own_partitions(own_dsn: str) -> None:
    """A named partitioned queue is read from its subtree, not through the parent (partitioned by
    queue id, while reads filter by name), which planned and read every partitioned queue's."""
    settings = Settings.from_env(environ={}, dotenv=None)
    relay = await Relay.start(settings, own_dsn, background=False)
    conn = await asyncpg.connect(own_dsn)
    try:
        names = [f"own{i}" for i in range(3)]
        for name in names:
            await relay.queues.create({"name": name, "queue_type": "partitioned",
                                       "partition_interval": "daily", "retention_interval": "7 days"})
            await fill_messages(conn, name, "queued", 4, table="relay.messages_partitioned")
        mine = await relay.queues.resolve("own1")
        source = await relay.admin._source("own1")
        assert source is not None
        plan = "\n".join(r[0] for r in await conn.fetch(
            f"EXPLAIN SELECT m.id FROM {source}", *MessageFilter(queue="own1").args()))
        scanned = set(re.findall(r"messages_p(\d+)_", plan))
        assert scanned == {str(mine.id)}, plan
        rows = await relay.admin.list_messages(MessageFilter(queue="own1"), "created_at", "asc", 50, 0)
        assert len(rows) == 4 and {r["queue_name"] for r in rows} == {"own1"}
        status = await relay.admin.status("own1", True)
        assert len(status["lists"]["queued"]) == 4
        everything = await relay.admin.status(None, True)  # across queues: each queue its own part
        assert {m["queue_name"] for m in everything["lists"]["queued"]} >= set(names)
        await relay.queues.delete("own2", True)
        assert await relay.admin.list_messages(MessageFilter(queue="own2"), "created_at", "asc", 50, 0) == []
        assert await relay.admin.page(MessageFilter(status="queued", queue="own2"), "created_at", "asc", 50, 0) == (
            [], 0, True)
    finally:
        await conn.close()
        await relay.stop()
