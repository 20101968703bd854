"""Multi-process benchmark: throughput of `relay serve --workers N` for N = 1, 2, 4.

    python benchmarks/scale/multiprocess.py                          # 15 s per scenario
    python benchmarks/scale/multiprocess.py --seconds 30 --workers 1 2 4 8 --json mp.json

For each process count: single-message enqueue throughput (one message per request), and the
full cycle (enqueue, dequeue, ack: three requests), from `--concurrency` concurrent clients
spread over `--clients` load-generator processes (so one Python client does not become the
bottleneck before the server). Uses its own database and drops it afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import secrets
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.scale.common import (
    fresh_database,
    print_table,
    run_for,
    server_on,
    session,
    summarize,
    write_json,
)


async def _client(api: str, queue: str, scenario: str, seconds: float, concurrency: int) -> tuple[int, list[float]]:
    async with session(limit=concurrency + 10) as http:
        body = {"type": "bench", "payload": {"pad": "x" * 100}, "queue": queue}

        async def enqueue() -> None:
            async with http.post(api + "/queue/message", json=body) as r:
                assert r.status == 201, await r.text()

        async def cycle() -> None:
            await enqueue()
            async with http.get(api + "/queue/message", params={"queue": queue}) as r:
                if r.status != 200:
                    return
                message = await r.json()
            async with http.post(api + "/queue/ack", json={"id": message["id"], "lock_token": message["lock_token"]}):
                pass

        return await run_for(seconds, concurrency, enqueue if scenario == "enqueue" else cycle)


def _client_process(args: tuple[str, str, str, float, int]) -> tuple[int, list[float]]:
    return asyncio.run(_client(*args))


def measure(api: str, scenario: str, seconds: float, concurrency: int, clients: int) -> dict[str, Any]:
    queue = "mp_" + secrets.token_hex(4)
    import httpx

    httpx.post(api + "/queues", json={"name": queue}).raise_for_status()
    _client_process((api, queue, scenario, 2.0, 8))  # warm-up
    per = max(1, concurrency // clients)
    with multiprocessing.get_context("spawn").Pool(clients) as pool:
        parts = pool.map(_client_process, [(api, queue, scenario, seconds, per)] * clients)
    ops = sum(n for n, _ in parts)
    latencies = [x for _, lat in parts for x in lat]
    return {"ops_per_sec": ops / seconds, **summarize(latencies)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--concurrency", type=int, default=64, help="concurrent requests in total")
    parser.add_argument("--clients", type=int, default=2, help="load-generator processes")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    results: dict[str, dict[str, Any]] = {}
    with fresh_database("relay_scale_mp") as dsn:
        for workers in args.workers:
            with server_on(dsn, {"ACTIVITY_LOG_ENABLED": "false"}, workers=workers) as server:
                for scenario in ("enqueue", "cycle"):
                    key = f"{workers}:{scenario}"
                    results[key] = measure(server.api, scenario, args.seconds, args.concurrency, args.clients)
                    print(f"{workers} process(es), {scenario}: {results[key]['ops_per_sec']:,.0f} ops/s", flush=True)

    rows = []
    for scenario, label in (("enqueue", "enqueue (1 msg/request)"), ("cycle", "cycle (enqueue+dequeue+ack)")):
        base = results[f"{args.workers[0]}:{scenario}"]["ops_per_sec"]
        for workers in args.workers:
            r = results[f"{workers}:{scenario}"]
            rows.append([label, workers, r["ops_per_sec"], r["ops_per_sec"] / base, r["p50"], r["p95"], r["p99"]])
    print_table(f"Throughput by server processes ({args.concurrency} concurrent requests, {args.seconds:.0f} s each)",
                ["scenario", "processes", "ops/s", "vs 1", "p50 ms", "p95 ms", "p99 ms"], rows)
    write_json(args.json, {"args": vars(args), "results": results})


if __name__ == "__main__":
    main()
