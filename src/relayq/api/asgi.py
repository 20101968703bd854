"""`relayq.api.asgi:app`: the app built from the environment, for uvicorn workers and other servers."""

from __future__ import annotations

from relayq.api.app import create_app

app = create_app()
