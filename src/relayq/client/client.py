"""``Client`` (blocking) and ``AsyncClient`` (asyncio) for the Relay REST API.

Both are thin executors of the operations in :mod:`relayq.client.protocol`: every public
method is generated from the one operation function, so the two clients cannot drift apart.
They differ only in how a request is sent and how a retry waits.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, TypeVar

from relayq.client import protocol
from relayq.client.async_transport import AsyncTransport
from relayq.client.errors import APIError, DatabaseUnavailableError, RelayConnectionError
from relayq.client.models import Event
from relayq.client.protocol import Call, RetryPolicy, SSEParser, TransportError
from relayq.client.sync_transport import SyncTransport

P = ParamSpec("P")
T = TypeVar("T")

# Servers send a ping every 15 s; a stream silent for much longer than that is dead.
_EVENTS_READ_TIMEOUT = 60.0


def _method_signature(op: Callable[..., Any], awaitable: bool) -> inspect.Signature:
    """The operation's signature with ``self`` in front and the parsed type as the result."""
    signature = inspect.signature(op)
    result = str(signature.return_annotation).removeprefix("Call[").removesuffix("]")
    self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
    return signature.replace(
        parameters=[self_param, *signature.parameters.values()],
        return_annotation=f"Awaitable[{result}]" if awaitable else result,
    )


