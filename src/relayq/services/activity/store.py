"""Reading and writing relay.activity_log (named queries in db/sql/activity.sql).

Background writes use the pool directly rather than `Database.fetch`, so the round-trip count
the benchmark reports as queries/op stays the cost of the operations themselves; they are
counted in the database's background counter (`Database.background_stats`, as maintenance is).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from relayq.db.database import CUSTOM_PLANS_SQL, Database, Transaction
from relayq.db.queries import load_named
from relayq.services.activity.entries import ENTRY_KEYS

SQL = load_named("activity.sql")
FILTER = SQL["activity_filter"]
# Every ActivityEntry field as null, a jsonb literal built from constants (entries.ENTRY_KEYS).
BLANK_ENTRY = "'" + json.dumps(dict.fromkeys(ENTRY_KEYS), separators=(",", ":")) + "'::jsonb"
ENTRY_JSON = SQL["activity_entry_json"].replace("{blank_entry}", BLANK_ENTRY)
WRITE_TIMEOUT = 10.0

# A stored entry: the columns of relay.activity_log plus the JSON of the whole entry.
Record = tuple[datetime, str, str | None, str | None, str | None, str | None, str | None, str]
COLUMNS = ("ts", "action", "message_id", "queue", "consumer_id", "anomaly_type", "anomaly_severity", "entry")

SEVERITY_SQL = "CASE l.anomaly_severity WHEN 'critical' THEN 3 WHEN 'warning' THEN 2 ELSE 1 END"
ANOMALY_SORTS: dict[str, str] = {
    "timestamp": "l.ts {dir}, l.log_id {dir}",
    "severity": SEVERITY_SQL + " {dir}, l.ts DESC, l.log_id DESC",
    "type": "l.anomaly_type {dir}, l.ts DESC, l.log_id DESC",
    "action": "l.action {dir}, l.ts DESC, l.log_id DESC",
}
# A page is chosen by id first, and only its rows are built into JSON: the projection sits below
# LIMIT/OFFSET, so one query was building every skipped entry too (offset 400,000 of the log:
# 8.3 s, against 40 ms to find the page's ids). The join reads the page's rows by primary key.
PAGE_SQL = f"""SELECT {ENTRY_JSON} AS entry
FROM (SELECT l.log_id, l.ts FROM relay.activity_log l WHERE {FILTER}
      ORDER BY l.ts DESC, l.log_id DESC LIMIT $10 OFFSET $11) AS page
JOIN relay.activity_log l ON l.log_id = page.log_id
ORDER BY page.ts DESC, page.log_id DESC"""
# Entries per action from the counters (migration 0017), for a queue or all, some actions or all.
COUNTER_SQL = """SELECT action, sum(n)::bigint AS n FROM relay.activity_counts
WHERE ($1::text IS NULL OR queue = $1) AND ($2::text[] IS NULL OR action = ANY($2))
GROUP BY 1 HAVING sum(n) <> 0 ORDER BY 1"""
EXACT_COUNTS_SQL = f"SELECT l.action, count(*) AS n FROM relay.activity_log l WHERE {FILTER} GROUP BY 1 ORDER BY 1"
ANOMALY_SUMMARY_SQL = SQL["anomaly_summary"].replace("{filter}", FILTER)


def newest_counts_sql(keys: str, condition: str = "TRUE") -> str:
    """Matches of `condition` and FILTER among the newest $10, counted per `keys`, with each
    group's last position among the newest $10 + 1 (one past the bound tells whether there
    were more): read through the time index, never the whole log."""
    return f"""SELECT {keys}, count(*) FILTER (WHERE n <= $10) AS n, max(n) AS last
FROM (SELECT {keys}, row_number() OVER (ORDER BY l.ts DESC, l.log_id DESC) AS n
      FROM relay.activity_log l WHERE {condition} AND {FILTER}
      ORDER BY l.ts DESC, l.log_id DESC LIMIT $10::bigint + 1) newest
