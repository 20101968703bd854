"""After a backlog: the space `relay compact` gives back, and what traffic sees while it runs.

A backlog of `--backlog` messages is written, drained (every message acknowledged) and deleted
by retention, followed by the maintenance vacuum; then a steady trickle of traffic starts
(enqueue, dequeue and ack through the service layer, one message at a time) and, a few seconds
later, `relay compact` runs. The script prints the message table's sizes before and after, how
long each step took, and the traffic's latency before and during the compaction.

    python benchmarks/scale/compaction.py                 # 1,000,000 messages (~2 min)
    python benchmarks/scale/compaction.py --backlog 200000
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.scale.common import fresh_database, print_table, summarize
from benchmarks.scale.fill import fill_messages
from relayq.config import Settings
from relayq.db.compact import Resize, compact
from relayq.runtime import Relay
from relayq.services.messages import NewMessage

QUEUE = "backlog"


async def traffic(relay: Relay, latencies: list[float], stop: asyncio.Event) -> None:
    """One message at a time: enqueue, dequeue, ack; the latency of each whole cycle."""
    payload = msgspec.Raw(b'{"n":1}')
    while not stop.is_set():
        started = time.perf_counter()
        await relay.messages.enqueue([NewMessage(queue=QUEUE, type="t", payload=payload)])
        leased = await relay.messages.dequeue(QUEUE, 1, batch=True)
        await relay.messages.ack([(r["id"], r["lock_token"]) for r in leased], batch=True)
        latencies.append(time.perf_counter() - started)
        await asyncio.sleep(0.005)


async def run(dsn: str, backlog: int, baseline_seconds: float) -> dict[str, Any]:
    settings = Settings.from_env(environ={"LOG_LEVEL": "warning"}, dotenv=None)
    relay = await Relay.start(settings, dsn, background=False)
    conn = await asyncpg.connect(dsn)
    steps: dict[str, float] = {}
    try:
        await relay.queues.create({"name": QUEUE, "queue_type": "standard"})
        clock = time.perf_counter()
        await fill_messages(conn, QUEUE, "queued", backlog)
        steps["fill"] = time.perf_counter() - clock
        clock = time.perf_counter()
        # The drain: every message leased and acknowledged (dequeue and ack each write a version).
        await conn.execute("""UPDATE relay.messages SET status = 'processing', lock_token = md5(id),
            locked_until = now() + interval '1 hour', dequeued_at = now(), attempt_count = 1 WHERE queue_name = $1""", QUEUE)
        await conn.execute("""UPDATE relay.messages SET status = 'acknowledged', lock_token = NULL,
            locked_until = NULL, acknowledged_at = now() WHERE queue_name = $1""", QUEUE)
        await conn.execute("DELETE FROM relay.messages WHERE queue_name = $1", QUEUE)  # retention
        await conn.execute("VACUUM relay.messages")  # the maintenance vacuum after it
        steps["drain"] = time.perf_counter() - clock

        before_latency: list[float] = []
        during_latency: list[float] = []
        stop = asyncio.Event()
        worker = asyncio.create_task(traffic(relay, before_latency, stop))
        await asyncio.sleep(baseline_seconds)
        stop.set()
        await worker
        stop = asyncio.Event()
        worker = asyncio.create_task(traffic(relay, during_latency, stop))
        clock = time.perf_counter()
        resized = await compact(dsn)
        steps["compact"] = time.perf_counter() - clock
        stop.set()
        await worker
    finally:
        await conn.close()
        await relay.stop()
    return {"backlog": backlog, "steps": steps, "resized": resized,
            "before": summarize(before_latency), "during": summarize(during_latency)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backlog", type=int, default=1_000_000)
    parser.add_argument("--baseline-seconds", type=float, default=5.0)
    args = parser.parse_args()
    with fresh_database("relay_compaction") as dsn:
        result = asyncio.run(run(dsn, args.backlog, args.baseline_seconds))
    resized: list[Resize] = [r for r in result["resized"] if r.table == "relay.messages"]
    print_table(f"relay.messages after a drained backlog of {result['backlog']:,} messages",
                ["relation", "before MiB", "after MiB"],
                [[r.relation, r.before / 1048576, (r.after or 0) / 1048576] for r in resized])
    print_table("steps", ["step", "seconds"], [[k, v] for k, v in result["steps"].items()])
    print_table("enqueue + dequeue + ack of one message (ms)", ["when", "n", "p50", "p95", "p99", "max"],
                [[when, s["n"], s["p50"], s["p95"], s["p99"], s["max"]]
                 for when, s in (("before compact", result["before"]), ("during compact", result["during"]))])


if __name__ == "__main__":
    main()
