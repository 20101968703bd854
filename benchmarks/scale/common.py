"""Shared pieces of the scale benchmarks: servers on fresh databases, an HTTP load client,
latency statistics, and the table/JSON output every benchmark prints."""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from tests.support.server import LiveServer, fresh_database, spawn_server, stop_server  # noqa: E402

__all__ = ["LiveServer", "fresh_database", "spawn_server", "stop_server"]


@contextlib.contextmanager
def server_on(database_url: str, env: dict[str, str] | None = None, workers: int = 1) -> Iterator[LiveServer]:
    """`relay serve` (with `workers` processes) for the duration of the block."""
    quiet = {"LOG_LEVEL": "warning", "REAPER_INTERVAL_MS": "500", **(env or {})}
    server = spawn_server(database_url, quiet, args=["--workers", str(workers)] if workers > 1 else [])
    try:
        yield server
    finally:
        stop_server(server)


def summarize(latencies: Sequence[float]) -> dict[str, float]:
    """avg/p50/p95/p99/max in milliseconds."""
    ms = sorted(x * 1000 for x in latencies)
    if not ms:
        return {"n": 0, "avg": 0.0, "p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}

    def pct(p: float) -> float:
        return ms[min(len(ms) - 1, int(p * len(ms)))]

    return {"n": len(ms), "avg": statistics.fmean(ms), "p50": pct(0.5), "p95": pct(0.95), "p99": pct(0.99),
            "max": ms[-1]}


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain aligned table."""
    cells = [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)] if cells else [len(h) for h in headers]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(row, widths, strict=True))))
    sys.stdout.flush()


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def write_json(path: str | None, data: dict[str, Any]) -> None:
    """Machine-readable results, for comparing runs."""
    if path:
        Path(path).write_text(json.dumps(data, indent=2, default=str))
        print(f"\nresults written to {path}")


async def timed(call: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    """(seconds, result) of one awaited call."""
    started = time.perf_counter()
    result = await call()
    return time.perf_counter() - started, result


def session(limit: int = 200) -> aiohttp.ClientSession:
    """An HTTP client session with enough connections for the load."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit), timeout=aiohttp.ClientTimeout(total=60))


async def run_for(seconds: float, concurrency: int, op: Callable[[], Awaitable[None]]) -> tuple[int, list[float]]:
    """Run `op` in `concurrency` loops for `seconds`; returns (operations, latencies)."""
    latencies: list[float] = []
    stop = time.monotonic() + seconds

    async def loop() -> None:
        while time.monotonic() < stop:
            started = time.perf_counter()
            await op()
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return len(latencies), latencies


PG_BIN = Path("/usr/lib/postgresql/15/bin")


@contextlib.contextmanager
def private_cluster(settings: dict[str, str] | None = None) -> Iterator[str]:
    """A throwaway PostgreSQL cluster with stock settings (autovacuum on) on a free port; yields
    its admin URL. For measurements that depend on server settings a shared cluster may have
    changed (the storage run needs autovacuum). Runs as `postgres` when started by root."""
    import os
    import shutil
    import subprocess
    import tempfile

    from relayq.bench.environment import free_port

    bin_dir = PG_BIN if PG_BIN.exists() else Path(shutil.which("initdb") or "initdb").parent
    folder = Path(tempfile.mkdtemp(prefix="relay-scale-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    options = " ".join(f"-c {k}={v}" for k, v in {"listen_addresses": "127.0.0.1", **(settings or {})}.items())
    data = folder / "data"
    subprocess.run([*prefix, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-l", str(folder / "log"),
                    "-o", f"-p {port} -k {folder} {options}", "start"], check=True, stdout=subprocess.DEVNULL)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
                       check=False, stdout=subprocess.DEVNULL)
        shutil.rmtree(folder, ignore_errors=True)
