"""Lease expiry at scale: how long the reaper takes to reclaim many leases expiring at once.

    python benchmarks/scale/reaper.py                       # 200,000 leases
    python benchmarks/scale/reaper.py --leases 50000 --queues 10

API.md §8.1 promises a reclaim within 2 s of expiry. A fleet of workers that dies together (a
deploy gone wrong, a node lost) leaves all its leases to expire in the same second. The script
fills `--leases` messages in `processing` (leases an hour long) spread over `--queues` queues,
expires them all in one statement, then polls the counters until none is left in `processing`,
and the activity counters until every `timeout_requeue` entry is written. Meanwhile one client
keeps dequeueing and acking single messages from another queue, to show what the reclaim costs
the traffic around it. Fills server-side (benchmarks/scale/fill.py) into its own database
(RELAY_TEST_ADMIN_URL, default the local PostgreSQL), dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.scale.common import fresh_database, print_table, server_on, summarize
from benchmarks.scale.fill import fill_messages

OTHER = "bystander"
PROCESSING_SQL = f"""SELECT coalesce(sum(n), 0) FROM relay.message_counts
WHERE status = 'processing' AND queue_name <> '{OTHER}'"""  # the bystander's own lease is not one of them
EXPIRE_SQL = f"""UPDATE relay.messages SET locked_until = now() - interval '1 ms'
WHERE status = 'processing' AND queue_name <> '{OTHER}'"""
DEADLINE = 600.0
REQUEUED_SQL = "SELECT coalesce(sum(n), 0) FROM relay.activity_counts WHERE action = 'timeout_requeue'"


async def measure(dsn: str, api: str, leases: int, queues: int) -> list[list[object]]:
    conn = await asyncpg.connect(dsn)
    async with httpx.AsyncClient(base_url=api, timeout=60) as client:
        names = [f"q{i}" for i in range(queues)]
        for name in [*names, OTHER]:
            (await client.post("/queues", json={"name": name})).raise_for_status()
        for i, name in enumerate(names):  # exactly `leases` in all
            await fill_messages(conn, name, "processing", leases // queues + (i < leases % queues))
        await fill_messages(conn, OTHER, "queued", 100_000)
        await conn.execute("VACUUM ANALYZE relay.messages")
        latencies: list[float] = []
        done = asyncio.Event()

        async def bystander() -> None:  # one worker of another queue, dequeue + ack
            while not done.is_set():
                started = time.perf_counter()
                got = (await client.get("/queue/message", params={"queue": OTHER})).json()
                ack = {"id": got["id"], "lock_token": got["lock_token"]}
                (await client.post("/queue/ack", json=ack)).raise_for_status()
                latencies.append(time.perf_counter() - started)

        worker = asyncio.create_task(bystander())
        await asyncio.sleep(3)
        quiet = summarize(latencies)
        latencies.clear()
        await conn.execute(EXPIRE_SQL)
        expired = time.perf_counter()
        reclaimed_at = logged_at = None
        while reclaimed_at is None or logged_at is None:
            await asyncio.sleep(0.05)
            now = time.perf_counter() - expired
            if now > DEADLINE:
                raise SystemExit(f"not done after {DEADLINE:.0f} s: reclaimed at {reclaimed_at}, logged at {logged_at}")
            if reclaimed_at is None and not await conn.fetchval(PROCESSING_SQL):
                reclaimed_at = now
            if logged_at is None and await conn.fetchval(REQUEUED_SQL) >= leases:
                logged_at = now
        done.set()
        await worker
        busy = summarize(latencies)
    await conn.close()
    return [
        ["all reclaimed (s)", reclaimed_at, ""],
        ["all timeout_requeue entries written (s)", logged_at, ""],
        ["bystander dequeue+ack p50 / p95 (ms), before", quiet["p50"], quiet["p95"]],
        ["bystander dequeue+ack p50 / p95 (ms), during", busy["p50"], busy["p95"]],
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leases", type=int, default=200_000)
    parser.add_argument("--queues", type=int, default=1)
    args = parser.parse_args()
    # The server's default reaper interval (server_on sets 500 ms for the other benchmarks too).
    with fresh_database("relay_scale_reaper") as dsn, server_on(dsn, {"ACKNOWLEDGED_RETENTION_HOURS": "0"}) as server:
        rows = asyncio.run(measure(dsn, server.api, args.leases, args.queues))
    print_table(f"{args.leases:,} leases expiring at once over {args.queues} queue(s)", ["measure", "value", ""], rows)


if __name__ == "__main__":
    main()
