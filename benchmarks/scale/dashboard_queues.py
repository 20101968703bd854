"""Dashboard with many queues: how long Chromium takes to show the queues page, and to show a
count changed by an enqueue.

    python benchmarks/scale/dashboard_queues.py                 # 10,000 queues
    python benchmarks/scale/dashboard_queues.py --queues 1000

Needs Debian's /usr/bin/chromium (scripts/test.sh installs it). Uses its own database
(RELAY_TEST_ADMIN_URL, default the local PostgreSQL) and drops it afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.scale.common import fresh_database, print_table, server_on


async def create_queues(dsn: str, count: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("""INSERT INTO relay.queues (name, ack_timeout_seconds, max_attempts)
            SELECT 'q' || g, 30, 3 FROM generate_series(1, $1) g""", count)
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queues", type=int, default=10_000)
    args = parser.parse_args()

    import httpx
    from playwright.sync_api import sync_playwright

    rows = []
    with fresh_database("relay_scale_dashboard") as dsn, server_on(dsn, {}) as server:
        asyncio.run(create_queues(dsn, args.queues))
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            page = browser.new_page()
            started = time.perf_counter()
            page.goto(server.api.removesuffix("/api") + "/dashboard/#/queues")
            page.wait_for_selector('[data-testid="queue-row-q1"]', timeout=600_000)
            rows.append(["queues page shown", time.perf_counter() - started])
            started = time.perf_counter()
            httpx.post(server.api + "/queue/message", json={"queue": "q1", "type": "x", "payload": {}}).raise_for_status()
            page.wait_for_function(
                """() => document.querySelector('[data-testid="count-q1-queued"]')?.textContent === '1'""",
                timeout=600_000)
            rows.append(["an enqueue's count shown", time.perf_counter() - started])
            browser.close()
    print_table(f"Dashboard, {args.queues:,} queues (seconds)", ["step", "seconds"], rows)


if __name__ == "__main__":
    main()
