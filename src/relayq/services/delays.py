"""Delayed messages join the dequeue index when their time comes (migration 0015).

A queued message whose `available_at` is in the future (a delayed enqueue, a nack's or the
reaper's backoff) is stored with `delayed = true`, in a range of the dequeue index of its own,
so dequeues never walk past it. This loop clears the flag once it is due and wakes the queue's
parked long-polls, here and (through the event stream's NOTIFY) in the other server processes.

It sleeps until the earliest delayed message in the database is due, at most `interval`
seconds (so messages delayed by other server processes are never later than that), and an
earlier delay written by this process wakes it sooner (`due_in`). The database keeps the
schedule: one timer per process, whatever the number of delayed messages.
Every server process runs the loop; SKIP LOCKED lets them share the work.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable

from relayq.db.database import Database
from relayq.db.queries import MESSAGE_TABLES, QUERIES
from relayq.services.passes import Streak, run_logged
from relayq.services.waiters import Waiters

log = logging.getLogger("relayq.delays")
BATCH = 1000


class DuePromoter:
    """Background task; `run_once` is also called directly by tests."""

    def __init__(self, db: Database, waiters: Waiters, interval: float) -> None:
        self.db = db
        self.waiters = waiters
        self.interval = interval
        self.promoted = 0
        # Told (queue, count, types) after each promotion: the event stream wakes other processes' polls.
        self.on_promoted: list[Callable[[str, int, set[str]], None]] = []
        self.next_due_in = math.inf  # seconds from the last pass until the next delayed message is due
        self._wake = asyncio.Event()
        self._deadline = math.inf  # loop.time() of the next pass

    async def run_once(self) -> int:
        """Promote every due message now; returns how many, and notes when the next one is due."""
        total = 0
        next_due_in = math.inf
        # Forgotten until this pass answers: after a failed pass the loop waits an interval, not
        # the last success's (often milliseconds), which retried ~350 times a second in an outage.
        self.next_due_in = math.inf
        # A batch from each table in turn, while any had more: emptying one table's backlog first
        # (a million reminders due at once: ~30 s) held back the other tables' due messages.
        kinds = list(MESSAGE_TABLES)
        while kinds:
            more = []
            for kind in kinds:
                rows = await self.db.fetch(QUERIES.get("promote", kind), BATCH)
                promoted = 0
                for row in rows:
                    if row["queue_name"] is None:  # the summary row: when the next one is due
                        if row["next_due_in"] is not None:
                            next_due_in = min(next_due_in, row["next_due_in"])
                        continue
                    promoted += row["n"]
                    types = set(row["types"])
                    self.waiters.wake(row["queue_name"], row["n"], types)
                    for listener in self.on_promoted:
                        listener(row["queue_name"], row["n"], types)
                total += promoted
                if promoted >= BATCH:
                    more.append(kind)
            kinds = more
        self.next_due_in = next_due_in
        self.promoted += total
        return total

    def due_in(self, seconds: float) -> None:
        """A message this process just delayed is due in `seconds`: run a pass then, if sooner."""
        at = asyncio.get_running_loop().time() + seconds
        if at < self._deadline:
            self._deadline = at
            self._wake.set()

    async def run(self) -> None:
        """Loop until cancelled; a database outage only delays the next pass."""
        loop = asyncio.get_running_loop()
        streak = Streak()
        while True:
            self._deadline = math.inf  # due_in calls during the pass lower it
            await run_logged(log, "delayed messages", self.run_once, streak)
            self._deadline = min(self._deadline, loop.time() + min(self.interval, max(self.next_due_in, 0.0)))
            while (remaining := self._deadline - loop.time()) > 0:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), remaining)
                except TimeoutError:
                    break
