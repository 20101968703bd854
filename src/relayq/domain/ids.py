"""Message ids and lock tokens.

A message id starts with one letter naming the table that stores it (`s` durable, `u`
unlogged, `p<queue id>-` partitioned), so ack, nack and touch reach their row with one
index probe in one table. Then comes the creation time in milliseconds, 9 base32hex digits
(lowercase, fixed width: they sort in time order under any collation), then 72 random bits.
The time part makes the primary key an append-at-the-right index whose oldest pages empty
out together when retention deletes old messages, so vacuum recycles them whole; with purely
random ids every insert split a random page and the index kept growing for minutes
(docs/scaling.md, bounded storage). Clients treat ids as opaque strings.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Iterable
from typing import Literal

StorageKind = Literal["standard", "unlogged", "partitioned"]

_PREFIX: dict[str, str] = {"standard": "s", "unlogged": "u", "partitioned": "p"}
_BASE32HEX = "0123456789abcdefghijklmnopqrstuv"
_TIME_DIGITS = 9  # 45 bits of milliseconds: until the year 3084


def _time_part(ms: int) -> str:
    """`ms` as fixed-width base32hex, so byte order and every collation's order are time order."""
    digits = []
    for _ in range(_TIME_DIGITS):
        digits.append(_BASE32HEX[ms & 31])
        ms >>= 5
    return "".join(reversed(digits))


def _head(kind: StorageKind, queue_id: int) -> str:
    """Table prefix and the current time, shared by every id made in one call."""
    prefix = f"p{queue_id}-" if kind == "partitioned" else _PREFIX[kind]
    return prefix + _time_part(time.time_ns() // 1_000_000)


def new_message_id(kind: StorageKind, queue_id: int) -> str:
    """A fresh id: table prefix + creation millisecond + 72 random bits (URL-safe)."""
    return _head(kind, queue_id) + secrets.token_urlsafe(9)


def new_message_ids(kind: StorageKind, queue_id: int, count: int) -> list[str]:
    """`count` fresh ids from one call to the OS random source (batches ask for hundreds)."""
    if count == 1:
        return [new_message_id(kind, queue_id)]
    head = _head(kind, queue_id)
    # 9 bytes are exactly 12 base64 characters, so one encoding sliced every 12 characters gives
    # the same ids as encoding each 9 bytes on its own.
    text = base64.urlsafe_b64encode(secrets.token_bytes(9 * count)).decode()
    return [head + text[i : i + 12] for i in range(0, 12 * count, 12)]


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
        if sep and digits.isascii() and digits.isdigit() and len(digits) < 18:  # not "²"
            return "partitioned", int(digits)
    return None


def queue_ids_of(ids: Iterable[str]) -> list[int] | None:
    """The queue ids of partitioned message ids, sorted; None when none is partitioned.

    A partitioned table's primary key is (queue_id, id, created_at): without the queue id a
    statement by id reads every partitioned queue's tables.
    """
    found = {where[1] for mid in ids if (where := storage_of(mid)) is not None and where[1] is not None}
    return sorted(found) if found else None
