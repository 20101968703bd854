"""Hostile input: every malformed, oversized or malicious request gets a 4xx, never a 500,
and never changes anything it should not (docs/reliability.md, "Hostile input")."""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from tests.support.server import LiveServer, start_server

INJECTIONS = [
    "x'; DROP TABLE relay.messages; --",
    "x\"; DELETE FROM relay.queues; --",
    "' OR '1'='1",
    "1; SELECT pg_sleep(5)",
    "created_at DESC; TRUNCATE relay.messages",
    "%' OR 1=1 --",
    "$1",
    "\\'; --",
]


def _snapshot(api: httpx.Client, queue: str) -> tuple[int, int, list[str]]:
    metrics = api.get("/queue/metrics").json()
    listing = api.get("/queue/main/messages", params={"queueName": queue, "limit": 1000}).json()
    queues = sorted(q["name"] for q in api.get("/queues").json()["queues"])
    return metrics["queued"], listing["pagination"]["total"], queues


def test_invalid_utf8_and_malformed_bodies_are_400_invalid_json(api: httpx.Client, queue: str) -> None:
    bodies = [
        b'{"type":"\xff\xfe","payload":1}',  # invalid UTF-8
        b'{"type":"a","payload":"\\ud800"}',  # lone surrogate
        b'{"type":"a","payload":1e400}',  # not a finite number
        b"\x00\x01\x02",
        b'{"type":"a",',
    ]
    for body in bodies:
        response = api.post("/queue/message", content=body, params={"queue": queue})
        assert response.status_code == 400, (body[:40], response.text)
        assert response.json()["code"] == "INVALID_JSON"


def test_json_nested_beyond_the_decoders_depth_is_400_saying_so(api: httpx.Client, queue: str) -> None:
    """Valid JSON, so not INVALID_JSON: the server's limit, named as such."""
    for depth in (2_000, 100_000):
        body = b'{"type":"a","payload":' + b"[" * depth + b"]" * depth + b"}"
        response = api.post("/queue/message", content=body, params={"queue": queue})
        assert response.status_code == 400, response.text
        assert response.json()["code"] == "VALIDATION_ERROR"
        assert "nested too deeply" in response.json()["message"]
    assert api.get("/queue/message", params={"queue": queue}).status_code == 404  # nothing stored


@pytest.mark.parametrize("field,value", [
    ("type", "a\u0000b"), ("queue", "q\u0000"), ("consumerId", "\u0000"), ("idempotencyKey", "k\u0000"),
])
def test_nul_characters_in_text_fields_are_400(api: httpx.Client, field: str, value: str) -> None:
    response = api.post("/queue/message", json={"type": "t", "payload": 1, field: value})
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "VALIDATION_ERROR"


def test_nul_in_queries_and_id_lists_is_400_naming_the_field(api: httpx.Client) -> None:
    cases = [
        (api.get("/queue/message", params={"queue": "a\u0000"}), "queue"),
        (api.post("/queue/move", json={"messages": ["s1", "s\u0000"], "fromQueue": "main", "toQueue": "dead"}),
         "messages.1"),
        (api.post("/queue/messages/delete", params={"queueType": "main"}, json={"messageIds": ["s\u0000"]}),
         "messageIds.0"),
        (api.get("/queue/main/messages", params={"search": "\u0000"}), "search"),
    ]
    for response, field in cases:
        assert response.status_code == 400, response.text
        assert response.json()["details"][0]["field"] == field, response.text


def test_nul_in_a_path_names_nothing_and_gets_the_endpoints_404(api: httpx.Client, queue: str) -> None:
    """PostgreSQL text cannot hold NUL, so no queue or message has one in its name."""
    for response, code in [
        (api.post("/queue/message/s%00abc/nack", json={}), "NOT_FOUND"),
        (api.put("/queue/message/s%00abc/touch", json={"lock_token": "x"}), "NOT_FOUND"),
        (api.delete("/queue/message/s%00abc", params={"queueType": "main"}), "NOT_FOUND"),
        (api.get(f"/queues/{queue}%00"), "QUEUE_NOT_FOUND"),
        (api.patch(f"/queues/{queue}%00", json={"max_attempts": 2}), "QUEUE_NOT_FOUND"),
        (api.delete(f"/queues/{queue}%00"), "QUEUE_NOT_FOUND"),
    ]:
        assert response.status_code == 404, response.text
        assert response.json()["code"] == code, response.text
    assert api.get(f"/queues/{queue}").status_code == 200


