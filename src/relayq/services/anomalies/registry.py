"""The detector registry: which detectors run, looked up by action.

Built from Settings with the twelve standard detectors; `ACTIVITY_DISABLED_DETECTORS` turns some
off. Code can `register` its own detector (anything satisfying `Detector`), or `enable`/`disable`
one by type at run time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from relayq.config import Settings
from relayq.services.anomalies.base import SEVERITY_RANK, Anomaly, Detector, Observation
from relayq.services.anomalies.bulk_delete import BulkDelete
from relayq.services.anomalies.bulk_enqueue import BulkEnqueue
from relayq.services.anomalies.bulk_move import BulkMove
from relayq.services.anomalies.burst_dequeue import BurstDequeue
from relayq.services.anomalies.dlq_movement import DlqMovement
from relayq.services.anomalies.flash_message import FlashMessage
from relayq.services.anomalies.large_payload import LargePayload
from relayq.services.anomalies.lock_stolen import LockStolen
from relayq.services.anomalies.long_processing import LongProcessing
from relayq.services.anomalies.near_dlq import NearDlq
from relayq.services.anomalies.queue_cleared import QueueCleared
from relayq.services.anomalies.zombie_message import ZombieMessage

# An entry carries one `anomaly`: when several fire, the most severe wins, and among equals the
# one listed first here (rarer, per-operation findings before per-message ones: a burst of
# dequeues is usually also a run of flash messages). The others go to `context.other_anomalies`.
STANDARD_DETECTORS: tuple[Callable[[Settings], Detector], ...] = (
    LockStolen, ZombieMessage, BurstDequeue, DlqMovement, NearDlq, LongProcessing, FlashMessage, QueueCleared,
    BulkEnqueue, BulkDelete, BulkMove, LargePayload,
)


class DetectorRegistry:
    """Enabled detectors, indexed by the actions they watch."""

    def __init__(self, detectors: Iterable[Detector] = ()) -> None:
        self._detectors: dict[str, Detector] = {}
        self._disabled: set[str] = set()
        self._by_action: dict[str, list[Detector]] = {}
        for detector in detectors:
            self.register(detector)

    @classmethod
    def from_settings(cls, settings: Settings) -> DetectorRegistry:
        """The standard detectors with the configured thresholds, minus the disabled ones."""
        registry = cls(factory(settings) for factory in STANDARD_DETECTORS)
        for name in settings.disabled_detectors.split(","):
            if name.strip():
                registry.disable(name.strip())
        return registry

    def register(self, detector: Detector) -> None:
        """Add (or replace, by type) a detector; it is enabled."""
        self._detectors[detector.type] = detector
        self._disabled.discard(detector.type)
        self._reindex()

    def enable(self, anomaly_type: str) -> None:
        """Turn a registered detector back on."""
        if anomaly_type not in self._detectors:
            raise KeyError(f"no detector registered for {anomaly_type!r}")
        self._disabled.discard(anomaly_type)
        self._reindex()

    def disable(self, anomaly_type: str) -> None:
        """Stop running a detector (unknown types are accepted, so settings can name future ones)."""
        self._disabled.add(anomaly_type)
        self._reindex()

    def enabled(self) -> list[str]:
        """Types of the detectors that run."""
        return [t for t in self._detectors if t not in self._disabled]

    def detect(self, obs: Observation) -> list[Anomaly]:
        """Every anomaly this entry shows, most severe first."""
        found: list[Anomaly] = []
        for detector in self._by_action.get(obs.entry["action"], ()):
            anomaly = detector.check(obs)
            if anomaly is not None:
                found.append(anomaly)
        if len(found) > 1:
            found.sort(key=lambda a: -SEVERITY_RANK.get(a.severity, 0))
        return found

    def _reindex(self) -> None:
        self._by_action = {}
        for anomaly_type, detector in self._detectors.items():
            if anomaly_type in self._disabled:
                continue
            for action in detector.actions:
                self._by_action.setdefault(action, []).append(detector)
