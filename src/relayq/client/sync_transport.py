"""Blocking HTTP transport on urllib3: a keep-alive connection pool, no logic of its own."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    MaxRetryError,
    NewConnectionError,
)

from relayq.client.protocol import Request, Response, TransportError, raise_for_status, request_headers

# Connect failures mean the request never left this process, so any request may be repeated.
_CONNECT_ERRORS = (NewConnectionError, ConnectTimeoutError)


class SyncTransport:
    """Sends :class:`Request` objects over a pooled urllib3 connection manager."""

    def __init__(self, base_url: str, *, api_key: str | None, timeout: float, pool_size: int) -> None:
        self._base_url = base_url
        self._api_key = api_key
        self._timeout = timeout
        # block=False: more threads than pool slots get extra, short-lived connections
        # instead of waiting for one.
        self._pool = urllib3.PoolManager(num_pools=4, maxsize=pool_size, block=False, retries=False)

    def _url(self, request: Request) -> str:
        url = self._base_url + request.path
        return f"{url}?{urlencode(request.params)}" if request.params else url

    def send(self, request: Request) -> Response:
        """Perform one request; raise :class:`TransportError` when no response arrives."""
        try:
            response = self._pool.request(
                request.method,
                self._url(request),
                body=request.body,
                headers=request_headers(request, self._api_key),
                timeout=urllib3.Timeout(connect=self._timeout, read=self._timeout + request.extra_timeout),
            )
        except MaxRetryError as exc:
            raise TransportError(str(exc.reason), sent=not isinstance(exc.reason, _CONNECT_ERRORS)) from exc
        except _CONNECT_ERRORS as exc:
            raise TransportError(str(exc), sent=False) from exc
        except HTTPError as exc:
            raise TransportError(str(exc), sent=True) from exc
        return Response(response.status, response.data)

    def stream(self, request: Request, *, read_timeout: float) -> Iterator[bytes]:
        """Yield the body of a long-lived response (Server-Sent Events) as it arrives."""
        try:
            response = self._pool.request(
                request.method,
                self._url(request),
                headers={**request_headers(request, self._api_key), "Accept": "text/event-stream"},
                timeout=urllib3.Timeout(connect=self._timeout, read=read_timeout),
                preload_content=False,
            )
        except (MaxRetryError, HTTPError) as exc:
            raise TransportError(str(exc), sent=True) from exc
        try:
            if response.status >= 400:
                raise_for_status(Response(response.status, response.read()))
            try:
                yield from response.stream(4096, decode_content=True)
            except HTTPError as exc:
                raise TransportError(str(exc), sent=True) from exc
        finally:
            # An event stream is never read to its end: close the connection rather than
            # return it to the pool with unread data on it.
            response.close()
            response.release_conn()

    def close(self) -> None:
        """Close every pooled connection."""
        self._pool.clear()
