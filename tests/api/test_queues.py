"""Queue management endpoints (API.md §7)."""

from __future__ import annotations

import secrets
import time

import httpx


def new_name() -> str:
    return "q_" + secrets.token_hex(5)


def test_create_get_list(api: httpx.Client) -> None:
    name = new_name()
    response = api.post("/queues", json={"name": name, "ack_timeout_seconds": 60, "max_attempts": 4,
                                         "description": "orders", "retry_delay_seconds": 2})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["message"] == f"Queue '{name}' created successfully"
    queue = body["queue"]
    assert queue["queue_type"] == "standard" and queue["ack_timeout_seconds"] == 60 and queue["max_attempts"] == 4
    assert queue["retry_delay_seconds"] == 2 and queue["description"] == "orders"
    assert queue["created_at"].endswith("Z") and queue["message_count"] == 0
    got = api.get(f"/queues/{name}").json()
    assert got["name"] == name
    listing = api.get("/queues").json()
    names = [q["name"] for q in listing["queues"]]
    assert names[0] == "default" and name in names and listing["total"] == len(names)
    assert api.post("/queues", json={"name": name}).json() == {"message": "Queue already exists", "code": "QUEUE_EXISTS"}
    missing = api.get("/queues/ghost")
    assert missing.status_code == 404 and missing.json() == {"message": "Queue 'ghost' not found",
                                                             "code": "QUEUE_NOT_FOUND"}


def test_create_validation(api: httpx.Client) -> None:
    for body in [{"name": "bad name!"}, {"name": ""}, {"name": "x" * 65}, {"name": "ok", "queue_type": "fancy"},
                 {"name": "ok", "ack_timeout_seconds": 0}, {"name": "ok", "max_attempts": -1},
                 {"name": "ok", "description": "d" * 501}, {},
                 # a retention the maintenance pass could not subtract from now() (it would stop every queue's)
                 {"name": "ok", "queue_type": "partitioned", "partition_interval": "daily",
                  "retention_interval": "99999999999999999999 days"},
                 {"name": "ok", "retention_interval": "1201 months"}, {"name": "ok", "retention_interval": ""}]:
        response = api.post("/queues", json=body)
        assert response.status_code == 400, body
        assert response.json()["code"] == "VALIDATION_ERROR"
    partitioned = api.post("/queues", json={"name": new_name(), "queue_type": "partitioned"})
    assert partitioned.json() == {"message": "Partitioned queues require partition_interval and retention_interval",
                                  "code": "VALIDATION_ERROR"}


def test_defaults_come_from_server_settings(api: httpx.Client) -> None:
    queue = api.post("/queues", json={"name": new_name()}).json()["queue"]
    config = api.get("/queue/config").json()
    assert config == {"ack_timeout_seconds": 30, "max_attempts": 3, "max_batch_size": 10_000}
    assert (queue["ack_timeout_seconds"], queue["max_attempts"]) == (30, 3)


def test_patch(api: httpx.Client, queue: str) -> None:
    before = api.get(f"/queues/{queue}").json()
    response = api.patch(f"/queues/{queue}", json={"max_attempts": 9, "description": "x", "bogus": 1})
    assert response.status_code == 200
    assert response.json()["message"] == f"Queue '{queue}' updated successfully"
    assert response.json()["queue"]["max_attempts"] == 9
    assert response.json()["queue"]["updated_at"] >= before["updated_at"]
    empty = api.patch(f"/queues/{queue}", json={})
    assert empty.status_code == 200 and empty.json()["queue"]["max_attempts"] == 9
    assert api.patch(f"/queues/{queue}", json={"max_attempts": 0}).status_code == 400
    assert api.patch("/queues/ghost", json={"max_attempts": 2}).status_code == 404
    # reads do not bump updated_at
    assert api.get(f"/queues/{queue}").json()["updated_at"] == api.get(f"/queues/{queue}").json()["updated_at"]


def test_delete_rules(api: httpx.Client, queue: str) -> None:
    api.post("/queue/message", json={"type": "x", "payload": 1, "queue": queue})
    refused = api.delete(f"/queues/{queue}")
    assert refused.status_code == 400
    assert refused.json() == {"message": "Queue has 1 messages. Use force=true to delete.", "code": "QUEUE_NOT_EMPTY"}
    assert api.delete(f"/queues/{queue}", params={"force": "yes"}).status_code == 400
    deleted = api.delete(f"/queues/{queue}", params={"force": "true"})
    assert deleted.json() == {"message": f"Queue '{queue}' deleted successfully", "deleted_messages": 1}
    assert api.post("/queue/message", json={"type": "x", "payload": 1, "queue": queue}).status_code == 404
    assert api.get("/queue/message", params={"queue": queue}).json()["code"] == "QUEUE_NOT_FOUND"
    assert api.delete(f"/queues/{queue}").json() == {"message": f"Queue not found: {queue}",
                                                      "code": "QUEUE_NOT_FOUND"}
    protected = api.delete("/queues/default", params={"force": "true"})
    assert protected.status_code == 400 and protected.json()["code"] == "DEFAULT_QUEUE_PROTECTED"


