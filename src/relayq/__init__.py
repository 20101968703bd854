"""Relay Queue: a language-agnostic message broker on PostgreSQL."""

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """Lazy re-export of the client API, so `import relayq` stays light for the server."""
    import relayq.client as client

    if name in client.__all__:
        return getattr(client, name)
    raise AttributeError(f"module 'relayq' has no attribute {name!r}")
