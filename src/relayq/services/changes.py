"""Every state change the broker makes is announced here as a `Change`.

Listeners (the activity log, consumer stats, metrics, live events, long-poll waiters) subscribe
once. `publish` is synchronous and must stay cheap: listeners only append to in-memory
buffers, so the request that caused the change never waits for them. `publish_durable` is for
the few changes whose record must be written before the response (lock_stolen, admin
deletions): it awaits the listeners' `persist` hooks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("relayq.changes")

Row = Mapping[str, Any]


@dataclass(slots=True)
class Change:
    """One action on zero or more messages (rows carry the changed messages' fields)."""

    action: str
    queue: str | None
    rows: Sequence[Row] = ()
    at: float = field(default_factory=time.time)
    consumer_id: str | None = None
    batch_size: int | None = None
    error_reason: str | None = None
    # For `move`: the statuses a message left and entered; for deletes: the status it left.
    from_status: str | None = None
    to_status: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    # Set by detectors that run synchronously (lock_stolen); keyed by message id.
    anomalies: dict[str | None, dict[str, Any]] = field(default_factory=dict)


def grouped_changes(rows: Sequence[Row], action: str | Callable[[Row], str], **fields: Any) -> list[Change]:
    """One change per queue and action (one action, or one per row: `action(row)`) for the rows of
    one statement, each row keeping what differs between its entries (its worker, error, overdue
    time). A change per row ran every listener once per message: as much Python time as the
    statement's database time."""
    groups: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        groups.setdefault((row["queue_name"], action if isinstance(action, str) else action(row)), []).append(row)
    return [Change(name, queue, rows=group, **fields) for (queue, name), group in groups.items()]


Listener = Callable[[Change], None]
DurableListener = Callable[[Sequence[Change]], Awaitable[None]]


class ChangeHub:
    """Fan-out of changes to in-process listeners."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._durable: list[DurableListener] = []

    def subscribe(self, listener: Listener) -> None:
        """Call `listener(change)` for every change; it must not block or raise."""
        self._listeners.append(listener)

    def subscribe_durable(self, listener: DurableListener) -> None:
        """Await `listener(changes)` for changes that must be stored before the response."""
        self._durable.append(listener)

    def publish(self, change: Change) -> None:
        """Announce a change; a failing listener is logged and never breaks the request."""
        for listener in self._listeners:
            try:
                listener(change)
            except Exception:
                log.exception("change listener failed for %s", change.action)

    async def publish_durable(self, change: Change) -> None:
        """Announce a change and wait until durable listeners have stored it."""
        await self.publish_durable_many([change])

    async def publish_durable_many(self, changes: Sequence[Change]) -> None:
        """Announce changes and wait until durable listeners have stored them, all at once (a
        batch ack with 1,000 stale tokens wrote its 1,000 anomalies one insert after another)."""
        if not changes:
            return
        self.publish_many(changes)
        for listener in self._durable:
            try:
                await listener(changes)
            except Exception:
                log.exception("durable change listener failed for %s", changes[0].action)

    def publish_many(self, changes: Sequence[Change]) -> None:
        """Announce several changes in order."""
        for change in changes:
            self.publish(change)
