"""Producer and worker endpoints (API.md §3): enqueue, dequeue, ack, nack, touch."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from relayq.api.http import endpoint, ok, read_body, read_json
from relayq.api.validation import INT32_MAX, Field, parse_fields, parse_query, require_object
from relayq.domain.errors import RelayError
from relayq.domain.messages import message_to_wire
from relayq.runtime import Relay
from relayq.services.messages import MAX_DELAY_SECONDS, MAX_KEY_CHARS, NewMessage, Settled

# A lease given in seconds at dequeue or touch has the bound of the integer lease settings (68
# years): beyond year 9999 its deadline could be stored but not written back as a date.
MAX_LEASE_SECONDS = INT32_MAX

ENQUEUE_FIELDS = (
    Field("type", "str", required=True, max_length=MAX_KEY_CHARS, doc="free-form type used for filtering"),
    Field("payload", "any", required=True, nullable=True, doc="any JSON value"),
    Field("priority", "int", default=0, minimum=0, maximum=9),
    Field("ackTimeout", "int", minimum=0, aliases=("ack_timeout", "ack_timeout_seconds"),
          doc="lease seconds; 0 or absent: the queue's"),
    Field("maxAttempts", "int", minimum=1, aliases=("max_attempts",)),
    Field("queue", "str", default="default", aliases=("queueName", "queue_name")),
    Field("consumerId", "str", max_length=MAX_KEY_CHARS, aliases=("consumer_id",)),
    Field("delaySeconds", "number", default=0, minimum=0, maximum=MAX_DELAY_SECONDS, aliases=("delay_seconds",)),
    Field("idempotencyKey", "str", min_length=1, max_length=255, aliases=("idempotency_key",)),
)

DEQUEUE_QUERY = (
    Field("queue", "str", default="default", aliases=("queueName", "queue_name")),
    Field("type", "str"),
    Field("consumerId", "str", max_length=MAX_KEY_CHARS, aliases=("consumer_id",)),
    Field("timeout", "number", default=0, doc="long-poll seconds"),
    Field("ackTimeout", "number", minimum=0, maximum=MAX_LEASE_SECONDS, aliases=("ack_timeout", "ack_timeout_seconds"),
          doc="lease override in seconds; 0 means none"),
)

ACK_FIELDS = (Field("id", "str", required=True), Field("lock_token", "str"))
ACK_ITEM_FIELDS = (Field("id", "str", required=True), Field("lock_token", "str", required=True))
# A nack's reason is kept up to this many characters (more is cut, with a marker). Refusing a
# long one would leave its message to the lease's expiry; keeping it whole let one 40 MB stack
# trace make every listing and activity page of its queue 40 MB.
MAX_ERROR_REASON = 10_000
TRUNCATED = " [truncated]"


def error_reason(text: str | None) -> str | None:
    """A nack's reason as stored: at most MAX_ERROR_REASON characters."""
    if text is None or len(text) <= MAX_ERROR_REASON:
        return text
    return text[: MAX_ERROR_REASON - len(TRUNCATED)] + TRUNCATED


NACK_FIELDS = (
    Field("lock_token", "str"),
    Field("errorReason", "str", aliases=("error", "error_reason"),
          doc=f"becomes last_error; cut to {MAX_ERROR_REASON:,} characters"),
    Field("delaySeconds", "number", minimum=0, maximum=2_592_000, aliases=("delay_seconds",)),
)
NACK_ITEM_FIELDS = (
    Field("id", "str", required=True),
    Field("lock_token", "str", required=True),
    Field("error", "str", aliases=("errorReason", "error_reason"),
          doc=f"becomes last_error; cut to {MAX_ERROR_REASON:,} characters"),
    Field("delaySeconds", "number", minimum=0, maximum=2_592_000, aliases=("delay_seconds",)),
)
TOUCH_FIELDS = (
    Field("lock_token", "str", required=True),
    Field("extend_seconds", "number", minimum=0, exclusive_minimum=True, maximum=MAX_LEASE_SECONDS),
)

T = TypeVar("T")

