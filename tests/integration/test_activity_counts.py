"""relay.activity_counts (migration 0017) follows every write to the activity log: the counts
GET /queue/activity answers from must equal a count(*) of the log after inserts (COPY),
retention, a queue rename, a queue delete and a clear."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from relayq.runtime import Relay
from relayq.services.activity.store import ActivityFilter, to_record
from tests.support.inprocess import ext, inprocess_relay

ACTIONS = ("enqueue", "dequeue", "acknowledge")


async def _counts(r: Relay, queues: list[str]) -> tuple[dict[Any, int], dict[Any, int]]:
    """(count(*) of the log, the counters) per (queue, action) of `queues`."""
    logged = await r.db.fetch("SELECT queue, action, count(*) AS n FROM relay.activity_log "
                              "WHERE queue = ANY($1) GROUP BY 1, 2", queues)
    counted = await r.db.fetch("SELECT queue, action, sum(n)::bigint AS n FROM relay.activity_counts "
                               "WHERE queue = ANY($1) GROUP BY 1, 2 HAVING sum(n) <> 0", queues)
    return ({(x["queue"], x["action"]): x["n"] for x in logged}, {(x["queue"], x["action"]): x["n"] for x in counted})


async def test_the_counters_follow_every_write(database_url: str) -> None:
    tag = secrets.token_hex(4)
    a, b, renamed = f"cnt_a_{tag}", f"cnt_b_{tag}", f"cnt_c_{tag}"
    names = [a, b, renamed]
    async with inprocess_relay(database_url, ACTIVITY_LOG_RETENTION_HOURS="2") as r:
        for name in (a, b):
            await r.queues.create({"name": name, "queue_type": "standard", "ack_timeout_seconds": 30,
                                   "max_attempts": 3})
        now = datetime.now(UTC)
        entries = [to_record(now - timedelta(hours=3 * (i % 2)), {
            "action": ACTIONS[i % 3], "message_id": f"m{i}", "queue": (a, b)[i % 2], "consumer_id": None})
            for i in range(60)]
        await ext(r).store.insert(entries)
        logged, counted = await _counts(r, names)
        assert logged == counted and sum(logged.values()) >= 60

        await ext(r).retention.run_once()  # half of them are 3 hours old
        logged, counted = await _counts(r, names)
        assert logged == counted and sum(logged.values()) < 60

        await r.queues.rename(a, renamed)
        logged, counted = await _counts(r, names)
        assert logged == counted and not any(queue == a for queue, _ in logged)

        await r.queues.delete(renamed, True)
        logged, counted = await _counts(r, names)
        assert logged == counted
        assert not await r.db.fetchval("SELECT count(*) FROM relay.activity_counts WHERE queue = $1", renamed)

        _, by_action, exact = await ext(r).store.list_entries(ActivityFilter(queue=b), 5, 0)
        assert exact and by_action == {action: n for (queue, action), n in logged.items() if queue == b}


async def test_listing_reads_are_planned_with_their_values(database_url: str) -> None:
    """The admin listings' and the activity log's `($n IS NULL OR ...)` filters reach an index
    only in a plan made with the values: their transactions force custom plans, whatever the
    database's plan_cache_mode (a review found the generic plans reading whole tables)."""
    async with inprocess_relay(database_url) as r:
        async with r.admin._reader() as tx:
            assert await tx.fetchval("SHOW plan_cache_mode") == "force_custom_plan"
        assert await r.db.fetchval("SHOW plan_cache_mode") == "auto"  # SET LOCAL: nothing leaks
