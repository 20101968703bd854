"""A TCP proxy that delays every chunk, to reproduce a remote database on one machine.

The seed measured the original service against a PostgreSQL about 300 ms away (round trip).
This proxy sits between the server and PostgreSQL and holds every chunk it forwards for a fixed
**one-way** delay, in both directions, so one query/response round trip costs about
`2 × one_way` = the requested round-trip latency. `relay bench --db-latency-ms 300` therefore
starts it with a one-way delay of 150 ms.

Order is preserved per direction (a FIFO of (due time, chunk) drained by one writer task), and
chunks are pipelined: a chunk that arrives 1 ms after another leaves 1 ms after it, not one
delay later, so the proxy adds latency but no throughput ceiling. Every connection has its own
pair of tasks, so concurrent connections never wait for each other.

Run it standalone with `python -m relayq.bench.latency_proxy --help`; the benchmark runs it as a
subprocess so its event loop does not compete with the load generator's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Sequence

CHUNK = 64 * 1024


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Copy reader → writer, releasing each chunk `delay` seconds after it was read."""
    pending: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def release() -> None:
        while True:
            due, chunk = await pending.get()
            if not chunk:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(chunk)
            await writer.drain()
        with contextlib.suppress(OSError):
            writer.write_eof()

    releaser = asyncio.ensure_future(release())
    try:
        while True:
            chunk = await reader.read(CHUNK)
            pending.put_nowait((time.monotonic() + delay, chunk))
            if not chunk:
                break
        await releaser
    finally:
        releaser.cancel()


class LatencyProxy:
    """Listens on `listen_port` and forwards to a TCP address or a Unix socket, with delay."""

    def __init__(self, one_way_ms: float, target_host: str, target_port: int, target_unix: str | None = None) -> None:
        self.delay = one_way_ms / 1000
        self.target_host = target_host
        self.target_port = target_port
        self.target_unix = target_unix
        self.server: asyncio.Server | None = None
        self.connections = 0

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Start listening; returns the bound port."""
        self.server = await asyncio.start_server(self._handle, host, port)
        bound: int = self.server.sockets[0].getsockname()[1]
        return bound

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            if self.target_unix:
                up_reader, up_writer = await asyncio.open_unix_connection(self.target_unix)
            else:
                up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            client_writer.close()
            return
        try:
            await asyncio.gather(
                _pump(client_reader, up_writer, self.delay),
                _pump(up_reader, client_writer, self.delay),
            )
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            for w in (client_writer, up_writer):
                with contextlib.suppress(Exception):
                    w.close()

    async def close(self) -> None:
        """Stop accepting; open connections end when their peers close."""
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def _serve(args: argparse.Namespace) -> None:
    proxy = LatencyProxy(args.one_way_ms, args.target_host, args.target_port, args.target_unix)
    port = await proxy.start(args.listen_host, args.listen_port)
    # The parent process waits for this line before it points the server at the proxy.
    print(f"READY {port}", flush=True)
    await asyncio.Event().wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m relayq.bench.latency_proxy`."""
    parser = argparse.ArgumentParser(description="TCP proxy that delays every chunk in both directions")
    parser.add_argument("--one-way-ms", type=float, required=True, help="delay per direction (RTT = 2 × this)")
    parser.add_argument("--target-host", default="127.0.0.1")
    parser.add_argument("--target-port", type=int, default=5432)
    parser.add_argument("--target-unix", default=None, help="forward to this Unix socket instead")
    parser.add_argument("--listen-host", default="127.0.0.1")
    parser.add_argument("--listen-port", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        pass
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
