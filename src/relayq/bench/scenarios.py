"""The benchmark's tests, written once against `Driver`, and the timed loop that runs them.

Each test has a set-up that is not measured (a fresh queue, prefilled or pre-leased rows written
straight into the table with one INSERT ... SELECT so set-up time never eats into the run), a
warm-up (so prepared statements and pool connections exist before the clock starts), then
`workers` coroutines that repeat the test's operation until the duration is up. Every operation
records its own latency; composite operations (a full cycle) also record each step.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from relayq.bench.drivers import Driver, Lease, payload_text

perf = time.perf_counter


@dataclass
class Recorder:
    """Latencies (seconds) of the primary operation and of its named steps, for one run."""

    primary: list[float] = field(default_factory=list)
    steps: dict[str, list[float]] = field(default_factory=dict)
    items: int = 0
    empty_polls: int = 0

    def step(self, name: str, seconds: float) -> None:
        """Record one step of a composite operation."""
        self.steps.setdefault(name, []).append(seconds)


@dataclass
class TestState:
    """What one run of a test works on: its queue and any pre-leased messages."""

    queue: str
    batch_size: int
    leases: list[Lease] = field(default_factory=list)


# An operation returns the messages it moved, or None when the queue ran dry (ends the run).
Operation = Callable[[Driver, TestState, Recorder, int], Awaitable[int | None]]


async def _timed(rec: Recorder, step: str, call: Awaitable[Any]) -> Any:
    started = perf()
    result = await call
    rec.step(step, perf() - started)
    return result


async def op_enqueue(d: Driver, s: TestState, rec: Recorder, worker: int) -> int | None:
    """One single-message enqueue."""
    await d.enqueue(s.queue)
    return 1


async def op_batch(d: Driver, s: TestState, rec: Recorder, worker: int) -> int | None:
    """One batch enqueue of `batch_size` messages."""
    await d.enqueue_batch(s.queue, s.batch_size)
    return s.batch_size


async def op_dequeue(d: Driver, s: TestState, rec: Recorder, worker: int) -> int | None:
    """One single-message dequeue from a prefilled queue (leases are left to expire)."""
    return 1 if await d.dequeue(s.queue) is not None else None


async def op_ack(d: Driver, s: TestState, rec: Recorder, worker: int) -> int | None:
    """One single ack of a message leased during set-up."""
    if not s.leases:
        return None
    await d.ack(s.leases.pop())
    return 1


async def op_nack(d: Driver, s: TestState, rec: Recorder, worker: int) -> int | None:
    """One single nack (requeue) of a message leased during set-up."""
    if not s.leases:
        return None
    await d.nack(s.leases.pop())
    return 1


async def op_batch_dequeue(d: Driver, s: TestState, rec: Recorder, worker: int) -> int | None:
    """A batch dequeue of `batch_size` then one batch ack of what came back."""
    leases: list[Lease] = await _timed(rec, "batch dequeue", d.dequeue_batch(s.queue, s.batch_size))
    if not leases:
        return None
    await _timed(rec, "batch ack", d.ack_batch(leases))
    return len(leases)


async def op_cycle(d: Driver, s: TestState, rec: Recorder, worker: int) -> int | None:
    """Enqueue one, dequeue one, ack it: what a producer and a worker cost per message."""
    await _timed(rec, "enqueue", d.enqueue(s.queue))
    lease: Lease | None = await _timed(rec, "dequeue", d.dequeue(s.queue))
    if lease is None:  # cannot happen: each worker enqueues before it dequeues
        rec.empty_polls += 1
        return 0
    await _timed(rec, "ack", d.ack(lease))
    return 1


async def op_batch_cycle(d: Driver, s: TestState, rec: Recorder, worker: int) -> int | None:
    """Batch enqueue, batch dequeue, batch ack of `batch_size` messages."""
    await _timed(rec, "batch enqueue", d.enqueue_batch(s.queue, s.batch_size))
    leases: list[Lease] = await _timed(rec, "batch dequeue", d.dequeue_batch(s.queue, s.batch_size))
    if not leases:  # other workers' batches took every row (SKIP LOCKED); costs round trips
        rec.empty_polls += 1
        return 0
    await _timed(rec, "batch ack", d.ack_batch(leases))
    return len(leases)


async def op_concurrent(d: Driver, s: TestState, rec: Recorder, worker: int) -> int | None:
    """Even workers produce single messages, odd workers consume them (dequeue + ack).

    Only consumed messages count as operations; an empty poll backs off 5 ms, as a polling
    worker would, and is counted (it costs round trips, which show in Queries/Op).
    """
    if worker % 2 == 0:
        await _timed(rec, "enqueue", d.enqueue(s.queue))
        return 0
    lease: Lease | None = await _timed(rec, "dequeue", d.dequeue(s.queue))
    if lease is None:
        rec.empty_polls += 1
        await asyncio.sleep(0.005)
        return 0
    await _timed(rec, "ack", d.ack(lease))
    return 1


@dataclass(frozen=True, slots=True)
class Scenario:
    """One `--test` value."""

    name: str
    label: str
    op: Operation
    target_queries: float  # round trips per operation that Relay must not exceed (SPEC)
    batched: bool = False  # one operation moves `batch_size` messages
    prefill_rate: float = 0.0  # messages/s to prefill for (0: none); sized by duration
    lease_prefill: bool = False  # set-up leases the prefilled messages (ack/nack tests)
    primary_is_step: bool = True  # the operation is a single request (no step breakdown)
    per_request: bool = False  # Queries/Op counts per HTTP request (mixed producer/consumer loads)
    description: str = ""


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("enqueue", "Single Enqueue", op_enqueue, 1, description="POST /queue/message"),
    Scenario("batch", "Batch Enqueue", op_batch, 1, batched=True, description="POST /queue/batch"),
    Scenario("dequeue", "Single Dequeue", op_dequeue, 1, prefill_rate=8000, description="GET /queue/message"),
    Scenario("ack", "Single Ack", op_ack, 1, prefill_rate=8000, lease_prefill=True, description="POST /queue/ack"),
    Scenario("nack", "Single Nack", op_nack, 1, prefill_rate=8000, lease_prefill=True,
             description="POST /queue/message/{id}/nack (requeue)"),
    Scenario("batch-dequeue", "Batch Dequeue + Ack", op_batch_dequeue, 2, batched=True, prefill_rate=60000,
             primary_is_step=False, description="GET /queue/messages/batch + POST /queue/ack/batch"),
    Scenario("cycle", "Full Cycle", op_cycle, 3, primary_is_step=False,
             description="enqueue + dequeue + ack of one message"),
    Scenario("batch-cycle", "Batch Cycle", op_batch_cycle, 3, batched=True, primary_is_step=False,
             description="batch enqueue + batch dequeue + batch ack"),
    Scenario("concurrent", "Concurrent Prod/Cons", op_concurrent, 1, primary_is_step=False, per_request=True,
             description="half the workers enqueue, half dequeue + ack; Msgs/Sec = consumed, Queries/Op "
                         "per request"),
)}
ALL_TESTS = list(SCENARIOS)


@dataclass
class RunResult:
    """One timed run of one scenario with one driver."""

    scenario: str
    driver: str
    workers: int
    elapsed: float
    ops: int
    items: int
    primary: list[float]
    steps: dict[str, list[float]]
    round_trips: int | None
    drained: bool
    empty_polls: int
    requests: int  # what Queries/Op divides by: operations, or requests for per-request scenarios

    @property
    def ops_per_sec(self) -> float:
        """Operations per second (requests, or composite operations)."""
        return self.ops / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def items_per_sec(self) -> float:
        """Messages moved per second."""
        return self.items / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def queries_per_op(self) -> float | None:
        """Database round trips per operation, from the database layer's counter."""
        if self.round_trips is None or self.requests == 0:
            return None
        return self.round_trips / self.requests


