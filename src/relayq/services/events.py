"""Live queue-update events (API.md §4, GET /queue/events), shared by every server process.

Changes are turned into membership deltas per (queue, status) and coalesced: the first change
after a quiet period goes out at once, later ones are merged until `EVENT_FLUSH_MS` has passed
since the last send, so 10,000 enqueues become a handful of events, not 10,000. Each flush is
delivered to this process's SSE subscribers directly and sent to the other processes with one
NOTIFY (payload under PostgreSQL's 8000-byte limit: ids are dropped, then the event shrinks to
counts with `force_refresh`). A dedicated connection LISTENs (reconnecting after failures),
skips its own node's notifications, fans the others out, and wakes long-poll waiters when
another process made messages available.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import msgspec

from relayq.db.database import Database
from relayq.domain.messages import raw_json
from relayq.services.changes import Change
from relayq.services.waiters import Waiters

log = logging.getLogger("relayq.events")

CHANNEL = "relay_queue_events"
# The listener's own connection, named so a DBA (and the chaos tests) can tell it from the pool's.
LISTEN_SESSION = {"application_name": "relayq-listen"}
NOTIFY_LIMIT = 7900  # PostgreSQL refuses payloads of 8000 bytes or more
MAX_IDS = 1000  # per event; beyond it the event carries the count and force_refresh
MAX_MESSAGES = 100  # message objects per "entering" event
MAX_MESSAGE_PAYLOAD = 4096  # bytes of payload JSON shown per message
SUBSCRIBER_QUEUE = 1000
MAX_PENDING_NOTIFICATIONS = 1000
# A cross-process wake-up for delayed messages made due (EventStream.wake_elsewhere); not an SSE event.
DUE_EVENT = "relay-due"

ENTER_TYPE = {"queued": "enqueue", "processing": "dequeue", "acknowledged": "acknowledge", "dead": "move_to_dlq",
              "archived": "archive"}
LEAVE_TYPE = {"queued": "dequeue", "processing": "processed", "acknowledged": "archive", "dead": "requeue",
              "archived": "delete"}
# (left status, entered status) of each per-message action.
TRANSITIONS: dict[str, tuple[str | None, str | None]] = {
    "enqueue": (None, "queued"),
    "dequeue": ("queued", "processing"),
    "acknowledge": ("processing", "acknowledged"),
    "nack": ("processing", "queued"),
    "move_to_dlq": ("processing", "dead"),
    "timeout_requeue": ("processing", "queued"),
    "timeout_to_dlq": ("processing", "dead"),
}
REFRESH_ACTIONS = frozenset({
    "clear_queue", "clear_all_queues", "purge_queue", "create_queue", "update_queue", "rename_queue", "delete_queue",
})

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


@dataclass(slots=True)
class _Delta:
    """Messages that entered or left one (queue, status) during one window."""

    queue: str | None
    status: str | None
    entering: bool
    count: int = 0
    ids: list[str] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    force_refresh: bool = False


@dataclass(eq=False, slots=True)
class Subscriber:
    """One SSE client: full events (with the API key) or counts only."""

    full: bool
    queue: asyncio.Queue[bytes | None] = field(default_factory=lambda: asyncio.Queue(SUBSCRIBER_QUEUE))
    dropped: int = 0


class EventStream:
    """Coalescer, local fan-out, and cross-process NOTIFY/LISTEN of queue-update events."""

    def __init__(self, db: Database, waiters: Waiters, window_ms: int) -> None:
        self.db = db
        self.waiters = waiters
        self.window = window_ms / 1000
        self.node = secrets.token_hex(6)
        self.subscribers: set[Subscriber] = set()
        self.pending: dict[tuple[str | None, str | None, bool], _Delta] = {}
        self.due: dict[str, tuple[int, set[str]]] = {}  # queues whose delayed messages this process made due
        self.outbox: deque[str] = deque(maxlen=MAX_PENDING_NOTIFICATIONS)
        self.sent = 0
        self.received = 0
        self.listening = False
        self._last_flush = 0.0
        self._scheduled: asyncio.TimerHandle | None = None
        self._sender: asyncio.Task[None] | None = None

    # ----- changes in --------------------------------------------------------------------
    def on_change(self, change: Change) -> None:
        """ChangeHub listener: record deltas and schedule a (throttled) flush."""
        action = change.action
        if action in TRANSITIONS:
            left, entered = TRANSITIONS[action]
            self._add(change.queue, left, change.rows, entering=False)
            self._add(change.queue, entered, change.rows, entering=True)
        elif action == "move":
            self._add(change.queue, change.from_status, change.rows, entering=False)
            self._add(change.queue, change.to_status, change.rows, entering=True)
        elif action in ("delete", "bulk_delete") and change.rows:
            by_status: dict[str, list[Mapping[str, Any]]] = {}
            for row in change.rows:
                by_status.setdefault(row["status"], []).append(row)
            for status, rows in by_status.items():
                self._add(change.queue, status, rows, entering=False)
        elif action in REFRESH_ACTIONS or action == "bulk_delete":
            delta = self._delta(change.queue, None, entering=True)
            delta.force_refresh = True
            delta.count += int(change.batch_size or 0)
        else:
            return
        self._schedule()

    def _delta(self, queue: str | None, status: str | None, *, entering: bool) -> _Delta:
        key = (queue, status, entering)
        delta = self.pending.get(key)
        if delta is None:
            delta = self.pending[key] = _Delta(queue, status, entering)
        return delta

    def _add(self, queue: str | None, status: str | None, rows: Any, *, entering: bool) -> None:
        if status is None or not rows:
            return
        delta = self._delta(queue, status, entering=entering)
        delta.count += len(rows)
        room = MAX_IDS - len(delta.ids)
        if room < len(rows):
            delta.force_refresh = True
        if room > 0:  # slicing lazily built rows (enqueue) builds them: only when they are kept
            delta.ids.extend(row["id"] for row in rows[:room])
        wanted = MAX_MESSAGES - len(delta.messages)
        if entering and wanted > 0:
            delta.messages.extend(_message(row) for row in rows[:wanted])

    def _schedule(self) -> None:
        if self._scheduled is not None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, self._last_flush + self.window - time.monotonic())
        self._scheduled = loop.call_later(delay, self.flush)

    def wake_elsewhere(self, queue: str, count: int, types: set[str]) -> None:
        """Delayed messages of `queue` became due here: wake the other processes' long-polls too.

        The promotion loop of whichever process gets there first makes them dequeuable and wakes
        its own parked requests; the others' only noticed at their one-second recheck.
        """
        before, known = self.due.get(queue, (0, set()))
        self.due[queue] = (before + count, known | types)
        self._schedule()

    # ----- events out --------------------------------------------------------------------
    def flush(self) -> None:
        """Turn the window's deltas into events: deliver locally now, queue one NOTIFY for the others."""
        self._scheduled = None
        self._last_flush = time.monotonic()
        if not self.pending and not self.due:
            return
        deltas, self.pending = list(self.pending.values()), {}
        now_ms = int(time.time() * 1000)
        events = [_event(d, now_ms) for d in deltas]
        self.deliver(events)
        # Wake-ups only: never delivered to dashboards (the messages' counts did not change).
        events += [{"type": DUE_EVENT, "queue": q, "timestamp": now_ms, "payload": {"count": n, "types": sorted(t)}}
                   for q, (n, t) in self.due.items()]
        self.due = {}
        for payload in _notifications(self.node, events):
            self.outbox.append(payload)
        if self._sender is None or self._sender.done():
            self._sender = asyncio.ensure_future(self._send())

    def deliver(self, events: list[dict[str, Any]]) -> None:
        """Hand events to every local subscriber (full or lightweight), never blocking."""
        if not self.subscribers:
            return
        for event in events:
            full = _sse(event)
            light = _sse(_lightweight(event))
            for sub in self.subscribers:
                try:
                    sub.queue.put_nowait(full if sub.full else light)
                except asyncio.QueueFull:
                    sub.dropped += 1  # a stalled client loses events rather than memory

    async def _send(self) -> None:
        while self.outbox:
            batch = list(self.outbox)
            self.outbox.clear()
            try:
                async with self.db.pool.acquire(timeout=self.db.settings.connect_timeout) as conn:
                    await conn.execute("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p", CHANNEL, batch,
                                       timeout=10)
                self.sent += len(batch)
            except Exception as exc:  # other nodes miss these; their dashboards refresh on reconnect
                log.warning("could not NOTIFY %d event batch(es): %s", len(batch), type(exc).__name__)
                return

    async def drain(self) -> None:
        """Flush what is pending and wait for the NOTIFY to go out (shutdown, tests)."""
        if self._scheduled is not None:
            self._scheduled.cancel()
        self.flush()
        if self._sender is not None:
            with contextlib.suppress(Exception):
                await self._sender

    # ----- subscribers -------------------------------------------------------------------
    def keyless_subscribers(self) -> int:
        """Open streams of clients without the key (counts only)."""
        return sum(not sub.full for sub in self.subscribers)

    def subscribe(self, full: bool) -> Subscriber:
        """Register an SSE client."""
        sub = Subscriber(full)
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        """Forget an SSE client."""
        self.subscribers.discard(sub)

    def close_subscribers(self) -> None:
        """End every stream (shutdown): each client gets an end marker."""
        for sub in self.subscribers:
            with contextlib.suppress(asyncio.QueueFull):
                sub.queue.put_nowait(None)

    # ----- other processes ---------------------------------------------------------------
    async def listen(self) -> None:
        """LISTEN on a dedicated connection until cancelled, reconnecting with backoff."""
        backoff = 0.2
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(
                    self.db.settings.listen_database_url or self.db.dsn, timeout=self.db.settings.connect_timeout,
                    server_settings=LISTEN_SESSION,
                )
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, self._on_notify)
                if backoff > 0.2:  # we were cut off: what we missed is unknown, dashboards must refetch
                    self.deliver([_refresh_all()])
                self.listening = True
                backoff = 0.2
                while not lost.is_set():
                    try:
                        await asyncio.wait_for(lost.wait(), 5)
                    except TimeoutError:
                        await conn.fetchval("SELECT 1", timeout=5)  # notices a silently dead connection
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("event listener connection failed: %s", type(exc).__name__)
            finally:
                self.listening = False
                if conn is not None:
                    conn.terminate()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            message = _decoder.decode(payload)
        except msgspec.DecodeError:
            return
        if not isinstance(message, dict) or message.get("node") == self.node:
            return
        events = [e for e in message.get("events", []) if isinstance(e, dict)]
        self.received += len(events)
        for event in events:
            body = event.get("payload") or {}
            if event.get("type") == "enqueue" and body.get("status") == "queued" and event.get("queue"):
                self.waiters.wake(event["queue"], int(body.get("count") or 1), _types(body))
            elif event.get("type") == DUE_EVENT and isinstance(event.get("queue"), str):
                types = body.get("types")
                self.waiters.wake(event["queue"], int(body.get("count") or 1),
                                  set(types) if isinstance(types, list) else None)
        self.deliver([e for e in events if e.get("type") != DUE_EVENT])