ITEM_ERRORS = {
    "NOT_FOUND": "Message not found",
    "DUPLICATE": "Duplicate id in batch",
}


def relay(request: Request) -> Relay:
    """The service container of the running app."""
    r: Relay = request.app.state.relay
    return r


def _new_message(relay_: Relay, raw: Any, prefix: str) -> NewMessage:
    values = parse_fields(ENQUEUE_FIELDS, require_object(raw, prefix.rstrip(".") or "body"), prefix=prefix)
    encoded = msgspec.json.encode(values["payload"])
    if len(encoded) > relay_.settings.max_payload_bytes:
        raise RelayError(413, "PAYLOAD_TOO_LARGE",
                         f"payload is {len(encoded)} bytes; the limit is {relay_.settings.max_payload_bytes}")
    return NewMessage(
        queue=values["queue"], type=values["type"], payload=msgspec.Raw(encoded),
        priority=values["priority"], ack_timeout=values["ackTimeout"] or None, max_attempts=values["maxAttempts"],
        delay=float(values["delaySeconds"]), idempotency_key=values["idempotencyKey"],
        consumer_id=values["consumerId"],
    )


# The fast path decodes a body straight into NewMessage structs (C code, no per-field Python).
# It accepts only bodies whose meaning is certain to be the same as the field-by-field path's:
# API.md's own spellings and no other key (the structs forbid unknown fields, so an alias or a
# stray key sends the body the slow way), no escaped NUL, valid UTF-8, no number that could be
# out of float range, payloads under the size limit. Anything else, including every invalid
# body, takes the slow path, which owns the error messages.
class _Message(NewMessage, forbid_unknown_fields=True):
    pass


_ONE = msgspec.json.Decoder(_Message)
_MANY = msgspec.json.Decoder(list[_Message])


class _Wrapped(msgspec.Struct, forbid_unknown_fields=True):
    messages: list[_Message]


_WRAPPED = msgspec.json.Decoder(_Wrapped)

# Every digit becomes "0" and "E" becomes "e", so that number shapes are found by plain
# substring search (C speed) rather than a regular expression (10x slower on a 7 KB batch).
_NUMBER_SHAPES = bytes.maketrans(b"123456789E", b"000000000e")
# A number is out of float range only with an exponent of three digits or more, or with at
# least 209 digits before its point (a two-digit exponent keeps fewer below 1e308; 200 here).
# Payloads are not parsed by the one-pass decoder, so these shapes, also when they merely look
# like one inside a string, go the slow way, whose parse refuses non-finite numbers. So do
# negative exponents of five digits or more: kept as written, `1e-16384` is beyond what
# PostgreSQL's jsonb holds (16,383 digits after the point), and the activity log, read as jsonb,
# answered 400 to every page that held its entry; parsed, it is the float it rounds to (0.0),
# as an edit already stored it. (Four digits and under 200 more keep well within that.)
_HUGE_NUMBER_SHAPES = (b"0e000", b"0e+000", b"0e-00000", b"0" * 200)


def _fast_decode(raw: bytes, decode: Callable[[bytes], T]) -> T | None:
    """`decode(raw)` when the one-pass decoder's meaning is certain to match the field checks'."""
    if b"\\u0000" in raw:
        return None
    shapes = raw.translate(_NUMBER_SHAPES)
    if any(shape in shapes for shape in _HUGE_NUMBER_SHAPES):
        return None
    try:
        raw.decode()  # the slow path refuses invalid UTF-8 anywhere, payloads included
        return decode(raw)
    except (UnicodeDecodeError, msgspec.DecodeError, RecursionError):
        return None


_WHITESPACE = (b" ", b"\n", b"\r", b"\t")


def _decode_messages(raw: bytes, many: bool) -> Sequence[NewMessage]:
    # Payloads are stored compact; most bodies already are (a space inside a string is enough
    # to reformat, which is merely slower).
    body = msgspec.json.format(raw, indent=-1) if any(c in raw for c in _WHITESPACE) else raw
    if not many:
        return [_ONE.decode(body)]
    return _WRAPPED.decode(body).messages if body[:1] == b"{" else _MANY.decode(body)


