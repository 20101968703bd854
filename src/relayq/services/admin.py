"""Dashboard and admin operations (API.md §4–5): listings, status, metrics, moves, edits, deletes.

These read across the three message tables. Identifiers (table names, sort columns) come from
whitelists; every value is a bind parameter.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from relayq.db.database import CUSTOM_PLANS_SQL, Bulk, Database, Transaction
from relayq.db.queries import ANY_STATUS, EVENT_COLUMNS, MESSAGE_TABLES, queue_filter
from relayq.domain.errors import RelayError
from relayq.domain.ids import StorageKind, queue_ids_of, storage_of
from relayq.domain.messages import MESSAGE_COLUMNS, STATUSES
from relayq.services.changes import Change, ChangeHub, grouped_changes
from relayq.services.queues import ADMIN_CONSUMER, QueueService, own_table, queue_subtree

# Column list shared by the three tables, in one order, so their rows can be UNIONed.
ROW_COLUMNS = (
    "id, seq, queue_id, queue_name, type, payload, priority, status, attempt_count, max_attempts, "
    "ack_timeout_seconds, lock_token, locked_until, consumer_id, created_at, available_at, dequeued_at, "
    "acknowledged_at, last_error, payload_size"
)

SORT_COLUMNS: dict[str, str] = {
    name: f"m.{name}"
    for name in (
        "id", "type", "priority", "status", "attempt_count", "max_attempts", "created_at", "dequeued_at",
        "acknowledged_at", "locked_until", "consumer_id", "last_error", "payload_size", "queue_name",
        "available_at",
    )
}
SORT_COLUMNS["payload"] = "m.payload::text"
SORT_COLUMNS["error_message"] = "m.last_error"
# Sort columns that can be NULL (schema.sql), the only ones _listing_order puts last explicitly.
NULLABLE_SORTS = frozenset({"type", "payload", "dequeued_at", "acknowledged_at", "locked_until", "consumer_id",
                            "last_error", "error_message"})
# A listing reads a page from each queue and index range only when there are more matches than
# this many per part; fewer are cheaper to sort than to probe for (page_sql).
SORT_ROWS_PER_PART = 50

# Status lists of GET /queue/status and their order (API.md §4).
STATUS_ORDER: dict[str, str] = {
    "queued": "m.priority DESC, m.created_at, m.seq",
    "processing": "m.dequeued_at DESC NULLS LAST",
    "dead": "m.created_at DESC",
    "archived": "m.created_at DESC",
    "acknowledged": "m.acknowledged_at DESC NULLS LAST",
}
# The dequeue index keeps a queue's due and delayed messages in two ranges (migration 0015),
# each in the queued list's order: read as two parts, merged, rather than sorting the backlog.
STATUS_RANGES: dict[str, tuple[str, ...]] = {"queued": (" AND NOT m.delayed", " AND m.delayed")}
# Within one (delayed, priority) range the dequeue index is in creation order: a queued listing
# by creation time (the API's default sort) reads those 20 ranges and merges them.
CREATED_RANGES = tuple(f"{r} AND m.priority = {p}" for r in STATUS_RANGES["queued"] for p in range(10))

# The listings read every partition of the partitioned table (its partition key is the queue id,
# which they do not filter on), and JIT compiles each partition's expressions before running:
# with 150 partitioned queues (750 time partitions) GET /queue/main/messages spent 11 s
# compiling to run 0.6 s, GET /queue/status 5 s. Off per transaction (SET LOCAL): a startup
# parameter is refused by pgbouncer, and the pool keeps no session settings.
NO_JIT_SQL = "SET LOCAL jit = off"


@dataclass(slots=True)
class MessageFilter:
    """Filters of the listing, export and by-time endpoints; None means "any"."""

    status: str | None = None
    queue: str | None = None
    types: Sequence[str] | None = None
    priority: int | None = None
    min_attempts: int | None = None
    created_from: float | None = None
    created_to: float | None = None
    search: str | None = None

    def args(self) -> list[Any]:
        """Bind values in the order `WHERE_SQL` uses them ($1..$8)."""
        pattern = None
        if self.search:
            escaped = self.search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            pattern = f"%{escaped}%"
        return [self.status, self.queue, list(self.types) if self.types else None, self.priority,
                self.min_attempts, self.created_from, self.created_to, pattern]

    def counted(self) -> bool:
        """Whether the counters hold this filter's exact count: nothing beyond status and queue."""
        return (self.types is None and self.priority is None and self.min_attempts is None
                and self.created_from is None and self.created_to is None and not self.search)