GROUP BY {keys} ORDER BY {keys}"""


BOUNDED_COUNTS_SQL = newest_counts_sql("action")
BOUNDED_ANOMALIES_SQL = newest_counts_sql("anomaly_type, anomaly_severity", "l.anomaly_type IS NOT NULL")


async def _counts(tx: Transaction, exact_sql: str, bounded_sql: str, flt: ActivityFilter,
                  bound: int | None) -> tuple[list[Any], bool]:
    """The count rows of every match (`exact_sql`), or of the newest `bound` only (`bounded_sql`,
    from newest_counts_sql), and whether they cover every match."""
    if bound is None:
        return await tx.fetch(exact_sql, *flt.args()), True
    rows = await tx.fetch(bounded_sql, *flt.args(), bound)
    return rows, all(r["last"] <= bound for r in rows)


_encoder = msgspec.json.Encoder()


@dataclass(slots=True)
class ActivityFilter:
    """Filters of GET /queue/activity and /queue/activity/anomalies; None means any."""

    message_id: str | None = None
    consumer_id: str | None = None
    actions: Sequence[str] | None = None
    queue: str | None = None
    start: float | None = None
    end: float | None = None
    has_anomaly: bool | None = None
    anomaly_type: str | None = None
    severity: str | None = None

    def counted(self) -> bool:
        """Whether relay.activity_counts holds this filter's counts: nothing but queue and action."""
        return (self.queue != "" and self.message_id is None and self.consumer_id is None and self.start is None
                and self.end is None and not self.has_anomaly and self.anomaly_type is None and self.severity is None)

    def args(self) -> list[Any]:
        """Bind values in the order of the `activity_filter` block ($1..$9)."""
        return [self.message_id, self.consumer_id, list(self.actions) if self.actions else None, self.queue,
                self.start, self.end, self.has_anomaly, self.anomaly_type, self.severity]


def to_record(at: datetime, entry: dict[str, Any]) -> Record:
    """The insert row of one entry (its JSON encoded once, here, without the null fields: most
    of an entry's 36 are null, and leaving them out takes its stored size from ~650 bytes to
    ~250, less for PostgreSQL to parse, store and log; reads put them back, ENTRY_JSON)."""
    anomaly = entry.get("anomaly")
    text = _encoder.encode({k: v for k, v in entry.items() if v is not None})
    if b"\\u0000" in text:
        text = _NUL_ESCAPE.sub(rb"\1\\ufffd", text)
    return (at, entry["action"], entry.get("message_id"), entry.get("queue"), entry.get("consumer_id"),
            anomaly["type"] if anomaly else None, anomaly["severity"] if anomaly else None, text.decode())


# A payload may hold U+0000 (json keeps it, as the message table does), but the listings read
# entries as jsonb, which cannot: one such entry would make every page that shows it a 400. The
# log's copy says U+FFFD instead. Only a `\u0000` escape not itself escaped (`\\u0000` is a
# backslash and the text "u0000") is replaced.
_NUL_ESCAPE = re.compile(rb"(?<!\\)((?:\\\\)*)\\u0000")


