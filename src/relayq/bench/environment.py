"""What a benchmark run stands on: throw-away databases, the latency proxy and the server process.

The server runs as a subprocess, exactly as `relay serve` runs in production, so the load
generator (this process) and the server do not share one event loop and one core. The proxy
runs as a subprocess too, for the same reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import asyncpg

from relayq.db.migrate import migrate_dsn

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# Long enough that the lease reaper never scans during a run: its round trips would otherwise
# be counted in Queries/Op (no lease expires during a run; prefilled leases last an hour).
BENCH_REAPER_INTERVAL_MS = "3600000"


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


async def _can_connect(url: str) -> bool:
    try:
        conn = await asyncpg.connect(url, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await conn.close()
    return True


async def resolve_admin_url(explicit: str | None) -> str:
    """A URL allowed to create databases: the given one, the local server, else an embedded one."""
    if explicit:
        return explicit
    url = os.environ.get("RELAY_BENCH_ADMIN_URL") or os.environ.get("RELAY_TEST_ADMIN_URL") or DEFAULT_ADMIN_URL
    if await _can_connect(url):
        return url
    from relayq.db.embedded import EmbeddedPostgres, default_data_dir

    print("relay bench: no PostgreSQL at 127.0.0.1:5432; starting the embedded one", file=sys.stderr)
    return await asyncio.to_thread(EmbeddedPostgres(default_data_dir()).start)


async def create_database(admin_url: str, prefix: str, *, migrated: bool = True) -> str:
    """A new database (migrated unless asked not to); returns its URL. Tests use it too."""
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = with_database(admin_url, name)
    if migrated:
        await migrate_dsn(url)
    return url


async def drop_database(admin_url: str, url: str) -> None:
    """Drop a database created by `create_database` (best effort)."""
    name = urlsplit(url).path.lstrip("/")
    with contextlib.suppress(Exception):
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


def free_port() -> int:
    """An unused loopback TCP port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Target:
    """Where a PostgreSQL URL points: a TCP address or a Unix socket."""

    host: str
    port: int
    unix_path: str | None


def target_of(url: str) -> Target:
    """Parse host/port (or `?host=/dir` Unix socket) out of a PostgreSQL URL."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    host = (query.get("host") or [parts.hostname or "127.0.0.1"])[0]
    port = int((query.get("port") or [str(parts.port or 5432)])[0])
    if host.startswith("/"):
        return Target("", port, f"{host}/.s.PGSQL.{port}")
    return Target(host, port, None)


def through_proxy(url: str, port: int) -> str:
    """The same database reached through the proxy on 127.0.0.1:`port`."""
    parts = urlsplit(url)
    auth = parts.netloc.rpartition("@")[0]
    netloc = (auth + "@" if auth else "") + f"127.0.0.1:{port}"
    query = {k: v for k, v in parse_qs(parts.query).items() if k not in ("host", "port")}
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, doseq=True), parts.fragment))


class ProxyProcess:
    """`python -m relayq.bench.latency_proxy` in a subprocess."""

    def __init__(self, target: Target, rtt_ms: float) -> None:
        args = [sys.executable, "-m", "relayq.bench.latency_proxy", "--one-way-ms", str(rtt_ms / 2)]
        if target.unix_path:
            args += ["--target-unix", target.unix_path]
        else:
            args += ["--target-host", target.host, "--target-port", str(target.port)]
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline().split()
        if len(line) != 2 or line[0] != "READY":
            self.stop()
            raise RuntimeError("latency proxy did not start")
        self.port = int(line[1])

    def stop(self) -> None:
        """Terminate the proxy."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()


class ServerProcess:
    """`relay serve` in a subprocess on a free port, with the benchmark's settings."""

    def __init__(self, database_url: str, env: dict[str, str], workers: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": "", "LOG_LEVEL": "warning",
                    "REAPER_INTERVAL_MS": BENCH_REAPER_INTERVAL_MS, **env}
        self.log_file = tempfile.NamedTemporaryFile(prefix="relay-bench-server-", suffix=".log", delete=False)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "relayq", "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", str(workers), "--graceful-timeout", "5"],
            env=full_env, stdout=self.log_file, stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        """What the server printed (for error messages)."""
        return Path(self.log_file.name).read_text(errors="replace")[-4000:]

    def wait_ready(self, timeout: float = 90) -> None:
        """Block until /health answers 200 (the proxy's latency makes start-up take seconds)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"relay serve exited early:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"relay serve did not become healthy:\n{self.log()}")

    def pids(self) -> list[int]:
        """The server's process and its uvicorn worker children (for the profiler)."""
        return [self.process.pid]

    def stop(self, keep_log: bool = False) -> None:
        """Graceful stop (SIGTERM), then kill; the log is kept (and named) when asked."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if keep_log:
            print(f"relay bench: server log kept at {self.log_file.name}", file=sys.stderr)
            return
        with contextlib.suppress(OSError):
            os.unlink(self.log_file.name)
