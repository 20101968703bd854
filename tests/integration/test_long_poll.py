"""A parked long-poll's rechecks cost at most a tenth of its time in claims (recheck_after).

A claim that finds nothing may still read a lot: a type filter that no queued message matches
reads the whole backlog (0.5-0.9 s at 1,000,000 messages), and a recheck every second kept a
core busy for each parked (queue, type). Slow claims are stood in for by a trigger that makes
every UPDATE of the message table take SLOW seconds longer.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from relayq.runtime import Relay
from relayq.services.messages import LONG_POLL_RECHECK_SECONDS, RECHECK_MAX_SECONDS, recheck_after
from tests.support.inprocess import inprocess_relay, slow_writes
from tests.support.server import fresh_database

SLOW = 0.4


@pytest.fixture(scope="module")
def poll_dsn() -> Iterator[str]:
    with fresh_database("relay_poll") as url:
        yield url


@pytest.fixture
async def relay(poll_dsn: str) -> AsyncIterator[Relay]:
    async with inprocess_relay(poll_dsn, ENQUEUE_BUFFER_ENABLED="false") as r:
        yield r


def test_rechecks_wait_ten_times_the_claim_at_least_a_second_at_most_five() -> None:
    assert recheck_after(0.001) == LONG_POLL_RECHECK_SECONDS
    assert recheck_after(0.3) == pytest.approx(3.0)
    assert recheck_after(0.7) == RECHECK_MAX_SECONDS


async def test_a_slow_empty_claim_is_not_repeated_every_second(relay: Relay) -> None:
    queue = "poll_" + secrets.token_hex(4)
    await relay.queues.create({"name": queue, "queue_type": "standard"})
    async with slow_writes(relay, SLOW, "UPDATE"):
        before, started = relay.db.stats.round_trips, time.monotonic()
        assert await relay.messages.dequeue(queue, 1, wait=3, type_filter="missing") == []
        assert time.monotonic() - started >= 3
        # The first claim, and the last one at the deadline; every second (as before): 3 or 4.
        assert relay.db.stats.round_trips - before == 2
