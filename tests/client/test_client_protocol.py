"""Unit tests of the sans-IO layer: request building, response parsing, errors, retries, SSE."""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from typing import Any

import pytest

import relayq.client as relay
from relayq.client import protocol
from relayq.client.protocol import Request, Response, RetryPolicy, SSEParser, TransportError


def body(call: protocol.Call[Any]) -> Any:
    assert call.request.body is not None
    return json.loads(call.request.body)


def response(status: int, value: Any) -> Response:
    return Response(status, json.dumps(value).encode())


MESSAGE = {
    "id": "i9rrWV_Wdj",
    "queue_name": "orders",
    "type": "email",
    "payload": {"to": "a@b.c"},
    "priority": 9,
    "status": "processing",
    "attempt_count": 1,
    "max_attempts": 3,
    "ack_timeout_seconds": 30,
    "lock_token": "nHn0Mofj1R",
    "locked_until": "2026-12-04T15:49:21.121Z",
    "consumer_id": "w1",
    "created_at": 1796399319,
    "dequeued_at": 1796399331,
    "acknowledged_at": None,
    "last_error": None,
    "payload_size": 17,
    "processing_started_at": 1796399331,
    "_stream_name": "queue_processing",
    "_stream_id": "i9rrWV_Wdj",
}


# -- request building -------------------------------------------------------------------------


def test_enqueue_sends_camel_case_and_omits_unset_options() -> None:
    call = protocol.enqueue({"x": 1}, type="email", queue="orders", priority=5, ack_timeout=10, delay=2.5)
    assert (call.request.method, call.request.path) == ("POST", "/api/queue/message")
    assert body(call) == {
        "type": "email",
        "payload": {"x": 1},
        "queue": "orders",
        "priority": 5,
        "ackTimeout": 10,
        "delaySeconds": 2.5,
    }
    assert not call.request.idempotent


def test_enqueue_keeps_a_null_payload_and_is_retryable_with_an_idempotency_key() -> None:
    call = protocol.enqueue(None, idempotency_key="k1")
    assert body(call) == {"type": "", "payload": None, "idempotencyKey": "k1"}
    assert call.request.idempotent


def test_enqueue_batch_keeps_each_items_options_and_fills_the_default_queue() -> None:
    call = protocol.enqueue_batch(
        [relay.EnqueueItem(payload=1, type="a", priority=9), {"type": "b", "payload": 2, "queue": "other"}],
        queue="main",
    )
    assert call.request.path == "/api/queue/batch"
    assert body(call) == [
        {"type": "a", "payload": 1, "priority": 9, "queue": "main"},
        {"type": "b", "payload": 2, "queue": "other"},
    ]
    result = call.parse(
        response(201, {"message": "Batch processed: 2/2 messages enqueued", "count": 2, "ids": ["x", "y"]})
    )
    assert result == relay.BatchEnqueueResult(count=2, ids=["x", "y"])


def test_dequeue_query_and_long_poll_timeout() -> None:
    call = protocol.dequeue("orders", wait=5, type="email", consumer_id="w1", ack_timeout=2.5)
    assert call.request.method == "GET"
    assert call.request.params == {
        "queue": "orders",
        "timeout": "5",
        "type": "email",
        "consumerId": "w1",
        "ackTimeout": "2.5",
    }
    assert call.request.extra_timeout == 5
    assert protocol.dequeue().request.params == {}


def test_dequeue_parses_a_message_and_maps_no_message_to_none() -> None:
    call = protocol.dequeue()
    message = call.parse(response(200, MESSAGE))
    assert isinstance(message, relay.Message)
    assert message.payload == {"to": "a@b.c"} and message.lock_token == "nHn0Mofj1R"
    assert message.locked_until is not None and message.locked_until.year == 2026
    assert call.parse(response(404, {"message": "Message not found", "code": "NO_MESSAGE"})) is None
    with pytest.raises(relay.QueueNotFoundError):
        call.parse(response(404, {"message": "Queue not found: ghost", "code": "QUEUE_NOT_FOUND"}))


