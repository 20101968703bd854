"""The reaper and batch nacks publish one change per queue and outcome (services/changes.py,
grouped_changes), and still write one activity entry per message, each with its own fields."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest

from relayq.runtime import Relay
from relayq.services.changes import Change
from tests.support.inprocess import ext, inprocess_relay, message


@pytest.fixture(scope="module")
async def relay(database_url: str) -> AsyncIterator[Relay]:
    async with inprocess_relay(database_url) as r:
        yield r


async def logged(relay: Relay, queues: list[str], *actions: str) -> list[Any]:
    """The activity entries of these queues and actions, once everything waiting is written."""
    activity = ext(relay).activity
    assert activity is not None
    await activity.buffer.flush()
    return await relay.db.fetch("""SELECT message_id, queue, consumer_id, entry FROM relay.activity_log
        WHERE queue = ANY($1::text[]) AND action = ANY($2::text[])""", queues, list(actions))


async def test_one_pass_over_two_queues_and_workers_records_each_message(relay: Relay) -> None:
    """A pass publishes one change per queue and outcome per statement (a change per row cost as
    much as the statement itself); each entry still names its own worker, overdue time and error."""
    queues = ["r_" + secrets.token_hex(4) for _ in range(2)]
    for queue, attempts in zip(queues, (3, 1), strict=True):
        await relay.queues.create({"name": queue, "queue_type": "standard", "max_attempts": attempts})
        await relay.messages.enqueue([message(queue) for _ in range(4)], batch=True)
        for worker in ("w1", "w2"):
            await relay.messages.dequeue(queue, 2, batch=True, consumer_id=f"{queue}-{worker}")
    await relay.db.execute("""UPDATE relay.messages SET locked_until = now() - interval '3 seconds'
        WHERE queue_name = ANY($1::text[])""", queues)
    seen: list[Change] = []
    relay.hub.subscribe(lambda change: seen.append(change) if change.queue in queues else None)

    assert await relay.reaper.run_once() >= 8

    assert sorted((c.queue, c.action, len(c.rows)) for c in seen) == sorted(
        [(queues[0], "timeout_requeue", 4), (queues[1], "timeout_to_dlq", 4)])
    rows = await logged(relay, queues, "timeout_requeue", "timeout_to_dlq")
    assert len(rows) == 8
    for row in rows:
        entry = json.loads(row["entry"])
        assert row["consumer_id"] == "relay-actor" and entry["triggered_by"] == "system"
        assert entry["prev_consumer_id"] in (f"{row['queue']}-w1", f"{row['queue']}-w2")
        assert entry["context"]["overdue_seconds"] >= 3
        assert entry["error_reason"] == ("Timeout - requeued" if row["queue"] == queues[0]
                                         else "Timeout after max attempts")
    assert {json.loads(r["entry"])["prev_consumer_id"] for r in rows if r["queue"] == queues[0]} == {
        f"{queues[0]}-w1", f"{queues[0]}-w2"}


async def test_a_batch_nack_over_two_queues_records_each_message(relay: Relay) -> None:
    queues = ["n_" + secrets.token_hex(4) for _ in range(2)]
    leased = []
    for queue, attempts in zip(queues, (3, 1), strict=True):
        await relay.queues.create({"name": queue, "queue_type": "standard", "max_attempts": attempts})
        await relay.messages.enqueue([message(queue) for _ in range(2)], batch=True)
        for worker in ("w1", "w2"):
            leased += await relay.messages.dequeue(queue, 1, batch=True, consumer_id=f"{queue}-{worker}")
    seen: list[Change] = []
    relay.hub.subscribe(lambda change: seen.append(change) if change.queue in queues else None)

    await relay.messages.nack([(r["id"], r["lock_token"], f"boom {r['id']}", None) for r in leased], batch=True)

    assert sorted((c.queue, c.action, len(c.rows)) for c in seen) == sorted(
        [(queues[0], "nack", 2), (queues[1], "move_to_dlq", 2)])
    rows = await logged(relay, queues, "nack", "move_to_dlq")
    assert len(rows) == 4
    workers = {r["id"]: r["consumer_id"] for r in leased}
    for row in rows:
        entry = json.loads(row["entry"])
        assert row["consumer_id"] == workers[row["message_id"]]
        assert entry["error_reason"] == f"boom {row['message_id']}" and entry["batch_size"] == 4


@pytest.mark.parametrize("change", ["rename", "delete"])
async def test_what_another_process_writes_late_follows_a_rename_or_delete(database_url: str, change: str) -> None:
    """Two processes: one still holds activity entries and consumer stats of a queue in its
    buffers when the other renames (or deletes) it, and writes them afterwards, under the old
    name. The process that renamed (or deleted) sweeps them a moment later (a two-server probe
    found them left there, ready for a new queue of that name to inherit)."""
    async with inprocess_relay(database_url) as first, inprocess_relay(database_url) as second:
        second.queues.late_sweep_seconds = 0.3
        queue = "late_" + secrets.token_hex(4)
        await first.queues.create({"name": queue, "queue_type": "standard"})
        await first.messages.enqueue([message(queue)])
        (leased,) = await first.messages.dequeue(queue, 1, consumer_id="wk")
        await first.messages.ack([(leased["id"], leased["lock_token"])])  # all still in first's buffers
        if change == "rename":
            await second.queues.rename(queue, queue + "_n")
        else:
            await second.queues.delete(queue, force=True)
        activity, stats = ext(first).activity, ext(first).stats
        assert activity is not None and stats is not None
        await activity.buffer.flush()
        await stats.flush()  # written late, under the old name
        assert await first.db.fetchval("SELECT count(*) FROM relay.activity_log WHERE queue = $1", queue) >= 3
        await asyncio.sleep(0.6)  # the sweep
        for table, column in (("activity_log", "queue"), ("activity_counts", "queue"), ("consumer_stats", "queue")):
            assert not await first.db.fetchval(f"SELECT count(*) FROM relay.{table} WHERE {column} = $1", queue), table
        if change == "rename":
            assert await first.db.fetchval("SELECT count(*) FROM relay.activity_log WHERE queue = $1", queue + "_n") >= 3
            row = await first.db.fetchrow("SELECT sum(dequeue_count) AS d, sum(ack_count) AS a FROM relay.consumer_stats "
                                          "WHERE queue = $1", queue + "_n")
            assert row is not None and (row["d"], row["a"]) == (1, 1)
