"""Consumer stats per (consumer, queue): counted in memory, added to relay.consumer_stats in batches.

The in-memory aggregate is bounded by the number of distinct (consumer, queue) pairs, not by
traffic: a burst of dequeues only bumps integers. Reads merge what is not yet written, so a
stats request made after a dequeue answered includes it (read-your-writes in one process).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from relayq.db.database import Database
from relayq.db.queries import load_named
from relayq.services.changes import Change
from relayq.services.passes import uncancelled, worth_logging

log = logging.getLogger("relayq.stats")
SQL = load_named("activity.sql")
# Both statements that add counts to stored totals share one ON CONFLICT clause.
UPSERT_SQL = SQL["stats_upsert"].replace("{stats_add}", SQL["stats_add"])
RENAME_SQL = SQL["stats_rename"].replace("{stats_add}", SQL["stats_add"])  # used by QueueService.rename
UNKNOWN_CONSUMER = "unknown"
# Beyond this many distinct pairs waiting to be written, new pairs are dropped (and counted).
MAX_PENDING_PAIRS = 100_000
FAIL_ACTIONS = frozenset({"nack", "move_to_dlq", "timeout_requeue", "timeout_to_dlq"})


@dataclass(slots=True)
class Counts:
    """Deltas (or totals) for one (consumer, queue)."""

    dequeued: int = 0
    acked: int = 0
    failed: int = 0
    last_dequeue: float | None = None
    last_ack: float | None = None

    def add(self, other: Counts) -> None:
        """Merge another set of counts into this one."""
        self.dequeued += other.dequeued
        self.acked += other.acked
        self.failed += other.failed
        self.last_dequeue = _latest(self.last_dequeue, other.last_dequeue)
        self.last_ack = _latest(self.last_ack, other.last_ack)


def _latest(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


Key = tuple[str, str]


class ConsumerStats:
    """ChangeHub listener plus flusher for consumer stats."""

    def __init__(self, db: Database, interval: float) -> None:
        self.db = db
        self.interval = interval
        self.pending: dict[Key, Counts] = {}
        self.inflight: dict[Key, Counts] = {}
        self.dropped = 0
        self.flushes = 0
        self._lock = asyncio.Lock()

    def on_change(self, change: Change) -> None:
        """Count dequeues, acks and failures per consumer and queue."""
        action = change.action
        if action == "dequeue":
            key = (change.consumer_id or UNKNOWN_CONSUMER, change.queue or "")
            counts = self._counts(key)
            if counts is not None:
                counts.dequeued += len(change.rows)
                counts.last_dequeue = change.at
        elif action == "acknowledge":
            for row in change.rows:
                counts = self._counts((row.get("consumer_id") or UNKNOWN_CONSUMER, row["queue_name"]))
                if counts is not None:
                    counts.acked += 1
                    counts.last_ack = change.at
        elif action in FAIL_ACTIONS:
            for row in change.rows:
                consumer = row.get("prev_consumer_id") or row.get("consumer_id") or UNKNOWN_CONSUMER
                counts = self._counts((consumer, row["queue_name"]))
                if counts is not None:
                    counts.failed += 1
        elif action == "delete_queue":
            self._drop_queue(change.queue)
        elif action == "rename_queue":
            self._rename_queue(change.context.get("old_name"), change.queue)

    def _counts(self, key: Key) -> Counts | None:
        counts = self.pending.get(key)
        if counts is None:
            if len(self.pending) >= MAX_PENDING_PAIRS:
                self.dropped += 1
                return None
            counts = self.pending[key] = Counts()
        return counts

    async def flush(self) -> int:
        """Add the pending deltas to the table in one statement; on an outage they wait for the next try."""
        async with self._lock:
            if not self.pending:
                return 0
            self.inflight, self.pending = self.pending, {}
            # Sorted: every process then locks the rows it adds to in one order (two servers'
            # flushes, each in its own order, deadlocked now and then).
            keys = sorted(self.inflight)
            values = [self.inflight[k] for k in keys]
            try:
                async with self.db.pool.acquire(timeout=self.db.settings.connect_timeout) as conn:
                    await conn.execute(
                        UPSERT_SQL, [k[0] for k in keys], [k[1] for k in keys],
                        [v.dequeued for v in values], [v.acked for v in values], [v.failed for v in values],
                        [v.last_dequeue for v in values], [v.last_ack for v in values], timeout=10,
                    )
            except Exception:  # outage or not: keep the deltas (bounded by pairs) for the next try
                self._merge_back()
                raise
            self.inflight = {}
            self.flushes += 1
            return len(keys)

    async def read(self, consumer_id: str | None) -> dict[str, dict[str, Counts]]:
        """Stored totals plus unwritten deltas, by consumer then queue."""
        async with self._lock:  # a flush in progress would otherwise be counted twice or not at all
            rows = await self.db.fetch(SQL["stats_select"], consumer_id)
            result: dict[str, dict[str, Counts]] = {}
            for row in rows:
                result.setdefault(row["consumer_id"], {})[row["queue"]] = Counts(
                    row["dequeue_count"], row["ack_count"], row["fail_count"], row["last_dequeue"], row["last_ack"])
            for (consumer, queue), delta in self.pending.items():
                if consumer_id is None or consumer == consumer_id:
                    result.setdefault(consumer, {}).setdefault(queue, Counts()).add(delta)
            return result

    def clear(self) -> None:
        """Forget unwritten deltas (the stats were just cleared)."""
        self.pending = {}

    async def run(self) -> None:
        """Flush every interval until cancelled.

        While the database is away every flush fails (ten a second): only the failures that are
        worth_logging, and the recovery once.
        """
        failures = 0
        while True:
            await asyncio.sleep(self.interval)
            try:
                await uncancelled(self.flush())  # at shutdown too: its counts are then stored or pending
            except Exception as exc:
                failures += 1
                if worth_logging(failures):
                    log.warning("consumer stats flush failed (%s, %d in a row); the counts wait in memory",
                                type(exc).__name__, failures)
                continue
            if failures:
                log.info("consumer stats written again after %d failed flushes", failures)
                failures = 0

    def _merge_back(self) -> None:
        for key, counts in self.inflight.items():
            self.pending.setdefault(key, Counts()).add(counts)
        self.inflight = {}

    def _drop_queue(self, queue: str | None) -> None:
        self.pending = {k: v for k, v in self.pending.items() if k[1] != queue}

    def _rename_queue(self, old: Any, new: str | None) -> None:
        if new is None:
            return
        moved = {k: v for k, v in self.pending.items() if k[1] == old}
        for (consumer, _), counts in moved.items():
            del self.pending[(consumer, old)]
            self.pending.setdefault((consumer, new), Counts()).add(counts)


def stats_to_wire(
    stats: Mapping[str, Mapping[str, Counts]], queue: str | None = None
) -> dict[str, dict[str, Any]]:
    """GET /queue/activity/consumers: per consumer totals (original fields) plus a per-queue breakdown.

    With `queue`, only that queue's counts are kept, and consumers that never touched it are left out.
    """
    out: dict[str, dict[str, Any]] = {}
    for consumer, all_queues in stats.items():
        per_queue = {q: c for q, c in all_queues.items() if queue is None or q == queue}
        if not per_queue:
            continue
        total = Counts()
        for counts in per_queue.values():
            total.add(counts)
        out[consumer] = {**_counts_to_wire(total), "queues": {q: _counts_to_wire(c) for q, c in per_queue.items()}}
    return out


def _counts_to_wire(c: Counts) -> dict[str, int]:
    return {"dequeue_count": c.dequeued, "last_dequeue": int(c.last_dequeue or 0), "ack_count": c.acked,
            "fail_count": c.failed, "last_ack": int(c.last_ack or 0)}