def merge_runs(runs: list[RunResult]) -> RunResult:
    """Rounds of one scenario with one driver as one run: counts, times and latencies added up."""
    first = runs[0]
    if len(runs) == 1:
        return first
    steps: dict[str, list[float]] = {}
    for run in runs:
        for name, values in run.steps.items():
            steps.setdefault(name, []).extend(values)
    trips = [run.round_trips for run in runs]
    return RunResult(
        scenario=first.scenario, driver=first.driver, workers=first.workers,
        elapsed=sum(r.elapsed for r in runs), ops=sum(r.ops for r in runs), items=sum(r.items for r in runs),
        primary=[x for r in runs for x in r.primary], steps=steps,
        round_trips=None if any(t is None for t in trips) else sum(t or 0 for t in trips),
        drained=all(r.drained for r in runs), empty_polls=sum(r.empty_polls for r in runs),
        requests=sum(r.requests for r in runs),
    )


# ----- set-up -------------------------------------------------------------------------------
PREFILL_SQL = """INSERT INTO relay.messages
    (id, queue_id, queue_name, type, payload, max_attempts, ack_timeout_seconds, payload_size, created_at)
SELECT 's' || md5(random()::text || g::text), q.id, q.name, 'bench', $2::json, 1000, 300, $3,
       now() - interval '1 hour' + g * interval '1 microsecond'
FROM relay.queues q, generate_series(1, $4) AS g WHERE q.name = $1"""

# Leased rows are written as `processing` directly: one INSERT, no UPDATE of a large table.
PREFILL_LEASED_SQL = """INSERT INTO relay.messages
    (id, queue_id, queue_name, type, payload, max_attempts, ack_timeout_seconds, payload_size, created_at,
     status, lock_token, locked_until, dequeued_at, attempt_count)
SELECT 's' || md5(random()::text || g::text), q.id, q.name, 'bench', $2::json, 1000, 300, $3,
       now() - interval '1 hour' + g * interval '1 microsecond',
       'processing', md5(g::text || random()::text), now() + interval '1 hour', now(), 1
FROM relay.queues q, generate_series(1, $4) AS g WHERE q.name = $1
RETURNING id, lock_token"""