def _types(body: Mapping[str, Any]) -> set[str | None] | None:
    """The types of an enqueue event's messages, when it lists them all (None: unknown, any)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or len(messages) != body.get("count"):
        return None
    return {m.get("type") for m in messages if isinstance(m, dict)}


def _message(row: Mapping[str, Any]) -> dict[str, Any]:
    """The message object inside an entering event (API.md §4)."""
    out: dict[str, Any] = {"id": row["id"], "type": row.get("type"), "priority": row.get("priority"),
                           "created_at": row.get("created_at"), "attempt_count": row.get("attempt_count")}
    payload = row.get("payload")
    size = row.get("payload_size") or 0
    if isinstance(payload, str | msgspec.Raw) and size <= MAX_MESSAGE_PAYLOAD:
        out["payload"] = raw_json(payload)
    return out


def _event(delta: _Delta, now_ms: int) -> dict[str, Any]:
    if delta.status is None:  # a bulk change: clients refetch
        return {"type": "enqueue", "queue": delta.queue, "timestamp": now_ms,
                "payload": {"count": delta.count, "force_refresh": True}}
    kind = (ENTER_TYPE if delta.entering else LEAVE_TYPE)[delta.status]
    body: dict[str, Any] = {"status": delta.status, "count": delta.count, "ids": delta.ids}
    if delta.entering:
        body["messages"] = delta.messages
    body["force_refresh"] = delta.force_refresh
    return {"type": kind, "queue": delta.queue, "timestamp": now_ms, "payload": body}


def _refresh_all() -> dict[str, Any]:
    return {"type": "enqueue", "queue": None, "timestamp": int(time.time() * 1000),
            "payload": {"count": 0, "force_refresh": True}}


def _lightweight(event: dict[str, Any]) -> dict[str, Any]:
    body = event["payload"]
    return {"type": event["type"], "timestamp": event["timestamp"],
            "payload": {"count": body.get("count", 0), "force_refresh": body.get("force_refresh", False)}}


def _sse(event: dict[str, Any]) -> bytes:
    return b"event: queue-update\ndata: " + _encoder.encode(event) + b"\nid: " + str(event["timestamp"]).encode() + b"\n\n"


def _shrunk(event: dict[str, Any]) -> list[dict[str, Any]]:
    """Smaller and smaller versions of an event, for the NOTIFY size limit."""
    body = event["payload"]
    no_messages = {**event, "payload": {k: v for k, v in body.items() if k != "messages"}}
    counts_only = {**event, "payload": {"status": body.get("status"), "count": body.get("count", 0),
                                        "force_refresh": True}}
    return [event, no_messages, counts_only]


def _notifications(node: str, events: list[dict[str, Any]]) -> list[str]:
    """Pack events into as few NOTIFY payloads as fit under the limit."""
    head = f'{{"node":"{node}","events":['
    out: list[str] = []
    current: list[str] = []
    size = len(head) + 2
    for event in events:
        encoded = ""
        for version in _shrunk(event):
            encoded = _encoder.encode(version).decode()
            if len(encoded.encode()) + len(head) + 2 <= NOTIFY_LIMIT:
                break
        if current and size + len(encoded.encode()) + 1 > NOTIFY_LIMIT:
            out.append(head + ",".join(current) + "]}")
            current, size = [], len(head) + 2
        current.append(encoded)
        size += len(encoded.encode()) + 1
    if current:
        out.append(head + ",".join(current) + "]}")
    return out
