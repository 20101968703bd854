"""GET /metrics (root, not /api): Prometheus text metrics, under the same API-key rule as /api."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from relayq.api.http import root_endpoint
from relayq.api.routes.messages import relay
from relayq.services.metrics import queue_depths


@root_endpoint("GET", "/metrics")
async def prometheus(request: Request) -> Response:
    """Counters, histograms and gauges of this process, plus queue depth per status (one query)."""
    r = relay(request)
    depths = queue_depths(await r.queues.count_rows())
    text = r.metrics.render([("relayq_queue_depth", "gauge", "Messages per queue and status", depths)])
    return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")
