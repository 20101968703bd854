"""Retention and partition upkeep: keeps storage bounded while messages keep flowing.

Every `MAINTENANCE_INTERVAL_SECONDS` each server process makes one pass over the queues:

- **Retention** deletes acknowledged and archived messages older than the queue's
  `retention_interval` (else `ACKNOWLEDGED_RETENTION_HOURS`), `RETENTION_BATCH_SIZE` rows per
  statement, each statement its own short transaction, so no lock is held for long and
  autovacuum can reuse the space as it goes. An acknowledged message's age counts from its
  acknowledgement, an archived one's from its creation, as partitions do (migration 0012).
- **Partitioned queues** get their next `PARTITIONS_AHEAD` time partitions created ahead of
  time, and whole partitions whose time range ended before the retention cut-off are
  dropped. A drop is two steps: DETACH (brief ACCESS EXCLUSIVE lock under a short
  `lock_timeout`, retried next pass when busy), then, off-line, subtract the detached rows
  from `relay.message_counts` (DROP fires no DELETE trigger) and DROP TABLE in one
  transaction. A table detached by a process that died before step two is found by name and
  finished by the next pass.
- **VACUUM** (`MAINTENANCE_VACUUM`, on by default) of every table retention deleted from, right
  after the pass, so the space of deleted rows and of the dead versions every dequeue and ack
  leaves behind is reusable now rather than after autovacuum's next naptime (1 min): the table
  then only holds the retention window plus one maintenance interval of dead versions.

Several processes may run passes at once: each job on a queue first takes
`pg_try_advisory_xact_lock(MAINTENANCE_LOCK_CLASS, queue id)` and skips the queue when another
process holds it, and batch deletes claim rows with SKIP LOCKED. VACUUM uses SKIP_LOCKED: a
table another process (or autovacuum) is vacuuming at that moment is retried a little later,
never queued for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg

from relayq.config import Settings
from relayq.db.database import Database, Transaction, lock_timed_out
from relayq.db.queries import MESSAGE_TABLES
from relayq.domain.errors import RelayError
from relayq.services.passes import Streak, run_logged
from relayq.services.queues import (
    DDL_LOCK_TIMEOUT,
    ORPHANED_SUBTREES_SQL,
    PARTITION_STEP,
    drop_subtree,
    own_table,
    partition_start,
    queue_subtree,
    retention_to_interval,
    time_partition_ddl,
)

log = logging.getLogger("relayq.maintenance")

# First key of the two-key advisory locks; the second is the queue id.
MAINTENANCE_LOCK_CLASS = 0x72656C61  # "rela"
# Upper bound on retention statements per queue and pass, so one pass cannot run for ever.
MAX_BATCHES_PER_PASS = 200
RETAINED_STATUSES = ("acknowledged", "archived")
TIME_PARTITION_RE = re.compile(r"^messages_p(\d+)_(\d{10})$")
# The maintenance VACUUM's own session: it cannot run inside a transaction, and a large table may
# take longer than POSTGRES_STATEMENT_TIMEOUT_MS. Both parameters pass through pgbouncer as
# configured in docs/scaling.md (statement_timeout is ignored there; the role's applies).
VACUUM_SESSION = {"application_name": "relayq-maintenance", "statement_timeout": "0"}
# B-tree pages a VACUUM empties go to the free space map only once no transaction that was running
# at their deletion is left, which the scan of a small index rarely outlives: usually the next
# VACUUM recycles them. With one round per pass the indexes would have to hold two intervals of
# churn; the second round is cheap (the heap pages it revisits are few, and an index is rescanned
# only when more than 5% of it awaits recycling) and makes the pages reusable at once.
VACUUM_ROUNDS = 2
# The first round's deleted index pages become reusable once every transaction that was running
# when they were deleted has ended. The next XID after the first round bounds their deletion
# XIDs; before the second round, wait (briefly) until no other backend's snapshot or XID is that
# old. Backends inside a lazy VACUUM do not hold the horizon back and are not waited for. A short
# reader such as an autovacuum ANALYZE of another table would otherwise defer the recycling to
# the next pass, and the indexes would need one interval of churn more.
NEXT_XID_SQL = "SELECT (pg_snapshot_xmax(pg_current_snapshot())::text::numeric % 4294967296)::text"
_OLDER_BACKENDS = """FROM pg_stat_activity a
WHERE a.pid <> pg_backend_pid()
  AND (age(a.backend_xmin) >= age($1::text::xid) OR age(a.backend_xid) >= age($1::text::xid))
  AND NOT EXISTS (SELECT 1 FROM pg_stat_progress_vacuum p WHERE p.pid = a.pid)"""
HORIZON_PASSED_SQL = f"SELECT NOT EXISTS (SELECT 1 {_OLDER_BACKENDS})"
# Who holds the horizon back, for the warning when the wait times out.
HORIZON_HOLDER_SQL = f"""SELECT a.pid, a.backend_type, a.state, left(a.query, 80) AS query {_OLDER_BACKENDS}
ORDER BY greatest(age(a.backend_xmin), age(a.backend_xid)) DESC NULLS LAST LIMIT 1"""
HORIZON_WAIT_MAX = 3.0
# SQLSTATE of the warning VACUUM (SKIP_LOCKED) gives for a table it skipped.
LOCK_NOT_AVAILABLE = "55P03"
# A table another vacuum holds is retried this often, for at most half an interval and 10 s.
VACUUM_RETRY_SECONDS = 0.2
VACUUM_LOCK_WAIT_MAX = 10.0

# One retention batch per status, oldest first, each straight off its own index: acknowledged
# messages by acknowledgement time off messages_acknowledged_idx (queue_name, acknowledged_at),
# archived ones by creation time off messages_status_idx (migration 0012). The status is a
# literal, so generic plans know which partial index applies. $2 is the cut-off.
_DELETE_BATCH = """DELETE FROM {{table}} AS m
WHERE m.queue_id = $4 AND m.id = ANY(ARRAY(
    SELECT d.id FROM {{table}} AS d
    WHERE d.queue_name = $1 AND d.queue_id = $4 AND {where} < $2
    ORDER BY {order}
    LIMIT $3
    FOR UPDATE SKIP LOCKED))"""
DELETE_BATCH_SQL: dict[str, str] = {
    "acknowledged": _DELETE_BATCH.format(where="d.status = 'acknowledged' AND d.acknowledged_at",
                                         order="d.acknowledged_at"),
    "archived": _DELETE_BATCH.format(where="d.status = 'archived' AND d.created_at", order="d.created_at"),
}

# Subtract a detached partition's rows from the counters, in the one slot the DELETE trigger
# would have used; rows of a queue since deleted or renamed were already forgotten.
UNCOUNT_SQL = """INSERT INTO relay.message_counts AS c (queue_name, status, priority, slot, n, payload_sum)
SELECT d.queue_name, d.status, d.priority, (pg_backend_pid() % 16)::smallint, -count(*), -sum(d.payload_size)
FROM relay.{table} AS d JOIN relay.queues AS q ON q.id = d.queue_id AND q.name = d.queue_name
GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
ON CONFLICT (queue_name, status, priority, slot) DO UPDATE
SET n = c.n + excluded.n, payload_sum = c.payload_sum + excluded.payload_sum"""


# Every queue with its retention cut-off. Stored retentions are read through $2/$3, each as
# retention_to_interval rewrote it (Python), never cast from the column: one value the cast
# refused ("٧ days", stored before the API checked strictly) or one out of range failed this
# statement, and so every queue's retention and partition upkeep. A queue whose retention is
# left out keeps its partition upkeep, without retention.
SCHEDULES_SQL = """SELECT q.id, q.name, q.queue_type, q.partition_interval,
       CASE WHEN q.retention_interval IS NULL
            THEN CASE WHEN $1::float8 > 0 THEN now() - make_interval(secs => $1::float8 * 3600) END
            ELSE now() - r.iv::interval END AS cutoff
