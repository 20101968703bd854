"""Delayed messages wait outside the dequeue path and join it when due (migration 0015).

Service layer on a real database, background loops off: each test runs the promoter's pass
itself, so what a pass does is seen without racing it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import msgspec
import pytest
from benchmarks.scale.fill import fill_messages

from relayq.config import Settings
from relayq.runtime import Relay
from relayq.services import delays
from relayq.services.messages import NewMessage
from tests.support.server import fresh_database

KINDS = ("standard", "unlogged", "partitioned")


@pytest.fixture(scope="module")
def delayed_dsn() -> Iterator[str]:
    with fresh_database("relay_delayed") as url:
        yield url


@pytest.fixture
async def relay(delayed_dsn: str) -> AsyncIterator[Relay]:
    r = await Relay.start(Settings.from_env(environ={}, dotenv=None), delayed_dsn, background=False)
    existing = [q["name"] for q in await r.queues.list()]
    for kind in KINDS:
        name = f"d_{kind}"
        if name not in existing:
            extra = {"partition_interval": "daily", "retention_interval": "7 days"} if kind == "partitioned" else {}
            await r.queues.create({"name": name, "queue_type": kind, **extra})
        await r.queues.purge(name, "all")
    yield r
    await r.stop()


def message(queue: str, n: int, *, delay: float = 0.0, priority: int = 0) -> NewMessage:
    return NewMessage(queue=queue, type="t", payload=msgspec.Raw(b"%d" % n), delay=delay, priority=priority)


async def flags(relay: Relay, queue: str) -> dict[str, bool]:
    rows = await relay.db.fetch(
        """SELECT id, delayed FROM relay.messages WHERE queue_name = $1 UNION ALL
           SELECT id, delayed FROM relay.messages_unlogged WHERE queue_name = $1 UNION ALL
           SELECT id, delayed FROM relay.messages_partitioned WHERE queue_name = $1""", queue)
    return {r["id"]: r["delayed"] for r in rows}


@pytest.mark.parametrize("kind", KINDS)
async def test_a_delayed_message_is_promoted_when_due_and_wakes_a_long_poll(relay: Relay, kind: str) -> None:
    queue = f"d_{kind}"
    (ready,) = await relay.messages.enqueue([message(queue, 1)])
    (later,) = await relay.messages.enqueue([message(queue, 2, delay=0.4, priority=9)])
    assert await flags(relay, queue) == {ready.id: False, later.id: True}
    # The higher-priority delayed message is not dequeued, nor walked past: the due one is.
    assert [m["id"] for m in await relay.messages.dequeue(queue, 5)] == [ready.id]
    assert await relay.messages.delays.run_once() == 0
    assert 0 < relay.messages.delays.next_due_in <= 0.4  # the loop would sleep until then
    told: list[tuple[str, int, set[str]]] = []  # what the event stream hears, to wake other processes
    relay.messages.delays.on_promoted.append(lambda q, n, types: told.append((q, n, types)))
    # An older parked poll for another type must not take the wake-up (it would find nothing).
    other = asyncio.ensure_future(relay.messages.dequeue(queue, 1, wait=5, type_filter="x"))
    await asyncio.sleep(0.02)
    parked = asyncio.ensure_future(relay.messages.dequeue(queue, 1, wait=5, type_filter="t"))
    await asyncio.sleep(0.5)
    assert not parked.done()  # nothing dequeuable yet: the message is due, not promoted
    assert await relay.messages.delays.run_once() == 1  # the pass promotes it and wakes the parked poll
    got = await asyncio.wait_for(parked, 0.3)  # well before the poll's own 1 s recheck
    assert [m["id"] for m in got] == [later.id]
    assert told == [(queue, 1, {"t"})]
    other.cancel()
    assert relay.messages.delays.next_due_in == float("inf")


@pytest.mark.parametrize("kind", KINDS)
async def test_nack_and_reaper_backoff_delay_a_message_and_a_move_back_does_not(relay: Relay, kind: str) -> None:
    queue = f"d_{kind}"
    await relay.queues.update(queue, {"retry_delay_seconds": 60})
    try:
        await relay.messages.enqueue([message(queue, 1), message(queue, 2), message(queue, 3)])
        first, second, third = await relay.messages.dequeue(queue, 3)
        await relay.messages.nack([(first["id"], first["lock_token"], "boom", None)])  # the queue's backoff
        await relay.messages.nack([(second["id"], second["lock_token"], "boom", 0)])  # an explicit 0: at once
        await relay.db.execute(  # the third's lease runs out: the reaper requeues it with the backoff
            f"UPDATE {_table(kind)} SET locked_until = now() - interval '1 second' WHERE id = $1", third["id"])
        assert await relay.reaper.run_once() == 1
        assert await flags(relay, queue) == {first["id"]: True, second["id"]: False, third["id"]: True}
        assert [m["id"] for m in await relay.messages.dequeue(queue, 5)] == [second["id"]]
        # An admin move back to the main queue makes a message available at once.
        await relay.admin.move([second["id"]], "processing", "dead", None)
        assert await relay.admin.move([second["id"]], "dead", "queued", None) == 1
        assert (await flags(relay, queue))[second["id"]] is False
        assert [m["id"] for m in await relay.messages.dequeue(queue, 5)] == [second["id"]]
    finally:
        await relay.queues.update(queue, {"retry_delay_seconds": 0})


@pytest.mark.parametrize("kind", KINDS)
async def test_the_queued_list_merges_due_and_delayed_messages_in_its_order(relay: Relay, kind: str) -> None:
    """GET /queue/status lists queued messages by priority, then age (API.md §4), delayed or not,
    though the index keeps them in two ranges."""
    queue = f"d_{kind}"
    ids = [r.id for r in await relay.messages.enqueue([
        message(queue, 1, priority=1), message(queue, 2, priority=5, delay=3600), message(queue, 3, priority=5),
        message(queue, 4, priority=0, delay=3600),
    ])]
    status = await relay.admin.status(queue, include_messages=True)
    assert [m["id"] for m in status["lists"]["queued"]] == [ids[1], ids[2], ids[0], ids[3]]
    everywhere = await relay.admin.status(None, include_messages=True)
    assert [m["id"] for m in everywhere["lists"]["queued"] if m["queue_name"] == queue] == [
        ids[1], ids[2], ids[0], ids[3]]


def _table(kind: str) -> str:
    return {"standard": "relay.messages", "unlogged": "relay.messages_unlogged",
            "partitioned": "relay.messages_partitioned"}[kind]


async def test_one_tables_backlog_of_due_messages_does_not_hold_up_anothers(
        relay: Relay, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pass promotes a batch from each message table in turn. It used to empty one table's
    backlog before starting the next: a million messages of a standard queue coming due at once
    (a batch of reminders) held a partitioned queue's due message back for the ~30 s that took."""
    monkeypatch.setattr(delays, "BATCH", 100)
    await fill_messages(relay.db, "d_standard", "queued", 1_000, delay=0.001)  # due: 10 batches
    (late,) = await relay.messages.enqueue([message("d_partitioned", 1, delay=0.001)])
    await asyncio.sleep(0.01)
    woken: list[str] = []
    monkeypatch.setattr(relay.waiters, "wake", lambda queue, count=None, types=None: woken.append(queue))
    assert await relay.messages.delays.run_once() == 1_001
    assert woken.index("d_partitioned") == 1, woken  # right after the first standard batch
    assert (await flags(relay, "d_partitioned"))[late.id] is False


