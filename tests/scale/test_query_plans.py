"""Query-plan tests: the hot queries use the indexes they were designed around.

A table of ~20,000 messages, mostly acknowledged history, after ANALYZE: enough for the
planner to prefer an index wherever one fits. Each hot query is EXPLAINed both as a custom plan
(parameters known, what the first executions of a prepared statement get) and as the generic
plan asyncpg's statement cache switches to, because a generic plan that lost its index would
only show up in production after the fifth execution. The generic plan is that of EXPLAIN
EXECUTE on a PREPAREd statement: EXPLAIN with bound parameters always plans with their values,
so until a review noticed, the "generic" cases checked the custom plan a second time.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any

import asyncpg
import pytest
from benchmarks.scale.fill import fill_messages

from relayq.bench.drivers import RAW_DEQUEUE
from relayq.db.migrate import migrate
from relayq.db.queries import MESSAGE_TABLES, QUERIES, queue_filter
from relayq.domain.messages import MESSAGE_COLUMNS
from relayq.services.activity.store import BOUNDED_COUNTS_SQL, PAGE_SQL, ActivityFilter
from relayq.services.admin import (
    DELETE_BY_IDS_SQL,
    MOVE_SQL,
    STATUS_ORDER,
    STATUS_RANGES,
    MessageFilter,
    Spread,
    _union,
    page_sql,
)
from relayq.services.maintenance import DELETE_BATCH_SQL
from relayq.services.queues import (
    BUSY_SQL,
    COUNTS_SQL,
    DELETE_MESSAGES_SQL,
    PURGE_SQL,
    RENAME_MESSAGES_SQL,
    create_queue_partitions,
)
from tests.support.server import fresh_database

HISTORY, BACKLOG, LEASED = 16_000, 4_000, 500
KINDS = ("standard", "unlogged", "partitioned")
PLAN_MODES = ("force_custom_plan", "force_generic_plan")


@pytest.fixture(scope="module")
def plan_dsn() -> Iterator[str]:
    with fresh_database("relay_plans") as url:
        yield url


@pytest.fixture(scope="module")
async def conn(plan_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(plan_dsn)
    await migrate(connection)
    for kind in KINDS:
        row = await connection.fetchrow(
            """INSERT INTO relay.queues (name, queue_type, ack_timeout_seconds, max_attempts, partition_interval,
                   retention_interval) VALUES ($1, $2, 30, 3, $3, $4) RETURNING id""",
            f"plan_{kind}", kind, "daily" if kind == "partitioned" else None,
            "7 days" if kind == "partitioned" else None,
        )
        if kind == "partitioned":
            async with connection.transaction():
                await create_queue_partitions(_Tx(connection), row["id"], "daily")
        for status, count in (("acknowledged", HISTORY), ("queued", BACKLOG), ("processing", LEASED)):
            await fill_messages(connection, f"plan_{kind}", status, count, table=MESSAGE_TABLES[kind])
    # A second queue, so the queue_name conditions actually select.
    await connection.execute("INSERT INTO relay.queues (name, ack_timeout_seconds, max_attempts) VALUES ('other', 30, 3)")
    await fill_messages(connection, "other", "queued", 2_000)
    # Small queues beside the big ones: what queue-wide statements (delete, purge, rename) see.
    for kind in ("standard", "unlogged"):
        await connection.execute(
            "INSERT INTO relay.queues (name, queue_type, ack_timeout_seconds, max_attempts) VALUES ($1, $2, 30, 3)",
            f"small_{kind}", kind)
        for status, count in (("acknowledged", 100), ("queued", 50), ("processing", 20)):
            await fill_messages(connection, f"small_{kind}", status, count, table=MESSAGE_TABLES[kind])
    await connection.execute("VACUUM ANALYZE")
    yield connection
    await connection.close()


class _Tx:
    """Just enough of db.Transaction for create_queue_partitions on a bare connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.execute = conn.execute


async def explain(conn: asyncpg.Connection, mode: str, sql: str, *args: Any) -> dict[str, Any]:
    """The plan `sql` gets as a prepared statement under `mode`. EXPLAIN of a statement with
    bound parameters always plans with their values (a custom plan), whatever the mode; only
    EXPLAIN EXECUTE of a PREPAREd statement shows the generic plan."""
    await conn.execute(f"SET plan_cache_mode = {mode}")
    try:
        await conn.execute(f"PREPARE relay_plan_probe AS {sql}")
        try:
            values = ", ".join(_literal(arg) for arg in args)  # EXECUTE takes no bound parameters
            raw = await conn.fetchval(
                f"EXPLAIN (FORMAT JSON) EXECUTE relay_plan_probe{f'({values})' if args else ''}")
        finally:
            await conn.execute("DEALLOCATE relay_plan_probe")
    finally:
        await conn.execute("RESET plan_cache_mode")
    plan: dict[str, Any] = json.loads(raw)[0]["Plan"]
    return plan