def _fast_messages(relay_: Relay, raw: bytes, *, many: bool) -> Sequence[NewMessage] | None:
    items = _fast_decode(raw, lambda body: _decode_messages(body, many))
    if items is None or len(items) > relay_.settings.max_batch_size:
        return None
    if items and max(len(item.payload) for item in items) > relay_.settings.max_payload_bytes:
        return None  # the slow path measures exactly (escapes may shrink) and words the 413
    return items


@endpoint("POST", "/queue/message", summary="Enqueue one message", tag="messages", body=ENQUEUE_FIELDS,
          responses={201: "stored", 200: "duplicate idempotency key", 404: "QUEUE_NOT_FOUND", 413: "PAYLOAD_TOO_LARGE"})
async def enqueue(request: Request) -> Response:
    r = relay(request)
    raw = await request.body()
    fast = _fast_messages(r, raw, many=False)
    item = fast[0] if fast else _new_message(r, read_body(raw), "")
    (result,) = await r.messages.enqueue([item])
    if result.duplicate:
        return ok({"message": "Duplicate message ignored", "id": result.id, "queue": result.queue, "duplicate": True})
    return ok({"message": "Message added successfully", "id": result.id, "queue": result.queue}, 201)


@endpoint("POST", "/queue/batch", summary="Enqueue many messages (all or nothing)", tag="messages",
          body=ENQUEUE_FIELDS, body_kind="array", responses={201: "stored", 404: "QUEUE_NOT_FOUND"})
async def enqueue_batch(request: Request) -> Response:
    r = relay(request)
    raw = await request.body()
    items: Sequence[NewMessage] | None = _fast_messages(r, raw, many=True)
    if items is None:
        items = _parse_batch(r, read_body(raw))
    results = await r.messages.enqueue(items, batch=True) if items else []
    stored = sum(not x.duplicate for x in results)  # duplicates reuse an existing id, store nothing
    return ok({"message": f"Batch processed: {stored}/{len(items)} messages enqueued",
               "count": len(results), "ids": [x.id for x in results]}, 201)


def _parse_batch(r: Relay, body: Any) -> list[NewMessage]:
    if isinstance(body, dict) and isinstance(body.get("messages"), list):
        body = body["messages"]
    if not isinstance(body, list):
        raise RelayError(400, "VALIDATION_ERROR", "Body must be an array of messages",
                         details=[{"field": "", "message": "must be an array"}])
    if len(body) > r.settings.max_batch_size:
        raise RelayError(400, "VALIDATION_ERROR", f"Batch too large: at most {r.settings.max_batch_size} messages",
                         details=[{"field": "", "message": f"at most {r.settings.max_batch_size} items"}])
    return [_new_message(r, raw, f"{index}.") for index, raw in enumerate(body)]


def _dequeue_args(request: Request) -> dict[str, Any]:
    params = parse_query(DEQUEUE_QUERY, request.query_params)
    return {
        "queue": params["queue"], "wait": max(float(params["timeout"]), 0.0),
        "ack_timeout": float(params["ackTimeout"]) if params["ackTimeout"] else None,
        "consumer_id": params["consumerId"], "type_filter": params["type"],
    }


async def _dequeue(request: Request, count: int, *, batch: bool) -> list[Mapping[str, Any]]:
    """Dequeue; a long-poll stops waiting once its client has disconnected, so a message that
    arrives later is not leased to nobody (it would come back only at lease expiry, an attempt spent)."""
    args = _dequeue_args(request)
    if args["wait"] <= 0:
        return await relay(request).messages.dequeue(count=count, batch=batch, **args)
    gone = asyncio.Event()
    watcher = asyncio.ensure_future(_note_disconnect(request, gone))
    try:
        return await relay(request).messages.dequeue(count=count, batch=batch, abandoned=gone, **args)
    finally:
        watcher.cancel()


async def _note_disconnect(request: Request, gone: asyncio.Event) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass  # the (empty) body of the GET
    gone.set()


