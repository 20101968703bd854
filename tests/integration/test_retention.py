"""Activity entries older than ACTIVITY_LOG_RETENTION_HOURS are removed by the retention job."""

from __future__ import annotations

import secrets

from tests.support.inprocess import ext, inprocess_relay


async def test_retention_removes_only_old_entries(database_url: str) -> None:
    async with inprocess_relay(database_url, ACTIVITY_LOG_RETENTION_HOURS="2") as r:
        queue = "ret_" + secrets.token_hex(4)
        for hours in (1, 3, 30):
            await r.db.execute(
                "INSERT INTO relay.activity_log (ts, action, queue, entry) "
                "VALUES (now() - make_interval(hours => $1), 'enqueue', $2, '{}')", hours, queue)
        assert await ext(r).retention.run_once() >= 2
        left = await r.db.fetch("SELECT extract(epoch FROM now() - ts)::int / 3600 AS age FROM relay.activity_log "
                                "WHERE queue = $1", queue)
        assert [row["age"] for row in left] == [1]


async def test_zero_keeps_the_log_for_ever_and_fractions_count(database_url: str) -> None:
    """0 keeps entries (as ACKNOWLEDGED_RETENTION_HOURS does); it used to delete the whole log."""
    queue = "ret_" + secrets.token_hex(4)
    async with inprocess_relay(database_url, ACTIVITY_LOG_RETENTION_HOURS="0") as r:
        await r.db.execute("INSERT INTO relay.activity_log (ts, action, queue, entry) "
                           "VALUES (now() - interval '1000 hours', 'enqueue', $1, '{}')", queue)
        assert await ext(r).retention.run_once() == 0
        assert await r.db.fetchval("SELECT count(*) FROM relay.activity_log WHERE queue = $1", queue) == 1
    async with inprocess_relay(database_url, ACTIVITY_LOG_RETENTION_HOURS="0.5") as r:
        await r.db.execute("INSERT INTO relay.activity_log (ts, action, queue, entry) "
                           "VALUES (now() - interval '10 minutes', 'enqueue', $1, '{}')", queue)
        await ext(r).retention.run_once()
        ages = await r.db.fetch("SELECT ts > now() - interval '1 hour' AS recent FROM relay.activity_log "
                                "WHERE queue = $1", queue)
        assert [row["recent"] for row in ages] == [True]  # the 1000-hour entry went, the 10-minute one stayed
