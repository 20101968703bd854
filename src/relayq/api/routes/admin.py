"""Dashboard and admin endpoints (API.md §5)."""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import IO, Any

import msgspec
from starlette.background import BackgroundTask
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from relayq.api.http import decode_json, encode_json, endpoint, ok, read_json, unless_disconnected
from relayq.api.routes.messages import relay
from relayq.api.validation import (
    Field,
    count_bound,
    parse_fields,
    parse_query,
    require_object,
    require_storable,
)
from relayq.domain.errors import RelayError
from relayq.domain.messages import STATUS_BY_QUEUE_TYPE, message_to_wire
from relayq.services.admin import SORT_COLUMNS, MessageFilter
from relayq.services.messages import MAX_KEY_CHARS, NewMessage

QUEUE_TYPES = tuple(STATUS_BY_QUEUE_TYPE)
# An export is built in memory up to this size, then in a temporary file; sent in these pieces.
EXPORT_SPOOL_BYTES = 8 * 1024 * 1024
EXPORT_CHUNK_BYTES = 256 * 1024
FILTER_QUERY = (
    Field("queueName", "str", aliases=("queue", "queue_name")),
    Field("sortBy", "choice", default="created_at", choices=tuple(SORT_COLUMNS)),
    Field("sortOrder", "choice", default="desc", choices=("asc", "desc")),
    Field("filterType", "str", aliases=("type",), doc="a type or comma list; 'all' means any"),
    Field("filterPriority", "int"),
    Field("filterAttempts", "int"),
    Field("startDate", "timestamp"),
    Field("endDate", "timestamp"),
    Field("search", "str"),
)
PAGE_QUERY = (
    Field("page", "int", default=1, minimum=1),
    Field("limit", "int", default=100, minimum=1, maximum=1000, clamp_max=True),
    Field("maxCount", "int", minimum=1, doc="new: with a filter beyond queueName, count at most this many matches "
          "(the dashboard sends 10000); more are reported as this number with totalExact false"),
)
RANGE_QUERY = (
    Field("startTimestamp", "timestamp", required=True),
    Field("endTimestamp", "timestamp", required=True),
    Field("limit", "int", default=100, minimum=1, maximum=1000),
    Field("queueName", "str", aliases=("queue", "queue_name")),
)


def queue_type_status(value: str | None, allowed: tuple[str, ...] = QUEUE_TYPES) -> str:
    """Map a dashboard queueType (main, processing, ...) to a status; 400 otherwise."""
    if value is None or value not in allowed:
        raise RelayError(400, "VALIDATION_ERROR", "queueType must be one of " + ", ".join(allowed),
                         details=[{"field": "queueType", "message": "must be one of " + ", ".join(allowed)}])
    return STATUS_BY_QUEUE_TYPE[value]


def _filter(request: Request, status: str) -> tuple[MessageFilter, dict[str, Any]]:
    params = parse_query(FILTER_QUERY, request.query_params)
    types = None
    if params["filterType"] and params["filterType"] != "all":
        types = [t.strip() for t in params["filterType"].split(",") if t.strip()] or None
    flt = MessageFilter(
        status=status, queue=params["queueName"], types=types, priority=params["filterPriority"],
        min_attempts=params["filterAttempts"], created_from=params["startDate"], created_to=params["endDate"],
        search=params["search"] or None,
    )
    return flt, params


@endpoint("GET", "/queue/{queueType}/messages", summary="Paginated, filtered, sorted message listing",
          tag="admin", query=FILTER_QUERY + PAGE_QUERY,
          description="`pagination.total` is exact: from the counters when only `queueName` filters, else "
                      "counted. With `maxCount` (new) and such a filter, at most that many matches are counted "
                      "(or up to the end of the page asked for, if further); a larger count is given as that "
                      "bound with `totalExact: false` and `hasMore: true`. `totalExact` is new.")
