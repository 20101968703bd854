"""OpenAPI document endpoints (no auth)."""

from __future__ import annotations

from importlib import resources

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from relayq.api.http import endpoint, ok
from relayq.api.openapi import build_openapi

_cached: dict[str, object] = {}


@endpoint("GET", "/doc", summary="OpenAPI 3.1 document", tag="docs", auth=False)
async def openapi_doc(request: Request) -> Response:
    if "doc" not in _cached:
        _cached["doc"] = build_openapi()
    return ok(_cached["doc"])


@endpoint("GET", "/docs", summary="OpenAPI 3.1 document (alias)", tag="docs", auth=False)
async def openapi_docs(request: Request) -> Response:
    return await openapi_doc(request)


@endpoint("GET", "/reference", summary="Interactive API viewer (HTML; its assets are served locally)", tag="docs",
          auth=False, media_type="text/html")
async def reference(request: Request) -> Response:
    page = resources.files("relayq").joinpath("api", "static", "reference.html")
    return HTMLResponse(page.read_text(encoding="utf-8"))
