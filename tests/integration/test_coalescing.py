"""Natural batching keeps every request's own outcome (service layer, real database)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import msgspec
import pytest

from relayq.config import Settings
from relayq.domain.errors import RelayError
from relayq.runtime import Relay
from relayq.services.messages import NewMessage, _EnqueueRequest
from tests.support.server import fresh_database


@pytest.fixture(scope="module")
def service_dsn() -> Iterator[str]:
    with fresh_database("relay_coalesce") as url:
        yield url


@pytest.fixture
async def relay(service_dsn: str) -> AsyncIterator[Relay]:
    settings = Settings.from_env(environ={"ENQUEUE_BUFFER_MAX_INFLIGHT": "1"}, dotenv=None)
    r = await Relay.start(settings, service_dsn, background=False)
    if "co" not in [q["name"] for q in await r.queues.list()]:
        await r.queues.create({"name": "co", "queue_type": "standard"})
    await r.queues.purge("co", "all")
    yield r
    await r.stop()


def message(n: int) -> NewMessage:
    payload = msgspec.json.encode({"n": n}).decode()
    return NewMessage(queue="co", type="t", payload=msgspec.Raw(payload.encode()))


async def test_concurrent_single_enqueues_share_statements(relay: Relay) -> None:
    before = relay.db.stats.round_trips
    results = await asyncio.gather(*(relay.messages.enqueue([message(i)]) for i in range(200)))
    ids = [r[0].id for r in results]
    assert len(set(ids)) == 200
    statements = relay.db.stats.round_trips - before
    assert statements < 200  # coalesced: fewer statements than requests
    rows = await relay.db.fetch("SELECT id, payload::text AS p FROM relay.messages WHERE queue_name = 'co'")
    stored = {r["id"]: msgspec.json.decode(r["p"])["n"] for r in rows}
    assert {stored[mid] for mid in ids} == set(range(200))
    assert [stored[mid] for mid in ids] == list(range(200))  # each caller got its own id


async def test_an_empty_poll_is_one_round_trip_and_still_sees_its_queue_replaced(
    relay: Relay, service_dsn: str
) -> None:
    """The claim itself says whether the cached queue is still current (no look-up per empty
    poll); another process deleting or recreating the queue is still noticed at once."""
    await relay.messages.dequeue("co", 1)  # the queue's id is cached now
    before = relay.db.stats.round_trips
    for _ in range(5):
        assert await relay.messages.dequeue("co", 1) == []
    assert relay.db.stats.round_trips - before == 5

    other = await Relay.start(Settings.from_env(environ={}, dotenv=None), service_dsn, background=False)
    try:
        await other.queues.delete("co", force=True)
        await other.queues.create({"name": "co", "queue_type": "standard"})
        await other.messages.enqueue([message(7)])
        rows = await relay.messages.dequeue("co", 1)  # stale id: noticed, looked up, claimed
        assert [msgspec.json.decode(r["payload"]) for r in rows] == [{"n": 7}]
        await other.queues.delete("co", force=True)
    finally:
        await other.stop()
    with pytest.raises(RelayError) as gone:
        await relay.messages.dequeue("co", 1)
    assert gone.value.code == "QUEUE_NOT_FOUND"


async def test_concurrent_dequeues_get_distinct_messages_and_own_consumer(relay: Relay) -> None:
    await relay.messages.enqueue([message(i) for i in range(60)], batch=True)
    leases = await asyncio.gather(*(
        relay.messages.dequeue("co", 1, consumer_id=f"w{i}", ack_timeout=10 + i) for i in range(50)))
    got = [rows[0] for rows in leases]
    assert len({row["id"] for row in got}) == 50
    for i, row in enumerate(got):
        assert row["consumer_id"] == f"w{i}"
        assert 9 + i < row["locked_until"] - row["dequeued_at"] <= 11 + i
    batch = await relay.messages.dequeue("co", 20, consumer_id="bulk")
    assert len(batch) == 10 and {r["id"] for r in batch}.isdisjoint({r["id"] for r in got})


async def test_duplicate_acks_in_flight_resolve_to_one_success(relay: Relay) -> None:
    await relay.messages.enqueue([message(1)])
    (row,) = await relay.messages.dequeue("co", 1)
    outcomes = await asyncio.gather(*(relay.messages.ack([(row["id"], row["lock_token"])]) for _ in range(5)))
    succeeded = [o for o in outcomes if o.rows]
    failed = [o.failures[0] for o in outcomes if o.failures]
    assert len(succeeded) == 1
    assert [(f.code, f.status) for f in failed] == [("INVALID_STATE", "acknowledged")] * 4


async def test_concurrent_batches_share_statements_and_stay_whole(relay: Relay) -> None:
    before = relay.db.stats.round_trips
    batches = [[message(100 * b + i) for i in range(10)] for b in range(8)]
    bad = [message(900), NewMessage(queue="missing_q", type="t", payload=msgspec.Raw(b"1"))]
    results = await asyncio.gather(*(relay.messages.enqueue(b, batch=True) for b in batches),
                                   relay.messages.enqueue(bad, batch=True), return_exceptions=True)
    assert getattr(results[-1], "code", None) == "QUEUE_NOT_FOUND"  # refused whole, the others unharmed
    stored = {r["id"]: msgspec.json.decode(r["p"])["n"] for r in await relay.db.fetch(
        "SELECT id, payload::text AS p FROM relay.messages WHERE queue_name = 'co'")}
    for batch, result in zip(batches, results[:-1], strict=True):
        assert not isinstance(result, BaseException)
        assert [stored[e.id] for e in result] == [msgspec.json.decode(bytes(m.payload))["n"] for m in batch]
    assert 900 not in stored.values()
    assert relay.db.stats.round_trips - before < 8

    leased = await relay.messages.dequeue("co", 80, batch=True)
    halves = [[(r["id"], r["lock_token"]) for r in leased[i : i + 20]] for i in range(0, 80, 20)]
    overlap = [halves[0][0], ("s-no-such-id", "x")]  # shares an id with the first request
    before = relay.db.stats.round_trips
    settled = await asyncio.gather(*(relay.messages.ack(h, batch=True) for h in halves),
                                   relay.messages.ack(overlap, batch=True))
    for half, result in zip(halves, settled, strict=False):
        assert [row["id"] for row in result.rows] == [mid for mid, _ in half] and not result.failures
    assert [f.code for f in settled[-1].failures] == ["INVALID_STATE", "NOT_FOUND"]
    assert relay.db.stats.round_trips - before < 5 + 2  # shared statements (+ the failures' diagnosis)


async def test_unknown_queue_fails_alone(relay: Relay) -> None:
    good = relay.messages.enqueue([message(2)])
    bad_item = NewMessage(queue="missing_q", type="t", payload=msgspec.Raw(b"1"))
    results = await asyncio.gather(good, relay.messages.enqueue([bad_item]), return_exceptions=True)
    assert not isinstance(results[0], BaseException)
    assert getattr(results[1], "code", None) == "QUEUE_NOT_FOUND"


def test_inflight_limit_follows_statement_latency() -> None:
    from relayq.services.coalesce import Coalescer

    async def run(_: None, items: list[int]) -> list[int]:
        return items

    coalescer: Coalescer[None, int, int] = Coalescer(run, max_batch=10, max_inflight=20)
    assert coalescer.inflight_limit() == 2  # nothing measured yet
    coalescer.latency = 0.0005  # local database
    assert coalescer.inflight_limit() == 2
    coalescer.latency = 0.3  # 300 ms round trips: every pool connection may carry a statement
    assert coalescer.inflight_limit() == 20
    coalescer.latency = 0.012
    assert coalescer.inflight_limit() == 6


def test_latency_floor_ignores_slow_outliers() -> None:
    from relayq.services.coalesce import Coalescer

    async def run(_: None, items: list[int]) -> list[int]:
        return items

    coalescer: Coalescer[None, int, int] = Coalescer(run, max_batch=10, max_inflight=20)
    for elapsed in (0.001, 0.050, 0.001, 0.080, 0.001):
        coalescer._observe(elapsed)
    assert coalescer.latency < 0.002  # a busy CPU's slow statements don't open more slots
    for _ in range(400):
        coalescer._observe(0.3)  # the database really moved far away
    assert coalescer.inflight_limit() == 20


async def test_batch_statements_leave_the_latency_floor_to_the_network() -> None:
    """A statement carrying whole batches is slow because of its rows, not the network: it must
    not open more in-flight slots (which would stop batches from being gathered)."""
    from relayq.services.coalesce import Coalescer

    async def slow(_: None, items: list[int]) -> list[int]:
        await asyncio.sleep(0.05)
        return items

    batches: Coalescer[None, int, int] = Coalescer(slow, max_batch=1000, max_inflight=20, weight=lambda n: n,
                                                   latency=0.0002)
    await asyncio.gather(*(batches.submit(None, 100) for _ in range(4)))
    assert batches.latency == 0.0002 and batches.inflight_limit() == 2
    singles: Coalescer[None, int, int] = Coalescer(slow, max_batch=1000, max_inflight=20, latency=0.0002)
    await singles.submit(None, 1)
    assert singles.latency > 0.0005  # single-message statements still move the floor (slowly up)


async def test_deadlocked_statements_run_again_then_answer_503(relay: Relay) -> None:
    """PostgreSQL rolls a deadlock victim back whole, so the statement is run again (a few times)."""
    from relayq.domain.errors import RelayError

    await relay.db.execute("""
        CREATE SEQUENCE IF NOT EXISTS relay.test_victims;
        CREATE OR REPLACE FUNCTION relay.test_deadlock(times int) RETURNS int LANGUAGE plpgsql AS $$
        BEGIN
            IF nextval('relay.test_victims') <= times THEN
                RAISE EXCEPTION 'deadlock detected' USING ERRCODE = '40P01';
            END IF;
            RETURN 7;
        END $$""")
    await relay.db.execute("ALTER SEQUENCE relay.test_victims RESTART")
    before = relay.db.stats.round_trips
    assert await relay.db.fetchval("SELECT relay.test_deadlock(2)") == 7
    assert relay.db.stats.round_trips - before == 3  # two victims, then success
    await relay.db.execute("ALTER SEQUENCE relay.test_victims RESTART")
    with pytest.raises(RelayError) as refused:
        await relay.db.fetchval("SELECT relay.test_deadlock(100)")
    assert refused.value.status == 503


def after_first_insert(relay: Relay, action: Callable[[], Awaitable[object]]) -> None:
    """Run `action` right after the first insert statement commits, before the look-up of the
    keys it found held: the race a concurrent request would win now and then, made certain."""
    insert = relay.messages._insert
    calls = 0

    async def insert_then_act(*args: object) -> dict[str, int]:
        nonlocal calls
        calls += 1
        stored = await insert(*args)  # type: ignore[arg-type]
        if calls == 1:
            await action()
        return stored

    relay.messages._insert = insert_then_act  # type: ignore[method-assign]


async def test_a_key_whose_holder_is_deleted_before_the_look_up_is_stored_not_refused(relay: Relay) -> None:
    """The insert saw the key held (nothing stored for it); the holder is deleted before the
    look-up of its id. The key is free then: the item is stored, the batch stays whole, and a
    request merged with it is not run again (it used to be: a 409 "retry" after the commit, and
    every merged request stored twice)."""
    held = NewMessage(queue="co", type="t", payload=msgspec.Raw(b"0"), idempotency_key="held")
    (holder,) = await relay.messages.enqueue([held])
    after_first_insert(relay, lambda: relay.admin.delete([holder.id], bulk=False))
    batch = [message(1), NewMessage(queue="co", type="t", payload=msgspec.Raw(b"2"), idempotency_key="held")]
    first, second = await asyncio.gather(relay.messages.enqueue(batch, batch=True), relay.messages.enqueue([message(3)]))
    assert second[0].id not in {r.id for r in first}
    assert not first[1].duplicate and first[1].id != holder.id
    rows = await relay.db.fetch("SELECT payload::text AS p FROM relay.messages WHERE queue_name = 'co' ORDER BY 1")
    assert sorted(r["p"] for r in rows) == ["2", '{"n":1}', '{"n":3}']  # each stored once, the holder gone


@pytest.mark.parametrize("change", ["rename", "delete"])
async def test_a_key_whose_queue_is_renamed_or_deleted_before_the_look_up(relay: Relay, change: str) -> None:
    """The insert saw the key held; the holder's queue is renamed (or deleted) before the look-up.
    Looked up by the name the request used, the holder was not found, the item was inserted again
    under a name that no longer existed, and every request merged with it answered 500 although
    their messages were stored (found by a concurrency probe). The holder is found by its queue's
    id now; a deleted queue fails its own request alone (404), and the other is stored once."""
    queue = f"co_{change}"
    await relay.queues.create({"name": queue, "queue_type": "standard"})
    held = NewMessage(queue=queue, type="t", payload=msgspec.Raw(b"0"), idempotency_key="held")
    (holder,) = await relay.messages.enqueue([held])
    after_first_insert(relay, lambda: relay.queues.rename(queue, queue + "_new") if change == "rename"
                       else relay.queues.delete(queue, force=True))
    again = NewMessage(queue=queue, type="t", payload=msgspec.Raw(b"2"), idempotency_key="held")
    # One shared statement for both requests, as the coalescer makes it under load.
    keyed, other = await relay.messages._enqueue_coalesced(None, [_EnqueueRequest([again], False),
                                                                  _EnqueueRequest([message(3)], False)])
    assert not isinstance(other, BaseException) and len(other) == 1
    if change == "rename":
        assert not isinstance(keyed, BaseException) and keyed[0].duplicate and keyed[0].id == holder.id
        await relay.queues.delete(queue + "_new", force=True)
    else:
        assert isinstance(keyed, RelayError) and keyed.code == "QUEUE_NOT_FOUND"
    rows = await relay.db.fetch("SELECT id FROM relay.messages WHERE queue_name = 'co'")
    assert [r["id"] for r in rows] == [other[0].id]  # the merged request's message, stored once


async def test_an_unavailable_database_fails_merged_enqueues_at_once(relay: Relay, service_dsn: str) -> None:
    """A shared statement that finds the database unavailable (here statement_timeout, behind a
    lock another session holds) answers every merged request 503 at once. Running each again
    alone held them all for one more timeout per request: 6 statements for 5 requests."""
    import asyncpg

    settings = Settings.from_env(
        environ={"ENQUEUE_BUFFER_MAX_INFLIGHT": "1", "POSTGRES_STATEMENT_TIMEOUT_MS": "300"}, dotenv=None
    )
    slow = await Relay.start(settings, service_dsn, background=False)
    locker = await asyncpg.connect(service_dsn)
    try:
        await slow.queues.resolve("co")
        await locker.execute("BEGIN; LOCK TABLE relay.messages IN ACCESS EXCLUSIVE MODE")
        before = slow.db.stats.round_trips
        first = asyncio.ensure_future(slow.messages.enqueue([message(0)]))  # takes the only slot
        await asyncio.sleep(0)
        merged = [slow.messages.enqueue([message(i)]) for i in range(1, 6)]  # wait, then share one
        results = await asyncio.gather(first, *merged, return_exceptions=True)
        assert [getattr(r, "status", r) for r in results] == [503] * 6
        assert slow.db.stats.round_trips - before == 2
    finally:
        await locker.close()
        await slow.stop()
