"""Monitoring endpoints (API.md §4): health, metrics, status, config."""

from __future__ import annotations

import asyncio
import time

from starlette.requests import Request
from starlette.responses import Response

from relayq.api.http import endpoint, ok
from relayq.api.routes.messages import relay
from relayq.api.validation import Field, parse_query
from relayq.domain.messages import message_to_wire

HEALTH_TIMEOUT = 2.0  # seconds; health checkers give up soon, so answer before they do
QUEUE_PARAM = Field("queueName", "str", aliases=("queue", "queue_name"))


@endpoint("GET", "/health", summary="Liveness and database check (no auth)", tag="monitoring", auth=False,
          responses={200: "healthy", 500: "database unreachable, or read-only (`pools.write` false)"})
async def health(request: Request) -> Response:
    r = relay(request)
    started = time.perf_counter()
    try:
        # One bound for both steps (a free connection, then the query): 2 s in all, not 2 + 2.
        async with asyncio.timeout(HEALTH_TIMEOUT), r.db.pool.acquire() as conn:
            try:
                # A standby reached after a failover answers reads but refuses every write (503s):
                # for a queue that is unhealthy, so it is checked too. A hung database times out.
                writable = await conn.fetchval("SELECT current_setting('transaction_read_only') = 'off'")
            except BaseException:
                conn.terminate()  # released unanswered, asyncpg would wait for the hung server's cancel
                raise
    except Exception as exc:
        return ok({"status": "ERROR", "details": {"status": "unhealthy", "postgres": {
            "ok": False, "error": str(exc) or type(exc).__name__}}}, 500)
    latency = round((time.perf_counter() - started) * 1000)
    if not writable:
        return ok({"status": "ERROR", "details": {"status": "unhealthy", "postgres": {
            "ok": False, "error": "the database is read-only (a standby?): every write fails",
            "latency": latency, "pools": {"write": False, "read": True}}}}, 500)
    return ok({"status": "OK", "details": {"status": "healthy", "postgres": {
        "ok": True, "latency": latency, "pools": {"write": True, "read": True}}}})


@endpoint("GET", "/queue/metrics", summary="Counts per status and payload sizes", tag="monitoring",
          query=(QUEUE_PARAM,))
async def metrics(request: Request) -> Response:
    queue = parse_query((QUEUE_PARAM,), request.query_params)["queueName"]
    m = await relay(request).admin.metrics(queue)
    c = m["counts"]
    return ok({
        "queued": c["queued"], "processing": c["processing"], "acknowledged": c["acknowledged"],
        "dead": c["dead"], "archived": c["archived"],
        "main_queue_size": c["queued"], "processing_size": c["processing"],
        "processing_queue_size": c["processing"], "dead_letter_size": c["dead"],
        "dead_letter_queue_size": c["dead"], "acknowledged_size": c["acknowledged"],
        "acknowledged_queue_size": c["acknowledged"],
        "avg_payload_size": m["avg_payload_size"], "max_payload_size": m["max_payload_size"],
    })


STATUS_QUERY = (QUEUE_PARAM, Field("include_messages", "bool", default=True))


@endpoint("GET", "/queue/status", summary="Counts, message lists and types", tag="monitoring", query=STATUS_QUERY)
async def status(request: Request) -> Response:
    params = parse_query(STATUS_QUERY, request.query_params)
    s = await relay(request).admin.status(params["queueName"], params["include_messages"])
    counts, lists = s["counts"], s["lists"]

    def section(name: str, status: str) -> dict[str, object]:
        return {"name": name, "length": counts[status], "messages": [message_to_wire(r) for r in lists[status]]}

    acknowledged = section("acknowledged", "acknowledged")
    acknowledged["total"] = counts["acknowledged"]
    return ok({
        "mainQueue": section("main", "queued"),
        "processingQueue": section("processing", "processing"),
        "deadLetterQueue": section("dead", "dead"),
        "acknowledgedQueue": acknowledged,
        "archivedQueue": section("archived", "archived"),
        "metadata": {"totalProcessed": counts["acknowledged"], "totalFailed": counts["dead"]},
        "availableTypes": s["types"],
        "priorities": s["priorities"],
    })


@endpoint("GET", "/queue/config", summary="Server-wide defaults", tag="monitoring",
          description="`{\"ack_timeout_seconds\": 30, \"max_attempts\": 3, \"max_batch_size\": 10000}`: the defaults "
                      "of new queues (`ACK_TIMEOUT_SECONDS`, `MAX_ATTEMPTS`) and (new) the most messages one batch "
                      "enqueue or import file takes (`MAX_BATCH_SIZE`).")
async def config(request: Request) -> Response:
    settings = relay(request).settings
    # (new) max_batch_size: the most messages one batch enqueue or import takes, so a client can
    # split a larger import without guessing the server's MAX_BATCH_SIZE.
    return ok({"ack_timeout_seconds": settings.ack_timeout_seconds, "max_attempts": settings.max_attempts,
               "max_batch_size": settings.max_batch_size})
