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
