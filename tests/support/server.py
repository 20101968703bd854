"""Real PostgreSQL databases and real `relay serve` processes for the tests.

A test session gets its own database (created on RELAY_TEST_ADMIN_URL, default the local
PostgreSQL on 127.0.0.1:5432; an embedded PostgreSQL when none answers), and servers run as
subprocesses exactly as a user starts them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from relayq.bench.environment import create_database, drop_database, free_port

ADMIN_URL = os.environ.get("RELAY_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
_embedded_url: str | None = None


def _run(coro: object) -> object:
    import asyncio

    return asyncio.run(coro)  # type: ignore[arg-type]


def admin_url() -> str:
    """A URL with rights to create databases: the configured server, else an embedded one."""
    global _embedded_url
    try:
        _run(_ping(ADMIN_URL))
        return ADMIN_URL
    except (OSError, asyncpg.PostgresError):
        pass
    if _embedded_url is None:
        from relayq.db.embedded import EmbeddedPostgres

        base = Path("/var/lib/relay") if os.geteuid() == 0 else Path(tempfile.gettempdir())
        _embedded_url = EmbeddedPostgres(base / "test-pgdata").start()
    return _embedded_url


async def _ping(url: str) -> None:
    conn = await asyncpg.connect(url, timeout=3)
    await conn.close()


@contextlib.contextmanager
def fresh_database(prefix: str = "relay_test") -> Iterator[str]:
    """Create an empty database for the duration of the block; yields its URL."""
    admin = admin_url()
    url: str = _run(create_database(admin, prefix, migrated=False))  # type: ignore[assignment]
    try:
        yield url
    finally:
        _run(drop_database(admin, url))


@dataclass
class LiveServer:
    """A running `relay serve` subprocess."""

    url: str
    database_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def api(self) -> str:
        """Base URL of the REST API."""
        return self.url + "/api"

    def log(self) -> str:
        """What the server printed so far (for failure messages)."""
        return self.log_path.read_text(errors="replace")


# Fast background loops so tests observe reclaims and flushes quickly.
TEST_ENV = {
    "REAPER_INTERVAL_MS": "200",
    "ACTIVITY_FLUSH_INTERVAL_MS": "50",
    "EVENT_FLUSH_MS": "50",
    "LOG_LEVEL": "warning",
}


def spawn_server(
    database_url: str, env: dict[str, str] | None = None, port: int | None = None, args: Sequence[str] = ()
) -> LiveServer:
    """Start `python -m relayq serve [args]` and wait until /api/health answers."""
    port = port or free_port()
    full_env = {**os.environ, **TEST_ENV, "DATABASE_URL": database_url, "SECRET_KEY": "", **(env or {})}
    log_file = tempfile.NamedTemporaryFile(prefix="relay-server-", suffix=".log", delete=False)
    process = subprocess.Popen(
        [sys.executable, "-m", "relayq", "serve", "--host", "127.0.0.1", "--port", str(port), *args],
        env=full_env, stdout=log_file, stderr=subprocess.STDOUT,
    )
    server = LiveServer(f"http://127.0.0.1:{port}", database_url, process, Path(log_file.name))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"relay serve exited early:\n{server.log()}")
        try:
            with urllib.request.urlopen(server.url + "/health", timeout=1) as response:
                if response.status == 200:
                    return server
        except OSError:
            time.sleep(0.1)
    stop_server(server)
    raise RuntimeError(f"relay serve did not become healthy:\n{server.log()}")


def stop_server(server: LiveServer, sig: int = signal.SIGTERM) -> int:
    """Stop the server (SIGTERM: graceful) and return its exit code."""
    if server.process.poll() is None:
        server.process.send_signal(sig)
        try:
            server.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    return server.process.returncode


@contextlib.contextmanager
def start_server(database_url: str, env: dict[str, str] | None = None) -> Iterator[LiveServer]:
    """A server for the duration of the block, with extra settings (e.g. SECRET_KEY)."""
    server = spawn_server(database_url, env)
    try:
        yield server
    finally:
        stop_server(server)