def _literal(value: Any) -> str:
    """A test value as an SQL literal of unknown type (the prepared statement's parameter types
    decide): NULL, or its text form quoted; a list as an array literal."""
    if value is None:
        return "NULL"
    if isinstance(value, (list, tuple)):
        items = ",".join("NULL" if v is None else '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
                         for v in value)
        text = "{" + items + "}"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, datetime):
        text = value.isoformat()
    else:
        text = str(value)
    return "'" + text.replace("'", "''") + "'"


def scans(plan: dict[str, Any]) -> list[tuple[str, str | None, str]]:
    """(node type, index name, relation) of every scan of a message table in the plan (the tiny
    relay.queues table, read for the queue check and the backoff, may be scanned any way)."""
    found: list[tuple[str, str | None, str]] = []
    relation = plan.get("Relation Name", "")
    if "Scan" in plan["Node Type"] and not relation.startswith("queues"):
        found.append((plan["Node Type"], plan.get("Index Name"), relation))
    for child in plan.get("Plans", []):
        found.extend(scans(child))
    return found


async def index_family(conn: asyncpg.Connection, index: str) -> str:
    """An index's definition with table names removed, to compare an index across the three tables
    and across a partitioned index's per-partition children."""
    definition: str = await conn.fetchval(
        "SELECT pg_get_indexdef(c.oid) FROM pg_class c WHERE c.relname = $1 "
        "AND c.relnamespace = 'relay'::regnamespace", index)
    return definition.split(" USING ", 1)[1]


async def families(conn: asyncpg.Connection, plan: dict[str, Any]) -> list[str]:
    """For every table scan in the plan: the family of the index it reads, else its node type.

    Sequential scans of empty tables (future time partitions, an unused default partition) are
    left out: reading zero pages is what the planner should do with them."""
    found = []
    for node, index, relation in scans(plan):
        if node in ("Function Scan", "CTE Scan", "Subquery Scan"):
            continue
        if node == "Seq Scan" and not await conn.fetchval(
                "SELECT relpages FROM pg_class WHERE oid = to_regclass('relay.' || $1)", relation):
            continue
        found.append(await index_family(conn, index) if index else node)
    return found


DEQUEUE_INDEX = "btree (queue_name, delayed, priority DESC, created_at, seq, type) WHERE (status = 'queued'::text)"
DELAYED_INDEX = "btree (available_at) WHERE ((status = 'queued'::text) AND delayed)"
LEASE_INDEX = "btree (locked_until) WHERE (status = 'processing'::text)"
ACKNOWLEDGED_INDEX = "btree (queue_name, acknowledged_at NULLS FIRST) WHERE (status = 'acknowledged'::text)"
STATUS_INDEX = (
    "btree (queue_name, status, created_at) WHERE (status <> ALL (ARRAY['queued'::text, 'processing'::text, "
    "'acknowledged'::text]))"
)


async def queue_id(conn: asyncpg.Connection, kind: str) -> int:
    value: int = await conn.fetchval("SELECT id FROM relay.queues WHERE name = $1", f"plan_{kind}")
    return value


@pytest.mark.parametrize("mode", PLAN_MODES)
@pytest.mark.parametrize("kind", KINDS)
async def test_dequeue_reads_the_partial_dequeue_index(conn: asyncpg.Connection, kind: str, mode: str) -> None:
    qid = await queue_id(conn, kind)
    for count in (1, 100):
        plan = await explain(conn, mode, QUERIES.get("dequeue", kind), f"plan_{kind}", count,
                             [None] * count, [None] * count, qid, None)
        read = await families(conn, plan)
        # The claim reads the dequeue index; the UPDATE then finds each row by its key.
        assert DEQUEUE_INDEX in read, plan
        assert "Seq Scan" not in read, plan