async def list_messages(request: Request) -> Response:
    status = queue_type_status(request.path_params["queueType"])
    flt, params = _filter(request, status)
    page = parse_query(PAGE_QUERY, request.query_params)
    limit, number = page["limit"], page["page"]
    offset = (number - 1) * limit
    rows, total, exact = await relay(request).admin.page(
        flt, params["sortBy"], params["sortOrder"], limit, offset, count_bound(page["maxCount"], offset + limit))
    pages = (total + limit - 1) // limit
    return ok({"messages": [message_to_wire(r) for r in rows],
               "pagination": {"total": total, "page": number, "limit": limit, "totalPages": pages,
                              "hasMore": number < pages or not exact, "totalExact": exact}})


@endpoint("GET", "/queue/{queueType}/export", summary="Download matching messages as a JSON file", tag="admin",
          query=FILTER_QUERY)
async def export_messages(request: Request) -> Response:
    """The file is written to a spool (memory up to EXPORT_SPOOL_BYTES, then a temporary file)
    chunk by chunk from a cursor, then sent: the whole export never sits in memory (300,000
    messages took 640 MB as one list), and the read transaction ends before a slow client
    downloads, so it holds no snapshot back from vacuum meanwhile."""
    queue_type = request.path_params["queueType"]
    flt, params = _filter(request, queue_type_status(queue_type))
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H-%M-%S")  # when the export was asked for
    spool = tempfile.SpooledTemporaryFile(max_size=EXPORT_SPOOL_BYTES)  # closed after the response, or below
    try:
        written = await unless_disconnected(request, _write_export(request, flt, params, spool))
    except BaseException:
        spool.close()
        raise
    if written is None:  # the client went away: nobody reads this answer
        spool.close()
        return Response(status_code=499)
    size = spool.tell()
    spool.seek(0)
    # Starlette does not close a streaming body when the client goes away mid-download; the
    # background task runs after the response either way.
    return StreamingResponse(_send(spool), media_type="application/json", background=BackgroundTask(spool.close),
                             headers={"Content-Disposition": f'attachment; filename="{queue_type}-queue-export-{stamp}.json"',
                                      "Content-Length": str(size)})


async def _write_export(request: Request, flt: MessageFilter, params: dict[str, Any], spool: IO[bytes]) -> bool:
    """Write the matching messages to `spool` as a JSON array, one cursor chunk at a time."""
    chunks = relay(request).admin.iter_messages(flt, params["sortBy"], params["sortOrder"])
    try:
        first = True
        spool.write(b"[")
        async for rows in chunks:
            for row in rows:
                # Each message as msgspec.json.format(list, indent=2) would print it inside the array.
                item = msgspec.json.format(encode_json(message_to_wire(row)), indent=2).replace(b"\n", b"\n  ")
                spool.write((b"\n  " if first else b",\n  ") + item)
                first = False
        spool.write(b"]" if first else b"\n]")
    finally:
        await chunks.aclose()  # ends its read transaction now, whatever stopped the loop
    return True


async def _send(spool: IO[bytes]) -> AsyncIterator[bytes]:
    while chunk := spool.read(EXPORT_CHUNK_BYTES):
        yield chunk


IMPORT_FIELDS = (
    Field("type", "str", default="default", max_length=MAX_KEY_CHARS),
    Field("payload", "any", default={}, nullable=True),  # absent: {}; null is a payload (API.md)
    Field("queue", "str", default="default", aliases=("queue_name", "queueName")),
    Field("priority", "int", default=0, minimum=0, maximum=9),
    Field("ackTimeout", "int", minimum=0, aliases=("ack_timeout_seconds", "ack_timeout", "custom_ack_timeout")),
    Field("maxAttempts", "int", minimum=1, aliases=("max_attempts", "custom_max_attempts")),
)


@endpoint("POST", "/queue/import", summary="Import messages from an uploaded JSON file (multipart `file`)",
          tag="admin", body_kind="multipart",
          responses={200: "imported", 400: "VALIDATION_ERROR / INVALID_JSON", 404: "QUEUE_NOT_FOUND",
                     413: "PAYLOAD_TOO_LARGE"})
