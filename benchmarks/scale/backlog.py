"""Backlog benchmark: dequeue and monitoring latency with millions of messages stored.

    python benchmarks/scale/backlog.py                      # 1,000,000 queued + 1,000,000 acknowledged
    python benchmarks/scale/backlog.py --queued 100000 --acknowledged 100000 --json backlog.json
    python benchmarks/scale/backlog.py --queued 0 --acknowledged 0 --delayed 1000000   # waiting messages

Measures, on an otherwise empty queue and again after a fast server-side fill (INSERT ...
SELECT generate_series into the same queue, then VACUUM ANALYZE as autovacuum would): single
and batch dequeue latency (each leased message is acked, outside the timing), and the latency
of GET /queue/metrics, /queues and /queue/status (without and with message lists). `--delayed`
adds messages that are queued but due only in a day (delayed delivery, or retry backoff after an
outage), older than the rest, so they come first in priority-then-age order. Uses its own
database (RELAY_TEST_ADMIN_URL, default the local PostgreSQL) and drops it afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.scale.common import (
    fresh_database,
    print_table,
    server_on,
    session,
    summarize,
    timed,
    write_json,
)
from benchmarks.scale.fill import fill_messages

QUEUE = "bench"


async def measure(api: str, rounds: int, batch: int) -> dict[str, dict[str, float]]:
    """Latency per operation, sequential requests from one client."""
    results: dict[str, list[float]] = {}
    async with session() as http:
        async def get(path: str, **params: Any) -> Any:
            async with http.get(api + path, params=params) as response:
                assert response.status in (200, 404), await response.text()
                return await response.json()

        async def ack(messages: list[dict[str, Any]]) -> None:
            acks = [{"id": m["id"], "lock_token": m["lock_token"]} for m in messages]
            async with http.post(api + "/queue/ack/batch", json={"acks": acks}) as response:
                assert response.status == 200

        # Messages of our own, newest, so the empty-queue run has something to dequeue.
        items = [{"type": "t", "payload": {"i": i}, "queue": QUEUE} for i in range((rounds + 20) * (batch + 1) + 50)]
        for start in range(0, len(items), 5000):
            async with http.post(api + "/queue/batch", json=items[start:start + 5000]) as response:
                assert response.status == 201, await response.text()
        for _ in range(20):  # warm-up: connections, prepared statements, caches
            await ack([await get("/queue/message", queue=QUEUE)])
            await ack((await get("/queue/messages/batch", queue=QUEUE, count=batch))["messages"])
        for _ in range(rounds):
            seconds, message = await timed(lambda: get("/queue/message", queue=QUEUE))
            results.setdefault("dequeue (1)", []).append(seconds)
            await ack([message])
        for _ in range(rounds):
            seconds, body = await timed(lambda: get("/queue/messages/batch", queue=QUEUE, count=batch))
            results.setdefault(f"dequeue batch ({batch})", []).append(seconds)
            await ack(body["messages"])
        endpoints = {
            "GET /queue/metrics": ("/queue/metrics", {}),
            "GET /queues": ("/queues", {}),
            "GET /queue/status (no lists)": ("/queue/status", {"include_messages": "false"}),
            "GET /queue/status?queueName (lists)": ("/queue/status", {"queueName": QUEUE}),
            "GET /queue/status (all queues, lists)": ("/queue/status", {}),
            # The dashboard's message tabs: one page of a queue's list, in their default order.
            "GET /queue/main/messages?queueName": ("/queue/main/messages", {
                "queueName": QUEUE, "sortBy": "priority", "sortOrder": "desc", "limit": "50"}),
            "GET /queue/acknowledged/messages?queueName": ("/queue/acknowledged/messages", {
                "queueName": QUEUE, "sortBy": "acknowledged_at", "sortOrder": "desc", "limit": "50"}),
            "GET /queue/main/messages?queueName (API default order)": ("/queue/main/messages", {
                "queueName": QUEUE, "limit": "50"}),
            "GET /queue/main/messages (all queues)": ("/queue/main/messages", {
                "sortBy": "priority", "sortOrder": "desc", "limit": "50"}),
            # As the dashboard asks: a filtered count stops at 10,000 (without maxCount it is exact).
            "GET /queue/main/messages?queueName&filterType&maxCount": ("/queue/main/messages", {
                "queueName": QUEUE, "sortBy": "priority", "sortOrder": "desc", "limit": "50", "filterType": "type_1",
                "maxCount": "10000"}),
            "GET /queue/main/messages?queueName&filterType (exact count)": ("/queue/main/messages", {
                "queueName": QUEUE, "sortBy": "priority", "sortOrder": "desc", "limit": "50", "filterType": "type_1"}),
        }
        for label, (path, params) in endpoints.items():
            for _ in range(5):
                await get(path, **params)
            for _ in range(max(5, rounds // 10)):
                seconds, _ = await timed(lambda p=path, q=params: get(p, **q))  # type: ignore[misc]
                results.setdefault(label, []).append(seconds)
    return {label: summarize(values) for label, values in results.items()}


async def fill(dsn: str, queued: int, acknowledged: int, delayed: int) -> float:
    started = time.perf_counter()
    conn = await asyncpg.connect(dsn)
    try:
        await fill_messages(conn, QUEUE, "acknowledged", acknowledged)
        await fill_messages(conn, QUEUE, "queued", queued)
        await fill_messages(conn, QUEUE, "queued", delayed, delay=86_400)
        await conn.execute("VACUUM ANALYZE relay.messages")
    finally:
        await conn.close()
    return time.perf_counter() - started


async def table_size(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        size: int = await conn.fetchval("SELECT pg_total_relation_size('relay.messages')")
        return size
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queued", type=int, default=1_000_000)
    parser.add_argument("--acknowledged", type=int, default=1_000_000)
    parser.add_argument("--delayed", type=int, default=0, help="queued messages due in a day")
    parser.add_argument("--rounds", type=int, default=200, help="timed requests per dequeue measurement")
    parser.add_argument("--batch", type=int, default=100, help="messages per batch dequeue")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    with fresh_database("relay_scale_backlog") as dsn:
        env = {"ACKNOWLEDGED_RETENTION_HOURS": "0"}  # keep the history for the whole run
        with server_on(dsn, env) as server:
            import httpx

            httpx.post(server.api + "/queues", json={"name": QUEUE}).raise_for_status()
            empty = asyncio.run(measure(server.api, args.rounds, args.batch))
            print(f"filling {args.queued:,} queued + {args.acknowledged:,} acknowledged"
                  f" + {args.delayed:,} delayed ...", flush=True)
            fill_seconds = asyncio.run(fill(dsn, args.queued, args.acknowledged, args.delayed))
            size = asyncio.run(table_size(dsn))
            print(f"filled in {fill_seconds:.0f} s; relay.messages with indexes: {size / 2**20:,.0f} MiB", flush=True)
            full = asyncio.run(measure(server.api, args.rounds, args.batch))

    rows = []
    for label, before in empty.items():
        after = full[label]
        rows.append([label, before["p50"], before["p95"], after["p50"], after["p95"], after["avg"] / before["avg"]])
    print_table(
        f"Latency in ms, empty queue vs {args.queued:,} queued + {args.acknowledged:,} acknowledged"
        + (f" + {args.delayed:,} delayed" if args.delayed else ""),
        ["operation", "empty p50", "empty p95", "backlog p50", "backlog p95", "avg ratio"], rows,
    )
    write_json(args.json, {"queued": args.queued, "acknowledged": args.acknowledged, "delayed": args.delayed,
                           "fill_seconds": fill_seconds,
                           "table_bytes": size, "empty": empty, "backlog": full})


if __name__ == "__main__":
    main()
