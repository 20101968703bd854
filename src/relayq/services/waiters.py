"""Long-poll waiters: a dequeue that found nothing parks here until a message may be available.

Wake-ups come from in-process changes at once, and from other server processes through the
cluster notifier. A parked request also re-checks at least every `recheck` seconds, which
covers delayed messages becoming due; it never polls in a tight loop.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

from relayq.services.changes import Change

# Actions after which a queue may have a dequeuable message.
WAKING_ACTIONS = frozenset({"enqueue", "nack", "timeout_requeue", "move", "import"})


class Waiters:
    """Per-queue FIFO of parked dequeue requests."""

    def __init__(self) -> None:
        self._parked: dict[str, list[asyncio.Event]] = defaultdict(list)
        # Set at shutdown: a graceful stop waits for requests in flight, so a parked long-poll
        # would hold it for its whole timeout (or be cut off with a 500 by the graceful timeout).
        self.closing = False

    def close(self) -> None:
        """Shutdown: wake every parked request; from now on none parks (each answers at once)."""
        self.closing = True
        for queue in list(self._parked):
            self.wake(queue)

    def arm(self, queue: str) -> asyncio.Event:
        """Park a request before it looks, so a message arriving meanwhile is not missed."""
        event = asyncio.Event()
        self._parked[queue].append(event)
        return event

    def disarm(self, queue: str, event: asyncio.Event) -> None:
        """Remove a parked request (it got a message, timed out, or was cancelled)."""
        parked = self._parked.get(queue)
        if parked is None:
            return
        try:
            parked.remove(event)
        except ValueError:
            pass
        if not parked:
            del self._parked[queue]

    def wake(self, queue: str, count: int | None = None) -> None:
        """Wake up to `count` parked requests of `queue` (all when None), oldest first."""
        parked = self._parked.get(queue)
        if not parked:
            return
        woken = 0
        for event in parked:
            if not event.is_set():
                event.set()
                woken += 1
                if count is not None and woken >= count:
                    break

    def on_change(self, change: Change) -> None:
        """ChangeHub listener: wake waiters of queues that just gained available messages."""
        if change.action in WAKING_ACTIONS and change.queue is not None:
            if change.action == "move" and change.to_status != "queued":
                return
            self.wake(change.queue, max(len(change.rows), 1))

    def queues(self) -> list[str]:
        """Queues that have parked requests right now."""
        return list(self._parked)