async def import_messages(request: Request) -> Response:
    r = relay(request)
    try:
        form = await request.form(max_part_size=r.settings.max_request_bytes)
    except Exception:
        raise RelayError(400, "VALIDATION_ERROR", "No file uploaded or invalid file") from None
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise RelayError(400, "VALIDATION_ERROR", "No file uploaded or invalid file")
    raw = await upload.read()
    if _more_items_than(raw, r.settings.max_batch_size):
        raise _too_many(r.settings.max_batch_size)
    try:
        data = decode_json(raw)
    except RelayError:
        raise RelayError(400, "INVALID_JSON", "Invalid JSON content") from None
    items_raw = data if isinstance(data, list) else [data]
    if len(items_raw) > r.settings.max_batch_size:  # (a file _more_items_than could not read)
        raise _too_many(r.settings.max_batch_size)
    items: list[NewMessage] = []
    for index, item in enumerate(items_raw):
        values = parse_fields(IMPORT_FIELDS, require_object(item, str(index)), prefix=f"{index}.")
        encoded = msgspec.json.encode(values["payload"])
        if len(encoded) > r.settings.max_payload_bytes:
            raise RelayError(413, "PAYLOAD_TOO_LARGE", f"{index}.payload exceeds MAX_PAYLOAD_BYTES")
        items.append(NewMessage(
            queue=values["queue"], type=values["type"], payload=msgspec.Raw(encoded), priority=values["priority"],
            ack_timeout=values["ackTimeout"] or None,
            max_attempts=values["maxAttempts"],
        ))
    results = await r.messages.enqueue(items, batch=True) if items else []
    return ok({"message": f"Imported {len(results)} messages successfully", "count": len(results)})


def _too_many(limit: int, field: str = "file", per: str = "import") -> RelayError:
    return RelayError(400, "VALIDATION_ERROR", f"Too many messages: at most {limit} per {per}",
                      details=[{"field": field, "message": f"at most {limit} items"}])


def _ids_within(request: Request, items: list[Any], field: str) -> list[Any]:
    """`items`, at most MAX_BATCH_SIZE of them, as for a batch enqueue: a move of 600,000 ids ran
    16 s in one statement, and one change that large does not fit the activity buffer, so none
    of its `move` entries were written."""
    limit = relay(request).settings.max_batch_size
    if len(items) > limit:
        raise _too_many(limit, field, "request")
    return items


_JSON_SPACE = re.compile(r"[ \t\n\r]*")


def _more_items_than(raw: bytes, limit: int) -> bool:
    """Whether the file is a JSON array of more than `limit` items, read one item at a time and
    only up to item `limit` + 1: decoding the whole file first (as for POST /queue/batch) turned
    a 64 MiB file of `{}` items into 20 million objects, about 1.5 GB, before it was refused.
    Anything it cannot read is left to the full decoder, which says what is wrong."""
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        return False
    decoder = json.JSONDecoder()
    at = _JSON_SPACE.match(text, 0).end()  # type: ignore[union-attr]  # matches the empty string
    if not text.startswith("[", at):
        return False
    at = _JSON_SPACE.match(text, at + 1).end()  # type: ignore[union-attr]
    if text.startswith("]", at):
        return False
    for count in range(1, limit + 2):
        try:
            _, at = decoder.raw_decode(text, at)
        except (ValueError, RecursionError):
            return False
        if count > limit:
            return True
        at = _JSON_SPACE.match(text, at).end()  # type: ignore[union-attr]
        if not text.startswith(",", at):
            return False
        at = _JSON_SPACE.match(text, at + 1).end()  # type: ignore[union-attr]
    return False


MOVE_FIELDS = (
    Field("messages", "array", aliases=("messageIds",), required=True,
          doc="message ids, or objects with an `id`; at most `MAX_BATCH_SIZE` (10,000)"),
    Field("fromQueue", "choice", required=True, choices=QUEUE_TYPES),
    Field("toQueue", "choice", required=True, choices=QUEUE_TYPES),
    Field("errorReason", "str", max_length=2000, aliases=("error_reason",)),
)


