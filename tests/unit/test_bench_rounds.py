"""`relay bench --rounds`: alternated rounds of one scenario add up to one run."""

from __future__ import annotations

from relayq.bench.scenarios import RunResult, merge_runs


def run(elapsed: float, ops: int, latencies: list[float], trips: int | None) -> RunResult:
    return RunResult(scenario="enqueue", driver="relay-http", workers=4, elapsed=elapsed, ops=ops, items=ops * 2,
                     primary=latencies, steps={"enqueue": latencies}, round_trips=trips, drained=True,
                     empty_polls=1, requests=ops)


def test_rounds_add_up() -> None:
    merged = merge_runs([run(2.0, 100, [0.1, 0.2], 30), run(3.0, 200, [0.3], 50)])
    assert (merged.elapsed, merged.ops, merged.items, merged.requests, merged.empty_polls) == (5.0, 300, 600, 300, 2)
    assert merged.primary == [0.1, 0.2, 0.3] and merged.steps == {"enqueue": [0.1, 0.2, 0.3]}
    assert merged.ops_per_sec == 60.0 and merged.queries_per_op == 80 / 300
    assert merge_runs([run(1.0, 1, [], 3), run(1.0, 1, [], None)]).round_trips is None  # unknown stays unknown


def test_one_round_is_the_run_itself() -> None:
    only = run(1.0, 10, [0.1], 5)
    assert merge_runs([only]) is only
