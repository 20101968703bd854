"""uvicorn's httptools protocol, with each response head and body sent in one write.

uvicorn writes a response's status line and headers, then its body, as two `write` calls:
two system calls and two TCP segments, and the client wakes up twice. Under load that second
write cost as much server CPU as all of Relay's own code on the single-message endpoints
(docs/benchmarks.md). The transport proxy below holds a response head until the body that
follows it in the same event-loop step, and writes both at once; a head with no body behind
it (HEAD, a stream that starts later) is written on the next loop iteration.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class _HeadWithBody:
    """Transport proxy that joins a response head to the write that follows it."""

    __slots__ = ("_transport", "_loop", "_held")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held + data)
        elif data[:5] == b"HTTP/" and data[-4:] == b"\r\n\r\n":
            self._held = data
            self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        """Write a head that no body followed."""
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class RelayHttpProtocol(HttpToolsProtocol):
    """`relay serve`'s HTTP protocol: uvicorn's, with one write per response."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        proxy: Any = _HeadWithBody(transport, self.loop)
        super().connection_made(proxy)
