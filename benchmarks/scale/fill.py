"""Fast server-side fills of the message tables, for the scale benchmarks and query-plan tests.

One `INSERT ... SELECT generate_series` per chunk writes rows exactly as the service would
(ids with their table prefix, counters kept by the triggers), at a few hundred thousand rows
a second instead of going through the API.
"""

from __future__ import annotations

import secrets
from typing import Any

# Id prefix per table (domain/ids.py): 's' durable, 'u' unlogged, 'p<queue id>-' partitioned.
_PREFIX_SQL = {
    "relay.messages": "'s'",
    "relay.messages_unlogged": "'u'",
    "relay.messages_partitioned": "'p' || q.id || '-'",
}

FILL_SQL = """INSERT INTO {table} (id, queue_id, queue_name, type, payload, priority, status, attempt_count,
    max_attempts, ack_timeout_seconds, lock_token, locked_until, consumer_id, created_at, available_at,
    dequeued_at, acknowledged_at, payload_size, delayed)
SELECT {prefix} || left(md5($3 || g::text), 16), q.id, q.name, 'type_' || (g % 4), json_build_object('n', g, 'pad', $7::text),
       (g % 3)::smallint, $2, CASE WHEN $2 = 'queued' THEN 0 ELSE 1 END, q.max_attempts, q.ack_timeout_seconds,
       CASE WHEN $2 = 'processing' THEN md5(g::text) END,
       CASE WHEN $2 = 'processing' THEN now() + interval '1 hour' END,
       CASE WHEN $2 <> 'queued' THEN 'bench-worker' END,
       $6::timestamptz - make_interval(secs => ($8 - g) * 0.01),
       $6::timestamptz - make_interval(secs => ($8 - g) * 0.01) + make_interval(secs => $9),
       CASE WHEN $2 <> 'queued' THEN $6::timestamptz END,
       CASE WHEN $2 = 'acknowledged' THEN $6::timestamptz - make_interval(secs => ($8 - g) * 0.005) END,
       length($7::text) + 20, $2 = 'queued' AND $9 > 0
FROM relay.queues q, generate_series($4::bigint, $5::bigint) AS g
WHERE q.name = $1"""


async def fill_messages(
    conn: Any, queue: str, status: str, count: int, *, table: str = "relay.messages",
    chunk: int = 100_000, payload_pad: int = 40, delay: float = 0.0,
) -> None:
    """Insert `count` messages in `status` into `queue` (which must exist), in chunks.

    Created times step back 10 ms per row from now, so FIFO order is the insertion order.
    Queued messages with a `delay` are due that many seconds after their creation (delayed).
    """
    seed = secrets.token_hex(4)
    sql = FILL_SQL.format(table=table, prefix=_PREFIX_SQL[table])
    base = await conn.fetchval("SELECT now()")
    for lo in range(1, count + 1, chunk):
        hi = min(lo + chunk - 1, count)
        await conn.execute(sql, queue, status, seed, lo, hi, base, "x" * payload_pad, count, delay)