class ActivityStore:
    """Batched inserts and the read queries of the activity endpoints."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def insert(self, records: Sequence[Record]) -> None:
        """Write entries with one COPY, in order (log_id follows it).

        COPY costs PostgreSQL less per row than INSERT ... SELECT FROM unnest(arrays) (6-7 µs
        against 7-8 per entry, measured), and asyncpg less than eight parameter arrays, which it
        type-checks and encodes element by element (2 µs against 3-4 per entry): with logging on,
        every dequeued, acked or enqueued message writes one entry.
        """
        if not records:
            return
        self.db.background_stats.round_trips += 1
        async with self.db.pool.acquire(timeout=self.db.settings.connect_timeout) as conn:
            await conn.copy_records_to_table("activity_log", schema_name="relay", columns=COLUMNS,
                                             records=records, timeout=WRITE_TIMEOUT)

    async def list_entries(
        self, flt: ActivityFilter, limit: int, offset: int, bound: int | None = None
    ) -> tuple[list[msgspec.Raw], dict[str, int], bool]:
        """Newest first: one page of entries (as JSON), the matching count per action, and
        whether those counts cover every match.

        Filtered by queue and action only, the counts come from relay.activity_counts (migration
        0017). Otherwise counting every match reads every match (344 ms at 3,000,000 entries);
        with `bound`, only the newest `bound` matches are counted, through the time index.
        """
        async with self.db.transaction() as tx:
            await tx.execute(CUSTOM_PLANS_SQL)
            rows = await tx.fetch(PAGE_SQL, *flt.args(), limit, offset)
            if flt.counted():
                counts = await tx.fetch(COUNTER_SQL, flt.queue, list(flt.actions) if flt.actions else None)
                exact = True
            else:
                counts, exact = await _counts(tx, EXACT_COUNTS_SQL, BOUNDED_COUNTS_SQL, flt, bound)
        by_action = {r["action"]: int(r["n"]) for r in counts if r["n"]}
        return [msgspec.Raw(r["entry"].encode()) for r in rows], by_action, exact

    async def history(self, message_id: str) -> list[msgspec.Raw]:
        """Every entry of one message, oldest first."""
        rows = await self.db.fetch(SQL["activity_history"].replace("{entry_json}", ENTRY_JSON), message_id)
        return [msgspec.Raw(r["entry"].encode()) for r in rows]

    async def anomalies(
        self, flt: ActivityFilter, sort: str, order: str, limit: int, offset: int, bound: int | None = None
    ) -> tuple[list[msgspec.Raw], dict[str, Any], bool]:
        """One page of anomalies, sorted as asked, the summary over every match, and whether it
        covers every match.

        With workers waiting, every dequeue is a `flash_message` (dequeued under 500 ms after
        its creation): a third of a big log are anomalies, and summing them all took 0.45 s a
        page at 3,000,000 entries. With `bound`, the summary covers the newest `bound` only.
        """
        direction = "ASC" if order == "asc" else "DESC"
        order_by = ANOMALY_SORTS[sort].replace("{dir}", direction)
        async with self.db.transaction() as tx:
            await tx.execute(CUSTOM_PLANS_SQL)
            rows = await tx.fetch(  # the page's ids first, as PAGE_SQL
                f"SELECT {SQL['anomaly_json']} AS entry FROM (SELECT l.log_id FROM relay.activity_log l "
                f"WHERE l.anomaly_type IS NOT NULL AND {FILTER} ORDER BY {order_by} LIMIT $10 OFFSET $11) AS page "
                f"JOIN relay.activity_log l ON l.log_id = page.log_id ORDER BY {order_by}",
                *flt.args(), limit, offset,
            )
            counts, exact = await _counts(tx, ANOMALY_SUMMARY_SQL, BOUNDED_ANOMALIES_SQL, flt, bound)
        by_type: dict[str, int] = {}
        by_severity = {"critical": 0, "warning": 0, "info": 0}
        for row in counts:
            if row["n"]:
                by_type[row["anomaly_type"]] = by_type.get(row["anomaly_type"], 0) + row["n"]
                by_severity[row["anomaly_severity"]] = by_severity.get(row["anomaly_severity"], 0) + row["n"]
        summary = {"total": sum(by_type.values()), "by_type": by_type, "by_severity": by_severity}
        return [msgspec.Raw(r["entry"].encode()) for r in rows], summary, exact

    async def clear(self) -> None:
        """Delete every entry and every consumer stat."""
        await self.db.fetchrow(SQL["activity_clear"])

    async def prune(self, hours: float, batch: int = 10_000) -> int:
        """Delete entries older than `hours`, in bounded batches; returns how many."""
        total = 0
        while True:
            self.db.background_stats.round_trips += 1
            async with self.db.pool.acquire(timeout=self.db.settings.connect_timeout) as conn:
                status: str = await conn.execute(SQL["activity_prune"], hours, batch)
            count = int(status.rsplit(" ", 1)[-1])
            total += count
            if count < batch:
                return total
