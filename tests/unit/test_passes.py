"""A background loop's failures in a row are logged at the 1st, 2nd, 4th, 8th... and at recovery."""

from __future__ import annotations

import logging

import pytest

from relayq.domain.errors import RelayError
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