def test_dequeue_batch() -> None:
    call = protocol.dequeue_batch(10, "orders", wait=1)
    assert call.request.path == "/api/queue/messages/batch"
    assert call.request.params == {"count": "10", "queue": "orders", "timeout": "1"}
    assert call.parse(response(200, {"messages": [], "count": 0})) == []
    [message] = call.parse(response(200, {"messages": [MESSAGE], "count": 1}))
    assert message.id == MESSAGE["id"]


def test_ack_nack_touch_take_a_message_or_an_id_and_token() -> None:
    message = protocol.dequeue().parse(response(200, MESSAGE))
    assert message is not None
    assert body(protocol.ack(message)) == {"id": message.id, "lock_token": "nHn0Mofj1R"}
    assert body(protocol.ack("m1")) == {"id": "m1"}
    nack = protocol.nack("m/1", "tok", error="boom", delay=3)
    assert nack.request.path == "/api/queue/message/m%2F1/nack"
    assert body(nack) == {"lock_token": "tok", "errorReason": "boom", "delaySeconds": 3}
    assert nack.parse(
        response(200, {"message": "Message nacked successfully", "requeued": False, "movedToDlq": True})
    ) == (relay.NackResult(requeued=False, moved_to_dlq=True))
    touch = protocol.touch(message, extend=60)
    assert (touch.request.method, touch.request.path) == ("PUT", f"/api/queue/message/{message.id}/touch")
    assert body(touch) == {"lock_token": "nHn0Mofj1R", "extend_seconds": 60}
    result = touch.parse(
        response(
            200,
            {
                "message": "Lock extended successfully",
                "new_timeout_at": 5,
                "lock_token": "t",
                "extended_by": 60,
            },
        )
    )
    assert result.new_timeout_at == 5


def test_batch_ack_and_nack() -> None:
    call = protocol.ack_batch([("a", "ta"), ("b", "tb")])
    assert body(call) == {"acks": [{"id": "a", "lock_token": "ta"}, {"id": "b", "lock_token": "tb"}]}
    result = call.parse(
        response(
            200,
            {
                "message": "x",
                "succeeded": ["a"],
                "failed": [{"id": "b", "error": "Lock token mismatch", "code": "LOCK_LOST"}],
            },
        )
    )
    assert result.succeeded == ["a"] and result.failed[0].code == "LOCK_LOST"
    nacks = protocol.nack_batch([("a", "ta")], error="bad")
    assert body(nacks) == {"nacks": [{"id": "a", "lock_token": "ta", "error": "bad"}]}
    parsed = nacks.parse(
        response(200, {"message": "x", "succeeded": ["a"], "failed": [], "requeued": [], "movedToDlq": ["a"]})
    )
    assert parsed.moved_to_dlq == ["a"]


def test_queue_management_requests() -> None:
    create = protocol.create_queue(
        "orders", queue_type="unlogged", ack_timeout=5, max_attempts=2, description="d"
    )
    assert body(create) == {
        "name": "orders",
        "queue_type": "unlogged",
        "ack_timeout_seconds": 5,
        "max_attempts": 2,
        "description": "d",
    }
    queue = create.parse(
        response(
            201,
            {
                "message": "ok",
                "queue": {
                    "name": "orders",
                    "queue_type": "unlogged",
                    "created_at": "2026-12-04T15:48:29.528Z",
                },
            },
        )
    )
    assert queue.name == "orders" and queue.created_at is not None
    assert protocol.delete_queue("orders", force=True).request.params == {"force": "true"}
    assert protocol.delete_queue("orders").parse(response(200, {"message": "x", "deleted_messages": 3})) == 3
    assert body(protocol.purge_queue("orders", status="dead")) == {"status": "dead"}
    assert body(protocol.rename_queue("a", "b")) == {"newName": "b"}
    assert protocol.update_queue("a", max_attempts=4).request.method == "PATCH"
    listed = protocol.list_queues().parse(response(200, {"queues": [{"name": "default"}], "total": 1}))
    assert [q.name for q in listed] == ["default"]


