"""Worker runtime against an in-memory fake client: concurrency, ack/nack, touch, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter
from typing import Any

import relayq.client as relay
from relayq.client.worker import describe_exception


class FakeRelay:
    """Just enough of AsyncClient for the worker, with every call recorded."""

    def __init__(self, count: int, ack_timeout: int = 30) -> None:
        self.queued = [
            relay.Message(
                id=f"m{i}",
                lock_token=f"t{i}",
                payload=i,
                ack_timeout_seconds=ack_timeout,
                status="processing",
            )
            for i in range(count)
        ]
        self.fetches: list[int] = []
        self.acked: list[str] = []
        self.nacked: list[tuple[str, str | None]] = []
        self.touches: Counter[str] = Counter()

    async def dequeue_batch(
        self, count: int, queue: str | None = None, **options: Any
    ) -> list[relay.Message]:
        self.fetches.append(count)
        if not self.queued:
            await asyncio.sleep(min(options.get("wait", 0), 0.02))
            return []
        taken, self.queued = self.queued[:count], self.queued[count:]
        return taken

    async def ack(self, message: relay.Message) -> None:
        self.acked.append(message.id)

    async def nack(self, message: relay.Message, *, error: str | None = None) -> relay.NackResult:
        self.nacked.append((message.id, error))
        return relay.NackResult(requeued=True)

    async def touch(self, message: relay.Message, *, extend: float | None = None) -> None:
        self.touches[message.id] += 1

    async def close(self) -> None:
        pass


async def run_until(worker: relay.Worker, done: Any, limit: float = 5.0) -> None:
    """Run the worker until ``done()`` is true, then stop it and wait for a clean exit."""
    task = asyncio.create_task(worker.run_async())
    deadline = time.monotonic() + limit
    while not done():
        assert time.monotonic() < deadline, "worker did not finish in time"
        await asyncio.sleep(0.01)
    worker.stop()
    await asyncio.wait_for(task, limit)


async def test_sync_handler_runs_with_bounded_concurrency_and_batched_fetches() -> None:
    fake = FakeRelay(40)
    lock = threading.Lock()
    active = peak = 0

    def handler(message: relay.Message) -> None:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.02)
        with lock:
            active -= 1

    worker = relay.Worker(handler, "q", client=fake, concurrency=8, poll_timeout=0.05)  # type: ignore[arg-type]
    await run_until(worker, lambda: len(fake.acked) == 40)
    assert sorted(fake.acked) == sorted(f"m{i}" for i in range(40))
    assert peak == 8
    assert max(fake.fetches) == 8  # one request fills every free slot
    assert worker.processed == 40 and worker.failed == 0


async def test_failing_handler_nacks_with_the_exception_text() -> None:
    fake = FakeRelay(3)

    async def handler(message: relay.Message) -> None:
        if message.payload == 1:
            raise ValueError("bad payload 1")

    worker = relay.Worker(handler, client=fake, concurrency=2, poll_timeout=0.05)  # type: ignore[arg-type]
    await run_until(worker, lambda: len(fake.acked) + len(fake.nacked) == 3)
    assert fake.nacked == [("m1", "ValueError: bad payload 1")]
    assert sorted(fake.acked) == ["m0", "m2"]
    assert worker.failed == 1


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("str boom")


class NotAnException(BaseException):
    pass


async def test_unusual_handler_failures_are_nacked_too() -> None:
    """An exception whose str() raises, and a BaseException that is not an Exception, escaped the
    nack (the message waited for its lease to expire; a probe found them). SystemExit from a
    handler is nacked, then stops the worker gracefully, as the handler asked (it stopped the
    worker at once, its leases unreleased)."""
    fake = FakeRelay(4)

    def handler(message: relay.Message) -> None:
        raise [Unprintable(), NotAnException("custom"), GeneratorExit(), ValueError("fine")][message.payload]

    worker = relay.Worker(handler, client=fake, concurrency=1, poll_timeout=0.05)  # type: ignore[arg-type]
    await run_until(worker, lambda: len(fake.nacked) == 4)
    assert fake.nacked == [("m0", "Unprintable: <str() failed>"), ("m1", "NotAnException: custom"),
                           ("m2", "GeneratorExit"), ("m3", "ValueError: fine")]
    assert worker.failed == 4

    fake = FakeRelay(1)

    def leave(message: relay.Message) -> None:
        raise SystemExit(3)

    worker = relay.Worker(leave, client=fake, concurrency=1, poll_timeout=0.05)  # type: ignore[arg-type]
    await asyncio.wait_for(worker.run_async(), 5)  # it stops by itself, gracefully
    assert fake.nacked == [("m0", "SystemExit: 3")]


async def test_long_handler_keeps_its_lease_with_touch() -> None:
    fake = FakeRelay(1, ack_timeout=1)

    async def handler(message: relay.Message) -> None:
        await asyncio.sleep(1.2)

    worker = relay.Worker(handler, client=fake, poll_timeout=0.05)  # type: ignore[arg-type]
    await run_until(worker, lambda: fake.acked == ["m0"])
    assert fake.touches["m0"] >= 3  # every third of the 1 s lease


async def test_stop_lets_in_flight_handlers_finish() -> None:
    fake = FakeRelay(2)
    started = threading.Event()

    def handler(message: relay.Message) -> None:
        started.set()
        time.sleep(0.3)

    worker = relay.Worker(handler, client=fake, concurrency=1, poll_timeout=0.05)  # type: ignore[arg-type]
    await run_until(worker, started.is_set)
    assert fake.acked == ["m0"]  # finished; the second message was never fetched
    assert fake.queued[0].id == "m1"


async def test_shutdown_timeout_releases_stuck_messages() -> None:
    fake = FakeRelay(1)
    started = asyncio.Event()

    async def handler(message: relay.Message) -> None:
        started.set()
        await asyncio.sleep(60)

    worker = relay.Worker(handler, client=fake, poll_timeout=0.05, shutdown_timeout=0.1)  # type: ignore[arg-type]
    await run_until(worker, started.is_set)
    assert fake.nacked == [("m0", "Worker shut down before the handler finished")]
    assert fake.acked == []


def test_describe_exception_is_bounded() -> None:
    assert describe_exception(KeyError("k")) == "KeyError: 'k'"
    assert describe_exception(RuntimeError()) == "RuntimeError"
    assert len(describe_exception(ValueError("x" * 5000))) == 2000
    assert describe_exception(Unprintable()) == "Unprintable: <str() failed>"


async def test_idle_worker_with_a_zero_poll_timeout_does_not_spin() -> None:
    fake = FakeRelay(0)  # answers an empty fetch at once, as a server does for timeout=0

    async def handler(message: relay.Message) -> None:
        pass

    worker = relay.Worker(handler, client=fake, poll_timeout=0)  # type: ignore[arg-type]
    task = asyncio.create_task(worker.run_async())
    await asyncio.sleep(1.5)
    worker.stop()
    await asyncio.wait_for(task, 5)
    assert len(fake.fetches) <= 3  # about one empty poll a second, not thousands


async def test_ack_that_fails_while_the_server_is_down_is_retried() -> None:
    fake = FakeRelay(1)
    failures = [relay.RelayConnectionError("connection refused")] * 2
    attempts = 0
    ack = fake.ack

    async def flaky_ack(message: relay.Message) -> None:
        nonlocal attempts
        attempts += 1
        if failures:
            raise failures.pop()
        await ack(message)

    fake.ack = flaky_ack  # type: ignore[method-assign]

    async def handler(message: relay.Message) -> None:
        pass

    worker = relay.Worker(handler, client=fake, poll_timeout=0.05)  # type: ignore[arg-type]
    await run_until(worker, lambda: fake.acked == ["m0"])
    assert attempts == 3  # not given up: a lost ack means a second run after the lease expires
    assert worker.processed == 1


class TwoQueueRelay(FakeRelay):
    """FakeRelay whose messages all sit in the ``busy`` queue; an empty queue long-polls."""

    async def dequeue_batch(
        self, count: int, queue: str | None = None, **options: Any
    ) -> list[relay.Message]:
        if queue != "busy" or not self.queued:
            await asyncio.sleep(options.get("wait", 0))
            return []
        return await super().dequeue_batch(count, queue, **options)


async def test_an_idle_queue_does_not_starve_a_busy_one_of_the_slots() -> None:
    fake = TwoQueueRelay(10)

    async def handler(message: relay.Message) -> None:
        pass

    # One slot, two queues: the idle queue's 2 s long poll held the only slot, one message per poll.
    worker = relay.Worker(handler, ["idle", "busy"], client=fake, concurrency=1, poll_timeout=2)  # type: ignore[arg-type]
    await run_until(worker, lambda: len(fake.acked) == 10, limit=3)  # was ~20 s
    assert worker.processed == 10


class LongPollRelay(FakeRelay):
    """FakeRelay with one list per queue whose empty polls last until a message or `wait`."""

    def __init__(self) -> None:
        super().__init__(0)
        self.by_queue: dict[str, list[relay.Message]] = {"a": [], "b": []}
        self.arrived = {queue: asyncio.Event() for queue in self.by_queue}

    def put(self, queue: str, name: str) -> None:
        self.by_queue[queue].append(relay.Message(id=name, lock_token=name, payload=0, status="processing"))
        self.arrived[queue].set()

    async def dequeue_batch(
        self, count: int, queue: str | None = None, **options: Any
    ) -> list[relay.Message]:
        assert queue is not None
        if not self.by_queue[queue]:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived[queue].wait(), options.get("wait", 0))
        self.arrived[queue].clear()
        taken, self.by_queue[queue] = self.by_queue[queue][:count], self.by_queue[queue][count:]
        return taken


async def test_with_fewer_slots_than_queues_no_idle_queue_waits_a_whole_poll_timeout() -> None:
    """One slot, two idle queues: one queue's long poll held the slot for the whole poll timeout
    (10 s here) while a message came to the other. Polls that share slots now last a second."""
    fake = LongPollRelay()

    async def handler(message: relay.Message) -> None:
        pass

    worker = relay.Worker(handler, ["a", "b"], client=fake, concurrency=1, poll_timeout=10)  # type: ignore[arg-type]
    task = asyncio.create_task(worker.run_async())
    try:
        for queue in ("a", "b"):  # whichever is not in the poll waits for the slot
            await asyncio.sleep(1.5)  # both loops idle: one in a poll, the other waiting for the slot
            fake.put(queue, f"on-{queue}")
            started = time.monotonic()
            while f"on-{queue}" not in fake.acked:
                assert time.monotonic() - started < 3, f"{queue} waited for a poll timeout"
                await asyncio.sleep(0.01)
    finally:
        worker.stop()
        await asyncio.wait_for(task, 15)


async def test_a_running_handler_leaves_fewer_free_slots_than_queues() -> None:
    """concurrency 2, queues a and b: while a's handler runs one slot is left for two loops, the
    same case with slots busy rather than few (found by a review: b's message waited 8.5 s)."""
    fake = LongPollRelay()
    release = asyncio.Event()
    done: dict[str, float] = {}

    async def handler(message: relay.Message) -> None:
        if message.id == "long":
            await release.wait()
        done[message.id] = time.monotonic()

    fake.put("a", "long")
    worker = relay.Worker(handler, ["a", "b"], client=fake, concurrency=2, poll_timeout=10)  # type: ignore[arg-type]
    task = asyncio.create_task(worker.run_async())
    try:
        await asyncio.sleep(1.5)  # a's handler holds one slot; a's loop and b's share the other
        put_at = time.monotonic()
        fake.put("b", "on-b")
        while "on-b" not in done:
            assert time.monotonic() - put_at < 3, "b's message waited for a poll timeout"
            await asyncio.sleep(0.01)
    finally:
        release.set()
        worker.stop()
        await asyncio.wait_for(task, 15)


async def test_an_ack_answered_with_500_is_retried_a_few_times_not_forever() -> None:
    """A 500 is a fault, not an outage: retried until the server answered, it held the slot until
    shutdown. A proxy's 502 while the server restarts is an outage, and is retried until over."""
    fake = FakeRelay(2)
    answers = {"m0": [relay.ServerError("boom", status=500, code="INTERNAL_ERROR")] * 10,
               "m1": [relay.ServerError("bad gateway", status=502, code="UNKNOWN")] * 4}  # beyond the 500s' 3
    attempts = {"m0": 0, "m1": 0}
    ack = fake.ack

    async def flaky_ack(message: relay.Message) -> None:
        attempts[message.id] += 1
        if answers[message.id]:
            raise answers[message.id].pop()
        await ack(message)

    fake.ack = flaky_ack  # type: ignore[method-assign]

    async def handler(message: relay.Message) -> None:
        pass

    worker = relay.Worker(handler, client=fake, poll_timeout=0.05, concurrency=2)  # type: ignore[arg-type]
    await run_until(worker, lambda: fake.acked == ["m1"] and attempts["m0"] == 4, limit=30)
    assert attempts["m0"] == 4 and worker.processed == 1  # 1 try + 3 retries, then left to its lease


async def test_shutdown_does_not_cancel_an_ack_under_way() -> None:
    """At the shutdown deadline (or a second signal) every in-flight task was cancelled, an ack
    under way too: the finished message then came back after its lease for a second run. An ack
    already sent gets SETTLE_GRACE; a handler still running is released as before."""
    fake = FakeRelay(2)
    ack = fake.ack
    acking = asyncio.Event()

    async def slow_ack(message: relay.Message) -> None:
        acking.set()
        await asyncio.sleep(0.5)  # a slow answer, e.g. the server under load
        await ack(message)

    fake.ack = slow_ack  # type: ignore[method-assign]

    async def handler(message: relay.Message) -> None:
        if message.id == "m1":
            await asyncio.sleep(60)  # stuck: released at the deadline

    worker = relay.Worker(handler, client=fake, poll_timeout=0.05, shutdown_timeout=0.1,  # type: ignore[arg-type]
                          concurrency=2)
    await run_until(worker, acking.is_set)
    assert fake.acked == ["m0"]
    assert fake.nacked == [("m1", "Worker shut down before the handler finished")]


async def test_an_ack_that_landed_before_the_connection_broke_counts_as_done() -> None:
    """The client's quick tries ran out mid-outage and the worker retried the ack itself; the
    answer "current: acknowledged" then meant its own first attempt had landed, not a lost lease."""
    fake = FakeRelay(1)
    acked_status = relay.InvalidStateError(
        "Message is not in processing state (current: acknowledged)", status=400, code="INVALID_STATE")
    answers: list[Exception] = [acked_status, relay.RelayConnectionError("reset after sending")]

    async def ack(message: relay.Message) -> None:
        raise answers.pop()

    fake.ack = ack  # type: ignore[method-assign]

    async def handler(message: relay.Message) -> None:
        pass

    worker = relay.Worker(handler, client=fake, poll_timeout=0.05)  # type: ignore[arg-type]
    await run_until(worker, lambda: not answers)
    assert worker.processed == 1


async def test_a_second_signal_releases_running_handlers_before_waiting_for_acks() -> None:
    fake = FakeRelay(2)
    acking = asyncio.Event()
    released = asyncio.Event()
    ack, nack = fake.ack, fake.nack

    async def slow_ack(message: relay.Message) -> None:
        acking.set()
        await asyncio.sleep(1.0)
        await ack(message)

    async def watched_nack(message: relay.Message, *, error: str | None = None) -> relay.NackResult:
        released.set()
        return await nack(message, error=error)

    fake.ack, fake.nack = slow_ack, watched_nack  # type: ignore[method-assign]

    async def handler(message: relay.Message) -> None:
        if message.id == "m1":
            await asyncio.sleep(60)

    worker = relay.Worker(handler, client=fake, poll_timeout=0.05, concurrency=2)  # type: ignore[arg-type]
    task = asyncio.create_task(worker.run_async())
    await asyncio.wait_for(acking.wait(), 5)
    worker.stop()
    await asyncio.sleep(0.05)
    worker.stop()  # the second signal
    await asyncio.wait_for(released.wait(), 0.5)  # released while m0's ack is still under way
    assert fake.acked == []
    await asyncio.wait_for(task, 5)
    assert fake.acked == ["m0"]
