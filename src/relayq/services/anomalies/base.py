"""The detector interface: one small protocol every anomaly detector implements.

A detector looks at one activity entry at a time (off the request path, in the activity
flusher) and returns an `Anomaly` or None. Thresholds come from Settings when it is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

SEVERITY_RANK: dict[str, int] = {"info": 1, "warning": 2, "critical": 3}


@dataclass(frozen=True, slots=True)
class Anomaly:
    """What a detector found; stored in the `anomaly` field of the entry that triggered it."""

    type: str
    severity: str
    description: str
    threshold: float | None = None
    actual: float | None = None

    def to_wire(self) -> dict[str, Any]:
        """The API's `{type, severity, description[, threshold, actual]}` object."""
        out: dict[str, Any] = {"type": self.type, "severity": self.severity, "description": self.description}
        if self.threshold is not None:
            out["threshold"] = self.threshold
        if self.actual is not None:
            out["actual"] = self.actual
        return out


@dataclass(frozen=True, slots=True)
class Observation:
    """One activity entry about to be written, as a detector sees it."""

    entry: dict[str, Any]
    at: float  # event time, Unix seconds
    # True for the first entry built from one operation: bulk detectors fire once per operation.
    first_of_change: bool = True


class Detector(Protocol):
    """An anomaly detector: `check` runs only for entries whose action is in `actions`."""

    type: str
    severity: str
    actions: frozenset[str]

    def check(self, obs: Observation) -> Anomaly | None:
        """Return the anomaly this entry shows, or None."""
        ...


def rounded(value: float) -> float:
    """Milliseconds and sizes are reported with at most two decimals."""
    return round(value, 2)