WHERE_SQL = f"""($1::text IS NULL OR m.status = $1)
    AND ($2::text IS NULL OR m.queue_name = $2) AND {ANY_STATUS}
    AND ($3::text[] IS NULL OR m.type = ANY($3))
    AND ($4::int IS NULL OR m.priority = $4)
    AND ($5::int IS NULL OR m.attempt_count >= $5)
    AND ($6::float8 IS NULL OR m.created_at >= to_timestamp($6))
    AND ($7::float8 IS NULL OR m.created_at <= to_timestamp($7))
    AND ($8::text IS NULL OR m.id ILIKE $8 OR m.payload::text ILIKE $8)"""


# POST /queue/move, per table (`{table}`, `{queue_filter}`: queries.queue_filter of $6): $1 ids,
# $2 from, $3 to, $4 reason, $5 the admin consumer, $6 the ids' queue ids (partitioned).
MOVE_SQL = """UPDATE {table} m SET
    status = $3,
    lock_token = CASE WHEN $3 = 'processing' THEN replace(gen_random_uuid()::text, '-', '') END,
    locked_until = CASE WHEN $3 = 'processing'
        THEN now() + make_interval(secs => m.ack_timeout_seconds) END,
    consumer_id = CASE WHEN $3 = 'processing' THEN $5
                       WHEN $3 = 'queued' THEN NULL ELSE m.consumer_id END,
    dequeued_at = CASE WHEN $3 = 'processing' THEN now() WHEN $3 = 'queued' THEN NULL
                       ELSE m.dequeued_at END,
    attempt_count = m.attempt_count + CASE WHEN $3 = 'processing' THEN 1 ELSE 0 END,
    acknowledged_at = CASE WHEN $3 = 'acknowledged' THEN now()
                           WHEN $3 IN ('queued', 'processing') THEN NULL ELSE m.acknowledged_at END,
    available_at = CASE WHEN $3 = 'queued' THEN least(m.available_at, now()) ELSE m.available_at END,
    delayed = false,
    last_error = coalesce($4, m.last_error)
WHERE m.id = ANY($1::text[]) {queue_filter} AND (m.status = $2) IS TRUE  -- by id: see the ack (queries.sql)
RETURNING """ + EVENT_COLUMNS

# DELETE /queue/message/{id} and POST /queue/messages/delete: $1 ids, $2 their queue ids.
DELETE_BY_IDS_SQL = "DELETE FROM {table} m WHERE m.id = ANY($1::text[]) {queue_filter} RETURNING " + EVENT_COLUMNS