@pytest.mark.parametrize("mode", PLAN_MODES)
@pytest.mark.parametrize("kind", KINDS)
async def test_a_dequeue_by_type_checks_the_type_in_the_dequeue_index(conn: asyncpg.Connection, kind: str,
                                                                       mode: str) -> None:
    """The type is the dequeue index's last column (migration 0018) and the typed claim its own
    statement, so `type = $6` is an index condition in custom and generic plans alike: a claim
    for a type that is not queued reads index entries only. Before, it fetched every queued row
    to look at its type, or (planned with the type's statistics) scanned the whole table: 370 ms
    behind 1,000,000 messages, 55 ms now."""
    qid = await queue_id(conn, kind)
    for wanted in ("type_1", "no_such_type"):
        plan = await explain(conn, mode, QUERIES.get("dequeue_typed", kind), f"plan_{kind}", 1, [None], [None],
                             qid, wanted)
        assert DEQUEUE_INDEX in await families(conn, plan), plan
        assert "Seq Scan" not in await families(conn, plan), plan
        assert "type = " in json.dumps(_index_conditions(plan)), plan
    raw = await conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + QUERIES.get("dequeue_typed", kind),
                              f"plan_{kind}", 1, [None], [None], qid, "no_such_type")
    assert _rows_removed(json.loads(raw)[0]["Plan"]) == 0  # no row was fetched to be thrown away


def _index_conditions(plan: dict[str, Any]) -> list[str]:
    """Every Index Cond in the plan."""
    own = [plan["Index Cond"]] if "Index Cond" in plan else []
    return own + [c for child in plan.get("Plans", []) for c in _index_conditions(child)]


@pytest.mark.parametrize("mode", PLAN_MODES)
@pytest.mark.parametrize("kind", KINDS)
async def test_idempotency_key_holders_are_found_through_the_key_index(conn: asyncpg.Connection, kind: str,
                                                                     mode: str) -> None:
    """The look-up of a duplicate's holder goes by queue id and key, through the queue's current
    name (so a rename in between cannot hide the holder), and reads the key index, not the table."""
    qid = await queue_id(conn, kind)
    plan = await explain(conn, mode, QUERIES.get("existing_by_idempotency_key", kind), [qid, qid], ["k1", "k2"])
    read = await families(conn, plan)
    assert "Seq Scan" not in read and any("idempotency_key" in family for family in read), plan


@pytest.mark.parametrize("mode", PLAN_MODES)
async def test_the_benchmark_limit_claims_through_the_dequeue_index(conn: asyncpg.Connection, mode: str) -> None:
    """The raw-SQL limit driver's claim (`relay bench`) reads the same index range as Relay's: without
    `NOT delayed` (migration 0015) its ORDER BY no longer matched the index, and each claim read
    and sorted the queue's whole backlog (200,000 queued: 160 ms instead of 0.4 ms)."""
    plan = await explain(conn, mode, RAW_DEQUEUE, "plan_standard", 1)
    assert DEQUEUE_INDEX in await families(conn, plan), plan
    assert "Sort" not in json.dumps(plan), plan


@pytest.mark.parametrize("kind", KINDS)
async def test_dequeue_skips_delayed_messages_without_reading_them(conn: asyncpg.Connection, kind: str) -> None:
    """Messages waiting for their time (older and of higher priority than the due ones here) sit
    in a range of the dequeue index of their own (migration 0015): the claim reads the due range
    and removes no row by filter. Before, it read each delayed row from the heap and threw it
    away, 3,000 rows per dequeue here."""
    qid = await queue_id(conn, kind)
    tx = conn.transaction()
    await tx.start()
    try:
        await fill_messages(conn, f"plan_{kind}", "queued", 3_000, table=MESSAGE_TABLES[kind], delay=3600)
        await conn.execute(f"UPDATE {MESSAGE_TABLES[kind]} SET priority = 9 WHERE delayed")
        raw = await conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + QUERIES.get("dequeue", kind),
                                  f"plan_{kind}", 1, [None], [None], qid, None)
    finally:
        await tx.rollback()
    plan: dict[str, Any] = json.loads(raw)[0]["Plan"]
    assert await families(conn, plan) and DEQUEUE_INDEX in await families(conn, plan), plan
    assert _rows_removed(plan) == 0, plan


def _rows_removed(plan: dict[str, Any]) -> int:
    """Message rows read and thrown away by a filter, anywhere in an EXPLAIN ANALYZE plan."""
    own = int(plan.get("Rows Removed by Filter", 0)) if plan.get("Relation Name", "").startswith("messages") else 0
    return own + sum(_rows_removed(p) for p in plan.get("Plans", []))


