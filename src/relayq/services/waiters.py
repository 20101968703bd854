"""Long-poll waiters: a dequeue that found nothing parks here until a message may be available.

Wake-ups come from in-process changes at once, and from other server processes through the
cluster notifier; delayed messages becoming due wake them through services/delays.py, here and
in the other processes. A parked request also re-checks every LONG_POLL_RECHECK_SECONDS (longer
after a slow claim: services/messages.py recheck_after), for a wake-up that was missed; it never
polls in a tight loop.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Collection

from relayq.services.changes import Change

# Actions after which a queue may have a dequeuable message.
WAKING_ACTIONS = frozenset({"enqueue", "nack", "timeout_requeue", "move", "import"})


class Waiters:
    """Per-queue FIFO of parked dequeue requests, each with the type it asked for (None: any)."""

    def __init__(self) -> None:
        self._parked: dict[str, list[tuple[asyncio.Event, str | None]]] = defaultdict(list)
        # Set at shutdown: a graceful stop waits for requests in flight, so a parked long-poll
        # would hold it for its whole timeout (or be cut off with a 500 by the graceful timeout).
        self.closing = False

    def close(self) -> None:
        """Shutdown: wake every parked request; from now on none parks (each answers at once)."""
        self.closing = True
        for queue in list(self._parked):
            self.wake(queue)

    def arm(self, queue: str, type_filter: str | None = None) -> asyncio.Event:
        """Park a request before it looks, so a message arriving meanwhile is not missed."""
        event = asyncio.Event()
        self._parked[queue].append((event, type_filter))
        return event

    def disarm(self, queue: str, event: asyncio.Event) -> None:
        """Remove a parked request (it got a message, timed out, or was cancelled)."""
        parked = self._parked.get(queue)
        if parked is None:
            return
        for index, (candidate, _) in enumerate(parked):
            if candidate is event:
                del parked[index]
                break
        if not parked:
            del self._parked[queue]

    def wake(self, queue: str, count: int | None = None, types: Collection[str | None] | None = None) -> None:
        """Wake up to `count` parked requests of `queue` (all when None), oldest first.

        With `types` (the types of the messages that arrived), only requests that can take one
        of them: a request for another type would find nothing, and using up the count on it
        left a matching request parked until its next recheck (up to a second late).
        """
        parked = self._parked.get(queue)
        if not parked:
            return
        woken = 0
        for event, wanted in parked:
            if event.is_set() or (types is not None and wanted is not None and wanted not in types):
                continue
            event.set()
            woken += 1
            if count is not None and woken >= count:
                break

    def on_change(self, change: Change) -> None:
        """ChangeHub listener: wake waiters of queues that just gained available messages."""
        if change.action in WAKING_ACTIONS and change.queue is not None:
            if change.action == "move" and change.to_status != "queued":
                return
            parked = self._parked.get(change.queue)
            if not parked:
                return
            types = None
            if change.rows and any(wanted is not None for _, wanted in parked):  # rows may be built lazily
                types = {row.get("type") for row in change.rows}
            self.wake(change.queue, max(len(change.rows), 1), types)

    def queues(self) -> list[str]:
        """Queues that have parked requests right now."""
        return list(self._parked)
