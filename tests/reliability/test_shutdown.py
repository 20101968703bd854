"""Graceful shutdown: SIGTERM under load loses nothing. Requests in flight complete (parked
long-polls are answered at once, large batches commit); every accepted message is stored; the
process exits cleanly."""

from __future__ import annotations

import asyncio
import signal
import time

import asyncpg
import httpx

from tests.support.server import spawn_server


def test_sigterm_during_load_completes_in_flight_requests_and_loses_nothing(database_url: str) -> None:
    # Long-polls of 60 s against a graceful timeout of 10 s: unless the signal releases them, the
    # timeout cuts them off (500) and the stop takes the whole 10 s.
    server = spawn_server(database_url, args=["--graceful-timeout", "10"])
    accepted: list[str] = []
    outcomes: list[str] = []

    async def producer(client: httpx.AsyncClient, n: int) -> None:
        for i in range(10_000):
            try:
                if n % 2:  # single enqueues go through the coalescing buffer, which must flush
                    r = await client.post("/queue/message", json={"type": "sigterm", "payload": {"p": n, "i": i},
                                                                  "queue": "default"})
                    assert r.status_code == 201, r.text
                    accepted.append(r.json()["id"])
                    continue
                r = await client.post("/queue/batch", json=[{"type": "sigterm", "payload": {"p": n, "i": i, "j": j},
                                                             "queue": "default"} for j in range(200)])
            except httpx.ConnectError:
                return  # the listener is closed: the server no longer takes new requests
            except httpx.TransportError as exc:
                # A keep-alive connection closed before this request was read: nothing was processed.
                outcomes.append(f"transport {type(exc).__name__}")
                return
            assert r.status_code == 201, r.text
            accepted.extend(r.json()["ids"])

    async def long_poll(client: httpx.AsyncClient) -> None:
        r = await client.get("/queue/message", params={"queue": "sigterm_empty", "timeout": 60})
        outcomes.append(f"long-poll {r.status_code}")

    async def main() -> None:
        async with httpx.AsyncClient(base_url=server.api, timeout=60) as client:
            assert (await client.post("/queues", json={"name": "sigterm_empty"})).status_code in (201, 409)
            polls = [asyncio.ensure_future(long_poll(client)) for _ in range(5)]
            producers = [asyncio.ensure_future(producer(client, n)) for n in range(12)]
            await asyncio.sleep(1.0)  # polls parked, batches in flight
            started = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            await asyncio.gather(*polls, *producers)
            outcomes.append(f"drained in {time.monotonic() - started:.1f}s")

    try:
        asyncio.run(main())
        # A graceful stop exits 0 (uvicorn re-raises SIGTERM after its shutdown; relay handles it).
        assert server.process.wait(timeout=60) == 0, server.log()
    finally:
        if server.process.poll() is None:
            server.process.kill()
    # The parked long-polls were answered, not cut off.
    assert sorted(o for o in outcomes if o.startswith("long-poll")) == ["long-poll 404"] * 5, outcomes
    assert accepted, "the producers should have stored something before the signal"

    async def stored() -> set[str]:
        conn = await asyncpg.connect(database_url)
        try:
            rows = await conn.fetch("SELECT id FROM relay.messages WHERE id = ANY($1::text[])", accepted)
            return {r["id"] for r in rows}
        finally:
            await conn.close()

    missing = set(accepted) - asyncio.run(stored())
    assert not missing, f"{len(missing)} accepted messages missing after SIGTERM"
    assert "Traceback" not in server.log(), server.log()[-3000:]
    assert "Cancel" not in server.log(), server.log()[-3000:]  # nothing was cut off by the graceful timeout
