"""Producer and worker endpoints against a real server and database (API.md §3)."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time

import httpx
import pytest


def enqueue(api: httpx.Client, queue: str, **fields: object) -> str:
    body = {"type": "job", "payload": {"n": 1}, "queue": queue, **fields}
    response = api.post("/queue/message", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def dequeue(api: httpx.Client, queue: str, **params: object) -> httpx.Response:
    return api.get("/queue/message", params={"queue": queue, **params})


def test_enqueue_dequeue_ack_cycle(api: httpx.Client, queue: str) -> None:
    response = api.post("/queue/message", json={"type": "email", "payload": {"to": "a@b.c"}, "queue": queue,
                                                 "priority": 4, "consumerId": "producer-1"})
    assert response.status_code == 201
    body = response.json()
    assert body["message"] == "Message added successfully" and body["queue"] == queue
    leased = dequeue(api, queue, consumerId="w1")
    assert leased.status_code == 200
    msg = leased.json()
    assert msg["id"] == body["id"] and msg["status"] == "processing" and msg["attempt_count"] == 1
    assert msg["payload"] == {"to": "a@b.c"} and msg["consumer_id"] == "w1" and msg["priority"] == 4
    assert msg["payload_size"] == len('{"to":"a@b.c"}')
    assert isinstance(msg["created_at"], int) and msg["locked_until"].endswith("Z")
    assert msg["processing_started_at"] == msg["dequeued_at"]
    assert msg["_stream_name"] == "queue_processing" and msg["_stream_id"] == msg["id"]
    ack = api.post("/queue/ack", json={"id": msg["id"], "lock_token": msg["lock_token"]})
    assert ack.status_code == 200 and ack.json() == {"message": "Message acknowledged"}
    again = api.post("/queue/ack", json={"id": msg["id"], "lock_token": msg["lock_token"]})
    assert again.status_code == 400
    assert again.json() == {"message": "Message is not in processing state (current: acknowledged)",
                            "code": "INVALID_STATE"}


def test_empty_queue_gives_404_no_message(api: httpx.Client, queue: str) -> None:
    response = dequeue(api, queue)
    assert response.status_code == 404
    assert response.json() == {"message": "Message not found", "code": "NO_MESSAGE"}


def test_priority_then_fifo(api: httpx.Client, queue: str) -> None:
    low1 = enqueue(api, queue, priority=1)
    high = enqueue(api, queue, priority=9)
    low2 = enqueue(api, queue, priority=1)
    order = [dequeue(api, queue).json()["id"] for _ in range(3)]
    assert order == [high, low1, low2]


def test_string_and_null_payloads_round_trip(api: httpx.Client, queue: str) -> None:
    for payload in ["plain text", None, 42, [1, "two", {"three": 3}], {"unicode": "héllo ☃"}]:
        enqueue(api, queue, payload=payload)
        assert dequeue(api, queue).json()["payload"] == payload


def test_type_filter(api: httpx.Client, queue: str) -> None:
    enqueue(api, queue, type="a")
    wanted = enqueue(api, queue, type="b")
    assert dequeue(api, queue, type="b").json()["id"] == wanted
    assert dequeue(api, queue, type="b").status_code == 404


def test_unknown_queue_is_404(api: httpx.Client) -> None:
    response = api.post("/queue/message", json={"type": "x", "payload": 1, "queue": "ghost_queue"})
    assert response.status_code == 404
    assert response.json() == {"message": "Queue not found: ghost_queue", "code": "QUEUE_NOT_FOUND"}
    assert dequeue(api, "ghost_queue").json()["code"] == "QUEUE_NOT_FOUND"


def test_validation_errors(api: httpx.Client, queue: str) -> None:
    cases = [
        ({"payload": 1, "queue": queue}, "type"),
        ({"type": "x", "queue": queue}, "payload"),
        ({"type": "x", "payload": 1, "priority": 10, "queue": queue}, "priority"),
        ({"type": "x", "payload": 1, "priority": 1.5, "queue": queue}, "priority"),
        ({"type": "x", "payload": 1, "ackTimeout": -1, "queue": queue}, "ackTimeout"),
        ({"type": "x", "payload": 1, "maxAttempts": 0, "queue": queue}, "maxAttempts"),
        ({"type": 5, "payload": 1, "queue": queue}, "type"),
    ]
    for body, field in cases:
        response = api.post("/queue/message", json=body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["code"] == "VALIDATION_ERROR"
        assert response.json()["details"][0]["field"] == field
    bad = api.post("/queue/message", content=b"{not json", headers={"content-type": "application/json"})
    assert bad.status_code == 400
    assert bad.json() == {"message": "Malformed JSON in request body", "code": "INVALID_JSON"}
    assert api.get("/queue/message", params={"queue": queue, "timeout": "soon"}).status_code == 400
    # An item of an array body that is not an object is named by its dotted path.
    not_object = api.post("/queue/batch", json=[{"type": "a", "payload": 1, "queue": queue}, 5])
    assert not_object.status_code == 400 and not_object.json()["details"][0]["field"] == "1"
    ack_item = api.post("/queue/ack/batch", json={"acks": [5]})
    assert ack_item.status_code == 400 and ack_item.json()["details"][0]["field"] == "acks.0"
    whole = api.post("/queue/ack", json=[5])
    assert whole.status_code == 400 and whole.json()["details"][0]["field"] == ""


def test_head_does_not_dequeue(api: httpx.Client, queue: str) -> None:
    """A HEAD probe would lease the message and drop it with the body."""
    message_id = api.post("/queue/message", json={"type": "x", "payload": 1, "queue": queue}).json()["id"]
    for path, params in (("/queue/message", {"queue": queue}), ("/queue/messages/batch", {"queue": queue, "count": 5})):
        response = api.head(path, params=params)
        assert response.status_code == 404, path
    assert api.head("/queue/metrics").status_code == 200  # other GETs still answer HEAD
    assert api.get("/queue/message", params={"queue": queue}).json()["id"] == message_id


def test_payload_limit(api: httpx.Client, queue: str) -> None:
    huge = "x" * (1024 * 1024 + 10)
    response = api.post("/queue/message", json={"type": "x", "payload": huge, "queue": queue})
    assert response.status_code == 413 and response.json()["code"] == "PAYLOAD_TOO_LARGE"
    assert dequeue(api, queue).status_code == 404


def test_batch_enqueue_keeps_each_items_settings(api: httpx.Client, queue: str) -> None:
    other = "b_" + queue
    assert api.post("/queues", json={"name": other}).status_code == 201
    items = [
        {"type": "a", "payload": 1, "queue": queue, "priority": 2, "ackTimeout": 45, "maxAttempts": 7},
        {"type": "b", "payload": 2, "queue": other, "priority": 8},
        {"type": "c", "payload": 3, "queue": queue},
    ]
    response = api.post("/queue/batch", json=items)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["message"] == "Batch processed: 3/3 messages enqueued" and body["count"] == 3
    first = dequeue(api, queue).json()
    assert first["id"] == body["ids"][0]
    assert (first["priority"], first["ack_timeout_seconds"], first["max_attempts"]) == (2, 45, 7)
    assert dequeue(api, other).json()["id"] == body["ids"][1]
    assert dequeue(api, queue).json()["id"] == body["ids"][2]


def test_batch_is_all_or_nothing(api: httpx.Client, queue: str) -> None:
    bad_item = api.post("/queue/batch", json=[{"type": "a", "payload": 1, "queue": queue}, {"payload": 2}])
    assert bad_item.status_code == 400 and bad_item.json()["details"][0]["field"] == "1.type"
    bad_queue = api.post("/queue/batch", json=[{"type": "a", "payload": 1, "queue": queue},
                                               {"type": "a", "payload": 1, "queue": "nope_nope"}])
    assert bad_queue.status_code == 404
    assert dequeue(api, queue).status_code == 404
    wrapped = api.post("/queue/batch", json={"messages": [{"type": "a", "payload": 1, "queue": queue}]})
    assert wrapped.status_code == 201 and wrapped.json()["count"] == 1
    assert api.post("/queue/batch", json={"nope": []}).status_code == 400


def test_batch_dequeue(api: httpx.Client, queue: str) -> None:
    ids = api.post("/queue/batch", json=[{"type": "x", "payload": i, "queue": queue} for i in range(5)]).json()["ids"]
    response = api.get("/queue/messages/batch", params={"queue": queue, "count": 3})
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3 and [m["id"] for m in body["messages"]] == ids[:3]
    assert len({m["lock_token"] for m in body["messages"]}) == 3
    rest = api.get("/queue/messages/batch", params={"queue": queue, "count": 1000}).json()
    assert rest["count"] == 2
    empty = api.get("/queue/messages/batch", params={"queue": queue, "count": 10})
    assert empty.status_code == 200 and empty.json() == {"messages": [], "count": 0}
    for count in ("0", "1001", "x"):
        assert api.get("/queue/messages/batch", params={"queue": queue, "count": count}).status_code == 400
    assert api.get("/queue/messages/batch", params={"queue": queue}).status_code == 400


def test_lock_token_fencing(api: httpx.Client, queue: str) -> None:
    enqueue(api, queue)
    msg = dequeue(api, queue, ackTimeout=1).json()
    time.sleep(2.5)  # the reaper reclaims the lease
    stale = api.post("/queue/ack", json={"id": msg["id"], "lock_token": msg["lock_token"]})
    assert stale.status_code == 400 and stale.json()["code"] == "INVALID_STATE"
    again = dequeue(api, queue).json()
    assert again["id"] == msg["id"] and again["attempt_count"] == 2 and again["lock_token"] != msg["lock_token"]
    lost = api.post("/queue/ack", json={"id": msg["id"], "lock_token": msg["lock_token"]})
    assert lost.status_code == 409
    assert lost.json() == {"message": "Lock lost - lock_token mismatch. The message was re-queued and picked up "
                           "by another worker.", "error": "LOCK_LOST", "code": "LOCK_LOST"}
    assert api.post("/queue/ack", json={"id": again["id"], "lock_token": again["lock_token"]}).status_code == 200


def test_ack_unknown_and_without_token(api: httpx.Client, queue: str) -> None:
    missing = api.post("/queue/ack", json={"id": "does-not-exist", "lock_token": "x"})
    assert missing.status_code == 400 and missing.json() == {"message": "Message not found", "code": "NOT_FOUND"}
    enqueue(api, queue)
    msg = dequeue(api, queue).json()
    assert api.post("/queue/ack", json={"id": msg["id"]}).status_code == 200
    assert api.post("/queue/ack", json={"lock_token": "x"}).status_code == 400


def test_nack_requeues_then_dead_letters(api: httpx.Client, queue: str) -> None:
    enqueue(api, queue, maxAttempts=2)
    first = dequeue(api, queue).json()
    response = api.post(f"/queue/message/{first['id']}/nack", json={"lock_token": first["lock_token"],
                                                                     "errorReason": "boom"})
    assert response.json() == {"message": "Message nacked successfully", "requeued": True, "movedToDlq": False}
    second = dequeue(api, queue).json()
    assert second["id"] == first["id"] and second["last_error"] == "boom" and second["attempt_count"] == 2
    response = api.post(f"/queue/message/{second['id']}/nack", json={"lock_token": second["lock_token"]})
    assert response.json()["movedToDlq"] is True
    dead = api.get("/queue/dead/messages", params={"queueName": queue}).json()["messages"]
    assert [m["id"] for m in dead] == [first["id"]] and dead[0]["last_error"] == "Max attempts exceeded"
    wrong = api.post(f"/queue/message/{first['id']}/nack", json={})
    assert wrong.status_code == 404 and wrong.json()["code"] == "INVALID_STATE"
    assert api.post("/queue/message/nope/nack").json() == {"message": "Message not found", "code": "NOT_FOUND"}


def test_nack_lock_lost_and_delay(api: httpx.Client, queue: str) -> None:
    enqueue(api, queue)
    msg = dequeue(api, queue).json()
    lost = api.post(f"/queue/message/{msg['id']}/nack", json={"lock_token": "wrong"})
    assert lost.status_code == 409 and lost.json() == {"message": "Lock lost", "error": "LOCK_LOST", "code": "LOCK_LOST"}
    api.post(f"/queue/message/{msg['id']}/nack", json={"lock_token": msg["lock_token"], "delaySeconds": 1})
    assert dequeue(api, queue).status_code == 404
    assert dequeue(api, queue, timeout=3).json()["id"] == msg["id"]


def test_batch_ack_reports_every_item(api: httpx.Client, queue: str) -> None:
    api.post("/queue/batch", json=[{"type": "x", "payload": i, "queue": queue} for i in range(3)])
    msgs = api.get("/queue/messages/batch", params={"queue": queue, "count": 3}).json()["messages"]
    acks = [
        {"id": msgs[0]["id"], "lock_token": msgs[0]["lock_token"]},
        {"id": msgs[1]["id"], "lock_token": "stolen"},
        {"id": "nope", "lock_token": "x"},
        {"id": msgs[0]["id"], "lock_token": msgs[0]["lock_token"]},
        {"id": msgs[2]["id"], "lock_token": msgs[2]["lock_token"]},
    ]
    body = api.post("/queue/ack/batch", json={"acks": acks}).json()
    assert body["succeeded"] == [msgs[0]["id"], msgs[2]["id"]]
    assert [(f["id"], f["code"]) for f in body["failed"]] == [
        (msgs[1]["id"], "LOCK_LOST"), ("nope", "NOT_FOUND"), (msgs[0]["id"], "DUPLICATE")]
    assert body["message"] == "Acknowledged 2 messages, 3 failed"
    assert body["failed"][0]["error"] == "Lock token mismatch - message may have been requeued"
    assert api.post("/queue/ack/batch", json={"acks": []}).status_code == 400
    assert api.post("/queue/ack/batch", json={"acks": [{"id": "a"}]}).status_code == 400


def test_batch_nack(api: httpx.Client, queue: str) -> None:
    api.post("/queue/batch", json=[{"type": "x", "payload": 1, "queue": queue, "maxAttempts": 1},
                                   {"type": "x", "payload": 2, "queue": queue}])
    msgs = api.get("/queue/messages/batch", params={"queue": queue, "count": 2}).json()["messages"]
    body = api.post("/queue/nack/batch", json={"nacks": [
        {"id": m["id"], "lock_token": m["lock_token"], "error": "bad"} for m in msgs] + [
        {"id": "ghost", "lock_token": "x"}]}).json()
    assert body["requeued"] == [msgs[1]["id"]] and body["movedToDlq"] == [msgs[0]["id"]]
    assert body["succeeded"] == [msgs[1]["id"], msgs[0]["id"]]
    assert body["failed"] == [{"id": "ghost", "error": "Message not found", "code": "NOT_FOUND"}]
    assert body["message"] == "NACKed 2 messages, 1 failed"
    requeued = dequeue(api, queue).json()
    assert requeued["last_error"] == "bad"


def test_touch_extends_lease(api: httpx.Client, queue: str) -> None:
    enqueue(api, queue, ackTimeout=1)
    msg = dequeue(api, queue).json()
    assert msg["ack_timeout_seconds"] == 1
    for _ in range(3):
        time.sleep(0.6)
        response = api.put(f"/queue/message/{msg['id']}/touch", json={"lock_token": msg["lock_token"]})
        assert response.status_code == 200, response.text
    body = response.json()
    assert body["message"] == "Lock extended successfully" and body["lock_token"] == msg["lock_token"]
    assert body["extended_by"] == 1 and isinstance(body["new_timeout_at"], int)
    long = api.put(f"/queue/message/{msg['id']}/touch", json={"lock_token": msg["lock_token"], "extend_seconds": 60})
    assert long.json()["extended_by"] == 60
    assert api.put(f"/queue/message/{msg['id']}/touch", json={"lock_token": msg["lock_token"],
                                                              "extend_seconds": -5}).status_code == 400
    lost = api.put(f"/queue/message/{msg['id']}/touch", json={"lock_token": "nope"})
    assert lost.status_code == 409 and lost.json()["error"] == "LOCK_LOST"
    assert api.post("/queue/ack", json={"id": msg["id"], "lock_token": msg["lock_token"]}).status_code == 200
    gone = api.put(f"/queue/message/{msg['id']}/touch", json={"lock_token": msg["lock_token"]})
    assert gone.status_code == 404 and gone.json() == {"message": "Message not found", "error": "NOT_FOUND",
                                                       "code": "NOT_FOUND"}


def test_reaper_dead_letters_after_max_attempts(api: httpx.Client, queue: str) -> None:
    enqueue(api, queue, maxAttempts=1)
    msg = dequeue(api, queue, ackTimeout=0.5).json()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        dead = api.get("/queue/dead/messages", params={"queueName": queue}).json()["messages"]
        if dead:
            break
        time.sleep(0.2)
    assert dead[0]["id"] == msg["id"] and dead[0]["last_error"] == "Timeout after max attempts"
    assert dead[0]["consumer_id"] == msg["consumer_id"]


def test_long_poll_wakes_on_enqueue(api: httpx.Client, live_server: object, queue: str) -> None:
    results: list[httpx.Response] = []

    def consumer() -> None:
        with httpx.Client(base_url=api.base_url, timeout=30) as own:
            results.append(own.get("/queue/message", params={"queue": queue, "timeout": 10}))

    thread = threading.Thread(target=consumer)
    started = time.monotonic()
    thread.start()
    time.sleep(0.5)
    mid = enqueue(api, queue)
    thread.join()
    elapsed = time.monotonic() - started
    assert results[0].status_code == 200 and results[0].json()["id"] == mid
    assert elapsed < 5  # woke on the enqueue, not at the 10 s deadline


def test_a_long_poll_whose_client_left_leases_nothing(api: httpx.Client, queue: str) -> None:
    """A worker whose HTTP timeout is shorter than its long-poll gives up; a message arriving
    afterwards must not be leased to nobody (an attempt spent, back only at lease expiry)."""
    for path, params in (("/queue/message", {}), ("/queue/messages/batch", {"count": "5"})):
        with pytest.raises(httpx.ReadTimeout):
            api.get(path, params={"queue": queue, "timeout": 30, "consumerId": "gone", **params}, timeout=0.5)
        time.sleep(0.3)  # the server has seen the connection close
        mid = enqueue(api, queue)
        time.sleep(1.5)  # a woken or rechecking poll would have claimed it by now
        leased = dequeue(api, queue).json()
        assert leased["id"] == mid and leased["attempt_count"] == 1 and leased["consumer_id"] is None, leased
        api.post("/queue/ack", json={"id": mid, "lock_token": leased["lock_token"]}).raise_for_status()


def test_long_poll_times_out(api: httpx.Client, queue: str) -> None:
    started = time.monotonic()
    response = dequeue(api, queue, timeout=1)
    assert response.status_code == 404 and time.monotonic() - started >= 0.9


def test_delayed_delivery(api: httpx.Client, queue: str) -> None:
    mid = enqueue(api, queue, delaySeconds=1)
    assert dequeue(api, queue).status_code == 404
    leased = dequeue(api, queue, timeout=3).json()
    assert leased["id"] == mid and leased["available_at"] >= leased["created_at"] + 1


@pytest.mark.parametrize("queue_type", ["standard", "unlogged", "partitioned"])
def test_idempotent_enqueue(api: httpx.Client, queue_type: str) -> None:
    """Every storage the same: partitioned tables cannot hold the unique index, so a key repeated
    within one statement (a batch, or merged concurrent singles) is inserted once there too."""
    queue = f"idem_{queue_type}_{secrets.token_hex(4)}"
    extra = {"partition_interval": "daily", "retention_interval": "7 days"} if queue_type == "partitioned" else {}
    assert api.post("/queues", json={"name": queue, "queue_type": queue_type, **extra}).status_code == 201
    first = api.post("/queue/message", json={"type": "x", "payload": 1, "queue": queue, "idempotencyKey": "k1"})
    assert first.status_code == 201
    repeat = api.post("/queue/message", json={"type": "x", "payload": 2, "queue": queue, "idempotencyKey": "k1"})
    assert repeat.status_code == 200
    assert repeat.json() == {"message": "Duplicate message ignored", "id": first.json()["id"], "queue": queue,
                             "duplicate": True}
    batch = api.post("/queue/batch", json=[
        {"type": "x", "payload": 3, "queue": queue, "idempotencyKey": "k1"},
        {"type": "x", "payload": 4, "queue": queue, "idempotencyKey": "k2"},
        {"type": "x", "payload": 5, "queue": queue, "idempotencyKey": "k2"},
    ]).json()
    assert batch["ids"][0] == first.json()["id"] and batch["ids"][1] == batch["ids"][2]
    assert batch["message"] == "Batch processed: 1/3 messages enqueued" and batch["count"] == 3
    metrics = api.get("/queue/metrics", params={"queueName": queue}).json()
    assert metrics["queued"] == 2
    fresh = api.post("/queue/batch", json=[
        {"type": "x", "payload": i, "queue": queue, "idempotencyKey": "k3"} for i in range(3)]).json()
    assert len(set(fresh["ids"])) == 1 and fresh["message"] == "Batch processed: 1/3 messages enqueued"
    assert api.get("/queue/metrics", params={"queueName": queue}).json()["queued"] == 3


def test_concurrent_enqueues_of_one_key_store_one_message_in_every_storage(api: httpx.Client) -> None:
    """Also across statements: natural batching sends concurrent requests in several statements,
    and a partitioned table's check would miss a concurrent insert without its key lock (0013)."""
    async def storm(queue: str, key: str) -> set[str]:
        async with httpx.AsyncClient(base_url=str(api.base_url), timeout=30) as client:
            replies = await asyncio.gather(*[client.post("/queue/message", json={
                "type": "x", "payload": i, "queue": queue, "idempotencyKey": key}) for i in range(20)])
        assert {r.status_code for r in replies} <= {200, 201}
        return {r.json()["id"] for r in replies}

    for queue_type in ("standard", "partitioned"):
        queue = f"idem_storm_{queue_type}_{secrets.token_hex(3)}"
        extra = {"partition_interval": "daily", "retention_interval": "7 days"} if queue_type == "partitioned" else {}
        api.post("/queues", json={"name": queue, "queue_type": queue_type, **extra}).raise_for_status()
        for round_ in range(5):
            assert len(asyncio.run(storm(queue, f"k{round_}"))) == 1, (queue_type, round_)
        assert api.get("/queue/metrics", params={"queueName": queue}).json()["queued"] == 5


