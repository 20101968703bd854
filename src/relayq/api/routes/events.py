"""GET /queue/events: the live Server-Sent Events stream (API.md §4)."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from relayq.api.http import endpoint
from relayq.api.routes.messages import relay
from relayq.domain.errors import RelayError
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
          tag="monitoring", auth=False,
          responses={200: "text/event-stream",
                     401: "UNAUTHORIZED: too many keyless streams open (EVENT_KEYLESS_STREAMS_MAX)"})
async def events(request: Request) -> Response:
    r = relay(request)
    stream = extensions_of(r).events
    full = is_full_client(request, r.settings.secret_key)
    if not full and stream.keyless_subscribers() >= r.settings.event_keyless_streams_max:
        # The stream is open without the key (counts only), but not to any number of clients:
        # each holds a connection and a buffer. With the key there is no limit.
        raise RelayError(401, "UNAUTHORIZED", "Too many event streams without a valid API key; send the key "
                         "(X-API-KEY or ?apiKey=) for an unlimited, full stream")
    sub = stream.subscribe(full)
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