def test_dead_messages_do_not_block_delete_and_are_counted(api: httpx.Client, queue: str) -> None:
    api.post("/queue/message", json={"type": "x", "payload": 1, "queue": queue, "maxAttempts": 1})
    msg = api.get("/queue/message", params={"queue": queue}).json()
    api.post(f"/queue/message/{msg['id']}/nack", json={"lock_token": msg["lock_token"]})
    assert api.get(f"/queues/{queue}").json()["dead_count"] == 1
    assert api.delete(f"/queues/{queue}").json()["deleted_messages"] == 1


def test_purge(api: httpx.Client, queue: str) -> None:
    api.post("/queue/batch", json=[{"type": "x", "payload": i, "queue": queue} for i in range(3)])
    api.get("/queue/message", params={"queue": queue})
    only_queued = api.post(f"/queues/{queue}/purge", json={"status": "queued"})
    assert only_queued.json() == {"message": f"Purged 2 messages from queue '{queue}'", "deleted_count": 2}
    assert api.post(f"/queues/{queue}/purge").json()["deleted_count"] == 1
    assert api.post(f"/queues/{queue}/purge", json={"status": "weird"}).status_code == 400
    assert api.post("/queues/ghost/purge").status_code == 404
    # One summary entry per purge, counted (the rows themselves are not carried any more).
    deadline = time.monotonic() + 5
    while True:
        logs = api.get("/queue/activity", params={"queue_name": queue, "action": "purge_queue"}).json()["logs"]
        if len(logs) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert sorted((e["batch_size"], e["context"]["status"]) for e in logs) == [(1, "all"), (2, "queued")]


def test_rename(api: httpx.Client, queue: str) -> None:
    api.post("/queue/message", json={"type": "x", "payload": 1, "queue": queue})
    target = new_name()
    response = api.post(f"/queues/{queue}/rename", json={"newName": f"  {target} "})
    assert response.status_code == 200, response.text
    assert response.json()["message"] == f"Queue renamed from '{queue}' to '{target}'"
    assert response.json()["queue"]["name"] == target and response.json()["queue"]["message_count"] == 1
    assert api.get(f"/queues/{queue}").status_code == 404
    assert api.get("/queue/message", params={"queue": target}).json()["queue_name"] == target
    assert api.post(f"/queues/{target}/rename", json={"newName": target}).status_code == 409
    assert api.post(f"/queues/{target}/rename", json={"new_name": "bad name!"}).status_code == 400
    blank = api.post(f"/queues/{target}/rename", json={"newName": "  "})
    assert blank.status_code == 400 and blank.json()["message"] == "New queue name cannot be empty"
    assert api.post("/queues/ghost/rename", json={"newName": new_name()}).status_code == 404
    assert api.post("/queues/default/rename", json={"newName": new_name()}).json()["code"] == "DEFAULT_QUEUE_PROTECTED"


def test_every_queue_type_supports_every_operation(api: httpx.Client) -> None:
    for spec in ({"queue_type": "unlogged"},
                 {"queue_type": "partitioned", "partition_interval": "daily", "retention_interval": "7 days"}):
        name = new_name()
        assert api.post("/queues", json={"name": name, **spec}).status_code == 201
        ids = api.post("/queue/batch", json=[{"type": "x", "payload": i, "queue": name, "priority": i}
                                             for i in range(4)]).json()["ids"]
        assert api.post("/queue/message", json={"type": "k", "payload": 0, "queue": name,
                                                "idempotencyKey": "same"}).status_code == 201
        assert api.post("/queue/message", json={"type": "k", "payload": 0, "queue": name,
                                                "idempotencyKey": "same"}).status_code == 200
        first = api.get("/queue/message", params={"queue": name}).json()
        assert first["id"] == ids[3]
        touch = api.put(f"/queue/message/{first['id']}/touch", json={"lock_token": first["lock_token"]})
        assert touch.status_code == 200
        assert api.post("/queue/ack", json={"id": first["id"], "lock_token": first["lock_token"]}).status_code == 200
        batch = api.get("/queue/messages/batch", params={"queue": name, "count": 2}).json()["messages"]
        nacked = api.post("/queue/nack/batch", json={"nacks": [{"id": m["id"], "lock_token": m["lock_token"]}
                                                               for m in batch]}).json()
        assert len(nacked["requeued"]) == 2
        listing = api.get("/queue/main/messages", params={"queueName": name}).json()
        assert listing["pagination"]["total"] == 4
        edited = api.put(f"/queue/message/{ids[0]}", params={"queueType": "main"}, json={"priority": 9})
        assert edited.status_code == 200 and edited.json()["data"]["priority"] == 9
        moved = api.post("/queue/move", json={"messages": [ids[0]], "fromQueue": "main", "toQueue": "dead"})
        assert moved.json()["movedCount"] == 1
        assert api.delete(f"/queue/message/{ids[0]}", params={"queueType": "dead"}).status_code == 200
        counts = api.get(f"/queues/{name}").json()
        assert (counts["message_count"], counts["processing_count"], counts["dead_count"]) == (3, 0, 0)
        assert (counts["acknowledged_count"], counts["archived_count"]) == (1, 0)
        renamed = new_name()
        assert api.post(f"/queues/{name}/rename", json={"newName": renamed}).status_code == 200
        assert api.get("/queue/message", params={"queue": renamed}).status_code == 200
        assert api.post(f"/queues/{renamed}/purge").json()["deleted_count"] == 4
        assert api.delete(f"/queues/{renamed}").status_code == 200
