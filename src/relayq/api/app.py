"""The ASGI application: routing, CORS, API-key auth, body limits, error bodies, lifespan.

Cross-cutting concerns live in one plain ASGI wrapper (`RelayGate`) rather than Starlette
middleware classes, so a request pays for them once and without extra task hops.
"""

from __future__ import annotations

import gc
import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from relayq import dashboard
from relayq.api.http import REGISTRY, ROOT_ROUTES, Handler, encode_json
from relayq.config import Settings
from relayq.domain.errors import RelayError
from relayq.runtime import Relay
from relayq.services.metrics import Metrics

log = logging.getLogger("relayq.api")

CORS_METHODS = "GET,HEAD,PUT,POST,DELETE,PATCH"


def _load_routes() -> None:
    """Import every routes module once; importing registers its endpoints."""
    from relayq.api.routes import admin, docs, messages, monitoring, queues  # noqa: F401
    from relayq.services import extensions

    extensions.load_routes()


def _error_body(status: int, body: dict[str, Any]) -> Response:
    return Response(encode_json(body), status_code=status, media_type="application/json")


async def relay_error(request: Request, exc: Exception) -> Response:
    """RelayError → its status and stable body."""
    assert isinstance(exc, RelayError)
    return _error_body(exc.status, exc.body())


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 → the contract's ROUTE_NOT_FOUND shape."""
    assert isinstance(exc, HTTPException)
    if exc.status_code in (404, 405):
        return _error_body(404, {"message": f"Not Found - {request.url.path}", "code": "ROUTE_NOT_FOUND"})
    return _error_body(exc.status_code, {"message": str(exc.detail), "code": "HTTP_ERROR"})


async def client_gone(request: Request, exc: Exception) -> Response:
    """The client closed the connection before its body arrived: nobody to answer, nothing to log
    as an error (no statement ran)."""
    log.debug("client disconnected during %s %s", request.method, request.url.path)
    return Response(status_code=400)


async def internal_error(request: Request, exc: Exception) -> Response:
    """Anything unexpected: logged with its traceback, answered with a stable 500 body."""
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _error_body(500, {"message": "Internal server error", "code": "INTERNAL_ERROR"})


# Most specific first: RelayGate's direct dispatch takes the first that matches.
EXCEPTION_HANDLERS: dict[type[Exception], Callable[[Request, Exception], Awaitable[Response]]] = {
    RelayError: relay_error, HTTPException: http_error, ClientDisconnect: client_gone, Exception: internal_error,
}


async def _error_response(request: Request, exc: Exception) -> Response:
    """What Starlette's exception handling would answer, for requests RelayGate dispatches itself."""
    handle = next(h for kind, h in EXCEPTION_HANDLERS.items() if isinstance(exc, kind))
    return await handle(request, exc)


def _package_path(*parts: str) -> Path:
    return Path(str(resources.files("relayq").joinpath(*parts)))


def build_routes() -> list[Any]:
    """Starlette routes from the endpoint registry, plus the dashboard and docs assets."""
    _load_routes()
    routes: list[Any] = []
    # Literal paths win over {param} paths: /queue/activity/clear before /queue/{queueType}/clear.
    for ep in sorted(REGISTRY, key=lambda e: e.path.count("{")):
        route = Route("/api" + ep.path, ep.handler, methods=[ep.method])
        if not ep.head and route.methods is not None:
            route.methods.discard("HEAD")  # Starlette adds HEAD to every GET route
        routes.append(route)
    routes.append(Route("/health", _root_health, methods=["GET"]))
    for method, path, handler in ROOT_ROUTES:
        routes.append(Route(path, handler, methods=[method]))
    routes.append(Mount("/api/reference/assets", StaticFiles(directory=_package_path("api", "static", "swagger-ui"))))
    routes.extend(dashboard.routes())
    return routes


async def _root_health(request: Request) -> Response:
    from relayq.api.routes.monitoring import health

    return await health(request)


