"""Many-queues benchmark: the cross-queue endpoints with thousands of queues, few of them busy.

    python benchmarks/scale/many_queues.py                     # 10,000 queues, 200 holding messages
    python benchmarks/scale/many_queues.py --queues 1000 --holding 50 --messages 100

Creates the queues, fills `--holding` of them with `--messages` queued and as many acknowledged
messages each (server-side, benchmarks/scale/fill.py), then times (median of `--rounds`) what a
dashboard and a monitoring script ask across all queues. Uses its own database
(RELAY_TEST_ADMIN_URL, default the local PostgreSQL) and drops it afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.scale.common import fresh_database, print_table, server_on
from benchmarks.scale.fill import fill_messages

ENDPOINTS: list[tuple[str, dict[str, str]]] = [
    ("/queues", {}),
    ("/queue/status", {}),
    ("/queue/status", {"include_messages": "false"}),
    ("/queue/metrics", {}),
    ("/queue/main/messages", {"limit": "50"}),
    ("/queue/main/messages", {"sortBy": "priority", "limit": "50"}),
    ("/queue/acknowledged/messages", {"sortBy": "acknowledged_at", "limit": "50"}),
    ("/queue/processing/messages", {"limit": "50"}),
]


async def populate(dsn: str, queues: int, holding: int, messages: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("""INSERT INTO relay.queues (name, ack_timeout_seconds, max_attempts)
            SELECT 'q' || g, 30, 3 FROM generate_series(1, $1) g""", queues)
        for i in range(1, queues + 1, max(1, queues // holding)):
            await fill_messages(conn, f"q{i}", "queued", messages)
            await fill_messages(conn, f"q{i}", "acknowledged", messages)
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queues", type=int, default=10_000)
    parser.add_argument("--holding", type=int, default=200, help="queues that hold messages")
    parser.add_argument("--messages", type=int, default=20, help="queued (and acknowledged) per such queue")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    import httpx

    rows = []
    with fresh_database("relay_scale_queues") as dsn, server_on(dsn, {"ACKNOWLEDGED_RETENTION_HOURS": "0"}) as server:
        asyncio.run(populate(dsn, args.queues, args.holding, args.messages))
        with httpx.Client(base_url=server.api, timeout=300) as client:
            for path, params in ENDPOINTS:
                client.get(path, params=params).raise_for_status()  # warm-up
                times, size = [], 0
                for _ in range(args.rounds):
                    started = time.perf_counter()
                    response = client.get(path, params=params)
                    times.append((time.perf_counter() - started) * 1000)
                    size = len(response.content)
                query = "&".join(f"{k}={v}" for k, v in params.items())
                rows.append([f"GET {path}" + (f"?{query}" if query else ""), statistics.median(times), size / 1024])
    print_table(f"{args.queues:,} queues, {args.holding:,} holding {args.messages:,} queued + {args.messages:,}"
                " acknowledged each", ["request", "median ms", "KiB"], rows)


if __name__ == "__main__":
    main()
