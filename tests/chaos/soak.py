"""Chaos soak: producers and consumers against two Relay servers on one throwaway PostgreSQL,
while servers are SIGKILLed, the database crash-restarts once and connections are terminated.

    python -m tests.chaos.soak --duration 300        # the documented long run
    python -m tests.chaos.soak --duration 20 --seed 7

At the end it drains every queue and proves, from the client-side ledger and the database:
every message the API accepted (201, or 200 for an idempotent repeat) in a durable queue is
acknowledged, none is lost, no successful ack ever used a stale lock token, no two deliveries of
a message overlapped, and every duplicate delivery is explained (nack, expired lease). Unlogged
queues are the documented exception: a PostgreSQL crash empties them, so their losses are
reported, not failed. The exit status is 0 when every guarantee held.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import re
import signal
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import httpx

from relayq.bench.environment import with_database
from tests.chaos.postgres import ThrowawayPostgres
from tests.support.server import LiveServer, free_port, spawn_server, stop_server

ACK_TIMEOUT = 2  # short leases, so abandoned and crash-orphaned messages come back quickly
DURABLE_QUEUES = {"chaos": "standard", "chaos_part": "partitioned"}
UNLOGGED_QUEUES = {"chaos_unlogged": "unlogged"}
SERVER_ENV = {
    "REAPER_INTERVAL_MS": "200",
    "POSTGRES_CONNECT_TIMEOUT": "2",
    "POSTGRES_POOL_SIZE": "10",
    "POSTGRES_POOL_MIN_SIZE": "1",
    "LOG_LEVEL": "warning",
}
RETRYABLE = {None, 502, 503, 504}


@dataclass
class Delivery:
    """One lease a consumer received."""

    id: str
    token: str
    attempt: int
    start: float  # lease start, database clock (locked_until - ack timeout)
    end: float  # lease end as handed out, database clock
    consumer: str
    outcome: str = "pending"  # acked, ack_refused:<code>, ack_unknown, nacked, nack_unknown, abandoned
    extended_to: float | None = None


@dataclass
class Ledger:
    """Everything the clients saw; the verifier compares it with the database."""

    accepted: dict[str, str] = field(default_factory=dict)  # idempotency key -> id
    key_queue: dict[str, str] = field(default_factory=dict)
    gave_up: set[str] = field(default_factory=set)  # keys never confirmed
    idempotency_conflicts: list[str] = field(default_factory=list)
    deliveries: dict[str, list[Delivery]] = field(default_factory=lambda: defaultdict(list))
    acked_tokens: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    responses: Counter[str] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    stale_probes: Counter[str] = field(default_factory=Counter)
    outage_probes: list[tuple[str, int | None, str | None, float]] = field(default_factory=list)
    chaos_events: Counter[str] = field(default_factory=Counter)


@dataclass
class Summary:
    """The verdict, printed as a table and returned to the pytest wrapper."""

    sent: int = 0
    accepted: int = 0
    acknowledged: int = 0
    lost: int = 0
    not_acknowledged: int = 0
    duplicated_deliveries: int = 0
    duplicate_reasons: Counter[str] = field(default_factory=Counter)
    unexplained_duplicates: list[str] = field(default_factory=list)
    stale_acks_succeeded: list[str] = field(default_factory=list)
    overlapping_leases: list[str] = field(default_factory=list)
    double_acks: list[str] = field(default_factory=list)
    duplicate_rows: list[str] = field(default_factory=list)
    unlogged: dict[str, int] = field(default_factory=dict)
    server_errors: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    outage: dict[str, Any] = field(default_factory=dict)
    chaos_events: dict[str, int] = field(default_factory=dict)
    responses: dict[str, int] = field(default_factory=dict)
    stale_probes: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def failures(self) -> list[str]:
        """Every broken guarantee, one line each; empty means the run passed."""
        out: list[str] = []
        if self.lost:
            out.append(f"{self.lost} accepted durable messages lost")
        if self.not_acknowledged:
            out.append(f"{self.not_acknowledged} accepted durable messages never acknowledged")
        for name, items in (("unexplained duplicate deliveries", self.unexplained_duplicates),
                            ("stale acks that succeeded", self.stale_acks_succeeded),
                            ("overlapping leases", self.overlapping_leases),
                            ("messages acknowledged twice", self.double_acks),
                            ("idempotency keys stored twice", self.duplicate_rows),
                            ("server errors (5xx other than 503)", self.server_errors),
                            ("unexpected responses", self.unexpected)):
            if items:
                out.append(f"{len(items)} {name}: {items[:5]}")
        bad_outage = [p for p in self.outage.get("probes", []) if not p["ok"]]
        if bad_outage:
            out.append(f"outage probes not answered fast with 503/DATABASE_UNAVAILABLE: {bad_outage[:5]}")
        return out

    def render(self) -> str:
        """A table a person can read."""
        rows = [
            ("run time (s)", f"{self.seconds:.0f}"),
            ("messages sent (logical)", self.sent),
            ("accepted by the API (durable queues)", self.accepted),
            ("acknowledged", self.acknowledged),
            ("lost (must be 0)", self.lost),
            ("accepted but not acknowledged (must be 0)", self.not_acknowledged),
            ("duplicate deliveries", self.duplicated_deliveries),
        ]
        rows += [(f"  why: {reason}", n) for reason, n in sorted(self.duplicate_reasons.items())]
        rows += [
            ("  unexplained (must be 0)", len(self.unexplained_duplicates)),
            ("stale acks that succeeded (must be 0)", len(self.stale_acks_succeeded)),
            ("overlapping leases (must be 0)", len(self.overlapping_leases)),
            ("server errors 5xx≠503 (must be 0)", len(self.server_errors)),
            ("stale-ack probes", ", ".join(f"{k} {v}" for k, v in sorted(self.stale_probes.items())) or "0"),
            ("unlogged queue (exception)", ", ".join(f"{k} {v}" for k, v in self.unlogged.items())),
            ("chaos", ", ".join(f"{k} {v}" for k, v in sorted(self.chaos_events.items()))),
            ("during the database outage", self.outage.get("text", "-")),
            ("responses", ", ".join(f"{k}:{v}" for k, v in sorted(self.responses.items()))),
        ]
        width = max(len(str(k)) for k, _ in rows)
        lines = ["", "Relay chaos soak", "=" * (width + 30)]
        lines += [f"{k:<{width}}  {v}" for k, v in rows]
        failures = self.failures
        lines.append("-" * (width + 30))
        lines.append("RESULT: PASS" if not failures else "RESULT: FAIL")
        lines += [f"  - {f}" for f in failures]
        return "\n".join(lines)


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


class Soak:
    """One run: the cluster, two servers, the workload, the chaos and the verdict."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.ledger = Ledger()
        self.ports = [free_port(), free_port()]
        self.servers: list[LiveServer | None] = [None, None]
        self.alive: list[str] = []
        self.database_url = ""
        self.pg: ThrowawayPostgres | None = None
        self.producing = True
        self.chaos_on = True
        self.draining = False
        self.consuming = True
        self.probes: set[asyncio.Task[None]] = set()
        self.logs: list[str] = []

    # ----- infrastructure ----------------------------------------------------------------
    def _spawn(self, index: int) -> None:
        deadline = time.monotonic() + 90
        while True:
            try:
                server = spawn_server(self.database_url, SERVER_ENV, port=self.ports[index])
                break
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)  # the database may be restarting
        self.servers[index] = server
        self.logs.append(str(server.log_path))
        self.alive = [s.url + "/api" for s in self.servers if s is not None]

    async def _kill(self, index: int) -> None:
        server = self.servers[index]
        if server is None:
            return
        self.servers[index] = None
        self.alive = [s.url + "/api" for s in self.servers if s is not None]
        server.process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(server.process.wait)
        self.ledger.chaos_events["server SIGKILL"] += 1

    # ----- HTTP --------------------------------------------------------------------------
    async def call(self, client: httpx.AsyncClient, op: str, method: str, path: str,
                   **kwargs: Any) -> tuple[int | None, Any]:
        """One request to a random live server; (None, None) on a transport error."""
        alive = self.alive
        if not alive:
            await asyncio.sleep(0.2)
            return None, None
        base = self.rng.choice(alive)
        try:
            response = await client.request(method, base + path, **kwargs)
        except httpx.HTTPError:
            self.ledger.responses[f"{op}:transport"] += 1
            return None, None
        self.ledger.responses[f"{op}:{response.status_code}"] += 1
        try:
            body = response.json()
        except ValueError:
            body = response.text
        if response.status_code >= 500 and response.status_code != 503:
            self.ledger.server_errors.append(f"{op} {response.status_code} {str(body)[:200]}")
        if response.status_code == 503 and (not isinstance(body, dict) or body.get("code") != "DATABASE_UNAVAILABLE"):
            self.ledger.unexpected.append(f"{op} 503 without DATABASE_UNAVAILABLE: {str(body)[:200]}")
        return response.status_code, body

    # ----- producers ---------------------------------------------------------------------
    async def producer(self, index: int) -> None:
        async with httpx.AsyncClient(timeout=30) as client:
            n = 0
            queues = list(DURABLE_QUEUES) * 4 + list(UNLOGGED_QUEUES)
            pace = self.args.producers / max(self.args.rate, 1.0)  # seconds per message, per producer
            while self.producing:
                began = time.monotonic()
                size = self.rng.randint(2, 20) if self.rng.random() < 0.2 else 1
                items = []
                for _ in range(size):
                    n += 1
                    key = f"p{index}-{n}"
                    queue = self.rng.choice(queues)
                    self.ledger.key_queue[key] = queue
                    items.append({"type": "chaos", "payload": {"key": key, "pad": "x" * self.rng.randint(0, 200)},
                                  "queue": queue, "idempotencyKey": key, "priority": self.rng.randint(0, 2)})
                await self._send(client, items)
                await asyncio.sleep(max(0.0, pace * len(items) - (time.monotonic() - began)))

    async def _send(self, client: httpx.AsyncClient, items: list[dict[str, Any]]) -> None:
        """Send until confirmed; retries reuse the idempotency keys, so they never duplicate."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if len(items) == 1:
                status, body = await self.call(client, "enqueue", "POST", "/queue/message", json=items[0])
                ids = [body["id"]] if status in (200, 201) else []
            else:
                status, body = await self.call(client, "enqueue_batch", "POST", "/queue/batch", json=items)
                ids = body["ids"] if status == 201 else []
            if status in (200, 201):
                for item, mid in zip(items, ids, strict=True):
                    key = item["idempotencyKey"]
                    known = self.ledger.accepted.setdefault(key, mid)
                    if known != mid:
                        self.ledger.idempotency_conflicts.append(f"{key}: {known} then {mid}")
                return
            if status not in RETRYABLE:
                self.ledger.unexpected.append(f"enqueue {status} {str(body)[:200]}")
                break
            await asyncio.sleep(0.2)
        self.ledger.gave_up.update(i["idempotencyKey"] for i in items)

    # ----- consumers ---------------------------------------------------------------------
    async def consumer(self, index: int) -> None:
        name = f"c{index}"
        queues = list(DURABLE_QUEUES) + list(UNLOGGED_QUEUES)
        async with httpx.AsyncClient(timeout=30) as client:
            while self.consuming:
                queue = self.rng.choice(queues)
                if self.rng.random() < 0.5 and not self.draining:
                    status, body = await self.call(client, "dequeue", "GET", "/queue/message", params={
                        "queue": queue, "timeout": 1, "consumerId": name})
                    messages = [body] if status == 200 else []
                else:
                    status, body = await self.call(client, "dequeue_batch", "GET", "/queue/messages/batch", params={
                        "queue": queue, "timeout": 1, "consumerId": name,
                        "count": 100 if self.draining else self.rng.randint(1, 25)})
                    messages = body["messages"] if status == 200 else []
                if status in RETRYABLE:
                    await asyncio.sleep(0.2)
                elif status not in (200, 404):
                    self.ledger.unexpected.append(f"dequeue {status} {str(body)[:200]}")
                deliveries = [self._record(m, name) for m in messages]
                to_ack: list[Delivery] = []
                for d in deliveries:
                    roll = self.rng.random() if not self.draining else 1.0
                    if roll < 0.04:
                        self._abandon(d)
                    elif roll < 0.09:
                        await self._nack(client, d)
                    elif roll < 0.13:
                        await self._touch_then_ack(client, d)
                    else:
                        to_ack.append(d)
                if len(to_ack) > 1 and (self.draining or self.rng.random() < 0.7):
                    await self._ack_batch(client, to_ack)
                else:
                    for d in to_ack:
                        await self._ack(client, d)

    def _record(self, message: dict[str, Any], consumer: str) -> Delivery:
        end = _epoch(message["locked_until"])
        d = Delivery(message["id"], message["lock_token"], message["attempt_count"],
                     end - message["ack_timeout_seconds"], end, consumer)
        self.ledger.deliveries[d.id].append(d)
        return d

    async def _retrying(self, client: httpx.AsyncClient, op: str, method: str, path: str,
                        body: Any) -> tuple[int | None, Any, bool]:
        """Retry while the answer is unknown; the bool says an earlier attempt may have applied."""
        maybe_applied = False
        for _ in range(20):
            status, response = await self.call(client, op, method, path, json=body)
            if status not in RETRYABLE:
                return status, response, maybe_applied
            maybe_applied = maybe_applied or status is None  # a lost response may hide a commit
            await asyncio.sleep(0.25)
        return None, None, True

    async def _ack(self, client: httpx.AsyncClient, d: Delivery) -> None:
        status, body, maybe = await self._retrying(client, "ack", "POST", "/queue/ack",
                                                   {"id": d.id, "lock_token": d.token})
        self._ack_outcome(d, status, body.get("code") if isinstance(body, dict) else None, maybe)

    def _ack_outcome(self, d: Delivery, status: int | None, code: str | None, maybe: bool) -> None:
        if status == 200:
            d.outcome = "acked"
            self.ledger.acked_tokens[d.id].append(d.token)
        elif status is None or (maybe and code == "INVALID_STATE"):
            d.outcome = "ack_unknown"
        elif code in ("LOCK_LOST", "INVALID_STATE", "NOT_FOUND"):
            d.outcome = f"ack_refused:{code}"
        else:
            d.outcome = "ack_unknown"
            self.ledger.unexpected.append(f"ack {status} {code}")

    async def _ack_batch(self, client: httpx.AsyncClient, ds: list[Delivery]) -> None:
        body = {"acks": [{"id": d.id, "lock_token": d.token} for d in ds]}
        status, response, maybe = await self._retrying(client, "ack_batch", "POST", "/queue/ack/batch", body)
        if status != 200:
            for d in ds:
                self._ack_outcome(d, status, None, maybe)
            return
        succeeded = set(response["succeeded"])
        failed = {f["id"]: f["code"] for f in response["failed"]}
        for d in ds:
            self._ack_outcome(d, 200 if d.id in succeeded else 400, failed.get(d.id), maybe)

    async def _nack(self, client: httpx.AsyncClient, d: Delivery) -> None:
        status, body, maybe = await self._retrying(client, "nack", "POST", f"/queue/message/{d.id}/nack",
                                                   {"lock_token": d.token, "errorReason": "chaos nack"})
        if status == 200:
            d.outcome = "nacked"
        elif status is None or maybe:
            d.outcome = "nack_unknown"
        else:
            d.outcome = f"nack_refused:{body.get('code') if isinstance(body, dict) else status}"

    async def _touch_then_ack(self, client: httpx.AsyncClient, d: Delivery) -> None:
        status, body, maybe = await self._retrying(client, "touch", "PUT", f"/queue/message/{d.id}/touch",
                                                   {"lock_token": d.token, "extend_seconds": 3})
        if status == 200:
            d.extended_to = float(body["new_timeout_at"]) + 1  # floored to whole seconds
        elif maybe:
            d.extended_to = time.time() + 3 + 1
        await asyncio.sleep(self.rng.uniform(0.5, 1.5))
        await self._ack(client, d)

    def _abandon(self, d: Delivery) -> None:
        """A worker that dies silently; later its stale token tries to ack (fencing probe)."""
        d.outcome = "abandoned"
        task = asyncio.ensure_future(self._stale_probe(d))
        self.probes.add(task)
        task.add_done_callback(self.probes.discard)

    async def _stale_probe(self, d: Delivery) -> None:
        await asyncio.sleep(ACK_TIMEOUT + self.rng.uniform(0.5, 3.0))
        async with httpx.AsyncClient(timeout=30) as client:
            status, body, _ = await self._retrying(client, "stale_ack", "POST", "/queue/ack",
                                                   {"id": d.id, "lock_token": d.token})
        code = body.get("code") if isinstance(body, dict) else None
        if status == 200:
            # Allowed only while nobody else got the message (the reaper had not yet reclaimed it);
            # the verifier checks that this token was the message's last delivery.
            self.ledger.acked_tokens[d.id].append(d.token)
            self.ledger.stale_probes["accepted (lease not yet reclaimed)"] += 1
        else:
            self.ledger.stale_probes[f"refused {code or status}"] += 1

    # ----- chaos -------------------------------------------------------------------------
    async def chaos(self, started: float) -> None:
        assert self.pg is not None
        restart_at = started + self.args.duration * 0.45
        restarted = not self.args.pg_restart
        rounds = 0
        while self.chaos_on:
            await asyncio.sleep(self.rng.uniform(1.0, 3.0))
            if not self.chaos_on:
                break
            if not restarted and time.monotonic() >= restart_at:
                restarted = True
                await self._database_outage()
                continue
            action = ("terminate", "kill", "kill")[rounds % 3]  # every kind of chaos, even in short runs
            rounds += 1
            if action == "terminate":
                killed = await asyncio.to_thread(self.pg.terminate_backends)
                self.ledger.chaos_events["pg_terminate_backend rounds"] += 1
                self.ledger.chaos_events["connections terminated"] += killed
            else:
                index = self.rng.randrange(2)
                await self._kill(index)
                await asyncio.sleep(self.rng.uniform(0.2, 1.5))
                await asyncio.to_thread(self._spawn, index)

    async def _database_outage(self) -> None:
        """Crash PostgreSQL, probe the servers while it is down, bring it back."""
        assert self.pg is not None
        await asyncio.to_thread(self.pg.stop, "immediate")
        self.ledger.chaos_events["PostgreSQL crash-restart"] += 1
        await asyncio.sleep(0.5)
        async with httpx.AsyncClient(timeout=30) as client:
            for base in list(self.alive):
                for path in ("/queue/metrics", "/health"):
                    started = time.monotonic()
                    try:
                        response = await client.get(base + path)
                        status: int | None = response.status_code
                        body = response.json()
                        code = body.get("code") or body.get("details", {}).get("status")
                    except (httpx.HTTPError, ValueError):
                        status, code = None, None
                    self.ledger.outage_probes.append((path, status, code, time.monotonic() - started))
        await asyncio.sleep(self.args.outage_seconds)
        await asyncio.to_thread(self.pg.start)

    # ----- the run -----------------------------------------------------------------------
    async def _setup(self) -> None:
        admin = await asyncpg.connect(self.pg.url if self.pg else "")
        try:
            await admin.execute("CREATE DATABASE relay_chaos")
        finally:
            await admin.close()
        self.database_url = with_database(self.pg.url if self.pg else "", "relay_chaos")
        await asyncio.to_thread(self._spawn, 0)
        await asyncio.to_thread(self._spawn, 1)
        async with httpx.AsyncClient(timeout=30) as client:
            for name, kind in {**DURABLE_QUEUES, **UNLOGGED_QUEUES}.items():
                spec: dict[str, Any] = {"name": name, "queue_type": kind, "ack_timeout_seconds": ACK_TIMEOUT,
                                        "max_attempts": 1000}
                if kind == "partitioned":
                    spec |= {"partition_interval": "daily", "retention_interval": "7 days"}
                response = await client.post(self.alive[0] + "/queues", json=spec)
                assert response.status_code == 201, response.text

    async def _unfinished(self) -> int:
        conn = await asyncpg.connect(self.database_url, timeout=5)
        try:
            return int(await conn.fetchval(
                "SELECT (SELECT count(*) FROM relay.messages WHERE status <> 'acknowledged')"
                " + (SELECT count(*) FROM relay.messages_partitioned WHERE status <> 'acknowledged')"
                " + (SELECT count(*) FROM relay.messages_unlogged WHERE status <> 'acknowledged')"))
        finally:
            await conn.close()

    async def run(self) -> Summary:
        began = time.monotonic()
        with ThrowawayPostgres() as pg:
            self.pg = pg
            try:
                await self._setup()
                started = time.monotonic()
                producers = [asyncio.ensure_future(self.producer(i)) for i in range(self.args.producers)]
                consumers = [asyncio.ensure_future(self.consumer(i)) for i in range(self.args.consumers)]
                chaos = asyncio.ensure_future(self.chaos(started))
                await asyncio.sleep(self.args.duration)
                self.producing = False
                await asyncio.gather(*producers)
                self.chaos_on = False
                await chaos
                for index, server in enumerate(self.servers):
                    if server is None:
                        await asyncio.to_thread(self._spawn, index)
                self.draining = True
                drain_deadline = time.monotonic() + self.args.drain_timeout
                while time.monotonic() < drain_deadline:
                    with contextlib.suppress(OSError, asyncpg.PostgresError):
                        left = await self._unfinished()
                        if self.args.verbose:
                            print(f"draining: {left} unfinished, {len(self.probes)} probes", file=sys.stderr)
                        if left == 0 and not self.probes:
                            break
                    await asyncio.sleep(1)
                self.consuming = False
                await asyncio.gather(*consumers)
                if self.probes:
                    await asyncio.gather(*self.probes)
                summary = await self.verify()
            finally:
                for server in self.servers:
                    if server is not None:
                        stop_server(server)
        summary.seconds = time.monotonic() - began
        summary.server_errors += self._server_log_errors()
        return summary

    def _server_log_errors(self) -> list[str]:
        """Unhandled exceptions the servers logged (a 500 whose response was lost still counts)."""
        found: Counter[str] = Counter()
        for path in self.logs:
            with contextlib.suppress(OSError):
                text = open(path, errors="replace").read()
                for match in re.finditer(r"unhandled error on (\S+ \S+)", text):
                    found[match.group(1)] += 1
        return [f"logged: unhandled error on {k} x{v}" for k, v in found.items()]

    # ----- the verdict -------------------------------------------------------------------
    async def verify(self) -> Summary:
        ledger = self.ledger
        s = Summary()
        conn = await asyncpg.connect(self.database_url, timeout=10)
        try:
            rows = await conn.fetch(
                "SELECT id, queue_name, status, attempt_count, idempotency_key FROM relay.messages"
                " UNION ALL SELECT id, queue_name, status, attempt_count, idempotency_key FROM relay.messages_partitioned"
                " UNION ALL SELECT id, queue_name, status, attempt_count, idempotency_key FROM relay.messages_unlogged")
        finally:
            await conn.close()
        by_id = {r["id"]: r for r in rows}
        per_key = Counter((r["queue_name"], r["idempotency_key"]) for r in rows)
        s.duplicate_rows = [f"{q}/{k} x{n}" for (q, k), n in per_key.items() if n > 1]
        s.sent = len(ledger.key_queue)
        unlogged = Counter[str]()
        for key, mid in ledger.accepted.items():
            durable = ledger.key_queue[key] in DURABLE_QUEUES
            row = by_id.get(mid)
            if durable:
                s.accepted += 1
                if row is None:
                    s.lost += 1
                elif row["status"] != "acknowledged":
                    s.not_acknowledged += 1
                else:
                    s.acknowledged += 1
            else:
                unlogged["accepted"] += 1
                if row is None:
                    unlogged["lost in the crash"] += 1
                elif row["status"] == "acknowledged":
                    unlogged["acknowledged"] += 1
                else:
                    unlogged["not acknowledged"] += 1
        s.unlogged = dict(unlogged)
        s.unexpected = list(ledger.unexpected) + [f"idempotency: {c}" for c in ledger.idempotency_conflicts]
        if ledger.gave_up:
            s.unexpected.append(f"{len(ledger.gave_up)} messages never confirmed after 60 s of retries")
        for mid, tokens in ledger.acked_tokens.items():
            if len(tokens) > 1:
                s.double_acks.append(mid)
        for mid, deliveries in ledger.deliveries.items():
            self._check_deliveries(s, mid, sorted(deliveries, key=lambda d: d.attempt), by_id.get(mid))
        s.server_errors = list(ledger.server_errors)
        s.chaos_events = dict(ledger.chaos_events)
        s.responses = dict(ledger.responses)
        s.stale_probes = dict(ledger.stale_probes)
        probes = [{"path": p, "status": st, "code": c, "seconds": round(sec, 2),
                   "ok": sec < 10 and ((p == "/health" and st == 500 and c == "unhealthy")
                                       or (p != "/health" and st == 503 and c == "DATABASE_UNAVAILABLE"))}
                  for p, st, c, sec in ledger.outage_probes]
        if probes:
            slowest = max(p["seconds"] for p in probes)
            s.outage = {"probes": probes, "text": (
                f"{sum(p['ok'] for p in probes)}/{len(probes)} probes answered 503 DATABASE_UNAVAILABLE"
                f" (health: 500 unhealthy), slowest {slowest:.2f} s; service resumed without restarts")}
        return s

    def _check_deliveries(self, s: Summary, mid: str, deliveries: list[Delivery], row: Any) -> None:
        tokens = [d.token for d in deliveries]
        if len(set(tokens)) != len(tokens):
            s.overlapping_leases.append(f"{mid}: a lock token was handed out twice")
        acked = self.ledger.acked_tokens.get(mid, [])
        if acked and acked[-1] != deliveries[-1].token and acked[-1] in tokens:
            later = [d.attempt for d in deliveries if d.attempt > deliveries[tokens.index(acked[-1])].attempt]
            s.stale_acks_succeeded.append(f"{mid}: acked with attempt-{deliveries[tokens.index(acked[-1])].attempt}"
                                          f" token after deliveries {later}")
        final_attempts = row["attempt_count"] if row is not None else deliveries[-1].attempt
        total = max(final_attempts, len(deliveries))
        if total <= 1:
            return
        s.duplicated_deliveries += total - 1
        # Unobserved deliveries (the response was lost when a server or connection died) expired.
        unseen = total - len(deliveries)
        if unseen:
            s.duplicate_reasons["delivery response lost, lease expired"] += unseen
        for prev, nxt in zip(deliveries, deliveries[1:], strict=False):
            reason = _redelivery_reason(prev)
            lease_end = max(prev.end, prev.extended_to or 0.0)
            if prev.outcome == "nacked" or (prev.outcome == "nack_unknown" and nxt.start >= prev.start):
                s.duplicate_reasons["nacked by the consumer"] += 1
            elif nxt.start + 0.01 >= lease_end or (prev.extended_to is None and nxt.start + 0.01 >= prev.end):
                s.duplicate_reasons[reason] += 1
            elif prev.extended_to is not None and nxt.start + 1.5 >= prev.end:
                # touch reports its deadline in whole seconds; allow that rounding.
                s.duplicate_reasons[reason] += 1
            else:
                s.unexplained_duplicates.append(
                    f"{mid}: attempt {nxt.attempt} leased at {nxt.start:.3f}, before attempt {prev.attempt}'s"
                    f" lease ended at {lease_end:.3f} (outcome {prev.outcome})")
                s.overlapping_leases.append(mid)


def _redelivery_reason(prev: Delivery) -> str:
    if prev.outcome == "abandoned":
        return "worker abandoned it, lease expired"
    if prev.outcome.startswith("ack_refused"):
        return "ack came after the lease was reclaimed"
    if prev.outcome.startswith("nack_refused"):
        return "nack came after the lease was reclaimed"
    if prev.outcome in ("ack_unknown", "pending"):
        return "ack lost in a crash/outage, lease expired"
    if prev.outcome == "acked":
        return "acked, lease expired first (ack raced the reaper)"
    return f"lease expired ({prev.outcome})"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options of the soak."""
    parser = argparse.ArgumentParser(prog="python -m tests.chaos.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=300, help="seconds of load and chaos (default 300)")
    parser.add_argument("--rate", type=float, default=120, help="messages per second, all producers together")
    parser.add_argument("--producers", type=int, default=4)
    parser.add_argument("--consumers", type=int, default=6)
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    parser.add_argument("--outage-seconds", type=float, default=2.0, help="how long PostgreSQL stays down")
    parser.add_argument("--no-pg-restart", dest="pg_restart", action="store_false",
                        help="skip the PostgreSQL crash-restart")
    parser.add_argument("--drain-timeout", type=float, default=90, help="seconds allowed to drain at the end")
    parser.add_argument("--verbose", action="store_true", help="print progress to stderr")
    parser.add_argument("--json", help="also write the summary as JSON to this file")
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = random.randrange(1_000_000)
    return args


def run_soak(args: argparse.Namespace) -> Summary:
    """Run one soak and return its summary (used by the CI test with a short duration)."""
    return asyncio.run(Soak(args).run())


def main(argv: list[str] | None = None) -> int:
    """Entry point: run, print the summary, exit 0 on PASS."""
    args = parse_args(argv)
    print(f"chaos soak: {args.duration:.0f} s, {args.producers} producers, {args.consumers} consumers,"
          f" seed {args.seed}", flush=True)
    summary = run_soak(args)
    print(summary.render(), flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({k: v for k, v in summary.__dict__.items()}, out, indent=2, default=str)
    return 0 if not summary.failures else 1


if __name__ == "__main__":
    sys.exit(main())
