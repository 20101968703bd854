"""``Worker``: runs a handler over one or more queues with a bounded concurrency.

Life of a message: fetched in a batch (one long-poll request for as many messages as there are
free slots), handed to the handler, its lease extended (touch) while the handler runs, then
acked on success or nacked with the exception text on failure. The nack sends no delay, so the
queue's own retry policy (max attempts, retry backoff) decides what happens next.

Shutdown (``stop()``, SIGTERM or SIGINT): fetching stops, in-flight handlers get
``shutdown_timeout`` seconds to finish, and the messages of those still running are released
(nacked) so that another worker can take them without waiting for the lease to expire. A second
signal releases them at once. A plain handler cannot be stopped: it runs on in its daemon thread,
which does not keep the process from exiting. Delivery stays at-least-once: a worker that dies without a
shutdown leaves its messages to come back when their leases expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import queue as queue_module
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from relayq.client.client import AsyncClient
from relayq.client.errors import (
    APIError,
    DatabaseUnavailableError,
    InvalidStateError,
    LockLostError,
    MessageNotFoundError,
    QueueNotFoundError,
    RelayConnectionError,
    RelayError,
    ServerError,
)
from relayq.client.models import Message
from relayq.client.protocol import already_acknowledged

logger = logging.getLogger("relayq.worker")

Handler = Callable[[Message], Any]
"""A handler takes the message; plain functions run in daemon threads, coroutine functions on the loop."""

T = TypeVar("T")

# Errors after which fetching is retried: the server or its database may come back, and a
# missing queue may be created (workers are often deployed before whatever creates their queue).
_UNAVAILABLE = (RelayConnectionError, DatabaseUnavailableError, ServerError)
_TRANSIENT = (*_UNAVAILABLE, QueueNotFoundError)
# Answers meaning our lease is gone; the message is someone else's now.
_LEASE_GONE = (LockLostError, MessageNotFoundError, InvalidStateError)
_MAX_ERROR_TEXT = 2000
# Retries of an ack or nack the server answered with a plain 500 (outages are retried until over).
_MAX_FAULT_RETRIES = 3
# At shutdown, how long an ack or nack already under way may still take (an outage retries it).
SETTLE_GRACE = 5.0
# An empty fetch that came back sooner than this (a poll timeout of 0, or a server that answers
# early) waits out the rest before the queue is polled again: no tight loop while idle.
_MIN_EMPTY_POLL_INTERVAL = 1.0
# With fewer free slots than queues, a long poll holds a slot that another idle queue's loop may
# be about to wait for: such polls last at most this long, so a message on that other queue waits
# about a second, not a whole poll timeout (5 s by default).
_SHARED_POLL_TIMEOUT = 1.0


def describe_exception(exc: BaseException) -> str:
    """The nack reason recorded as ``last_error``: the exception's type and text.

    An exception whose ``str()`` itself raises is described by its type: raising here lost the
    nack, and the message waited for its lease to expire.
    """
    try:
        detail = str(exc)
    except Exception:
        detail = "<str() failed>"
    text = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return text[:_MAX_ERROR_TEXT]


class HandlerThreads:
    """Daemon threads that run a plain (non-async) handler, reused from message to message.

    Not a ``ThreadPoolExecutor``: Python joins its threads at interpreter exit, so a handler
    abandoned at shutdown (its message already released) would keep the process alive until it
    returned. Python cannot stop a thread; a daemon thread at least does not hold up the exit.
    """

    def __init__(self, size: int, name: str = "relayq-handler") -> None:
        self._size = size
        self._name = name
        self._jobs: queue_module.SimpleQueue[Callable[[], None] | None] = queue_module.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._threads: list[threading.Thread] = []

    async def run(self, function: Callable[[T], object], argument: T) -> None:
        """Call ``function(argument)`` in a thread; cancelling abandons it (it runs on)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def settle(error: BaseException | None) -> None:
            if done.done():  # cancelled: the worker has given up on this call
                return
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)

        def job() -> None:
            error: BaseException | None = None
            try:
                function(argument)
            except BaseException as exc:  # handed to the awaiting task, as an executor would
                error = exc
            # The loop is closed when the worker stopped before this abandoned call returned.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, error)

        self._jobs.put(job)
        if not self._idle.acquire(blocking=False) and len(self._threads) < self._size:
            thread = threading.Thread(
                target=self._serve, name=f"{self._name}-{len(self._threads)}", daemon=True
            )
            self._threads.append(thread)
            thread.start()
        await done

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            job()
            self._idle.release()

    def shutdown(self) -> None:
        """Let idle threads end; a thread still running an abandoned call ends after it."""
        for _ in self._threads:
            self._jobs.put(None)


