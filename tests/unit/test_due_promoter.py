"""The delayed-message loop (services/delays.py) against a stand-in database: when it runs passes."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from relayq.domain.errors import database_unavailable
from relayq.services.delays import DuePromoter
from relayq.services.waiters import Waiters


class FakeDatabase:
    """Answers `promote` with nothing promoted and the next message due in `next_due_in` seconds,
    or fails at once with a 503 while `down` (a refused connection fails that fast)."""

    def __init__(self, next_due_in: float | None) -> None:
        self.next_due_in = next_due_in
        self.down = False
        self.calls = 0

    async def fetch(self, _query: str, *_args: Any) -> list[dict[str, Any]]:
        self.calls += 1
        if self.down:
            raise database_unavailable("ConnectionRefusedError")
        return [{"queue_name": None, "n": 0, "next_due_in": self.next_due_in}]


async def test_a_database_outage_does_not_make_the_loop_spin() -> None:
    """The last pass before the outage saw a message due in a millisecond; the passes that fail
    know nothing newer. They kept sleeping that millisecond: about a thousand connection
    attempts a second for as long as the outage lasted, instead of one per interval."""
    db = FakeDatabase(next_due_in=0.001)
    promoter = DuePromoter(db, Waiters(), interval=0.5)  # type: ignore[arg-type]
    await promoter.run_once()
    assert promoter.next_due_in == 0.001
    db.down = True
    db.calls = 0
    task = asyncio.ensure_future(promoter.run())
    try:
        await asyncio.sleep(1.2)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert db.calls <= 3, db.calls  # a pass now, then one per interval


async def test_an_earlier_delay_wakes_the_sleeping_loop_and_cancel_ends_it() -> None:
    db = FakeDatabase(next_due_in=None)  # nothing waiting: the loop sleeps a whole interval
    promoter = DuePromoter(db, Waiters(), interval=30)  # type: ignore[arg-type]
    task = asyncio.ensure_future(promoter.run())
    await asyncio.sleep(0.05)
    assert db.calls == 3  # one pass: a statement per message table
    promoter.due_in(0.1)
    await asyncio.sleep(0.3)
    assert db.calls == 6
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert task.cancelled()
