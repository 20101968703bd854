"""Optional services wired into a running Relay: activity log, stats, events, metrics.

Each installer subscribes to the ChangeHub and registers its background tasks and stop hooks,
so the core message path never imports them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from relayq.runtime import Relay


async def install(relay: Relay) -> None:
    """Install every optional service into `relay`."""
    return None


def load_routes() -> None:
    """Import the optional services' route modules (registers their endpoints)."""
    from relayq.api.routes import internal  # noqa: F401  (benchmark counters)
