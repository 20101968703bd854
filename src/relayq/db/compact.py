"""`relay compact`: give back the space a one-off backlog left in the message tables.

Retention and the maintenance vacuum keep the churning tables at the size their steady traffic
needs, but they never return space: a table keeps its largest size (`vacuum_truncate = false`,
docs/scaling.md) and a B-tree its largest page count. After a backlog of millions has drained,
this gives the space back while traffic goes on; nothing in it holds a lock that blocks a
request for more than an instant:

- indexes an interrupted `REINDEX CONCURRENTLY` left behind invalid (`*_ccnew`, `*_ccold`) are
  dropped, concurrently;
- `VACUUM (TRUNCATE)` hands the empty tail of each table back to the operating system.
  PostgreSQL takes the ACCESS EXCLUSIVE lock this needs only when it is free at once, and lets
  it go as soon as another session waits for the table;
- `REINDEX INDEX CONCURRENTLY` builds a packed copy of each index beside the old one under SHARE
  UPDATE EXCLUSIVE (which no enqueue, dequeue or ack conflicts with), then swaps it in.

Partitioned queues are left out: retention drops their partitions whole.

One compaction at a time per database (COMPACT_LOCK_KEY), and a table on which another session is
building an index is skipped: two REINDEX CONCURRENTLY of one table deadlock (each waits for the
other's snapshot), and the one PostgreSQL cancels leaves its invalid `_ccnew` copy behind; the
in-progress copy of another session's REINDEX also looks exactly like a leftover.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

# The tables whose rows come and go: finished messages and old activity entries are deleted.
COMPACTED_TABLES = ("relay.messages", "relay.messages_unlogged", "relay.activity_log")
# Its own session: REINDEX and VACUUM refuse to run in a transaction, and on a large table they
# take longer than any request's statement timeout; a role's lock_timeout would cancel a REINDEX
# part-way (its invalid copy stays until the next run).
COMPACT_SESSION = {"application_name": "relayq-compact", "statement_timeout": "0", "lock_timeout": "0"}

# A session-level advisory lock (bigint key space; the queue locks use the two-int one).
COMPACT_LOCK_KEY = 0x72656C6179636D70  # "relaycmp"
# Another session's CREATE INDEX or REINDEX on the table (its `_ccnew` is not a leftover).
_BUILDING_SQL = """SELECT count(*) FROM pg_stat_progress_create_index
WHERE relid = $1::regclass AND pid <> pg_backend_pid()"""

_SIZES_SQL = """SELECT c.relname, c.relkind::text AS kind, pg_relation_size(c.oid) AS bytes
FROM pg_class c WHERE c.oid = $1::regclass
UNION ALL
SELECT c.relname, c.relkind::text, pg_relation_size(c.oid)
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = $1::regclass AND i.indisvalid
ORDER BY 2 DESC, 1"""
# Leftovers of a REINDEX CONCURRENTLY that failed or was cancelled: PostgreSQL names the new copy
# <index>_ccnew (or _ccnew1, ...) and, after the swap, the old one <index>_ccold; either stays
# invalid, costs every write its upkeep, and blocks the next REINDEX's name.
_LEFTOVERS_SQL = r"""SELECT c.relname, pg_relation_size(c.oid) AS bytes FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = $1::regclass AND NOT i.indisvalid AND c.relname ~ '_cc(new|old)[0-9]*$'
ORDER BY 1"""


class NoRelaySchema(Exception):
    """The database compact connected to is not one a Relay server uses."""


class CompactRunning(Exception):
    """Another `relay compact` holds COMPACT_LOCK_KEY on this database."""


@dataclass(frozen=True, slots=True)
class Resize:
    """One relation's size before and after (bytes); `after` is None for a dropped leftover."""

    table: str
    relation: str
    kind: str  # "table", "index" or "leftover"
    before: int
    after: int | None


def quote_ident(name: str) -> str:
    """A catalog name as an SQL identifier (the names come from pg_class, never from a request)."""
    return '"' + name.replace('"', '""') + '"'


async def compact(dsn: str, *, dry_run: bool = False, progress: Callable[[str], None] | None = None) -> list[Resize]:
    """Compact every table of COMPACTED_TABLES; with `dry_run`, only report the sizes.

    Raises CompactRunning at once when another compaction of the database is running."""
    say = progress or (lambda _text: None)
    conn = await asyncpg.connect(dsn, server_settings=COMPACT_SESSION)
    try:
        if not dry_run and not await conn.fetchval("SELECT pg_try_advisory_lock($1)", COMPACT_LOCK_KEY):
            raise CompactRunning("another relay compact is running on this database")
        if await conn.fetchval("SELECT to_regclass('relay.messages')") is None:
            raise NoRelaySchema("this database holds no Relay tables (relay.messages): is it the server's?")
        out: list[Resize] = []
        for table in COMPACTED_TABLES:
            if await conn.fetchval("SELECT to_regclass($1)", table) is None:
                continue  # a schema older than the table
            out += await _compact_table(conn, table, dry_run, say)
        return out
    finally:
        await conn.close()


async def _compact_table(conn: asyncpg.Connection, table: str, dry_run: bool,
                         say: Callable[[str], None]) -> list[Resize]:
    schema = table.split(".", 1)[0]
    before = {r["relname"]: (r["kind"], r["bytes"]) for r in await conn.fetch(_SIZES_SQL, table)}
    leftovers = {r["relname"]: r["bytes"] for r in await conn.fetch(_LEFTOVERS_SQL, table)}
    if not dry_run and await conn.fetchval(_BUILDING_SQL, table):
        say(f"skipping {table}: another session is building an index on it")
        dry_run, leftovers = True, {}  # its invalid copies may be that build's, not leftovers
    out = [Resize(table, name, "leftover", size, None) for name, size in leftovers.items()]
    if not dry_run:
        for name in leftovers:
            say(f"dropping {schema}.{name}, left invalid by an interrupted REINDEX")
            await conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {schema}.{quote_ident(name)}")
        say(f"VACUUM (TRUNCATE) {table}")
        await conn.execute(f"VACUUM (TRUNCATE) {table}")  # a constant of COMPACTED_TABLES
        for name, (kind, _) in before.items():
            if kind == "i":
                say(f"REINDEX INDEX CONCURRENTLY {schema}.{name}")
                await conn.execute(f"REINDEX INDEX CONCURRENTLY {schema}.{quote_ident(name)}")
    after = {r["relname"]: r["bytes"] for r in await conn.fetch(_SIZES_SQL, table)}
    for name, (kind, size) in before.items():
        out.append(Resize(table, name, "table" if kind != "i" else "index", size, after.get(name)))
    return out
