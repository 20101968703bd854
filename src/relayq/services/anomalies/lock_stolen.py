"""lock_stolen: an ack, nack or touch presented a token that is no longer the message's lease.

The message service reports it synchronously (the entry is written before the 409 leaves); the
entry builder marks such entries with `context.lock_stolen`.
"""

from __future__ import annotations

from relayq.config import Settings
from relayq.services.anomalies.base import Anomaly, Observation


class LockStolen:
    """Fires on entries built from a lock_stolen change."""

    type = "lock_stolen"
    severity = "critical"
    actions = frozenset({"acknowledge", "nack", "touch"})

    def __init__(self, settings: Settings) -> None:
        del settings  # no threshold: any stale token is an anomaly

    def check(self, obs: Observation) -> Anomaly | None:
        if not obs.entry["context"].get("lock_stolen"):
            return None
        return Anomaly(self.type, self.severity,
                       "Lock token mismatch - message may have been requeued by another consumer")
