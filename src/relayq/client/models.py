"""Typed results of the Relay REST API.

The structs mirror the wire format (API.md §2) field for field, including its mixed timestamp
formats: Unix seconds as ``int`` for message times, ``datetime`` where the wire sends ISO
strings. Unknown fields are ignored so that a newer server does not break an older client.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

MessageStatus = Literal["queued", "processing", "acknowledged", "dead", "archived"]
QueueType = Literal["standard", "unlogged", "partitioned"]
# The dashboard's names for statuses, used by export and the admin listing endpoints.
ListingName = Literal["main", "processing", "dead", "acknowledged", "archived"]


class Message(msgspec.Struct, kw_only=True):
    """A message as returned by dequeue, export and the listing endpoints."""

    id: str
    queue_name: str = "default"
    type: str | None = None
    payload: Any = None
    priority: int = 0
    status: str = "queued"
    attempt_count: int = 0
    max_attempts: int = 0
    ack_timeout_seconds: int = 0
    lock_token: str | None = None
    locked_until: datetime | None = None
    consumer_id: str | None = None
    created_at: int | None = None
    dequeued_at: int | None = None
    acknowledged_at: int | None = None
    last_error: str | None = None
    payload_size: int = 0
    available_at: int | None = None


class EnqueueItem(msgspec.Struct, kw_only=True):
    """One message to enqueue; ``None`` fields fall back on the queue's settings."""

    payload: Any
    type: str = ""
    queue: str | None = None
    priority: int | None = None
    ack_timeout: int | None = None
    max_attempts: int | None = None
    consumer_id: str | None = None
    delay: float | None = None
    idempotency_key: str | None = None

    def to_wire(self) -> dict[str, Any]:
        """The request body of this item, in the API's camelCase names."""
        body: dict[str, Any] = {"type": self.type, "payload": self.payload}
        optional = {
            "queue": self.queue,
            "priority": self.priority,
            "ackTimeout": self.ack_timeout,
            "maxAttempts": self.max_attempts,
            "consumerId": self.consumer_id,
            "delaySeconds": self.delay,
            "idempotencyKey": self.idempotency_key,
        }
        body.update((key, value) for key, value in optional.items() if value is not None)
        return body


class EnqueueResult(msgspec.Struct, kw_only=True):
    """The id of an enqueued message; ``duplicate`` when an idempotency key matched."""

    id: str
    queue: str
    duplicate: bool = False


class BatchEnqueueResult(msgspec.Struct, kw_only=True):
    """Ids of a batch enqueue, in input order."""

    count: int
    ids: list[str]


class BatchFailure(msgspec.Struct, kw_only=True):
    """One item of a batch ack or nack that did not succeed, with its error code."""

    id: str
    error: str
    code: str


class AckBatchResult(msgspec.Struct, kw_only=True):
    """Outcome of a batch ack; the request succeeds even when some items fail."""

    succeeded: list[str]
    failed: list[BatchFailure]


class NackResult(msgspec.Struct, kw_only=True, rename={"moved_to_dlq": "movedToDlq"}):
    """Whether a nacked message was requeued or moved to the dead-letter state."""

    requeued: bool = False
    moved_to_dlq: bool = False


class NackBatchResult(msgspec.Struct, kw_only=True, rename={"moved_to_dlq": "movedToDlq"}):
    """Outcome of a batch nack: ``succeeded`` is ``requeued`` followed by ``moved_to_dlq``."""

    succeeded: list[str]
    failed: list[BatchFailure]
    requeued: list[str] = []
    moved_to_dlq: list[str] = []


class TouchResult(msgspec.Struct, kw_only=True):
    """A lease extension: the new deadline (Unix seconds) and the unchanged lock token."""

    new_timeout_at: int
    lock_token: str
    extended_by: float | None = None


class Queue(msgspec.Struct, kw_only=True):
    """A queue's configuration and live counts (API.md §2.2)."""

    name: str
    queue_type: str = "standard"
    ack_timeout_seconds: int = 30
    max_attempts: int = 3
    retry_delay_seconds: int = 0
    partition_interval: str | None = None
    retention_interval: str | None = None
    description: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    message_count: int = 0
    processing_count: int = 0
    dead_count: int = 0
    acknowledged_count: int = 0
    archived_count: int = 0


class Metrics(msgspec.Struct, kw_only=True):
    """Message counts per status, over every queue or one (``GET /queue/metrics``)."""

    queued: int = 0
    processing: int = 0
    acknowledged: int = 0
    dead: int = 0
    archived: int = 0
    avg_payload_size: float = 0.0
    max_payload_size: int = 0


class QueueStatus(msgspec.Struct, kw_only=True):
    """Counts per status and queued counts per priority (``GET /queue/status``)."""

    queued: int = 0
    processing: int = 0
    acknowledged: int = 0
    dead: int = 0
    archived: int = 0
    available_types: list[str] = []
    priorities: dict[str, int] = {}


class ServerConfig(msgspec.Struct, kw_only=True):
    """The server-wide defaults for new queues."""

    ack_timeout_seconds: int
    max_attempts: int
    max_batch_size: int | None = None  # most messages per batch or import (None: a server before it)


class Anomaly(msgspec.Struct, kw_only=True):
    """An anomaly detected on an activity event."""

    type: str
    severity: str
    description: str = ""


class ActivityEntry(msgspec.Struct, kw_only=True):
    """One activity-log entry (API.md §2.3); rarely used legacy fields are left out."""

    log_id: str
    action: str
    timestamp: int
    message_id: str | None = None
    queue: str | None = None
    source_queue: str | None = None
    dest_queue: str | None = None
    message_type: str | None = None
    consumer_id: str | None = None
    prev_consumer_id: str | None = None
    attempt_count: int | None = None
    processing_time_ms: float | None = None
    payload_size_bytes: int | None = None
    error_reason: str | None = None
    triggered_by: str | None = None
    batch_size: int | None = None
    anomaly: Anomaly | None = None
    context: dict[str, Any] = {}


class ActivityPage(msgspec.Struct, kw_only=True):
    """A page of activity entries, newest first, with the total matching the filters."""

    logs: list[ActivityEntry]
    total: int = 0


class Event(msgspec.Struct, kw_only=True):
    """A Server-Sent Event from ``GET /queue/events``; ``data`` is decoded JSON when it is JSON."""

    event: str = "message"
    data: Any = None
    id: str | None = None