class Worker:
    """Runs ``handler`` for every message of ``queues``, ``concurrency`` messages at a time.

    Either pass a ``client`` (an :class:`AsyncClient`) or the ``url`` and ``api_key`` to build
    one. ``ack_timeout`` overrides the lease length at dequeue (default: each message's own);
    leases are extended every third of that while a handler runs (or every ``touch_interval``).
    """

    def __init__(
        self,
        handler: Handler,
        queues: str | Sequence[str] = "default",
        *,
        url: str | None = None,
        api_key: str | None = None,
        client: AsyncClient | None = None,
        concurrency: int = 1,
        batch_size: int | None = None,
        poll_timeout: float = 5.0,
        ack_timeout: float | None = None,
        touch_interval: float | None = None,
        type: str | None = None,
        consumer_id: str | None = None,
        shutdown_timeout: float = 30.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.handler = handler
        self.queues = [queues] if isinstance(queues, str) else list(queues)
        if not self.queues:
            raise ValueError("a worker needs at least one queue")
        self.concurrency = concurrency
        self.batch_size = max(1, min(batch_size or concurrency, 1000))
        self.poll_timeout = poll_timeout
        self.ack_timeout = ack_timeout
        self.touch_interval = touch_interval
        self.type = type
        self.consumer_id = consumer_id or f"{socket.gethostname()}-{os.getpid()}"
        self.shutdown_timeout = shutdown_timeout
        self.processed = 0
        """Messages handled successfully and acked."""
        self.failed = 0
        """Messages whose handler raised (and that were nacked)."""
        self.stop_signal: signal.Signals | None = None
        """The first signal that stopped :meth:`run` (``None``: :meth:`stop` or an error)."""
        self._url = url
        self._api_key = api_key
        self._client = client
        self._is_async = inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
            getattr(handler, "__call__", None)  # noqa: B004 - async callable objects
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._force = False
        self._inflight: set[asyncio.Task[None]] = set()
        self._settling: set[asyncio.Task[None]] = set()  # handler done, its ack or nack under way
        self._slot_waiters = 0  # fetch loops (one per queue) waiting for a free slot

    # -- control ---------------------------------------------------------------------------

    def run(self) -> None:
        """Run until SIGTERM/SIGINT or :meth:`stop`, in a fresh event loop (blocking)."""
        asyncio.run(self._run_with_signals())

    def stop(self) -> None:
        """Ask the worker to shut down gracefully; safe to call from any thread or a handler."""
        loop, stopping = self._loop, self._stopping
        if loop is None or stopping is None:
            return
        if stopping.is_set():
            self._force = True  # a second request: release in-flight messages now
        loop.call_soon_threadsafe(stopping.set)

    async def _run_with_signals(self) -> None:
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._on_signal, sig)
                installed.append(sig)
        try:
            await self.run_async()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        logger.info("received %s, shutting down", sig.name)
        if self.stop_signal is None:
            self.stop_signal = sig
        self.stop()

    async def run_async(self) -> None:
        """Run in the current event loop until :meth:`stop`; raises on a fatal API error."""
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._force = False
        self.stop_signal = None
        owns_client = self._client is None
        client = self._client or AsyncClient(
            self._url, api_key=self._api_key, pool_size=self.concurrency + len(self.queues) + 4
        )
        threads = None if self._is_async else HandlerThreads(self.concurrency)
        slots = asyncio.Semaphore(self.concurrency)
        logger.info(
            "worker %s started on %s (concurrency %d)",
            self.consumer_id,
            ", ".join(self.queues),
            self.concurrency,
        )
        fetchers = [asyncio.create_task(self._fetch_loop(client, threads, slots, q)) for q in self.queues]
        try:
            await asyncio.gather(*fetchers)
        finally:
            self._stopping.set()
            await asyncio.gather(*fetchers, return_exceptions=True)
            await self._drain()
            if threads is not None:
                threads.shutdown()
            if owns_client:
                await client.close()
            logger.info(
                "worker %s stopped: %d processed, %d failed", self.consumer_id, self.processed, self.failed
            )

    # -- fetching --------------------------------------------------------------------------

    async def _unless_stopping(self, awaitable: Awaitable[T]) -> tuple[bool, T | None]:
        """Await ``awaitable`` unless a stop request comes first (then it is cancelled)."""
        assert self._stopping is not None
        task = asyncio.ensure_future(awaitable)
        stop = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if task.done():
            return True, task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return False, None

    async def _fetch_loop(
        self, client: AsyncClient, threads: HandlerThreads | None, slots: asyncio.Semaphore, queue: str
    ) -> None:
        assert self._stopping is not None
        backoff = 0.0
        while not self._stopping.is_set():
            self._slot_waiters += 1
            try:
                got_slot, _ = await self._unless_stopping(slots.acquire())
            finally:
                self._slot_waiters -= 1
            if not got_slot:
                return
            # Fill every free slot with one request instead of one request per message.
            taken = 1
            while taken < self.batch_size and not slots.locked():
                await slots.acquire()
                taken += 1
            # A long poll holds its slots until it returns. When another queue's loop is waiting
            # for one, look without waiting, so an idle queue cannot keep a busy one from its
            # slots for a whole poll timeout (with fewer slots than queues it did every time).
            if self._slot_waiters:
                wait = 0.0
            elif len(self.queues) > self.concurrency - len(self._inflight):  # free slots, not configured ones
                wait = min(self.poll_timeout, _SHARED_POLL_TIMEOUT)
            else:
                wait = self.poll_timeout
            polled_at = time.monotonic()
            try:
                # Not cancelled on stop: a poll cut short could lease messages nobody handles.
                messages = await client.dequeue_batch(
                    taken,
                    queue,
                    wait=wait,
                    type=self.type,
                    consumer_id=self.consumer_id,
                    ack_timeout=self.ack_timeout,
                )
            except _TRANSIENT as exc:
                for _ in range(taken):
                    slots.release()
                backoff = min(max(backoff * 2, 0.5), 10.0)
                if isinstance(exc, QueueNotFoundError):  # deployed before its queue, or a typo
                    logger.warning("queue %r does not exist (check the name); waiting for it to be created, "
                                   "next look in %.1fs", queue, backoff)
                else:
                    logger.warning("fetching from %r failed: %s; retrying in %.1fs", queue, exc, backoff)
                await self._unless_stopping(asyncio.sleep(backoff))
                continue
            except BaseException:
                for _ in range(taken):
                    slots.release()
                raise
            backoff = 0.0
            for _ in range(taken - len(messages)):
                slots.release()
            for message in messages:
                task = asyncio.create_task(self._process(client, threads, slots, message))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
            if not messages:
                idle = _MIN_EMPTY_POLL_INTERVAL - (time.monotonic() - polled_at)
                if idle > 0:
                    await self._unless_stopping(asyncio.sleep(idle))

    # -- processing ------------------------------------------------------------------------

    async def _process(
        self,
        client: AsyncClient,
        threads: HandlerThreads | None,
        slots: asyncio.Semaphore,
        message: Message,
    ) -> None:
        lease = self.ack_timeout or message.ack_timeout_seconds or 30
        keeper = asyncio.create_task(self._keep_lease(client, message, lease))
        started = time.monotonic()
        try:
            try:
                await self._call_handler(threads, message)
            except asyncio.CancelledError:
                keeper.cancel()
                await self._settle(
                    lambda: client.nack(message, error="Worker shut down before the handler finished"),
                    message,
                    "release",
                    retry=False,  # shutting down: the lease's expiry returns the message anyway
                )
                raise
            except BaseException as exc:  # not only Exception: a custom BaseException went un-nacked
                keeper.cancel()
                self.failed += 1
                reason = describe_exception(exc)
                # Handler failures are routine (the queue retries them); tracebacks only when debugging.
                logger.warning("message %s failed: %s", message.id, reason,
                               exc_info=exc if logger.isEnabledFor(logging.DEBUG) else None)
                self._mark_settling()
                await self._settle(lambda: client.nack(message, error=reason), message, "nack")
                if isinstance(exc, (SystemExit, KeyboardInterrupt)):  # the handler asked to stop
                    logger.warning("a handler raised %s: stopping the worker", type(exc).__name__)
                    self.stop()
            else:
                keeper.cancel()
                self._mark_settling()
                if await self._settle(lambda: client.ack(message), message, "ack"):
                    self.processed += 1
                    logger.debug("message %s done in %.3fs", message.id, time.monotonic() - started)
        finally:
            keeper.cancel()
            slots.release()
            self._settling.discard(asyncio.current_task())

    def _mark_settling(self) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._settling.add(task)

    async def _call_handler(self, threads: HandlerThreads | None, message: Message) -> None:
        if threads is None:
            result = self.handler(message)
            if inspect.isawaitable(result):
                await result
        else:
            await threads.run(self.handler, message)

    async def _settle(
        self, send: Callable[[], Awaitable[object]], message: Message, action: str, *, retry: bool = True
    ) -> bool:
        """Ack or nack; a lost lease is expected (someone else has the message), not a crash.

        With ``retry``, an ack or nack that fails because the server or its database is out is
        repeated with backoff until the server answers (the lock token fences the repeats):
        giving up would hand a finished message back for a second run once its lease expires.
        """
        backoff = 0.0
        faults = 0
        maybe_sent = False  # an earlier attempt may have reached the server and done its work
        while True:
            try:
                await send()
            except _LEASE_GONE as exc:
                if maybe_sent and action == "ack" and already_acknowledged(exc):
                    return True  # our earlier attempt landed; only its answer was lost
                logger.warning("%s of message %s skipped: lease lost (%s)", action, message.id, exc.code)
                return False
            except _UNAVAILABLE as exc:
                maybe_sent = maybe_sent or isinstance(exc, RelayConnectionError)
                # A plain 500 is a fault, not an outage (a proxy's 502/504 while the server
                # restarts is an outage): a few tries, not a slot held until shutdown.
                faults += isinstance(exc, ServerError) and exc.status == 500
                broken = faults > _MAX_FAULT_RETRIES
                if not retry or broken:
                    logger.error("%s of message %s failed: %s", action, message.id, exc)
                    return False
                backoff = min(max(backoff * 2, 0.5), 10.0)
                logger.warning(
                    "%s of message %s failed: %s; retrying in %.1fs", action, message.id, exc, backoff
                )
                await asyncio.sleep(backoff)
                continue
            except RelayError as exc:
                # The message comes back when its lease expires; at-least-once holds.
                logger.error("%s of message %s failed: %s", action, message.id, exc)
                return False
            return True

    async def _keep_lease(self, client: AsyncClient, message: Message, lease: float) -> None:
        """Extend the lease every third of its length so a long handler keeps its message."""
        interval = self.touch_interval or max(lease / 3, 0.1)
        while True:
            await asyncio.sleep(interval)
            try:
                await client.touch(message, extend=lease)
            except _LEASE_GONE as exc:
                logger.warning("lease of message %s lost while its handler runs (%s)", message.id, exc.code)
                return
            except RelayError as exc:
                logger.warning("extending the lease of message %s failed: %s", message.id, exc)

    async def _drain(self) -> None:
        """Give in-flight handlers ``shutdown_timeout`` seconds, then release what is left."""
        deadline = time.monotonic() + self.shutdown_timeout
        while self._inflight and not self._force and time.monotonic() < deadline:
            await asyncio.wait(set(self._inflight), timeout=min(0.1, max(deadline - time.monotonic(), 0)))
        # A message whose handler has finished is done: cancelling its ack would hand it back for a
        # second run once the lease expires. Its ack (or nack) gets SETTLE_GRACE to get through.
        # Handlers still running are released first: a second signal means at once.
        settling = self._inflight & self._settling
        running = self._inflight - settling
        for task in running:
            task.cancel()
        if settling:
            await asyncio.wait(settling, timeout=SETTLE_GRACE)
        pending = set(self._inflight) | running
        if pending:
            logger.warning("releasing %d in-flight message(s)", len(pending))
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)


__all__ = ["APIError", "Handler", "Worker", "describe_exception"]
