"""Shared fixtures: one database and one server per test session; fresh queues per test."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest

from tests.support.server import LiveServer, fresh_database, spawn_server, stop_server


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """An isolated, empty database for this test session."""
    with fresh_database() as url:
        yield url


@pytest.fixture(scope="session")
def live_server(database_url: str) -> Iterator[LiveServer]:
    """`relay serve` running on the session database."""
    server = spawn_server(database_url)
    yield server
    stop_server(server)


@pytest.fixture(scope="session")
def api(live_server: LiveServer) -> Iterator[httpx.Client]:
    """An HTTP client whose base URL is the server's /api."""
    with httpx.Client(base_url=live_server.api, timeout=30) as client:
        yield client


@pytest.fixture
def queue(api: httpx.Client) -> str:
    """A fresh queue for one test, so tests never see each other's messages."""
    name = "t_" + secrets.token_hex(6)
    response = api.post("/queues", json={"name": name})
    assert response.status_code == 201, response.text
    return name