def test_monitoring_requests() -> None:
    status = protocol.queue_status("orders")
    assert status.request.params == {"queueName": "orders", "include_messages": "false"}
    raw = {
        "mainQueue": {"length": 3},
        "processingQueue": {"length": 1},
        "deadLetterQueue": {"length": 2},
        "acknowledgedQueue": {"length": 5, "total": 5},
        "archivedQueue": {"length": 0},
        "availableTypes": ["a"],
        "priorities": {"0": 3},
    }
    parsed = status.parse(response(200, raw))
    assert (parsed.queued, parsed.processing, parsed.dead, parsed.acknowledged) == (3, 1, 2, 5)
    activity = protocol.activity(queue="q", action=["ack", "nack"], has_anomaly=True, limit=5)
    assert activity.request.params == {
        "queue_name": "q",
        "action": "ack,nack",
        "has_anomaly": "true",
        "limit": "5",
    }


def test_import_sends_a_multipart_file() -> None:
    call = protocol.import_messages([{"type": "a", "payload": 1}])
    assert call.request.content_type.startswith("multipart/form-data; boundary=")
    assert call.request.body is not None
    assert b'name="file"' in call.request.body and b'[{"type":"a","payload":1}]' in call.request.body
    assert call.parse(response(200, {"message": "Imported 1 messages successfully", "count": 1})) == 1


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "VALIDATION_ERROR", relay.ValidationError),
        (400, "INVALID_JSON", relay.ValidationError),
        (401, "UNAUTHORIZED", relay.UnauthorizedError),
        (404, "QUEUE_NOT_FOUND", relay.QueueNotFoundError),
        (404, "NOT_FOUND", relay.MessageNotFoundError),
        (400, "INVALID_STATE", relay.InvalidStateError),
        (409, "LOCK_LOST", relay.LockLostError),
        (409, "QUEUE_EXISTS", relay.QueueExistsError),
        (400, "QUEUE_NOT_EMPTY", relay.QueueNotEmptyError),
        (400, "DEFAULT_QUEUE_PROTECTED", relay.DefaultQueueProtectedError),
        (413, "PAYLOAD_TOO_LARGE", relay.PayloadTooLargeError),
        (503, "DATABASE_UNAVAILABLE", relay.DatabaseUnavailableError),
        (500, "INTERNAL_ERROR", relay.ServerError),
        (404, "ROUTE_NOT_FOUND", relay.RouteNotFoundError),
    ],
)
def test_error_codes_map_to_exception_classes(status: int, code: str, cls: type[relay.APIError]) -> None:
    with pytest.raises(cls) as caught:
        protocol.ack("m", "t").parse(response(status, {"message": "text", "code": code}))
    assert caught.value.code == code and caught.value.status == status and caught.value.message == "text"
    assert isinstance(caught.value, relay.RelayError)


def test_errors_without_a_code_fall_back_on_the_status() -> None:
    with pytest.raises(relay.ServerError):
        protocol.ack("m").parse(Response(502, b"<html>Bad Gateway</html>"))
    with pytest.raises(relay.UnauthorizedError):
        protocol.ack("m").parse(Response(401, b""))
    with pytest.raises(relay.APIError) as caught:
        protocol.ack("m").parse(response(418, {"message": "teapot", "code": "SOMETHING_NEW"}))
    assert type(caught.value) is relay.APIError and caught.value.code == "SOMETHING_NEW"


# -- retries ----------------------------------------------------------------------------------


def test_retry_policy() -> None:
    policy = RetryPolicy(attempts=3, backoff=0.1)
    post = Request("POST", "/x")
    get = Request("GET", "/x", idempotent=True)
    assert policy.delay(post, 1, sent=False) is not None  # never reached the server: safe
    assert policy.delay(post, 1, sent=True) is None  # may have been applied: not repeated
    assert policy.delay(get, 1, sent=True) is not None
    assert policy.delay(get, 3, sent=True) is None  # attempts exhausted
    unavailable = relay.DatabaseUnavailableError("down", status=503, code="DATABASE_UNAVAILABLE")
    assert policy.delay(post, 1, sent=True, error=unavailable) is not None
    lock_lost = relay.LockLostError("x", status=409, code="LOCK_LOST")
    assert policy.delay(get, 1, sent=True, error=lock_lost) is None
    delays = [policy.delay(get, n, sent=True) for n in (1, 2)]
    assert all(d is not None and 0 < d <= 0.2 for d in delays)


