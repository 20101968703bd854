"""`relay compact` gives back a drained backlog's space, online, and cleans up after a failed REINDEX."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import msgspec
import pytest
from benchmarks.scale.fill import fill_messages

from relayq.cli import main
from relayq.config import Settings
from relayq.db.compact import CompactRunning, compact
from relayq.runtime import Relay
from relayq.services.messages import NewMessage
from tests.support.server import fresh_database


@pytest.fixture(scope="module")
def compact_dsn() -> Iterator[str]:
    with fresh_database("relay_compact") as url:
        yield url


async def sizes(conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch("""SELECT c.relname, pg_relation_size(c.oid) AS bytes FROM pg_class c
        WHERE c.oid = 'relay.messages'::regclass
           OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = 'relay.messages'::regclass)""")
    return {r["relname"]: r["bytes"] for r in rows}


async def until_in_catalog(conn: asyncpg.Connection, pattern: str, failure: str) -> None:
    """Wait (up to 10 s) for a relation whose name matches `pattern`: a REINDEX's new copy."""
    for _ in range(200):
        if await conn.fetchval("SELECT count(*) FROM pg_class WHERE relname ~ $1", pattern):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(failure)


async def test_a_drained_backlog_gives_its_space_back_while_traffic_goes_on(compact_dsn: str) -> None:
    settings = Settings.from_env(environ={}, dotenv=None)
    relay = await Relay.start(settings, compact_dsn, background=False)
    conn = await asyncpg.connect(compact_dsn)
    try:
        await relay.queues.create({"name": "backlog", "queue_type": "standard"})
        # The traffic meanwhile goes to another table, so where its rows land in relay.messages
        # cannot decide how much of that file's tail is empty.
        await relay.queues.create({"name": "live", "queue_type": "unlogged"})
        await fill_messages(conn, "backlog", "queued", 30_000)
        # An earlier REINDEX CONCURRENTLY that failed left an invalid copy behind.
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute("CREATE UNIQUE INDEX CONCURRENTLY messages_dequeue_idx_ccnew ON relay.messages (queue_name)")
        # Drained, retained, deleted: all but the rows on the file's first page, which stay queued.
        await conn.execute("DELETE FROM relay.messages WHERE queue_name = 'backlog' AND (ctid::text::point)[0] > 0")
        kept = await conn.fetchval("SELECT count(*) FROM relay.messages WHERE queue_name = 'backlog'")
        await conn.execute("VACUUM relay.messages")  # the maintenance vacuum did this: the pages are free to reuse
        before = await sizes(conn)
        assert before["messages_pkey"] > 40 * 8192 and before["messages"] > 100 * 8192
        assert "messages_dequeue_idx_ccnew" in before

        # Traffic goes on during the compaction: every enqueue, dequeue and ack still works.
        stop = asyncio.Event()

        async def traffic() -> int:
            done = 0
            while not stop.is_set():
                await relay.messages.enqueue([NewMessage(queue="live", type="t", payload=msgspec.Raw(b"1"))])
                leased = await relay.messages.dequeue("live", 1, batch=True)
                settled = await relay.messages.ack([(r["id"], r["lock_token"]) for r in leased], batch=True)
                assert len(settled.rows) == 1 and not settled.failures
                done += 1
            return done

        worker = asyncio.create_task(traffic())
        resized = await compact(compact_dsn)
        stop.set()
        assert await worker > 0  # and raised nothing

        after = await sizes(conn)
        assert "messages_dequeue_idx_ccnew" not in after  # the leftover is gone
        # The indexes are rebuilt packed; the heap gives back its empty tail (rows still in use
        # hold their pages: compaction does not move rows).
        assert after["messages_pkey"] <= 3 * 8192 and after["messages"] == 8192, (before, after)
        reported = {(r.table, r.relation): r for r in resized}
        assert reported[("relay.messages", "messages_dequeue_idx_ccnew")].after is None
        assert reported[("relay.messages", "messages_pkey")].before == before["messages_pkey"]
        invalid = await conn.fetchval("SELECT count(*) FROM pg_index WHERE NOT indisvalid")
        assert invalid == 0
        assert await conn.fetchval("SELECT count(*) FROM relay.messages WHERE queue_name = 'backlog' AND status = 'queued'") == kept
    finally:
        await conn.close()
        await relay.stop()


