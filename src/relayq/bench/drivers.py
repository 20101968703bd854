"""Three ways to perform the same queue operations: over HTTP, through the service layer, in raw SQL.

Scenarios are written once against `Driver`; comparing the drivers in one run shows what each
layer costs: `RawSqlDriver` is the limit (plain statements through asyncpg, no HTTP, no service
code), `ServiceDriver` adds Relay's service layer, `HttpDriver` adds HTTP, validation and JSON.

The drivers keep the load generator cheap, because on a 2-core machine it shares the CPU with
the server and PostgreSQL: request bodies are encoded once, responses are decoded into tiny
msgspec structs that skip every field but the lease.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp
import asyncpg
import msgspec

from relayq.bench.http import RawHttp
from relayq.domain.ids import new_message_id, new_message_ids


@dataclass(frozen=True, slots=True)
class Lease:
    """A delivered message as a worker holds it: enough to ack or nack it."""

    id: str
    token: str


class BenchError(RuntimeError):
    """An operation answered something a healthy broker never answers under this load."""


def payload_text(size: int) -> str:
    """A JSON object whose compact encoding is exactly `size` bytes (at least 8)."""
    size = max(size, 8)
    return '{"d":"' + "x" * (size - 8) + '"}'


class Driver(Protocol):
    """The operations the scenarios perform; every call is one request (or one statement)."""

    name: str

    async def create_queue(self, name: str) -> None:
        """Create an empty standard queue (setup, not measured)."""

    async def enqueue(self, queue: str) -> None:
        """Store one message."""

    async def enqueue_batch(self, queue: str, count: int) -> None:
        """Store `count` messages in one request."""

    async def dequeue(self, queue: str) -> Lease | None:
        """Lease one message; None when the queue is empty."""

    async def dequeue_batch(self, queue: str, count: int) -> list[Lease]:
        """Lease up to `count` messages in one request."""

    async def ack(self, lease: Lease) -> None:
        """Acknowledge one lease."""

    async def ack_batch(self, leases: Sequence[Lease]) -> None:
        """Acknowledge many leases in one request."""

    async def nack(self, lease: Lease) -> None:
        """Return one lease to the queue."""

    async def round_trips(self) -> int | None:
        """Database round trips so far (None when they cannot be counted)."""

    async def close(self) -> None:
        """Release connections."""


# ----- HTTP ---------------------------------------------------------------------------------
class _Delivered(msgspec.Struct):
    id: str
    lock_token: str


class _Batch(msgspec.Struct):
    messages: list[_Delivered]


class _Stats(msgspec.Struct):
    round_trips: int
    pid: int = 0


class _Ack(msgspec.Struct):
    id: str
    lock_token: str


class _AckBatch(msgspec.Struct):
    acks: list[_Ack]


class HttpDriver:
    """Relay's REST API over keep-alive connections, one per worker (bench/http.py)."""

    name = "relay-http"

    def __init__(self, base_url: str, workers: int, payload_bytes: int, batch_size: int,
                 api_key: str = "", server_processes: int = 1) -> None:
        self.base = base_url.rstrip("/") + "/api"
        self.server_processes = server_processes
        headers = {"Content-Type": "application/json"}
        if api_key:
            headers["X-API-KEY"] = api_key
        self.headers = headers
        self.http = RawHttp(self.base, headers)
        self.payload = payload_text(payload_bytes)
        self.batch_size = batch_size
        self._requests: dict[tuple[str, str, int], bytes] = {}
        self._delivered = msgspec.json.Decoder(_Delivered)
        self._batch = msgspec.json.Decoder(_Batch)
        self._stats = msgspec.json.Decoder(_Stats)
        self._encode = msgspec.json.Encoder().encode

    def _item(self, queue: str) -> bytes:
        return b'{"type":"bench","queue":"' + queue.encode() + b'","payload":' + self.payload.encode() + b"}"

    def _cached(self, kind: str, queue: str, count: int = 0) -> bytes:
        """The request bytes of a request the load repeats unchanged."""
        key = (kind, queue, count)
        request = self._requests.get(key)
        if request is None:
            q = quote(queue, safe="")
            request = self._requests[key] = {
                "enqueue": lambda: self.http.build("POST", "/queue/message", self._item(queue)),
                "batch": lambda: self.http.build(
                    "POST", "/queue/batch", b"[" + b",".join([self._item(queue)] * count) + b"]"),
                "dequeue": lambda: self.http.build("GET", f"/queue/message?queue={q}"),
                "dequeue_batch": lambda: self.http.build("GET", f"/queue/messages/batch?queue={q}&count={count}"),
            }[kind]()
        return request

    async def _send(self, what: str, request: bytes, expect: int) -> bytes:
        status, raw = await self.http.send(request)
        if status != expect:
            raise BenchError(f"{what} → {status}: {raw[:300]!r}")
        return raw

    async def _post(self, path: str, body: bytes, expect: int) -> bytes:
        return await self._send(f"POST {path}", self.http.build("POST", path, body), expect)

    async def create_queue(self, name: str) -> None:
        await self._post("/queues", self._encode({"name": name, "max_attempts": 1000}), 201)

    async def enqueue(self, queue: str) -> None:
        await self._send("POST /queue/message", self._cached("enqueue", queue), 201)

    async def enqueue_batch(self, queue: str, count: int) -> None:
        await self._send("POST /queue/batch", self._cached("batch", queue, count), 201)

    async def dequeue(self, queue: str) -> Lease | None:
        status, raw = await self.http.send(self._cached("dequeue", queue))
        if status == 404:
            return None
        if status != 200:
            raise BenchError(f"GET /queue/message → {status}: {raw[:300]!r}")
        msg = self._delivered.decode(raw)
        return Lease(msg.id, msg.lock_token)

    async def dequeue_batch(self, queue: str, count: int) -> list[Lease]:
        raw = await self._send("GET /queue/messages/batch", self._cached("dequeue_batch", queue, count), 200)
        return [Lease(m.id, m.lock_token) for m in self._batch.decode(raw).messages]

    async def ack(self, lease: Lease) -> None:
        await self._post("/queue/ack", self._encode(_Ack(lease.id, lease.token)), 200)

    async def ack_batch(self, leases: Sequence[Lease]) -> None:
        raw = await self._post("/queue/ack/batch", self._encode(_AckBatch([_Ack(x.id, x.token) for x in leases])), 200)
        if b'"failed":[]' not in raw:
            raise BenchError(f"batch ack failed items: {raw[:300]!r}")

    async def nack(self, lease: Lease) -> None:
        await self._post(f"/queue/message/{lease.id}/nack", self._encode({"lock_token": lease.token}), 200)

    async def round_trips(self) -> int | None:
        """The server's counter; with several processes, the sum over every process seen."""
        if self.server_processes <= 1:
            status, raw = await self.http.request("GET", "/internal/stats")
            return self._stats.decode(raw).round_trips if status == 200 else None
        # Each new connection lands on one of the workers; ask until every pid has answered.
        seen: dict[int, int] = {}
        async with aiohttp.ClientSession(headers=self.headers) as probe:
            for _ in range(50 * self.server_processes):
                async with probe.get(self.base + "/internal/stats", headers={"Connection": "close"}) as response:
                    if response.status != 200:
                        return None
                    stats = self._stats.decode(await response.read())
                seen[stats.pid] = stats.round_trips
                if len(seen) >= self.server_processes:
                    return sum(seen.values())
        return None

    async def close(self) -> None:
        await self.http.close()


