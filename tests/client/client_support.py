"""Helpers of the client tests that run the CLI and the examples as subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from relayq.client import RouteNotFoundError

REPO = Path(__file__).resolve().parents[2]


def cli_env(relay_url: str, **extra: str) -> dict[str, str]:
    """Environment for a CLI or example subprocess pointed at the live server."""
    env = {**os.environ, "RELAY_URL": relay_url, "PYTHONUNBUFFERED": "1", **extra}
    env.pop("RELAY_API_KEY", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    return env


def run_cli(
    relay_url: str, *args: str, input: str | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run the client-side ``relay`` commands in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "relayq.client", *args],
        env=cli_env(relay_url),
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def skip_unless_served(probe: Callable[[], object]) -> None:
    """Skip a test whose endpoint the server does not serve (yet) rather than fail it."""
    try:
        probe()
    except RouteNotFoundError as exc:
        pytest.skip(f"server lacks the endpoint: {exc.message}")
