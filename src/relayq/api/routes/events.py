"""GET /queue/events: the live Server-Sent Events stream (API.md §4)."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from relayq.api.http import endpoint
from relayq.api.routes.messages import relay
from relayq.services.events import Subscriber
from relayq.services.extensions import extensions_of

PING = b"event: ping\ndata: ping\n\n"


def is_full_client(request: Request, secret: str) -> bool:
    """Full events with no SECRET_KEY, or with the key in `?apiKey=` or X-API-KEY (constant time)."""
    if not secret:
        return True
    key = secret.encode()
    for given in (request.query_params.get("apiKey"), request.headers.get("x-api-key")):
        if given is not None and hmac.compare_digest(given.encode(), key):
            return True
    return False


@endpoint("GET", "/queue/events", summary="Live queue-update events (SSE; counts only without the API key)",
          tag="monitoring", auth=False, responses={200: "text/event-stream"})
async def events(request: Request) -> Response:
    r = relay(request)
    stream = extensions_of(r).events
    sub = stream.subscribe(is_full_client(request, r.settings.secret_key))
    return StreamingResponse(
        _stream(sub, r.settings.event_ping_seconds, lambda: stream.unsubscribe(sub)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"},
    )


async def _stream(sub: Subscriber, ping: float, done: object) -> AsyncIterator[bytes]:
    try:
        yield b"retry: 3000\n\n"
        while True:
            try:
                chunk = await asyncio.wait_for(sub.queue.get(), ping)
            except TimeoutError:
                chunk = PING
            if chunk is None:  # the server is shutting down
                return
            yield chunk
    finally:
        assert callable(done)
        done()