class RelayGate:
    """Plain ASGI wrapper: trailing slashes, CORS, API key, request-size limit, latency histogram."""

    def __init__(self, app: ASGIApp, settings: Settings, metrics: Metrics | None = None) -> None:
        self.app = app
        self.settings = settings
        self.key = settings.secret_key.encode()
        # The exact paths of endpoints declared `auth=False` (health, docs, the event stream).
        # Exact, not "ends with /health": a queue named `health` made `/api/queues/health`
        # (GET, PATCH, DELETE) open to anyone.
        self.open_paths = frozenset("/api" + ep.path for ep in REGISTRY if not ep.auth)
        self.metrics = metrics or Metrics()
        # Histogram label per handler: the route template, so ids in paths do not explode cardinality.
        self.route_labels: dict[Any, str] = {ep.handler: "/api" + ep.path for ep in REGISTRY}
        self.route_labels.update({handler: path for _, path, handler in ROOT_ROUTES})
        # Endpoints without path parameters are called directly: Starlette's router matches a
        # request against every route's regex in turn, and its middleware stack adds three
        # wrapper layers, together 8-12% of the server's CPU per request on the hot paths. The
        # rest (path parameters, HEAD, static files, the dashboard) goes through Starlette.
        self.direct: dict[tuple[str, str], Handler] = {
            (ep.method, "/api" + ep.path): ep.handler for ep in REGISTRY if "{" not in ep.path
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if len(path) > 1 and path.endswith("/") and not path.startswith("/dashboard"):
            path = path.rstrip("/") or "/"
            scope = dict(scope, path=path, raw_path=path.encode())
        if "\x00" in path:
            # No queue name or message id holds NUL (PostgreSQL text cannot): a path parameter with
            # one names nothing, and gets the endpoint's own 404 through a character that cannot
            # match either, instead of a database error about the byte.
            path = path.replace("\x00", "\ufffd")
            scope = dict(scope, path=path)
        headers = {k: v for k, v in scope["headers"]}
        if scope["method"] == "OPTIONS":
            await self._preflight(headers, send)
            return
        started = time.perf_counter()
        status_box: list[int] = [0]
        send = _with_cors(send, status_box)
        try:
            await self._guarded(scope, path, headers, receive, send)
        finally:
            route = self.route_labels.get(scope.get("endpoint"), "other")
            labels = (("method", scope["method"]), ("route", route), ("status", str(status_box[0])))
            self.metrics.observe("relayq_http_request_duration_seconds", labels, time.perf_counter() - started)

    async def _guarded(
        self, scope: Scope, path: str, headers: dict[bytes, bytes], receive: Receive, send: Send
    ) -> None:
        if self.key and self._needs_key(path):
            given = headers.get(b"x-api-key")
            if given is None:
                await self._deny(send, "Missing X-API-KEY header")
                return
            if not hmac.compare_digest(given, self.key):
                await self._deny(send, "Invalid API key")
                return
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.settings.max_request_bytes:
            await _send_json(send, 413, {"message": "Request body too large", "code": "PAYLOAD_TOO_LARGE"})
            return
        receive = _limited(receive, self.settings.max_request_bytes)
        handler = self.direct.get((scope["method"], path))
        if handler is None:
            await self.app(scope, receive, send)
            return
        scope["app"] = self.app  # what Starlette's own dispatch would have set
        scope["endpoint"] = handler
        request = Request(scope, receive, send)
        try:
            response = await handler(request)
        except Exception as exc:  # the same handlers, in the same order, as create_app registers
            response = await _error_response(request, exc)
        await response(scope, receive, send)

    def _needs_key(self, path: str) -> bool:
        if path == "/metrics":
            return True
        return path.startswith("/api") and path not in self.open_paths and not path.startswith(
            "/api/reference/assets/"
        )

    async def _preflight(self, headers: dict[bytes, bytes], send: Send) -> None:
        response_headers = [
            (b"access-control-allow-origin", b"*"),
            (b"access-control-allow-methods", CORS_METHODS.encode()),
            (b"access-control-max-age", b"86400"),
        ]
        requested = headers.get(b"access-control-request-headers")
        if requested:
            response_headers.append((b"access-control-allow-headers", requested))
        await send({"type": "http.response.start", "status": 204, "headers": response_headers})
        await send({"type": "http.response.body", "body": b""})

    async def _deny(self, send: Send, message: str) -> None:
        await _send_json(send, 401, {"error": "Unauthorized", "message": message, "code": "UNAUTHORIZED"})


def _with_cors(send: Send, status_box: list[int]) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            status_box[0] = message["status"]
            message["headers"] = [*message.get("headers", []), (b"access-control-allow-origin", b"*")]
        await send(message)

    return wrapped


def _limited(receive: Receive, limit: int) -> Receive:
    """Stop reading a body (chunked or lying about its length) once it passes the limit."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise RelayError(413, "PAYLOAD_TOO_LARGE", "Request body too large")
        return message

    return wrapped


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = encode_json(body)
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


GC_THRESHOLD = 20_000


def _tune_gc() -> None:
    """Fewer cyclic-GC passes on the request path.

    Requests allocate many short-lived containers (futures, dicts, lists) that reference
    counting frees anyway; with the default threshold (700) the collector ran every few
    requests and took ~7% of the server's CPU under load. Objects alive after start-up
    (modules, routes, pools) are frozen out of every later pass.
    """
    gc.collect()
    gc.freeze()
    _, second, third = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD, second, third)


def create_app(settings: Settings | None = None, dsn: str | None = None) -> ASGIApp:
    """Build the ASGI app; the lifespan starts and stops the broker's services."""
    settings = settings or Settings.from_env()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        relay = await Relay.start(settings, dsn, metrics=metrics)
        app.state.relay = relay
        _tune_gc()
        try:
            yield
        finally:
            await relay.stop()

    app = Starlette(
        routes=build_routes(),
        lifespan=lifespan,
        exception_handlers=dict(EXCEPTION_HANDLERS),
    )
    app.router.redirect_slashes = False
    return RelayGate(app, settings, metrics)


__all__ = ["create_app"]
