"""The Relay REST API as data: each operation is written once, with no I/O.

An operation is a function that returns a :class:`Call`: the :class:`Request` to send and the
function that turns the :class:`Response` into a typed result or raises the matching
:class:`~relayq.client.errors.APIError`. The sync and async clients only execute calls, so
request building, response parsing and the retry policy exist in exactly one place.
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import msgspec

from relayq.client.errors import (
    APIError,
    DatabaseUnavailableError,
    InvalidStateError,
    RelayConnectionError,
    error_from_response,
)
from relayq.client.models import (
    AckBatchResult,
    ActivityPage,
    BatchEnqueueResult,
    EnqueueItem,
    EnqueueResult,
    Event,
    Message,
    Metrics,
    NackBatchResult,
    NackResult,
    Queue,
    QueueStatus,
    ServerConfig,
    TouchResult,
)

T = TypeVar("T")

_json_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class Request:
    """An HTTP request relative to the server's base URL.

    ``idempotent`` says that repeating the request after a broken connection is harmless;
    ``extra_timeout`` is added to the client's read timeout (long-poll dequeues wait on purpose);
    ``bulk`` marks work that grows with the queue (the server runs it under its bulk timeout).
    """

    method: str
    path: str
    params: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    content_type: str = "application/json"
    idempotent: bool = False
    extra_timeout: float = 0.0
    bulk: bool = False


@dataclass(frozen=True, slots=True)
class Response:
    """The parts of an HTTP response that parsing needs."""

    status: int
    body: bytes


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """A request together with the parser of its response."""

    request: Request
    parse: Callable[[Response], T]
    # After a repeat of a request that may have reached the server, the error answer that means
    # the first attempt did its work is turned into the result here (anything else: raised).
    on_repeat: Callable[[APIError], T] | None = None


# ---------------------------------------------------------------------------------------------
# Shared helpers


def _api(path: str) -> str:
    return "/api" + path


def _segment(value: str) -> str:
    """Quote one path segment; ids and names are path-safe, but callers may pass anything."""
    return quote(value, safe="")


def encode_json(value: Any) -> bytes:
    """Compact JSON, the encoding the server uses to measure ``payload_size``."""
    return _json_encoder.encode(value)


def decode_body(response: Response) -> Any:
    """The JSON body of a response, or its text when it is not JSON (a proxy's error page)."""
    if not response.body:
        return None
    try:
        return msgspec.json.decode(response.body)
    except msgspec.DecodeError:
        return response.body.decode("utf-8", "replace")


def raise_for_status(response: Response) -> None:
    """Raise the typed :class:`APIError` of an error response; do nothing on 2xx."""
    if response.status >= 400 or response.status < 200:
        raise error_from_response(response.status, decode_body(response))


def _query(**values: object) -> dict[str, str]:
    """Query parameters without the ``None`` values, booleans spelled ``true``/``false``."""
    params: dict[str, str] = {}
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            params[key] = "true" if value else "false"
        elif isinstance(value, float) and value.is_integer():
            params[key] = str(int(value))
        else:
            params[key] = str(value)
    return params


def _without_none(**values: object) -> dict[str, object]:
    return {key: value for key, value in values.items() if value is not None}


def _decoder(type_: type[T]) -> Callable[[Response], T]:
    """A parser that checks the status, then decodes the body straight into ``type_``."""
    decoder = msgspec.json.Decoder(type_, strict=False)

    def parse(response: Response) -> T:
        raise_for_status(response)
        return decoder.decode(response.body)

    return parse


def _field(name: str, type_: Any) -> Callable[[Response], Any]:
    """A parser for one field of the response object, such as ``queue`` in ``{message, queue}``."""
    # A one-field struct lets msgspec skip the sibling fields instead of building them.
    decoder = msgspec.json.Decoder(msgspec.defstruct("Envelope", [(name, type_)]), strict=False)

    def parse(response: Response) -> Any:
        raise_for_status(response)
        return getattr(decoder.decode(response.body), name)

    return parse


def _ignore(response: Response) -> None:
    raise_for_status(response)


def _message_ref(message: Message | str, lock_token: str | None) -> tuple[str, str | None]:
    """Accept a dequeued :class:`Message` (its own token) or an id plus an explicit token."""
    if isinstance(message, Message):
        return message.id, lock_token if lock_token is not None else message.lock_token
    return message, lock_token


_message_parser = _decoder(Message)
_parse_messages: Callable[[Response], list[Message]] = _field("messages", list[Message])


# ---------------------------------------------------------------------------------------------
# Messages


def enqueue(
    payload: Any,
    *,
    type: str = "",
    queue: str | None = None,
    priority: int | None = None,
    ack_timeout: int | None = None,
    max_attempts: int | None = None,
    delay: float | None = None,
    idempotency_key: str | None = None,
    consumer_id: str | None = None,
) -> Call[EnqueueResult]:
    """Enqueue one message; ``None`` options fall back on the queue's settings.

    Retried after a broken connection only when an ``idempotency_key`` makes a repeat harmless.
    """
    item = EnqueueItem(
        payload=payload,
        type=type,
        queue=queue,
        priority=priority,
        ack_timeout=ack_timeout,
        max_attempts=max_attempts,
        consumer_id=consumer_id,
        delay=delay,
        idempotency_key=idempotency_key,
    )
    request = Request(
        "POST",
        _api("/queue/message"),
        body=encode_json(item.to_wire()),
        idempotent=idempotency_key is not None,
    )
    return Call(request, _decoder(EnqueueResult))


def enqueue_batch(
    messages: Iterable[EnqueueItem | Mapping[str, Any]], *, queue: str | None = None
) -> Call[BatchEnqueueResult]:
    """Enqueue many messages in one all-or-nothing request; ids come back in input order.

    Items are :class:`EnqueueItem` objects or raw API objects (``{"type", "payload", ...}``);
    ``queue`` is the default for items that name none.
    """
    items: list[dict[str, Any]] = []
    for message in messages:
        body = message.to_wire() if isinstance(message, EnqueueItem) else dict(message)
        if queue is not None and not ({"queue", "queueName", "queue_name"} & body.keys()):
            body["queue"] = queue
        items.append(body)
    request = Request("POST", _api("/queue/batch"), body=encode_json(items))
    return Call(request, _decoder(BatchEnqueueResult))


def _parse_dequeue(response: Response) -> Message | None:
    if response.status == 404:
        error = error_from_response(response.status, decode_body(response))
        if error.code == "NO_MESSAGE":
            return None
        raise error
    return _message_parser(response)


def dequeue(
    queue: str | None = None,
    *,
    wait: float = 0,
    type: str | None = None,
    consumer_id: str | None = None,
    ack_timeout: float | None = None,
) -> Call[Message | None]:
    """Lease the next message, or return ``None`` when none arrives within ``wait`` seconds.

    ``wait`` is a server-side long poll: it returns as soon as a message is available.
    """
    params = _query(
        queue=queue, timeout=wait or None, type=type, consumerId=consumer_id, ackTimeout=ack_timeout
    )
    request = Request("GET", _api("/queue/message"), params=params, extra_timeout=max(wait, 0))
    return Call(request, _parse_dequeue)


def dequeue_batch(
    count: int,
    queue: str | None = None,
    *,
    wait: float = 0,
    type: str | None = None,
    consumer_id: str | None = None,
    ack_timeout: float | None = None,
) -> Call[list[Message]]:
    """Lease up to ``count`` (1–1000) messages in one request; an empty list when none arrive.

    A long poll (``wait``) returns as soon as at least one message is available.
    """
    params = _query(
        count=count,
        queue=queue,
        timeout=wait or None,
        type=type,
        consumerId=consumer_id,
        ackTimeout=ack_timeout,
    )
    request = Request("GET", _api("/queue/messages/batch"), params=params, extra_timeout=max(wait, 0))
    return Call(request, _parse_messages)


def ack(message: Message | str, lock_token: str | None = None) -> Call[None]:
    """Acknowledge a leased message; raises :class:`LockLostError` when the lease was lost."""
    message_id, token = _message_ref(message, lock_token)
    body = encode_json(_without_none(id=message_id, lock_token=token))
    # Repeating an ack cannot complete anything twice: the second one answers INVALID_STATE,
    # which after a broken connection means the first one went through.
    return Call(Request("POST", _api("/queue/ack"), body=body, idempotent=True), _ignore, _acked_before)


def _acked_before(error: APIError) -> None:
    """A repeated ack answered "current: acknowledged" (API.md §3): the first attempt landed."""
    if already_acknowledged(error):
        return None
    raise error


def already_acknowledged(error: Exception) -> bool:
    """The answer to an ack of a message that is acknowledged already (API.md §3's wording)."""
    return isinstance(error, InvalidStateError) and "(current: acknowledged)" in error.message


def _ack_items(
    messages: Iterable[Message | tuple[str, str]], reason: str | None = None
) -> list[dict[str, str]]:
    items: list[dict[str, str]] = []
    for message in messages:
        message_id, token = (message.id, message.lock_token) if isinstance(message, Message) else message
        item = {"id": message_id, "lock_token": token or ""}
        if reason is not None:
            item["error"] = reason
        items.append(item)
    return items


def ack_batch(messages: Iterable[Message | tuple[str, str]]) -> Call[AckBatchResult]:
    """Acknowledge up to 1000 messages (or ``(id, lock_token)`` pairs) in one request."""
    body = encode_json({"acks": _ack_items(messages)})
    return Call(
        Request("POST", _api("/queue/ack/batch"), body=body, idempotent=True), _decoder(AckBatchResult)
    )


def nack(
    message: Message | str,
    lock_token: str | None = None,
    *,
    error: str | None = None,
    delay: float | None = None,
) -> Call[NackResult]:
    """Give a message back: requeued while attempts remain, else moved to the dead-letter state.

    Without ``delay`` the queue's retry backoff applies.
    """
    message_id, token = _message_ref(message, lock_token)
    body = encode_json(_without_none(lock_token=token, errorReason=error, delaySeconds=delay))
    path = _api(f"/queue/message/{_segment(message_id)}/nack")
    return Call(Request("POST", path, body=body), _decoder(NackResult))


def nack_batch(
    messages: Iterable[Message | tuple[str, str]], *, error: str | None = None
) -> Call[NackBatchResult]:
    """Nack up to 1000 messages in one request, all with the same ``error`` reason."""
    body = encode_json({"nacks": _ack_items(messages, error)})
    return Call(Request("POST", _api("/queue/nack/batch"), body=body), _decoder(NackBatchResult))


def touch(
    message: Message | str, lock_token: str | None = None, *, extend: float | None = None
) -> Call[TouchResult]:
    """Extend a lease to ``now + extend`` seconds (default: the message's ack timeout)."""
    message_id, token = _message_ref(message, lock_token)
    body = encode_json(_without_none(lock_token=token, extend_seconds=extend))
    path = _api(f"/queue/message/{_segment(message_id)}/touch")
    return Call(Request("PUT", path, body=body, idempotent=True), _decoder(TouchResult))


# ---------------------------------------------------------------------------------------------
# Queues


def create_queue(
    name: str,
    *,
    queue_type: str | None = None,
    ack_timeout: int | None = None,
    max_attempts: int | None = None,
    retry_delay: int | None = None,
    partition_interval: str | None = None,
    retention_interval: str | None = None,
    description: str | None = None,
) -> Call[Queue]:
    """Create a queue; raises :class:`QueueExistsError` when the name is taken."""
    body = _without_none(
        name=name,
        queue_type=queue_type,
        ack_timeout_seconds=ack_timeout,
        max_attempts=max_attempts,
        retry_delay_seconds=retry_delay,
        partition_interval=partition_interval,
        retention_interval=retention_interval,
        description=description,
    )
    return Call(Request("POST", _api("/queues"), body=encode_json(body)), _field("queue", Queue))


def list_queues() -> Call[list[Queue]]:
    """Every queue with its live counts, oldest first."""
    return Call(Request("GET", _api("/queues"), idempotent=True), _field("queues", list[Queue]))


def get_queue(name: str) -> Call[Queue]:
    """One queue; raises :class:`QueueNotFoundError`."""
    return Call(Request("GET", _api(f"/queues/{_segment(name)}"), idempotent=True), _decoder(Queue))


def update_queue(
    name: str,
    *,
    ack_timeout: int | None = None,
    max_attempts: int | None = None,
    retry_delay: int | None = None,
    description: str | None = None,
) -> Call[Queue]:
    """Change a queue's settings; they apply to messages enqueued afterwards."""
    body = _without_none(
        ack_timeout_seconds=ack_timeout,
        max_attempts=max_attempts,
        retry_delay_seconds=retry_delay,
        description=description,
    )
    request = Request("PATCH", _api(f"/queues/{_segment(name)}"), body=encode_json(body), idempotent=True)
    return Call(request, _field("queue", Queue))


# Every action an activity entry can have (API.md §8.3); `lock_stolen` entries carry the action
# that found the stolen lock.
ACTIVITY_ACTIONS = (
    "enqueue", "dequeue", "acknowledge", "nack", "move_to_dlq", "timeout_requeue", "timeout_to_dlq", "touch",
    "move", "delete", "bulk_delete", "clear_queue", "clear_all_queues", "create_queue", "update_queue",
    "rename_queue", "delete_queue", "purge_queue",
)


# Added to the read timeout of the calls whose work grows with the queue (about 2 s per million
# messages): the server runs them under POSTGRES_BULK_STATEMENT_TIMEOUT_MS, an hour by default.
BULK_EXTRA_TIMEOUT = 3600.0


def _bulk(method: str, path: str, **fields: Any) -> Request:
    """A request whose work grows with the queue: waited for an hour longer, and not repeated
    after a slow failure (RetryPolicy)."""
    return Request(method, path, extra_timeout=BULK_EXTRA_TIMEOUT, bulk=True, **fields)


def delete_queue(name: str, *, force: bool = False) -> Call[int]:
    """Delete a queue and its messages; returns how many messages went with it.

    Without ``force`` a queue with queued or processing messages raises :class:`QueueNotEmptyError`.
    """
    request = _bulk("DELETE", _api(f"/queues/{_segment(name)}"), params=_query(force=force))
    return Call(request, _field("deleted_messages", int))


def purge_queue(name: str, *, status: str = "all") -> Call[int]:
    """Delete a queue's messages of one status (or all); returns how many were deleted."""
    body = encode_json({"status": status})
    request = _bulk("POST", _api(f"/queues/{_segment(name)}/purge"), body=body)
    return Call(request, _field("deleted_count", int))


def rename_queue(name: str, new_name: str) -> Call[Queue]:
    """Rename a queue; its messages and history follow it."""
    body = encode_json({"newName": new_name})
    request = _bulk("POST", _api(f"/queues/{_segment(name)}/rename"), body=body)
    return Call(request, _field("queue", Queue))


# ---------------------------------------------------------------------------------------------
# Monitoring and admin


def health() -> Call[dict[str, Any]]:
    """The server's health report (no API key needed); raises on an unhealthy server."""
    return Call(Request("GET", _api("/health"), idempotent=True), _decoder(dict[str, Any]))


def metrics(queue: str | None = None) -> Call[Metrics]:
    """Message counts per status over every queue, or over one."""
    request = Request("GET", _api("/queue/metrics"), params=_query(queueName=queue), idempotent=True)
    return Call(request, _decoder(Metrics))


_STATUS_SECTIONS = {
    "queued": "mainQueue",
    "processing": "processingQueue",
    "acknowledged": "acknowledgedQueue",
    "dead": "deadLetterQueue",
    "archived": "archivedQueue",
}


def _parse_status(response: Response) -> QueueStatus:
    raise_for_status(response)
    raw = msgspec.json.decode(response.body)
    counts = {
        status: int((raw.get(section) or {}).get("length", 0)) for status, section in _STATUS_SECTIONS.items()
    }
    return QueueStatus(
        **counts,
        available_types=list(raw.get("availableTypes") or []),
        priorities={str(k): int(v) for k, v in (raw.get("priorities") or {}).items()},
    )


def queue_status(queue: str | None = None) -> Call[QueueStatus]:
    """Counts per status (including acknowledged) and queued counts per priority."""
    params = _query(queueName=queue, include_messages=False)
    return Call(Request("GET", _api("/queue/status"), params=params, idempotent=True), _parse_status)


def server_config() -> Call[ServerConfig]:
    """The server-wide defaults for new queues."""
    return Call(Request("GET", _api("/queue/config"), idempotent=True), _decoder(ServerConfig))


def activity(
    *,
    queue: str | None = None,
    action: str | Iterable[str] | None = None,
    message_id: str | None = None,
    consumer_id: str | None = None,
    start_time: float | None = None,
    end_time: float | None = None,
    has_anomaly: bool | None = None,
    limit: int | None = None,
    offset: int | None = None,
) -> Call[ActivityPage]:
    """A page of the activity log, newest first."""
    actions = action if action is None or isinstance(action, str) else ",".join(action)
    params = _query(
        queue_name=queue,
        action=actions,
        message_id=message_id,
        consumer_id=consumer_id,
        start_time=start_time,
        end_time=end_time,
        has_anomaly=has_anomaly,
        limit=limit,
        offset=offset,
    )
    return Call(
        Request("GET", _api("/queue/activity"), params=params, idempotent=True), _decoder(ActivityPage)
    )


def export_messages(
    listing: str = "main",
    *,
    queue: str | None = None,
    type: str | None = None,
    search: str | None = None,
) -> Call[list[Message]]:
    """Every message of one status (``main``, ``processing``, ``dead``, ``acknowledged``, ``archived``)."""
    params = _query(queueName=queue, filterType=type, search=search)
    request = _bulk("GET", _api(f"/queue/{_segment(listing)}/export"), params=params, idempotent=True)
    return Call(request, _decoder(list[Message]))


def _parse_count(response: Response) -> int:
    raise_for_status(response)
    return int(msgspec.json.decode(response.body).get("count", 0))


def import_messages(messages: bytes | Iterable[Message | Mapping[str, Any]]) -> Call[int]:
    """Import messages (an exported JSON file's bytes, or objects) as new queued messages.

    Each keeps its queue, type, payload and priority. Returns how many were imported.
    """
    if isinstance(messages, bytes):
        content = messages
    else:
        content = encode_json(
            [msgspec.to_builtins(m) if isinstance(m, Message) else dict(m) for m in messages]
        )
    boundary = "relayq-" + uuid.uuid4().hex
    body = b"".join(
        [
            f"--{boundary}\r\n".encode(),
            b'Content-Disposition: form-data; name="file"; filename="messages.json"\r\n',
            b"Content-Type: application/json\r\n\r\n",
            content,
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    )
    request = Request(
        "POST", _api("/queue/import"), body=body, content_type=f"multipart/form-data; boundary={boundary}"
    )
    return Call(request, _parse_count)


def events_request() -> Request:
    """The request that opens the Server-Sent Events stream (read by the transports).

    The key goes in the X-API-KEY header, as on every request, never in `?apiKey=` (which only
    a browser's EventSource needs): a URL ends up in access logs and proxy logs.
    """
    return Request("GET", _api("/queue/events"), content_type="")


# ---------------------------------------------------------------------------------------------
# Server-Sent Events


class SSEParser:
    """Incremental parser of a ``text/event-stream``: feed bytes, get complete events."""

    def __init__(self) -> None:
        self._buffer = b""
        self._event = "message"
        self._data: list[str] = []
        self._id: str | None = None

    def feed(self, chunk: bytes) -> list[Event]:
        """Parse a chunk of the stream; returns the events it completed."""
        self._buffer += chunk
        events: list[Event] = []
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                return events
            line = self._buffer[:end].rstrip(b"\r").decode("utf-8", "replace")
            self._buffer = self._buffer[end + 1 :]
            event = self._line(line)
            if event is not None:
                events.append(event)

    def _line(self, line: str) -> Event | None:
        if not line:
            if not self._data:
                self._event = "message"
                return None
            text = "\n".join(self._data)
            try:
                data: Any = msgspec.json.decode(text)
            except msgspec.DecodeError:
                data = text
            event = Event(event=self._event, data=data, id=self._id)
            self._event, self._data = "message", []
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            self._id = value
        return None


# ---------------------------------------------------------------------------------------------
# Retries


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how long to wait before repeating a failed request.

    A request that never reached the server (connection refused) is always safe to repeat, and
    so is one the server answered with ``DATABASE_UNAVAILABLE`` (it changed nothing). A request
    whose connection broke after sending is repeated only when it is idempotent.
    """

    attempts: int = 4
    backoff: float = 0.1
    max_backoff: float = 2.0
    slow_failure: float = 60.0

    def delay(
        self, request: Request, attempt: int, *, sent: bool, error: Exception | None = None, elapsed: float = 0.0
    ) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or ``None`` to give up.

        ``sent`` tells whether the request may have reached the server; ``error`` is the API
        error it answered with, if any; ``elapsed`` how long the failed attempt took.
        """
        if attempt >= self.attempts or (request.bulk and elapsed > self.slow_failure):
            return None
        if isinstance(error, APIError):
            if not isinstance(error, DatabaseUnavailableError):
                return None
        elif sent and not request.idempotent:
            return None
        # Full jitter keeps a crowd of workers from reconnecting in lockstep after an outage.
        ceiling = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)


class TransportError(Exception):
    """A request failed below HTTP. ``sent`` tells whether it may have reached the server."""

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


def may_have_landed(error: Exception) -> bool:
    """Whether a failed attempt may have reached the server (and done its work)."""
    return isinstance(error, TransportError) and error.sent


def next_delay(policy: RetryPolicy, request: Request, attempt: int, error: Exception, elapsed: float = 0.0) -> float:
    """The pause before retrying after ``error`` (which took ``elapsed`` seconds); re-raises (as a
    :class:`RelayError`) to give up."""
    if isinstance(error, TransportError):
        delay = policy.delay(request, attempt, sent=error.sent, elapsed=elapsed)
        if delay is None:
            raise RelayConnectionError(f"{request.method} {request.path}: {error}") from error
        return delay
    delay = policy.delay(request, attempt, sent=True, error=error, elapsed=elapsed)
    if delay is None:
        raise error
    return delay


# ---------------------------------------------------------------------------------------------
# Connection settings shared by both clients

DEFAULT_URL = "http://127.0.0.1:3001"


def resolve_base_url(url: str | None) -> str:
    """The server's root URL: the argument, else ``RELAY_URL``, else the local default.

    A trailing ``/api`` is dropped, so both ``http://host:3001`` and ``http://host:3001/api`` work.
    """
    url = url or os.environ.get("RELAY_URL") or DEFAULT_URL
    url = url.rstrip("/")
    if "://" not in url:
        url = "http://" + url
    return url.removesuffix("/api")


def resolve_api_key(api_key: str | None) -> str | None:
    """The API key: the argument, else ``RELAY_API_KEY``; empty means none."""
    key = api_key if api_key is not None else os.environ.get("RELAY_API_KEY")
    return key or None


def request_headers(request: Request, api_key: str | None) -> dict[str, str]:
    """The headers of a request: content type, API key and a user agent."""
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if request.body is not None and request.content_type:
        headers["Content-Type"] = request.content_type
    if api_key:
        headers["X-API-KEY"] = api_key
    return headers


USER_AGENT = "relayq-python"