def _ids(items: list[Any], field: str) -> list[str]:
    ids: list[str] = []
    for index, item in enumerate(items):
        value = item.get("id") if isinstance(item, dict) else item
        if not isinstance(value, str):
            raise RelayError(400, "VALIDATION_ERROR", f"{field}.{index} must be an id or an object with an id",
                             details=[{"field": f"{field}.{index}", "message": "must be an id"}])
        ids.append(require_storable(value, f"{field}.{index}"))
    return ids


MOVE_DOC = ("Only messages currently in `fromQueue` move (`movedCount` says how many). Every move but into "
            "`processing` ends any lease (`lock_token` and `locked_until` cleared). Into `main`: consumer, "
            "`dequeued_at` and `acknowledged_at` cleared, available now. Into `processing`: a new `lock_token`, "
            "a lease of the message's ack timeout, consumer `user-manual-operation`, one attempt counted, "
            "`acknowledged_at` cleared. Into `acknowledged`: `acknowledged_at` is now. Into `dead` or `archived`: "
            "the other fields are kept. `errorReason`, when given, becomes `last_error`.")


@endpoint("POST", "/queue/move", summary="Move messages between statuses", tag="admin", body=MOVE_FIELDS,
          description=MOVE_DOC, responses={200: "moved (possibly none)"})
async def move_messages(request: Request) -> Response:
    values = parse_fields(MOVE_FIELDS, require_object(await read_json(request)))
    if values["fromQueue"] == values["toQueue"]:
        raise RelayError(400, "VALIDATION_ERROR", "fromQueue and toQueue must differ",
                         details=[{"field": "toQueue", "message": "must differ from fromQueue"}])
    ids = _ids(_ids_within(request, values["messages"], "messages"), "messages")
    moved = await relay(request).admin.move(
        ids, STATUS_BY_QUEUE_TYPE[values["fromQueue"]], STATUS_BY_QUEUE_TYPE[values["toQueue"]], values["errorReason"]
    ) if ids else 0
    return ok({"message": f"{moved} messages moved successfully", "movedCount": moved})


EDITABLE_QUEUE_TYPES = ("main", "processing", "dead")


def _queue_type_param(allowed: tuple[str, ...], note: str = "") -> tuple[Field]:
    """`queueType` of the delete and edit endpoints: required (API.md §5) and checked by
    queue_type_status against `allowed`, though not matched against the message's status."""
    return (Field("queueType", "str", aliases=("queue_type",), doc=(
        f"required: {', '.join(allowed[:-1])} or {allowed[-1]} (400 otherwise); the message's status is not"
        f" checked against it{note}")),)


QUEUE_TYPE_PARAM = _queue_type_param(QUEUE_TYPES)
EDIT_QUEUE_TYPE_PARAM = _queue_type_param(EDITABLE_QUEUE_TYPES, " (a leased message gives 409)")


@endpoint("DELETE", "/queue/message/{id}", summary="Delete one message (any status)", tag="admin",
          query=QUEUE_TYPE_PARAM, responses={200: "deleted", 404: "NOT_FOUND"})
async def delete_message(request: Request) -> Response:
    queue_type = parse_query(QUEUE_TYPE_PARAM, request.query_params)["queueType"]
    queue_type_status(queue_type)
    message_id = request.path_params["id"]
    if not await relay(request).admin.delete([message_id], bulk=False):
        raise RelayError(404, "NOT_FOUND", "Message not found", success=False)
    return ok({"success": True, "messageId": message_id, "queueType": queue_type,
               "message": "Message deleted successfully"})


@endpoint("POST", "/queue/messages/delete", summary="Delete many messages (any status)", tag="admin",
          query=QUEUE_TYPE_PARAM, body=(Field("messageIds", "array", required=True, items="str", doc="at most `MAX_BATCH_SIZE` (10,000)"),))
async def delete_messages(request: Request) -> Response:
    queue_type_status(parse_query(QUEUE_TYPE_PARAM, request.query_params)["queueType"])
    values = parse_fields((Field("messageIds", "array", required=True, items="str"),), require_object(await read_json(request)))
    ids = _ids_within(request, values["messageIds"], "messageIds")
    if not all(isinstance(i, str) for i in ids):
        raise RelayError(400, "VALIDATION_ERROR", "messageIds must be an array of strings",
                         details=[{"field": "messageIds", "message": "must be an array of strings"}])
    for index, value in enumerate(ids):
        require_storable(value, f"messageIds.{index}")
    count = await relay(request).admin.delete(ids, bulk=True) if ids else 0
    return ok({"success": True, "deletedCount": count, "message": f"{count} messages deleted successfully"})