def test_cli_dry_run_changes_nothing(compact_dsn: str, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DATABASE_URL", compact_dsn)
    assert main(["compact", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "  messages_pkey" in out and "REINDEX" not in out
    assert main(["compact"]) == 0
    assert "REINDEX INDEX CONCURRENTLY relay.messages_pkey" in capsys.readouterr().out


def test_cli_does_not_create_a_database_to_compact(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Without a configured database, `relay compact` started (and so created) an embedded
    PostgreSQL in the default data directory and reported its empty tables: 0.00 MiB, as if the
    server's tables had been compacted. It says there is nothing to compact now; and a database
    without Relay's tables is named as such, not reported as empty."""
    for name in ("DATABASE_URL", "POSTGRES_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RELAY_DATA_DIR", str(tmp_path / "pgdata"))
    assert main(["compact", "--dry-run"]) == 3
    assert "no embedded PostgreSQL in" in capsys.readouterr().err
    assert not (tmp_path / "pgdata").exists()
    with fresh_database("relay_not_relay") as other:
        monkeypatch.setenv("DATABASE_URL", other)
        assert main(["compact", "--dry-run"]) == 3
        assert "holds no Relay tables" in capsys.readouterr().err


async def test_a_second_compaction_refuses_at_once_instead_of_deadlocking(compact_dsn: str) -> None:
    """Two compactions deadlocked: the second took the first's in-progress `_ccnew` index for a
    leftover (or reindexed the same table), each waited for the other's snapshot, and the one
    PostgreSQL cancelled failed (a first one cancelled mid-REINDEX left its invalid copy behind)."""
    blocker = await asyncpg.connect(compact_dsn)
    watcher = await asyncpg.connect(compact_dsn)
    try:
        # An open write transaction holds the first REINDEX CONCURRENTLY in its wait for writers,
        # with its new copy already in the catalog (invalid).
        await blocker.execute("BEGIN")
        await blocker.execute("LOCK TABLE relay.messages IN ROW EXCLUSIVE MODE")
        first = asyncio.create_task(compact(compact_dsn))
        await until_in_catalog(watcher, "^messages_.*_ccnew", "the first compaction never reached its REINDEX")
        with pytest.raises(CompactRunning):
            await asyncio.wait_for(compact(compact_dsn), 10)
        await blocker.execute("ROLLBACK")
        await asyncio.wait_for(first, 60)  # and raised nothing
        invalid = await watcher.fetchval("SELECT count(*) FROM pg_index WHERE NOT indisvalid")
        assert invalid == 0
    finally:
        await blocker.close()
        await watcher.close()


async def test_a_table_another_session_reindexes_is_skipped(compact_dsn: str) -> None:
    """A DBA's REINDEX CONCURRENTLY in progress: its `_ccnew` is not a leftover to drop, and a
    second REINDEX of the same table would deadlock with it."""
    blocker = await asyncpg.connect(compact_dsn)
    dba = await asyncpg.connect(compact_dsn)
    watcher = await asyncpg.connect(compact_dsn)
    try:
        await blocker.execute("BEGIN")
        await blocker.execute("LOCK TABLE relay.messages IN ROW EXCLUSIVE MODE")
        reindex = asyncio.create_task(dba.execute("REINDEX INDEX CONCURRENTLY relay.messages_pkey"))
        await until_in_catalog(watcher, "^messages_pkey_ccnew$", "the REINDEX never started")
        said: list[str] = []
        resized = await asyncio.wait_for(compact(compact_dsn, progress=said.append), 30)
        assert "skipping relay.messages: another session is building an index on it" in said
        assert not [r for r in resized if r.table == "relay.messages" and r.after is None]
        await blocker.execute("ROLLBACK")
        await asyncio.wait_for(reindex, 60)  # the DBA's REINDEX finished: its copy was not dropped
        assert await watcher.fetchval("SELECT count(*) FROM pg_index WHERE NOT indisvalid") == 0
    finally:
        await blocker.close()
        await dba.close()
        await watcher.close()


def test_cli_reports_a_database_refusal_in_one_line(compact_dsn: str, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Run as a role that does not own the tables (REINDEX needs it): one line, exit 1."""
    async def role(create: bool) -> None:
        conn = await asyncpg.connect(compact_dsn)
        try:
            if create:
                await conn.execute("DROP ROLE IF EXISTS relay_not_owner")
                await conn.execute("CREATE ROLE relay_not_owner LOGIN")
                await conn.execute("GRANT USAGE ON SCHEMA relay TO relay_not_owner")
                await conn.execute("GRANT SELECT ON ALL TABLES IN SCHEMA relay TO relay_not_owner")
            else:
                await conn.execute("DROP OWNED BY relay_not_owner")
                await conn.execute("DROP ROLE relay_not_owner")
        finally:
            await conn.close()

    asyncio.run(role(True))
    try:
        monkeypatch.setenv("DATABASE_URL", compact_dsn.replace("postgres@", "relay_not_owner@", 1))
        assert main(["compact"]) == 1
        err = capsys.readouterr().err
        assert "relay: compact stopped: InsufficientPrivilegeError" in err and "Traceback" not in err
    finally:
        asyncio.run(role(False))