class AdminService:
    """Reads and admin writes over every queue and queue type."""

    def __init__(self, db: Database, queues: QueueService, hub: ChangeHub) -> None:
        self.db = db
        self.queues = queues
        self.hub = hub

    async def _tables(self, queue: str | None, *, reading: bool = False) -> list[str]:
        """The tables that can hold `queue`'s messages (all three when no queue is named).

        With `reading`, a partitioned queue's own subtree (`relay.messages_p<id>`) rather than the
        parent: the parent is partitioned by queue id, and reads filter by name, so through it
        every partition of every partitioned queue was planned and read (about 1 s for one
        queue's page with 150 partitioned queues). Writes keep the parent, whose statement
        triggers keep the counts.
        """
        if queue is None:
            return list(MESSAGE_TABLES.values())
        try:
            ref = await self.queues.resolve(queue, refresh=True)
        except RelayError:
            return []
        return [own_table(ref.kind, ref.id) if reading else MESSAGE_TABLES[ref.kind]]

    @contextlib.asynccontextmanager
    async def _reader(self, *, bulk: Bulk | None = None) -> AsyncIterator[Transaction]:
        """A transaction whose statements are planned without JIT (NO_JIT_SQL), each with its
        values (CUSTOM_PLANS_SQL); `bulk` for an export (Database.transaction)."""
        async with self.db.transaction(bulk=bulk) as tx:
            await tx.execute(NO_JIT_SQL)
            await tx.execute(CUSTOM_PLANS_SQL)
            yield tx

    async def _source(self, queue: str | None) -> str | None:
        """A FROM source aliased `m` over the relevant tables, filtered by WHERE_SQL."""
        tables = await self._tables(queue, reading=True)
        return _union(tables) if tables else None

    async def page(
        self, flt: MessageFilter, sort: str, order: str, limit: int, offset: int, bound: int | None = None
    ) -> tuple[list[Mapping[str, Any]], int, bool]:
        """One listing page, the match count, and whether that count is exact (the queue resolved
        and the counters read once for both).

        On the last page the count is known: a search that matches little has just read the
        whole table to fill the page, and need not read it again. Otherwise it comes from the
        counters when only status and queue filter (never count(*) over a backlog per request);
        other filters count the matches, all of them unless `bound` is given (the dashboard asks
        for 10,000), and then a larger count is reported as `bound`.
        """
        tables = await self._tables(flt.queue, reading=True)
        if not tables:
            return [], 0, True
        spread = await self._spread(flt.queue, flt.status)
        rows = await self._page_rows(tables, flt, sort, order, limit, offset, spread)
        if len(rows) < limit and (rows or not offset):
            return rows, offset + len(rows), True
        if flt.status is not None and flt.counted():
            return rows, spread.matches, True
        try:
            async with self._reader() as tx:
                found: int = await tx.fetchval(
                    f"SELECT count(*) FROM (SELECT 1 FROM {_union(tables)} LIMIT $9) c", *flt.args(),
                    None if bound is None else bound + 1)
        except asyncpg.UndefinedTableError:
            return rows, 0, True
        if bound is not None and found > bound:
            return rows, bound, False
        return rows, found, True

    async def list_messages(
        self, flt: MessageFilter, sort: str, order: str, limit: int, offset: int
    ) -> list[Mapping[str, Any]]:
        """One page of messages, without a count (GET /queue/messages)."""
        tables = await self._tables(flt.queue, reading=True)
        if not tables:
            return []
        return await self._page_rows(tables, flt, sort, order, limit, offset,
                                     await self._spread(flt.queue, flt.status))

    async def _page_rows(self, tables: list[str], flt: MessageFilter, sort: str, order: str, limit: int,
                         offset: int, spread: Spread) -> list[Mapping[str, Any]]:
        """The rows of one page (page_sql): in an order an index keeps, the dashboard tabs' default
        ones, 1-2 ms at a million messages, where sorting every match took 0.6-0.8 s."""
        sql, extra = page_sql(tables, flt, sort, order, spread)
        try:
            async with self._reader() as tx:
                return await tx.fetch(sql, *flt.args(), limit, offset, *extra)
        except asyncpg.UndefinedTableError:  # a partitioned queue deleted since it was resolved
            return []

    async def _spread(self, queue: str | None, status: str | None) -> Spread:
        """Where `status`'s messages are (of `queue`, or every queue), from the counters."""
        return Spread.of(await self.queues.count_rows(queue), status)

    async def iter_messages(
        self, flt: MessageFilter, sort: str, order: str, chunk: int = 1000
    ) -> AsyncGenerator[Sequence[Mapping[str, Any]], None]:
        """Every matching message, `chunk` rows at a time, from a cursor in one read transaction
        (one snapshot): an export of a million messages no longer sits in memory at once."""
        source = await self._source(flt.queue)
        if source is None:
            return
        order_by = _listing_order(sort, order)
        async with self._reader(bulk="read") as tx:
            try:
                cursor = await tx.conn.cursor(f"SELECT {MESSAGE_COLUMNS} FROM {source} ORDER BY {order_by}",
                                              *flt.args(), timeout=tx.timeout)
            except asyncpg.UndefinedTableError:  # a partitioned queue deleted since it was resolved
                return
            while rows := await cursor.fetch(chunk, timeout=tx.timeout):
                yield rows

    async def status(self, queue: str | None, include_messages: bool) -> dict[str, Any]:
        """Counts per status and priority, types, and (optionally) the first 1000 of each list."""
        counts = dict.fromkeys(STATUSES, 0)
        priorities = {str(p): 0 for p in range(10)}
        holding: dict[str, dict[str, None]] = {s: {} for s in STATUSES}  # queues per status, ordered sets
        for row in await self.queues.count_rows(queue):
            counts[row["status"]] += row["n"]
            holding[row["status"]][row["queue_name"]] = None
            if row["status"] == "queued":
                priorities[str(row["priority"])] += row["n"]
        types = [r["type"] for r in await self.db.fetch(
            "SELECT DISTINCT type FROM relay.message_types WHERE $1::text IS NULL OR queue_name = $1 ORDER BY 1",
            queue)]
        lists: dict[str, list[Mapping[str, Any]]] = {s: [] for s in STATUSES}
        tables = await self._tables(queue, reading=True) if include_messages else []
        wanted = [status for status in STATUSES if counts[status]] if tables else []
        if wanted:
            with contextlib.suppress(asyncpg.UndefinedTableError):  # a partitioned queue deleted meanwhile
                await self._top_lists(tables, queue, {s: tuple(holding[s]) for s in wanted}, lists)
        return {"counts": counts, "priorities": priorities, "types": types, "lists": lists}

    async def _top_lists(self, tables: list[str], queue: str | None, wanted: dict[str, tuple[str, ...]],
                         lists: dict[str, list[Mapping[str, Any]]]) -> None:
        """The first 1000 messages of each status in `wanted` (with the queues holding some)."""
        async with self._reader() as tx:
            for status, holding in wanted.items():
                # Across queues, the queued, acknowledged, dead and archived lists read the top
                # 1000 of each queue holding some through the per-queue indexes; the processing
                # one reads the lease index, which has no queue column, once.
                per_queue = queue is None and status != "processing"
                source = _union(tables, top=STATUS_ORDER[status], per_queue=per_queue, queues="$9",
                                ranges=STATUS_RANGES.get(status, ("",)))
                lists[status] = await tx.fetch(
                    f"SELECT {MESSAGE_COLUMNS} FROM {source} ORDER BY {STATUS_ORDER[status]} LIMIT 1000",
                    *MessageFilter(status=status, queue=queue).args(), *([list(holding)] if per_queue else []),
                )

    async def metrics(self, queue: str | None) -> dict[str, Any]:
        """Counts per status plus average and largest payload size (from the counters)."""
        counts = dict.fromkeys(STATUSES, 0)
        total = size_sum = biggest = 0
        for row in await self.queues.count_rows(queue):
            counts[row["status"]] += row["n"]
            total += row["n"]
            size_sum += row["payload_sum"]
            biggest = max(biggest, row["payload_max"] or 0)
        avg = round(size_sum / total, 2) if total else 0.0
        return {"counts": counts, "avg_payload_size": float(avg), "max_payload_size": int(biggest)}

    # ----- writes ------------------------------------------------------------------------
    async def move(self, ids: Sequence[str], from_status: str, to_status: str, reason: str | None) -> int:
        """Move messages currently in `from_status` to `to_status` (API.md §5, POST /queue/move).

        A message moved back to work (queued or processing) loses its `acknowledged_at`, as it
        loses its lease when queued: it is no longer done, and showing when it last was would
        read as a finished message. Archived and dead keep it, as history.
        """
        moved: list[Mapping[str, Any]] = []
        for kind, kind_ids in _group_ids(ids).items():
            rows = await self.db.fetch(
                MOVE_SQL.format(table=MESSAGE_TABLES[kind], queue_filter=queue_filter(kind, 6)),
                kind_ids, from_status, to_status, reason, ADMIN_CONSUMER, queue_ids_of(kind_ids),
            )
            moved.extend(rows)
        self.hub.publish_many(grouped_changes(moved, "move", at=time.time(), consumer_id=ADMIN_CONSUMER,
                                              from_status=from_status, to_status=to_status, batch_size=len(ids),
                                              error_reason=reason))
        return len(moved)

    async def delete(self, ids: Sequence[str], *, bulk: bool) -> int:
        """Delete messages whatever their status; the activity entry is written before returning."""
        deleted: list[Mapping[str, Any]] = []
        for kind, kind_ids in _group_ids(ids).items():
            deleted.extend(await self.db.fetch(
                DELETE_BY_IDS_SQL.format(table=MESSAGE_TABLES[kind], queue_filter=queue_filter(kind, 2)),
                kind_ids, queue_ids_of(kind_ids),
            ))
        await self.hub.publish_durable_many(grouped_changes(  # one insert for every queue's entries
            deleted, "bulk_delete" if bulk else "delete", at=time.time(), consumer_id=ADMIN_CONSUMER,
            batch_size=len(ids) if bulk else None))
        return len(deleted)

    async def edit(self, message_id: str, changes: dict[str, Any]) -> Mapping[str, Any]:
        """Change type, payload, priority or ack timeout of a message that is not leased."""
        where = storage_of(message_id)
        if where is None:
            raise RelayError(404, "NOT_FOUND", "Message not found", success=False)
        table, qids = MESSAGE_TABLES[where[0]], queue_ids_of([message_id])
        row = await self.db.fetchrow(
            f"""UPDATE {table} m SET
                type = CASE WHEN $2 THEN $3 ELSE m.type END,
                payload = CASE WHEN $4 THEN $5::json ELSE m.payload END,
                payload_size = CASE WHEN $4 THEN $6 ELSE m.payload_size END,
                priority = coalesce($7, m.priority),
                ack_timeout_seconds = coalesce($8, m.ack_timeout_seconds)
            WHERE m.id = $1 {queue_filter(where[0], 9)} AND m.status <> 'processing'
            RETURNING {MESSAGE_COLUMNS}""",
            message_id, "type" in changes, changes.get("type"), "payload" in changes,
            changes.get("payload"), changes.get("payload_size"), changes.get("priority"),
            changes.get("ack_timeout"), qids,
        )
        if row is not None:
            return row
        status = await self.db.fetchval(
            f"SELECT m.status FROM {table} m WHERE m.id = $1 {queue_filter(where[0], 2)}", message_id, qids)
        if status is None:
            raise RelayError(404, "NOT_FOUND", "Message not found", success=False)
        raise RelayError(409, "INVALID_STATE", "Message is being processed")

    async def clear(self, status: str | None, queue: str | None) -> int:
        """Delete every message (of one status / one queue when given)."""
        # One transaction per table: all in one, the counter rows the first DELETE's trigger
        # locked would stay locked while the next tables are cleared, stalling the enqueues and
        # acks that count into them.
        total = 0
        affected: dict[str, int] = {}
        for table in await self._tables(queue):
            rows = await self._bulk_delete(
                f"""WITH d AS (DELETE FROM {table} m WHERE ($1::text IS NULL OR m.status = $1)
                        AND ($2::text IS NULL OR m.queue_name = $2) AND {ANY_STATUS} RETURNING m.queue_name)
                SELECT queue_name, count(*) AS n FROM d GROUP BY 1""",
                status, queue,
            )
            for row in rows:
                affected[row["queue_name"]] = affected.get(row["queue_name"], 0) + row["n"]
                total += row["n"]
        if status is None:  # nothing left: forget the types seen too
            await self.db.execute(
                "DELETE FROM relay.message_types WHERE $1::text IS NULL OR queue_name = $1", queue)
        action = "clear_all_queues" if status is None and queue is None else "clear_queue"
        await self.hub.publish_durable(Change(
            action, queue, consumer_id=ADMIN_CONSUMER, batch_size=total,
            from_status=status, context={"status": status, "cleared": total, "per_queue": affected},
        ))
        return total

    async def _bulk_delete(self, sql: str, *args: Any) -> list[Mapping[str, Any]]:
        """One bulk write (Database.transaction), planned with its values: `$n IS NULL OR ...`
        filters read the whole table in a generic plan."""
        async def transaction(tx: Transaction) -> list[Mapping[str, Any]]:
            await tx.execute(CUSTOM_PLANS_SQL)
            return await tx.fetch(sql, *args)

        return await self.db.run_in_transaction(transaction, bulk="write")

    async def delete_by_time(self, start: float, end: float, queue: str | None) -> int:
        """Delete messages created in [start, end], any status."""
        total = 0
        for table in await self._tables(queue):  # one transaction per table: as for clear
            rows = await self._bulk_delete(
                f"""WITH d AS (DELETE FROM {table} m WHERE m.created_at >= to_timestamp($1)
                    AND m.created_at <= to_timestamp($2) AND ($3::text IS NULL OR m.queue_name = $3) AND {ANY_STATUS}
                    RETURNING 1)
                SELECT count(*) AS n FROM d""",
                start, end, queue,
            )
            total += rows[0]["n"]
        await self.hub.publish_durable(Change(
            "bulk_delete", queue, consumer_id=ADMIN_CONSUMER, batch_size=total,
            context={"start": start, "end": end, "deleted": total},
        ))
        return total


