"""Relay's web dashboard: a dependency-free single-page app served as static files.

The app lives in ``static/`` (plain ES modules, no build step). It talks only to the REST API
under ``/api`` with relative URLs, and routes with the URL hash, so the server just has to
serve the directory. :func:`routes` gives the Starlette routes that do that.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC_DIR = Path(__file__).parent / "static"
# The page keeps the API key and acts with it: no other site may frame it (clickjacking a
# Delete or Purge), browsers must not sniff a file into another type, and no dashboard URL
# (queue names in the hash aside) leaks to other hosts through Referer.
SECURITY_HEADERS = [
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


class _WithSecurityHeaders:
    """Adds SECURITY_HEADERS to every response of the wrapped app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _redirect_to_dashboard(request: Request) -> RedirectResponse:
    # A relative Location keeps working behind a proxy that mounts Relay under a prefix. From
    # both "/" and "/dashboard" it resolves to "/dashboard/"; the trailing slash matters
    # because the page loads its assets with relative URLs.
    return RedirectResponse(url="dashboard/", status_code=307)


def routes() -> list[BaseRoute]:
    """Routes serving the dashboard at ``/dashboard/`` and redirecting ``/`` and ``/dashboard`` there.

    Static files need no API key: the page asks for the key and sends it on API calls.
    """
    return [
        Route("/", _redirect_to_dashboard, methods=["GET", "HEAD"]),
        Route("/dashboard", _redirect_to_dashboard, methods=["GET", "HEAD"]),
        Mount("/dashboard", app=_WithSecurityHeaders(StaticFiles(directory=STATIC_DIR, html=True)), name="dashboard"),
    ]