@pytest.mark.parametrize("kind", KINDS)
async def test_backoff_stays_capped_however_many_attempts(relay: Relay, kind: str) -> None:
    """The backoff's 2^(attempts - 1) overflowed float8 from the 1025th attempt (a queue that
    retries "forever" with a large max_attempts): every nack of that message failed with a 500,
    and every reaper pass that met its expired lease failed too, leaving all leases unreclaimed."""
    queue = f"d_{kind}"
    await relay.queues.update(queue, {"retry_delay_seconds": 1, "max_attempts": 100_000})
    try:
        await relay.messages.enqueue([message(queue, 1), message(queue, 2)])
        first, second = await relay.messages.dequeue(queue, 2)
        await relay.db.execute(f"UPDATE {_table(kind)} SET attempt_count = 2000 WHERE queue_name = $1", queue)
        settled = await relay.messages.nack([(first["id"], first["lock_token"], "boom", None)])
        assert [r["status"] for r in settled.rows] == ["queued"]
        await relay.db.execute(
            f"UPDATE {_table(kind)} SET locked_until = now() - interval '1 second' WHERE id = $1", second["id"])
        assert await relay.reaper.run_once() == 1
        waits = await relay.db.fetch(
            f"SELECT extract(epoch FROM available_at - now()) AS wait FROM {_table(kind)} WHERE queue_name = $1", queue)
        assert all(3500 < r["wait"] <= 3600 for r in waits)  # the 3600 s cap
    finally:
        await relay.queues.update(queue, {"retry_delay_seconds": 0, "max_attempts": 3})
