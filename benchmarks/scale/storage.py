"""Bounded-storage benchmark: a steady enqueue/dequeue/ack load, table and index sizes over time.

    python benchmarks/scale/storage.py                   # 3 minutes, 300 messages/s
    python benchmarks/scale/storage.py --minutes 10      # the full run of docs/scaling.md
    python benchmarks/scale/storage.py --rate 500 --retention-seconds 60 --json storage.json

Producers enqueue `--rate` messages a second, one per request; consumers dequeue and ack them
as they arrive. Retention is short (`--retention-seconds`, default 60, via
ACKNOWLEDGED_RETENTION_HOURS) and maintenance runs every 10 s (`--maintenance-seconds`), so once rows reach retention age
the live message table should stop growing: acknowledged rows leave in batches, the maintenance
VACUUM right after each such pass (MAINTENANCE_VACUUM; `--no-maintenance-vacuum` leaves it all to
autovacuum, naptime 1 min, tuned by migration 0004) makes their space reusable, new rows fill it.
Every `--sample` seconds it prints the heap and index sizes of relay.messages, live and dead
tuples, the maintenance vacuums and autovacuums so far, and the autovacuum ANALYZEs of the
activity log (whose snapshot keeps dead index entries everywhere in the database).
It starts a private PostgreSQL cluster with stock settings (autovacuum on) unless `--admin-url`
names one, since the result depends on autovacuum running.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.scale.common import print_table, private_cluster, server_on, session, write_json
from relayq.bench.environment import with_database

QUEUE = "steady"
SIZES_SQL = """SELECT pg_relation_size('relay.messages') AS heap, pg_indexes_size('relay.messages') AS indexes,
    s.n_live_tup AS live, s.n_dead_tup AS dead, s.vacuum_count AS vacuums, s.autovacuum_count AS autovacuums,
    (SELECT coalesce(sum(n), 0) FROM relay.message_counts WHERE status = 'acknowledged') AS acknowledged,
    (SELECT a.autoanalyze_count FROM pg_stat_user_tables a WHERE a.relid = 'relay.activity_log'::regclass)
        AS log_analyzes
FROM pg_stat_user_tables s WHERE s.relid = 'relay.messages'::regclass"""
INDEX_SIZES_SQL = """SELECT c.relname AS name, pg_relation_size(i.indexrelid) AS bytes
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 'relay.messages'::regclass ORDER BY 1"""


async def load(api: str, rate: float, seconds: float, consumers: int, done: dict[str, int]) -> None:
    """Enqueue at `rate`/s (one message per request) while consumers dequeue and ack."""
    stop = time.monotonic() + seconds
    async with session() as http:
        async def produce() -> None:
            interval = 1.0 / rate
            next_at = time.monotonic()
            pending: set[asyncio.Task[Any]] = set()
            while next_at < stop:
                task = asyncio.ensure_future(http.post(api + "/queue/message", json={
                    "type": "steady", "payload": {"at": next_at, "pad": "x" * 200}, "queue": QUEUE}))
                task.add_done_callback(lambda t: t.result().release() if not t.exception() else None)
                pending.add(task)
                task.add_done_callback(pending.discard)
                done["enqueued"] += 1
                next_at += interval
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            await asyncio.gather(*pending, return_exceptions=True)

        async def consume() -> None:
            while time.monotonic() < stop + 5:
                async with http.get(api + "/queue/messages/batch", params={"queue": QUEUE, "count": 50}) as r:
                    messages = (await r.json())["messages"] if r.status == 200 else []
                if not messages:
                    await asyncio.sleep(0.05)
                    continue
                acks = [{"id": m["id"], "lock_token": m["lock_token"]} for m in messages]
                async with http.post(api + "/queue/ack/batch", json={"acks": acks}) as r:
                    done["acked"] += len((await r.json())["succeeded"])

        await asyncio.gather(produce(), *(consume() for _ in range(consumers)))


async def sampler(dsn: str, every: float, seconds: float, done: dict[str, int], rows: list[list[Any]],
                  index_sizes: list[dict[str, int]]) -> None:
    conn = await asyncpg.connect(dsn)
    started = time.monotonic()
    try:
        while True:
            elapsed = time.monotonic() - started
            s = await conn.fetchrow(SIZES_SQL)
            row = [f"{elapsed / 60:.1f}", s["heap"] / 2**20, s["indexes"] / 2**20, s["live"], s["dead"],
                   s["vacuums"], s["autovacuums"], done["enqueued"], done["acked"], int(s["acknowledged"]),
                   s["log_analyzes"]]
            rows.append(row)
            index_sizes.append({r["name"]: r["bytes"] for r in await conn.fetch(INDEX_SIZES_SQL)})
            print("  ".join(str(v if not isinstance(v, float) else round(v, 2)) for v in row), flush=True)
            if elapsed >= seconds:
                return
            await asyncio.sleep(min(every, max(0.5, seconds - elapsed)))
    finally:
        await conn.close()


# What else is running, for --trace: autovacuum workers, the maintenance vacuum, long snapshots.
ACTIVITY_SQL = r"""SELECT coalesce(string_agg(
    CASE WHEN backend_type = 'autovacuum worker' THEN query
         WHEN application_name = 'relayq-maintenance' THEN 'maintenance: ' || left(regexp_replace(query, '\s+', ' ', 'g'), 60)
         ELSE 'xmin ' || round(extract(epoch FROM now() - xact_start)::numeric, 2) || ' s: '
              || left(regexp_replace(query, '\s+', ' ', 'g'), 60) END,
    '; '), '') FROM pg_stat_activity
