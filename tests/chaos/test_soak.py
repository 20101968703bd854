"""The chaos soak in its short CI configuration (the long run: `python -m tests.chaos.soak`)."""

from __future__ import annotations

import os

import pytest

from tests.chaos.postgres import available
from tests.chaos.soak import parse_args, run_soak

pytestmark = pytest.mark.chaos


@pytest.mark.skipif(not available(), reason="initdb/pg_ctl not available")
def test_nothing_lost_under_server_kills_database_crash_and_dropped_connections() -> None:
    duration = os.environ.get("RELAY_CHAOS_SECONDS", "20")
    args = parse_args(["--duration", duration, "--rate", "80", "--producers", "3", "--consumers", "5"])
    summary = run_soak(args)
    print(f"seed {args.seed}")
    print(summary.render())
    assert summary.chaos_events.get("PostgreSQL crash-restart") == 1
    assert summary.chaos_events.get("server SIGKILL", 0) >= 1
    assert summary.chaos_events.get("pg_terminate_backend rounds", 0) >= 1
    assert summary.accepted > 100, "the workload should have done real work"
    assert summary.outage.get("probes"), "servers should have been probed while the database was down"
    assert not summary.failures, f"seed {args.seed}: " + "; ".join(summary.failures)
