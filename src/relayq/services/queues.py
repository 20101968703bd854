"""Queue management: create, read, update, delete, purge, rename, and the name → table cache.

The cache maps a queue name to its id and storage kind. It is only a hint: every hot
statement re-checks (name, id) against `relay.queues` in the same statement, and a mismatch
sends the caller back here for a fresh lookup. So a queue deleted or renamed on another node
takes effect at once, with no cross-node invalidation needed.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from relayq.config import Settings
from relayq.db.database import CUSTOM_PLANS_SQL, Database, Row, Transaction, lock_timed_out
from relayq.db.queries import ANY_STATUS, MESSAGE_TABLES
from relayq.domain.errors import RelayError
from relayq.domain.ids import StorageKind
from relayq.domain.messages import STATUSES, iso_millis
from relayq.services.changes import Change, ChangeHub
from relayq.services.stats import RENAME_SQL as STATS_RENAME_SQL

log = logging.getLogger("relayq.queues")

DEFAULT_QUEUE = "default"
# \Z, not $ (which also matches before a final newline: "q\n" passed, and the table's CHECK
# answered 500); ASCII: \d and \s also match "٧" and U+00A0, which PostgreSQL's interval
# input refuses, so one such retention, stored, failed every maintenance pass for every queue.
QUEUE_NAME_RE = re.compile(r"\A[A-Za-z0-9_-]{1,64}\Z")
RETENTION_RE = re.compile(r"\A\s*(\d+)\s*(hour|hours|day|days|week|weeks|month|months)\s*\Z", re.ASCII)
PARTITION_STEP = {"hourly": timedelta(hours=1), "daily": timedelta(days=1), "weekly": timedelta(weeks=1)}
ADMIN_CONSUMER = "user-manual-operation"
# Storage parameters of every time partition (a partitioned parent takes none); the same
# tuning migrations 0004 and 0006 give the other message tables, explained in docs/scaling.md.
PARTITION_STORAGE = (
    "fillfactor = 80, autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000, "
    "autovacuum_vacuum_insert_scale_factor = 0.05, autovacuum_vacuum_insert_threshold = 10000, "
    "autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_cost_limit = 2000, vacuum_truncate = false"
)

QUEUE_COLUMNS = """q.id, q.name, q.queue_type, q.ack_timeout_seconds, q.max_attempts, q.retry_delay_seconds,
    q.partition_interval, q.retention_interval, q.description,
    extract(epoch FROM q.created_at)::float8 AS created_at, extract(epoch FROM q.updated_at)::float8 AS updated_at"""

# Live counts per queue and status, from the trigger-maintained counters (migration 0003): a
# few hundred rows whatever the number of messages.
COUNTS_SQL = """SELECT queue_name, status, priority, sum(n)::bigint AS n, sum(payload_sum)::bigint AS payload_sum,
        max(payload_max) AS payload_max
    FROM (SELECT * FROM relay.message_counts UNION ALL SELECT * FROM relay.message_counts_unlogged) c
    WHERE ($1::text IS NULL OR queue_name = $1)
    GROUP BY queue_name, status, priority"""


# DDL on a partitioned queue's tables waits at most this long for its lock (then retries, or
# maintenance's next pass does), so no statement queues behind a waiting DROP, DETACH or CREATE
# for longer than this.
DDL_LOCK_TIMEOUT = "500ms"
DROP_ATTEMPTS = 3
# Tables of partitioned queues since deleted whose DROP did not get its lock (drop_subtree).
ORPHANED_SUBTREES_SQL = """SELECT substring(c.relname FROM 11)::bigint AS queue_id
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'relay.messages_partitioned'::regclass AND c.relname ~ '^messages_p[0-9]+$'
      AND NOT EXISTS (SELECT 1 FROM relay.queues q WHERE q.id = substring(c.relname FROM 11)::bigint)"""

# The exclusive side of relay.queue_open's lock (migration 0009; same keys).
QUEUE_LOCK_SQL = "SELECT pg_advisory_xact_lock(1919249521, ($1::bigint % 2147483647)::int)"

# A queue's messages whatever their status (ANY_STATUS: the four partial indexes); `{table}` is
# a MESSAGE_TABLES value. tests/scale/test_query_plans.py checks their plans.
BUSY_SQL = "SELECT count(*) FROM {table} m WHERE m.queue_name = $1 AND (m.status = 'queued' OR m.status = 'processing')"
DELETE_MESSAGES_SQL = (
    "WITH d AS (DELETE FROM {table} m WHERE m.queue_name = $1 AND " + ANY_STATUS + " RETURNING 1) SELECT count(*) FROM d"
)
# Counted in the database: a purge is one summary event and entry (by its count), and returning
# every deleted row held them all in memory (500,000 rows: +200 MB).
PURGE_SQL = (
    "WITH d AS (DELETE FROM {table} m WHERE m.queue_name = $1 AND " + ANY_STATUS
    + " AND ($2::text = 'all' OR m.status = $2) RETURNING 1) SELECT count(*) FROM d"
)
RENAME_MESSAGES_SQL = "UPDATE {table} m SET queue_name = $2 WHERE m.queue_name = $1 AND " + ANY_STATUS
# A renamed queue's activity follows it after the rename has committed, in ranges of log ids
# (the primary key), each its own statement: rewriting 544,000 entries took 10 s, which the
# queue's traffic spent waiting for its lock. Only entries up to the last id at the rename move:
# a new queue given the old name meanwhile keeps its own.
_MOVE_ACTIVITY = """UPDATE relay.activity_log SET queue = $2,
    entry = jsonb_set(entry::jsonb, '{queue}', to_jsonb($2::text))::json
