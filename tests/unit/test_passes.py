"""A background loop's failures in a row are logged at the 1st, 2nd, 4th, 8th... and at recovery."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from relayq.domain.errors import RelayError
from relayq.services.batching import BatchBuffer
from relayq.services.passes import Streak, run_logged

log = logging.getLogger("relayq.test.passes")


async def test_an_outage_is_logged_once_per_doubling_and_its_end_once(caplog: pytest.LogCaptureFixture) -> None:
    async def down() -> None:
        raise RelayError(503, "DATABASE_UNAVAILABLE", "Database unavailable")

    async def up() -> None:
        return None

    streak = Streak()
    with caplog.at_level(logging.INFO, logger="relayq.test.passes"):
        for _ in range(9):
            await run_logged(log, "reaper", down, streak)
        await run_logged(log, "reaper", up, streak)
        await run_logged(log, "reaper", up, streak)
    lines = [r.getMessage() for r in caplog.records]
    assert [line.split("(")[1] for line in lines[:-1]] == [
        f"{n} failed passes in a row)" for n in (1, 2, 4, 8)]
    assert lines[-1] == "reaper: passes work again after 9 failed" and streak.failures == 0


async def test_a_cancelled_flush_finishes_its_batch_and_leaves_the_rest_to_close() -> None:
    """Shutdown cancels the writer: the batch in its statement is still written (not lost), but
    the rest waits for close() and its CLOSE_TIMEOUT, not for as many statements as are queued."""
    written: list[list[int]] = []
    in_statement = asyncio.Event()

    async def write(batch: list[int]) -> None:
        in_statement.set()
        await asyncio.sleep(0.2)
        written.append(batch)

    buffer = BatchBuffer("test", write, capacity=100, flush_size=2, interval=60)
    for item in range(6):
        buffer.offer(item)
    runner = asyncio.create_task(buffer.run())
    await asyncio.wait_for(in_statement.wait(), 5)
    runner.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(runner, 5)
    assert written == [[0, 1]] and list(buffer.items) == [2, 3, 4, 5]
    await buffer.close()
    assert written == [[0, 1], [2, 3], [4, 5]]
