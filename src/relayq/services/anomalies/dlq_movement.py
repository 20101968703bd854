"""dlq_movement: a message reached the dead state (nack with no attempts left, or lease expiry)."""

from __future__ import annotations

from relayq.config import Settings
from relayq.services.anomalies.base import Anomaly, Observation


class DlqMovement:
    """Fires on every move_to_dlq and timeout_to_dlq entry."""

    type = "dlq_movement"
    severity = "warning"
    actions = frozenset({"move_to_dlq", "timeout_to_dlq"})

    def __init__(self, settings: Settings) -> None:
        del settings  # no threshold

    def check(self, obs: Observation) -> Anomaly | None:
        reason = obs.entry.get("error_reason") or "attempts exhausted"
        return Anomaly(self.type, self.severity, f"Message moved to the dead-letter queue: {reason}")
