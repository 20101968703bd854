"""The lease reaper: returns expired leases to `queued` (or `dead`) within a second of expiry
(docs/scaling.md, "Lease expiry en masse", for many at once).

Each pass claims expired rows with FOR UPDATE SKIP LOCKED, so any number of server processes
can run a reaper against one database without reclaiming a message twice.
"""

from __future__ import annotations

import asyncio
import logging
import time

from relayq.db.database import Database
from relayq.db.queries import MESSAGE_TABLES, QUERIES
from relayq.services.changes import ChangeHub, Row, grouped_changes
from relayq.services.passes import Streak, run_logged

log = logging.getLogger("relayq.reaper")
REAPER_CONSUMER = "relay-actor"
BATCH = 1000


def _outcome(row: Row) -> str:
    return "timeout_to_dlq" if row["status"] == "dead" else "timeout_requeue"


class LeaseReaper:
    """Background task; `run_once` is also called directly by tests."""

    def __init__(self, db: Database, hub: ChangeHub, interval: float) -> None:
        self.db = db
        self.hub = hub
        self.interval = interval
        self.reclaimed = 0

    async def run_once(self) -> int:
        """Reclaim every expired lease now; returns how many were reclaimed."""
        total = 0
        for kind in MESSAGE_TABLES:
            while True:
                rows = await self.db.fetch(QUERIES.get("reap", kind), BATCH)
                self.hub.publish_many(grouped_changes(rows, _outcome, at=time.time(), consumer_id=REAPER_CONSUMER,
                                                      context={"triggered_by": "system"}))
                total += len(rows)
                if len(rows) < BATCH:
                    break
        self.reclaimed += total
        return total

    async def run(self) -> None:
        """Loop until cancelled; a database outage only delays the next pass."""
        streak = Streak()
        while True:
            await run_logged(log, "lease reaper", self.run_once, streak)
            await asyncio.sleep(self.interval)