# ----- service layer, in-process -------------------------------------------------------------
class ServiceDriver:
    """Relay's MessageService called directly, in this process: Relay minus HTTP."""

    name = "relay-service"

    def __init__(self, relay: Any, payload_bytes: int) -> None:
        from relayq.services.messages import NewMessage

        self.relay = relay
        self.payload = payload_text(payload_bytes)
        self._new = NewMessage
        self._raw = msgspec.Raw(self.payload.encode())

    async def create_queue(self, name: str) -> None:
        await self.relay.queues.create({"name": name, "queue_type": "standard", "max_attempts": 1000})

    def _item(self, queue: str) -> Any:
        return self._new(queue=queue, type="bench", payload=self._raw)

    async def enqueue(self, queue: str) -> None:
        await self.relay.messages.enqueue([self._item(queue)])

    async def enqueue_batch(self, queue: str, count: int) -> None:
        await self.relay.messages.enqueue([self._item(queue) for _ in range(count)], batch=True)

    async def dequeue(self, queue: str) -> Lease | None:
        rows = await self.relay.messages.dequeue(queue, 1)
        return Lease(rows[0]["id"], rows[0]["lock_token"]) if rows else None

    async def dequeue_batch(self, queue: str, count: int) -> list[Lease]:
        rows = await self.relay.messages.dequeue(queue, count, batch=True)
        return [Lease(r["id"], r["lock_token"]) for r in rows]

    async def ack(self, lease: Lease) -> None:
        settled = await self.relay.messages.ack([(lease.id, lease.token)])
        if settled.failures:
            raise BenchError(f"ack failed: {settled.failures}")

    async def ack_batch(self, leases: Sequence[Lease]) -> None:
        settled = await self.relay.messages.ack([(x.id, x.token) for x in leases], batch=True)
        if settled.failures:
            raise BenchError(f"batch ack failed: {settled.failures[:3]}")

    async def nack(self, lease: Lease) -> None:
        settled = await self.relay.messages.nack([(lease.id, lease.token, None, None)])
        if settled.failures:
            raise BenchError(f"nack failed: {settled.failures}")

    async def round_trips(self) -> int | None:
        count: int = self.relay.db.stats.round_trips
        return count

    async def close(self) -> None:
        await self.relay.stop()