def test_numbers_beyond_storage_range_are_400(api: httpx.Client, queue: str) -> None:
    base = {"type": "t", "payload": 1, "queue": queue}
    cases = [
        api.post("/queue/message", json={**base, "maxAttempts": 10**20}),
        api.post("/queue/message", json={**base, "ackTimeout": 99_999_999_999}),
        api.get("/queue/main/messages", params={"filterPriority": "99999999999"}),
        api.get("/queue/main/messages", params={"startDate": "99999999999999999999"}),
        api.get("/queue/main/messages", params={"page": "99999999999999"}),
        api.post("/queues", json={"name": queue + "_x", "ack_timeout_seconds": 99_999_999_999}),
    ]
    for response in cases:
        assert response.status_code == 400, response.text
        assert response.json()["code"] == "VALIDATION_ERROR"
    leased_id = api.post("/queue/message", json=base).json()["id"]
    # Leases past year 9999 (1e12 s) fit a timestamp but not a date in a reply: refused up front.
    for endless in ("1e300", "1e12", "2147483648"):
        for path, extra in (("/queue/message", {}), ("/queue/messages/batch", {"count": "5"})):
            response = api.get(path, params={"queue": queue, "ackTimeout": endless, **extra})
            assert response.status_code == 400, response.text
            assert response.json()["details"][0]["field"] == "ackTimeout"
    leased = api.get("/queue/message", params={"queue": queue}).json()  # the refused leases took nothing
    assert leased["id"] == leased_id
    for endless_extension in (1e300, 1e12):
        touch = api.put(f"/queue/message/{leased_id}/touch", json={"lock_token": leased["lock_token"],
                                                                    "extend_seconds": endless_extension})
        assert touch.status_code == 400, touch.text
    nack = api.post(f"/queue/message/{leased_id}/nack", json={"lock_token": leased["lock_token"],
                                                               "delaySeconds": 1e300})
    assert nack.status_code == 400, nack.text
    # The refused touch and nack left the lease exactly as it was.
    ack = api.post("/queue/ack", json={"id": leased_id, "lock_token": leased["lock_token"]})
    assert ack.status_code == 200, ack.text


def test_out_of_range_millisecond_timestamps_are_400_naming_their_field(api: httpx.Client) -> None:
    """Refused by validation, not by PostgreSQL (whose error named no field)."""
    for path, name, extra in (("/queue/main/messages", "startDate", {}),
                              ("/queue/messages", "startTimestamp", {"endTimestamp": "1"})):
        for value in ("99999999999999999", "-99999999999999999"):
            response = api.get(path, params={name: value, **extra})
            assert response.status_code == 400, response.text
            assert response.json()["details"] == [{"field": name, "message": "is out of range (years 1 to 9999)"}]
    edge = api.get("/queue/main/messages", params={"startDate": "253402300799000"})  # 9999-12-31T23:59:59Z
    assert edge.status_code == 200, edge.text


@pytest.mark.parametrize("value", ["1_0", " 10", "10 ", "\uff11\uff10", "\u0661\u0660", "0x10", "1e", "--1"])
def test_query_numbers_are_plain_ascii_decimals(api: httpx.Client, value: str) -> None:
    """Python's int() takes underscores, whitespace and any script's digits; a query does not."""
    response = api.get("/queue/main/messages", params={"limit": value})
    assert response.status_code == 400, (value, response.text)
    assert response.json()["details"][0] == {"field": "limit", "message": "must be a number"}
    for accepted in ("10", "+10", "10.0", "1e1"):
        assert api.get("/queue/main/messages", params={"limit": accepted}).status_code == 200, accepted