@pytest.mark.parametrize("mode", PLAN_MODES)
@pytest.mark.parametrize("kind", KINDS)
async def test_promotion_reads_the_delayed_index(conn: asyncpg.Connection, kind: str, mode: str) -> None:
    plan = await explain(conn, mode, QUERIES.get("promote", kind), 1000)
    read = await families(conn, plan)
    assert read and set(read) == {DELAYED_INDEX} | ({"btree (id)"} & set(read)) | (
        {"btree (queue_id, id, created_at)"} & set(read)), plan


async def sample(conn: asyncpg.Connection, kind: str, status: str, n: int) -> list[str]:
    rows = await conn.fetch(
        f"SELECT id FROM {MESSAGE_TABLES[kind]} WHERE queue_name = $1 AND status = $2 LIMIT $3",
        f"plan_{kind}", status, n)
    return [r["id"] for r in rows]


async def assert_primary_key(conn: asyncpg.Connection, plan: dict[str, Any]) -> None:
    """Rows are found by id through the primary key, never by walking the lease index: that is
    bounded by the leases in flight, which after a burst of dequeues not yet analyzed were
    200,000, read by every single ack (200-650 ms each)."""
    read = await families(conn, plan)
    assert read and "Seq Scan" not in read, plan
    for family in read:
        if family == "Bitmap Heap Scan":  # its Bitmap Index Scan is in `read` too
            continue
        assert family.startswith("btree (id)") or family.startswith("btree (queue_id, id, created_at)"), (family, plan)


@pytest.mark.parametrize("mode", PLAN_MODES)
@pytest.mark.parametrize("kind", KINDS)
async def test_ack_nack_touch_find_rows_by_primary_key(conn: asyncpg.Connection, kind: str, mode: str) -> None:
    qid = await queue_id(conn, kind)
    qids = [qid] if kind == "partitioned" else None
    for n in (1, 50):
        ids = await sample(conn, kind, "processing", n)
        tokens = ["t"] * n
        plan = await explain(conn, mode, QUERIES.get("ack", kind), ids, tokens, qids)
        await assert_primary_key(conn, plan)
        plan = await explain(conn, mode, QUERIES.get("nack", kind), ids, tokens, [None] * n, "requeued", "dead",
                             [None] * n, qids)
        await assert_primary_key(conn, plan)
    ids = await sample(conn, kind, "processing", 1)
    await assert_primary_key(conn, await explain(
        conn, mode, QUERIES.get("touch", kind), ids[0], "t", None, qid if kind == "partitioned" else None))


async def test_an_ack_after_an_unanalyzed_burst_of_dequeues_finds_its_row_by_id(conn: asyncpg.Connection) -> None:
    """20,000 leases the statistics have not seen yet (autovacuum analyzes a minute later at
    best), last analyzed with none in flight: the ack of one message must still go by id, not
    walk them all."""
    tx = conn.transaction()
    await tx.start()
    try:
        await conn.execute("UPDATE relay.messages SET status = 'dead', lock_token = NULL, locked_until = NULL "
                           "WHERE status = 'processing'")
        await conn.execute("ANALYZE relay.messages")
        await fill_messages(conn, "plan_standard", "processing", 20_000)
        ids = await sample(conn, "standard", "processing", 1)
        await assert_primary_key(conn, await explain(conn, "force_custom_plan", QUERIES.get("ack", "standard"),
                                                     ids, ["t"], None))
        moved = await explain(conn, "force_custom_plan", MOVE_SQL.format(table="relay.messages", queue_filter=queue_filter("standard", 6)),
                              ids, "processing", "dead", None, "admin", None)
        await assert_primary_key(conn, moved)
    finally:
        await tx.rollback()


@pytest.mark.parametrize("mode", PLAN_MODES)
@pytest.mark.parametrize("kind", KINDS)
async def test_admin_moves_and_deletes_find_rows_by_primary_key(conn: asyncpg.Connection, kind: str,
                                                                mode: str) -> None:
    """By id, with the queue ids of partitioned ids (whose primary key starts with the queue id):
    without them a move of 100 partitioned ids read every partitioned queue (149 ms at 1M rows)."""
    qids = [await queue_id(conn, kind)] if kind == "partitioned" else None
    for status in ("processing", "queued"):
        ids = await sample(conn, kind, status, 50)
        move = MOVE_SQL.format(table=MESSAGE_TABLES[kind], queue_filter=queue_filter(kind, 6))
        await assert_primary_key(conn, await explain(conn, mode, move, ids, status, "dead", None, "admin", qids))
        delete = DELETE_BY_IDS_SQL.format(table=MESSAGE_TABLES[kind], queue_filter=queue_filter(kind, 2))
        await assert_primary_key(conn, await explain(conn, mode, delete, ids, qids))