# ----- raw SQL: the limit --------------------------------------------------------------------
# Plain statements a competent hand-written worker would use on Relay's own table: one row per
# message, claim with FOR UPDATE SKIP LOCKED on the partial index, rows kept on ack. The claim
# names the index's due range (`NOT delayed`, migration 0015; these statements delay nothing):
# without it, ORDER BY no longer matched the index and each claim sorted the whole backlog.
RAW_ENQUEUE = """INSERT INTO relay.messages
    (id, queue_id, queue_name, type, payload, max_attempts, ack_timeout_seconds, payload_size)
VALUES ($1, $2, $3, 'bench', $4::json, 1000, 30, $5)"""

RAW_ENQUEUE_BATCH = """INSERT INTO relay.messages
    (id, queue_id, queue_name, type, payload, max_attempts, ack_timeout_seconds, payload_size)
SELECT i.id, $2, $3, 'bench', $4::json, 1000, 30, $5 FROM unnest($1::text[]) AS i(id)"""

RAW_DEQUEUE = """WITH picked AS (
    SELECT id FROM relay.messages
    WHERE queue_name = $1 AND status = 'queued' AND NOT delayed AND available_at <= now()
    ORDER BY priority DESC, created_at, seq
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE relay.messages AS m SET status = 'processing',
    lock_token = replace(gen_random_uuid()::text, '-', ''),
    locked_until = now() + make_interval(secs => m.ack_timeout_seconds),
    dequeued_at = now(), attempt_count = m.attempt_count + 1
FROM picked WHERE m.id = picked.id
RETURNING m.id, m.queue_name, m.type, m.payload, m.priority, m.attempt_count, m.lock_token, m.locked_until"""

RAW_ACK = """UPDATE relay.messages SET status = 'acknowledged', acknowledged_at = now(),
    lock_token = NULL, locked_until = NULL
WHERE id = $1 AND status = 'processing' AND lock_token = $2"""

