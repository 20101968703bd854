"""flash_message: a message dequeued almost as soon as it was created (a hot loop or a test leak)."""

from __future__ import annotations

from relayq.config import Settings
from relayq.services.anomalies.base import Anomaly, Observation, rounded


class FlashMessage:
    """Fires when time_in_queue_ms < ACTIVITY_FLASH_MESSAGE_THRESHOLD_MS on a dequeue."""

    type = "flash_message"
    severity = "warning"
    actions = frozenset({"dequeue"})

    def __init__(self, settings: Settings) -> None:
        self.threshold_ms = settings.flash_message_threshold_ms

    def check(self, obs: Observation) -> Anomaly | None:
        waited = obs.entry.get("time_in_queue_ms")
        if waited is None or waited >= self.threshold_ms:
            return None
        return Anomaly(self.type, self.severity,
                       f"Message dequeued {waited:.0f}ms after creation (threshold {self.threshold_ms}ms)",
                       self.threshold_ms, rounded(waited))
