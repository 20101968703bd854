"""The dashboard is self-contained: every module it imports ships in the package and is
served without an API key, and nothing is loaded from another host (no CDN)."""

from __future__ import annotations

import asyncio
import re
import urllib.request

import httpx
from starlette.applications import Starlette

from relayq.dashboard import STATIC_DIR, routes
from tests.support.server import LiveServer

IMPORT = re.compile(r"""(?:from|import)\s+'(\.{1,2}/[^']+)'""")
EXTERNAL = re.compile(
    r"""(?:src|href)=["']?(?:https?:)?//|url\(\s*["']?https?:|(?:import|from)\s+['"]https?:"""
)


def shipped_files() -> list[str]:
    return sorted(str(path.relative_to(STATIC_DIR)) for path in STATIC_DIR.rglob("*") if path.is_file())


def test_every_import_resolves_to_a_shipped_file() -> None:
    files = set(shipped_files())
    for name in files:
        if not name.endswith(".js"):
            continue
        folder = (STATIC_DIR / name).parent
        for target in IMPORT.findall((STATIC_DIR / name).read_text(encoding="utf-8")):
            resolved = (folder / target).resolve().relative_to(STATIC_DIR.resolve())
            assert str(resolved) in files, f"{name} imports missing {target}"


def test_nothing_is_loaded_from_another_host() -> None:
    for name in shipped_files():
        text = (STATIC_DIR / name).read_text(encoding="utf-8")
        assert not EXTERNAL.search(text), f"{name} loads something from another host"


def test_the_server_serves_the_files_without_a_key(base_url: str) -> None:
    for name in shipped_files():
        with urllib.request.urlopen(f"{base_url}/dashboard/{name}", timeout=5) as response:
            assert response.status == 200, name
            if name.endswith(".js"):
                assert "javascript" in response.headers["Content-Type"], name


def test_routes_helper_serves_the_app_and_redirects() -> None:
    async def fetch(path: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=Starlette(routes=routes()))
        async with httpx.AsyncClient(transport=transport, base_url="http://relay") as client:
            return await client.get(path)

    for path in ("/", "/dashboard"):
        response = asyncio.run(fetch(path))
        assert response.status_code == 307
        assert response.headers["location"] == "dashboard/"
    page = asyncio.run(fetch("/dashboard/"))
    assert page.status_code == 200
    assert '<script type="module" src="app.js">' in page.text


def test_the_dashboard_cannot_be_framed_nor_sniffed(live_server: LiveServer) -> None:
    """The page acts with the API key it keeps: another site must not frame it (clickjacking)."""
    for path in ("/dashboard/", "/dashboard/app.js", "/dashboard/pages/queues.js"):
        headers = httpx.get(live_server.url + path).headers
        assert headers["content-security-policy"] == "frame-ancestors 'none'", path
        assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff", path
        assert headers["referrer-policy"] == "no-referrer", path
