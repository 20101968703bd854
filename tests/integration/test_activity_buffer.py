"""The activity buffer: flushes on size, on interval and on shutdown; counts drops when the
database is unreachable; ACTIVITY_LOG_ENABLED=false records nothing; stats read their writes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets

import asyncpg
import pytest

from relayq.config import Settings
from relayq.db.database import Database
from relayq.runtime import Relay
from relayq.services.activity import ActivityLog, ActivityStore
from relayq.services.anomalies import DetectorRegistry
from relayq.services.changes import Change
from relayq.services.stats import ConsumerStats
from tests.support.inprocess import eventually, ext, inprocess_relay, message
from tests.support.server import free_port


async def stored(relay: Relay, queue: str) -> int:
    return int(await relay.db.fetchval(
        "SELECT count(*) FROM relay.activity_log WHERE queue = $1 AND action <> 'create_queue'", queue))


async def new_queue(relay: Relay) -> str:
    name = "b_" + secrets.token_hex(5)
    await relay.queues.create({"name": name, "queue_type": "standard"})
    return name


def changes(queue: str, n: int) -> list[Change]:
    return [Change("touch", queue, rows=[{"id": f"s{queue}{i}", "queue_name": queue}]) for i in range(n)]


async def test_flushes_on_size_before_the_interval(database_url: str) -> None:
    async with inprocess_relay(database_url, ACTIVITY_FLUSH_SIZE="5", ACTIVITY_FLUSH_INTERVAL_MS="60000") as r:
        activity = ext(r).activity
        assert activity is not None
        task = asyncio.ensure_future(activity.buffer.run())
        try:
            q = await new_queue(r)
            await activity.buffer.flush()  # the create_queue entry
            for change in changes(q, 4):
                r.hub.publish(change)
            await asyncio.sleep(0.2)
            assert await stored(r, q) == 0  # below the size, and the interval is a minute
            r.hub.publish(changes(q, 1)[0])
            assert await eventually(lambda: stored(r, q)) == 5
            assert activity.buffer.flushes == 2
        finally:
            task.cancel()


async def test_a_write_interrupted_by_shutdown_is_not_lost(database_url: str) -> None:
    """Stopping the server cancels the activity writer. Cancelled inside its INSERT, the batch it
    had taken from the buffer was neither written nor put back: lost, uncounted. The write now
    runs to its end (here: once a DBA's lock is released) before the writer stops."""
    async with inprocess_relay(database_url, ACTIVITY_FLUSH_SIZE="3", ACTIVITY_FLUSH_INTERVAL_MS="60000") as r:
        activity = ext(r).activity
        assert activity is not None
        q = await new_queue(r)
        await activity.buffer.flush()  # the create_queue entry
        blocker = await asyncpg.connect(database_url)
        try:
            await blocker.execute("BEGIN; LOCK TABLE relay.activity_log IN EXCLUSIVE MODE")
            task = asyncio.ensure_future(activity.buffer.run())
            for change in changes(q, 3):
                r.hub.publish(change)

            async def taken() -> bool:
                return activity.buffer.pending == 0

            assert await eventually(taken)  # the writer holds the batch, blocked on the lock
            task.cancel()
            await asyncio.sleep(0.3)
            assert not task.done()
            await blocker.execute("ROLLBACK")
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 10)
        finally:
            await blocker.close()
        assert await stored(r, q) == 3


async def test_flushes_on_interval(database_url: str) -> None:
    async with inprocess_relay(database_url, ACTIVITY_FLUSH_SIZE="1000", ACTIVITY_FLUSH_INTERVAL_MS="100") as r:
        activity = ext(r).activity
        assert activity is not None
        task = asyncio.ensure_future(activity.buffer.run())
        try:
            q = await new_queue(r)
            await r.messages.enqueue([message(q)])
            assert await eventually(lambda: stored(r, q), within=1.0) == 1
        finally:
            task.cancel()