def test_sql_injection_through_every_filter_sort_and_name_changes_nothing(api: httpx.Client, queue: str) -> None:
    canary = api.post("/queue/message", json={"type": "canary", "payload": {"n": 1}, "queue": queue}).json()["id"]
    before = _snapshot(api, queue)
    for evil in INJECTIONS:
        responses = [
            api.post("/queue/message", json={"type": evil, "payload": evil, "queue": evil}),
            api.post("/queues", json={"name": evil}),
            api.get(f"/queues/{evil}"),
            api.patch(f"/queues/{evil}", json={"description": evil}),
            api.delete(f"/queues/{evil}", params={"force": "true"}),
            api.post(f"/queues/{evil}/purge", json={"status": "all"}),
            api.post(f"/queues/{queue}/rename", json={"newName": evil}),
            api.get("/queue/message", params={"queue": evil, "type": evil, "consumerId": evil}),
            api.get("/queue/messages/batch", params={"queue": queue, "type": evil, "count": 5}),
            api.post("/queue/ack", json={"id": evil, "lock_token": evil}),
            api.post("/queue/ack/batch", json={"acks": [{"id": evil, "lock_token": evil}]}),
            api.post(f"/queue/message/{evil}/nack", json={"lock_token": evil, "errorReason": evil}),
            api.put(f"/queue/message/{evil}/touch", json={"lock_token": evil}),
            api.put(f"/queue/message/{evil}", json={"type": evil}),
            api.delete(f"/queue/message/{evil}"),
            api.post("/queue/messages/delete", json={"messageIds": [evil]}),
            api.post("/queue/move", json={"messages": [evil], "fromQueue": "main", "toQueue": "dead"}),
            api.get("/queue/status", params={"queueName": evil}),
            api.get("/queue/metrics", params={"queueName": evil}),
            api.get("/queue/main/export", params={"queueName": evil, "search": evil}),
            api.get("/queue/messages", params={"startTimestamp": evil, "endTimestamp": evil}),
        ]
        for sort_param in ("sortBy", "sortOrder", "filterType", "search", "queueName", "startDate",
                           "filterPriority", "filterAttempts", "page", "limit"):
            responses.append(api.get("/queue/main/messages", params={sort_param: evil}))
        responses.append(api.get(f"/queue/{evil}/messages"))
        responses.append(api.delete(f"/queue/{evil}/clear", params={"queueName": evil}))
        for response in responses:
            assert response.status_code < 500, (evil, response.request.url, response.text)
    assert _snapshot(api, queue) == before
    # The canary is untouched, and search treats quotes and wildcards as plain text.
    found = api.get("/queue/main/messages", params={"queueName": queue, "search": canary}).json()
    assert [m["id"] for m in found["messages"]] == [canary]
    wildcard = api.get("/queue/main/messages", params={"queueName": queue, "search": "%"}).json()
    assert wildcard["pagination"]["total"] == 0


def test_payload_over_limit_and_huge_batches_are_refused_and_store_nothing(api: httpx.Client, queue: str) -> None:
    big = "x" * (1024 * 1024 + 1)
    response = api.post("/queue/message", json={"type": "t", "payload": big, "queue": queue})
    assert response.status_code == 413 and response.json()["code"] == "PAYLOAD_TOO_LARGE"
    batch = [{"type": "t", "payload": i, "queue": queue} for i in range(10_001)]
    response = api.post("/queue/batch", json=batch)
    assert response.status_code == 400, response.text
    mixed = [{"type": "t", "payload": 1, "queue": queue}, {"type": "t", "payload": big, "queue": queue}]
    assert api.post("/queue/batch", json=mixed).status_code == 413
    too_many_acks = {"acks": [{"id": f"s{i}", "lock_token": "x"} for i in range(1001)]}
    assert api.post("/queue/ack/batch", json=too_many_acks).status_code == 400
    assert api.get("/queue/messages/batch", params={"queue": queue, "count": 1001}).status_code == 400
    assert api.get("/queue/status", params={"queueName": queue}).json()["mainQueue"]["length"] == 0


