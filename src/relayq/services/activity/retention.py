"""Retention: activity entries older than ACTIVITY_LOG_RETENTION_HOURS are removed in the background
(0 keeps them forever, as ACKNOWLEDGED_RETENTION_HOURS does for messages).

Every server process runs it; the deletes are idempotent and batched, so running it on several
processes at once only costs a few extra statements.
"""

from __future__ import annotations

import asyncio
import logging

from relayq.services.activity.store import ActivityStore

log = logging.getLogger("relayq.retention")


class ActivityRetention:
    """Background job: `run_once` prunes now, `run` every `interval` seconds."""

    def __init__(self, store: ActivityStore, hours: float, interval: float) -> None:
        self.store = store
        self.hours = hours
        self.interval = interval
        self.removed = 0

    async def run_once(self) -> int:
        """Delete what is past retention; returns how many entries went."""
        if self.hours <= 0:
            return 0
        removed = await self.store.prune(self.hours)
        self.removed += removed
        if removed:
            log.info("activity retention removed %d entries older than %g h", removed, self.hours)
        return removed

    async def run(self) -> None:
        """Prune at start-up and then every interval, until cancelled; outages only delay it."""
        while True:
            try:
                await self.run_once()
            except Exception as exc:
                log.warning("activity retention pass failed: %s", type(exc).__name__)
            await asyncio.sleep(self.interval)
