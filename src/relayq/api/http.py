"""Small HTTP helpers shared by every routes module: the endpoint registry, JSON in and out.

Routes are declared once with `@endpoint(...)`; the same declaration feeds Starlette's router
and the OpenAPI document, so the documentation cannot drift from what is served.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from relayq.api.validation import Field
from relayq.domain.errors import RelayError

Handler = Callable[[Request], Awaitable[Response]]
T = TypeVar("T")

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


class JSONResponse(Response):
    """A JSON response encoded with msgspec (stored payloads pass through as raw JSON)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return _encoder.encode(content)


def ok(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    """Shorthand for a JSON response."""
    return JSONResponse(content, status_code=status, headers=headers)


def encode_json(content: Any) -> bytes:
    """msgspec-encode anything the responses carry."""
    return _encoder.encode(content)


def decode_json(raw: bytes) -> Any:
    """Decode a request body; malformed JSON is a 400 INVALID_JSON, valid JSON nested deeper than
    the decoder's limit (Python's recursion limit: nearly 1,000 levels) a 400 VALIDATION_ERROR."""
    try:
        return _decoder.decode(raw)
    except msgspec.DecodeError:
        raise RelayError(400, "INVALID_JSON", "Malformed JSON in request body") from None
    except RecursionError:
        raise RelayError(400, "VALIDATION_ERROR", "JSON nested too deeply (about 1000 levels)",
                         details=[{"field": "", "message": "nested too deeply"}]) from None


async def read_json(request: Request, *, optional: bool = False) -> Any:
    """The request body as JSON, whatever its Content-Type; empty is None when optional."""
    return read_body(await request.body(), optional=optional)


def read_body(raw: bytes, *, optional: bool = False) -> Any:
    """`read_json` for a body already read."""
    if not raw.strip():
        if optional:
            return None
        raise RelayError(400, "INVALID_JSON", "Malformed JSON in request body")
    return decode_json(raw)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One route: method, path (OpenAPI `{param}` syntax), handler and its documentation."""

    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    query: Sequence[Field] = ()
    body: Sequence[Field] | None = None
    body_kind: str = "object"  # object | array | multipart | none
    responses: dict[int, str] = field(default_factory=dict)
    auth: bool = True
    description: str = ""
    # GET endpoints answer HEAD too, unless the GET changes state (a dequeue leases messages):
    # a HEAD probe must not take a message and drop it with the body.
    head: bool = True
    media_type: str = "application/json"  # of the success responses


REGISTRY: list[Endpoint] = []
# Endpoints outside /api (GET /metrics): (method, path, handler); not part of the OpenAPI document.
ROOT_ROUTES: list[tuple[str, str, Handler]] = []


def endpoint(
    method: str, path: str, *, summary: str, tag: str, query: Sequence[Field] = (),
    body: Sequence[Field] | None = None, body_kind: str = "object", responses: dict[int, str] | None = None,
    auth: bool = True, description: str = "", head: bool = True, media_type: str = "application/json",
) -> Callable[[Handler], Handler]:
    """Register a handler for `method path` (path relative to /api)."""

    def register(handler: Handler) -> Handler:
        REGISTRY.append(Endpoint(
            method, path, handler, summary, tag, tuple(query), tuple(body) if body is not None else None,
            body_kind if body is not None or body_kind != "object" else "none",
            responses or {200: "OK"}, auth, description, head, media_type,
        ))
        return handler

    return register


def root_endpoint(method: str, path: str) -> Callable[[Handler], Handler]:
    """Register a handler at the server root (outside /api), e.g. the Prometheus scrape target."""

    def register(handler: Handler) -> Handler:
        ROOT_ROUTES.append((method, path, handler))
        return handler

    return register


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T | None:
    """`work`'s result, or None once the client has gone away (`work` cancelled then).

    Uvicorn does not cancel a handler whose client left: an export of a big queue abandoned by
    its client went on reading (a pool connection, a snapshot holding vacuum back, gigabytes of
    spool) for up to the bulk timeout. Only for handlers that do not read the request body:
    this one reads the rest of it, waiting for the disconnect.
    """
    task = asyncio.ensure_future(work)
    gone = False

    async def watch() -> None:
        nonlocal gone
        while (await request.receive())["type"] != "http.disconnect":
            pass
        gone = True
        task.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        return await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if not gone or (current is not None and current.cancelling()):
            raise  # this handler itself was cancelled (a shutdown), whether or not the client left too
        return None
    finally:
        watcher.cancel()
        if watcher.done() and not watcher.cancelled():
            watcher.exception()  # read: a receive() that failed (a body over the limit) is not an error here
