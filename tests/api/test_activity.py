"""GET/DELETE /queue/activity*, consumers and /metrics against a real server (API.md §6)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx

from relayq.services.activity.entries import ENTRY_KEYS
from tests.support.server import LiveServer, fresh_database, start_server


def enqueue(api: httpx.Client, queue: str, **fields: Any) -> str:
    body = {"type": "job", "payload": {"n": 1}, "queue": queue, **fields}
    response = api.post("/queue/message", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def lease(api: httpx.Client, queue: str, consumer: str) -> dict[str, Any]:
    response = api.get("/queue/message", params={"queue": queue, "consumerId": consumer})
    assert response.status_code == 200, response.text
    return dict(response.json())


def eventually(fetch: Callable[[], Any], ready: Callable[[Any], bool], timeout: float = 2.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if ready(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def activity(api: httpx.Client, **params: Any) -> dict[str, Any]:
    response = api.get("/queue/activity", params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_lifecycle_history_reads_enqueue_dequeue_acknowledge(api: httpx.Client, queue: str) -> None:
    mid = enqueue(api, queue, consumerId="producer", priority=3)
    leased = lease(api, queue, "w1")
    assert api.post("/queue/ack", json={"id": mid, "lock_token": leased["lock_token"]}).status_code == 200
    history = eventually(lambda: api.get(f"/queue/activity/message/{mid}").json(),
                         lambda body: len(body["history"]) == 3)
    assert history["message_id"] == mid
    entries = history["history"]
    assert [e["action"] for e in entries] == ["enqueue", "dequeue", "acknowledge"]
    enq, deq, ack = entries
    assert enq["consumer_id"] == "producer" and enq["priority"] == 3 and enq["payload"] == {"n": 1}
    assert enq["max_attempts"] == 3  # the queue's default, as stored
    assert deq["consumer_id"] == "w1" and deq["attempt_count"] == 1 and deq["queue"] == queue
    assert isinstance(ack["processing_time_ms"], int) and ack["triggered_by"] == "api"
    assert all(isinstance(e["timestamp"], int) and e["log_id"].isdigit() for e in entries)
    # Stored without their null fields, read back with every field of an ActivityEntry.
    for e in [*entries, *activity(api, queue=queue)["logs"]]:
        assert set(e) == {*ENTRY_KEYS, "log_id", "timestamp"}, e
    assert enq["prev_consumer_id"] is None and enq["processing_time_ms"] is None and enq["anomaly"] is None
    assert api.get("/queue/activity/message/%20nope%20").json() == {"message_id": "nope", "history": []}


def test_lock_stolen_and_admin_delete_are_visible_before_the_response(api: httpx.Client, queue: str) -> None:
    mid = enqueue(api, queue)
    leased = lease(api, queue, "w1")
    assert api.post("/queue/ack", json={"id": mid, "lock_token": "stale"}).status_code == 409
    assert api.put(f"/queue/message/{mid}/touch", json={"lock_token": "stale"}).status_code == 409
    assert api.post(f"/queue/message/{mid}/nack", json={"lock_token": "stale"}).status_code == 409
    batch = api.post("/queue/ack/batch", json={"acks": [{"id": mid, "lock_token": "stale"}]}).json()
    assert batch["failed"][0]["code"] == "LOCK_LOST"
    stolen = activity(api, message_id=mid, anomaly_type="lock_stolen")["logs"]
    assert sorted(e["action"] for e in stolen) == ["acknowledge", "acknowledge", "nack", "touch"]
    assert all(e["anomaly"]["severity"] == "critical" for e in stolen)
    assert all(e["lock_token"] != leased["lock_token"] for e in stolen)  # never leak the live token
    deleted = api.delete(f"/queue/message/{mid}", params={"queueType": "processing"})
    assert deleted.status_code == 200
    (entry,) = activity(api, message_id=mid, action="delete")["logs"]
    assert entry["consumer_id"] == "user-manual-operation"


def test_every_filter_narrows(api: httpx.Client, queue: str) -> None:
    a = enqueue(api, queue, type="a")
    enqueue(api, queue, type="b", payload="x" * 6000)  # large_payload (default threshold 5000)
    leased = lease(api, queue, "filter-worker")
    api.post(f"/queue/message/{leased['id']}/nack", json={"lock_token": leased["lock_token"], "errorReason": "no"})
    everything = eventually(lambda: activity(api, queue_name=queue), lambda body: body["total"] >= 5)
    assert everything["total"] == 5  # create_queue, 2 enqueue, dequeue, nack
    assert everything["summary"] == {"total": 5, "by_action": {"create_queue": 1, "dequeue": 1, "enqueue": 2,
                                                               "nack": 1}}
    assert activity(api, queue_name=queue, limit=1)["summary"]["by_action"]["enqueue"] == 2  # all matches
    logs = everything["logs"]
    assert [(e["timestamp"], int(e["log_id"])) for e in logs] == sorted(
        ((e["timestamp"], int(e["log_id"])) for e in logs), reverse=True)
    assert {e["action"] for e in activity(api, queue_name=queue, action="dequeue,nack")["logs"]} == {"dequeue", "nack"}
    assert activity(api, queue_name=queue, action=" enqueue ")["total"] == 2
    assert activity(api, queue=queue, message_id=f"  {a}  ")["total"] >= 1
    assert {e["consumer_id"] for e in activity(api, consumer_id="filter-worker")["logs"]} == {"filter-worker"}
    with_anomaly = activity(api, queue_name=queue, has_anomaly="true")["logs"]
    assert with_anomaly and all(e["anomaly"] is not None for e in with_anomaly)
    large = activity(api, queue_name=queue, anomaly_type="large_payload")["logs"]
    assert len(large) == 1 and large[0]["anomaly"]["threshold"] == 5000 and large[0]["anomaly"]["actual"] > 5000
    newest = logs[0]["timestamp"]
    assert activity(api, queue_name=queue, start_time=newest + 1)["total"] == 0
    assert activity(api, queue_name=queue, end_time=logs[-1]["timestamp"] - 1)["total"] == 0
    assert activity(api, queue_name=queue, start_time=logs[-1]["timestamp"], end_time=newest)["total"] == 5
    page = activity(api, queue_name=queue, limit=2, offset=2)
    assert [e["log_id"] for e in page["logs"]] == [e["log_id"] for e in logs[2:4]]
    assert page["pagination"] == {"total": 5, "limit": 2, "offset": 2, "has_more": True, "hasMore": True,
                                  "totalExact": True}
    # By queue and action only, the counts come from the counters (migration 0017): exact.
    counted = activity(api, queue_name=queue, limit=1, maxCount=3)
    assert (counted["total"], counted["pagination"]["totalExact"]) == (5, True)
    assert counted["summary"]["by_action"] == Counter(e["action"] for e in logs)
    assert activity(api, queue_name=queue, action="enqueue,dequeue")["summary"]["by_action"] == Counter(
        e["action"] for e in logs if e["action"] in ("enqueue", "dequeue"))
    # maxCount (the dashboard's), with another filter: only the newest matches are counted, and
    # the answer says so.
    bounded = activity(api, queue_name=queue, start_time=0, limit=1, maxCount=3)
    assert (bounded["total"], bounded["pagination"]["totalExact"], bounded["pagination"]["hasMore"]) == (3, False, True)
    assert bounded["summary"]["by_action"] == Counter(e["action"] for e in logs[:3])
    assert bounded["logs"][0]["log_id"] == logs[0]["log_id"]
    roomy = activity(api, queue_name=queue, start_time=0, limit=1, maxCount=5)
    assert (roomy["total"], roomy["pagination"]["totalExact"]) == (5, True)
    deep = activity(api, queue_name=queue, start_time=0, limit=2, offset=3, maxCount=1)  # the bound covers the page
    assert (deep["total"], deep["pagination"]["totalExact"]) == (5, True)
    # The largest documented values (a review found `LIMIT $10 + 1` typed int4: 400).
    assert activity(api, queue_name=queue, start_time=0, maxCount=2_147_483_647)["total"] == 5
    assert activity(api, queue_name=queue, start_time=0, maxCount=10, offset=2_147_483_000)["logs"] == []
    for bad in ({"start_time": "yesterday"}, {"limit": 0}, {"limit": 1001}, {"offset": -1}, {"has_anomaly": "yes"}):
        response = api.get("/queue/activity", params=bad)
        assert response.status_code == 400 and response.json()["code"] == "VALIDATION_ERROR", bad


def test_anomalies_filters_sorting_and_summary(api: httpx.Client, queue: str) -> None:
    mid = enqueue(api, queue, payload="y" * 6000)  # info
    lease(api, queue, "anomaly-worker")  # flash_message: warning
    api.post("/queue/ack", json={"id": mid, "lock_token": "stale"})  # lock_stolen: critical
    body = eventually(lambda: api.get("/queue/activity/anomalies", params={"queue_name": queue}).json(),
                      lambda b: b["summary"]["total"] == 3)
    assert body["summary"] == {"total": 3, "by_type": {"large_payload": 1, "flash_message": 1, "lock_stolen": 1},
                               "by_severity": {"critical": 1, "warning": 1, "info": 1}}
    first = body["anomalies"][0]
    assert set(first) >= {"log_id", "message_id", "action", "timestamp", "queue", "consumer_id", "payload", "anomaly"}
    assert first["queue"] == queue and first["action"]

    def types(**params: Any) -> list[str]:
        response = api.get("/queue/activity/anomalies", params={"queue_name": queue, **params})
        assert response.status_code == 200, response.text
        return [a["anomaly"]["type"] for a in response.json()["anomalies"]]

    assert types(sort_by="severity") == ["lock_stolen", "flash_message", "large_payload"]
    assert types(sort_by="severity", sort_order="asc") == ["large_payload", "flash_message", "lock_stolen"]
    assert types(sort_by="type", sort_order="asc") == ["flash_message", "large_payload", "lock_stolen"]
    assert types(severity="warning") == ["flash_message"]
    assert types(type="lock_stolen") == ["lock_stolen"]
    assert types(action="enqueue,dequeue", sort_by="action", sort_order="asc") == ["flash_message", "large_payload"]
    assert api.get("/queue/activity/anomalies", params={"queue_name": queue, "limit": 1}).json()["pagination"] == {
        "total": 3, "limit": 1, "offset": 0, "has_more": True, "totalExact": True}
    # maxCount: the summary covers the newest N anomalies (every dequeue by a waiting worker is a
    # flash_message, so a big log holds millions), and says when there were more.
    newest = api.get("/queue/activity/anomalies", params={"queue_name": queue, "limit": 1, "maxCount": 2}).json()
    assert newest["pagination"]["totalExact"] is False and newest["summary"]["total"] == 2
    assert newest["summary"]["by_type"] == {"lock_stolen": 1, "flash_message": 1}  # the two newest
    assert newest["summary"]["by_severity"] == {"critical": 1, "warning": 1, "info": 0}
    roomy = api.get("/queue/activity/anomalies", params={"queue_name": queue, "maxCount": 3}).json()
    assert (roomy["summary"]["total"], roomy["pagination"]["totalExact"]) == (3, True)
    for bad in ({"severity": "fatal"}, {"sort_by": "payload"}, {"sort_order": "up"}):
        assert api.get("/queue/activity/anomalies", params=bad).status_code == 400


def test_consumer_stats_read_your_writes(api: httpx.Client, queue: str) -> None:
    for _ in range(3):
        enqueue(api, queue)
    first = lease(api, queue, "stats-worker")
    second = lease(api, queue, "stats-worker")
    api.get("/queue/messages/batch", params={"queue": queue, "count": 1})  # no consumerId: "unknown"
    api.post("/queue/ack", json={"id": first["id"], "lock_token": first["lock_token"]})
    api.post(f"/queue/message/{second['id']}/nack", json={"lock_token": second["lock_token"]})
    stats = api.get("/queue/activity/consumers", params={"consumer_id": "stats-worker"}).json()["stats"]
    mine = stats["stats-worker"]
    assert (mine["dequeue_count"], mine["ack_count"], mine["fail_count"]) == (2, 1, 1)
    assert mine["last_dequeue"] > 0 and mine["last_ack"] > 0 and mine["queues"][queue]["dequeue_count"] == 2
    everyone = api.get("/queue/activity/consumers").json()["stats"]
    assert everyone["unknown"]["queues"][queue]["dequeue_count"] == 1
    assert api.get("/queue/activity/consumers", params={"consumer_id": "ghost"}).json() == {"stats": {}}
    other = "o_" + queue
    api.post("/queues", json={"name": other})
    enqueue(api, other)
    lease(api, other, "stats-worker")
    only_first = api.get("/queue/activity/consumers", params={"consumer_id": "stats-worker", "queue_name": queue})
    assert only_first.json()["stats"]["stats-worker"]["dequeue_count"] == 2
    assert list(only_first.json()["stats"]["stats-worker"]["queues"]) == [queue]
    assert api.get("/queue/activity/consumers", params={"queue_name": "nobody_here"}).json() == {"stats": {}}


def test_activity_follows_queue_rename_and_goes_with_delete(api: httpx.Client, queue: str) -> None:
    enqueue(api, queue)
    eventually(lambda: activity(api, queue_name=queue), lambda b: b["total"] == 2)
    renamed = queue + "_r"
    assert api.post(f"/queues/{queue}/rename", json={"newName": renamed}).status_code == 200
    assert eventually(lambda: activity(api, queue_name=renamed), lambda b: b["total"] == 3)["total"] == 3
    assert api.delete(f"/queues/{renamed}", params={"force": "true"}).status_code == 200
    remaining = eventually(lambda: activity(api, queue_name=renamed), lambda b: b["total"] == 1)
    assert [e["action"] for e in remaining["logs"]] == ["delete_queue"]


def test_clear_and_disabled_log() -> None:
    with fresh_database("relay_act") as url, start_server(url, {"ACTIVITY_LOG_ENABLED": "false"}) as server:
        api = httpx.Client(base_url=server.api, timeout=10)
        api.post("/queues", json={"name": "off"})
        enqueue(api, "off")
        lease(api, "off", "w")
        time.sleep(0.3)
        assert activity(api)["total"] == 0
        assert api.get("/queue/activity/consumers").json() == {"stats": {}}  # stats are off too
        cleared = api.delete("/queue/activity/clear")
        assert cleared.json() == {"message": "Activity logs cleared successfully"}
        assert api.get("/queue/activity/consumers").json() == {"stats": {}}


def test_prometheus_metrics(api: httpx.Client, live_server: LiveServer, queue: str) -> None:
    enqueue(api, queue)
    lease(api, queue, "m")
    text = httpx.get(live_server.url + "/metrics").text
    assert f'relayq_messages_enqueued_total{{queue="{queue}"}} 1' in text
    assert f'relayq_messages_dequeued_total{{queue="{queue}"}} 1' in text
    assert f'relayq_queue_depth{{queue="{queue}",status="processing"}} 1' in text
    for family in ("relayq_db_round_trips_total", "relayq_db_seconds_total", "relayq_activity_buffer_size",
                   "relayq_activity_flushes_total", "relayq_activity_dropped_total",
                   'relayq_http_request_duration_seconds_bucket{method="POST",route="/api/queue/message",status="201"'):
        assert family in text, family


def test_a_nul_character_in_a_payload_does_not_break_the_activity_pages(api: httpx.Client, queue: str) -> None:
    """The message keeps U+0000 (json can); the log's copy, read as jsonb, says U+FFFD instead."""
    payloads = [{"s": "a\u0000b"}, {"s": "a\\u0000b"}]  # a NUL; a backslash followed by "u0000"
    ids = [enqueue(api, queue, payload=payload) for payload in payloads]
    # Both enqueue entries (the queue's own create_queue entry is listed too, so two entries were
    # not enough: the second enqueue's could still be in the buffer).
    listed = eventually(lambda: api.get("/queue/activity", params={"queue_name": queue, "action": "enqueue"}),
                        lambda r: r.status_code != 200 or len(r.json()["logs"]) >= 2)
    assert listed.status_code == 200, listed.text
    for message_id, kept in zip(ids, [{"s": "a\ufffdb"}, {"s": "a\\u0000b"}], strict=True):
        history = api.get(f"/queue/activity/message/{message_id}")
        assert history.status_code == 200, history.text
        assert history.json()["history"][0]["payload"] == kept
    stored = api.get("/queue/main/messages", params={"queueName": queue}).json()["messages"]
    assert sorted(m["payload"]["s"] for m in stored) == sorted(p["s"] for p in payloads)  # the messages as sent