WHERE pid <> pg_backend_pid() AND (backend_type = 'autovacuum worker' OR application_name = 'relayq-maintenance'
    OR (backend_xmin IS NOT NULL AND now() - xact_start > interval '100 ms'))"""


async def tracer(dsn: str, seconds: float) -> None:
    """Every 0.2 s: print each index whose size changed, with what else ran at that moment."""
    conn = await asyncpg.connect(dsn)
    started = time.monotonic()
    last: dict[str, int] = {}
    try:
        while time.monotonic() - started < seconds:
            sizes = {r["name"]: r["bytes"] // 8192 for r in await conn.fetch(INDEX_SIZES_SQL)}
            changed = {k: f"{last.get(k, 0)}->{v}" for k, v in sizes.items() if last and v != last.get(k)}
            if changed:
                print(f"  trace {time.monotonic() - started:7.1f} s  {changed}  | {await conn.fetchval(ACTIVITY_SQL)}",
                      flush=True)
            last = sizes
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


async def run(
    api: str, dsn: str, args: argparse.Namespace, rows: list[list[Any]], index_sizes: list[dict[str, int]]
) -> dict[str, int]:
    done = {"enqueued": 0, "acked": 0}
    seconds = args.minutes * 60
    print("minute  heap MiB  index MiB  live  dead  vacuums  autovacuums  enqueued  acked  acked rows kept  "
          "log analyzes", flush=True)
    await asyncio.gather(load(api, args.rate, seconds, args.consumers, done),
                         sampler(dsn, args.sample, seconds, done, rows, index_sizes),
                         *([tracer(dsn, seconds)] if args.trace else []))
    return done


async def _create_database(admin: str, drop_only: bool = False) -> None:
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute("DROP DATABASE IF EXISTS relay_scale_storage WITH (FORCE)")
        if not drop_only:
            await conn.execute("CREATE DATABASE relay_scale_storage")
    finally:
        await conn.close()


async def _setting(dsn: str, name: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        value: str = await conn.fetchval("SELECT current_setting($1)", name)
        return value
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=3.0, help="duration (docs/scaling.md: 10)")
    parser.add_argument("--rate", type=float, default=300.0, help="messages enqueued per second")
    parser.add_argument("--consumers", type=int, default=4)
    parser.add_argument("--retention-seconds", type=float, default=60.0)
    parser.add_argument("--maintenance-seconds", type=float, default=10.0,
                        help="MAINTENANCE_INTERVAL_SECONDS: retention passes (each followed by the vacuums)")
    parser.add_argument("--sample", type=float, default=30.0, help="seconds between size samples")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--no-maintenance-vacuum", action="store_true",
                        help="MAINTENANCE_VACUUM=false: only autovacuum reclaims space (the old behaviour)")
    parser.add_argument("--trace", action="store_true",
                        help="print every index size change (polled every 0.2 s) with the vacuums and snapshots running")
    parser.add_argument("--admin-url", help="use this cluster instead of a private one (it needs autovacuum on)")
    args = parser.parse_args()

    rows: list[list[Any]] = []
    index_sizes: list[dict[str, int]] = []
    env = {"ACKNOWLEDGED_RETENTION_HOURS": str(args.retention_seconds / 3600), "MAINTENANCE_INTERVAL_SECONDS": str(args.maintenance_seconds),
           "MAINTENANCE_VACUUM": "false" if args.no_maintenance_vacuum else "true"}
    cluster = contextlib.nullcontext(args.admin_url) if args.admin_url else private_cluster()
    with cluster as admin:
        asyncio.run(_create_database(admin))
        dsn = with_database(admin, "relay_scale_storage")
        autovacuum = asyncio.run(_setting(dsn, "autovacuum"))
        print(f"database {dsn} (autovacuum={autovacuum})", flush=True)
        with server_on(dsn, env) as server:
            import httpx

            httpx.post(server.api + "/queues", json={"name": QUEUE}).raise_for_status()
            done = asyncio.run(run(server.api, dsn, args, rows, index_sizes))
        asyncio.run(_create_database(admin, drop_only=True))

    headers = ["minute", "heap MiB", "index MiB", "live rows", "dead rows", "vacuums", "autovacuums", "enqueued", "acked",
               "acked rows kept", "log analyzes"]
    print_table(f"relay.messages under {args.rate:.0f} msg/s, retention {args.retention_seconds:g} s, "
                f"maintenance every {args.maintenance_seconds:g} s", headers, rows)
    # Steady state starts once rows are old enough for retention and autovacuum (naptime 1 min)
    # has had two chances; from then on the table must not grow.
    warm = args.retention_seconds / 60 + 2.0
    steady = next((r for r in rows if float(r[0]) >= warm), rows[-1])
    final = rows[-1]
    total_steady, total_final = steady[1] + steady[2], final[1] + final[2]
    peak = max(r[1] + r[2] for r in rows)
    print(f"\nheap+indexes at minute {steady[0]} (retention + 2 autovacuum naptimes): {total_steady:.1f} MiB; "
          f"at the end: {total_final:.1f} MiB; peak {peak:.1f} MiB "
          f"({'bounded' if total_final <= total_steady * 1.1 else 'GREW'}); enqueued {done['enqueued']:,}, "
          f"acked {done['acked']:,}")
    # The literal criterion: the end no larger than the sample after the first minute.
    first_at = next((i for i, r in enumerate(rows) if float(r[0]) >= 1.0), 0)
    first = rows[first_at]
    total_first = first[1] + first[2]
    print(f"heap+indexes after minute {first[0]}: {total_first:.2f} MiB; at the end: {total_final:.2f} MiB "
          f"({'no larger' if total_final <= total_first else 'LARGER'} at the end)")
    print_table("indexes of relay.messages (8 KiB pages)", ["index", f"minute {first[0]}", "end"], [
        [name, size // 8192, index_sizes[-1].get(name, 0) // 8192] for name, size in index_sizes[first_at].items()])
    write_json(args.json, {"rate": args.rate, "minutes": args.minutes, "retention_seconds": args.retention_seconds,
                           "samples": [dict(zip(headers, r, strict=True)) for r in rows],
                           "index_bytes": index_sizes, **done})


if __name__ == "__main__":
    main()
