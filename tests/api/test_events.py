"""GET /queue/events: live SSE events, full vs lightweight, pings, coalescing, several processes."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from tests.support.server import LiveServer, spawn_server, start_server, stop_server


class EventReader:
    """Reads an SSE stream on a thread and keeps the parsed events."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.events: list[tuple[str, Any]] = []
        self._client = httpx.Client(timeout=httpx.Timeout(10, read=30))
        self._response = self._client.send(self._client.build_request("GET", url, headers=headers), stream=True)
        assert self._response.status_code == 200
        assert self._response.headers["content-type"].startswith("text/event-stream")
        assert self._response.headers["cache-control"] == "no-cache"
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        name, data = "message", ""
        try:
            for line in self._response.iter_lines():
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    data = line[6:]
                elif line == "" and data:
                    self.events.append((name, data if name == "ping" else json.loads(data)))
                    name, data = "message", ""
        except (httpx.HTTPError, RuntimeError):
            return

    def wait_for(self, predicate: Any, timeout: float = 2.0) -> list[tuple[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [e for e in list(self.events) if predicate(e)]
            if found:
                return found
            time.sleep(0.02)
        raise AssertionError(f"no matching event in {self.events}")

    def close(self) -> None:
        self._response.close()
        self._client.close()


@contextmanager
def reading(url: str, headers: dict[str, str] | None = None) -> Iterator[EventReader]:
    reader = EventReader(url, headers)
    time.sleep(0.2)  # subscribed before the changes we provoke
    try:
        yield reader
    finally:
        reader.close()


def updates(queue: str, kind: str, status: str) -> Any:
    return lambda e: (e[0] == "queue-update" and e[1].get("queue") == queue and e[1]["type"] == kind
                      and e[1]["payload"].get("status") == status)


def test_full_events_follow_membership_changes(api: httpx.Client, live_server: LiveServer, queue: str) -> None:
    with reading(live_server.api + "/queue/events") as reader:
        started = time.monotonic()
        mid = api.post("/queue/message", json={"type": "sse", "payload": {"x": 1}, "queue": queue,
                                               "priority": 2}).json()["id"]
        ((_, event),) = reader.wait_for(updates(queue, "enqueue", "queued"), timeout=1.0)
        assert time.monotonic() - started < 1.0
        assert event["payload"]["ids"] == [mid] and event["payload"]["count"] == 1
        assert event["payload"]["force_refresh"] is False and isinstance(event["timestamp"], int)
        (msg,) = event["payload"]["messages"]
        assert msg["id"] == mid and msg["payload"] == {"x": 1} and msg["priority"] == 2
        assert isinstance(msg["created_at"], float) and msg["attempt_count"] == 0
        leased = api.get("/queue/message", params={"queue": queue}).json()
        reader.wait_for(updates(queue, "dequeue", "queued"))
        reader.wait_for(updates(queue, "dequeue", "processing"))
        api.post("/queue/ack", json={"id": mid, "lock_token": leased["lock_token"]})
        reader.wait_for(updates(queue, "processed", "processing"))
        ((_, acked),) = reader.wait_for(updates(queue, "acknowledge", "acknowledged"))
        assert acked["payload"]["ids"] == [mid]
        api.delete(f"/queue/message/{mid}", params={"queueType": "acknowledged"})
        ((_, gone),) = reader.wait_for(updates(queue, "archive", "acknowledged"))
        assert "messages" not in gone["payload"]


def test_bursts_are_coalesced(api: httpx.Client, live_server: LiveServer, queue: str) -> None:
    with reading(live_server.api + "/queue/events") as reader:
        for _ in range(100):
            api.post("/queue/message", json={"type": "burst", "payload": 1, "queue": queue})
        api.post("/queue/batch", json=[{"type": "b", "payload": 1, "queue": queue}] * 5000)
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            events = [e for _, e in reader.wait_for(updates(queue, "enqueue", "queued"))]
            if sum(e["payload"]["count"] for e in events) == 5100:
                break
            time.sleep(0.05)
        assert sum(e["payload"]["count"] for e in events) == 5100
        assert len(events) < 40  # 5,100 enqueues, a handful of events
        assert any(e["payload"]["force_refresh"] for e in events)  # the batch is too big to list


def test_lightweight_without_key_full_with_key_and_pings(database_url: str) -> None:
    env = {"SECRET_KEY": "s3cret", "EVENT_PING_SECONDS": "0.3"}
    with start_server(database_url, env) as server:
        api = httpx.Client(base_url=server.api, headers={"X-API-KEY": "s3cret"}, timeout=10)
        assert api.post("/queues", json={"name": "sse_auth"}).status_code in (201, 409)
        with reading(server.api + "/queue/events") as anonymous, \
                reading(server.api + "/queue/events?apiKey=s3cret") as by_query, \
                reading(server.api + "/queue/events", {"X-API-KEY": "s3cret"}) as by_header, \
                reading(server.api + "/queue/events?apiKey=wrong") as wrong:
            api.post("/queue/message", json={"type": "t", "payload": 1, "queue": "sse_auth"})
            for full in (by_query, by_header):
                full.wait_for(updates("sse_auth", "enqueue", "queued"))
            for light in (anonymous, wrong):
                ((_, event),) = light.wait_for(lambda e: e[0] == "queue-update")
                assert event == {"type": "enqueue", "timestamp": event["timestamp"],
                                 "payload": {"count": 1, "force_refresh": False}}
            anonymous.wait_for(lambda e: e == ("ping", "ping"), timeout=1.0)
        assert httpx.get(server.url + "/metrics").status_code == 401
        assert httpx.get(server.url + "/metrics", headers={"X-API-KEY": "s3cret"}).status_code == 200


@contextmanager
def stream(url: str, headers: dict[str, str] | None = None) -> Iterator[int]:
    """An open event stream (its status code), read by nobody, closed on exit."""
    with httpx.Client(timeout=10) as client, client.stream("GET", url, headers=headers) as response:
        yield response.status_code


def test_keyless_streams_are_bounded_keyed_ones_are_not(database_url: str) -> None:
    """Without the key anyone can open a (counts-only) stream: at most EVENT_KEYLESS_STREAMS_MAX."""
    env = {"SECRET_KEY": "s3cret", "EVENT_KEYLESS_STREAMS_MAX": "2"}
    with start_server(database_url, env) as server:
        url = server.api + "/queue/events"
        with stream(url) as first, stream(url + "?apiKey=wrong") as second:
            assert (first, second) == (200, 200)
            with stream(url) as third:
                assert third == 401
            with stream(url, {"X-API-KEY": "s3cret"}) as keyed, stream(url + "?apiKey=s3cret") as by_query:
                assert (keyed, by_query) == (200, 200)  # with the key: no limit
        deadline = time.monotonic() + 10
        while True:  # the closed streams free their places
            with stream(url) as again:
                if again == 200:
                    break
            assert time.monotonic() < deadline, "closed keyless streams were never released"
            time.sleep(0.1)


def test_every_process_sees_every_event_and_wakes_long_polls(
    api: httpx.Client, live_server: LiveServer, queue: str
) -> None:
    with start_server(live_server.database_url) as other:
        with reading(other.api + "/queue/events") as reader:
            mid = api.post("/queue/message", json={"type": "x", "payload": 1, "queue": queue}).json()["id"]
            ((_, event),) = reader.wait_for(updates(queue, "enqueue", "queued"), timeout=1.0)
            assert event["payload"]["ids"] == [mid]
        # A long poll parked on the other process wakes at once for an enqueue made here.
        result: dict[str, Any] = {}

        def poll() -> None:
            started = time.monotonic()
            response = httpx.get(other.api + "/queue/message", params={"queue": queue, "timeout": 10}, timeout=15)
            result.update(status=response.status_code, waited=time.monotonic() - started)

        api.get("/queue/message", params={"queue": queue})  # take the first message
        thread = threading.Thread(target=poll)
        thread.start()
        time.sleep(0.5)
        sent = time.monotonic()
        api.post("/queue/message", json={"type": "x", "payload": 2, "queue": queue})
        thread.join(5)
        assert result["status"] == 200
        assert time.monotonic() - sent < 0.9  # woken by NOTIFY, not by the 1 s recheck


def test_open_streams_do_not_hold_a_graceful_shutdown(database_url: str) -> None:
    server = spawn_server(database_url)
    with reading(server.api + "/queue/events"):
        started = time.monotonic()
        assert stop_server(server) == 0
        assert time.monotonic() - started < 5
    assert "Cancel" not in server.log()  # nothing was cut off by the graceful-shutdown timeout
