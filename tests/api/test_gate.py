"""Conventions of API.md §1: routing, CORS, trailing slashes, auth, OpenAPI, health."""

from __future__ import annotations

import httpx

from tests.support.server import LiveServer, start_server


def test_unknown_route(api: httpx.Client) -> None:
    response = api.get("/nope")
    assert response.status_code == 404
    assert response.json() == {"message": "Not Found - /api/nope", "code": "ROUTE_NOT_FOUND"}
    assert api.request("PATCH", "/queue/message").status_code in (404, 405)


def test_trailing_slash_and_cors(api: httpx.Client) -> None:
    response = api.get("/queues/")
    assert response.status_code == 200 and "queues" in response.json()
    assert response.headers["access-control-allow-origin"] == "*"
    preflight = api.options("/queue/message", headers={"Origin": "http://x", "Access-Control-Request-Method": "POST",
                                                         "Access-Control-Request-Headers": "x-api-key,content-type"})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-methods"] == "GET,HEAD,PUT,POST,DELETE,PATCH"
    assert preflight.headers["access-control-allow-headers"] == "x-api-key,content-type"


def test_body_parsed_whatever_content_type(api: httpx.Client, queue: str) -> None:
    response = api.post("/queue/message", content=b'{"type":"x","payload":1,"queue":"%s"}' % queue.encode(),
                        headers={"content-type": "text/plain"})
    assert response.status_code == 201


def test_health_and_docs(live_server: LiveServer, api: httpx.Client) -> None:
    health = api.get("/health").json()
    assert health["status"] == "OK" and health["details"]["postgres"]["ok"] is True
    assert httpx.get(live_server.url + "/health").status_code == 200
    doc = api.get("/doc").json()
    assert doc["openapi"].startswith("3.1") and doc["info"]["title"] == "Relay Queue API"
    assert doc["info"]["version"] == "1.0.0" and doc["servers"] == [{"url": "/api"}]
    assert doc["components"]["securitySchemes"]["APIKey"] == {"type": "apiKey", "in": "header", "name": "X-API-KEY"}
    assert "/queue/message/{id}/nack" in doc["paths"] and "/queues/{name}/rename" in doc["paths"]
    assert "text/html" in doc["paths"]["/reference"]["get"]["responses"]["200"]["content"]  # every endpoint
    assert api.get("/docs").json() == doc
    page = api.get("/reference")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "cdn" not in page.text.lower()
    assert api.get("/reference/assets/swagger-ui-bundle.js").status_code == 200


def test_api_key(database_url: str) -> None:
    with start_server(database_url, {"SECRET_KEY": "s3cret"}) as server:
        base = server.api
        missing = httpx.get(base + "/queues")
        assert missing.status_code == 401
        assert missing.json() == {"error": "Unauthorized", "message": "Missing X-API-KEY header", "code": "UNAUTHORIZED"}
        wrong = httpx.get(base + "/queues", headers={"X-API-KEY": "nope"})
        assert wrong.json()["message"] == "Invalid API key"
        assert httpx.get(base + "/queues", headers={"x-api-key": "s3cret"}).status_code == 200
        assert httpx.get(base + "/queues", params={"apiKey": "s3cret"}).status_code == 401
        assert httpx.get(base + "/queues", headers={"Authorization": "Bearer s3cret"}).status_code == 401
        assert httpx.get(base + "/nope").status_code == 401  # auth runs before routing
        for open_path in ("/health", "/doc", "/docs", "/reference"):
            assert httpx.get(base + open_path).status_code == 200, open_path
        assert httpx.get(server.url + "/health").status_code == 200
        assert httpx.options(base + "/queues", headers={"Access-Control-Request-Method": "GET"}).status_code == 204


def test_require_lock_token_setting(database_url: str) -> None:
    with start_server(database_url, {"REQUIRE_LOCK_TOKEN": "true"}) as server:
        with httpx.Client(base_url=server.api) as api:
            api.post("/queue/message", json={"type": "x", "payload": 1})
            msg = api.get("/queue/message").json()
            refused = api.post("/queue/ack", json={"id": msg["id"]})
            assert refused.status_code == 400 and refused.json()["code"] == "VALIDATION_ERROR"
            assert api.post(f"/queue/message/{msg['id']}/nack", json={}).status_code == 400
            assert api.post("/queue/ack", json={"id": msg["id"], "lock_token": msg["lock_token"]}).status_code == 200
