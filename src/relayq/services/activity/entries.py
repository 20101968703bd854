"""Turning a `Change` into activity entries (API.md §2.3): pure functions, no I/O.

One entry per changed message, except for queue-level actions (clears, purges, queue
management), which get one summary entry. Entries carry the time of the event (`Change.at`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from relayq.domain.messages import raw_json
from relayq.services.changes import Change

# Every key of an ActivityEntry except log_id and timestamp, which come from the table.
ENTRY_KEYS: tuple[str, ...] = (
    "message_id", "action", "queue", "source_queue", "dest_queue", "priority", "message_type", "consumer_id",
    "prev_consumer_id", "lock_token", "prev_lock_token", "attempt_count", "max_attempts", "attempts_remaining",
    "message_created_at", "message_age_ms", "time_in_queue_ms", "processing_time_ms", "total_processing_time_ms",
    "redis_operation_ms", "payload_size_bytes", "queue_depth", "processing_depth", "dlq_depth", "error_reason",
    "error_code", "user_id", "batch_id", "prev_action", "prev_timestamp", "reason", "triggered_by", "batch_size",
    "payload", "anomaly", "context",
)

# Actions recorded as one entry for the whole operation, not one per message.
SUMMARY_ACTIONS = frozenset({
    "clear_queue", "clear_all_queues", "purge_queue", "create_queue", "update_queue", "rename_queue", "delete_queue",
})

# Admin moves name statuses by their queueType (API.md §5).
QUEUE_TYPE_OF_STATUS: dict[str, str] = {
    "queued": "main", "processing": "processing", "dead": "dead", "acknowledged": "acknowledged",
    "archived": "archived",
}


def build_entries(change: Change, payload_limit: int) -> Iterator[tuple[dict[str, Any], bool]]:
    """(entry, first_of_change) for every entry a change produces.

    An entry holds only the fields that are set, or set to None on the way (the stored JSON
    leaves nulls out; reads put every field back): its shared fields are built once per change
    and copied per message. A 36-key template per entry, filtered again when stored, was a
    third of the activity log's CPU time, which is most of the server's in batch traffic.
    The copy is shallow: the entries of a change share its `context` dict, so code that changes
    an entry's context must give it a new dict (as every writer here does), never update it.
    """
    if change.action in SUMMARY_ACTIONS or not change.rows:
        yield _summary(change), True
        return
    stolen = change.action == "lock_stolen"
    blank = _blank(change, str(change.context.get("operation", "acknowledge")) if stolen else change.action)
    for index, row in enumerate(change.rows):
        yield _message_entry(change, row, payload_limit, blank.copy()), index == 0


def _blank(change: Change, action: str) -> dict[str, Any]:
    """The fields every entry of `change` shares, those that are set."""
    entry: dict[str, Any] = {
        "action": action,
        "triggered_by": "system" if change.context.get("triggered_by") == "system" else "api",
        "context": {k: v for k, v in change.context.items() if k != "triggered_by"},
    }
    if change.queue is not None:
        entry["queue"] = change.queue
    if change.consumer_id is not None:
        entry["consumer_id"] = change.consumer_id
    if change.batch_size is not None:
        entry["batch_size"] = change.batch_size
    if change.error_reason is not None:
        entry["error_reason"] = entry["reason"] = change.error_reason
    return entry


def _summary(change: Change) -> dict[str, Any]:
    entry = _blank(change, change.action)
    if change.batch_size is None and change.action in ("clear_queue", "clear_all_queues", "purge_queue"):
        entry["batch_size"] = len(change.rows)
    return entry


def _message_entry(change: Change, row: Mapping[str, Any], payload_limit: int, entry: dict[str, Any]) -> dict[str, Any]:
    """One message's entry, from a copy of its change's shared fields (`_blank`)."""
    stolen = change.action == "lock_stolen"
    at = change.at
    entry["message_id"] = row.get("id")
    entry["queue"] = change.queue or row.get("queue_name")
    entry["message_type"] = row.get("type")
    entry["priority"] = row.get("priority")
    entry["lock_token"] = row.get("lock_token")
    entry["prev_lock_token"] = row.get("prev_lock_token")
    attempts, limit = row.get("attempt_count"), row.get("max_attempts")
    entry["attempt_count"], entry["max_attempts"] = attempts, limit
    if attempts is not None and limit is not None:
        entry["attempts_remaining"] = max(limit - attempts, 0)
    created = row.get("created_at")
    if created is not None:
        entry["message_created_at"] = created
        entry["message_age_ms"] = round((at - created) * 1000, 2)
    size = row.get("payload_size")
    entry["payload_size_bytes"] = size
    if row.get("payload") is not None and size is not None and size <= payload_limit:
        entry["payload"] = raw_json(row["payload"])
    _action_fields(entry, change, row)
    if stolen:
        entry["consumer_id"] = row.get("consumer_id")
        entry["lock_token"] = change.context.get("presented_lock_token")  # never the holder's live token
        entry["context"] = {"lock_stolen": True, "current_status": row.get("status"),
                            "current_consumer_id": row.get("consumer_id")}
    return entry


def _action_fields(entry: dict[str, Any], change: Change, row: Mapping[str, Any]) -> None:
    """What each action adds (API.md §8.3)."""
    action = change.action
    dequeued, created = row.get("dequeued_at"), row.get("created_at")
    if action == "enqueue":
        entry["consumer_id"] = row.get("consumer_id")
    elif action == "dequeue":
        entry["consumer_id"] = change.consumer_id or row.get("consumer_id")
        if dequeued is not None and created is not None:
            entry["time_in_queue_ms"] = round((dequeued - created) * 1000, 2)
    elif action == "acknowledge":
        entry["consumer_id"] = row.get("consumer_id")
        acked = row.get("acknowledged_at")
        if acked is not None and dequeued is not None:
            entry["processing_time_ms"] = int(round((acked - dequeued) * 1000))
        if acked is not None and created is not None:
            entry["total_processing_time_ms"] = round((acked - created) * 1000, 2)
    elif action in ("nack", "move_to_dlq"):
        entry["consumer_id"] = row.get("prev_consumer_id") or row.get("consumer_id") or change.consumer_id
        entry["error_reason"] = entry["reason"] = row.get("last_error") or change.error_reason
        entry["lock_token"] = None
    elif action in ("timeout_requeue", "timeout_to_dlq"):
        entry["prev_consumer_id"] = row.get("prev_consumer_id") or change.context.get("prev_consumer_id")
        entry["error_reason"] = entry["reason"] = row.get("last_error") or change.error_reason
        entry["lock_token"] = None
        entry["context"] = {
            **entry["context"], "ack_timeout_seconds": row.get("ack_timeout_seconds"),
            "overdue_seconds": row.get("overdue_seconds", change.context.get("overdue_seconds")),
        }
        entry["context"].pop("prev_consumer_id", None)
    elif action == "touch":
        entry["consumer_id"] = row.get("consumer_id")
    elif action == "move":
        entry["source_queue"] = QUEUE_TYPE_OF_STATUS.get(change.from_status or "", change.from_status)
        entry["dest_queue"] = QUEUE_TYPE_OF_STATUS.get(change.to_status or "", change.to_status)
    elif action in ("delete", "bulk_delete"):
        entry["context"] = {**entry["context"], "status": row.get("status")}
        entry["lock_token"] = None
