"""A minimal keep-alive HTTP/1.1 client for the load generator.

The load generator shares the machine's cores with the server and PostgreSQL, so every
microsecond it spends per request is taken from what it measures. aiohttp costs a few hundred
microseconds of Python per request (URL objects, header multidicts, tracing hooks, response
objects); this client writes one pre-built request with one `write` and parses only the status
line and Content-Length of the answer. It speaks exactly what Relay's server answers: HTTP/1.1
keep-alive with a Content-Length (no chunked bodies, no redirects, no compression).
"""

from __future__ import annotations

import asyncio
from typing import cast
from urllib.parse import urlsplit


class HttpError(Exception):
    """The connection failed or the server said something this client does not speak."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's does not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiter is not None and not self.waiter.done():
            self._parse()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(HttpError(f"connection closed: {exc}"))

    def _parse(self) -> None:
        buffer = self.buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(buffer[:end]).lower()
        marker = head.find(b"\r\ncontent-length:")
        if marker < 0:
            assert self.waiter is not None
            self.waiter.set_exception(HttpError(f"no Content-Length in {head[:200]!r}"))
            return
        line_end = head.find(b"\r\n", marker + 2)
        length = int(head[marker + 17 : line_end if line_end > 0 else len(head)])
        total = end + 4 + length
        if len(buffer) < total:
            return
        body = bytes(buffer[end + 4 : total])
        del buffer[:total]
        assert self.waiter is not None
        self.waiter.set_result((int(head[9:12]), body))

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        if self.buffer:  # bytes that came early (they never should, but a hang would be worse)
            self._parse()
        return await self.waiter


class RawHttp:
    """Requests to one server over a pool of keep-alive connections."""

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/")
        lines = [f"Host: {self.host}:{self.port}", *(f"{k}: {v}" for k, v in headers.items())]
        self._headers = ("\r\n".join(lines) + "\r\n").encode()
        self._idle: list[_Connection] = []
        self._all: list[_Connection] = []

    def build(self, method: str, path: str, body: bytes = b"") -> bytes:
        """The bytes of one request (callers cache them for requests they repeat)."""
        head = f"{method} {self.prefix}{path} HTTP/1.1\r\n".encode() + self._headers
        return head + b"Content-Length: %d\r\n\r\n" % len(body) + body

    async def send(self, request: bytes) -> tuple[int, bytes]:
        """Send a built request; returns (status, body)."""
        connection = None
        while self._idle and connection is None:
            candidate = self._idle.pop()
            if not candidate.closed:  # the server closes connections idle past its keep-alive timeout
                connection = candidate
        if connection is None:
            connection = await self._connect()
        try:
            result = await connection.exchange(request)
        except BaseException:
            if connection.transport is not None:
                connection.transport.close()
            raise
        if not connection.closed:
            self._idle.append(connection)
        return result

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        """Build and send one request."""
        return await self.send(self.build(method, path, body))

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(_Connection, self.host, self.port)
        self._all.append(connection)
        return connection

    async def close(self) -> None:
        """Close every connection."""
        for connection in self._all:
            if connection.transport is not None:
                connection.transport.close()
        self._all.clear()
        self._idle.clear()
