"""long_processing: an ack that came long after the dequeue (slow worker, or a lease nearly lost)."""

from __future__ import annotations

from relayq.config import Settings
from relayq.services.anomalies.base import Anomaly, Observation, rounded


class LongProcessing:
    """Fires when processing_time_ms > ACTIVITY_LONG_PROCESSING_THRESHOLD_MS on acknowledge."""

    type = "long_processing"
    severity = "warning"
    actions = frozenset({"acknowledge"})

    def __init__(self, settings: Settings) -> None:
        self.threshold_ms = settings.long_processing_threshold_ms

    def check(self, obs: Observation) -> Anomaly | None:
        took = obs.entry.get("processing_time_ms")
        if took is None or took <= self.threshold_ms:
            return None
        return Anomaly(self.type, self.severity,
                       f"Processing took {took}ms (threshold {self.threshold_ms}ms)", self.threshold_ms, rounded(took))
