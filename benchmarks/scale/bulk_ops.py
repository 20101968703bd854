"""Bulk admin operations on one big queue: export, rename, purge, clear, delete.

    python benchmarks/scale/bulk_ops.py                          # 3,000,000 messages, default timeouts
    python benchmarks/scale/bulk_ops.py --messages 3000000 --bulk-timeout-ms 5000

Each operation's work grows with the queue (about 2 s per million rows for a delete), so under
the request path's statement timeout (POSTGRES_STATEMENT_TIMEOUT_MS, 30 s) a big enough queue
could never be deleted, purged or exported: every attempt rolled back at the timeout and
answered 503. They now run under POSTGRES_BULK_STATEMENT_TIMEOUT_MS (default 1 hour);
`--bulk-timeout-ms` sets it, so the old bound can be reproduced at a smaller size (3M messages
with 5,000 ms fail as 15M+ did with 30,000). Fills server-side (benchmarks/scale/fill.py) into
its own database (RELAY_TEST_ADMIN_URL, default the local PostgreSQL), dropped afterwards.
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
from benchmarks.scale.common import fresh_database, print_table, server_on
from benchmarks.scale.fill import fill_messages

QUEUE = "big"


async def fill(dsn: str, count: int) -> float:
    """Fill QUEUE with `count` queued messages; seconds taken."""
    started = time.perf_counter()
    conn = await asyncpg.connect(dsn)
    try:
        await fill_messages(conn, QUEUE, "queued", count)
        await conn.execute("VACUUM ANALYZE relay.messages")
    finally:
        await conn.close()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=3_000_000)
    parser.add_argument("--bulk-timeout-ms", type=int, default=None,
                        help="POSTGRES_BULK_STATEMENT_TIMEOUT_MS of the server (default: its own, 1 hour)")
    args = parser.parse_args()

    env = {"ACKNOWLEDGED_RETENTION_HOURS": "0"}
    if args.bulk_timeout_ms is not None:
        env["POSTGRES_BULK_STATEMENT_TIMEOUT_MS"] = str(args.bulk_timeout_ms)
    # (name, fill the queue first, method, path, JSON body, query)
    steps: list[tuple[str, bool, str, str, dict[str, object] | None, dict[str, str] | None]] = [
        ("export", True, "GET", "/queue/main/export", None, {"queueName": QUEUE}),
        ("rename", False, "POST", f"/queues/{QUEUE}/rename", {"newName": QUEUE + "2"}, None),
        ("rename back", False, "POST", f"/queues/{QUEUE}2/rename", {"newName": QUEUE}, None),
        ("purge", False, "POST", f"/queues/{QUEUE}/purge", {"status": "all"}, None),
        ("clear (queued, one queue)", True, "DELETE", "/queue/main/clear", None, {"queueName": QUEUE}),
        ("delete queue (force)", True, "DELETE", f"/queues/{QUEUE}", None, {"force": "true"}),
    ]
    rows = []
    with fresh_database("relay_scale_bulk") as dsn, server_on(dsn, env) as server:
        with httpx.Client(base_url=server.api, timeout=7200) as client:
            client.post("/queues", json={"name": QUEUE}).raise_for_status()
            for name, fill_first, method, path, body, params in steps:
                if fill_first:
                    client.post(f"/queues/{QUEUE}/purge", json={"status": "all"}).raise_for_status()
                    print(f"filling {args.messages:,} messages ({asyncio.run(fill(dsn, args.messages)):.0f} s)")
                started = time.perf_counter()
                response = client.request(method, path, json=body, params=params)
                seconds = time.perf_counter() - started
                detail = response.json().get("code", "") if response.status_code >= 400 else ""
                rows.append([name, response.status_code, detail, seconds, len(response.content) / 2**20])
                print(f"{name}: {response.status_code} {detail} {seconds:.1f} s", flush=True)
    print_table(f"Bulk operations on one queue of {args.messages:,} messages "
                f"(bulk timeout: {args.bulk_timeout_ms if args.bulk_timeout_ms is not None else 'default'} ms)",
                ["operation", "status", "code", "seconds", "MiB"], rows)


if __name__ == "__main__":
    main()