def test_types_and_consumer_ids_too_long_for_an_index_are_400(
    live_server: LiveServer, api: httpx.Client, queue: str
) -> None:
    """Types and consumer ids are index keys (type counters, consumer stats): beyond 500
    characters they are refused up front. A longer type once failed its enqueue with a 500, and
    every other client's enqueue coalesced into the same statement with it; a longer consumer id
    made every later consumer-stats flush fail."""
    long = secrets.token_hex(2000)  # incompressible, past the 2704-byte btree row limit
    refused = [
        api.post("/queue/message", json={"type": long, "payload": 1, "queue": queue}),  # one-pass decoder
        api.post("/queue/message", json={"type": long, "payload": 1, "queueName": queue}),  # field by field
        api.post("/queue/batch", json=[{"type": long, "payload": 1, "queue": queue}]),
        api.post("/queue/message", json={"type": "t", "payload": 1, "queue": queue, "consumerId": long}),
        api.post("/queue/import", files={"file": ("m.json", json.dumps([{"type": long, "queue": queue}]))}),
        api.get("/queue/message", params={"queue": queue, "consumerId": long}),
        api.get("/queue/messages/batch", params={"queue": queue, "consumerId": long, "count": 5}),
    ]
    for response in refused:
        assert response.status_code == 400, (response.request.url, response.text)
        assert response.json()["code"] == "VALIDATION_ERROR"
        assert "at most 500 characters" in response.json()["message"]
    widest = "\U0001d11e" * 500  # 2,000 bytes of UTF-8: still fits
    stored = api.post("/queue/message", json={"type": widest, "payload": 1, "queue": queue, "consumerId": widest})
    assert stored.status_code == 201, stored.text
    edit = api.put(f"/queue/message/{stored.json()['id']}", json={"type": long}, params={"queueType": "main"})
    assert edit.status_code == 400, edit.text
    leased = api.get("/queue/message", params={"queue": queue, "consumerId": widest})
    assert leased.status_code == 200 and leased.json()["type"] == widest

    def enqueue(index: int) -> int:
        body = {"type": long if index == 25 else "t", "payload": index, "queue": queue}
        return api.post("/queue/message", json=body).status_code

    with ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(pool.map(enqueue, range(50)))
    assert statuses[25] == 400 and statuses.count(201) == 49, statuses
    time.sleep(0.5)  # a few consumer-stats flushes
    assert "consumer stats flush failed" not in live_server.log_path.read_text(errors="replace")


def test_an_import_of_more_than_max_batch_size_messages_is_refused(api: httpx.Client, queue: str) -> None:
    """Like a batch: 2.8 million `{}` items in an 8 MB file took 1.4 GB of server memory."""
    too_many = json.dumps([{"queue": queue}] * 10_001)
    response = api.post("/queue/import", files={"file": ("m.json", too_many)})
    assert response.status_code == 400, response.text
    assert "at most 10000" in response.json()["message"]
    at_limit = json.dumps([{"queue": queue}] * 10_000)
    assert api.post("/queue/import", files={"file": ("m.json", at_limit)}).json()["count"] == 10_000
    assert api.get("/queue/status", params={"queueName": queue}).json()["mainQueue"]["length"] == 10_000


@pytest.fixture(scope="module")
def small_limit_server(database_url: str) -> Iterator[LiveServer]:
    """A server whose request-size limit is 256 KiB, to test streaming cut-off cheaply."""
    with start_server(database_url, {"MAX_REQUEST_BYTES": str(256 * 1024)}) as server:
        yield server


def test_oversized_body_is_cut_off_even_without_content_length(small_limit_server: LiveServer) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'[{"type":"t","queue":"cutoff","payload":"'
        for _ in range(64):
            yield b"y" * 16384
        yield b'"}]'

    with httpx.Client(base_url=small_limit_server.api, timeout=30) as client:
        assert client.post("/queues", json={"name": "cutoff"}).status_code in (201, 409)
        declared = client.post("/queue/batch", content=b"[" + b" " * (300 * 1024) + b"]")
        assert declared.status_code == 413 and declared.json()["code"] == "PAYLOAD_TOO_LARGE"
        try:
            streamed = client.post("/queue/batch", content=chunks())
            assert streamed.status_code == 413, streamed.text
        except httpx.TransportError:
            pass  # the server may also just close the connection mid-body: cut off either way
        assert client.get("/queue/status", params={"queueName": "cutoff"}).json()["mainQueue"]["length"] == 0
        assert client.get("/health").status_code == 200


