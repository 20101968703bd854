"""The activity log service: changes in, anomaly-annotated entries out, written in batches.

`on_change` (a ChangeHub listener) only appends the change to a bounded buffer; building
entries, running detectors and inserting happen in the flusher. `persist` (a durable listener)
writes lock_stolen and admin-deletion entries before the request answers.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from relayq.config import Settings
from relayq.services.activity.entries import build_entries
from relayq.services.activity.store import ActivityStore, Record, to_record
from relayq.services.anomalies import DetectorRegistry, Observation
from relayq.services.batching import BatchBuffer
from relayq.services.changes import Change

# Changes whose entries are written synchronously via publish_durable (API.md §6). They arrive
# through `on_change` too (publish_durable publishes first), where they are skipped.
DURABLE_ACTIONS = frozenset({"lock_stolen", "delete", "bulk_delete", "purge_queue", "clear_queue", "clear_all_queues"})


class ActivityLog:
    """Buffered activity writer with anomaly detection."""

    def __init__(self, settings: Settings, store: ActivityStore, detectors: DetectorRegistry) -> None:
        self.settings = settings
        self.store = store
        self.detectors = detectors
        self.payload_limit = settings.activity_payload_max_bytes
        self.buffer: BatchBuffer[Change] = BatchBuffer(
            "activity-log", self._write_changes, capacity=settings.activity_buffer_max,
            flush_size=settings.activity_flush_size, interval=settings.activity_flush_interval_ms / 1000,
            cost=lambda change: max(len(change.rows), 1),
        )
        # Records of a batch whose write failed, by id(change): a retry must not run the
        # (stateful) detectors on the same events twice. Holding the change keeps its id unique.
        self._prepared: dict[int, tuple[Change, list[Record]]] = {}

    def on_change(self, change: Change) -> None:
        """ChangeHub listener: O(1) append (queue deletes and renames also fix what is waiting)."""
        if change.action in DURABLE_ACTIONS:
            return
        if change.action == "delete_queue":
            self._forget_queue(change.queue)
        elif change.action == "rename_queue":
            self._rename_queue(change.context.get("old_name"), change.queue)
        self.buffer.offer(change)

    async def persist(self, changes: Sequence[Change]) -> None:
        """Durable listener: write these changes' entries now (before the response), in one insert."""
        records = self.records(c for c in changes if c.action in DURABLE_ACTIONS)
        if not records:
            return
        try:
            await self.store.insert(records)
        except Exception:
            self.buffer.dropped += len(records)
            raise

    def records(self, changes: Iterable[Change]) -> list[Record]:
        """Entries of these changes, in order, each with the anomaly it shows (if any)."""
        records: list[Record] = []
        for change in changes:
            at = _utc(change.at)
            for entry, first in build_entries(change, self.payload_limit):
                self._annotate(entry, change.at, first)
                records.append(to_record(at, entry))
        return records

    async def clear(self) -> None:
        """DELETE /queue/activity/clear: stored entries, stats, and whatever is still waiting."""
        self.buffer.clear()
        self._prepared.clear()
        await self.store.clear()

    def _annotate(self, entry: dict[str, Any], at: float, first: bool) -> None:
        found = self.detectors.detect(Observation(entry, at, first))
        if not found:
            return
        entry["anomaly"] = found[0].to_wire()
        if len(found) > 1:  # one entry, one `anomaly`: the rest stay visible in the context
            entry["context"] = {**entry["context"], "other_anomalies": [a.to_wire() for a in found[1:]]}

    async def _write_changes(self, changes: list[Change]) -> None:
        per_change = [self._prepared.pop(id(c), (c, None))[1] or self.records([c]) for c in changes]
        try:
            await self.store.insert([r for recs in per_change for r in recs])
        except Exception:
            if len(self._prepared) > self.settings.activity_buffer_max:
                self._prepared.clear()  # changes dropped meanwhile: never let this grow
            self._prepared.update((id(c), (c, recs)) for c, recs in zip(changes, per_change, strict=True))
            raise

    def _forget_queue(self, queue: str | None) -> None:
        kept = [c for c in self.buffer.items if c.queue != queue]
        self.buffer.clear()
        for change in kept:
            self.buffer.offer(change)

    def _rename_queue(self, old: Any, new: str | None) -> None:
        for change in self.buffer.items:
            if change.queue == old:
                change.queue = new


@functools.lru_cache(maxsize=64)
def _utc(at: float) -> datetime:
    """The timestamp column's value; cached, since the changes of one coalesced statement share
    their time and a datetime costs a call per entry."""
    return datetime.fromtimestamp(at, UTC)