@pytest.mark.parametrize("mode", PLAN_MODES)
@pytest.mark.parametrize("kind", KINDS)
async def test_reaper_reads_the_lease_index(conn: asyncpg.Connection, kind: str, mode: str) -> None:
    plan = await explain(conn, mode, QUERIES.get("reap", kind), 1000)
    read = await families(conn, plan)
    assert LEASE_INDEX in read, plan
    assert "Seq Scan" not in read, plan


@pytest.mark.parametrize("kind", ("standard", "unlogged"))
@pytest.mark.parametrize(("status", "index"), [("acknowledged", ACKNOWLEDGED_INDEX), ("archived", STATUS_INDEX)])
async def test_retention_batches_read_their_own_index(conn: asyncpg.Connection, kind: str, status: str,
                                                      index: str) -> None:
    """Oldest first straight off a per-queue index: acknowledged messages by acknowledgement time
    (migration 0012), archived ones by creation time (migration 0005 dropped created_at's)."""
    sql = DELETE_BATCH_SQL[status].format(table=MESSAGE_TABLES[kind])
    for mode in PLAN_MODES:
        plan = await explain(conn, mode, sql, f"plan_{kind}", await conn.fetchval("SELECT now() - interval '1 minute'"),
                             5000, await queue_id(conn, kind))
        read = await families(conn, plan)
        # The index bounds the read to this queue's expired rows; when they are fewer than a
        # batch the planner may fetch them as a bitmap and sort them, which reads no more.
        assert index in read, plan
        assert "Seq Scan" not in read, plan


@pytest.mark.parametrize("queue", ("plan_standard", None))
async def test_status_lists_read_indexes_not_the_history(conn: asyncpg.Connection, queue: str | None) -> None:
    """GET /queue/status lists (admin.py): the newest acknowledged come from their own index, the
    queued list from the dequeue index, the leased from the lease index: none sorts the history."""
    own_index = {"acknowledged": ACKNOWLEDGED_INDEX, "queued": DEQUEUE_INDEX, "processing": LEASE_INDEX}
    tables = [MESSAGE_TABLES["standard"]] if queue else list(MESSAGE_TABLES.values())
    for status in ("acknowledged", "queued", "processing", "dead"):
        per_queue = queue is None and status != "processing"
        source = _union(tables, top=STATUS_ORDER[status], per_queue=per_queue, queues="$9")
        sql = f"SELECT {MESSAGE_COLUMNS} FROM {source} ORDER BY {STATUS_ORDER[status]} LIMIT 1000"
        holding = [Spread.of(await conn.fetch(COUNTS_SQL, None), status).queues] if per_queue else []
        plan = await explain(conn, "force_custom_plan", sql, *MessageFilter(status=status, queue=queue).args(),
                             *holding)
        read = await families(conn, plan)
        assert "Seq Scan" not in read, plan
        if status in own_index:
            assert own_index[status] in read, plan


def _rows_read(plan: dict[str, Any], partitions: bool = True) -> int:
    """The most message rows any one scan node returned in an EXPLAIN ANALYZE plan, all loops
    (time partitions left out unless `partitions`)."""
    own = 0
    relation = plan.get("Relation Name", "")
    if "Scan" in plan["Node Type"] and relation.startswith("messages") and (
            partitions or relation in ("messages", "messages_unlogged")):
        own = int(plan["Actual Rows"] * plan["Actual Loops"])
    return max([own, *(_rows_read(p, partitions) for p in plan.get("Plans", []))])


# The dashboard tabs' default orders (pages/messages.js) and the API's default (creation time,
# newest first) on the queued list: orders an index keeps.
TAB_ORDERS = {"queued": ("priority", "desc"), "acknowledged": ("acknowledged_at", "desc"),
              "queued by creation": ("created_at", "desc"), "queued by creation asc": ("created_at", "asc")}