def test_slow_clients_do_not_block_others(live_server: LiveServer, api: httpx.Client, queue: str) -> None:
    parts = urlsplit(live_server.url)
    slow: list[socket.socket] = []
    try:
        for i in range(40):
            sock = socket.create_connection((parts.hostname, parts.port), timeout=5)
            # Half a request: headers never finish (slowloris), or a body that never arrives.
            if i % 2:
                sock.sendall(b"GET /api/queue/metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            else:
                sock.sendall(b"POST /api/queue/message HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{\"ty")
            slow.append(sock)
        started = time.monotonic()
        for n in range(20):
            response = api.post("/queue/message", json={"type": "t", "payload": n, "queue": queue})
            assert response.status_code == 201
        assert api.get("/queue/messages/batch", params={"queue": queue, "count": 20}).json()["count"] == 20
        assert time.monotonic() - started < 30  # generous: a shared 2-core machine
    finally:
        for sock in slow:
            sock.close()
    assert api.get("/health").status_code == 200


def test_a_client_gone_mid_body_is_not_an_error(small_limit_server: LiveServer) -> None:
    """Content-Length promises more than arrives, then the connection closes: nothing is stored
    and nothing is logged as an unhandled error (it was, with a traceback, per request)."""
    host, port = urlsplit(small_limit_server.url).hostname, urlsplit(small_limit_server.url).port
    for path in ("/api/queue/message?queue=gone_q", "/api/queues/gone_q/purge"):
        with socket.create_connection((host, port), timeout=5) as sock:
            sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         "Content-Length: 100\r\n\r\n".encode() + b'{"type": "t"')
        time.sleep(0.3)
    time.sleep(0.5)
    log = small_limit_server.log()
    assert "ClientDisconnect" not in log and "Traceback" not in log, log[-3000:]


def test_inputs_found_by_the_fuzz_probe_are_refused_or_kept_harmless(api: httpx.Client, queue: str) -> None:
    """Each of these answered 500, or was stored and then broke requests that were not its own."""
    # Message ids whose queue number is in non-ASCII digits ("²" is a digit to str.isdigit, not to int()).
    assert api.post("/queue/ack", json={"id": "p²-abc"}).json()["code"] == "NOT_FOUND"
    assert api.delete("/queue/message/p%C2%B2-abc", params={"queueType": "main"}).status_code == 404
    batch = api.post("/queue/ack/batch", json={"acks": [{"id": "p¹²-x", "lock_token": "t"}]})
    assert batch.status_code == 200 and batch.json()["failed"][0]["code"] == "NOT_FOUND"
    # Queue names ending in a newline ($ matched before it; the table's CHECK answered 500).
    for name in ("nl1\n", "a" * 64 + "\n"):
        assert api.post("/queues", json={"name": name}).json()["code"] == "VALIDATION_ERROR"
    # Retention in other scripts' digits or spaces: stored, it failed every maintenance pass.
    spec = {"queue_type": "partitioned", "partition_interval": "daily"}
    for bad in ("٧ days", "7\u00a0days", "\u30007 days", "7\x1cdays", "7\x85days"):
        refused = api.post("/queues", json={"name": queue + "_p", "retention_interval": bad, **spec})
        assert refused.status_code == 400, (bad, refused.text)
    created = api.post("/queues", json={"name": queue + "_p", "retention_interval": " 1   week ", **spec})
    assert created.json()["queue"]["retention_interval"] == "1 week"  # stored as checked
    standard = api.post("/queues", json={"name": queue + "_s", "partition_interval": "daily"}).json()["queue"]
    assert standard["partition_interval"] is None  # only partitioned queues have partitions
    # A number beyond jsonb's range: kept as written, it made every activity page holding its
    # entry a 400. It is stored as the float it rounds to, as an edit stored it.
    tiny = api.post("/queue/message", content=b'{"type":"t","payload":[1e-16384],"queue":"%s"}' % queue.encode())
    assert tiny.status_code == 201, tiny.text
    listed = api.get("/queue/main/messages", params={"queueName": queue}).json()["messages"]
    assert [m["payload"] for m in listed] == [[0.0]]
    deadline = time.monotonic() + 10
    while not (history := api.get(f"/queue/activity/message/{tiny.json()['id']}")).json().get("history"):
        assert history.status_code == 200, history.text
        assert time.monotonic() < deadline, "the enqueue entry never arrived"
        time.sleep(0.1)
    assert api.get("/queue/activity", params={"queue_name": queue}).status_code == 200
    # Activity times PostgreSQL cannot hold: refused naming the field, or (later than 9999) clamped.
    early = api.get("/queue/activity", params={"start_time": "-1e20"})
    assert early.status_code == 400 and early.json()["details"][0]["field"] == "start_time"
    assert api.get("/queue/activity", params={"end_time": "1e20"}).status_code == 200
    # A nack's reason is cut at 10,000 characters: whole, a 40 MB one made its queue's listings 40 MB.
    leased = api.get("/queue/message", params={"queue": queue}).json()
    nacked = api.post(f"/queue/message/{leased['id']}/nack", json={"lock_token": leased["lock_token"],
                                                                    "errorReason": "x" * 50_000})
    assert nacked.status_code == 200, nacked.text
    [message] = api.get("/queue/main/messages", params={"queueName": queue}).json()["messages"]
    assert len(message["last_error"]) == 10_000 and message["last_error"].endswith(" [truncated]")