def test_queue_settings_apply_to_messages(api: httpx.Client) -> None:
    name = "cfg_" + str(int(time.time() * 1000))
    api.post("/queues", json={"name": name, "ack_timeout_seconds": 77, "max_attempts": 5})
    enqueue(api, name)
    msg = dequeue(api, name).json()
    assert (msg["ack_timeout_seconds"], msg["max_attempts"]) == (77, 5)
    api.patch(f"/queues/{name}", json={"ack_timeout_seconds": 12})
    enqueue(api, name)
    assert dequeue(api, name).json()["ack_timeout_seconds"] == 12


def _stored(api: httpx.Client, queue: str, count: int) -> list[dict[str, object]]:
    leased = api.get("/queue/messages/batch", params={"queue": queue, "count": count}).json()["messages"]
    keys = ("type", "payload", "priority", "ack_timeout_seconds", "max_attempts", "payload_size")
    return [{k: m[k] for k in keys} for m in leased]


def test_fast_and_field_by_field_batches_store_the_same(api: httpx.Client, queue: str) -> None:
    """A body in API.md's spellings is decoded in one pass; aliases take the field-by-field path.

    Both must store identical messages, and whitespace inside payloads is not stored.
    """
    documented = [
        {"type": "a", "payload": {"k" : [1, 2], "s": "x y"}, "queue": queue, "priority": 2,
         "ackTimeout": 45, "maxAttempts": 7, "delaySeconds": 0},
        {"type": "b", "payload": None, "queue": queue, "ackTimeout": 0, "idempotencyKey": "k1"},
        {"type": "c", "payload": "text", "queue": queue, "priority": None, "unknown": 1},
    ]
    aliased = [
        {"type": "a", "payload": {"k": [1, 2], "s": "x y"}, "queue_name": queue, "priority": 2,
         "ack_timeout": 45, "max_attempts": 7, "delay_seconds": 0},
        {"type": "b", "payload": None, "queueName": queue, "ack_timeout_seconds": 0, "idempotency_key": "k2"},
        {"type": "c", "payload": "text", "queue": queue, "priority": None, "unknown": 1},
    ]
    raw = (b'[{"type": "a", "payload": {"k" : [1, 2], "s": "x y"}, "queue": "%s", "priority": 2,'
           b' "ackTimeout": 45, "maxAttempts": 7, "delaySeconds": 0}]' % queue.encode())
    for body in (documented, aliased):
        response = api.post("/queue/batch", json=body)
        assert response.status_code == 201, response.text
        assert response.json()["count"] == 3
    spaced = api.post("/queue/batch", content=raw, headers={"content-type": "application/json"})
    assert spaced.status_code == 201, spaced.text
    by_type: dict[object, list[dict[str, object]]] = {}
    for row in _stored(api, queue, 10):
        by_type.setdefault(row["type"], []).append(row)
    assert [len(by_type[t]) for t in "abc"] == [3, 2, 2]
    assert all(rows == [rows[0]] * len(rows) for rows in by_type.values())
    a, b = by_type["a"][0], by_type["b"][0]
    assert a["payload"] == {"k": [1, 2], "s": "x y"} and a["payload_size"] == len('{"k":[1,2],"s":"x y"}')
    assert (a["priority"], a["ack_timeout_seconds"], a["max_attempts"]) == (2, 45, 7)
    assert b["payload"] is None and b["payload_size"] == 4
    single = api.post("/queue/message", content=raw[1:-1], headers={"content-type": "application/json"})
    assert single.status_code == 201, single.text
    assert _stored(api, queue, 1) == [a]