@pytest.mark.parametrize("types", (None, ["type_1"]))
@pytest.mark.parametrize("listing", TAB_ORDERS)
@pytest.mark.parametrize("queue", ("plan_standard", "plan_partitioned", None))
async def test_a_listing_page_reads_a_page_of_index(conn: asyncpg.Connection, queue: str | None, listing: str,
                                                   types: list[str] | None) -> None:
    """GET /queue/{queueType}/messages in a tab's default order, or the queued list by creation
    time, reads about a page of each queue's index, with or without a type filter: before, each
    page sorted every queued or acknowledged message (16,000 here; 0.3-0.8 s a page at a
    million)."""
    # A partitioned table sorts by creation time (test_a_partitioned_queue_is_not_read_in_twenty_ranges).
    by_creation = listing.startswith("queued by creation")
    if queue == "plan_partitioned" and by_creation:
        pytest.skip("a partitioned queue's own table sorts by creation time")
    tables = list(MESSAGE_TABLES.values()) if queue is None else [
        MESSAGE_TABLES["standard"] if queue == "plan_standard" else f"relay.messages_p{await queue_id(conn, 'partitioned')}"]
    flt = MessageFilter(status=listing.split()[0], queue=queue, types=types)
    sql, extra = page_sql(tables, flt, *TAB_ORDERS[listing], Spread.of(await conn.fetch(COUNTS_SQL, queue), flt.status))
    await conn.execute("SET jit = off")
    try:
        raw = await conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, *flt.args(), 50, 0, *extra)
    finally:
        await conn.execute("RESET jit")
    plan: dict[str, Any] = json.loads(raw)[0]["Plan"]
    assert plan["Actual Rows"] == 50, plan
    # Each queue's part stops after 50 matches (plus one, to close a group of ties); with the
    # filter it reads past about 150 others in each of the three priorities it may read.
    queues = 1 if queue else await conn.fetchval("SELECT count(*) FROM relay.queues")
    assert _rows_read(plan, partitions=not by_creation) <= 51 * queues, plan
    assert _rows_removed(plan) <= (0 if types is None else 600 * queues), plan


def _loops(plan: dict[str, Any]) -> int:
    """The most times any scan of a message table ran in an EXPLAIN ANALYZE plan."""
    own = int(plan["Actual Loops"]) if plan.get("Relation Name", "").startswith("messages") else 0
    return max([own, *(_loops(p) for p in plan.get("Plans", []))])


async def test_cross_queue_lists_visit_only_the_queues_holding_messages(conn: asyncpg.Connection) -> None:
    """Across queues, a status list reads each queue holding messages of that status (from the
    counters), not every queue: with 10,000 queues, 60 parts per queue of which almost all
    were empty took 81 ms for GET /queue/status."""
    tx = conn.transaction()
    await tx.start()
    try:
        await conn.execute("""INSERT INTO relay.queues (name, ack_timeout_seconds, max_attempts)
            SELECT 'empty' || g, 30, 3 FROM generate_series(1, 500) g""")
        holding = Spread.of(await conn.fetch(COUNTS_SQL, None), "queued").queues
        source = _union(list(MESSAGE_TABLES.values()), top=STATUS_ORDER["queued"], per_queue=True, queues="$9",
                        ranges=STATUS_RANGES["queued"])
        raw = await conn.fetchval(
            f"EXPLAIN (ANALYZE, FORMAT JSON) SELECT {MESSAGE_COLUMNS} FROM {source} "
            f"ORDER BY {STATUS_ORDER['queued']} LIMIT 1000", *MessageFilter(status="queued").args(), holding)
    finally:
        await tx.rollback()
    assert 0 < _loops(json.loads(raw)[0]["Plan"]) <= len(holding) < 10


def test_a_listing_of_few_messages_in_many_queues_sorts_them() -> None:
    """page_sql reads a page per queue and index range only where that is less than sorting
    every match: not for 4,000 messages in 200 queues (20 ranges each by creation time)."""
    tables = list(MESSAGE_TABLES.values())
    flt = MessageFilter(status="queued")
    sql, extra = page_sql(tables, flt, "created_at", "desc", Spread(4_000, tuple(f"q{i}" for i in range(200))))
    assert "relay.queues" not in sql and "m.priority = 9" not in sql and extra == []
    sql, extra = page_sql(tables, flt, "created_at", "desc", Spread(1_000_000, ("big", "small")))
    assert "relay.queues" in sql and "m.priority = 9" in sql and extra == [["big", "small"]]
    one = MessageFilter(status="queued", queue="small")
    sql, extra = page_sql(tables[:1], one, "created_at", "desc", Spread(900, ("small",)))
    assert "m.priority = 9" not in sql and extra == []
    # A search or a minimum of attempts usually matches few: one pass, not every range in order.
    for rare in (MessageFilter(status="queued", search="%x%"), MessageFilter(status="queued", min_attempts=3)):
        sql, extra = page_sql(tables, rare, "created_at", "desc", Spread(1_000_000, ("big",)))
        assert "relay.queues" not in sql and "m.delayed" not in sql and extra == []


