"""Fixtures of the client tests: a client on the shared live server and throwaway queues."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from relayq.client import Client, RelayError


@pytest.fixture
def relay_url(live_server: Any) -> str:
    """Base URL of the session's real server (the lead's ``live_server`` fixture)."""
    return str(live_server.url)


@pytest.fixture
def client(relay_url: str) -> Iterator[Client]:
    with Client(relay_url) as client:
        yield client


@pytest.fixture
def make_queue(client: Client) -> Iterator[Callable[..., str]]:
    """Create uniquely named queues (so tests never share one); delete them afterwards."""
    created: list[str] = []

    def make(**settings: Any) -> str:
        name = f"t-{uuid.uuid4().hex[:12]}"
        client.create_queue(name, **settings)
        created.append(name)
        return name

    yield make
    for name in created:
        try:
            client.delete_queue(name, force=True)
        except RelayError:
            pass  # renamed or deleted by the test itself
