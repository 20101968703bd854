"""A bounded in-memory buffer written to the database in batches by one background loop.

Producers call `offer` (synchronous, O(1)); it never blocks and never raises. The loop writes
a batch when `flush_size` items are waiting or every `interval` seconds, one statement per
batch. Nothing grows without bound: past `capacity`, offers are refused and counted as
dropped. When the database is unreachable the batch goes back to the front (space allowing)
and is retried with backoff; any other write error drops the batch. What `close` cannot write
is counted as dropped too. Drops are logged (at most every `REPORT_EVERY` seconds) and exposed
as a metric.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import asyncpg

from relayq.db.database import UNAVAILABLE_ERRORS
from relayq.domain.errors import RelayError
from relayq.services.passes import uncancelled

log = logging.getLogger("relayq.batching")

T = TypeVar("T")
# Write errors after which the batch is kept for a retry (RelayError only as DATABASE_UNAVAILABLE).
# InternalClientError is what asyncpg raises on a connection the server has just terminated.
RETRYABLE: tuple[type[BaseException], ...] = (
    RelayError, asyncpg.exceptions._base.InternalClientError, *UNAVAILABLE_ERRORS)
REPORT_EVERY = 10.0
MAX_BACKOFF = 5.0
CLOSE_TIMEOUT = 5.0


class BatchBuffer(Generic[T]):
    """Bounded FIFO of items (each with a cost, e.g. its row count) flushed by `run`."""

    def __init__(
        self, name: str, write: Callable[[list[T]], Awaitable[None]], *, capacity: int, flush_size: int,
        interval: float, cost: Callable[[T], int] = lambda item: 1,
    ) -> None:
        self.name = name
        self.capacity = capacity
        self.flush_size = max(flush_size, 1)
        self.interval = interval
        self.items: deque[T] = deque()
        self.pending = 0  # total cost of `items`
        self.flushes = 0
        self.written = 0
        self.dropped = 0
        self.failures = 0
        self._write = write
        self._cost = cost
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._retry_at = 0.0
        self._reported_drops = 0
        self._last_batch = False  # stopping: the flush in progress ends after its current batch
        self._reported_at = 0.0

    # ----- producers -------------------------------------------------------------------
    def offer(self, item: T) -> bool:
        """Queue an item; False (and counted as dropped) when the buffer is full."""
        cost = self._cost(item)
        if self.pending + cost > self.capacity:
            self._drop(cost, "buffer full")
            return False
        self.items.append(item)
        self.pending += cost
        if self.pending >= self.flush_size:
            self._wake.set()
        return True

    # ----- the writer ------------------------------------------------------------------
    async def flush(self) -> int:
        """Write everything waiting now, batch by batch; returns the cost written."""
        written = 0
        async with self._lock:
            while self.items and not self._last_batch:
                batch, cost = self._take()
                try:
                    await self._write(batch)
                except RETRYABLE as exc:
                    if isinstance(exc, RelayError) and exc.code != "DATABASE_UNAVAILABLE":
                        raise
                    self._put_back(batch, cost)
                    self.failures += 1
                    self._retry_at = time.monotonic() + min(self.interval * 2 ** min(self.failures, 8), MAX_BACKOFF)
                    log.warning("%s: database unavailable (%s); %d waiting", self.name, type(exc).__name__, self.pending)
                    break
                except Exception:
                    self._drop(cost, "write failed")
                    log.exception("%s: dropped a batch of %d that could not be written", self.name, cost)
                    continue
                self.failures = 0
                self.flushes += 1
                self.written += cost
                written += cost
        self._report()
        return written

    async def run(self) -> None:
        """Flush on size or interval until cancelled; never raises."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            delay = self._retry_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                # At shutdown the batch in flight is still written or put back; close() writes the rest.
                await uncancelled(self.flush(), on_cancel=self._stop_after_batch)
            except Exception:
                log.exception("%s: flush failed", self.name)

    def _stop_after_batch(self) -> None:
        self._last_batch = True

    async def close(self) -> None:
        """Final flush at shutdown; whatever cannot be written within CLOSE_TIMEOUT is counted as dropped."""
        self._last_batch = False
        try:
            await asyncio.wait_for(self.flush(), CLOSE_TIMEOUT)
        except Exception:
            log.exception("%s: final flush failed", self.name)
        if self.items:
            self._drop(self.pending, "not written at shutdown")
            self.items.clear()
            self.pending = 0
        self._report(force=True)

    def clear(self) -> None:
        """Forget everything waiting (the data it describes was just deleted)."""
        self.items.clear()
        self.pending = 0

    # ----- internals -------------------------------------------------------------------
    def _take(self) -> tuple[list[T], int]:
        batch: list[T] = []
        cost = 0
        while self.items and (not batch or cost + self._cost(self.items[0]) <= self.flush_size):
            item = self.items.popleft()
            batch.append(item)
            cost += self._cost(item)
        self.pending -= cost
        return batch, cost

    def _put_back(self, batch: list[T], cost: int) -> None:
        room = self.capacity - self.pending
        if cost > room:  # newer items keep their place; the oldest overflow is dropped
            keep: list[T] = []
            kept = 0
            for item in reversed(batch):
                if kept + self._cost(item) > room:
                    break
                keep.append(item)
                kept += self._cost(item)
            self._drop(cost - kept, "buffer full while the database is down")
            batch, cost = list(reversed(keep)), kept
        self.items.extendleft(reversed(batch))
        self.pending += cost

    def _drop(self, count: int, why: str) -> None:
        if count > 0:
            self.dropped += count
            log.debug("%s: dropped %d (%s)", self.name, count, why)

    def _report(self, force: bool = False) -> None:
        new = self.dropped - self._reported_drops
        now = time.monotonic()
        if new and (force or now - self._reported_at >= REPORT_EVERY):
            log.warning("%s: dropped %d entries (%d in total since start)", self.name, new, self.dropped)
            self._reported_drops = self.dropped
            self._reported_at = now