async def prefill(setup_dsn: str, queue: str, count: int, payload_bytes: int, lease: bool) -> list[Lease]:
    """Write `count` queued messages into `queue` in one statement; lease them if asked."""
    text = payload_text(payload_bytes)
    conn = await asyncpg.connect(setup_dsn)
    try:
        leases: list[Lease] = []
        if count > 0:
            if lease:
                rows = await conn.fetch(PREFILL_LEASED_SQL, queue, text, len(text), count)
                leases = [Lease(r["id"], r["lock_token"]) for r in rows]
            else:
                await conn.execute(PREFILL_SQL, queue, text, len(text), count)
            await conn.execute("ANALYZE relay.messages")
        return leases
    finally:
        await conn.close()


def prefill_count(scenario: Scenario, seconds: float, workers: int, batch_size: int, rtt: float) -> int:
    """How many messages a run can consume, generously; a run that drains them stops early."""
    if scenario.prefill_rate <= 0:
        return 0
    rate = scenario.prefill_rate
    if rtt > 0:  # latency-bound: each worker moves at most one operation per round trip
        per_op = batch_size if scenario.batched else 1
        rate = min(rate, workers * per_op / rtt * 1.5)
    return int(min(max(rate * seconds, 200 * (batch_size if scenario.batched else 1)), 1_500_000))


# ----- the timed loop -----------------------------------------------------------------------
class Progress:
    """A one-line progress bar on stderr (only on a terminal, so CI logs stay clean)."""

    def __init__(self, label: str, seconds: float, enabled: bool) -> None:
        self.label = label
        self.seconds = seconds
        self.enabled = enabled and sys.stderr.isatty()
        self.ops = 0

    def draw(self, elapsed: float, final: bool = False) -> None:
        """Redraw the bar."""
        if not self.enabled:
            return
        width = 30
        done = min(elapsed / self.seconds, 1.0) if self.seconds > 0 else 1.0
        bar = "#" * int(done * width) + "." * (width - int(done * width))
        sys.stderr.write(f"\r  {self.label:<34} [{bar}] {elapsed:5.1f}/{self.seconds:.0f}s {self.ops:>9,} ops")
        if final:
            sys.stderr.write("\r" + " " * 100 + "\r")
        sys.stderr.flush()


async def run_timed(
    driver: Driver, scenario: Scenario, state: TestState, workers: int, seconds: float,
    progress: Progress | None = None,
) -> tuple[Recorder, float, bool]:
    """Run `workers` loops of the scenario's operation for `seconds`; returns (recorder, elapsed, drained)."""
    rec = Recorder()
    deadline = perf() + seconds
    drained_at: list[float] = []

    async def worker(index: int) -> None:
        op = scenario.op
        primary = rec.primary
        while not drained_at:
            started = perf()
            if started >= deadline:
                return
            moved = await op(driver, state, rec, index)
            if moved is None:
                drained_at.append(perf())
                return
            if moved or scenario.name != "concurrent":
                primary.append(perf() - started)
            rec.items += moved

    async def draw() -> None:
        assert progress is not None
        while True:
            progress.ops = len(rec.primary)
            progress.draw(perf() - start)
            await asyncio.sleep(0.25)

    start = perf()
    drawer = asyncio.ensure_future(draw()) if progress is not None and progress.enabled else None
    try:
        await asyncio.gather(*(worker(i) for i in range(workers)))
    finally:
        if drawer is not None:
            drawer.cancel()
            assert progress is not None
            progress.draw(perf() - start, final=True)
    end = drained_at[0] if drained_at else perf()
    return rec, end - start, bool(drained_at)


async def run_scenario(
    driver: Driver, scenario: Scenario, *, queue: str, setup_dsn: str, workers: int, seconds: float,
    warmup: float, batch_size: int, payload_bytes: int, rtt: float, show_progress: bool,
) -> RunResult:
    """Set up, warm up, then measure one scenario with one driver."""
    await driver.create_queue(queue)
    count = prefill_count(scenario, seconds + warmup, workers, batch_size, rtt)
    state = TestState(queue, batch_size)
    state.leases = await prefill(setup_dsn, queue, count, payload_bytes, scenario.lease_prefill)
    if warmup > 0:
        await run_timed(driver, scenario, state, workers, warmup)
    before = await driver.round_trips()
    progress = Progress(f"{scenario.label} ({driver.name})", seconds, show_progress)
    rec, elapsed, drained = await run_timed(driver, scenario, state, workers, seconds, progress)
    after = await driver.round_trips()
    round_trips = after - before if before is not None and after is not None else None
    requests = sum(len(v) for v in rec.steps.values()) if scenario.per_request else len(rec.primary)
    return RunResult(
        scenario.name, driver.name, workers, elapsed, len(rec.primary), rec.items, rec.primary, rec.steps,
        round_trips, drained, rec.empty_polls, requests,
    )
