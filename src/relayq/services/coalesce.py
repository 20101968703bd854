"""Natural batching: concurrent single-message requests share one statement.

While a statement for a key is in flight, requests that arrive meanwhile wait in a pending
list; when a slot frees up they all go out together in the next statement. An idle server
sends each request at once (no timer, no added latency), and a busy one turns N commits into
one. Each caller gets its own result (or its own exception) only after the statement that
carried its item has committed.

How many statements may be in flight adapts to the database's latency: on a local database
(a millisecond per statement) two slots keep it busy and let batches form; on a remote one
(hundreds of milliseconds) waiting for a slot would cost a whole round trip, so the limit rises
towards `max_inflight` (the pool size) in proportion to the statement time. The measure is
the floor of recent statement times (network round trip plus execution), not their average:
on a CPU-bound machine the average grows with load, and answering load with more concurrent
statements would only add to it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger("relayq.coalesce")

BatchRunner = Callable[[K, list[T]], Awaitable[Sequence["R | BaseException"]]]


class Coalescer(Generic[K, T, R]):
    """Gather items per key while up to `max_inflight` statements for that key are running."""

    def __init__(
        self,
        run: Callable[[K, list[T]], Awaitable[Sequence[R | BaseException]]],
        *,
        max_batch: int,
        max_inflight: int,
        min_inflight: int = 2,
        seconds_per_slot: float = 0.002,
        weight: Callable[[T], int] = lambda item: 1,
        identity: Callable[[T], Iterable[Hashable]] | None = None,
        latency: float = 0.0,
    ) -> None:
        self._run = run
        self.max_batch = max_batch
        self.max_inflight = max_inflight
        self.min_inflight = min(min_inflight, max_inflight)
        self.seconds_per_slot = seconds_per_slot
        # Floor of recent statement times, seconds (0: nothing measured yet); it starts at the
        # database's measured round trip when the caller knows it.
        self.latency = latency
        self._weight = weight
        self._identity = identity
        self._pending: dict[K, list[tuple[T, asyncio.Future[R]]]] = {}
        self._inflight: dict[K, int] = {}
        self.statements = 0
        self.items = 0

    async def submit(self, key: K, item: T) -> R:
        """Send `item` in the next statement for `key`; returns its own result."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(key, []).append((item, future))
        if self._inflight.get(key, 0) < self.inflight_limit():
            self._launch(key)
        return await future

    def _observe(self, elapsed: float) -> None:
        """Track the floor: drop to a faster statement at once, drift up slowly otherwise."""
        if not self.latency or elapsed < self.latency:
            self.latency = elapsed
        else:
            self.latency += (elapsed - self.latency) * 0.01

    def inflight_limit(self) -> int:
        """Statements allowed in flight per key, from the measured statement latency."""
        wanted = math.ceil(self.latency / self.seconds_per_slot) if self.latency else self.min_inflight
        return max(self.min_inflight, min(self.max_inflight, wanted))

    def _launch(self, key: K) -> None:
        pending = self._pending.get(key)
        if not pending:
            return
        batch: list[tuple[T, asyncio.Future[R]]] = []
        rest: list[tuple[T, asyncio.Future[R]]] = []
        size = 0
        heavy = False
        seen: set[Hashable] = set()
        for entry in pending:
            item, future = entry
            if future.done():  # caller gave up (cancelled) before we sent it
                continue
            idents = tuple(self._identity(item)) if self._identity is not None else ()
            w = self._weight(item)
            if (batch and size + w > self.max_batch) or any(i in seen for i in idents):
                rest.append(entry)  # the same id twice waits for the next statement
                continue
            batch.append(entry)
            size += w
            heavy = heavy or w > 1
            seen.update(idents)
        if rest:
            self._pending[key] = rest
        else:
            self._pending.pop(key, None)
        if not batch:
            return
        self._inflight[key] = self._inflight.get(key, 0) + 1
        asyncio.ensure_future(self._execute(key, batch, observe=not heavy))

    async def _execute(self, key: K, batch: list[tuple[T, asyncio.Future[R]]], *, observe: bool = True) -> None:
        self.statements += 1
        self.items += len(batch)
        started = time.perf_counter()
        try:
            results = await self._run(key, [item for item, _ in batch])
            if observe:  # a statement carrying whole batches takes as long as its rows, not the network
                self._observe(time.perf_counter() - started)
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
        except BaseException as exc:  # the whole statement failed: every caller learns why
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            self._inflight[key] -= 1
            if not self._inflight[key]:
                del self._inflight[key]
            self._launch(key)

    def stats(self) -> dict[str, Any]:
        """Statements sent and items carried (items/statements is the batching factor)."""
        return {"statements": self.statements, "items": self.items}
