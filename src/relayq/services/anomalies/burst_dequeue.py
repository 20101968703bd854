"""burst_dequeue: one consumer leasing many messages in a short window.

Each consumer keeps the times of its last N dequeues (N = the threshold count, so any threshold
works and memory is bounded by it): the window is full and younger than S seconds exactly when
N dequeues happened within S seconds. After firing, the consumer is quiet for S seconds, so
there is at most one anomaly per consumer per window.
"""

from __future__ import annotations

from collections import deque

from relayq.config import Settings
from relayq.services.anomalies.base import Anomaly, Observation

# Forget consumers idle for longer than the window once this many are tracked.
PRUNE_AT = 10_000


class BurstDequeue:
    """Fires when one consumer makes >= COUNT dequeues within SECONDS."""

    type = "burst_dequeue"
    severity = "warning"
    actions = frozenset({"dequeue"})

    def __init__(self, settings: Settings) -> None:
        self.count = max(settings.burst_threshold_count, 1)
        self.seconds = settings.burst_threshold_seconds
        self._recent: dict[str, deque[float]] = {}
        self._quiet_until: dict[str, float] = {}

    def check(self, obs: Observation) -> Anomaly | None:
        consumer = obs.entry.get("consumer_id") or "unknown"
        recent = self._recent.get(consumer)
        if recent is None:
            if len(self._recent) >= PRUNE_AT:
                self._prune(obs.at)
            recent = self._recent[consumer] = deque(maxlen=self.count)
        recent.append(obs.at)
        if len(recent) < self.count or obs.at - recent[0] > self.seconds:
            return None
        if obs.at < self._quiet_until.get(consumer, 0.0):
            return None
        self._quiet_until[consumer] = obs.at + self.seconds
        span = obs.at - recent[0]
        return Anomaly(self.type, self.severity,
                       f"Consumer {consumer} dequeued {self.count} messages in {span:.2f}s "
                       f"(threshold {self.count} in {self.seconds:g}s)",
                       self.count, self.count)

    def _prune(self, now: float) -> None:
        for consumer in [c for c, times in self._recent.items() if now - times[-1] > self.seconds]:
            del self._recent[consumer]
            self._quiet_until.pop(consumer, None)