@dataclass(frozen=True, slots=True)
class Spread:
    """Where the messages of one status are, from the counters: how many, in which queues."""

    matches: int
    queues: tuple[str, ...]

    @classmethod
    def of(cls, counters: Sequence[Mapping[str, Any]], status: str | None) -> Spread:
        """From counter rows (QueueService.count_rows); every status when `status` is None."""
        matches, queues = 0, dict[str, None]()
        for row in counters:
            if row["n"] and (status is None or row["status"] == status):
                matches += row["n"]
                queues[row["queue_name"]] = None
        return cls(matches, tuple(queues))


def page_sql(tables: Sequence[str], flt: MessageFilter, sort: str, order: str,
             spread: Spread) -> tuple[str, list[Any]]:
    """A listing page over `tables` and the bind values after WHERE_SQL's $1-$8, LIMIT $9 and
    OFFSET $10.

    When there are more matches than the parts would read (SORT_ROWS_PER_PART each), each part
    of the union, one per queue holding that status across queues and per range of its index
    (_listing_ranges), is cut to the page's end in the page's order before the union is sorted:
    where the index keeps that order, a page reads that many index entries rather than sorting
    every match. Fewer matches are sorted: with 10,000 small queues, 200,000 index probes took
    390 ms where sorting their 4,000 messages takes a few. So is a search or a minimum of
    attempts, which usually match few: read in index order, each part would walk its whole
    range, row by row, where one pass over the table finds them (2-4 times faster)."""
    order_by = _listing_order(sort, order)
    status = flt.status
    ranges = _listing_ranges(status, sort)
    per_queue = flt.queue is None and status is not None and status != "processing"
    parts = sum(len(_table_ranges(t, ranges)) for t in tables) * (len(spread.queues) if per_queue else 1)
    if spread.matches <= SORT_ROWS_PER_PART * parts or flt.search or flt.min_attempts is not None:
        per_queue, ranges = False, ("",)
    source = _union(tables, top=order_by, limit="($9::bigint + $10::bigint)", per_queue=per_queue,
                    queues="$11", ranges=ranges)
    sql = f"SELECT {MESSAGE_COLUMNS} FROM {source} ORDER BY {order_by} LIMIT $9 OFFSET $10"
    return sql, [list(spread.queues)] if per_queue else []


