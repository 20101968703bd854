"""Retention and partition upkeep (services/maintenance.py) against a real database."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec
import pytest

from relayq.config import Settings
from relayq.runtime import Relay
from relayq.services.maintenance import VACUUM_ROUNDS, Maintenance, next_slot
from relayq.services.messages import NewMessage
from relayq.services.queues import PARTITION_STEP, partition_start, time_partition_ddl
from tests.support.server import fresh_database


@pytest.fixture(scope="module")
def maintenance_dsn() -> Iterator[str]:
    with fresh_database("relay_maint") as url:
        yield url


@pytest.fixture
async def relay(maintenance_dsn: str) -> AsyncIterator[Relay]:
    settings = Settings.from_env(
        environ={"ACKNOWLEDGED_RETENTION_HOURS": "1", "RETENTION_BATCH_SIZE": "3"}, dotenv=None
    )
    r = await Relay.start(settings, maintenance_dsn, background=False)
    yield r
    await r.stop()


async def new_queue(relay: Relay, **spec: str) -> str:
    name = "m_" + secrets.token_hex(4)
    await relay.queues.create({"name": name, "queue_type": "standard", **spec})
    return name


async def fill(relay: Relay, queue: str, n: int, acked: int) -> list[str]:
    """Enqueue n messages and ack the first `acked`; returns the acked ids."""
    items = [NewMessage(queue=queue, type="t", payload=msgspec.Raw(b'{"n":1}')) for _ in range(n)]
    await relay.messages.enqueue(items, batch=True)
    leased = await relay.messages.dequeue(queue, acked, batch=True)
    await relay.messages.ack([(row["id"], row["lock_token"]) for row in leased], batch=True)
    return [row["id"] for row in leased]


async def counts_match(relay: Relay, table: str, queue: str) -> dict[str, int]:
    """The trigger-kept counters equal a real count(*); returns them."""
    real = {r["status"]: r["n"] for r in await relay.db.fetch(
        f"SELECT status, count(*) AS n FROM {table} WHERE queue_name = $1 GROUP BY 1", queue)}
    kept = {s: n for s, n in (await relay.queues.counts(queue)).get(queue, {}).items() if n}
    assert kept == real
    return kept


async def age(relay: Relay, table: str, ids: list[str], hours: float) -> None:
    """Make messages `hours` old: created then, and acknowledged then if they were acknowledged
    (retention counts an acknowledged message's age from its acknowledgement)."""
    await relay.db.execute(
        f"""UPDATE {table} SET created_at = now() - make_interval(secs => $2),
            acknowledged_at = CASE WHEN acknowledged_at IS NOT NULL THEN now() - make_interval(secs => $2) END
        WHERE id = ANY($1::text[])""",
        ids, hours * 3600,
    )


async def place(relay: Relay, ids: list[str], at: datetime) -> None:
    """Move partitioned messages to creation time `at` (row movement keeps the counters right)."""
    await relay.db.execute(
        """UPDATE relay.messages_partitioned SET created_at = $2,
            acknowledged_at = CASE WHEN acknowledged_at IS NOT NULL THEN $2::timestamptz END WHERE id = ANY($1::text[])""", ids, at)


async def test_retention_deletes_old_finished_messages_in_batches(relay: Relay) -> None:
    queue = await new_queue(relay, retention_interval="2 hours")
    acked = await fill(relay, queue, 12, 10)
    queued = [r["id"] for r in await relay.db.fetch(
        "SELECT id FROM relay.messages WHERE queue_name = $1 AND status = 'queued'", queue)]
    await age(relay, "relay.messages", acked[:7] + queued[:1], 3)  # older than 2 h
    await age(relay, "relay.messages", acked[7:8], 1.5)  # younger than the queue's retention
    await relay.db.execute("UPDATE relay.messages SET status = 'archived' WHERE id = $1", acked[0])

    requests_before = relay.db.stats.round_trips
    background_before = relay.db.background_stats.round_trips
    report = await Maintenance(relay.db.background(), relay.settings).run_once()
    # Background work is counted apart from the request path's round trips (relay bench divides those).
    assert relay.db.stats.round_trips == requests_before
    assert relay.db.background_stats.round_trips > background_before

    assert report.deleted[queue] == 7  # batches of 3: 2 + 1 acknowledged statements, 1 archived
    left = {r["id"] for r in await relay.db.fetch("SELECT id FROM relay.messages WHERE queue_name = $1", queue)}
    assert left == set(acked[7:]) | set(queued)  # queued messages are never retention's business
    assert await counts_match(relay, "relay.messages", queue) == {"acknowledged": 3, "queued": 2}


async def test_an_acknowledged_message_ages_from_its_acknowledgement(relay: Relay) -> None:
    """Retention of acknowledged messages reads the per-queue acknowledged index (migration 0012):
    a message created long ago but acknowledged recently stays; an archived one ages from its
    creation."""
    queue = await new_queue(relay, retention_interval="2 hours")
    acked = await fill(relay, queue, 3, 3)
    await relay.db.execute(
        """UPDATE relay.messages SET created_at = now() - interval '5 hours',
            acknowledged_at = now() - make_interval(hours => (ARRAY[3, 1, 1])[array_position($1::text[], id)]),
            status = CASE WHEN id = $1[3] THEN 'archived' ELSE status END
        WHERE id = ANY($1::text[])""", acked)
    report = await Maintenance(relay.db, relay.settings).run_once()
    assert report.deleted[queue] == 2  # acknowledged 3 h ago, and archived (created 5 h ago)
    left = [r["id"] for r in await relay.db.fetch("SELECT id FROM relay.messages WHERE queue_name = $1", queue)]
    assert left == [acked[1]]  # created 5 h ago, acknowledged 1 h ago: within retention
    await counts_match(relay, "relay.messages", queue)


async def test_server_default_retention_applies_without_queue_retention(relay: Relay) -> None:
    queue = await new_queue(relay)
    acked = await fill(relay, queue, 4, 4)
    await age(relay, "relay.messages", acked[:2], 1.5)  # ACKNOWLEDGED_RETENTION_HOURS=1 here
    report = await Maintenance(relay.db, relay.settings).run_once()
    assert report.deleted[queue] == 2
    await counts_match(relay, "relay.messages", queue)

    keep_all = Settings.from_env(environ={"ACKNOWLEDGED_RETENTION_HOURS": "0"}, dotenv=None)
    await age(relay, "relay.messages", acked[2:], 1000)
    assert queue not in (await Maintenance(relay.db, keep_all).run_once()).deleted


async def test_unlogged_queue_retention(relay: Relay) -> None:
    queue = await new_queue(relay, queue_type="unlogged", retention_interval="1 hour")
    acked = await fill(relay, queue, 5, 5)
    await age(relay, "relay.messages_unlogged", acked[:4], 2)
    assert (await Maintenance(relay.db, relay.settings).run_once()).deleted[queue] == 4
    await counts_match(relay, "relay.messages_unlogged", queue)


async def partition_names(relay: Relay, queue_id: int) -> set[str]:
    rows = await relay.db.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass($1)", f"relay.messages_p{queue_id}")
    return {r["relname"] for r in rows}


async def test_partitions_are_created_ahead_and_dropped_whole(relay: Relay) -> None:
    queue = await new_queue(relay, queue_type="partitioned", partition_interval="hourly",
                            retention_interval="3 hours")
    ref = await relay.queues.resolve(queue)
    now = partition_start(datetime.now(UTC), "hourly")
    step = PARTITION_STEP["hourly"]
    # A partition from five hours ago (past retention) and one from two hours ago (not yet).
    old_name, old_ddl = time_partition_ddl(ref.id, "hourly", now - 5 * step)
    recent_name, recent_ddl = time_partition_ddl(ref.id, "hourly", now - 2 * step)
    await relay.db.execute(old_ddl)
    await relay.db.execute(recent_ddl)
    # The queue was created with 3 intervals ahead; drop the furthest so maintenance must make it.
    furthest, _ = time_partition_ddl(ref.id, "hourly", now + 3 * step)
    await relay.db.execute(f"DROP TABLE relay.{furthest}")

    acked = await fill(relay, queue, 10, 6)
    queued = [r["id"] for r in await relay.db.fetch(
        "SELECT id FROM relay.messages_partitioned WHERE queue_id = $1 AND status = 'queued'", ref.id)]
    # Move rows into the old partitions, and one into the default partition (no partition there).
    await place(relay, acked[:3] + queued[:1], now - 5 * step + timedelta(minutes=10))
    await place(relay, acked[3:4], now - 2 * step + timedelta(minutes=10))
    await place(relay, acked[4:5], now - 10 * step)
    assert (await counts_match(relay, "relay.messages_partitioned", queue)) == {"acknowledged": 6, "queued": 4}

    report = await Maintenance(relay.db, relay.settings).run_once()

    assert report.dropped_partitions == [old_name]
    assert report.deleted[queue] == 1  # the expired acknowledged row in the default partition
    assert furthest in report.created_partitions
    names = await partition_names(relay, ref.id)
    assert old_name not in names and recent_name in names and furthest in names
    # A dropped partition takes every message in it, whatever its status.
    assert await counts_match(relay, "relay.messages_partitioned", queue) == {"acknowledged": 2, "queued": 3}
    # Nothing more to do on a second pass.
    again = await Maintenance(relay.db, relay.settings).run_once()
    assert not again.dropped_partitions and not again.created_partitions


async def detached_partition(relay: Relay) -> tuple[str, str]:
    """A partitioned queue with 3 acknowledged messages, 2 of them in a time partition that is
    detached but not dropped (what a process that died mid-way leaves); (queue, partition)."""
    queue = await new_queue(relay, queue_type="partitioned", partition_interval="hourly",
                            retention_interval="1 week")
    ref = await relay.queues.resolve(queue)
    lo = partition_start(datetime.now(UTC), "hourly") - timedelta(days=30)
    name, ddl = time_partition_ddl(ref.id, "hourly", lo)
    await relay.db.execute(ddl)
    acked = await fill(relay, queue, 3, 3)
    await place(relay, acked[:2], lo + timedelta(minutes=10))
    await relay.db.execute(f"ALTER TABLE relay.messages_p{ref.id} DETACH PARTITION relay.{name}")
    return queue, name


async def test_detached_partition_left_by_a_dead_process_is_finished(relay: Relay) -> None:
    queue, name = await detached_partition(relay)
    # Detached but not yet dropped: the counters still include its two rows.
    assert (await relay.queues.counts(queue))[queue]["acknowledged"] == 3

    report = await Maintenance(relay.db, relay.settings).run_once()
    assert name in report.dropped_partitions
    assert await counts_match(relay, "relay.messages_partitioned", queue) == {"acknowledged": 1}


async def test_concurrent_passes_share_the_work(relay: Relay) -> None:
    queue = await new_queue(relay, retention_interval="1 hour")
    acked = await fill(relay, queue, 40, 40)
    await age(relay, "relay.messages", acked, 2)
    workers = [Maintenance(relay.db, relay.settings) for _ in range(3)]
    reports = await asyncio.gather(*(w.run_once() for w in workers))
    assert sum(r.deleted.get(queue, 0) for r in reports) <= 40
    await Maintenance(relay.db, relay.settings).run_once()  # whatever a skipped pass left
    assert await counts_match(relay, "relay.messages", queue) == {}


async def vacuum_count(relay: Relay, table: str) -> int:
    """Manual VACUUMs of `table` so far (autovacuum counts separately)."""
    count: int = await relay.db.fetchval(
        "SELECT vacuum_count FROM pg_stat_user_tables WHERE relid = $1::regclass", table)
    return count


async def expired_queue(relay: Relay) -> tuple[str, int]:
    """A queue with three acknowledged messages past its one-hour retention, and the number of
    VACUUMs of relay.messages so far."""
    queue = await new_queue(relay, retention_interval="1 hour")
    await age(relay, "relay.messages", await fill(relay, queue, 3, 3), 2)
    return queue, await vacuum_count(relay, "relay.messages")


async def test_retention_that_deletes_rows_vacuums_the_table(relay: Relay) -> None:
    queue = await new_queue(relay, retention_interval="1 hour")
    acked = await fill(relay, queue, 6, 6)
    await age(relay, "relay.messages", acked[:4], 2)
    before = await vacuum_count(relay, "relay.messages")

    report = await Maintenance(relay.db, relay.settings).run_once()

    assert report.deleted[queue] == 4
    assert report.vacuumed == ["relay.messages"] and not report.vacuum_skipped
    assert await vacuum_count(relay, "relay.messages") == before + VACUUM_ROUNDS
    # Nothing left to delete: no vacuum either.
    again = await Maintenance(relay.db, relay.settings).run_once()
    assert not again.deleted and not again.vacuumed
    assert await vacuum_count(relay, "relay.messages") == before + VACUUM_ROUNDS


async def test_unlogged_and_partitioned_queues_vacuum_their_own_table(relay: Relay) -> None:
    unlogged = await new_queue(relay, queue_type="unlogged", retention_interval="1 hour")
    await age(relay, "relay.messages_unlogged", await fill(relay, unlogged, 3, 3), 2)
    partitioned = await new_queue(relay, queue_type="partitioned", partition_interval="hourly",
                                  retention_interval="3 hours")
    ref = await relay.queues.resolve(partitioned)
    # Rows older than retention but in the default partition (none exists for that hour) are
    # deleted row by row, so the queue's subtree is vacuumed.
    await place(relay, await fill(relay, partitioned, 3, 3), datetime.now(UTC) - timedelta(hours=30))
    subtree = f"relay.messages_p{ref.id}"
    before = await vacuum_count(relay, f"{subtree}_default")

    report = await Maintenance(relay.db, relay.settings).run_once()

    assert report.deleted[unlogged] == 3 and report.deleted[partitioned] == 3
    assert set(report.vacuumed) == {"relay.messages_unlogged", subtree}
    assert await vacuum_count(relay, f"{subtree}_default") == before + VACUUM_ROUNDS


async def test_maintenance_vacuum_off(maintenance_dsn: str) -> None:
    settings = Settings.from_env(environ={"ACKNOWLEDGED_RETENTION_HOURS": "1", "MAINTENANCE_VACUUM": "false"},
                                 dotenv=None)
    r = await Relay.start(settings, maintenance_dsn, background=False)
    try:
        queue, before = await expired_queue(r)
        report = await Maintenance(r.db, r.settings).run_once()
        assert report.deleted[queue] == 3 and not report.vacuumed
        assert await vacuum_count(r, "relay.messages") == before
    finally:
        await r.stop()


async def test_vacuum_skips_a_table_another_process_keeps_vacuuming(relay: Relay) -> None:
    queue, before = await expired_queue(relay)
    # SHARE UPDATE EXCLUSIVE is what a VACUUM (ours on another node, or autovacuum) holds.
    # Queueing for it here would never end, as this test holds it until the pass returns; the
    # pass retries for half an interval (0.25 s here), then leaves the table to the next pass.
    quick = dataclasses.replace(relay.settings, maintenance_interval_seconds=0.5)
    async with relay.db.transaction() as tx:
        await tx.execute("LOCK TABLE relay.messages IN SHARE UPDATE EXCLUSIVE MODE")
        report = await asyncio.wait_for(Maintenance(relay.db, quick).run_once(), 60)
    assert report.deleted[queue] == 3
    assert report.vacuum_skipped == ["relay.messages"] and not report.vacuumed
    assert await vacuum_count(relay, "relay.messages") == before


async def test_vacuum_gets_in_once_another_vacuum_is_done(relay: Relay) -> None:
    queue, before = await expired_queue(relay)
    async with relay.db.transaction() as tx:
        await tx.execute("LOCK TABLE relay.messages IN SHARE UPDATE EXCLUSIVE MODE")
        pass_ = asyncio.ensure_future(Maintenance(relay.db, relay.settings).run_once())
        # Retention's deletes go ahead under the lock; then the vacuum retries (for up to 10 s).
        for _ in range(600):
            if not await relay.db.fetchval("SELECT count(*) FROM relay.messages WHERE queue_name = $1", queue):
                break
            await asyncio.sleep(0.05)
        assert not pass_.done()
    report = await asyncio.wait_for(pass_, 60)  # the "other vacuum" (our lock) has finished
    assert report.vacuumed == ["relay.messages"] and not report.vacuum_skipped
    assert await vacuum_count(relay, "relay.messages") == before + VACUUM_ROUNDS


def test_passes_keep_a_fixed_schedule() -> None:
    assert next_slot(105.0, 100.0, 10.0) == 105.0  # the first slot (random phase) is still ahead
    assert next_slot(100.0, 100.0, 10.0) == 110.0  # a pass that took no time: the next slot
    assert next_slot(100.0, 103.5, 10.0) == 110.0  # a pass never shifts the schedule
    assert next_slot(100.0, 125.0, 10.0) == 130.0  # an overrun skips the missed slots, no catch-up


async def test_second_round_waits_for_old_snapshots_only_briefly(relay: Relay) -> None:
    queue, before = await expired_queue(relay)
    quick = dataclasses.replace(relay.settings, maintenance_interval_seconds=0.5)
    # A reader whose snapshot is older than the first round holds the pages it deleted; the pass
    # waits for it at most a quarter of an interval, then runs the second round anyway.
    async with relay.db.transaction() as tx:
        await tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        await tx.fetchval("SELECT count(*) FROM relay.queues")
        report = await asyncio.wait_for(Maintenance(relay.db, quick).run_once(), 60)
    assert report.deleted[queue] == 3 and report.vacuumed == ["relay.messages"]
    assert await vacuum_count(relay, "relay.messages") == before + VACUUM_ROUNDS


async def test_deleting_a_partitioned_queue_never_waits_on_the_others(relay: Relay) -> None:
    """A partitioned queue's delete empties its tables (TRUNCATE: its own locks only) and drops
    them after the commit, waiting at most DDL_LOCK_TIMEOUT for the parent's lock. Its DROP had
    held every partitioned queue's statements queued behind it, for as long as a long read of
    any of them lasted (up to the statement timeout), and deadlocked with this queue's acks."""
    gone = await new_queue(relay, queue_type="partitioned", partition_interval="daily", retention_interval="7 days")
    other = await new_queue(relay, queue_type="partitioned", partition_interval="daily", retention_interval="7 days")
    await fill(relay, gone, 10, 4)
    await fill(relay, other, 3, 0)
    qid, other_id = [await relay.db.fetchval("SELECT id FROM relay.queues WHERE name = $1", q) for q in (gone, other)]
    reader = await asyncpg.connect(relay.db.dsn)  # a long read of another partitioned queue (an export)
    try:
        async with reader.transaction():
            await reader.fetch(f"SELECT id FROM relay.messages_p{other_id}")  # locks the parent too
            assert await relay.queues.delete(gone, force=True) == 10
            # Gone for the API at once; its (empty) table waits for the reader to finish.
            assert not await relay.db.fetchval("SELECT count(*) FROM relay.queues WHERE name = $1", gone)
            assert await relay.db.fetchval("SELECT to_regclass($1)::text", f"relay.messages_p{qid}")
            assert not await relay.db.fetchval(f"SELECT count(*) FROM relay.messages_p{qid}")
            assert len(await relay.messages.dequeue(other, 3)) == 3  # the other queue never waited
    finally:
        await reader.close()
    report = await Maintenance(relay.db, relay.settings).run_once()
    assert f"messages_p{qid}" in report.dropped_partitions
    assert not await relay.db.fetchval("SELECT to_regclass($1)::text", f"relay.messages_p{qid}")
    assert not await relay.db.fetchval("SELECT count(*) FROM relay.message_counts WHERE queue_name = $1", gone)


async def test_a_partitioned_queue_delete_counts_what_it_removed(relay: Relay) -> None:
    """The count comes from the counters, read once the TRUNCATE holds its lock: every writer to
    the queue's tables has committed by then (read before it, a retention batch or a purge still
    running made the delete report messages it never removed)."""
    queue = await new_queue(relay, queue_type="partitioned", partition_interval="daily", retention_interval="7 days")
    await fill(relay, queue, 10, 4)
    writer = await asyncpg.connect(relay.db.dsn)
    try:
        tx = writer.transaction()
        await tx.start()
        await writer.execute("DELETE FROM relay.messages_partitioned WHERE queue_name = $1 AND status = 'acknowledged'",
                             queue)
        deleting = asyncio.ensure_future(relay.queues.delete(queue, force=True))
        await asyncio.sleep(0.3)
        assert not deleting.done()  # the TRUNCATE waits for the writer
        await tx.commit()
        assert await deleting == 6
    finally:
        await writer.close()


@pytest.mark.parametrize("change", ["delete", "rename"])
async def test_finishing_a_detached_partition_waits_for_a_queue_delete_or_rename(relay: Relay, change: str) -> None:
    """The un-count of a detached partition locks the queue row first. Without that lock it read
    the queue before a delete (or rename) committed, then wrote its negative counter rows after
    the delete had removed the queue's counters: a new queue of that name started at -2."""
    queue, name = await detached_partition(relay)
    admin = await asyncpg.connect(relay.db.dsn)  # the delete's (or rename's) transaction, held open
    try:
        tx = admin.transaction()
        await tx.start()
        await admin.execute("SELECT 1 FROM relay.queues WHERE name = $1 FOR UPDATE", queue)
        for table in ("relay.message_counts", "relay.message_types"):
            await admin.execute(f"DELETE FROM {table} WHERE queue_name = $1", queue)
        if change == "delete":
            await admin.execute("DELETE FROM relay.queues WHERE name = $1", queue)
        else:
            await admin.execute("UPDATE relay.queues SET name = name || '_r' WHERE name = $1", queue)
        passing = asyncio.ensure_future(Maintenance(relay.db, relay.settings).run_once())
        await asyncio.sleep(0.2)
        await tx.commit()
        report = await passing
    finally:
        await admin.close()
    assert name in report.dropped_partitions
    assert not await relay.db.fetch("SELECT * FROM relay.message_counts WHERE queue_name = $1", queue)


async def test_a_retention_that_cannot_be_used_costs_its_queue_retention_only(relay: Relay) -> None:
    """Retentions stored before the API checked strictly ("٧ days" passed \\d, and no bound held)
    were cast in the statement that reads every queue's schedule: one the cast refused, or one
    out of range, failed it, and so every queue's retention and partition upkeep."""
    broken = {}
    for value in ("٧ days", "999999999 days"):
        name = await new_queue(relay, queue_type="partitioned", partition_interval="hourly", retention_interval="2 hours")
        await relay.db.execute("UPDATE relay.queues SET retention_interval = $2 WHERE name = $1", name, value)
        broken[name] = (await relay.queues.resolve(name)).id
    legacy = await new_queue(relay, retention_interval="2 hours")  # valid to PostgreSQL, if not as typed now
    await relay.db.execute("UPDATE relay.queues SET retention_interval = '2 hours\n' WHERE name = $1", legacy)
    queue = await new_queue(relay, retention_interval="2 hours")
    for name in (queue, legacy):
        await age(relay, "relay.messages", await fill(relay, name, 2, 2), 3)
    furthest = {name: time_partition_ddl(qid, "hourly", partition_start(datetime.now(UTC), "hourly")
                                         + 3 * PARTITION_STEP["hourly"])[0] for name, qid in broken.items()}
    for table in furthest.values():
        await relay.db.execute(f"DROP TABLE relay.{table}")

    report = await Maintenance(relay.db, relay.settings).run_once()

    assert report.deleted[queue] == 2 and report.deleted[legacy] == 2
    assert set(furthest.values()) <= set(report.created_partitions)  # their partitions are still kept up
    for name in [*broken, legacy]:
        await relay.queues.delete(name, force=True)  # the module's other tests
