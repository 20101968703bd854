"""The server survives its database: while PostgreSQL is down, requests fail fast with 503
DATABASE_UNAVAILABLE and /health says so; service resumes by itself when it returns. Connections
dropped in the middle of statements and transactions give 503, never 500, never half a batch."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import asyncpg
import httpx
import pytest

from relayq.bench.environment import with_database
from tests.chaos.postgres import ThrowawayPostgres
from tests.support.server import LiveServer, start_server

pytestmark = pytest.mark.chaos


@pytest.fixture(scope="module")
def outage_server(throwaway_pg: ThrowawayPostgres) -> Iterator[LiveServer]:
    async def create() -> None:
        conn = await asyncpg.connect(throwaway_pg.url)
        await conn.execute("CREATE DATABASE relay_outage")
        await conn.close()

    asyncio.run(create())
    env = {"POSTGRES_CONNECT_TIMEOUT": "2", "POSTGRES_POOL_MIN_SIZE": "1"}
    with start_server(with_database(throwaway_pg.url, "relay_outage"), env) as server:
        yield server


def test_requests_fail_fast_with_503_while_down_and_resume_without_restart(
    throwaway_pg: ThrowawayPostgres, outage_server: LiveServer
) -> None:
    with httpx.Client(base_url=outage_server.api, timeout=60) as api:
        assert api.post("/queues", json={"name": "outage", "ack_timeout_seconds": 30}).status_code == 201
        before = api.post("/queue/message", json={"type": "t", "payload": 1, "queue": "outage"}).json()["id"]
        parked: dict[str, object] = {}

        def long_poll() -> None:
            with httpx.Client(base_url=outage_server.api, timeout=60) as other:
                response = other.get("/queue/message", params={"queue": "nowhere_yet", "timeout": 5})
                parked["status"] = response.status_code

        api.post("/queues", json={"name": "nowhere_yet"})
        poller = threading.Thread(target=long_poll)
        poller.start()
        time.sleep(0.5)
        throwaway_pg.stop("fast")
        try:
            calls = [
                ("POST", "/queue/message", {"type": "t", "payload": 2, "queue": "outage"}),
                ("POST", "/queue/batch", [{"type": "t", "payload": 3, "queue": "outage"}] * 3),
                ("GET", "/queue/message?queue=outage", None),
                ("GET", "/queue/messages/batch?queue=outage&count=5", None),
                ("POST", "/queue/ack", {"id": before, "lock_token": "x"}),
                ("GET", "/queues", None),
                ("POST", "/queues", {"name": "during_outage"}),
                ("GET", "/queue/metrics", None),
                ("GET", "/queue/main/messages", None),
            ]
            for method, path, body in calls:
                started = time.monotonic()
                response = api.request(method, path, json=body)
                elapsed = time.monotonic() - started
                assert response.status_code == 503, (path, response.text)
                assert response.json()["code"] == "DATABASE_UNAVAILABLE"
                assert elapsed < 10, f"{path} took {elapsed:.1f} s: not failing fast"
            health = api.get("/health")
            assert health.status_code == 500
            assert health.json()["details"]["postgres"]["ok"] is False
            poller.join(timeout=30)
            assert parked.get("status") in (503, 404), parked  # a parked long-poll ends cleanly too
        finally:
            throwaway_pg.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            response = api.post("/queue/message", json={"type": "t", "payload": 4, "queue": "outage"})
            if response.status_code == 201:
                break
            assert response.status_code == 503, response.text
            time.sleep(0.5)
        assert response.status_code == 201, "service did not resume by itself"
        assert outage_server.process.poll() is None, "the server must not have restarted"
        assert api.get("/health").json()["status"] == "OK"
        leased = api.get("/queue/message", params={"queue": "outage"}).json()
        assert leased["id"] == before  # the message from before the outage is still there, first
        assert api.post("/queue/ack", json={"id": before, "lock_token": leased["lock_token"]}).status_code == 200


def test_dropped_connections_mid_transaction_give_503_and_all_or_nothing(
    throwaway_pg: ThrowawayPostgres, outage_server: LiveServer
) -> None:
    with httpx.Client(base_url=outage_server.api, timeout=60) as api:
        for name, kind in (("drop_std", "standard"), ("drop_unl", "unlogged")):
            assert api.post("/queues", json={"name": name, "queue_type": kind}).status_code in (201, 409)
    stop = threading.Event()

    def terminator() -> None:
        while not stop.is_set():
            throwaway_pg.terminate_backends()
            time.sleep(0.05)

    killer = threading.Thread(target=terminator)
    killer.start()
    outcomes: dict[int, int] = {}
    try:
        with httpx.Client(base_url=outage_server.api, timeout=60) as api:
            for n in range(60):
                # Mixed queue types: the server stores this batch in one transaction.
                batch = [{"type": "t", "payload": {"batch": n, "i": i}, "queue": ("drop_std", "drop_unl")[i % 2],
                          "idempotencyKey": f"b{n}-{i}"} for i in range(10)]
                response = api.post("/queue/batch", json=batch)
                assert response.status_code in (201, 503), response.text
                outcomes[n] = response.status_code
                created = api.post("/queues", json={"name": f"drop_q{n}"})
                assert created.status_code in (201, 409, 503), created.text
    finally:
        stop.set()
        killer.join()
    assert 503 in outcomes.values() or len(outcomes) == 60

    async def stored() -> dict[int, int]:
        conn = await asyncpg.connect(outage_server.database_url)
        try:
            rows = await conn.fetch(
                "SELECT (payload->>'batch')::int AS n, count(*) AS c FROM (SELECT payload FROM relay.messages"
                " WHERE queue_name = 'drop_std' UNION ALL SELECT payload FROM relay.messages_unlogged"
                " WHERE queue_name = 'drop_unl') t GROUP BY 1")
            return {r["n"]: r["c"] for r in rows}
        finally:
            await conn.close()

    counts = asyncio.run(stored())
    for n, status in outcomes.items():
        assert counts.get(n, 0) in (0, 10), f"batch {n} was stored partially: {counts.get(n)}"
        if status == 201:
            assert counts.get(n) == 10


def test_a_database_that_stops_answering_gives_503_not_a_hang(throwaway_pg: ThrowawayPostgres) -> None:
    """A stalled database host (or a partition, or a paused pgbouncer) closes no socket, so
    PostgreSQL's own statement_timeout never fires: requests hung until the server came back
    (or TCP gave up, minutes later), /health too. Each now ends within statement timeout +
    connect timeout (here 1 + 1 s) with 503, and /health within 2 s."""
    async def create() -> None:
        conn = await asyncpg.connect(throwaway_pg.url)
        await conn.execute("CREATE DATABASE relay_frozen")
        await conn.close()

    asyncio.run(create())
    env = {"POSTGRES_CONNECT_TIMEOUT": "1", "POSTGRES_STATEMENT_TIMEOUT_MS": "1000", "POSTGRES_POOL_MIN_SIZE": "4"}
    with start_server(with_database(throwaway_pg.url, "relay_frozen"), env) as server, \
            httpx.Client(base_url=server.api, timeout=15) as api:
        assert api.post("/queues", json={"name": "frozen"}).status_code == 201
        throwaway_pg.freeze()
        try:
            for method, path, body in [
                ("POST", "/queue/message", {"type": "t", "payload": 1, "queue": "frozen"}),
                ("GET", "/queue/message?queue=frozen", None),
                ("GET", "/queues", None),
            ]:
                started = time.monotonic()
                response = api.request(method, path, json=body)
                assert response.status_code == 503, (path, response.text)
                assert response.json()["code"] == "DATABASE_UNAVAILABLE"
                assert time.monotonic() - started < 6, path
            started = time.monotonic()
            assert api.get("/health").status_code == 500
            assert time.monotonic() - started < 4
        finally:
            throwaway_pg.thaw()
        deadline = time.monotonic() + 30
        while api.post("/queue/message", json={"type": "t", "payload": 2, "queue": "frozen"}).status_code != 201:
            assert time.monotonic() < deadline, "service did not resume by itself"
            time.sleep(0.5)
        assert api.get("/health").status_code == 200
