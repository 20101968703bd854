"""Concurrency: many consumers never share a lease; ack/nack/touch racing the reaper resolve to
exactly one outcome; batch operations are all or nothing."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter
from typing import Any

import httpx

from tests.support.server import LiveServer


def _queue(api: httpx.Client, **spec: Any) -> str:
    name = "c_" + secrets.token_hex(5)
    assert api.post("/queues", json={"name": name, **spec}).status_code == 201
    return name


def test_many_consumers_never_receive_the_same_message(live_server: LiveServer, api: httpx.Client) -> None:
    queue = _queue(api)
    total = 600
    for start in range(0, total, 200):
        batch = [{"type": "t", "payload": n, "queue": queue} for n in range(start, start + 200)]
        assert api.post("/queue/batch", json=batch).status_code == 201

    async def consume(index: int, seen: list[tuple[str, str]]) -> None:
        async with httpx.AsyncClient(base_url=live_server.api, timeout=60) as client:
            while True:
                if index % 2:
                    r = await client.get("/queue/messages/batch", params={"queue": queue, "count": 7})
                    messages = r.json()["messages"]
                else:
                    r = await client.get("/queue/message", params={"queue": queue})
                    messages = [r.json()] if r.status_code == 200 else []
                if not messages:
                    return
                seen.extend((m["id"], m["lock_token"]) for m in messages)

    async def main() -> list[tuple[str, str]]:
        seen: list[tuple[str, str]] = []
        await asyncio.gather(*(consume(i, seen) for i in range(16)))
        return seen

    seen = asyncio.run(main())
    ids = Counter(mid for mid, _ in seen)
    assert len(ids) == total and max(ids.values()) == 1, "a message was leased twice at once"
    assert len({token for _, token in seen}) == total


async def _race(live_server: LiveServer, requests: list[tuple[str, str, Any]]) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=live_server.api, timeout=60) as client:
        return list(await asyncio.gather(*(client.request(m, p, json=b) for m, p, b in requests)))


def test_ack_nack_touch_racing_the_reaper_resolve_to_one_outcome(
    live_server: LiveServer, api: httpx.Client
) -> None:
    # One-second leases, so the reaper (every 200 ms in tests) races the workers' calls.
    queue = _queue(api, ack_timeout_seconds=1, max_attempts=100)
    rounds = 40
    api.post("/queue/batch", json=[{"type": "t", "payload": n, "queue": queue} for n in range(rounds)])
    leased = api.get("/queue/messages/batch", params={"queue": queue, "count": rounds}).json()["messages"]
    assert len(leased) == rounds
    time.sleep(0.9)  # right at the lease's end
    calls: list[tuple[str, str, Any]] = []
    for m in leased:
        token = m["lock_token"]
        calls += [
            ("POST", "/queue/ack", {"id": m["id"], "lock_token": token}),
            ("POST", f"/queue/message/{m['id']}/nack", {"lock_token": token}),
            ("PUT", f"/queue/message/{m['id']}/touch", {"lock_token": token, "extend_seconds": 5}),
            ("POST", "/queue/ack", {"id": m["id"], "lock_token": token}),
        ]
    responses = asyncio.run(_race(live_server, calls))
    assert all(r.status_code < 500 for r in responses), [r.text for r in responses if r.status_code >= 500]
    time.sleep(1.5)  # let the reaper settle whatever is left
    for i, m in enumerate(leased):
        ack1, nack, touch, ack2 = responses[4 * i: 4 * i + 4]
        finishing = [r for r in (ack1, nack, ack2) if r.status_code == 200]
        assert len(finishing) <= 1, f"{m['id']}: two of ack/nack/ack won"
        detail = api.get("/queue/status", params={"queueName": queue}).json()
        statuses = {x["id"]: x["status"] for key in ("mainQueue", "processingQueue", "acknowledgedQueue")
                    for x in detail[key]["messages"]}
        final = statuses[m["id"]]
        if ack1.status_code == 200 or ack2.status_code == 200:
            assert final == "acknowledged"
        else:
            assert final in ("queued", "processing"), final  # nacked, or reclaimed by the reaper
        if touch.status_code == 200 and not finishing:
            assert final in ("processing", "queued")


def test_duplicate_concurrent_batch_acks_never_both_succeed(live_server: LiveServer, api: httpx.Client) -> None:
    queue = _queue(api)
    api.post("/queue/batch", json=[{"type": "t", "payload": n, "queue": queue} for n in range(50)])
    leased = api.get("/queue/messages/batch", params={"queue": queue, "count": 50}).json()["messages"]
    forward = [{"id": m["id"], "lock_token": m["lock_token"]} for m in leased]
    calls = [("POST", "/queue/ack/batch", {"acks": forward}), ("POST", "/queue/ack/batch", {"acks": forward[::-1]}),
             ("POST", "/queue/ack/batch", {"acks": forward[10:] + forward[:10]})]
    responses = asyncio.run(_race(live_server, calls))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    wins = Counter(mid for r in responses for mid in r.json()["succeeded"])
    assert set(wins) == {m["id"] for m in leased} and max(wins.values()) == 1
    for r in responses:
        assert {f["code"] for f in r.json()["failed"]} <= {"INVALID_STATE"}


def test_batch_enqueue_is_all_or_nothing(api: httpx.Client) -> None:
    standard = _queue(api)
    unlogged = _queue(api, queue_type="unlogged")
    good = [{"type": "t", "payload": 1, "queue": standard}, {"type": "t", "payload": 2, "queue": unlogged}]
    for bad in ({"type": "t", "payload": 3, "queue": "no_such_queue_x"}, {"type": 5, "payload": 3},
                {"type": "t", "payload": 3, "priority": 10}, {"type": "t", "payload": 3, "queue": standard,
                                                              "maxAttempts": 10**12}):
        response = api.post("/queue/batch", json=[*good, bad, *good])
        assert 400 <= response.status_code < 500, response.text
    for queue in (standard, unlogged):
        assert api.get("/queue/status", params={"queueName": queue}).json()["mainQueue"]["length"] == 0
    ok = api.post("/queue/batch", json=good * 3)
    assert ok.status_code == 201 and ok.json()["count"] == 6
