"""Optional services wired into a running Relay: activity log, stats, events, metrics.

Each installer subscribes to the ChangeHub and registers its background tasks and stop hooks,
so the core message path never imports them.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import signal
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from relayq.services.activity import ActivityLog, ActivityRetention, ActivityStore
from relayq.services.anomalies import DetectorRegistry
from relayq.services.events import EventStream
from relayq.services.metrics import Sample
from relayq.services.stats import ConsumerStats

if TYPE_CHECKING:
    from relayq.runtime import Relay

log = logging.getLogger("relayq")


@dataclass
class Extensions:
    """The off-critical-path services of one process."""

    store: ActivityStore
    activity: ActivityLog | None  # None when ACTIVITY_LOG_ENABLED=false: nothing is recorded
    stats: ConsumerStats  # not subscribed when the log is off: reads then show stored totals only
    events: EventStream
    retention: ActivityRetention


async def install(relay: Relay) -> None:
    """Install every optional service into `relay`."""
    settings = relay.settings
    store = ActivityStore(relay.db)
    activity: ActivityLog | None = None
    stats = ConsumerStats(relay.db, settings.activity_flush_interval_ms / 1000)
    if settings.activity_log_enabled:  # off: no entries, no detection, no stats (and no cost)
        activity = ActivityLog(settings, store, DetectorRegistry.from_settings(settings))
        relay.hub.subscribe(activity.on_change)
        relay.hub.subscribe_durable(activity.persist)
        relay.hub.subscribe(stats.on_change)
    events = EventStream(relay.db, relay.waiters, settings.event_flush_ms)
    relay.hub.subscribe(events.on_change)
    relay.messages.delays.on_promoted.append(events.wake_elsewhere)
    retention = ActivityRetention(store, settings.activity_log_retention_hours,
                                  settings.activity_retention_interval_seconds)
    ext = relay.extensions = Extensions(store, activity, stats, events, retention)
    _register_metrics(relay, ext)

    if relay.background:
        if activity is not None:
            relay.spawn(activity.buffer.run(), "activity-flusher")
            relay.spawn(stats.run(), "stats-flusher")
        relay.spawn(events.listen(), "event-listener")
        relay.spawn(retention.run(), "activity-retention")

        def stopping() -> None:
            events.close_subscribers()
            relay.waiters.close()

        _on_shutdown_signal(stopping)

    async def stop() -> None:
        events.close_subscribers()
        await events.drain()
        if activity is not None:
            await activity.buffer.close()
        try:
            await stats.flush()
        except Exception as exc:
            log.warning("consumer stats not written at shutdown: %s", type(exc).__name__)

    relay.stop_hooks.append(stop)


def extensions_of(relay: Relay) -> Extensions:
    """The installed services (install runs in Relay.start, so this always succeeds at run time)."""
    ext = relay.extensions
    assert isinstance(ext, Extensions), "extensions not installed"
    return ext


def load_routes() -> None:
    """Import the optional services' route modules (registers their endpoints)."""
    for module in ("activity", "events", "prometheus", "internal"):  # by name: they import this module
        importlib.import_module(f"relayq.api.routes.{module}")


def _on_shutdown_signal(callback: Callable[[], None]) -> None:
    """End SSE streams and parked long-polls as soon as SIGTERM/SIGINT arrives.

    The server waits for open responses before running the app's shutdown, so without this an
    open dashboard or a parked long-poll would hold a graceful shutdown for its whole timeout.
    The callback runs as a loop callback (the handler interrupts whatever the loop was doing);
    the previous handler (uvicorn's) still runs.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)
        if not callable(previous):
            continue

        def handler(signum: int, frame: Any, previous: Any = previous) -> None:
            loop.call_soon_threadsafe(callback)
            previous(signum, frame)

        signal.signal(sig, handler)


def _register_metrics(relay: Relay, ext: Extensions) -> None:
    db, metrics = relay.db, relay.metrics

    def one(name: str, value: float) -> Iterable[Sample]:
        return [(name, (), value)]

    gauges: list[tuple[str, str, str, Callable[[], float]]] = [
        ("relayq_db_round_trips_total", "counter", "Database round trips made by API operations",
         lambda: db.stats.round_trips),
        ("relayq_db_seconds_total", "counter", "Seconds spent in those round trips", lambda: db.stats.seconds),
        ("relayq_db_unavailable_total", "counter", "Operations that found the database unreachable",
         lambda: db.stats.errors),
        ("relayq_db_background_round_trips_total", "counter",
         "Round trips of background work (activity log, consumer stats, maintenance)",
         lambda: db.background_stats.round_trips + ext.stats.flushes),
        ("relayq_db_pool_connections", "gauge", "Open pool connections", lambda: db.pool.get_size()),
        ("relayq_db_pool_idle_connections", "gauge", "Idle pool connections", lambda: db.pool.get_idle_size()),
        ("relayq_consumer_stats_pending", "gauge", "(consumer, queue) pairs with unwritten counts",
         lambda: len(ext.stats.pending)),
        ("relayq_consumer_stats_flushes_total", "counter", "Consumer stats batches written",
         lambda: ext.stats.flushes),
        ("relayq_events_subscribers", "gauge", "Open SSE streams", lambda: len(ext.events.subscribers)),
        ("relayq_events_notifications_total", "counter", "NOTIFY payloads sent to other processes",
         lambda: ext.events.sent),
        ("relayq_events_listening", "gauge", "1 while the LISTEN connection is up",
         lambda: int(ext.events.listening)),
        ("relayq_activity_retention_removed_total", "counter", "Activity entries removed by retention",
         lambda: ext.retention.removed),
    ]
    activity = ext.activity
    if activity is not None:
        buffer = activity.buffer
        gauges += [
            ("relayq_activity_buffer_size", "gauge", "Activity entries waiting to be written", lambda: buffer.pending),
            ("relayq_activity_buffer_capacity", "gauge", "ACTIVITY_BUFFER_MAX", lambda: buffer.capacity),
            ("relayq_activity_flushes_total", "counter", "Activity batches written", lambda: buffer.flushes),
            ("relayq_activity_written_total", "counter", "Activity entries written", lambda: buffer.written),
            ("relayq_activity_dropped_total", "counter",
             "Activity entries dropped (buffer full, database down, write error)", lambda: buffer.dropped),
        ]
    for name, kind, help_text, read in gauges:
        metrics.register(name, kind, help_text, lambda name=name, read=read: one(name, read()))  # type: ignore[misc]
