"""The benchmark's output: a table a person can read and JSON a machine can compare.

The table follows the seed's (Operation | Ops/Sec | Latency Avg | Queries/Op) and adds the
percentiles, messages per second, and Relay's throughput as a fraction of the raw-SQL limit
measured in the same run, which is the figure to compare across machines and runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from relayq.bench.scenarios import SCENARIOS, RunResult


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(math.ceil(q / 100 * len(sorted_values)) - 1, 0)
    return sorted_values[min(rank, len(sorted_values) - 1)]


def latency_summary(samples: Sequence[float]) -> dict[str, float]:
    """avg/p50/p95/p99/max in milliseconds."""
    if not samples:
        return {"avg": 0.0, "p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}
    ordered = sorted(samples)
    return {
        "avg": sum(ordered) / len(ordered) * 1000,
        "p50": percentile(ordered, 50) * 1000,
        "p95": percentile(ordered, 95) * 1000,
        "p99": percentile(ordered, 99) * 1000,
        "max": ordered[-1] * 1000,
    }


@dataclass
class Row:
    """One scenario's outcome: Relay's run and, when measured, the limit's run."""

    relay: RunResult
    limit: RunResult | None = None

    @property
    def vs_limit(self) -> float | None:
        """Relay's messages/s as a fraction of raw SQL's."""
        if self.limit is None or self.limit.items_per_sec <= 0:
            return None
        return self.relay.items_per_sec / self.limit.items_per_sec


def run_to_json(run: RunResult) -> dict[str, Any]:
    """Machine-readable form of one run."""
    return {
        "driver": run.driver,
        "workers": run.workers,
        "elapsed_s": round(run.elapsed, 4),
        "ops": run.ops,
        "messages": run.items,
        "ops_per_sec": round(run.ops_per_sec, 2),
        "messages_per_sec": round(run.items_per_sec, 2),
        "latency_ms": {k: round(v, 3) for k, v in latency_summary(run.primary).items()},
        "steps": {name: {k: round(v, 3) for k, v in latency_summary(values).items()} | {"count": len(values)}
                  for name, values in run.steps.items()},
        "round_trips": run.round_trips,
        "queries_per_op": None if run.queries_per_op is None else round(run.queries_per_op, 4),
        "drained": run.drained,
        "empty_polls": run.empty_polls,
    }


def to_json(config: dict[str, Any], rows: Sequence[Row], errors: dict[str, str]) -> dict[str, Any]:
    """The whole run: configuration, one entry per test, and failures."""
    return {
        "config": config,
        "results": [
            {
                "test": row.relay.scenario,
                "operation": SCENARIOS[row.relay.scenario].label,
                "description": SCENARIOS[row.relay.scenario].description,
                "target_queries_per_op": SCENARIOS[row.relay.scenario].target_queries,
                "relay": run_to_json(row.relay),
                "limit": run_to_json(row.limit) if row.limit is not None else None,
                "vs_limit": None if row.vs_limit is None else round(row.vs_limit, 4),
            }
            for row in rows
        ],
        "errors": errors,
    }


def _ms(value: float) -> str:
    return f"{value:.1f}ms" if value < 100 else f"{value:.0f}ms"


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.1f}"


HEADER = ("Operation", "Ops/Sec", "Msgs/Sec", "Latency Avg", "p50", "p95", "p99", "Queries/Op", "Limit msgs/s",
          "vs limit")


def table(rows: Sequence[Row], rtt_ms: float = 0.0) -> str:
    """The seed's table, extended; composite operations get one indented line per step.

    With an injected latency, `p50/RTT` says how many sequential database round trips a request
    really waited for; it exposes round trips the database layer's counter cannot see (such as
    a connection-pool reset query).
    """
    header = HEADER + (("p50/RTT",) if rtt_ms > 0 else ())
    lines: list[tuple[str, ...]] = [header]

    def per_rtt(p50: float) -> tuple[str, ...]:
        return (f"{p50 / rtt_ms:.2f}",) if rtt_ms > 0 else ()

    for row in rows:
        run = row.relay
        scenario = SCENARIOS[run.scenario]
        lat = latency_summary(run.primary)
        q = run.queries_per_op
        queries = "n/a" if q is None else f"{q:.2f} ({scenario.target_queries:g})"
        label = scenario.label + (" *" if run.drained else "")
        lines.append((
            label, _rate(run.ops_per_sec), _rate(run.items_per_sec), _ms(lat["avg"]), _ms(lat["p50"]),
            _ms(lat["p95"]), _ms(lat["p99"]), queries,
            _rate(row.limit.items_per_sec) if row.limit is not None else "-",
            f"{row.vs_limit:.2f}x" if row.vs_limit is not None else "-", *per_rtt(lat["p50"]),
        ))
        if not scenario.primary_is_step:
            for name, samples in run.steps.items():
                s = latency_summary(samples)
                rate = len(samples) / run.elapsed if run.elapsed > 0 else 0.0
                lines.append((f"  - {name}", _rate(rate), "", _ms(s["avg"]), _ms(s["p50"]), _ms(s["p95"]),
                              _ms(s["p99"]), "", "", "", *per_rtt(s["p50"])))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for n, line in enumerate(lines):
        cells = [line[0].ljust(widths[0])] + [cell.rjust(widths[i]) for i, cell in enumerate(line) if i > 0]
        out.append("| " + " | ".join(cells) + " |")
        if n == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def footnotes(rows: Sequence[Row]) -> str:
    """What the table's markers and columns mean."""
    notes = [
        "Queries/Op: database round trips per operation counted by the server's database layer "
        "(target in brackets).",
        "Msgs/Sec and 'vs limit': messages moved per second, and that as a fraction of the same operations "
        "in raw SQL through asyncpg at the same concurrency, measured in this run.",
    ]
    if any(r.relay.drained or (r.limit is not None and r.limit.drained) for r in rows):
        notes.append("*: the prefilled queue ran dry before the duration ended; rates use the time until then.")
    if any(r.relay.empty_polls for r in rows):
        polls = ", ".join(f"{r.relay.scenario}: {r.relay.empty_polls}" for r in rows if r.relay.empty_polls)
        notes.append(f"Empty dequeue polls (each costs round trips): {polls}.")
    return "\n".join(notes)