async def test_flushes_on_shutdown(database_url: str) -> None:
    async with inprocess_relay(database_url, ACTIVITY_FLUSH_INTERVAL_MS="60000") as r:
        q = await new_queue(r)
        await r.messages.enqueue([message(q) for _ in range(3)], batch=True)
        await r.messages.dequeue(q, 3, consumer_id="w", batch=True)
        assert await stored(r, q) == 0
    conn = await asyncpg.connect(database_url)
    try:
        actions = await conn.fetch(
            "SELECT action FROM relay.activity_log WHERE queue = $1 AND action <> 'create_queue'", q)
        assert sorted(a["action"] for a in actions) == ["dequeue"] * 3 + ["enqueue"] * 3
        stats = await conn.fetchrow("SELECT dequeue_count FROM relay.consumer_stats WHERE queue = $1", q)
        assert stats is not None and stats["dequeue_count"] == 3
    finally:
        await conn.close()


async def test_drops_are_counted_when_the_database_is_unreachable() -> None:
    settings = Settings.from_env(environ={"ACTIVITY_BUFFER_MAX": "10", "ACTIVITY_FLUSH_SIZE": "5",
                                          "POSTGRES_CONNECT_TIMEOUT": "1"}, dotenv=None)
    pool = await asyncpg.create_pool(f"postgresql://postgres@127.0.0.1:{free_port()}/none", min_size=0)
    activity = ActivityLog(settings, ActivityStore(Database(pool, settings)), DetectorRegistry.from_settings(settings))
    for change in changes("q", 15):
        activity.on_change(change)  # never raises, never blocks
    assert activity.buffer.pending == 10 and activity.buffer.dropped == 5
    assert await activity.buffer.flush() == 0  # the write fails: kept for a retry, not lost yet
    assert activity.buffer.pending == 10 and activity.buffer.failures == 1
    await activity.buffer.close()  # shutdown with the database still down
    assert activity.buffer.dropped == 15 and activity.buffer.pending == 0
    await pool.close()


async def test_recovers_after_its_connections_are_terminated(database_url: str) -> None:
    async with inprocess_relay(database_url) as r:
        activity = ext(r).activity
        assert activity is not None
        q = await new_queue(r)
        await r.messages.enqueue([message(q)])
        admin = await asyncpg.connect(database_url)
        try:
            await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE application_name = 'relayq' AND pid <> pg_backend_pid()")
        finally:
            await admin.close()
        for _ in range(3):  # the pool notices dead connections on first use, then reconnects
            await activity.buffer.flush()
            if not activity.buffer.pending:
                break
            await asyncio.sleep(0.1)
        assert activity.buffer.pending == 0 and activity.buffer.dropped == 0
        assert await stored(r, q) == 1


async def test_activity_log_disabled_records_nothing(database_url: str) -> None:
    async with inprocess_relay(database_url, ACTIVITY_LOG_ENABLED="false") as r:
        assert ext(r).activity is None
        q = await new_queue(r)
        (leased,) = await r.messages.enqueue([message(q)])
        rows = await r.messages.dequeue(q, 1, consumer_id="off")
        await r.messages.ack([(leased.id, "wrong-token")])
        await r.admin.delete([rows[0]["id"]], bulk=False)
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM relay.activity_log WHERE queue = $1", q) == 0
    finally:
        await conn.close()


async def test_consumer_stats_merge_unflushed_counts(database_url: str) -> None:
    async with inprocess_relay(database_url) as r:
        stats: ConsumerStats = ext(r).stats
        q = await new_queue(r)
        await r.messages.enqueue([message(q) for _ in range(3)], batch=True)
        first = await r.messages.dequeue(q, 2, consumer_id="rw", batch=True)
        await r.messages.dequeue(q, 1)
        await r.messages.ack([(first[0]["id"], first[0]["lock_token"])])
        await r.messages.nack([(first[1]["id"], first[1]["lock_token"], None, None)])
        before = await stats.read("rw")
        assert (before["rw"][q].dequeued, before["rw"][q].acked, before["rw"][q].failed) == (2, 1, 1)
        assert await stats.flush() >= 1 and not stats.pending
        after = await stats.read(None)
        assert (after["rw"][q].dequeued, after["rw"][q].acked, after["rw"][q].failed) == (2, 1, 1)
        assert after["unknown"][q].dequeued == 1
        await r.messages.dequeue(q, 1, consumer_id="rw")  # the nacked message, redelivered
        assert (await stats.read("rw"))["rw"][q].dequeued == 3