NO_HEAD = "`HEAD` gets 404 ROUTE_NOT_FOUND here: a probe must not lease a message and drop it with the body."


@endpoint("GET", "/queue/message", summary="Dequeue one message (lease)", tag="messages", query=DEQUEUE_QUERY,
          responses={200: "the leased message", 404: "NO_MESSAGE or QUEUE_NOT_FOUND"}, head=False,
          description=NO_HEAD)
async def dequeue(request: Request) -> Response:
    rows = await _dequeue(request, 1, batch=False)
    if not rows:
        raise RelayError(404, "NO_MESSAGE", "Message not found")
    return ok(message_to_wire(rows[0]))


BATCH_DEQUEUE_QUERY = (*DEQUEUE_QUERY, Field("count", "int", required=True, minimum=1, maximum=1000))


@endpoint("GET", "/queue/messages/batch", summary="Dequeue up to `count` messages in one statement",
          tag="messages", query=BATCH_DEQUEUE_QUERY, head=False, description=NO_HEAD,
          responses={200: "the leased messages (possibly none)", 404: "QUEUE_NOT_FOUND"})
async def dequeue_batch(request: Request) -> Response:
    count = parse_query(BATCH_DEQUEUE_QUERY[-1:], request.query_params)["count"]
    rows = await _dequeue(request, count, batch=True)
    return ok({"messages": [message_to_wire(row) for row in rows], "count": len(rows)})


def _require_token(r: Relay, token: str | None, path: str) -> None:
    if token is None and r.settings.require_lock_token:
        raise RelayError(400, "VALIDATION_ERROR", f"{path} is required",
                         details=[{"field": path, "message": "is required (REQUIRE_LOCK_TOKEN)"}])


@endpoint("POST", "/queue/ack", summary="Acknowledge a leased message", tag="messages", body=ACK_FIELDS,
          responses={200: "acknowledged", 400: "NOT_FOUND / INVALID_STATE", 409: "LOCK_LOST"})
async def ack(request: Request) -> Response:
    r = relay(request)
    values = parse_fields(ACK_FIELDS, require_object(await read_json(request)))
    _require_token(r, values["lock_token"], "lock_token")
    settled = await r.messages.ack([(values["id"], values["lock_token"])])
    _raise_failure(settled, 400, "Lock lost - lock_token mismatch. The message was re-queued and picked up by "
                   "another worker.")
    return ok({"message": "Message acknowledged"})


def _raise_failure(settled: Settled, state_status: int, lost_text: str) -> None:
    """A single ack/nack that did not apply: the original's status codes (400 for ack, 404 for nack)."""
    if not settled.failures:
        return
    failure = settled.failures[0]
    if failure.code == "NOT_FOUND":
        raise RelayError(state_status, "NOT_FOUND", "Message not found")
    if failure.code == "INVALID_STATE":
        raise RelayError(state_status, "INVALID_STATE", f"Message is not in processing state (current: {failure.status})")
    raise RelayError(409, "LOCK_LOST", lost_text, error="LOCK_LOST")


def _batch_items(body: Any, key: str, fields: tuple[Field, ...]) -> list[dict[str, Any]]:
    obj = require_object(body)
    items = obj.get(key)
    if not isinstance(items, list) or not 1 <= len(items) <= 1000:
        raise RelayError(400, "VALIDATION_ERROR", f"{key} must be an array of 1 to 1000 items",
                         details=[{"field": key, "message": "must be an array of 1 to 1000 items"}])
    return [parse_fields(fields, require_object(item, f"{key}.{i}"), prefix=f"{key}.{i}.") for i, item in enumerate(items)]


def _failure_body(failure: Any, lost_text: str) -> dict[str, str]:
    if failure.code == "INVALID_STATE":
        text = f"Message is not in processing state (current: {failure.status})"
    elif failure.code == "LOCK_LOST":
        text = lost_text
    else:
        text = ITEM_ERRORS[failure.code]
    return {"id": failure.id, "error": text, "code": failure.code}


