"""queue_cleared: a clear or purge removed messages (data loss, possibly by mistake)."""

from __future__ import annotations

from relayq.config import Settings
from relayq.services.anomalies.base import Anomaly, Observation


class QueueCleared:
    """Fires when clear_queue, clear_all_queues or purge_queue removed at least one message."""

    type = "queue_cleared"
    severity = "warning"
    actions = frozenset({"clear_queue", "clear_all_queues", "purge_queue"})

    def __init__(self, settings: Settings) -> None:
        del settings  # fires on any removal

    def check(self, obs: Observation) -> Anomaly | None:
        removed = obs.entry.get("batch_size") or 0
        if removed < 1:
            return None
        where = obs.entry.get("queue") or "all queues"
        return Anomaly(self.type, self.severity, f"{removed} message(s) removed from {where}", 1, removed)