FROM relay.queues q LEFT JOIN unnest($2::bigint[], $3::text[]) AS r(id, iv) ON r.id = q.id
ORDER BY q.id"""


@dataclass(slots=True)
class PassReport:
    """What one maintenance pass did (tests and logs read it)."""

    deleted: dict[str, int] = field(default_factory=dict)
    created_partitions: list[str] = field(default_factory=list)
    dropped_partitions: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    vacuumed: list[str] = field(default_factory=list)
    vacuum_skipped: list[str] = field(default_factory=list)
    # False when a transaction older than the first vacuum round outlived the wait before the
    # second: the index pages the first emptied are then recycled only by the next pass.
    horizon_passed: bool | None = None


@dataclass(frozen=True, slots=True)
class QueueSchedule:
    """A queue as maintenance sees it: its storage and retention cut-off."""

    id: int
    name: str
    kind: str
    partition_interval: str | None
    cutoff: datetime | None  # None: keep finished messages for ever


class Maintenance:
    """Background retention and partition service; `run_once` is also called by tests."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.passes = 0
        self._unreadable: set[tuple[int, str]] = set()  # (queue id, retention) already warned about

    async def run(self) -> None:
        """Loop until cancelled: one pass at start, then one every interval at a fixed rate.

        Failures are logged and retried next pass. The randomness is a phase drawn once per
        process, not a jitter on every sleep: several processes still spread over the interval
        (and rarely collide on the advisory locks), while each process's passes stay exactly one
        interval apart whatever a pass costs. Finished messages then wait at most retention +
        one interval, so the table's high-water mark is set by the first full cycles rather
        than crept up by the longest gap a random sleep happens to draw.
        """
        interval = self.settings.maintenance_interval_seconds
        clock = asyncio.get_running_loop().time
        next_at = clock() + interval * random.random()
        streak = Streak()
        while True:
            await run_logged(log, "maintenance", self.run_once, streak)
            next_at = next_slot(next_at, clock(), interval)
            await asyncio.sleep(next_at - clock())

    async def run_once(self) -> PassReport:
        """One pass over every queue."""
        report = PassReport()
        await self._finish_detached(report)
        for row in await self.db.fetch(ORPHANED_SUBTREES_SQL):  # deleted queues' tables left behind
            if await drop_subtree(self.db, row["queue_id"]):
                report.dropped_partitions.append(queue_subtree(row["queue_id"]).removeprefix("relay."))
        to_vacuum: dict[str, None] = {}  # an ordered set
        for queue in await self._schedules():
            if queue.kind == "partitioned" and queue.partition_interval:
                await self._create_upcoming(queue, report)
                if queue.cutoff is not None:
                    await self._drop_expired(queue, report)
            if queue.cutoff is not None:
                before = report.deleted.get(queue.name, 0)
                await self._delete_expired(queue, report)
                if report.deleted.get(queue.name, 0) > before:
                    to_vacuum[_vacuum_target(queue)] = None
        await self._finish_detached(report)
        if to_vacuum and self.settings.maintenance_vacuum:
            await self._vacuum(list(to_vacuum), report)
        self.passes += 1
        if report.deleted or report.dropped_partitions or report.created_partitions:
            log.info("maintenance: deleted %s, created %s, dropped %s, vacuumed %s", report.deleted,
                     report.created_partitions, report.dropped_partitions, report.vacuumed)
        return report

    async def _schedules(self) -> list[QueueSchedule]:
        ids: list[int] = []
        intervals: list[str] = []
        for r in await self.db.fetch(
                "SELECT id, name, retention_interval FROM relay.queues WHERE retention_interval IS NOT NULL"):
            try:
                intervals.append(retention_to_interval(r["retention_interval"]))
                ids.append(r["id"])
            except RelayError:
                if (r["id"], r["retention_interval"]) not in self._unreadable:
                    self._unreadable.add((r["id"], r["retention_interval"]))
                    log.warning("maintenance: queue %s has a retention_interval that cannot be used (%r): no "
                                "retention for it until it has a valid one", r["name"], r["retention_interval"])
        rows = await self.db.fetch(SCHEDULES_SQL, self.settings.acknowledged_retention_hours, ids, intervals)
        return [QueueSchedule(r["id"], r["name"], r["queue_type"], r["partition_interval"], r["cutoff"])
                for r in rows]

    # ----- retention by DELETE -----------------------------------------------------------
    async def _delete_expired(self, queue: QueueSchedule, report: PassReport) -> None:
        """Delete finished messages older than the cut-off, one bounded batch per transaction."""
        # Partitioned queues too go through the parent: the counting triggers are statement
        # triggers on the parent, which a DELETE aimed at one partition would not fire. Expired
        # partitions are gone by now (_drop_expired), so this finds rows of the default
        # partition and of the one partition that straddles the cut-off.
        table = MESSAGE_TABLES[queue.kind]  # type: ignore[index]
        batch = self.settings.retention_batch_size
        for status in RETAINED_STATUSES:
            sql = DELETE_BATCH_SQL[status].format(table=table)
            for _ in range(MAX_BATCHES_PER_PASS):
                async with self.db.transaction() as tx:
                    if not await _try_lock(tx, queue.id):
                        report.skipped.append(queue.name)
                        return
                    try:
                        tag = await tx.execute(sql, queue.name, queue.cutoff, batch, queue.id)
                    except asyncpg.UndefinedTableError:  # queue deleted meanwhile
                        return
                deleted = int(tag.rsplit(" ", 1)[-1])
                if deleted:
                    report.deleted[queue.name] = report.deleted.get(queue.name, 0) + deleted
                if deleted < batch:
                    break
                await asyncio.sleep(0)  # let request handlers in between batches

    # ----- vacuum ------------------------------------------------------------------------
    async def _vacuum(self, tables: list[str], report: PassReport) -> None:
        """VACUUM the tables retention just deleted from, so their space is reused at once.

        Without it the freed space waits for autovacuum, which looks at each database once a
        naptime (1 min), and the table grows by that much churn first. Plain VACUUM takes SHARE
        UPDATE EXCLUSIVE, which no hot statement conflicts with; SKIP_LOCKED returns at once when
        another process or autovacuum holds the table, and `_vacuum_round` tries again shortly
        rather than queueing behind it (a waiting VACUUM would cancel autovacuum, and wait out a
        wraparound one or another node's for as long as they take).
        Index cleanup stays AUTO: on a large table with few dead pages PostgreSQL skips the
        full index scans, so the frequent run stays cheap there.
        """
        notices: list[Any] = []
        try:
            conn = await asyncpg.connect(self.db.dsn, timeout=self.settings.connect_timeout,
                                         statement_cache_size=self.settings.statement_cache_size,
                                         server_settings=VACUUM_SESSION)
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            log.warning("maintenance vacuum: cannot connect: %s", type(exc).__name__)
            return
        conn.add_log_listener(lambda _conn, message: notices.append(message))
        try:
            # Two rounds (VACUUM_ROUNDS): all tables, one wait for older snapshots, all again.
            first: list[str] = []
            for table in tables:
                with contextlib.suppress(asyncpg.UndefinedTableError):  # a partitioned queue deleted meanwhile
                    (first if await self._vacuum_round(conn, table, notices) else report.vacuum_skipped).append(table)
            if first:
                next_xid = await conn.fetchval(NEXT_XID_SQL)
                report.horizon_passed = await self._await_horizon(conn, next_xid)
                if not report.horizon_passed:
                    holder = await conn.fetchrow(HORIZON_HOLDER_SQL, next_xid)
                    log.warning("maintenance vacuum: a transaction older than the first vacuum is still running "
                                "(%s); the index pages it emptied wait for the next pass",
                                dict(holder) if holder else "gone")
            for table in first:
                with contextlib.suppress(asyncpg.UndefinedTableError):
                    done = await self._vacuum_round(conn, table, notices)
                    (report.vacuumed if done else report.vacuum_skipped).append(table)
        except BaseException:
            conn.terminate()
            raise
        await conn.close()

    async def _vacuum_round(self, conn: asyncpg.Connection, table: str, notices: list[Any]) -> bool:
        """One VACUUM of `table`, retried while another vacuum holds it; False if it never got in.

        Giving up at once would leave the other vacuum's work half done for us when it is
        autovacuum's: it runs one round, so the index pages it empties wait for our next pass
        and the indexes must hold one more interval of churn (measured: the first autovacuum of
        the storage benchmark, which we simply skipped, grew the indexes by a third).
        """
        clock = asyncio.get_running_loop().time
        deadline = clock() + min(self.settings.maintenance_interval_seconds / 2, VACUUM_LOCK_WAIT_MAX)
        while True:
            notices.clear()
            await conn.execute(f"VACUUM (SKIP_LOCKED) {table}")  # a name built from constants and an int id
            if not any(getattr(n, "sqlstate", None) == LOCK_NOT_AVAILABLE for n in notices):
                return True
            if clock() >= deadline:
                return False
            await asyncio.sleep(VACUUM_RETRY_SECONDS)

    async def _await_horizon(self, conn: asyncpg.Connection, next_xid: str) -> bool:
        """Wait until no transaction older than `next_xid` runs (see HORIZON_PASSED_SQL), briefly;
        False if one still does."""
        clock = asyncio.get_running_loop().time
        deadline = clock() + min(self.settings.maintenance_interval_seconds / 4, HORIZON_WAIT_MAX)
        while True:
            if await conn.fetchval(HORIZON_PASSED_SQL, next_xid):
                return True
            if clock() >= deadline:
                return False
            await asyncio.sleep(VACUUM_RETRY_SECONDS)

    # ----- partitions --------------------------------------------------------------------
    async def _partitions(self, queue_id: int) -> list[str]:
        rows = await self.db.fetch(
            """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = to_regclass($1)""",
            queue_subtree(queue_id),
        )
        return [r["relname"] for r in rows]

    async def _create_upcoming(self, queue: QueueSchedule, report: PassReport) -> None:
        """Create the current and next `PARTITIONS_AHEAD` time partitions that are missing."""
        assert queue.partition_interval is not None
        existing = set(await self._partitions(queue.id))
        start = partition_start(datetime.now(UTC), queue.partition_interval)
        step = PARTITION_STEP[queue.partition_interval]
        for i in range(self.settings.partitions_ahead + 1):
            name, ddl = time_partition_ddl(queue.id, queue.partition_interval, start + i * step)
            if name in existing:
                continue
            try:
                if not await self._locked_ddl(queue, ddl, report):
                    return
                report.created_partitions.append(name)
            except asyncpg.CheckViolationError:
                # The default partition already holds rows of this range (maintenance was off
                # for longer than PARTITIONS_AHEAD intervals). They stay there, still served
                # and still cleaned by retention; later ranges get their partitions.
                log.warning("maintenance: default partition of %s holds rows for %s", queue.name, name)
            except asyncpg.UndefinedTableError:
                return

    async def _locked_ddl(self, queue: QueueSchedule, ddl: str, report: PassReport) -> bool:
        """Run partition DDL under the queue's maintenance lock and a short lock timeout.

        False (and the queue noted as skipped) when another process holds the job or the table
        is busy; the next pass retries, so no DDL ever queues behind traffic for long.
        """
        try:
            async with self.db.transaction() as tx:
                if not await _try_lock(tx, queue.id):
                    report.skipped.append(queue.name)
                    return False
                await tx.execute(f"SET LOCAL lock_timeout = '{DDL_LOCK_TIMEOUT}'")
                await tx.execute(ddl)
        except RelayError as exc:
            if not lock_timed_out(exc):
                raise
            report.skipped.append(queue.name)
            return False
        return True

    async def _drop_expired(self, queue: QueueSchedule, report: PassReport) -> None:
        """Detach every time partition whose whole range is older than the cut-off."""
        assert queue.partition_interval is not None and queue.cutoff is not None
        step = PARTITION_STEP[queue.partition_interval]
        for name in sorted(await self._partitions(queue.id)):
            match = TIME_PARTITION_RE.match(name)
            if not match or int(match.group(1)) != queue.id:
                continue
            lo = datetime.strptime(match.group(2), "%Y%m%d%H").replace(tzinfo=UTC)
            if lo + step > queue.cutoff:
                continue
            try:
                detach = f"ALTER TABLE {queue_subtree(queue.id)} DETACH PARTITION relay.{name}"
                if not await self._locked_ddl(queue, detach, report):
                    return
            except (asyncpg.UndefinedTableError, asyncpg.InvalidTableDefinitionError):
                continue  # dropped or detached by another process meanwhile

    async def _finish_detached(self, report: PassReport) -> None:
        """Un-count and drop time partitions that were detached (by this or a dead process)."""
        rows = await self.db.fetch(
            """SELECT c.relname FROM pg_class c
            WHERE c.relnamespace = 'relay'::regnamespace AND c.relkind = 'r' AND NOT c.relispartition
              AND c.relname ~ '^messages_p[0-9]+_[0-9]{10}$'"""
        )
        for row in rows:
            name: str = row["relname"]
            match = TIME_PARTITION_RE.match(name)
            assert match is not None
            queue_id = int(match.group(1))
            try:
                async with self.db.transaction() as tx:
                    if not await _try_lock(tx, queue_id):
                        continue
                    await tx.execute(f"SET LOCAL lock_timeout = '{DDL_LOCK_TIMEOUT}'")
                    # Un-count only under the queue row's lock: a delete or rename of the queue in
                    # flight has removed its counters, and an un-count reading the queue before it
                    # committed wrote negative counter rows after it, which a later queue of that
                    # name inherited. Once the lock comes, the un-count sees the queue's fate.
                    await tx.execute("SELECT 1 FROM relay.queues WHERE id = $1 FOR KEY SHARE", queue_id)
                    await tx.execute(UNCOUNT_SQL.format(table=name))
                    await tx.execute(f"DROP TABLE relay.{name}")
                report.dropped_partitions.append(name)
            except asyncpg.UndefinedTableError:
                continue
            except RelayError as exc:
                if not lock_timed_out(exc):
                    raise


def next_slot(scheduled: float, now: float, interval: float) -> float:
    """The first slot of the fixed schedule (`scheduled` + k * `interval`) after `now`.

    A pass that overran its slot is followed at the next free slot, not by catch-up passes.
    """
    if scheduled > now:
        return scheduled
    return scheduled + (math.floor((now - scheduled) / interval) + 1) * interval


def _vacuum_target(queue: QueueSchedule) -> str:
    """The table to vacuum after retention deleted rows of `queue`.

    Its own table: retention only deletes from a partitioned queue's default partition and the
    one that straddles the cut-off, so the parent of every partitioned queue need not be vacuumed.
    """
    return own_table(queue.kind, queue.id)


async def _try_lock(tx: Transaction, queue_id: int) -> bool:
    """This transaction's claim on maintenance of one queue; False if another process has it."""
    locked: Any = await tx.fetchval(
        "SELECT pg_try_advisory_xact_lock($1::int, ($2::bigint % 2147483647)::int)",
        MAINTENANCE_LOCK_CLASS, queue_id,
    )
    return bool(locked)