EDIT_FIELDS = (
    Field("type", "str", max_length=MAX_KEY_CHARS),
    Field("payload", "any", nullable=True),
    Field("priority", "int", minimum=0, maximum=9),
    Field("custom_ack_timeout", "int", minimum=1, aliases=("ackTimeout", "ack_timeout_seconds")),
)


@endpoint("PUT", "/queue/message/{id}", summary="Edit a message that is not being processed", tag="admin",
          query=EDIT_QUEUE_TYPE_PARAM, body=EDIT_FIELDS,
          responses={200: "updated", 404: "NOT_FOUND", 409: "INVALID_STATE (processing)"})
async def edit_message(request: Request) -> Response:
    r = relay(request)
    queue_type_status(parse_query(EDIT_QUEUE_TYPE_PARAM, request.query_params)["queueType"], EDITABLE_QUEUE_TYPES)
    body = await read_json(request, optional=True)
    raw = require_object(body if body is not None else {})
    values = parse_fields(EDIT_FIELDS, raw)
    changes: dict[str, Any] = {}
    if values["type"] is not None:
        changes["type"] = values["type"]
    if any(name in raw for name in ("payload",)):
        encoded = msgspec.json.encode(values["payload"])
        if len(encoded) > r.settings.max_payload_bytes:
            raise RelayError(413, "PAYLOAD_TOO_LARGE", "payload exceeds MAX_PAYLOAD_BYTES")
        changes["payload"], changes["payload_size"] = encoded.decode(), len(encoded)
    if values["priority"] is not None:
        changes["priority"] = values["priority"]
    if values["custom_ack_timeout"] is not None:
        changes["ack_timeout"] = values["custom_ack_timeout"]
    row = await r.admin.edit(request.path_params["id"], changes)
    return ok({"success": True, "data": message_to_wire(row), "message": "Message updated successfully"})


@endpoint("DELETE", "/queue/clear", summary="Delete every message of every queue", tag="admin")
async def clear_all(request: Request) -> Response:
    await relay(request).admin.clear(None, None)
    return ok({"message": "All queues cleared successfully"})


@endpoint("DELETE", "/queue/{queueType}/clear", summary="Delete every message in one status", tag="admin",
          query=(Field("queueName", "str", aliases=("queue", "queue_name")),))
async def clear_status(request: Request) -> Response:
    queue_type = request.path_params["queueType"]
    status = queue_type_status(queue_type)
    queue = parse_query((Field("queueName", "str", aliases=("queue", "queue_name")),), request.query_params)["queueName"]
    count = await relay(request).admin.clear(status, queue)
    return ok({"success": True, "queueType": queue_type, "message": f"{queue_type} queue cleared successfully",
               "clearedCount": count})


@endpoint("GET", "/queue/messages", summary="List messages by creation time", tag="admin", query=RANGE_QUERY)
async def list_by_time(request: Request) -> Response:
    params = parse_query(RANGE_QUERY, request.query_params)
    flt = MessageFilter(queue=params["queueName"], created_from=params["startTimestamp"],
                        created_to=params["endTimestamp"])
    rows = await relay(request).admin.list_messages(flt, "created_at", "desc", params["limit"], 0)
    return ok([message_to_wire(r) for r in rows])


@endpoint("DELETE", "/queue/messages", summary="Delete messages by creation time", tag="admin", query=RANGE_QUERY)
async def delete_by_time(request: Request) -> Response:
    params = parse_query(RANGE_QUERY, request.query_params)
    count = await relay(request).admin.delete_by_time(
        params["startTimestamp"], params["endTimestamp"], params["queueName"])
    return ok({"message": f"{count} messages removed successfully", "deletedCount": count})