def test_a_bulk_call_that_failed_slowly_is_not_repeated() -> None:
    """A 503 after the server's bulk timeout (an hour by default) would come again an hour later:
    four attempts made a failing purge of a huge queue take four hours."""
    policy = RetryPolicy(attempts=3, backoff=0.1, slow_failure=60)
    unavailable = relay.DatabaseUnavailableError("timeout", status=503, code="DATABASE_UNAVAILABLE")
    purge = protocol.purge_queue("q").request
    assert purge.bulk and protocol.export_messages("main").request.bulk
    assert policy.delay(purge, 1, sent=True, error=unavailable, elapsed=0.5) is not None  # an outage: retried
    assert policy.delay(purge, 1, sent=True, error=unavailable, elapsed=61) is None
    ack = protocol.ack("m").request
    assert not ack.bulk and policy.delay(ack, 1, sent=True, error=unavailable, elapsed=61) is not None


class FakeTransport:
    """Answers from a script: each item is a Response or a TransportError to raise."""

    def __init__(self, *script: Response | TransportError) -> None:
        self.script = list(script)
        self.sent: list[Request] = []

    def _next(self, request: Request) -> Response:
        self.sent.append(request)
        item = self.script.pop(0)
        if isinstance(item, TransportError):
            raise item
        return item

    def send(self, request: Request) -> Response:
        return self._next(request)

    async def send_async(self, request: Request) -> Response:
        return self._next(request)


FAST = RetryPolicy(attempts=3, backoff=0.001, max_backoff=0.001)


def test_sync_client_retries_connection_failures_then_parses() -> None:
    client = relay.Client("http://example.invalid", retry=FAST)
    fake = FakeTransport(TransportError("refused", sent=False), response(200, {"queues": [], "total": 0}))
    client._transport = fake  # type: ignore[assignment]
    assert client.list_queues() == []
    assert len(fake.sent) == 2


class SlowTransport(FakeTransport):
    """Takes 0.1 s per answer."""

    def send(self, request: Request) -> Response:
        time.sleep(0.1)
        return self._next(request)


def test_clients_time_each_attempt_for_the_retry_policy() -> None:
    db_down = response(503, {"message": "canceling statement due to statement timeout", "code": "DATABASE_UNAVAILABLE"})
    client = relay.Client("http://example.invalid", retry=RetryPolicy(attempts=3, backoff=0.001, slow_failure=0.05))
    client._transport = fake = SlowTransport(db_down, response(200, {"deleted_count": 0}))  # type: ignore[assignment]
    with pytest.raises(relay.DatabaseUnavailableError):
        client.purge_queue("q")
    assert len(fake.sent) == 1
    client._transport = fake = FakeTransport(db_down, response(200, {"deleted_count": 0}))  # type: ignore[assignment]
    assert client.purge_queue("q") == 0 and len(fake.sent) == 2


def test_sync_client_does_not_repeat_a_non_idempotent_request_that_may_have_been_sent() -> None:
    client = relay.Client("http://example.invalid", retry=FAST)
    client._transport = FakeTransport(TransportError("reset", sent=True))  # type: ignore[assignment]
    with pytest.raises(relay.RelayConnectionError):
        client.enqueue({"a": 1})


