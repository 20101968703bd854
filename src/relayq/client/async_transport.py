"""Asyncio HTTP transport on aiohttp: a keep-alive connection pool, no logic of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from relayq.client.protocol import Request, Response, TransportError, raise_for_status, request_headers

if TYPE_CHECKING:
    import aiohttp


class AsyncTransport:
    """Sends :class:`Request` objects over one pooled aiohttp session.

    The session is created on first use, inside the running event loop, so an ``AsyncClient``
    may be constructed anywhere (aiohttp binds a session to the loop that creates it).
    """

    def __init__(self, base_url: str, *, api_key: str | None, timeout: float, pool_size: int) -> None:
        self._base_url = base_url
        self._api_key = api_key
        self._timeout = timeout
        self._pool_size = pool_size
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        # Imported here: aiohttp takes ~0.2 s to import, and blocking CLI commands never need it.
        import aiohttp

        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._pool_size, limit_per_host=self._pool_size)
            self._session = aiohttp.ClientSession(connector=connector, raise_for_status=False)
        return self._session

    async def send(self, request: Request) -> Response:
        """Perform one request; raise :class:`TransportError` when no response arrives."""
        import aiohttp

        timeout = aiohttp.ClientTimeout(
            total=None, connect=self._timeout, sock_read=self._timeout + request.extra_timeout
        )
        try:
            async with self._get_session().request(
                request.method,
                self._base_url + request.path,
                params=request.params or None,
                data=request.body,
                headers=request_headers(request, self._api_key),
                timeout=timeout,
            ) as response:
                return Response(response.status, await response.read())
        except aiohttp.ClientConnectorError as exc:
            raise TransportError(str(exc), sent=False) from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise TransportError(str(exc) or type(exc).__name__, sent=True) from exc

    async def stream(self, request: Request, *, read_timeout: float) -> AsyncIterator[bytes]:
        """Yield the body of a long-lived response (Server-Sent Events) as it arrives."""
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=None, connect=self._timeout, sock_read=read_timeout)
        headers = {**request_headers(request, self._api_key), "Accept": "text/event-stream"}
        try:
            async with self._get_session().get(
                self._base_url + request.path, params=request.params or None, headers=headers, timeout=timeout
            ) as response:
                if response.status >= 400:
                    raise_for_status(Response(response.status, await response.read()))
                async for chunk in response.content.iter_any():
                    yield chunk
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise TransportError(str(exc) or type(exc).__name__, sent=True) from exc

    async def close(self) -> None:
        """Close the session and its pooled connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None