def _sync_method(op: Callable[P, Call[T]]) -> Callable[Concatenate[Client, P], T]:
    @functools.wraps(op)
    def method(self: Client, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self.execute(op(*args, **kwargs))

    del method.__wrapped__
    method.__signature__ = _method_signature(op, awaitable=False)  # type: ignore[attr-defined]
    return method


def _async_method(op: Callable[P, Call[T]]) -> Callable[Concatenate[AsyncClient, P], Coroutine[Any, Any, T]]:
    @functools.wraps(op)
    async def method(self: AsyncClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self.execute(op(*args, **kwargs))

    del method.__wrapped__
    method.__signature__ = _method_signature(op, awaitable=True)  # type: ignore[attr-defined]
    return method


class _ClientSettings:
    """What both clients resolve from their arguments and the environment."""

    def __init__(
        self,
        url: str | None,
        api_key: str | None,
        timeout: float,
        pool_size: int,
        retry: RetryPolicy | None,
    ) -> None:
        self.url = protocol.resolve_base_url(url)
        self.api_key = protocol.resolve_api_key(api_key)
        self.timeout = timeout
        self.pool_size = pool_size
        self.retry = retry or RetryPolicy()


class Client:
    """Blocking client; safe to share between threads (the connection pool is thread-safe).

    ``url`` defaults to ``RELAY_URL`` (else ``http://127.0.0.1:3001``) and ``api_key`` to
    ``RELAY_API_KEY``. Failed connections are retried with backoff when repeating the call is
    safe (see :class:`RetryPolicy`).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        pool_size: int = 10,
        retry: RetryPolicy | None = None,
    ) -> None:
        settings = _ClientSettings(url, api_key, timeout, pool_size, retry)
        self.url = settings.url
        self._settings = settings
        self._transport = SyncTransport(
            settings.url, api_key=settings.api_key, timeout=timeout, pool_size=pool_size
        )

    def execute(self, call: Call[T]) -> T:
        """Send a call, retrying as the policy allows, and parse its response."""
        attempt = 1
        repeat = False
        while True:
            started = time.monotonic()
            try:
                return call.parse(self._transport.send(call.request))
            except (TransportError, DatabaseUnavailableError) as exc:
                delay = protocol.next_delay(self._settings.retry, call.request, attempt, exc,
                                            time.monotonic() - started)
                repeat = repeat or protocol.may_have_landed(exc)
            except APIError as exc:
                if repeat and call.on_repeat is not None:
                    return call.on_repeat(exc)
                raise
            time.sleep(delay)
            attempt += 1

    def events(self) -> Iterator[Event]:
        """Follow the server's event stream (``queue-update`` and ``ping`` events) until closed."""
        parser = SSEParser()
        request = protocol.events_request()
        try:
            for chunk in self._transport.stream(request, read_timeout=_EVENTS_READ_TIMEOUT):
                yield from parser.feed(chunk)
        except TransportError as exc:
            raise RelayConnectionError(f"event stream: {exc}") from exc

    def close(self) -> None:
        """Close pooled connections."""
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    enqueue = _sync_method(protocol.enqueue)
    enqueue_batch = _sync_method(protocol.enqueue_batch)
    dequeue = _sync_method(protocol.dequeue)
    dequeue_batch = _sync_method(protocol.dequeue_batch)
    ack = _sync_method(protocol.ack)
    ack_batch = _sync_method(protocol.ack_batch)
    nack = _sync_method(protocol.nack)
    nack_batch = _sync_method(protocol.nack_batch)
    touch = _sync_method(protocol.touch)
    create_queue = _sync_method(protocol.create_queue)
    list_queues = _sync_method(protocol.list_queues)
    get_queue = _sync_method(protocol.get_queue)
    update_queue = _sync_method(protocol.update_queue)
    delete_queue = _sync_method(protocol.delete_queue)
    purge_queue = _sync_method(protocol.purge_queue)
    rename_queue = _sync_method(protocol.rename_queue)
    health = _sync_method(protocol.health)
    metrics = _sync_method(protocol.metrics)
    queue_status = _sync_method(protocol.queue_status)
    server_config = _sync_method(protocol.server_config)
    activity = _sync_method(protocol.activity)
    export_messages = _sync_method(protocol.export_messages)
    import_messages = _sync_method(protocol.import_messages)


class AsyncClient:
    """Asyncio client on aiohttp; use it from one event loop (``async with AsyncClient() as c``).

    Same operations, arguments and results as :class:`Client`, as coroutines.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        pool_size: int = 100,
        retry: RetryPolicy | None = None,
    ) -> None:
        settings = _ClientSettings(url, api_key, timeout, pool_size, retry)
        self.url = settings.url
        self._settings = settings
        self._transport = AsyncTransport(
            settings.url, api_key=settings.api_key, timeout=timeout, pool_size=pool_size
        )

    async def execute(self, call: Call[T]) -> T:
        """Send a call, retrying as the policy allows, and parse its response."""
        attempt = 1
        repeat = False
        while True:
            started = time.monotonic()
            try:
                return call.parse(await self._transport.send(call.request))
            except (TransportError, DatabaseUnavailableError) as exc:
                delay = protocol.next_delay(self._settings.retry, call.request, attempt, exc,
                                            time.monotonic() - started)
                repeat = repeat or protocol.may_have_landed(exc)
            except APIError as exc:
                if repeat and call.on_repeat is not None:
                    return call.on_repeat(exc)
                raise
            await asyncio.sleep(delay)
            attempt += 1

    async def events(self) -> AsyncIterator[Event]:
        """Follow the server's event stream (``queue-update`` and ``ping`` events) until closed."""
        parser = SSEParser()
        request = protocol.events_request()
        try:
            async for chunk in self._transport.stream(request, read_timeout=_EVENTS_READ_TIMEOUT):
                for event in parser.feed(chunk):
                    yield event
        except TransportError as exc:
            raise RelayConnectionError(f"event stream: {exc}") from exc

    async def close(self) -> None:
        """Close the session and its pooled connections."""
        await self._transport.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    enqueue = _async_method(protocol.enqueue)
    enqueue_batch = _async_method(protocol.enqueue_batch)
    dequeue = _async_method(protocol.dequeue)
    dequeue_batch = _async_method(protocol.dequeue_batch)
    ack = _async_method(protocol.ack)
    ack_batch = _async_method(protocol.ack_batch)
    nack = _async_method(protocol.nack)
    nack_batch = _async_method(protocol.nack_batch)
    touch = _async_method(protocol.touch)
    create_queue = _async_method(protocol.create_queue)
    list_queues = _async_method(protocol.list_queues)
    get_queue = _async_method(protocol.get_queue)
    update_queue = _async_method(protocol.update_queue)
    delete_queue = _async_method(protocol.delete_queue)
    purge_queue = _async_method(protocol.purge_queue)
    rename_queue = _async_method(protocol.rename_queue)
    health = _async_method(protocol.health)
    metrics = _async_method(protocol.metrics)
    queue_status = _async_method(protocol.queue_status)
    server_config = _async_method(protocol.server_config)
    activity = _async_method(protocol.activity)
    export_messages = _async_method(protocol.export_messages)
    import_messages = _async_method(protocol.import_messages)