class _AckItem(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    lock_token: str


class _AckBody(msgspec.Struct, forbid_unknown_fields=True):
    acks: Annotated[list[_AckItem], msgspec.Meta(min_length=1, max_length=1000)]


_ACKS = msgspec.json.Decoder(_AckBody)


@endpoint("POST", "/queue/ack/batch", summary="Acknowledge up to 1000 messages", tag="messages",
          body=(Field("acks", "array", required=True, min_length=1, max_length=1000, items=ACK_ITEM_FIELDS),),
          responses={200: "settled, per item"})
async def ack_batch(request: Request) -> Response:
    raw = await request.body()
    fast = _fast_decode(raw, _ACKS.decode)
    if fast is not None:
        pairs = [(item.id, item.lock_token) for item in fast.acks]
    else:
        pairs = [(i["id"], i["lock_token"]) for i in _batch_items(read_body(raw), "acks", ACK_ITEM_FIELDS)]
    settled = await relay(request).messages.ack(pairs, batch=True)
    failed = [_failure_body(f, "Lock token mismatch - message may have been requeued") for f in settled.failures]
    return ok({"message": f"Acknowledged {len(settled.rows)} messages, {len(failed)} failed",
               "succeeded": [row["id"] for row in settled.rows], "failed": failed})


@endpoint("POST", "/queue/message/{id}/nack", summary="Negative-acknowledge: requeue or dead-letter",
          tag="messages", body=NACK_FIELDS, responses={200: "nacked", 404: "NOT_FOUND / INVALID_STATE", 409: "LOCK_LOST"})
async def nack(request: Request) -> Response:
    r = relay(request)
    body = await read_json(request, optional=True)
    values = parse_fields(NACK_FIELDS, require_object(body if body is not None else {}))
    _require_token(r, values["lock_token"], "lock_token")
    message_id = request.path_params["id"]
    settled = await r.messages.nack([(message_id, values["lock_token"], error_reason(values["errorReason"]),
                                      values["delaySeconds"])])
    _raise_failure(settled, 404, "Lock lost")
    dead = settled.rows[0]["status"] == "dead"
    return ok({"message": "Message nacked successfully", "requeued": not dead, "movedToDlq": dead})


@endpoint("POST", "/queue/nack/batch", summary="Negative-acknowledge up to 1000 messages", tag="messages",
          body=(Field("nacks", "array", required=True, min_length=1, max_length=1000, items=NACK_ITEM_FIELDS),),
          responses={200: "settled, per item"})
async def nack_batch(request: Request) -> Response:
    items = _batch_items(await read_json(request), "nacks", NACK_ITEM_FIELDS)
    settled = await relay(request).messages.nack(
        [(i["id"], i["lock_token"], error_reason(i["error"]), i["delaySeconds"]) for i in items], batch=True
    )
    requeued = [row["id"] for row in settled.rows if row["status"] != "dead"]
    dead = [row["id"] for row in settled.rows if row["status"] == "dead"]
    failed = [_failure_body(f, "Lock token mismatch") for f in settled.failures]
    return ok({"message": f"NACKed {len(settled.rows)} messages, {len(failed)} failed",
               "succeeded": requeued + dead, "failed": failed, "requeued": requeued, "movedToDlq": dead})


@endpoint("PUT", "/queue/message/{id}/touch", summary="Extend a lease (heartbeat)", tag="messages",
          body=TOUCH_FIELDS, responses={200: "extended", 404: "NOT_FOUND", 409: "LOCK_LOST"})
async def touch(request: Request) -> Response:
    body = await read_json(request, optional=True)
    values = parse_fields(TOUCH_FIELDS, require_object(body if body is not None else {}))
    row = await relay(request).messages.touch(request.path_params["id"], values["lock_token"], values["extend_seconds"])
    extended = values["extend_seconds"] if values["extend_seconds"] is not None else row["ack_timeout_seconds"]
    return ok({"message": "Lock extended successfully", "new_timeout_at": int(row["new_locked_until"]),
               "lock_token": row["lock_token"], "extended_by": extended})

