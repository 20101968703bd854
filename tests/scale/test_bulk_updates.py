"""Statements that update many messages at once stay linear in their rows (migration 0014)."""

from __future__ import annotations

from collections.abc import Iterator

import asyncpg
import pytest
from benchmarks.scale.fill import fill_messages

from relayq.config import Settings
from relayq.runtime import Relay
from tests.support.server import fresh_database

ROWS = 30_000


@pytest.fixture(scope="module")
def bulk_dsn() -> Iterator[str]:
    with fresh_database("relay_bulk") as url:
        yield url


async def test_moving_30000_messages_and_renaming_their_queue_is_not_quadratic(bulk_dsn: str) -> None:
    """The counting trigger looked for changed types by joining its transition tables in a
    nested loop, which, when no type changed (every status change), compared every pair: 30,000
    rows meant 900 million comparisons, about two minutes. Linear, it is well under a second;
    the statement timeout turns the old behaviour into a failure."""
    settings = Settings.from_env(environ={"POSTGRES_STATEMENT_TIMEOUT_MS": "20000"}, dotenv=None)
    relay = await Relay.start(settings, bulk_dsn, background=False)
    conn = await asyncpg.connect(bulk_dsn)
    try:
        await relay.queues.create({"name": "big", "queue_type": "standard"})
        await fill_messages(conn, "big", "queued", ROWS)
        ids = [r["id"] for r in await conn.fetch("SELECT id FROM relay.messages WHERE queue_name = 'big'")]
        assert await relay.admin.move(ids, "queued", "dead", "bulk") == ROWS
        await relay.queues.rename("big", "bigger")
        assert (await relay.queues.get("bigger"))["dead_count"] == ROWS
        types = await conn.fetch("SELECT type FROM relay.message_types WHERE queue_name = 'bigger' ORDER BY 1")
        assert [r["type"] for r in types] == ["type_0", "type_1", "type_2", "type_3"]
        assert await conn.fetchval("SELECT count(*) FROM relay.messages WHERE queue_name = 'bigger'") == ROWS
    finally:
        await conn.close()
        await relay.stop()