def test_fast_path_leaves_errors_to_the_field_checks(api: httpx.Client, queue: str) -> None:
    cases = [
        ([{"type": "a", "payload": 1, "queue": queue, "priority": 10}], "0.priority"),
        ([{"type": "a", "payload": 1, "queue": queue, "maxAttempts": 0}], "0.maxAttempts"),
        ([{"type": "a", "payload": 1, "queue": queue}, {"payload": 1, "queue": queue}], "1.type"),
        ([{"type": "a\u0000", "payload": 1, "queue": queue}], "0.type"),
        ([{"type": "a", "payload": 1, "queue": queue, "idempotencyKey": ""}], "0.idempotencyKey"),
    ]
    for body, field in cases:
        response = api.post("/queue/batch", json=body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["details"][0]["field"] == field
    # Values the fast decoder would refuse but the field checks accept.
    accepted = api.post("/queue/batch", json=[{"type": "a", "payload": 1, "queue": queue, "priority": 3.0}])
    assert accepted.status_code == 201, accepted.text
    assert _stored(api, queue, 1)[0]["priority"] == 3


def test_uniform_batch_keeps_settings_payloads_and_order(api: httpx.Client, queue: str) -> None:
    """A batch whose messages share every setting is inserted by the leaner statement."""
    payloads: list[object] = [{"n": 1}, None, "text", [1, 2], 3.5]
    body = [{"type": "u", "payload": p, "queue": queue, "priority": 2, "ackTimeout": 45, "maxAttempts": 7}
            for p in payloads]
    ids = api.post("/queue/batch", json=body).json()["ids"]
    leased = api.get("/queue/messages/batch", params={"queue": queue, "count": 10}).json()["messages"]
    assert [m["id"] for m in leased] == ids  # FIFO within the batch
    assert [m["payload"] for m in leased] == payloads
    assert {(m["type"], m["priority"], m["ack_timeout_seconds"], m["max_attempts"]) for m in leased} == {
        ("u", 2, 45, 7)}
    assert [m["payload_size"] for m in leased] == [7, 4, 6, 5, 3]