WHERE queue = $1"""
RENAME_ACTIVITY_SQL = _MOVE_ACTIVITY + " AND log_id > $3 AND log_id <= $4"
RENAME_ACTIVITY_STEP = 20_000
# Every server process buffers its activity entries and consumer stats for a moment before it
# writes them: what another process still held for a queue when this one renamed or deleted it
# reached the tables under the old name afterwards (a probe with two servers; the buffers of the
# process that did it are corrected in memory). A sweep this long after the commit moves (or
# deletes) what arrived late, unless a new queue has taken the name meanwhile.
LATE_SWEEP_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class QueueRef:
    """What the hot path needs to address a queue's rows."""

    id: int
    name: str
    kind: StorageKind


# The longest retention, per unit: 100 years. Larger values would be stored, and then make the
# maintenance pass's cut-off (now() - interval) fail for every queue at once.
RETENTION_MAX = {"hour": 876_000, "day": 36_500, "week": 5_200, "month": 1_200}


def retention_to_interval(value: str) -> str:
    """Validate `"<n> <unit>"` and return it normalised as a PostgreSQL interval literal."""
    match = RETENTION_RE.match(value)
    if not match or int(match.group(1)) <= 0:
        raise RelayError(
            400, "VALIDATION_ERROR",
            "retention_interval must look like '7 days' (units: hours, days, weeks, months)",
            details=[{"field": "retention_interval", "message": "invalid interval"}],
        )
    count, unit = int(match.group(1)), match.group(2).rstrip("s")
    if count > RETENTION_MAX[unit]:
        raise RelayError(
            400, "VALIDATION_ERROR", "retention_interval must be at most 100 years",
            details=[{"field": "retention_interval", "message": f"must be at most {RETENTION_MAX[unit]} {unit}s"}],
        )
    return f"{count} {unit}" + ("" if count == 1 else "s")


