"""Statements that update many messages at once stay linear in their rows (migration 0014)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg
import msgspec
import pytest
from benchmarks.scale.fill import fill_messages

from relayq.config import Settings
from relayq.runtime import Relay
from relayq.services.messages import NewMessage
from tests.support.server import fresh_database

ROWS = 30_000


@pytest.fixture(scope="module")
def bulk_dsn() -> Iterator[str]:
    with fresh_database("relay_bulk") as url:
        yield url


async def test_moving_30000_messages_and_renaming_their_queue_is_not_quadratic(bulk_dsn: str) -> None:
    """The counting trigger looked for changed types by joining its transition tables in a
    nested loop, which, when no type changed (every status change), compared every pair: 30,000
    rows meant 900 million comparisons, about two minutes. Linear, it is well under a second;
    the statement timeout turns the old behaviour into a failure."""
    settings = Settings.from_env(environ={"POSTGRES_STATEMENT_TIMEOUT_MS": "20000"}, dotenv=None)
    relay = await Relay.start(settings, bulk_dsn, background=False)
    conn = await asyncpg.connect(bulk_dsn)
    try:
        await relay.queues.create({"name": "big", "queue_type": "standard"})
        await fill_messages(conn, "big", "queued", ROWS)
        ids = [r["id"] for r in await conn.fetch("SELECT id FROM relay.messages WHERE queue_name = 'big'")]
        assert await relay.admin.move(ids, "queued", "dead", "bulk") == ROWS
        await relay.queues.rename("big", "bigger")
        assert (await relay.queues.get("bigger"))["dead_count"] == ROWS
        types = await conn.fetch("SELECT type FROM relay.message_types WHERE queue_name = 'bigger' ORDER BY 1")
        assert [r["type"] for r in types] == ["type_0", "type_1", "type_2", "type_3"]
        assert await conn.fetchval("SELECT count(*) FROM relay.messages WHERE queue_name = 'bigger'") == ROWS
    finally:
        await conn.close()
        await relay.stop()


async def test_a_rename_moves_the_whole_activity_log_of_the_queue_in_ranges(bulk_dsn: str) -> None:
    """The activity follows a rename after its commit, range by range of log ids (outside the
    queue's lock): every entry of the queue moves, across range boundaries, and no other's."""
    settings = Settings.from_env(environ={}, dotenv=None)
    relay = await Relay.start(settings, bulk_dsn, background=False)
    conn = await asyncpg.connect(bulk_dsn)
    try:
        for name in ("logged", "bystander"):
            await relay.queues.create({"name": name, "queue_type": "standard"})
        await conn.execute(
            """INSERT INTO relay.activity_log (ts, action, queue, entry)
            SELECT now(), 'enqueue', CASE WHEN g % 10 = 0 THEN 'bystander' ELSE 'logged' END,
                   json_build_object('queue', CASE WHEN g % 10 = 0 THEN 'bystander' ELSE 'logged' END)
            FROM generate_series(1, 50000) AS g""")
        await relay.queues.rename("logged", "relogged")
        counts = {r["queue"]: (r["n"], r["in_entry"]) for r in await conn.fetch(
            """SELECT queue, count(*) AS n, count(*) FILTER (WHERE entry->>'queue' = queue) AS in_entry
            FROM relay.activity_log WHERE action = 'enqueue' GROUP BY 1""")}
        assert counts == {"relogged": (45_000, 45_000), "bystander": (5_000, 5_000)}
    finally:
        await conn.close()
        await relay.stop()


async def test_the_queue_serves_under_its_new_name_while_its_activity_still_moves(bulk_dsn: str) -> None:
    """The rewrite of the activity log no longer holds the queue's lock: with it stuck behind
    another session's row lock, the queue already takes messages under its new name."""
    settings = Settings.from_env(environ={}, dotenv=None)
    relay = await Relay.start(settings, bulk_dsn, background=False)
    blocker = await asyncpg.connect(bulk_dsn)
    try:
        await relay.queues.create({"name": "moving", "queue_type": "standard"})
        await blocker.execute("INSERT INTO relay.activity_log (ts, action, queue, entry) "
                              "VALUES (now(), 'enqueue', 'moving', '{\"queue\": \"moving\"}')")
        held = blocker.transaction()
        await held.start()
        await blocker.execute("SELECT 1 FROM relay.activity_log WHERE queue = 'moving' FOR UPDATE")
        rename = asyncio.create_task(relay.queues.rename("moving", "moved"))
        for _ in range(100):  # until the rename waits for the locked entry
            waiting = await relay.db.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'UPDATE relay.activity_log%'")
            if waiting:
                break
            await asyncio.sleep(0.05)
        assert waiting, "the rename never reached the activity log"
        stored = await relay.messages.enqueue([NewMessage(queue="moved", type="t", payload=msgspec.Raw(b"1"))])
        assert len(stored) == 1 and not rename.done()
        await held.rollback()
        assert (await rename)["name"] == "moved"
        assert await relay.db.fetchval("SELECT count(*) FROM relay.activity_log WHERE queue = 'moving'") == 0
    finally:
        await blocker.close()
        await relay.stop()


async def test_a_rename_onto_a_name_with_leftover_consumer_stats_adds_them_up(bulk_dsn: str) -> None:
    """Stats flushed under the old name after an earlier rename made renaming back a 500."""
    settings = Settings.from_env(environ={}, dotenv=None)
    relay = await Relay.start(settings, bulk_dsn, background=False)
    try:
        await relay.queues.create({"name": "stats_b", "queue_type": "standard"})
        await relay.db.execute(
            """INSERT INTO relay.consumer_stats (consumer_id, queue, dequeue_count, ack_count, fail_count)
            VALUES ('w', 'stats_a', 2, 1, 0), ('w', 'stats_b', 5, 4, 1), ('x', 'stats_b', 1, 1, 0)""")
        await relay.queues.rename("stats_b", "stats_a")
        rows = await relay.db.fetch("SELECT consumer_id, queue, dequeue_count, ack_count, fail_count "
                                    "FROM relay.consumer_stats WHERE queue LIKE 'stats_%' ORDER BY 1")
        assert [tuple(r.values()) for r in rows] == [("w", "stats_a", 7, 5, 1), ("x", "stats_a", 1, 1, 0)]
    finally:
        await relay.stop()