def test_a_partitioned_queue_is_not_read_in_twenty_ranges() -> None:
    """Every range is planned over each time partition: by creation time, 20 ranges of a queue
    keeping 30 days of hourly partitions took 3.9 s to plan (a review found it). A partitioned
    table keeps the due/delayed split only."""
    own = MessageFilter(status="queued", queue="p")
    sql, _ = page_sql(["relay.messages_p7"], own, "created_at", "desc", Spread(1_000_000, ("p",)))
    assert "m.priority = 9" not in sql and sql.count("m.delayed") == 2
    sql, _ = page_sql(list(MESSAGE_TABLES.values()), MessageFilter(status="queued"), "created_at", "desc",
                      Spread(1_000_000, ("p",)))
    assert sql.count("m.priority = 9") == 2 * 2 and sql.count("m.delayed") == 2 * 20 + 2


@pytest.mark.parametrize("mode", ["force_custom_plan"])  # their transactions force custom plans
@pytest.mark.parametrize("kind", ("standard", "unlogged"))
async def test_queue_wide_statements_combine_the_partial_indexes(conn: asyncpg.Connection, kind: str, mode: str) -> None:
    """Queue delete, purge and rename find a queue's messages whatever their status: queued ones
    only in the dequeue index, leased ones in the lease index, acknowledged ones in the
    acknowledged index, dead and archived ones in the status index (migrations 0008, 0012), so the
    plan must read each group's index and never the whole table (every queue's history). A real
    generic plan (EXPLAIN EXECUTE) of these read the unlogged table whole, so they run with
    CUSTOM_PLANS_SQL."""
    table = MESSAGE_TABLES[kind]
    everything = {DEQUEUE_INDEX, LEASE_INDEX, ACKNOWLEDGED_INDEX, STATUS_INDEX}
    for sql, args, wanted in (
        (BUSY_SQL, (), {DEQUEUE_INDEX, LEASE_INDEX}),
        (DELETE_MESSAGES_SQL, (), everything),
        (PURGE_SQL, ("all",), everything),
        (PURGE_SQL, ("acknowledged",), {ACKNOWLEDGED_INDEX}),
        (PURGE_SQL, ("dead",), {STATUS_INDEX}),
        (RENAME_MESSAGES_SQL, ("renamed",), everything),
    ):
        plan = await explain(conn, mode, sql.format(table=table), f"small_{kind}", *args)
        read = await families(conn, plan)
        assert "Seq Scan" not in read, (sql, plan)
        assert wanted <= set(read), (sql, read)


DEQUEUE_INDEX_NAMES = {
    "standard": "messages_dequeue_idx",
    "unlogged": "messages_unlogged_dequeue_idx",
}


@pytest.mark.parametrize("kind", ("standard", "unlogged"))
async def test_dequeue_cannot_read_the_status_index(conn: asyncpg.Connection, kind: str) -> None:
    """The status index holds no queued messages, so the planner cannot pick it (and sort) for a
    dequeue, as it did with few messages queued and fresh statistics before migration 0008.
    Shown by taking the dequeue index away inside a transaction that is rolled back: the one
    index left that names queue_name must not be offered either."""
    qid = await conn.fetchval("SELECT id FROM relay.queues WHERE name = $1", f"small_{kind}")
    tx = conn.transaction()
    await tx.start()
    try:
        await conn.execute(f"DROP INDEX relay.{DEQUEUE_INDEX_NAMES[kind]}")
        plan = await explain(conn, "force_custom_plan", QUERIES.get("dequeue", kind), f"small_{kind}", 1,
                             [None], [None], qid, None)
    finally:
        await tx.rollback()
    read = await families(conn, plan)
    assert not any(f.startswith("btree (queue_name, status, created_at)") for f in read), plan


