"""Background passes (lease reaper, maintenance): a failed pass is logged and the loop goes on."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from relayq.domain.errors import RelayError

T = TypeVar("T")


async def uncancelled(work: Awaitable[T], on_cancel: Callable[[], None] | None = None) -> T:
    """Await `work`; if the caller is cancelled meanwhile (shutdown), let `work` finish first.

    A flush cancelled inside its statement leaves what it carried neither known written (the
    statement may have committed) nor waiting: the stop hook's final flush leaves it out. Run to
    its end, it is written, or put back for that final flush. `on_cancel` lets the work know, so
    it stops after the statement in flight; the statements' timeouts bound the wait, and a
    second cancel does not cut the statement either.
    """
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        if on_cancel is not None:
            on_cancel()
        with contextlib.suppress(asyncio.CancelledError):
            while not task.done():
                await asyncio.wait({task})
        with contextlib.suppress(Exception):
            task.result()
        raise


def worth_logging(failures_in_a_row: int) -> bool:
    """The 1st, 2nd, 4th, 8th... failure in a row: an outage of the database fails a loop that runs
    every second on every pass, and one line each buried the log (642 lines in 5 minutes)."""
    return failures_in_a_row & (failures_in_a_row - 1) == 0


@dataclass(slots=True)
class Streak:
    """Failed passes in a row of one background loop."""

    failures: int = 0


async def run_logged(log: logging.Logger, name: str, run_once: Callable[[], Awaitable[object]],
                     streak: Streak | None = None) -> None:
    """One pass; a database outage (RelayError, e.g. 503) is a warning, anything else a traceback.

    With a `streak`, repeated failures are logged only when worth_logging, and the recovery once.
    """
    streak = streak if streak is not None else Streak()
    try:
        await run_once()
    except RelayError as exc:
        streak.failures += 1
        if worth_logging(streak.failures):
            log.warning("%s: %s (%d failed passes in a row)", name, exc.message, streak.failures)
        return
    except Exception:
        streak.failures += 1
        if worth_logging(streak.failures):
            log.exception("%s pass failed (%d in a row)", name, streak.failures)
        return
    if streak.failures:
        log.info("%s: passes work again after %d failed", name, streak.failures)
        streak.failures = 0
