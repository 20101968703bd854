"""large_payload: an enqueued payload above the size threshold (slow to move, costly to store)."""

from __future__ import annotations

from relayq.config import Settings
from relayq.services.anomalies.base import Anomaly, Observation


class LargePayload:
    """Fires when payload_size > ACTIVITY_LARGE_PAYLOAD_THRESHOLD_BYTES on enqueue."""

    type = "large_payload"
    severity = "info"
    actions = frozenset({"enqueue"})

    def __init__(self, settings: Settings) -> None:
        self.threshold = settings.large_payload_threshold_bytes

    def check(self, obs: Observation) -> Anomaly | None:
        size = obs.entry.get("payload_size_bytes")
        if size is None or size <= self.threshold:
            return None
        return Anomaly(self.type, self.severity, f"Payload is {size} bytes (threshold {self.threshold} bytes)",
                       self.threshold, size)
