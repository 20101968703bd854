"""Message ids and lock tokens.

A message id starts with one letter naming the table that stores it (`s` durable, `u`
unlogged, `p<queue id>-` partitioned), so ack, nack and touch reach their row with one
index probe in one table. Clients treat ids as opaque strings.
"""

from __future__ import annotations

import base64
import secrets
from typing import Literal

StorageKind = Literal["standard", "unlogged", "partitioned"]

_PREFIX: dict[str, str] = {"standard": "s", "unlogged": "u", "partitioned": "p"}


def new_message_id(kind: StorageKind, queue_id: int) -> str:
    """A fresh id: table prefix + 72 random bits (URL-safe)."""
    if kind == "partitioned":
        return f"p{queue_id}-{secrets.token_urlsafe(9)}"
    return _PREFIX[kind] + secrets.token_urlsafe(9)


def new_message_ids(kind: StorageKind, queue_id: int, count: int) -> list[str]:
    """`count` fresh ids from one call to the OS random source (batches ask for hundreds)."""
    if count == 1:
        return [new_message_id(kind, queue_id)]
    prefix = f"p{queue_id}-" if kind == "partitioned" else _PREFIX[kind]
    # 9 bytes are exactly 12 base64 characters, so one encoding sliced every 12 characters gives
    # the same ids as encoding each 9 bytes on its own.
    text = base64.urlsafe_b64encode(secrets.token_bytes(9 * count)).decode()
    return [prefix + text[i : i + 12] for i in range(0, 12 * count, 12)]


def new_lock_token() -> str:
    """A fresh fencing token for one delivery."""
    return secrets.token_urlsafe(12)


def storage_of(message_id: str) -> tuple[StorageKind, int | None] | None:
    """Which table holds this id (and the queue id for partitioned ones); None if no table can."""
    if not message_id or len(message_id) > 64:
        return None
    head = message_id[0]
    if head == "s":
        return "standard", None
    if head == "u":
        return "unlogged", None
    if head == "p":
        digits, sep, _ = message_id[1:].partition("-")
        if sep and digits.isdigit() and len(digits) < 18:
            return "partitioned", int(digits)
    return None
