"""zombie_message: a lease the reaper found long past its deadline (a stalled reaper or server)."""

from __future__ import annotations

from relayq.config import Settings
from relayq.services.anomalies.base import Anomaly, Observation, rounded


class ZombieMessage:
    """Fires when a reclaimed lease was overdue by > ACTIVITY_ZOMBIE_THRESHOLD_MULTIPLIER x ack timeout."""

    type = "zombie_message"
    severity = "critical"
    actions = frozenset({"timeout_requeue", "timeout_to_dlq"})

    def __init__(self, settings: Settings) -> None:
        self.multiplier = settings.zombie_threshold_multiplier

    def check(self, obs: Observation) -> Anomaly | None:
        overdue = obs.entry["context"].get("overdue_seconds")
        timeout = obs.entry["context"].get("ack_timeout_seconds")
        if overdue is None or timeout is None:
            return None
        limit = self.multiplier * timeout
        if overdue <= limit:
            return None
        return Anomaly(self.type, self.severity,
                       f"Lease overdue by {overdue:.1f}s, more than {self.multiplier:g} x ack timeout ({timeout}s)",
                       limit, rounded(overdue))
