"""The sync and async clients against a real server on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable

import pytest

import relayq.client as relay
from relayq.client import AsyncClient, Client, EnqueueItem
from tests.client.client_support import skip_unless_served
from tests.support.server import spawn_server, stop_server


def test_message_life_cycle(client: Client, make_queue: Callable[..., str]) -> None:
    queue = make_queue(ack_timeout=30, max_attempts=2)
    added = client.enqueue({"to": "a@b.c"}, type="email", queue=queue, priority=3)
    assert added.queue == queue and not added.duplicate

    message = client.dequeue(queue, consumer_id="w1")
    assert isinstance(message, relay.Message)
    assert (message.id, message.type, message.payload, message.priority) == (
        added.id,
        "email",
        {"to": "a@b.c"},
        3,
    )
    assert message.status == "processing" and message.attempt_count == 1 and message.lock_token
    assert client.dequeue(queue) is None  # leased: nobody else gets it

    touched = client.touch(message, extend=60)
    assert touched.lock_token == message.lock_token and touched.new_timeout_at > time.time() + 50

    with pytest.raises(relay.LockLostError):
        client.ack(message.id, "not-the-token")
    client.ack(message)
    with pytest.raises(relay.InvalidStateError):
        client.ack(message)


def test_nack_requeues_then_dead_letters(client: Client, make_queue: Callable[..., str]) -> None:
    queue = make_queue(max_attempts=2)
    client.enqueue("string payloads work", queue=queue)
    first = client.dequeue(queue)
    assert first is not None and first.payload == "string payloads work"
    assert client.nack(first, error="boom") == relay.NackResult(requeued=True, moved_to_dlq=False)
    second = client.dequeue(queue)
    assert second is not None and second.id == first.id and second.attempt_count == 2
    assert second.last_error in ("boom", None)
    assert client.nack(second, error="boom again").moved_to_dlq
    assert client.get_queue(queue).dead_count == 1


def test_batches(client: Client, make_queue: Callable[..., str]) -> None:
    queue = make_queue()
    other = make_queue()
    result = client.enqueue_batch(
        [EnqueueItem(payload=i, type="n", priority=i % 3) for i in range(5)]
        + [EnqueueItem(payload="elsewhere", queue=other)],
        queue=queue,
    )
    assert result.count == 6 and len(set(result.ids)) == 6
    messages = client.dequeue_batch(10, queue, wait=1)
    assert sorted(m.payload for m in messages) == [0, 1, 2, 3, 4]
    assert [m.priority for m in messages] == sorted((m.priority for m in messages), reverse=True)
    acked = client.ack_batch([*messages[:3], (messages[3].id, "wrong")])
    assert acked.succeeded == [m.id for m in messages[:3]]
    assert [(f.id, f.code) for f in acked.failed] == [(messages[3].id, "LOCK_LOST")]
    nacked = client.nack_batch([messages[4]], error="later")
    assert nacked.requeued == [messages[4].id]
    assert client.dequeue_batch(10, queue) != []  # the nacked one came back
    assert client.dequeue_batch(5, other)[0].payload == "elsewhere"


def test_long_poll_returns_when_a_message_arrives(client: Client, make_queue: Callable[..., str]) -> None:
    queue = make_queue()
    timer = threading.Timer(0.3, lambda: client.enqueue({"late": True}, queue=queue))
    started = time.monotonic()
    timer.start()
    message = client.dequeue(queue, wait=5)
    assert message is not None and message.payload == {"late": True}
    assert time.monotonic() - started < 3
    started = time.monotonic()
    assert client.dequeue_batch(5, queue, wait=0.5) == []
    assert time.monotonic() - started >= 0.4


def test_queue_management(client: Client, make_queue: Callable[..., str]) -> None:
    queue = make_queue(ack_timeout=7, max_attempts=4, description="orders")
    info = client.get_queue(queue)
    assert (info.ack_timeout_seconds, info.max_attempts, info.description) == (7, 4, "orders")
    assert queue in [q.name for q in client.list_queues()]
    assert client.update_queue(queue, max_attempts=5).max_attempts == 5
    with pytest.raises(relay.QueueExistsError):
        client.create_queue(queue)

    client.enqueue_batch([{"type": "x", "payload": i} for i in range(3)], queue=queue)
    with pytest.raises(relay.QueueNotEmptyError):
        client.delete_queue(queue)
    renamed = client.rename_queue(queue, queue + "-b")
    assert renamed.name == queue + "-b" and renamed.message_count == 3
    with pytest.raises(relay.QueueNotFoundError):
        client.enqueue(1, queue=queue)
    assert client.purge_queue(renamed.name, status="queued") == 3
    assert client.delete_queue(renamed.name) == 0
    with pytest.raises(relay.QueueNotFoundError):
        client.get_queue(renamed.name)
    with pytest.raises(relay.DefaultQueueProtectedError):
        client.delete_queue("default", force=True)


def test_stats_activity_and_validation(client: Client, make_queue: Callable[..., str]) -> None:
    queue = make_queue()
    client.enqueue_batch([{"type": "a", "payload": 1}, {"type": "b", "payload": 2}], queue=queue)
    message = client.dequeue(queue)
    assert message is not None
    client.ack(message)
    metrics = client.metrics(queue)
    assert (metrics.queued, metrics.acknowledged) == (1, 1)
    status = client.queue_status(queue)
    assert (status.queued, status.processing, status.acknowledged) == (1, 0, 1)
    assert set(status.available_types) == {"a", "b"}
    assert client.server_config().max_attempts >= 1
    assert client.health()["status"] == "OK"

    with pytest.raises(relay.ValidationError) as caught:
        client.enqueue(1, queue=queue, priority=12)
    assert caught.value.status == 400


def test_activity_log(client: Client, make_queue: Callable[..., str]) -> None:
    skip_unless_served(lambda: client.activity(limit=1))
    queue = make_queue()
    client.enqueue(1, queue=queue)
    message = client.dequeue(queue)
    assert message is not None
    client.ack(message)
    deadline = time.monotonic() + 3  # activity is written off the request path, within 1 s
    while time.monotonic() < deadline:
        actions = [e.action for e in client.activity(message_id=message.id).logs]
        if "acknowledge" in actions:
            break
        time.sleep(0.1)
    assert {"enqueue", "dequeue", "acknowledge"} <= set(actions)


def test_export_and_import(client: Client, make_queue: Callable[..., str]) -> None:
    source = make_queue()
    target = make_queue()
    client.enqueue_batch([{"type": "t", "payload": {"n": i}, "priority": i} for i in range(3)], queue=source)
    exported = client.export_messages("main", queue=source)
    assert sorted(m.payload["n"] for m in exported) == [0, 1, 2]
    for message in exported:
        message.queue_name = target
    assert client.import_messages(exported) == 3
    assert client.get_queue(target).message_count == 3


def test_event_stream_reports_changes(client: Client, make_queue: Callable[..., str]) -> None:
    queue = make_queue()
    seen: list[relay.Event] = []
    ready = threading.Event()

    def follow() -> None:
        ready.set()
        for event in client.events():
            if (
                event.event == "queue-update"
                and isinstance(event.data, dict)
                and event.data.get("queue") == queue
            ):
                seen.append(event)
                return

    skip_unless_served(lambda: next(iter(client.events())))
    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    ready.wait()
    time.sleep(0.3)  # let the stream open before the change
    client.enqueue({"hello": "events"}, queue=queue)
    thread.join(timeout=5)
    assert seen and seen[0].data["type"] == "enqueue"


def test_event_stream_sends_the_key_in_a_header_never_in_the_url(database_url: str) -> None:
    """Full events (with queue names) come with the X-API-KEY header alone; `?apiKey=` in the URL
    once put the key in the server's access log (and any proxy's)."""
    key = "k-" + uuid.uuid4().hex
    server = spawn_server(database_url, {"SECRET_KEY": key, "LOG_LEVEL": "info"}, args=["--access-log"])
    try:
        with Client(server.url, api_key=key) as client:
            queue = f"t-{uuid.uuid4().hex[:12]}"
            client.create_queue(queue)
            seen: list[relay.Event] = []

            def follow() -> None:
                for event in client.events():
                    if isinstance(event.data, dict) and event.data.get("queue") == queue:
                        seen.append(event)
                        return

            thread = threading.Thread(target=follow, daemon=True)
            thread.start()
            time.sleep(0.3)  # let the stream open before the change
            client.enqueue({"hello": "events"}, queue=queue)
            thread.join(timeout=5)
            assert seen, "no full event with the key in the header"
            client.delete_queue(queue, force=True)
        log = server.log_path.read_text(errors="replace")
        assert "/api/queue/events" in log and key not in log
    finally:
        stop_server(server)


def test_idempotent_enqueue(client: Client, make_queue: Callable[..., str]) -> None:
    queue = make_queue()
    first = client.enqueue(1, queue=queue, idempotency_key="order-1")
    again = client.enqueue(1, queue=queue, idempotency_key="order-1")
    assert again.duplicate and again.id == first.id


def test_unreachable_server_raises_a_connection_error() -> None:
    client = Client("http://127.0.0.1:9", retry=relay.RetryPolicy(attempts=2, backoff=0.01))
    with pytest.raises(relay.RelayConnectionError):
        client.list_queues()


async def test_async_client(relay_url: str, make_queue: Callable[..., str]) -> None:
    queue = make_queue(max_attempts=3)
    async with AsyncClient(relay_url) as client:
        added = await client.enqueue_batch([{"type": "a", "payload": i} for i in range(20)], queue=queue)
        assert added.count == 20
        results = await asyncio.gather(*(client.dequeue(queue, wait=1) for _ in range(20)))
        ids = [m.id for m in results if m is not None]
        assert sorted(ids) == sorted(added.ids)  # concurrent consumers never share a delivery
        await asyncio.gather(*(client.ack(m) for m in results if m is not None))
        assert (await client.get_queue(queue)).message_count == 0
        assert await client.dequeue(queue) is None
        with pytest.raises(relay.QueueNotFoundError):
            await client.dequeue_batch(5, "no-such-queue-" + queue)


def test_api_key(live_server: object) -> None:
    from tests.support.server import start_server  # the lead's helper for custom settings

    with start_server(live_server.database_url, env={"SECRET_KEY": "s3cret"}) as server:  # type: ignore[attr-defined]
        with pytest.raises(relay.UnauthorizedError):
            Client(server.url, api_key="").list_queues()
        with pytest.raises(relay.UnauthorizedError):
            Client(server.url, api_key="wrong").list_queues()
        assert "default" in [q.name for q in Client(server.url, api_key="s3cret").list_queues()]
