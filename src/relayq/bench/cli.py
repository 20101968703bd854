"""`relay bench`: measure Relay against the raw-SQL limit, optionally behind an injected DB latency.

A run creates two throw-away databases (one for Relay, one for the limit) on the local
PostgreSQL, starts `relay serve` as a subprocess pointed at its database (through the latency
proxy when `--db-latency-ms` is set), and for each test measures Relay first, then the same
operations in plain SQL with the same concurrency and the same proxy. Comparing the two in one
run cancels most of the noise of a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from relayq.bench import profile
from relayq.bench.drivers import BenchError, Driver, HttpDriver, RawSqlDriver, ServiceDriver, cpu_count
from relayq.bench.environment import (
    BENCH_REAPER_INTERVAL_MS,
    ProxyProcess,
    ServerProcess,
    create_database,
    drop_database,
    resolve_admin_url,
    target_of,
    through_proxy,
)
from relayq.bench.report import Row, footnotes, table, to_json
from relayq.bench.scenarios import ALL_TESTS, SCENARIOS, RunResult, merge_runs, run_scenario

DEFAULT_POOL_SIZE = 20  # the server's POSTGRES_POOL_SIZE default


def register(subparsers: Any) -> None:
    """Add the `bench` subcommand to the `relay` command tree."""
    p = subparsers.add_parser(
        "bench", help="benchmark Relay against the raw-SQL limit",
        description="Drive Relay's HTTP API (or its service layer) and plain SQL with the same load; "
                    "print ops/sec, latency percentiles, queries/op and Relay as a fraction of the limit.",
    )
    p.add_argument("--test", default="all",
                   help=f"all, or a comma list of: {', '.join(ALL_TESTS)} (default all)")
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds per test (default 10)")
    p.add_argument("--warmup", type=float, default=None,
                   help="unmeasured seconds before each run (default min(1, duration/4), at least 4 round trips)")
    p.add_argument("--batch-size", type=int, default=100, help="messages per batch request (default 100)")
    p.add_argument("--workers", type=int, default=16, help="concurrent clients (default 16)")
    p.add_argument("--payload-bytes", type=int, default=22, help="JSON payload size: 22, 1024, 10240, ...")
    p.add_argument("--logging", action="store_true", help="run the server with ACTIVITY_LOG_ENABLED=true")
    p.add_argument("--db-latency-ms", type=float, default=0.0,
                   help="inject this round-trip latency between the server and PostgreSQL (seed: 300)")
    p.add_argument("--mode", choices=("http", "service"), default="http",
                   help="http: a `relay serve` subprocess; service: the service layer in this process")
    p.add_argument("--url", default=None, help="benchmark this running server instead of starting one")
    p.add_argument("--database-url", default=None,
                   help="with --url: the running server's database, for set-up writes (prefill)")
    p.add_argument("--api-key", default="", help="X-API-KEY for --url")
    p.add_argument("--server-workers", type=int, default=1, help="uvicorn processes of the started server")
    p.add_argument("--pool-size", type=int, default=None, help="server POSTGRES_POOL_SIZE (default 20)")
    p.add_argument("--server-env", action="append", default=[], metavar="KEY=VALUE",
                   help="extra setting for the started server (repeatable), e.g. ENQUEUE_BUFFER_ENABLED=false")
    p.add_argument("--no-limit", action="store_true", help="skip the raw-SQL limit runs")
    p.add_argument("--limit-duration", type=float, default=None, help="seconds per limit run (default --duration)")
    p.add_argument("--rounds", type=int, default=1,
                   help="alternate Relay and the limit this many times per test, each for 1/rounds of the "
                        "duration, and add the rounds up (a slow spell of the machine then falls on both)")
    p.add_argument("--admin-url", default=None,
                   help="PostgreSQL URL allowed to CREATE DATABASE (default RELAY_BENCH_ADMIN_URL or local)")
    p.add_argument("--keep-databases", action="store_true", help="do not drop the bench databases")
    p.add_argument("--json", dest="json_path", default=None, help="also write results as JSON here")
    p.add_argument("--profile", dest="profile_dir", default=None,
                   help="record the server with py-spy during each run; write stacks and summaries here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_bench)


def _tests(spec: str) -> list[str]:
    if spec == "all":
        return list(ALL_TESTS)
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise SystemExit(f"relay bench: unknown test(s) {', '.join(unknown)}; choose from {', '.join(ALL_TESTS)}")
    return names


def cmd_bench(args: argparse.Namespace) -> int:
    """Run the benchmark; exit code 0 when every test ran, 1 otherwise."""
    tests = _tests(args.test)
    if args.workers < 1 or args.batch_size < 1 or args.duration <= 0:
        print("relay bench: --workers, --batch-size and --duration must be positive", file=sys.stderr)
        return 2
    if args.rounds < 1 or (args.rounds > 1 and args.profile_dir):
        print("relay bench: --rounds must be at least 1, and 1 with --profile", file=sys.stderr)
        return 2
    if args.url and not args.database_url:
        print("relay bench: --url needs --database-url (set-up writes go straight to the database)",
              file=sys.stderr)
        return 2
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        pass
    bench = Bench(args, tests)
    rows = asyncio.run(bench.run())
    return 1 if rows is None else bench.report(rows)


class Bench:
    """One invocation of `relay bench`: environment, drivers, tests, report."""

    def __init__(self, args: argparse.Namespace, tests: list[str]) -> None:
        self.args = args
        self.tests = tests
        self.rtt = args.db_latency_ms / 1000
        warmup = args.warmup if args.warmup is not None else min(1.0, args.duration / 4)
        self.warmup = max(warmup, 4 * self.rtt)
        self.pool_size = args.pool_size or DEFAULT_POOL_SIZE
        self.cleanup: list[Any] = []
        self.server: ServerProcess | None = None
        self.errors: dict[str, str] = {}

    def _say(self, text: str) -> None:
        print(f"relay bench: {text}", file=sys.stderr, flush=True)

    async def run(self) -> list[Row] | None:
        """Build the environment, run every test, tear down; None when the environment failed."""
        try:
            relay_driver, limit_driver, relay_setup, limit_setup = await self._environment()
            return await self._run_tests(relay_driver, limit_driver, relay_setup, limit_setup)
        except (RuntimeError, OSError, BenchError) as exc:
            self._say(f"failed: {exc}")
            return None
        finally:
            await self._cleanup()

    def report(self, rows: list[Row]) -> int:
        """Print the table (and write the JSON); 1 when a test failed."""
        config = self._config()
        print(self._header(config))
        print(table(rows, self.args.db_latency_ms))
        print()
        print(footnotes(rows))
        for test, error in self.errors.items():
            print(f"ERROR in {test}: {error}")
        if self.args.json_path:
            Path(self.args.json_path).write_text(json.dumps(to_json(config, rows, self.errors), indent=2) + "\n")
        return 1 if self.errors else 0

    async def _environment(self) -> tuple[Driver, Driver | None, str, str]:
        """Databases, proxy, server and drivers; every piece is registered for clean-up."""
        a = self.args
        server_env = dict(kv.split("=", 1) for kv in a.server_env)
        server_env["ACTIVITY_LOG_ENABLED"] = "true" if a.logging else "false"
        if a.pool_size:
            server_env["POSTGRES_POOL_SIZE"] = str(a.pool_size)
        admin: str | None = None
        if a.url:
            relay_db = a.database_url
        else:
            admin = await resolve_admin_url(a.admin_url)
            relay_db = await create_database(admin, "relay_bench")
            self.cleanup.append(("db", admin, relay_db))
        limit_db: str | None = None
        if not a.no_limit:
            admin = admin or await resolve_admin_url(a.admin_url)
            limit_db = await create_database(admin, "relay_bench_limit")
            self.cleanup.append(("db", admin, limit_db))
        relay_reach, limit_reach = relay_db, limit_db
        if self.rtt > 0:
            proxy = ProxyProcess(target_of(relay_db), a.db_latency_ms)
            self.cleanup.append(("proxy", proxy))
            relay_reach = through_proxy(relay_db, proxy.port)
            if limit_db is not None:
                limit_proxy = ProxyProcess(target_of(limit_db), a.db_latency_ms)
                self.cleanup.append(("proxy", limit_proxy))
                limit_reach = through_proxy(limit_db, limit_proxy.port)
        relay_driver: Driver
        if a.mode == "service":
            relay_driver = await self._service_driver(relay_reach, server_env)
        else:
            url = a.url
            processes = a.server_workers
            if url is None:
                self._say(f"starting relay serve ({a.server_workers} process(es), logging "
                          f"{'on' if a.logging else 'off'}, db latency {a.db_latency_ms:g} ms)")
                self.server = ServerProcess(relay_reach, server_env, a.server_workers)
                self.cleanup.append(("server", self.server))
                await asyncio.to_thread(self.server.wait_ready)
                url = self.server.url
            relay_driver = HttpDriver(url, a.workers, a.payload_bytes, a.batch_size, a.api_key, processes)
            if await relay_driver.round_trips() is None:
                self._say("the server does not expose /api/internal/stats: Queries/Op will be n/a")
        self.cleanup.append(("driver", relay_driver))
        limit_driver: Driver | None = None
        if limit_reach is not None:
            limit_driver = await RawSqlDriver.connect(limit_reach, min(a.workers, self.pool_size), a.payload_bytes)
            self.cleanup.append(("driver", limit_driver))
        return relay_driver, limit_driver, relay_db, limit_db or ""

    async def _service_driver(self, dsn: str, server_env: dict[str, str]) -> Driver:
        from relayq.config import Settings
        from relayq.runtime import Relay

        settings = Settings.from_env(
            environ={**server_env, "REAPER_INTERVAL_MS": BENCH_REAPER_INTERVAL_MS}, dotenv=None, database_url=dsn
        )
        relay = await Relay.start(settings, dsn, background=False)
        return ServiceDriver(relay, self.args.payload_bytes)

    async def _run_tests(self, relay_driver: Driver, limit_driver: Driver | None, relay_setup: str,
                         limit_setup: str) -> list[Row]:
        a = self.args
        rows: list[Row] = []
        stamp = time.strftime("%H%M%S")
        for test in self.tests:
            scenario = SCENARIOS[test]
            queue = f"bench_{test}_{stamp}"
            common = dict(workers=a.workers, warmup=self.warmup, batch_size=a.batch_size,
                          payload_bytes=a.payload_bytes, rtt=self.rtt, show_progress=not a.no_progress)
            relay_runs: list[RunResult] = []
            limit_runs: list[RunResult] = []
            try:
                for round_no in range(a.rounds):
                    name = queue if a.rounds == 1 else f"{queue}_{round_no}"
                    recorder = self._start_profile(test, a.duration + 0)
                    relay_runs.append(await run_scenario(relay_driver, scenario, queue=name, setup_dsn=relay_setup,
                                                         seconds=a.duration / a.rounds, **common))
                    self._finish_profile(recorder, test)
                    if limit_driver is not None:
                        limit_runs.append(await run_scenario(
                            limit_driver, scenario, queue=name, setup_dsn=limit_setup,
                            seconds=(a.limit_duration or a.duration) / a.rounds, **common,
                        ))
                relay_run = merge_runs(relay_runs)
                limit_run = merge_runs(limit_runs) if limit_runs else None
            except (BenchError, OSError, RuntimeError) as exc:
                self.errors[test] = str(exc)
                self._say(f"{test}: {exc}")
                continue
            row = Row(relay_run, limit_run)
            rows.append(row)
            limit_text = f", limit {limit_run.items_per_sec:,.0f} msgs/s" if limit_run else ""
            self._say(f"{scenario.label}: {relay_run.items_per_sec:,.0f} msgs/s{limit_text}")
        return rows

    def _start_profile(self, test: str, seconds: float) -> tuple[Any, Path] | None:
        if not self.args.profile_dir or self.server is None:
            return None
        out = Path(self.args.profile_dir) / f"{test}.collapsed.txt"
        # The profiler starts with the warm-up and stops with the run; both run the same code.
        proc = profile.start(self.server.process.pid, self.args.duration + self.warmup, out)
        if proc is None:
            self._say("py-spy not found; install it (pip install py-spy) to profile")
            return None
        return proc, out

    def _finish_profile(self, recorder: tuple[Any, Path] | None, test: str) -> None:
        if recorder is None:
            return
        proc, out = recorder
        try:
            _, err = proc.communicate(timeout=30)
        except Exception:
            proc.kill()
            return
        if out.exists():
            summary = profile.summarize(out)
            out.with_name(f"{test}.summary.txt").write_text(summary + "\n")
        else:
            self._say(f"py-spy wrote nothing for {test}: {err.decode(errors='replace')[-300:]}")

    def _config(self) -> dict[str, Any]:
        a = self.args
        return {
            "tests": self.tests, "mode": a.mode, "duration_s": a.duration, "warmup_s": self.warmup,
            "workers": a.workers, "batch_size": a.batch_size, "payload_bytes": a.payload_bytes,
            "activity_logging": a.logging, "db_latency_ms": a.db_latency_ms, "server_workers": a.server_workers,
            "server_pool_size": self.pool_size, "limit_pool_size": min(a.workers, self.pool_size),
            "server_env": a.server_env, "cpus": cpu_count(), "python": sys.version.split()[0],
            "started_server": a.url is None and a.mode == "http",
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }

    def _header(self, config: dict[str, Any]) -> str:
        c = config
        return (
            f"\nRelay bench ({c['mode']}): {c['workers']} workers, batch {c['batch_size']}, payload "
            f"{c['payload_bytes']} B, activity logging {'on' if c['activity_logging'] else 'off'}, "
            f"db latency {c['db_latency_ms']:g} ms RTT, {c['server_workers']} server process(es), "
            f"{c['duration_s']:g} s per test, {c['cpus']} CPUs\n"
        )

    async def _cleanup(self) -> None:
        for item in reversed(self.cleanup):
            kind = item[0]
            with contextlib.suppress(Exception):
                if kind == "driver":
                    await item[1].close()
                elif kind == "server":
                    await asyncio.to_thread(item[1].stop, bool(self.errors))
                elif kind == "proxy":
                    item[1].stop()
                elif kind == "db" and not self.args.keep_databases:
                    await drop_database(item[1], item[2])
        self.cleanup.clear()