def _listing_ranges(status: str | None, sort: str) -> tuple[str, ...]:
    """The ranges of its index a listing reads separately, each in the page's order if it can be."""
    if status == "queued" and sort == "created_at":
        return CREATED_RANGES
    return STATUS_RANGES.get(status, ("",)) if status else ("",)


def _table_ranges(table: str, ranges: Sequence[str]) -> Sequence[str]:
    """The ranges read in `table`. A partitioned table plans every part over each of its time
    partitions: the 20 ranges by creation time made one page of a queue keeping 30 days of hourly
    partitions take 3.9 s to plan; its partitions are in creation order already, so only the
    due/delayed split is kept there."""
    partitioned = table == MESSAGE_TABLES["partitioned"] or table.startswith(queue_subtree(0)[:-1])
    if partitioned and ranges is CREATED_RANGES:
        return STATUS_RANGES["queued"]
    return ranges


def _listing_order(sort: str, order: str) -> str:
    """ORDER BY of the listing and the export: the whitelisted column, then creation order.

    NULLS LAST only where the column can be NULL: the planner does not know that a NOT NULL
    column's rows are ordered alike either way, and would sort rather than read an index
    (`priority DESC NULLS LAST` cannot come from the dequeue index's `priority DESC`)."""
    direction = "ASC" if order == "asc" else "DESC"
    nulls = " NULLS LAST" if sort in NULLABLE_SORTS else ""
    # The id last: created_at and seq can tie across tables (one batch into a standard and an
    # unlogged queue, and each table numbers seq itself), and pages must not repeat or skip.
    return f"{SORT_COLUMNS[sort]} {direction}{nulls}, m.created_at ASC, m.seq ASC, m.id ASC"


