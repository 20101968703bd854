"""Dashboard and admin endpoints (API.md §5) and monitoring (§4)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from datetime import UTC, datetime

import asyncpg
import httpx
import msgspec

from tests.support.inprocess import eventually
from tests.support.server import LiveServer


def fill(api: httpx.Client, queue: str) -> list[str]:
    items = [
        {"type": "email", "payload": {"to": "alice@example.com"}, "priority": 1, "queue": queue},
        {"type": "sms", "payload": {"to": "+100"}, "priority": 5, "queue": queue},
        {"type": "email", "payload": {"to": "bob@example.com"}, "priority": 5, "queue": queue},
        {"type": "push", "payload": "100%_done", "priority": 0, "queue": queue},
    ]
    ids: list[str] = api.post("/queue/batch", json=items).json()["ids"]
    return ids


def test_listing_filters_sort_and_paging(api: httpx.Client, queue: str) -> None:
    ids = fill(api, queue)
    base = {"queueName": queue}
    page = api.get("/queue/main/messages", params={**base, "limit": 3, "page": 1}).json()
    assert page["pagination"] == {"total": 4, "page": 1, "limit": 3, "totalPages": 2, "hasMore": True,
                                  "totalExact": True}
    assert len(page["messages"]) == 3
    emails = api.get("/queue/main/messages", params={**base, "filterType": "email"}).json()
    assert {m["id"] for m in emails["messages"]} == {ids[0], ids[2]}
    two_types = api.get("/queue/main/messages", params={**base, "filterType": "email,sms"}).json()
    assert two_types["pagination"]["total"] == 3
    assert api.get("/queue/main/messages", params={**base, "filterType": "all"}).json()["pagination"]["total"] == 4
    prio = api.get("/queue/main/messages", params={**base, "filterPriority": 5}).json()
    assert {m["id"] for m in prio["messages"]} == {ids[1], ids[2]}
    search = api.get("/queue/main/messages", params={**base, "search": "ALICE"}).json()
    assert [m["id"] for m in search["messages"]] == [ids[0]]
    literal = api.get("/queue/main/messages", params={**base, "search": "100%_"}).json()
    assert [m["id"] for m in literal["messages"]] == [ids[3]]
    by_id = api.get("/queue/main/messages", params={**base, "search": ids[1][2:9]}).json()
    assert ids[1] in [m["id"] for m in by_id["messages"]]
    asc = api.get("/queue/main/messages", params={**base, "sortBy": "priority", "sortOrder": "asc"}).json()
    assert [m["priority"] for m in asc["messages"]] == [0, 1, 5, 5]
    assert [m["id"] for m in asc["messages"]][2:] == [ids[1], ids[2]]  # ties: created_at asc
    future = datetime.now(UTC).replace(year=datetime.now(UTC).year + 1).isoformat()
    assert api.get("/queue/main/messages", params={**base, "startDate": future}).json()["pagination"]["total"] == 0
    attempts = api.get("/queue/main/messages", params={**base, "filterAttempts": 1}).json()
    assert attempts["pagination"]["total"] == 0
    clamped = api.get("/queue/main/messages", params={**base, "limit": 5000}).json()
    assert clamped["pagination"]["limit"] == 1000


def test_listing_pages_across_queues_follow_one_order(api: httpx.Client, queue: str) -> None:
    """Each queue's part is cut to the page's end before the merge: the pages still follow one
    order across queues, and none repeats or skips a message."""
    other = f"{queue}-b"
    api.post("/queues", json={"name": other}).raise_for_status()
    try:
        kind = f"pages-{queue}"
        for i in range(12):
            api.post("/queue/message", json={"type": kind, "payload": {"i": i}, "priority": i % 3,
                                              "queue": queue if i % 2 else other}).raise_for_status()
        by_priority = {"filterType": kind, "sortBy": "priority", "sortOrder": "desc"}
        whole = api.get("/queue/main/messages", params={**by_priority, "limit": 100}).json()["messages"]
        assert [m["priority"] for m in whole] == sorted((i % 3 for i in range(12)), reverse=True)
        assert [m["payload"]["i"] for m in whole[:4]] == [2, 5, 8, 11]  # ties in creation order
        newest = api.get("/queue/main/messages", params={"filterType": kind, "limit": 100}).json()["messages"]
        assert [m["payload"]["i"] for m in newest] == list(range(11, -1, -1))  # the API's default order
        for params, expected in ((by_priority, whole), ({"filterType": kind}, newest)):
            pages = [api.get("/queue/main/messages", params={**params, "limit": 5, "page": n}).json() for n in (1, 2, 3)]
            assert [m["id"] for p in pages for m in p["messages"]] == [m["id"] for m in expected]
            assert [p["pagination"]["hasMore"] for p in pages] == [True, True, False]
    finally:
        api.delete(f"/queues/{other}")


def test_listing_counts_from_counters_and_bounds_filtered_counts_on_request(api: httpx.Client, queue: str) -> None:
    """Without filters the total is the counters' exact count; with a filter it is counted,
    exactly unless `maxCount` bounds it (the dashboard's 10,000), which totalExact: false says."""
    items = [{"type": "bulk", "payload": {"i": i}, "queue": queue} for i in range(10_050)]
    for start in range(0, len(items), 1000):
        api.post("/queue/batch", json=items[start:start + 1000]).raise_for_status()
    plain = api.get("/queue/main/messages", params={"queueName": queue, "limit": 10}).json()["pagination"]
    assert (plain["total"], plain["totalExact"], plain["totalPages"]) == (10_050, True, 1005)
    base = {"queueName": queue, "filterType": "bulk", "limit": 100}
    exact = api.get("/queue/main/messages", params=base).json()["pagination"]
    assert (exact["total"], exact["totalExact"], exact["totalPages"]) == (10_050, True, 101)
    bounded = api.get("/queue/main/messages", params={**base, "maxCount": 10_000}).json()["pagination"]
    assert (bounded["total"], bounded["totalExact"], bounded["hasMore"]) == (10_000, False, True)
    deep = api.get("/queue/main/messages", params={**base, "maxCount": 10_000, "page": 101}).json()
    assert (deep["pagination"]["total"], deep["pagination"]["totalExact"]) == (10_050, True)
    assert len(deep["messages"]) == 50 and deep["pagination"]["hasMore"] is False
    assert api.get("/queue/main/messages", params={**base, "maxCount": 0}).status_code == 400


def test_listing_pages_across_queue_kinds_neither_repeat_nor_skip(api: httpx.Client, queue: str) -> None:
    """One batch into a standard and an unlogged queue stores rows with equal created_at (one
    transaction) and equal seq (each table numbers its own): the order ends with the id, so
    paging one message at a time sees each once. (Found by a review: 2 repeated, 2 missed.)"""
    unlogged = f"{queue}-u"
    api.post("/queues", json={"name": unlogged, "queue_type": "unlogged"}).raise_for_status()
    try:
        kind = f"ties-{queue}"
        api.post("/queue/batch", json=[{"queue": queue if i % 2 else unlogged, "type": kind, "payload": {"i": i}}
                                       for i in range(20)]).raise_for_status()
        for sort in ("status", "priority", "type", "created_at"):
            seen = [m["id"] for page in range(1, 21) for m in api.get("/queue/main/messages", params={
                "filterType": kind, "sortBy": sort, "limit": 1, "page": page}).json()["messages"]]
            assert len(seen) == len(set(seen)) == 20, sort
    finally:
        api.delete(f"/queues/{unlogged}")


def test_listing_rejects_bad_parameters(api: httpx.Client, queue: str) -> None:
    for params in [{"sortBy": "id; DROP TABLE relay.messages"}, {"sortOrder": "sideways"}, {"page": "0"},
                   {"limit": "x"}, {"startDate": "yesterday"}, {"filterPriority": "high"}]:
        response = api.get("/queue/main/messages", params={"queueName": queue, **params})
        assert response.status_code == 400, params
        assert response.json()["code"] == "VALIDATION_ERROR"
    assert api.get("/queue/nowhere/messages").status_code == 400
    assert api.get("/queue/main/messages", params={"sortBy": "error_message"}).status_code == 200


def test_status_and_metrics(api: httpx.Client, queue: str) -> None:
    fill(api, queue)
    leased = api.get("/queue/message", params={"queue": queue}).json()
    api.post("/queue/ack", json={"id": leased["id"], "lock_token": leased["lock_token"]})
    api.get("/queue/message", params={"queue": queue})
    status = api.get("/queue/status", params={"queueName": queue}).json()
    assert status["mainQueue"]["length"] == 2 and status["processingQueue"]["length"] == 1
    assert status["acknowledgedQueue"]["length"] == 1 and status["acknowledgedQueue"]["total"] == 1
    assert status["metadata"] == {"totalProcessed": 1, "totalFailed": 0}
    assert status["availableTypes"] == ["email", "push", "sms"]
    assert status["priorities"]["1"] == 1 and status["priorities"]["0"] == 1 and len(status["priorities"]) == 10
    assert [m["priority"] for m in status["mainQueue"]["messages"]] == [1, 0]
    light = api.get("/queue/status", params={"queueName": queue, "include_messages": "false"}).json()
    assert light["mainQueue"]["messages"] == [] and light["mainQueue"]["length"] == 2
    assert api.get("/queue/status", params={"include_messages": "maybe"}).status_code == 400
    ghost = api.get("/queue/status", params={"queueName": "ghost"}).json()
    assert ghost["mainQueue"]["length"] == 0
    metrics = api.get("/queue/metrics", params={"queueName": queue}).json()
    assert (metrics["queued"], metrics["processing"], metrics["acknowledged"]) == (2, 1, 1)
    assert metrics["main_queue_size"] == 2 and metrics["dead_letter_queue_size"] == 0
    assert isinstance(metrics["avg_payload_size"], float) and metrics["max_payload_size"] == len(
        '{"to":"alice@example.com"}')


def test_move_between_statuses(api: httpx.Client, queue: str) -> None:
    ids = fill(api, queue)
    moved = api.post("/queue/move", json={"messages": [ids[0], {"id": ids[1]}, "ghost"], "fromQueue": "main",
                                          "toQueue": "processing"})
    assert moved.json() == {"message": "2 messages moved successfully", "movedCount": 2}
    processing = api.get("/queue/processing/messages", params={"queueName": queue}).json()["messages"]
    assert all(m["consumer_id"] == "user-manual-operation" and m["lock_token"] for m in processing)
    not_there = api.post("/queue/move", json={"messages": [ids[2]], "fromQueue": "dead", "toQueue": "main"})
    assert not_there.json()["movedCount"] == 0
    to_ack = api.post("/queue/move", json={"messageIds": [ids[0]], "fromQueue": "processing",
                                           "toQueue": "acknowledged", "errorReason": "manual"})
    assert to_ack.json()["movedCount"] == 1
    acked = api.get("/queue/acknowledged/messages", params={"queueName": queue}).json()["messages"][0]
    assert acked["acknowledged_at"] is not None and acked["lock_token"] is None and acked["last_error"] == "manual"
    archived = api.post("/queue/move", json={"messages": [ids[0]], "fromQueue": "acknowledged", "toQueue": "archived"})
    assert archived.json()["movedCount"] == 1  # archived keeps when it was done
    kept = api.get("/queue/archived/messages", params={"queueName": queue}).json()["messages"][0]
    assert kept["acknowledged_at"] == acked["acknowledged_at"]
    reopened = api.post("/queue/move", json={"messages": [ids[0]], "fromQueue": "archived", "toQueue": "main"})
    assert reopened.json()["movedCount"] == 1  # back to work: no longer "acknowledged at"
    queued = [m for m in api.get("/queue/main/messages", params={"queueName": queue}).json()["messages"]
              if m["id"] == ids[0]]
    assert queued[0]["acknowledged_at"] is None
    back = api.post("/queue/move", json={"messages": [ids[1]], "fromQueue": "processing", "toQueue": "main"})
    assert back.json()["movedCount"] == 1
    assert api.post("/queue/move", json={"messages": [], "fromQueue": "main", "toQueue": "dead"}).json()[
        "movedCount"] == 0
    assert api.post("/queue/move", json={"messages": [ids[1]], "fromQueue": "main", "toQueue": "main"}).status_code == 400
    assert api.post("/queue/move", json={"messages": [ids[1]], "fromQueue": "x", "toQueue": "main"}).status_code == 400


def test_edit_message(api: httpx.Client, queue: str) -> None:
    ids = fill(api, queue)
    response = api.put(f"/queue/message/{ids[0]}", params={"queueType": "main"},
                       json={"payload": {"edited": True}, "type": "new", "priority": 7, "custom_ack_timeout": 99})
    assert response.status_code == 200
    data = response.json()["data"]
    assert (data["payload"], data["type"], data["priority"], data["ack_timeout_seconds"]) == (
        {"edited": True}, "new", 7, 99)
    assert data["payload_size"] == len('{"edited":true}')
    noop = api.put(f"/queue/message/{ids[0]}", params={"queueType": "main"}, json={})
    assert noop.status_code == 200 and noop.json()["data"]["priority"] == 7
    assert api.put(f"/queue/message/{ids[0]}", params={"queueType": "main"}, json={"priority": 12}).status_code == 400
    assert api.put(f"/queue/message/{ids[0]}", params={"queueType": "acknowledged"}, json={}).status_code == 400
    missing = api.put("/queue/message/s-ghost", params={"queueType": "main"}, json={"priority": 1})
    assert missing.status_code == 404 and missing.json()["success"] is False
    leased = api.get("/queue/message", params={"queue": queue}).json()
    busy = api.put(f"/queue/message/{leased['id']}", params={"queueType": "processing"}, json={"priority": 1})
    assert busy.status_code == 409 and busy.json() == {"message": "Message is being processed",
                                                       "code": "INVALID_STATE"}


def test_delete_one_and_many(api: httpx.Client, queue: str) -> None:
    ids = fill(api, queue)
    one = api.delete(f"/queue/message/{ids[0]}", params={"queueType": "main"})
    assert one.json() == {"success": True, "messageId": ids[0], "queueType": "main",
                          "message": "Message deleted successfully"}
    again = api.delete(f"/queue/message/{ids[0]}", params={"queueType": "main"})
    assert again.status_code == 404 and again.json()["code"] == "NOT_FOUND"
    assert api.delete(f"/queue/message/{ids[1]}").status_code == 400
    many = api.post("/queue/messages/delete", params={"queueType": "dead"}, json={"messageIds": [ids[1], ids[2], "x"]})
    assert many.json() == {"success": True, "deletedCount": 2, "message": "2 messages deleted successfully"}
    assert api.post("/queue/messages/delete", params={"queueType": "main"}, json={}).status_code == 400


def test_clear_status_of_one_queue(api: httpx.Client, queue: str) -> None:
    fill(api, queue)
    response = api.delete("/queue/main/clear", params={"queueName": queue})
    assert response.json() == {"success": True, "queueType": "main", "message": "main queue cleared successfully",
                               "clearedCount": 4}
    assert api.delete("/queue/bogus/clear").status_code == 400


def test_export_and_import(api: httpx.Client, queue: str) -> None:
    ids = fill(api, queue)
    exported = api.get("/queue/main/export", params={"queueName": queue, "filterType": "email"})
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("application/json")
    disposition = exported.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="main-queue-export-') and disposition.endswith('.json"')
    assert b'\n  {' in exported.content  # pretty-printed, 2-space indent
    items = exported.json()
    assert {m["id"] for m in items} == {ids[0], ids[2]}
    api.delete("/queue/main/clear", params={"queueName": queue})
    imported = api.post("/queue/import", files={"file": ("export.json", exported.content, "application/json")})
    assert imported.json() == {"message": "Imported 2 messages successfully", "count": 2}
    restored = api.get("/queue/main/messages", params={"queueName": queue}).json()["messages"]
    assert sorted(m["payload"]["to"] for m in restored) == ["alice@example.com", "bob@example.com"]
    assert {m["priority"] for m in restored} == {1, 5} and not {m["id"] for m in restored} & set(ids)
    single = api.post("/queue/import", files={"file": ("one.json", json.dumps({"queue": queue}).encode())})
    assert single.json()["count"] == 1
    # An absent payload is {}, a null one stays null (API.md: null is a real payload).
    nulls = [{"queue": queue, "type": "nil", "payload": None}]
    assert api.post("/queue/import", files={"file": ("n.json", json.dumps(nulls))}).json()["count"] == 1
    kept = api.get("/queue/main/messages", params={"queueName": queue, "filterType": "nil"}).json()["messages"]
    assert [m["payload"] for m in kept] == [None]
    absent = api.get("/queue/main/messages", params={"queueName": queue, "filterType": "default"}).json()["messages"]
    assert [m["payload"] for m in absent] == [{}]
    assert api.post("/queue/import", files={"file": ("x.json", b"[")}).json()["code"] == "INVALID_JSON"
    assert api.post("/queue/import", data={"file": "not a file"}).status_code == 400
    bad = api.post("/queue/import", files={"file": ("x.json", json.dumps([{"queue": queue}, {"priority": 12}]))})
    assert bad.status_code == 400
    not_object = api.post("/queue/import", files={"file": ("x.json", json.dumps([{"queue": queue}, 5]))})
    assert not_object.status_code == 400 and not_object.json()["details"][0]["field"] == "1"
    unknown = api.post("/queue/import", files={"file": ("x.json", json.dumps([{"queue": "nope_q"}]))})
    assert unknown.status_code == 404
    assert api.post("/queue/import", files={"file": ("x.json", b"[]")}).json()["count"] == 0


def test_list_and_delete_by_time(api: httpx.Client, queue: str) -> None:
    start = datetime.now(UTC).isoformat()
    ids = fill(api, queue)
    end_ms = str(int((time.time() + 5) * 1000))
    listed = api.get("/queue/messages", params={"startTimestamp": start, "endTimestamp": end_ms, "queueName": queue})
    assert listed.status_code == 200 and sorted(m["id"] for m in listed.json()) == sorted(ids)
    assert "original_priority" not in listed.json()[0]
    assert api.get("/queue/messages", params={"startTimestamp": start}).status_code == 400
    assert api.get("/queue/messages", params={"startTimestamp": "x", "endTimestamp": end_ms}).status_code == 400
    removed = api.request("DELETE", "/queue/messages",
                          params={"startTimestamp": start, "endTimestamp": end_ms, "queueName": queue})
    assert removed.json() == {"message": "4 messages removed successfully", "deletedCount": 4}


def test_a_large_export_is_complete_and_in_listing_order(api: httpx.Client, queue: str) -> None:
    """Built from a cursor in chunks, through a spool that goes to disk past 8 MiB."""
    pad = "x" * 1000
    for start in range(0, 12_000, 4_000):
        batch = [{"type": "big", "payload": {"n": n, "pad": pad}, "queue": queue} for n in range(start, start + 4_000)]
        assert api.post("/queue/batch", json=batch).status_code == 201
    exported = api.get("/queue/main/export", params={"queueName": queue, "sortBy": "created_at",
                                                    "sortOrder": "asc"}, timeout=60)
    assert exported.status_code == 200
    assert int(exported.headers["content-length"]) == len(exported.content) > 12 * 1024 * 1024
    items = exported.json()
    assert [m["payload"]["n"] for m in items] == list(range(12_000))
    assert exported.content == msgspec.json.format(msgspec.json.encode(items), indent=2)  # the same bytes as one list


async def test_an_export_stops_when_its_client_leaves(live_server: LiveServer, queue: str) -> None:
    """Uvicorn does not cancel a handler whose client left: an abandoned export of a big queue went
    on reading, holding a connection and a snapshot, for up to the bulk timeout (an hour)."""
    waiting_export = """SELECT count(*) FROM pg_stat_activity WHERE application_name = 'relayq'
        AND wait_event_type = 'Lock' AND query LIKE 'SELECT%relay.messages%'"""
    blocker = await asyncpg.connect(live_server.database_url)
    observer = await asyncpg.connect(live_server.database_url)  # pg_stat_activity is fixed per transaction

    async def export_waits() -> bool:
        return bool(await observer.fetchval(waiting_export))

    async def export_gone() -> bool:
        return not await export_waits()

    try:
        async with httpx.AsyncClient(base_url=live_server.api, timeout=30) as client:
            sent = await client.post("/queue/message", json={"queue": queue, "type": "t", "payload": {}})
            assert sent.status_code == 201
            async with blocker.transaction():
                await blocker.execute("LOCK TABLE relay.messages IN ACCESS EXCLUSIVE MODE")
                request = asyncio.ensure_future(client.get("/queue/main/export", params={"queueName": queue}))
                assert await eventually(export_waits)  # behind the lock
                request.cancel()  # the client leaves
                with contextlib.suppress(asyncio.CancelledError):
                    await request
                assert await eventually(export_gone)  # cancelled, while the lock is still held
    finally:
        await blocker.close()
        await observer.close()


def test_move_and_delete_take_at_most_max_batch_size_ids(api: httpx.Client) -> None:
    """Like a batch enqueue: a move of 600,000 ids ran 16 s in one statement, and its `move`
    activity entries, one change too big for the activity buffer, were all dropped."""
    limit = api.get("/queue/config").json()["max_batch_size"]
    too_many = [f"s{i}" for i in range(limit + 1)]
    moved = api.post("/queue/move", json={"messages": too_many, "fromQueue": "main", "toQueue": "dead"})
    assert moved.status_code == 400 and moved.json()["details"][0]["field"] == "messages"
    deleted = api.post("/queue/messages/delete", params={"queueType": "main"}, json={"messageIds": too_many})
    assert deleted.status_code == 400 and deleted.json()["details"][0]["field"] == "messageIds"
    within = api.post("/queue/move", json={"messages": too_many[:limit], "fromQueue": "main", "toQueue": "dead"})
    assert within.status_code == 200 and within.json()["movedCount"] == 0  # unknown ids are skipped
