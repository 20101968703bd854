"""A Relay built in-process (no HTTP) on a real database, with settings chosen by the test."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import msgspec

from relayq.config import Settings
from relayq.runtime import Relay
from relayq.services.extensions import Extensions, extensions_of
from relayq.services.messages import NewMessage

T = TypeVar("T")


@asynccontextmanager
async def inprocess_relay(dsn: str, background: bool = False, **env: str) -> AsyncIterator[Relay]:
    """`Relay.start` with `env` as the whole environment; stopped (buffers flushed) on exit."""
    settings = Settings.from_env(environ={"POSTGRES_POOL_MIN_SIZE": "1", "POSTGRES_POOL_SIZE": "4", **env},
                                 dotenv=None)
    relay = await Relay.start(settings, dsn, background=background)
    try:
        yield relay
    finally:
        await relay.stop()


def ext(relay: Relay) -> Extensions:
    """The activity/stats/events services of a relay."""
    return extensions_of(relay)


def message(queue: str, payload: str = '{"n":1}', **fields: object) -> NewMessage:
    """A NewMessage as the enqueue route would build it."""
    return NewMessage(queue=queue, type=str(fields.pop("type", "job")), payload=msgspec.Raw(payload.encode()),
                      **fields)  # type: ignore[arg-type]


async def eventually(check: Callable[[], Awaitable[T]], within: float = 3.0) -> T:
    """Retry `check` until it returns a truthy value (or time runs out; then returns the last value)."""
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.05)


@asynccontextmanager
async def slow_writes(relay: Relay, seconds: float, events: str = "UPDATE OR DELETE") -> AsyncIterator[None]:
    """Every `events` statement on relay.messages takes `seconds` longer (a statement trigger that
    sleeps): a long statement without the data for one. Only in a test's own database."""
    await relay.db.execute(f"""CREATE FUNCTION public.relay_test_slow() RETURNS trigger LANGUAGE plpgsql
        AS $$ BEGIN PERFORM pg_sleep({float(seconds)}); RETURN NULL; END $$""")
    await relay.db.execute(f"""CREATE TRIGGER relay_test_slow BEFORE {events} ON relay.messages
        FOR EACH STATEMENT EXECUTE FUNCTION public.relay_test_slow()""")
    try:
        yield
    finally:
        await relay.db.execute("DROP TRIGGER relay_test_slow ON relay.messages")
        await relay.db.execute("DROP FUNCTION public.relay_test_slow()")