def _union(tables: Sequence[str], top: str | None = None, per_queue: bool = False,
           ranges: Sequence[str] = ("",), limit: str = "1000", queues: str = "") -> str:
    """The tables' rows matching WHERE_SQL as one source aliased `m`. With `top`, each table
    contributes only its first `limit` rows in that order (with `per_queue`, each queue's first,
    for the queues named by the text[] parameter `queues`), so each part reads an index rather
    than the union sorting every row (GET /queue/status over millions of messages). `ranges`
    splits each part further, by conditions that each name one ordered range of the index
    (STATUS_RANGES)."""
    head = f" ORDER BY {top} LIMIT {limit}" if top else ""
    if per_queue:
        assert queues, "per-queue parts need the queues parameter"
        # m.queue_id = q.id lets each queue's part of the partitioned table read its own
        # partitions only (run-time pruning), not every partitioned queue's.
        parts = [
            f"(SELECT m.* FROM relay.queues q CROSS JOIN LATERAL (SELECT {ROW_COLUMNS} FROM {t} m "
            f"WHERE {WHERE_SQL} AND m.queue_name = q.name{r}"
            f"{' AND m.queue_id = q.id' if t == MESSAGE_TABLES['partitioned'] else ''}{head}) m"
            f" WHERE q.name = ANY({queues}::text[]){head})"
            for t in tables for r in _table_ranges(t, ranges)
        ]
    else:
        parts = [f"(SELECT {ROW_COLUMNS} FROM {t} m WHERE {WHERE_SQL}{r}{head})"
                 for t in tables for r in _table_ranges(t, ranges)]
    return "(" + " UNION ALL ".join(parts) + ") m"


def _group_ids(ids: Sequence[str]) -> dict[StorageKind, list[str]]:
    grouped: dict[StorageKind, list[str]] = {}
    for mid in dict.fromkeys(ids):
        where = storage_of(mid)
        if where is not None:
            grouped.setdefault(where[0], []).append(mid)
    return grouped