def test_async_client_shares_the_same_operations_and_retries() -> None:
    client = relay.AsyncClient("http://example.invalid/api/", retry=FAST)
    assert client.url == "http://example.invalid"
    fake = FakeTransport(
        response(503, {"message": "db down", "code": "DATABASE_UNAVAILABLE"}),
        response(201, {"message": "Message added successfully", "id": "a1", "queue": "default"}),
    )
    client._transport.send = fake.send_async  # type: ignore[method-assign]
    result = asyncio.run(client.enqueue({"a": 1}))
    assert result == relay.EnqueueResult(id="a1", queue="default")


def test_both_clients_expose_every_operation_with_the_same_signature() -> None:
    operations = {
        name for name, value in vars(relay.Client).items() if not name.startswith("_") and callable(value)
    } - {"execute", "events", "close"}
    async_operations = {
        name
        for name, value in vars(relay.AsyncClient).items()
        if not name.startswith("_") and callable(value)
    } - {"execute", "events", "close"}
    assert operations == async_operations
    for name in operations:
        sync_params = inspect.signature(getattr(relay.Client, name)).parameters
        async_params = inspect.signature(getattr(relay.AsyncClient, name)).parameters
        assert list(sync_params) == list(async_params)
        assert getattr(relay.Client, name).__doc__ == getattr(protocol, name).__doc__


def test_base_url_and_api_key_come_from_arguments_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_URL", "relay.example:4000/api")
    monkeypatch.setenv("RELAY_API_KEY", "secret")
    assert protocol.resolve_base_url(None) == "http://relay.example:4000"
    assert protocol.resolve_base_url("https://x/") == "https://x"
    assert protocol.resolve_api_key(None) == "secret"
    assert protocol.resolve_api_key("") is None
    headers = protocol.request_headers(Request("POST", "/x", body=b"{}"), "secret")
    assert headers["X-API-KEY"] == "secret" and headers["Content-Type"] == "application/json"


# -- server-sent events -----------------------------------------------------------------------


def test_sse_parser_handles_split_chunks_comments_and_multiline_data() -> None:
    stream = (
        b'event: queue-update\ndata: {"type":"enqueue","queue":"q"}\nid: 17\n\n'
        b": comment\n\nevent: ping\ndata: ping\n\ndata: line1\r\ndata: line2\r\n\r\n"
    )
    parser = SSEParser()
    events = []
    for index in range(0, len(stream), 7):
        events.extend(parser.feed(stream[index : index + 7]))
    assert [e.event for e in events] == ["queue-update", "ping", "message"]
    assert events[0].data == {"type": "enqueue", "queue": "q"} and events[0].id == "17"
    assert events[1].data == "ping"
    assert events[2].data == "line1\nline2"


ACKED = {"message": "Message is not in processing state (current: acknowledged)", "code": "INVALID_STATE"}


def test_an_ack_repeated_after_a_broken_connection_that_finds_it_done_succeeds() -> None:
    """The first ack went through but its answer was lost; the client repeats it (harmless) and
    hears "current: acknowledged". That was raised as an error for an ack that had worked (the
    worker then logged a lost lease and did not count the message)."""
    client = relay.Client("http://example.invalid", retry=FAST)
    client._transport = FakeTransport(TransportError("reset", sent=True), response(400, ACKED))  # type: ignore[assignment]
    assert client.ack("m1", "tok") is None
    # Without a repeat the same answer is someone else's ack (or a stale token): raised.
    client._transport = FakeTransport(response(400, ACKED))  # type: ignore[assignment]
    with pytest.raises(relay.InvalidStateError):
        client.ack("m1", "tok")
    # A repeat that finds the message queued again (lease reclaimed) is still an error.
    queued = {"message": "Message is not in processing state (current: queued)", "code": "INVALID_STATE"}
    client._transport = FakeTransport(TransportError("reset", sent=True), response(400, queued))  # type: ignore[assignment]
    with pytest.raises(relay.InvalidStateError):
        client.ack("m1", "tok")
    aclient = relay.AsyncClient("http://example.invalid", retry=FAST)
    fake = FakeTransport(TransportError("reset", sent=True), response(400, ACKED))
    aclient._transport.send = fake.send_async  # type: ignore[method-assign]
    assert asyncio.run(aclient.ack("m1", "tok")) is None
