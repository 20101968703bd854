"""Process-wide counters and histograms, rendered in the Prometheus text format at GET /metrics.

Bumping a counter is a dict update, so the core and the change listeners can call it on every
operation. Values that already live elsewhere (database round trips, buffer sizes, queue depths)
are not copied here; they are read through `collectors` at scrape time.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from relayq.services.changes import Change

Labels = tuple[tuple[str, str], ...]
Sample = tuple[str, Labels, float]

# HTTP latency buckets in seconds: the hot path answers in ~1 ms, long polls in seconds.
HTTP_BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# Message counters per queue, by change action (a change counts its rows).
ACTION_COUNTERS: dict[str, str] = {
    "enqueue": "relayq_messages_enqueued_total",
    "dequeue": "relayq_messages_dequeued_total",
    "acknowledge": "relayq_messages_acked_total",
    "nack": "relayq_messages_nacked_total",
    "move_to_dlq": "relayq_messages_nacked_total",
    "timeout_requeue": "relayq_lease_expiries_total",
    "timeout_to_dlq": "relayq_lease_expiries_total",
}
DEAD_ACTIONS = frozenset({"move_to_dlq", "timeout_to_dlq"})

HELP: dict[str, tuple[str, str]] = {
    "relayq_messages_enqueued_total": ("counter", "Messages stored by enqueue, batch enqueue or import"),
    "relayq_messages_dequeued_total": ("counter", "Deliveries (leases handed out)"),
    "relayq_messages_acked_total": ("counter", "Messages acknowledged"),
    "relayq_messages_nacked_total": ("counter", "Messages negatively acknowledged (requeued or dead-lettered)"),
    "relayq_messages_dead_total": ("counter", "Messages moved to the dead state by nack or the reaper"),
    "relayq_lease_expiries_total": ("counter", "Leases reclaimed by the reaper"),
    "relayq_http_request_duration_seconds": ("histogram", "HTTP request latency by method, route and status"),
}


@dataclass(slots=True)
class Histogram:
    """Cumulative-bucket histogram (Prometheus semantics)."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    observations: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.bounds)

    def observe(self, value: float) -> None:
        """Count one observation in the first bucket that holds it."""
        index = bisect.bisect_left(self.bounds, value)
        if index < len(self.counts):
            self.counts[index] += 1
        self.total += value
        self.observations += 1


Collector = Callable[[], Iterable[Sample]]


class Metrics:
    """Counters bumped in-process, plus collectors read at scrape time."""

    def __init__(self) -> None:
        self.counters: dict[tuple[str, Labels], float] = defaultdict(float)
        self.histograms: dict[tuple[str, Labels], Histogram] = {}
        self.collectors: list[tuple[str, str, str, Collector]] = []

    def inc(self, name: str, labels: Labels = (), value: float = 1.0) -> None:
        """Add to a counter."""
        self.counters[(name, labels)] += value

    def observe(self, name: str, labels: Labels, value: float, bounds: tuple[float, ...] = HTTP_BUCKETS) -> None:
        """Record one histogram observation."""
        key = (name, labels)
        histogram = self.histograms.get(key)
        if histogram is None:
            histogram = self.histograms[key] = Histogram(bounds)
        histogram.observe(value)

    def register(self, name: str, kind: str, help_text: str, collector: Collector) -> None:
        """Add a gauge/counter family whose samples are computed at scrape time."""
        self.collectors.append((name, kind, help_text, collector))

    def on_change(self, change: Change) -> None:
        """ChangeHub listener: per-queue message counters."""
        name = ACTION_COUNTERS.get(change.action)
        if name is None or change.queue is None:
            return
        labels = (("queue", change.queue),)
        count = len(change.rows) or 1
        self.counters[(name, labels)] += count
        if change.action in DEAD_ACTIONS:
            self.counters[("relayq_messages_dead_total", labels)] += count

    def render(self, extra: Iterable[tuple[str, str, str, list[Sample]]] = ()) -> str:
        """The Prometheus text exposition of everything (plus `extra` families computed by the caller)."""
        lines: list[str] = []
        families: dict[str, list[tuple[Labels, float]]] = defaultdict(list)
        for (name, labels), value in sorted(self.counters.items()):
            families[name].append((labels, value))
        for name, samples in families.items():
            kind, help_text = HELP.get(name, ("counter", name))
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
            lines += [f"{name}{_labels(labels)} {_number(value)}" for labels, value in samples]
        hist_names = sorted({name for name, _ in self.histograms})
        for name in hist_names:
            kind, help_text = HELP.get(name, ("histogram", name))
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
            for (hname, labels), hist in sorted(self.histograms.items(), key=lambda kv: kv[0]):
                if hname != name:
                    continue
                running = 0
                for bound, count in zip(hist.bounds, hist.counts, strict=True):
                    running += count
                    lines.append(f"{name}_bucket{_labels((*labels, ('le', _number(bound))))} {running}")
                lines.append(f"{name}_bucket{_labels((*labels, ('le', '+Inf')))} {hist.observations}")
                lines.append(f"{name}_sum{_labels(labels)} {_number(hist.total)}")
                lines.append(f"{name}_count{_labels(labels)} {hist.observations}")
        computed = [(n, k, h, list(c())) for n, k, h, c in self.collectors]
        for family, kind, help_text, family_samples in [*computed, *extra]:
            lines += [f"# HELP {family} {help_text}", f"# TYPE {family} {kind}"]
            lines += [f"{sample}{_labels(labels)} {_number(value)}" for sample, labels, value in family_samples]
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{key}="{_escape(value)}"' for key, value in labels) + "}"


def _number(value: float) -> str:
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def queue_depths(count_rows: Iterable[Mapping[str, Any]]) -> list[Sample]:
    """Messages per (queue, status), summed over priorities from the trigger-maintained counter
    rows that /queues reads too (QueueService.count_rows): a scrape every few seconds must not
    count millions of messages."""
    depths: dict[tuple[str, str], int] = defaultdict(int)
    for row in count_rows:
        depths[(row["queue_name"], row["status"])] += row["n"]
    return [("relayq_queue_depth", (("queue", queue), ("status", status)), n)
            for (queue, status), n in sorted(depths.items()) if n > 0]
