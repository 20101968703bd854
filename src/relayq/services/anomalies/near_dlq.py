"""near_dlq: a nack left the message one (or a few) attempts away from the dead-letter state."""

from __future__ import annotations

from relayq.config import Settings
from relayq.services.anomalies.base import Anomaly, Observation


class NearDlq:
    """Fires when a requeueing nack leaves 0 < attempts_remaining <= ACTIVITY_NEAR_DLQ_THRESHOLD."""

    type = "near_dlq"
    severity = "warning"
    actions = frozenset({"nack"})

    def __init__(self, settings: Settings) -> None:
        self.threshold = settings.near_dlq_threshold

    def check(self, obs: Observation) -> Anomaly | None:
        remaining = obs.entry.get("attempts_remaining")
        if remaining is None or not 0 < remaining <= self.threshold:
            return None
        return Anomaly(self.type, self.severity,
                       f"Message has {remaining} attempt(s) left before the dead-letter queue",
                       self.threshold, remaining)