def test_renames_racing_for_one_name_get_409_not_500(live_server: LiveServer, api: httpx.Client) -> None:
    """A rename whose new name another transaction takes after the rename looked (and before it
    commits) hits the unique index: that is QUEUE_EXISTS too, not 500. The other transaction is
    held open here, so the two always overlap."""
    tag = secrets.token_hex(4)
    first, second, target = f"r_{tag}_1", f"r_{tag}_2", f"r_{tag}_target"
    for name in (first, second):
        assert api.post("/queues", json={"name": name}).status_code == 201

    async def race() -> httpx.Response:
        other = await asyncpg.connect(live_server.database_url)
        try:
            async with httpx.AsyncClient(base_url=live_server.api, timeout=30) as client:
                async with other.transaction():
                    await other.execute("UPDATE relay.queues SET name = $2 WHERE name = $1", first, target)
                    renaming = asyncio.ensure_future(client.post(f"/queues/{second}/rename", json={"newName": target}))
                    await asyncio.sleep(0.5)  # it looked, found the name free, and waits on the index
                    assert not renaming.done()
                # committed here: the waiting rename finds the name taken
                return await renaming
        finally:
            await other.close()

    answer = asyncio.run(race())
    assert answer.status_code == 409 and answer.json()["code"] == "QUEUE_EXISTS", answer.text


@pytest.mark.parametrize("queue_type", ["standard", "partitioned"])
def test_batches_repeating_keys_in_different_orders_never_deadlock(
    live_server: LiveServer, api: httpx.Client, queue_type: str
) -> None:
    """Producers retrying the same batch concurrently, with its keys in other orders: each
    statement locked its keys in its own order, and two of them deadlocked. PostgreSQL broke each
    deadlock after a second, the server ran the statement again, and after three such rounds
    answered 503 (a probe with two servers: 73 of 180 such requests on partitioned queues, 22 on
    standard ones). The keys are locked in one order now, before any row is written: no deadlock
    at all (PostgreSQL counts them)."""
    deadlocks_before = asyncio.run(_deadlocks(live_server.database_url))
    name = "k_" + secrets.token_hex(4)
    spec = {"partition_interval": "daily", "retention_interval": "7 days"} if queue_type == "partitioned" else {}
    assert api.post("/queues", json={"name": name, "queue_type": queue_type, **spec}).status_code == 201
    rng = random.Random(7)
    rounds = 15

    def send(order: list[str]) -> httpx.Response:
        return api.post("/queue/batch", json=[{"queue": name, "type": "t", "payload": k, "idempotencyKey": k}
                                              for k in order])

    answers = []
    with ThreadPoolExecutor(6) as pool:
        for round_ in range(rounds):  # new keys each round: only keys not yet stored make statements wait
            keys = [f"key-{round_}-{i}" for i in range(50)]
            answers += list(pool.map(send, [rng.sample(keys, len(keys)) for _ in range(6)]))
    failed = [a.text for a in answers if a.status_code >= 400]
    assert not failed, failed[:2]
    time.sleep(1.5)  # backends report their statistics at most once a second
    assert asyncio.run(_deadlocks(live_server.database_url)) == deadlocks_before
    stored = api.get("/queue/main/messages", params={"queueName": name, "limit": 1}).json()["pagination"]["total"]
    assert stored == rounds * 50  # each key stored once


async def _deadlocks(database_url: str) -> int:
    """Deadlocks PostgreSQL has broken in this database so far."""
    conn = await asyncpg.connect(database_url)
    try:
        count: int = await conn.fetchval("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        return count
    finally:
        await conn.close()
