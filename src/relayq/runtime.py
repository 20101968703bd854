"""The running broker: settings, pool, services and background workers, started and stopped together.

The app's lifespan calls `Relay.start` and `Relay.stop`; tests and the benchmark build one
directly to drive the service layer without HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from relayq.config import Settings
from relayq.db.database import Database
from relayq.db.migrate import migrate
from relayq.services.admin import AdminService
from relayq.services.changes import ChangeHub
from relayq.services.maintenance import Maintenance
from relayq.services.messages import MessageService
from relayq.services.metrics import Metrics
from relayq.services.queues import QueueService
from relayq.services.reaper import LeaseReaper
from relayq.services.waiters import Waiters

if TYPE_CHECKING:
    from relayq.services.extensions import Extensions

log = logging.getLogger("relayq")

StopHook = Callable[[], Awaitable[None]]


@dataclass
class Relay:
    """Every service of one server process."""

    settings: Settings
    db: Database
    hub: ChangeHub
    queues: QueueService
    messages: MessageService
    waiters: Waiters
    reaper: LeaseReaper
    admin: AdminService
    metrics: Metrics = field(default_factory=Metrics)
    background: bool = True
    extensions: Extensions | None = None  # set by services.extensions.install
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    stop_hooks: list[StopHook] = field(default_factory=list)

    @classmethod
    async def start(
        cls, settings: Settings, dsn: str | None = None, *, background: bool = True, metrics: Metrics | None = None
    ) -> Relay:
        """Connect, migrate (under an advisory lock), ensure `default`, start background workers.

        `background=False` (tests) starts no loops: flushes happen only when called or at `stop`.
        """
        db = await Database.connect(settings, dsn)
        async with db.pool.acquire() as conn:
            applied = await migrate(conn)
        if applied:
            log.info("applied migrations %s", applied)
        hub = ChangeHub()
        waiters = Waiters()
        hub.subscribe(waiters.on_change)
        queues = QueueService(db, settings, hub)
        await queues.ensure_default()
        messages = MessageService(db, settings, queues, hub, waiters)
        reaper = LeaseReaper(db, hub, settings.reaper_interval_ms / 1000)
        relay = cls(settings, db, hub, queues, messages, waiters, reaper, AdminService(db, queues, hub),
                    metrics=metrics or Metrics(), background=background)
        hub.subscribe(relay.metrics.on_change)
        from relayq.services import extensions

        await extensions.install(relay)
        if background:
            relay.spawn(reaper.run(), "lease-reaper")
            relay.spawn(messages.delays.run(), "delayed-messages")
            relay.spawn(Maintenance(db.background(), settings).run(), "maintenance")
        return relay

    def spawn(self, coro: Awaitable[None], name: str) -> None:
        """Run a background worker until `stop`."""
        self.tasks.append(asyncio.ensure_future(coro))
        self.tasks[-1].set_name(name)

    async def stop(self) -> None:
        """Stop workers, run stop hooks (buffers flush here), close the pool."""
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for hook in reversed(self.stop_hooks):
            try:
                await hook()
            except Exception:
                log.exception("stop hook failed")
        await self.queues.close()
        await self.db.close()