RAW_ACK_BATCH = """UPDATE relay.messages AS m SET status = 'acknowledged', acknowledged_at = now(),
    lock_token = NULL, locked_until = NULL
FROM unnest($1::text[], $2::text[]) AS i(id, token)
WHERE m.id = i.id AND m.status = 'processing' AND m.lock_token = i.token"""

RAW_NACK = """UPDATE relay.messages SET
    status = CASE WHEN attempt_count >= max_attempts THEN 'dead' ELSE 'queued' END,
    lock_token = NULL, locked_until = NULL, consumer_id = NULL, dequeued_at = NULL
WHERE id = $1 AND status = 'processing' AND lock_token = $2"""


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool release hook that sends nothing: these statements leave no session state behind."""


def new_raw_id() -> str:
    """Relay's own id scheme (table letter, creation millisecond, 72 random bits), same cost."""
    return new_message_id("standard", 0)


class RawSqlDriver:
    """The limit: the same operations as single SQL statements, one asyncpg pool, no HTTP."""

    name = "raw-sql"

    def __init__(self, pool: asyncpg.Pool, payload_bytes: int) -> None:
        self.pool = pool
        self.payload = payload_text(payload_bytes)
        self.size = len(self.payload)
        self.queue_ids: dict[str, int] = {}
        self.count = 0

    @classmethod
    async def connect(cls, dsn: str, workers: int, payload_bytes: int) -> RawSqlDriver:
        """A pool with one connection per worker, opened up front (connects are not measured).

        `reset=_keep_session`: asyncpg's default runs a reset query (RESET ALL, UNLISTEN, ...)
        every time a connection goes back to the pool, a second round trip per statement that a
        worker holding its own connection would never pay. The limit does not pay it either.
        """
        pool = await asyncpg.create_pool(dsn, min_size=workers, max_size=workers, reset=_keep_session)
        return cls(pool, payload_bytes)

    async def create_queue(self, name: str) -> None:
        qid = await self.pool.fetchval(
            "INSERT INTO relay.queues (name, ack_timeout_seconds, max_attempts) VALUES ($1, 30, 1000) RETURNING id",
            name,
        )
        self.queue_ids[name] = qid

    async def enqueue(self, queue: str) -> None:
        self.count += 1
        await self.pool.execute(RAW_ENQUEUE, new_raw_id(), self.queue_ids[queue], queue, self.payload, self.size)

    async def enqueue_batch(self, queue: str, count: int) -> None:
        self.count += 1
        await self.pool.execute(
            RAW_ENQUEUE_BATCH, new_message_ids("standard", 0, count), self.queue_ids[queue], queue,
            self.payload, self.size,
        )

    async def dequeue(self, queue: str) -> Lease | None:
        self.count += 1
        row = await self.pool.fetchrow(RAW_DEQUEUE, queue, 1)
        return Lease(row["id"], row["lock_token"]) if row is not None else None

    async def dequeue_batch(self, queue: str, count: int) -> list[Lease]:
        self.count += 1
        rows = await self.pool.fetch(RAW_DEQUEUE, queue, count)
        return [Lease(r["id"], r["lock_token"]) for r in rows]

    async def ack(self, lease: Lease) -> None:
        self.count += 1
        status = await self.pool.execute(RAW_ACK, lease.id, lease.token)
        if status != "UPDATE 1":
            raise BenchError(f"raw ack: {status}")

    async def ack_batch(self, leases: Sequence[Lease]) -> None:
        self.count += 1
        await self.pool.execute(RAW_ACK_BATCH, [x.id for x in leases], [x.token for x in leases])

    async def nack(self, lease: Lease) -> None:
        self.count += 1
        await self.pool.execute(RAW_NACK, lease.id, lease.token)

    async def round_trips(self) -> int | None:
        return self.count

    async def close(self) -> None:
        await self.pool.close()


def cpu_count() -> int:
    """Cores visible to this process (what the server, PostgreSQL and the load share)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