async def test_consumer_stats_log_an_outage_once_per_doubling(caplog: pytest.LogCaptureFixture) -> None:
    """A flush fails every interval while the database is away: 1st, 2nd, 4th, 8th... are logged."""
    settings = Settings.from_env(environ={"POSTGRES_CONNECT_TIMEOUT": "0.2"}, dotenv=None)
    pool = await asyncpg.create_pool(f"postgresql://postgres@127.0.0.1:{free_port()}/none", min_size=0)
    stats = ConsumerStats(Database(pool, settings), interval=0.01)
    stats.on_change(Change("dequeue", "q", rows=[{"id": "s1", "queue_name": "q"}], consumer_id="w"))

    def failed() -> list[str]:
        return [r.getMessage() for r in caplog.records if "flush failed" in r.getMessage()]

    async def four_logged() -> bool:
        return len(failed()) >= 4

    with caplog.at_level(logging.WARNING, logger="relayq.stats"):
        runner = asyncio.create_task(stats.run())
        await eventually(four_logged, within=10)
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
    assert [m.split(", ")[1].split(" ")[0] for m in failed()[:4]] == ["1", "2", "4", "8"]
    # Nothing lost meanwhile: the cancel let the flush it interrupted fail, and its counts wait.
    assert stats.pending and not stats.inflight
    await pool.close()


async def test_a_flush_interrupted_by_shutdown_is_written(database_url: str) -> None:
    """Stopping the server cancels the flusher. Cancelled inside its statement, the counts it
    carried were neither written nor pending, so the final flush left them out: lost. The
    statement now runs to its end (here: once a DBA's lock is released) before the loop stops."""
    async with inprocess_relay(database_url) as r:
        stats = ConsumerStats(r.db, interval=0.01)
        consumer = "shutdown-" + secrets.token_hex(4)
        stats.on_change(Change("dequeue", "q", rows=[{"id": "s1", "queue_name": "q"}], consumer_id=consumer))
        blocker = await asyncpg.connect(database_url)
        try:
            await blocker.execute("BEGIN; LOCK TABLE relay.consumer_stats IN EXCLUSIVE MODE")
            runner = asyncio.create_task(stats.run())

            async def flushing() -> bool:
                return bool(stats.inflight)

            assert await eventually(flushing)
            runner.cancel()
            await asyncio.sleep(0.3)
            assert not runner.done()  # waiting for its statement, not abandoning it
            await blocker.execute("ROLLBACK")
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(runner, 10)
        finally:
            await blocker.close()
        assert not stats.inflight and not stats.pending
        stored_counts = await stats.read(consumer)
        assert stored_counts[consumer]["q"].dequeued == 1


async def test_the_event_listener_is_named_and_comes_back_after_termination(database_url: str) -> None:
    """A DBA (and the chaos soak) can tell the LISTEN connection apart, and killing it is survived."""
    async with inprocess_relay(database_url, background=True) as r:
        events = ext(r).events

        async def listening() -> bool:
            return events.listening

        async def listener_pids() -> list[int]:
            rows = await r.db.fetch("SELECT pid FROM pg_stat_activity WHERE application_name = 'relayq-listen' "
                                    "AND datname = current_database()")
            return [row["pid"] for row in rows]

        assert await eventually(listening)
        before = await listener_pids()
        assert before
        await r.db.fetchval("SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM unnest($1::int[]) AS pid",
                            before)

        async def replaced() -> bool:
            pids = await listener_pids()
            return events.listening and bool(pids) and not set(pids) & set(before)

        assert await eventually(replaced, within=10)
