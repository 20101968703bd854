"""With SECRET_KEY set, every operation in the OpenAPI document except health and docs refuses
a missing or wrong X-API-KEY with 401 (API.md §1), and accepts the right one."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.support.server import LiveServer, fresh_database, start_server

KEY = "s3cret-key-for-the-auth-walk"
# API.md §1: these endpoints never need the key (their exact paths only: see the test below).
OPEN_PATHS = ("/health", "/queue/events", "/doc", "/docs", "/reference")


@pytest.fixture(scope="module")
def secured_server() -> Iterator[LiveServer]:
    """Its own database: were a route to skip auth, a walk over DELETE routes could wipe data."""
    with fresh_database("relay_auth") as url, start_server(url, {"SECRET_KEY": KEY}) as server:
        yield server


def _operations(server: LiveServer) -> list[tuple[str, str, bool]]:
    doc = httpx.get(server.api + "/doc", timeout=30).json()
    ops: list[tuple[str, str, bool]] = []
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            concrete = re.sub(r"\{\w+\}", "main", path) if "{queueType}" in path else re.sub(r"\{\w+\}", "sx", path)
            ops.append((method.upper(), concrete, op.get("security") == []))
    return ops


def test_every_documented_route_refuses_a_missing_or_wrong_key(secured_server: LiveServer) -> None:
    ops = _operations(secured_server)
    assert len(ops) >= 30
    checked = 0
    with httpx.Client(base_url=secured_server.api, timeout=30) as client:
        for method, path, documented_open in ops:
            is_open = path in OPEN_PATHS
            assert documented_open == is_open, f"{method} {path}: OpenAPI security disagrees with the auth rule"
            body = b"{}" if method in ("POST", "PUT", "PATCH") else None
            if path == "/queue/events":  # an endless stream: read the status line only
                with client.stream(method, path) as stream:
                    assert stream.status_code == 200, (method, path)
                continue
            missing = client.request(method, path, content=body)
            wrong = client.request(method, path, content=body, headers={"X-API-KEY": KEY + "x"})
            right = client.request(method, path, content=body, headers={"x-api-key": KEY})
            if is_open:
                assert missing.status_code == 200, (method, path, missing.text)
                continue
            assert missing.status_code == 401, (method, path, missing.text)
            assert missing.json() == {"error": "Unauthorized", "message": "Missing X-API-KEY header",
                                      "code": "UNAUTHORIZED"}
            assert wrong.status_code == 401, (method, path, wrong.text)
            assert wrong.json()["message"] == "Invalid API key"
            assert right.status_code != 401, (method, path, right.text)
            assert right.status_code < 500, (method, path, right.text)
            checked += 1
    assert checked >= 25


def test_auth_also_guards_unknown_paths_metrics_and_ignores_other_credentials(secured_server: LiveServer) -> None:
    with httpx.Client(base_url=secured_server.url, timeout=30) as client:
        assert client.get("/api/no/such/route").status_code == 401
        assert client.get("/metrics").status_code == 401
        assert client.get("/api/queues", headers={"Authorization": f"Bearer {KEY}"}).status_code == 401
        assert client.get("/api/queues", params={"apiKey": KEY}).status_code == 401
        assert client.get("/api/queues/", headers={"X-API-KEY": ""}).status_code == 401
        assert client.get("/health").status_code == 200
        assert client.get("/api/reference").status_code == 200
        preflight = client.options("/api/queues", headers={"Access-Control-Request-Method": "GET"})
        assert preflight.status_code == 204


def test_a_path_parameter_named_like_an_open_endpoint_still_needs_the_key(secured_server: LiveServer) -> None:
    """Only the open endpoints themselves are open: `/api/queues/health` once matched the rule
    "ends with /health", so anyone could read, change or delete a queue named `health`."""
    key = {"X-API-KEY": KEY}
    with httpx.Client(base_url=secured_server.api, timeout=30) as client:
        for name in ("health", "doc", "docs", "reference", "events"):
            assert client.post("/queues", json={"name": name}, headers=key).status_code == 201, name
            for method, path, body in (
                ("GET", f"/queues/{name}", None), ("PATCH", f"/queues/{name}", b'{"description": "x"}'),
                ("DELETE", f"/queues/{name}?force=true", None), ("POST", f"/queues/{name}/purge", b"{}"),
                ("DELETE", f"/queue/message/{name}", None), ("PUT", f"/queue/message/{name}", b'{"type": "x"}'),
                ("GET", f"/queue/activity/message/{name}", None), ("GET", f"/queues/{name}/", None),
            ):
                response = client.request(method, path, content=body)
                assert response.status_code == 401, (method, path, response.text)
            assert client.get(f"/queues/{name}", headers=key).json()["description"] is None, name
            assert client.delete(f"/queues/{name}", headers=key).status_code == 200, name
