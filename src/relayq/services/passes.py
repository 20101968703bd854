"""Background passes (lease reaper, maintenance): a failed pass is logged and the loop goes on."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from relayq.domain.errors import RelayError


async def run_logged(log: logging.Logger, name: str, run_once: Callable[[], Awaitable[object]]) -> None:
    """One pass; a database outage (RelayError, e.g. 503) is a warning, anything else a traceback."""
    try:
        await run_once()
    except RelayError as exc:
        log.warning("%s: %s", name, exc.message)
    except Exception:
        log.exception("%s pass failed", name)
