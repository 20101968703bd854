"""The shared shape of bulk_enqueue, bulk_delete and bulk_move: one anomaly per large operation."""

from __future__ import annotations

from relayq.config import Settings
from relayq.services.anomalies.base import Anomaly, Observation


class BulkOperation:
    """Fires once per operation (on its first entry) whose batch_size >= ACTIVITY_BULK_OPERATION_THRESHOLD."""

    type = "bulk_operation"
    severity = "info"
    actions: frozenset[str] = frozenset()
    verb = "processed"

    def __init__(self, settings: Settings) -> None:
        self.threshold = settings.bulk_operation_threshold

    def check(self, obs: Observation) -> Anomaly | None:
        size = obs.entry.get("batch_size")
        if not obs.first_of_change or size is None or size < self.threshold:
            return None
        return Anomaly(self.type, self.severity,
                       f"Bulk operation: {size} messages {self.verb} at once (threshold {self.threshold})",
                       self.threshold, size)
