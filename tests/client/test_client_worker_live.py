"""The worker runtime against a real server: success, failure, long handlers, crashes, SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import relayq.client as relay
from relayq.client import AsyncClient, Client, Worker
from tests.client.client_support import cli_env

HANDLERS = '''
import os, pathlib, time

def hang(message):
    """Report that the message started, then run far longer than its lease."""
    pathlib.Path(os.environ["MARKER"]).write_text(message.id)
    time.sleep(60)

def slow(message):
    pathlib.Path(os.environ["MARKER"]).write_text(message.id)
    time.sleep(1.5)
'''


async def wait_for(condition: Callable[[], object], limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_worker_acks_successes_and_dead_letters_failures(
    relay_url: str, client: Client, make_queue: Callable[..., str]
) -> None:
    queue = make_queue(max_attempts=2)
    client.enqueue_batch(
        [{"type": "job", "payload": {"n": i, "fail": i == 3}} for i in range(10)], queue=queue
    )
    handled: list[int] = []

    async def handler(message: relay.Message) -> None:
        if message.payload["fail"]:
            raise RuntimeError(f"cannot handle {message.payload['n']}")
        handled.append(message.payload["n"])

    async with AsyncClient(relay_url) as api:
        worker = Worker(handler, queue, client=api, concurrency=4, poll_timeout=0.5)
        task = asyncio.create_task(worker.run_async())
        await wait_for(lambda: worker.processed == 9 and worker.failed == 2)
        worker.stop()
        await asyncio.wait_for(task, 10)
        dead = await api.export_messages("dead", queue=queue)
    assert sorted(handled) == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    assert [m.payload["n"] for m in dead] == [3]
    assert dead[0].last_error == "RuntimeError: cannot handle 3" and dead[0].attempt_count == 2


async def test_handler_longer_than_the_ack_timeout_keeps_its_lease(
    relay_url: str, make_queue: Callable[..., str]
) -> None:
    queue = make_queue(ack_timeout=1, max_attempts=3)
    started = asyncio.Event()

    async def long_handler(message: relay.Message) -> None:
        started.set()
        await asyncio.sleep(3.5)  # three and a half leases; the reaper runs all along

    async with AsyncClient(relay_url) as api:
        await api.enqueue({"big": "job"}, queue=queue)
        worker = Worker(long_handler, queue, client=api, poll_timeout=0.5)
        task = asyncio.create_task(worker.run_async())
        await asyncio.wait_for(started.wait(), 5)
        await asyncio.sleep(2.5)
        assert await api.dequeue(queue) is None  # still leased: touch kept it
        await wait_for(lambda: worker.processed == 1)
        worker.stop()
        await asyncio.wait_for(task, 10)
        [done] = await api.export_messages("acknowledged", queue=queue)
    assert done.attempt_count == 1  # delivered once, never reclaimed


def start_worker(
    relay_url: str, tmp_path: Path, handler: str, queue: str, *options: str
) -> subprocess.Popen[str]:
    (tmp_path / "handlers.py").write_text(HANDLERS)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "relayq.client",
            "worker",
            f"handlers:{handler}",
            "--queue",
            queue,
            "--poll-timeout",
            "1",
            *options,
        ],
        cwd=tmp_path,
        env=cli_env(relay_url, MARKER=str(tmp_path / "started")),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for_file(path: Path, process: subprocess.Popen[str], limit: float = 15) -> str:
    deadline = time.monotonic() + limit
    while not path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"worker never started the message:\n{process.communicate()[0]}")
        time.sleep(0.05)
    return path.read_text()


def test_worker_crash_mid_message_returns_it_after_its_lease(
    relay_url: str, client: Client, make_queue: Callable[..., str], tmp_path: Path
) -> None:
    queue = make_queue(ack_timeout=1, max_attempts=3)
    added = client.enqueue({"crash": "me"}, queue=queue)
    worker = start_worker(relay_url, tmp_path, "hang", queue)
    assert wait_for_file(tmp_path / "started", worker) == added.id
    time.sleep(1.5)  # past the first lease: the worker's touches keep the message
    assert client.dequeue(queue) is None
    worker.send_signal(signal.SIGKILL)  # a crash: no ack, no nack, no more touches
    worker.wait(5)
    message = client.dequeue(queue, wait=6)  # lease (1 s) + reaper (<= 2 s)
    assert message is not None and message.id == added.id
    assert message.attempt_count == 2
    client.ack(message)


# SIGTERM is a supervisor's clean stop; Ctrl-C is an interruption (130), as for every command.
@pytest.mark.parametrize(("sig", "exit_code"), [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
def test_a_signal_finishes_the_in_flight_message(
    relay_url: str,
    client: Client,
    make_queue: Callable[..., str],
    tmp_path: Path,
    sig: signal.Signals,
    exit_code: int,
) -> None:
    queue = make_queue(ack_timeout=30)
    client.enqueue({"finish": "me"}, queue=queue)
    client.enqueue({"never": "started"}, queue=queue, priority=0)
    worker = start_worker(relay_url, tmp_path, "slow", queue)
    wait_for_file(tmp_path / "started", worker)
    worker.send_signal(sig)
    output, _ = worker.communicate(timeout=15)
    assert worker.returncode == exit_code, output
    status = client.queue_status(queue)
    assert (status.acknowledged, status.processing, status.queued) == (1, 0, 1), output


@pytest.mark.parametrize(("signals", "shutdown_timeout"), [(1, "1"), (2, "30")])
def test_sigterm_exits_promptly_while_an_abandoned_sync_handler_runs(
    relay_url: str,
    client: Client,
    make_queue: Callable[..., str],
    tmp_path: Path,
    signals: int,
    shutdown_timeout: str,
) -> None:
    queue = make_queue(ack_timeout=30)
    added = client.enqueue({"hang": "forever"}, queue=queue)
    worker = start_worker(relay_url, tmp_path, "hang", queue, "--shutdown-timeout", shutdown_timeout)
    wait_for_file(tmp_path / "started", worker)
    signalled = time.monotonic()
    for _ in range(signals):  # a second signal releases the message without waiting
        worker.send_signal(signal.SIGTERM)
        time.sleep(0.2)
    try:
        output, _ = worker.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        worker.kill()
        raise AssertionError(f"worker still running:\n{worker.communicate()[0]}") from None
    # The handler sleeps 60 s in its thread; the process must not wait for it.
    assert time.monotonic() - signalled < 6, output
    assert worker.returncode == 0, output
    released = client.dequeue(queue)  # the lease was 30 s: only the release makes it available
    assert released is not None and released.id == added.id, output
    assert released.last_error == "Worker shut down before the handler finished"
    client.ack(released)


async def test_a_worker_waits_for_its_queue_to_be_created(
    relay_url: str, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """Deployed before its queue: the worker says the queue does not exist (a misspelt name
    looks the same) and starts working once it is created."""
    queue = f"late-{time.monotonic_ns()}"
    handled: list[str] = []
    async with AsyncClient(relay_url) as api:
        worker = Worker(lambda m: handled.append(m.id), queue, client=api, poll_timeout=0.2)
        task = asyncio.create_task(worker.run_async())
        await wait_for(lambda: any("does not exist" in r.getMessage() for r in caplog.records))
        assert f"queue {queue!r} does not exist (check the name)" in caplog.text
        client.create_queue(queue)
        mid = client.enqueue({"n": 1}, queue=queue).id
        await wait_for(lambda: handled == [mid], limit=15)
        worker.stop()
        await asyncio.wait_for(task, 10)