class QueueService:
    """Queue CRUD and the name → (id, table) cache used by every message operation."""

    def __init__(self, db: Database, settings: Settings, hub: ChangeHub) -> None:
        self.db = db
        self.settings = settings
        self.hub = hub
        self._refs: dict[str, QueueRef] = {}
        self.late_sweep_seconds = LATE_SWEEP_SECONDS
        self._sweeps: set[asyncio.Task[None]] = set()

    # ----- the cache -------------------------------------------------------------------
    async def resolve(self, name: str, *, refresh: bool = False) -> QueueRef:
        """The queue's id and table; 404 QUEUE_NOT_FOUND if it does not exist."""
        ref = None if refresh else self._refs.get(name)
        if ref is not None:
            return ref
        row = await self.db.fetchrow("SELECT id, queue_type FROM relay.queues WHERE name = $1", name)
        if row is None:
            self._refs.pop(name, None)
            raise RelayError(404, "QUEUE_NOT_FOUND", f"Queue not found: {name}")
        ref = QueueRef(row["id"], name, row["queue_type"])
        self._refs[name] = ref
        return ref

    def forget(self, name: str) -> None:
        """Drop a cached entry (after delete or rename on this node)."""
        self._refs.pop(name, None)

    def _sweep_later(self, old: str, new: str | None) -> None:
        """Start the sweep of what other processes write under `old` late (see LATE_SWEEP_SECONDS)."""
        task = asyncio.get_running_loop().create_task(self._sweep(old, new))
        self._sweeps.add(task)
        task.add_done_callback(self._sweeps.discard)

    async def _sweep(self, old: str, new: str | None) -> None:
        await asyncio.sleep(self.late_sweep_seconds)
        try:
            async with self.db.transaction() as tx:
                if await tx.fetchval("SELECT 1 FROM relay.queues WHERE name = $1", old):
                    return  # a new queue has the name: what arrived may be its own
                if new is None:
                    await forget_queue_history(tx, old)
                else:
                    await tx.execute(_MOVE_ACTIVITY, old, new)  # its counters follow (trigger)
                    await tx.execute("DELETE FROM relay.activity_counts WHERE queue = $1", old)  # all zero now
                    await tx.execute(STATS_RENAME_SQL, old, new)
        except Exception as exc:  # what arrived late stays under the old name
            log.warning("late sweep of queue %s failed: %s", old, exc)

    async def close(self) -> None:
        """Cancel the sweeps still waiting (shutdown): a best effort, like the buffers they mend."""
        for task in list(self._sweeps):
            task.cancel()
        await asyncio.gather(*self._sweeps, return_exceptions=True)

    # ----- reads -------------------------------------------------------------------------
    async def ensure_default(self) -> None:
        """Create the `default` queue if it is missing (idempotent, safe across processes)."""
        await self.db.execute(
            """INSERT INTO relay.queues (name, ack_timeout_seconds, max_attempts) VALUES ($1, $2, $3)
            ON CONFLICT (name) DO NOTHING""",
            DEFAULT_QUEUE, self.settings.ack_timeout_seconds, self.settings.max_attempts,
        )

    async def counts(self, name: str | None = None) -> dict[str, dict[str, int]]:
        """{queue: {status: count}} for every queue (or one)."""
        result: dict[str, dict[str, int]] = {}
        for row in await self.count_rows(name):
            per = result.setdefault(row["queue_name"], dict.fromkeys(STATUSES, 0))
            per[row["status"]] += row["n"]
        return result

    async def count_rows(self, name: str | None = None) -> list[Row]:
        """Counter rows per (queue, status, priority): n, payload_sum, payload_max."""
        return [r for r in await self.db.fetch(COUNTS_SQL, name) if r["n"]]

    async def list(self) -> list[dict[str, Any]]:
        """Every queue with its live counts, oldest first."""
        rows = await self.db.fetch(f"SELECT {QUEUE_COLUMNS} FROM relay.queues q ORDER BY q.created_at, q.id")
        counts = await self.counts()
        return [queue_to_wire(r, counts.get(r["name"])) for r in rows]

    async def get(self, name: str) -> dict[str, Any]:
        """One queue with its counts; 404 with the original's message text."""
        row = await self.db.fetchrow(f"SELECT {QUEUE_COLUMNS} FROM relay.queues q WHERE q.name = $1", name)
        if row is None:
            raise RelayError(404, "QUEUE_NOT_FOUND", f"Queue '{name}' not found")
        counts = await self.counts(name)
        return queue_to_wire(row, counts.get(name))

    # ----- writes ------------------------------------------------------------------------
    async def create(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Create a queue (and its partitions when partitioned); 409 if the name is taken."""
        retention = spec.get("retention_interval")
        if spec["queue_type"] == "partitioned":
            if not spec.get("partition_interval") or not retention:
                raise RelayError(
                    400, "VALIDATION_ERROR", "Partitioned queues require partition_interval and retention_interval"
                )
        # Only partitioned queues have partitions; shown on another queue, the interval said it had.
        partition_interval = spec.get("partition_interval") if spec["queue_type"] == "partitioned" else None
        if retention is not None:  # "" too: stored, it would fail every maintenance pass
            retention = retention_to_interval(retention)  # stored as checked, not as typed
        async with self.db.transaction() as tx:
            row = await tx.fetchrow(
                f"""INSERT INTO relay.queues AS q (name, queue_type, ack_timeout_seconds, max_attempts,
                        retry_delay_seconds, partition_interval, retention_interval, description)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (name) DO NOTHING RETURNING {QUEUE_COLUMNS}""",
                spec["name"], spec["queue_type"],
                spec.get("ack_timeout_seconds") or self.settings.ack_timeout_seconds,
                spec.get("max_attempts") or self.settings.max_attempts,
                spec.get("retry_delay_seconds") or 0,
                partition_interval, retention, spec.get("description"),
            )
            if row is None:
                raise RelayError(409, "QUEUE_EXISTS", "Queue already exists")
            if spec["queue_type"] == "partitioned":
                await create_queue_partitions(tx, row["id"], spec["partition_interval"])
        self._refs[spec["name"]] = QueueRef(row["id"], spec["name"], spec["queue_type"])
        self.hub.publish(Change("create_queue", spec["name"], consumer_id=ADMIN_CONSUMER,
                                context={"queue_type": spec["queue_type"]}))
        return queue_to_wire(row, None)

    async def update(self, name: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change ack timeout, max attempts, retry delay or description; applies to new messages."""
        sets: list[str] = []
        args: list[Any] = [name]
        for column in ("ack_timeout_seconds", "max_attempts", "retry_delay_seconds", "description"):
            if column in changes:
                args.append(changes[column])
                sets.append(f"{column} = ${len(args)}")
        if not sets:
            return await self.get(name)
        row = await self.db.fetchrow(
            f"UPDATE relay.queues q SET {', '.join(sets)}, updated_at = now() WHERE q.name = $1 RETURNING {QUEUE_COLUMNS}",
            *args,
        )
        if row is None:
            raise RelayError(404, "QUEUE_NOT_FOUND", f"Queue '{name}' not found")
        self.hub.publish(Change("update_queue", name, consumer_id=ADMIN_CONSUMER, context=dict(changes)))
        counts = await self.counts(name)
        return queue_to_wire(row, counts.get(name))

    async def delete(self, name: str, force: bool) -> int:
        """Delete a queue, its messages, activity and stats; refuses a busy queue unless forced."""
        if name == DEFAULT_QUEUE:
            raise RelayError(400, "DEFAULT_QUEUE_PROTECTED", "The default queue cannot be deleted")

        async def transaction(tx: Transaction) -> tuple[int, str, int]:
            await tx.execute(CUSTOM_PLANS_SQL)  # a generic plan of the queue-wide statements may read the table
            row = await _lock_queue(tx, name)
            table = MESSAGE_TABLES[row["queue_type"]]
            if not force:
                busy = await tx.fetchval(BUSY_SQL.format(table=table), name)
                if busy:
                    raise RelayError(400, "QUEUE_NOT_EMPTY", f"Queue has {busy} messages. Use force=true to delete.")
            await forget_queue_history(tx, name)
            if row["queue_type"] == "partitioned":
                # Emptied whole, late in the transaction, then dropped after the commit
                # (drop_subtree). A DROP here locked the parent of every partitioned queue until
                # commit, behind any statement on any of them, and deadlocked with an enqueue or
                # ack of this queue that already held its share of the parent; TRUNCATE locks
                # this queue's own tables only (which the reaper and promoter of every
                # partitioned queue also read, hence last). It fires no DELETE trigger: the count
                # comes from the counters, read once it holds its lock (every writer done).
                await tx.execute(f"TRUNCATE {queue_subtree(row['id'])}")
                deleted = int(await tx.fetchval(
                    "SELECT coalesce(sum(n), 0) FROM relay.message_counts WHERE queue_name = $1", name))
            else:
                deleted = int(await tx.fetchval(DELETE_MESSAGES_SQL.format(table=table), name))
            await forget_queue_bookkeeping(tx, name)
            await tx.execute("DELETE FROM relay.queues WHERE name = $1", name)
            return deleted, row["queue_type"], row["id"]

        # The delete locks every row of the queue in its own order while workers lock a few in
        # theirs (a batch ack, a lease taken): a deadlock rolls the whole transaction back, and
        # it runs again rather than answering 500. Bulk: its time grows with the queue.
        deleted, kind, queue_id = await self.db.run_in_transaction(transaction, bulk="write")
        self.forget(name)
        self._sweep_later(name, None)
        if kind == "partitioned":
            for attempt in range(DROP_ATTEMPTS):  # else the next maintenance pass drops it
                if attempt:
                    await asyncio.sleep(0.1)
                if await drop_subtree(self.db, queue_id):
                    break
        self.hub.publish(Change("delete_queue", name, consumer_id=ADMIN_CONSUMER,
                                context={"deleted_messages": deleted, "force": force}))
        return int(deleted)

    async def purge(self, name: str, status: str) -> int:
        """Delete the queue's messages in one status (or all); the queue stays."""
        ref = await self.resolve(name, refresh=True)
        table = MESSAGE_TABLES[ref.kind]

        async def transaction(tx: Transaction) -> int:
            await tx.execute(CUSTOM_PLANS_SQL)  # `$2 = 'all' OR ...`: the generic plan reads the table
            return int(await tx.fetchval(PURGE_SQL.format(table=table), name, status))

        deleted = await self.db.run_in_transaction(transaction, bulk="write")
        if status == "all":
            await self.db.execute("DELETE FROM relay.message_types WHERE queue_name = $1", name)
        await self.hub.publish_durable(Change(
            "purge_queue", name, consumer_id=ADMIN_CONSUMER,
            batch_size=deleted, context={"status": status, "deleted_count": deleted},
        ))
        return deleted

    async def rename(self, name: str, new_name: str) -> dict[str, Any]:
        """Rename a queue; its messages, activity and stats follow it.

        Messages and stats move with the queue, under its lock; the activity log follows right
        after the commit (RENAME_ACTIVITY_SQL), before the reply, without holding the lock.
        """
        if name == DEFAULT_QUEUE:
            raise RelayError(400, "DEFAULT_QUEUE_PROTECTED", "The default queue cannot be renamed")

        async def transaction(tx: Transaction) -> tuple[Row, int, int]:
            await tx.execute(CUSTOM_PLANS_SQL)  # as for delete
            row = await _lock_queue(tx, name)
            exists = RelayError(409, "QUEUE_EXISTS", f'Queue with name "{new_name}" already exists')
            taken = await tx.fetchval("SELECT 1 FROM relay.queues WHERE name = $1", new_name)
            if taken or new_name == name:
                raise exists
            try:
                updated = await tx.fetchrow(
                    f"UPDATE relay.queues q SET name = $2, updated_at = now() WHERE q.name = $1 RETURNING {QUEUE_COLUMNS}",
                    name, new_name,
                )
            except asyncpg.UniqueViolationError:  # another rename or a create took the name meanwhile
                raise exists from None
            await tx.execute(RENAME_MESSAGES_SQL.format(table=MESSAGE_TABLES[row["queue_type"]]), name, new_name)
            await tx.execute(STATS_RENAME_SQL, name, new_name)  # added to any rows the new name has
            await forget_queue_bookkeeping(tx, name)  # the UPDATE above re-counted the rows under new_name
            assert updated is not None  # the queue's row is locked by this transaction
            ids = await tx.fetchrow(
                "SELECT coalesce(min(log_id), 0) - 1 AS lo, coalesce(max(log_id), 0) AS hi FROM relay.activity_log")
            assert ids is not None  # an aggregate always has its row
            return updated, ids["lo"], ids["hi"]

        # deadlocks with workers, and bulk: as for delete
        updated, lo, hi = await self.db.run_in_transaction(transaction, bulk="write")
        self.forget(name)
        self._sweep_later(name, new_name)
        for start in range(lo, hi, RENAME_ACTIVITY_STEP):
            await self.db.execute(RENAME_ACTIVITY_SQL, name, new_name, start, min(start + RENAME_ACTIVITY_STEP, hi))
        self.hub.publish(Change("rename_queue", new_name, consumer_id=ADMIN_CONSUMER,
                                context={"old_name": name, "new_name": new_name}))
        counts = await self.counts(new_name)
        return queue_to_wire(updated, counts.get(new_name))


async def _lock_queue(tx: Transaction, name: str) -> Row:
    """Lock a queue for delete/rename until commit: the exclusive side of the advisory lock that
    every enqueue statement holds shared (relay.queue_open, migration 0009) waits for the ones in
    flight; later ones wait, then find the queue gone or renamed."""
    row = await tx.fetchrow("SELECT id, queue_type FROM relay.queues WHERE name = $1 FOR UPDATE", name)
    if row is None:
        raise RelayError(404, "QUEUE_NOT_FOUND", f"Queue not found: {name}")
    await tx.execute(QUEUE_LOCK_SQL, row["id"])
    return row


async def forget_queue_history(tx: Transaction, name: str) -> None:
    """Delete a queue's activity entries (its counters are all zero then) and consumer stats."""
    await tx.execute("DELETE FROM relay.activity_log WHERE queue = $1", name)
    await tx.execute("DELETE FROM relay.activity_counts WHERE queue = $1", name)
    await tx.execute("DELETE FROM relay.consumer_stats WHERE queue = $1", name)


async def forget_queue_bookkeeping(tx: Transaction, name: str) -> None:
    """Drop a queue's counter and type rows once its messages are gone or renamed away.

    Dropping a partitioned queue's tables fires no DELETE trigger, so the counters are removed
    here rather than decremented.
    """
    for table in ("relay.message_counts", "relay.message_counts_unlogged", "relay.message_types"):
        await tx.execute(f"DELETE FROM {table} WHERE queue_name = $1", name)


async def drop_subtree(db: Database, queue_id: int) -> bool:
    """Drop a deleted partitioned queue's (empty) table; False if its lock did not come within
    DDL_LOCK_TIMEOUT. A DROP locks the parent of every partitioned queue: waiting longer would
    hold all of their statements queued behind it."""
    try:
        async with db.transaction() as tx:
            await tx.execute(f"SET LOCAL lock_timeout = '{DDL_LOCK_TIMEOUT}'")
            await tx.execute(f"DROP TABLE IF EXISTS {queue_subtree(queue_id)}")
    except Exception as exc:  # the queue is deleted already: the next maintenance pass retries
        if not lock_timed_out(exc):
            log.warning("could not drop %s: %s", queue_subtree(queue_id), exc)
        return False
    return True


def queue_subtree(queue_id: int) -> str:
    """A partitioned queue's own table, `relay.messages_p<id>`: the LIST partition of
    relay.messages_partitioned that holds its time partitions (named from the numeric id only)."""
    return f"relay.messages_p{int(queue_id)}"


def own_table(kind: str, queue_id: int) -> str:
    """The narrowest table holding one queue's rows: a partitioned queue's own subtree, not the
    parent of every partitioned queue; for the other kinds, their shared table."""
    if kind == "partitioned":
        return queue_subtree(queue_id)
    return MESSAGE_TABLES[kind]  # type: ignore[index]


async def create_queue_partitions(tx: Transaction, queue_id: int, interval: str, ahead: int = 3) -> None:
    """Create the queue's subtree: a RANGE-partitioned child, a default partition, and time
    partitions from the current interval through `ahead` intervals ahead.

    Names derive from the numeric queue id and the bounds only, never from user input.
    """
    parent = queue_subtree(queue_id)
    await tx.execute(
        f"CREATE TABLE IF NOT EXISTS {parent} PARTITION OF relay.messages_partitioned "
        f"FOR VALUES IN ({int(queue_id)}) PARTITION BY RANGE (created_at)"
    )
    await tx.execute(f"CREATE TABLE IF NOT EXISTS {parent}_default PARTITION OF {parent} DEFAULT WITH ({PARTITION_STORAGE})")
    await ensure_time_partitions(tx, queue_id, interval, ahead)


def partition_start(moment: datetime, interval: str) -> datetime:
    """The start of the partition interval containing `moment` (UTC)."""
    base = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if interval == "hourly":
        return base
    base = base.replace(hour=0)
    if interval == "daily":
        return base
    return base - timedelta(days=base.weekday())


async def ensure_time_partitions(tx: Transaction, queue_id: int, interval: str, ahead: int = 3) -> None:
    """Create missing time partitions for now and the next `ahead` intervals."""
    start = partition_start(datetime.now(UTC), interval)
    for i in range(ahead + 1):
        _, ddl = time_partition_ddl(queue_id, interval, start + i * PARTITION_STEP[interval])
        await tx.execute(ddl)


def time_partition_name(queue_id: int, lo: datetime) -> str:
    """Table name (without schema) of the queue's time partition starting at `lo` (UTC)."""
    return f"messages_p{int(queue_id)}_{lo.astimezone(UTC).strftime('%Y%m%d%H')}"


def time_partition_ddl(queue_id: int, interval: str, lo: datetime) -> tuple[str, str]:
    """(table name, CREATE statement) of the time partition [lo, lo + interval)."""
    lo = lo.astimezone(UTC)
    hi = lo + PARTITION_STEP[interval]
    name = time_partition_name(queue_id, lo)
    return name, (
        f"CREATE TABLE IF NOT EXISTS relay.{name} PARTITION OF {queue_subtree(queue_id)} "
        f"FOR VALUES FROM ('{lo.isoformat()}') TO ('{hi.isoformat()}') WITH ({PARTITION_STORAGE})"
    )


def queue_to_wire(row: Any, counts: dict[str, int] | None) -> dict[str, Any]:
    """The API's Queue object (API.md §2.2)."""
    counts = counts or {}
    return {
        "name": row["name"],
        "queue_type": row["queue_type"],
        "ack_timeout_seconds": row["ack_timeout_seconds"],
        "max_attempts": row["max_attempts"],
        "retry_delay_seconds": row["retry_delay_seconds"],
        "partition_interval": row["partition_interval"],
        "retention_interval": row["retention_interval"],
        "description": row["description"],
        "created_at": iso_millis(row["created_at"]),
        "updated_at": iso_millis(row["updated_at"]),
        "message_count": counts.get("queued", 0),
        "processing_count": counts.get("processing", 0),
        "dead_count": counts.get("dead", 0),
        # (new) so a dashboard needs one request for every status of every queue
        "acknowledged_count": counts.get("acknowledged", 0),
        "archived_count": counts.get("archived", 0),
    }