@pytest.mark.parametrize("mode", ["force_custom_plan"])  # ActivityStore forces custom plans (CUSTOM_PLANS_SQL)
async def test_activity_pages_read_the_time_index_backwards(conn: asyncpg.Connection, mode: str) -> None:
    """GET /queue/activity's newest-first page comes off activity_log_ts_idx read backwards
    (ascending since migration 0010, so inserts append at its right edge); no sort of the log."""
    await conn.execute(
        """INSERT INTO relay.activity_log (ts, action, message_id, queue, entry)
        SELECT now() - make_interval(secs => g), 'acknowledge', 's' || g, 'plan_standard', '{}'
        FROM generate_series(1, 20000) AS g""")
    await conn.execute("ANALYZE relay.activity_log")
    for flt in (ActivityFilter(), ActivityFilter(queue="plan_standard", actions=["acknowledge"])):
        plan = await explain(conn, mode, PAGE_SQL, *flt.args(), 50, 0)
        found = [(node, index) for node, index, _ in scans(plan)]
        # The page off the time index, then its rows by primary key (PAGE_SQL).
        assert found[0] in (("Index Scan", "activity_log_ts_idx"), ("Index Only Scan", "activity_log_ts_idx")), plan
        assert found[1:] == [("Index Scan", "activity_log_pkey")], plan
        assert "'Scan Direction': 'Backward'" in str(plan) and "'Sort'" not in str(plan), plan


async def test_a_quiet_queues_activity_is_read_from_its_own_range(conn: asyncpg.Connection) -> None:
    """A queue whose entries are few among many others' (or all old) read the whole log backwards
    to fill its page: 277 ms at 3,000,000 entries for an idle queue. activity_log_queue_idx
    (migration 0016) starts at its newest entry; the page and the bounded count read only its
    entries."""
    tx = conn.transaction()
    await tx.start()
    try:
        await conn.execute(
            """INSERT INTO relay.activity_log (ts, action, message_id, queue, entry)
            SELECT now() - make_interval(secs => g), 'enqueue', 's' || g,
                   CASE WHEN g % 500 = 0 THEN 'quiet' ELSE 'busy' END, '{}'
            FROM generate_series(1, 50000) AS g""")
        await conn.execute("ANALYZE relay.activity_log")
        flt = ActivityFilter(queue="quiet")
        await conn.execute("SET jit = off")
        for sql, args in ((PAGE_SQL, [50, 0]), (BOUNDED_COUNTS_SQL, [60])):
            raw = await conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, *flt.args(), *args)
            plan = json.loads(raw)[0]["Plan"]
            assert "activity_log_queue_idx" in str(plan), plan
            assert _activity_rows_read(plan) <= 100, plan  # the quiet queue's 100 entries at most
    finally:
        await conn.execute("RESET jit")
        await tx.rollback()


def _activity_rows_read(plan: dict[str, Any]) -> int:
    """Entries any scan of the activity log read (kept or filtered out), all loops."""
    own = 0
    if plan.get("Relation Name") == "activity_log" and "Scan" in plan["Node Type"]:
        own = int((plan["Actual Rows"] + plan.get("Rows Removed by Filter", 0)) * plan["Actual Loops"])
    return max([own, *(_activity_rows_read(p) for p in plan.get("Plans", []))])


def _skipped_entry_builders(plan: dict[str, Any], limit: int) -> list[str]:
    """Nodes that return more than a page of rows with an entry's JSON among their outputs."""
    found = []
    if plan.get("Actual Rows", 0) * plan.get("Actual Loops", 1) > limit and any(
            "entry" in column for column in plan.get("Output", [])):
        found.append(plan["Node Type"])
    for child in plan.get("Plans", []):
        found.extend(_skipped_entry_builders(child, limit))
    return found


async def test_a_deep_activity_page_builds_only_its_own_entries(conn: asyncpg.Connection) -> None:
    """GET /queue/activity?offset=N: the JSON of an entry (a jsonb merge of ~40 fields) was built
    below LIMIT/OFFSET, for every skipped entry too: offset 400,000 of the log took 8.3 s where
    finding the page takes 40 ms. The page's ids come first; only its rows are built."""
    total = await conn.fetchval("SELECT count(*) FROM relay.activity_log")
    if total < 5_000:
        await conn.execute(
            """INSERT INTO relay.activity_log (ts, action, message_id, queue, entry)
            SELECT now() - make_interval(secs => g), 'acknowledge', 'd' || g, 'plan_standard', '{}'
            FROM generate_series(1, 5000) AS g""")
        total += 5_000
    raw = await conn.fetchval("EXPLAIN (ANALYZE, VERBOSE, FORMAT JSON) " + PAGE_SQL,
                              *ActivityFilter().args(), 50, total - 100)
    plan: dict[str, Any] = json.loads(raw)[0]["Plan"]
    assert _skipped_entry_builders(plan, 50) == [], plan
