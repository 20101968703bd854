"""The wire shape of a message (API.md §2.1), built from a database row."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

STATUS_BY_QUEUE_TYPE: dict[str, str] = {
    "main": "queued",
    "processing": "processing",
    "dead": "dead",
    "acknowledged": "acknowledged",
    "archived": "archived",
}
STATUSES: tuple[str, ...] = ("queued", "processing", "acknowledged", "dead", "archived")

# Columns every message query returns; timestamps arrive as epoch seconds (float8) so the
# hot path never builds datetime objects, and the payload arrives as JSON text that is passed
# through to the response untouched. Queries alias the message table as `m`.
MESSAGE_COLUMNS = """m.id, m.queue_name, m.type, m.payload::text AS payload, m.priority, m.status,
    m.attempt_count, m.max_attempts, m.ack_timeout_seconds, m.lock_token,
    extract(epoch FROM m.locked_until)::float8 AS locked_until, m.consumer_id,
    extract(epoch FROM m.created_at)::float8 AS created_at,
    extract(epoch FROM m.dequeued_at)::float8 AS dequeued_at,
    extract(epoch FROM m.acknowledged_at)::float8 AS acknowledged_at, m.last_error, m.payload_size,
    extract(epoch FROM m.available_at)::float8 AS available_at"""


def iso_millis(epoch: float | None) -> str | None:
    """ISO-8601 UTC with milliseconds and a `Z`, as the original service formats lease deadlines."""
    if epoch is None:
        return None
    seconds = math.floor(epoch)
    micros = round((epoch - seconds) * 1_000_000)  # rounded as datetime.fromtimestamp does
    if micros >= 1_000_000:
        seconds, micros = seconds + 1, micros - 1_000_000
    return f"{_iso_seconds(seconds)}.{micros // 1000:03d}Z"


@functools.lru_cache(maxsize=4096)
def _iso_seconds(seconds: int) -> str:
    # Deadlines of one batch share their second: formatting it once per second, not per message.
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def unix_seconds(epoch: float | None) -> int | None:
    """Floor to whole seconds, keeping null."""
    return None if epoch is None else math.floor(epoch)


def raw_json(text: str | msgspec.Raw | None) -> msgspec.Raw:
    """Embed stored JSON text into a response without decoding and re-encoding it (rows of a
    fresh enqueue carry the request's own Raw payload, passed through as it is)."""
    if isinstance(text, msgspec.Raw):
        return text
    return msgspec.Raw(b"null" if text is None else text.encode())


def message_to_wire(row: Mapping[str, Any]) -> dict[str, Any]:
    """A message row (selected with MESSAGE_COLUMNS) as the API's Message object."""
    dequeued = unix_seconds(row["dequeued_at"])
    out: dict[str, Any] = {
        "id": row["id"],
        "queue_name": row["queue_name"],
        "type": row["type"],
        "payload": raw_json(row["payload"]),
        "priority": row["priority"],
        "status": row["status"],
        "attempt_count": row["attempt_count"],
        "max_attempts": row["max_attempts"],
        "ack_timeout_seconds": row["ack_timeout_seconds"],
        "lock_token": row["lock_token"],
        "locked_until": iso_millis(row["locked_until"]),
        "consumer_id": row["consumer_id"],
        "created_at": unix_seconds(row["created_at"]),
        "dequeued_at": dequeued,
        "acknowledged_at": unix_seconds(row["acknowledged_at"]),
        "last_error": row["last_error"],
        "payload_size": row["payload_size"],
    }
    if dequeued is not None:
        out["processing_started_at"] = dequeued
    out["_stream_name"] = "queue_" + row["status"]
    out["_stream_id"] = row["id"]
    out["available_at"] = unix_seconds(row["available_at"])
    return out
