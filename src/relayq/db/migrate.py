"""Numbered SQL migrations, applied in order under an advisory lock.

Several server processes may start at once against one database; the advisory lock makes
exactly one of them apply the pending migrations while the others wait and then find nothing
to do. All pending migrations apply in one transaction: all or none. Applied versions are recorded in `relay.schema_migrations`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

# pg_advisory_lock key: "relayq-migrate" folded into a bigint; constant so every process agrees.
MIGRATION_LOCK_KEY = 0x72656C6179_6D6967
_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered migration file."""

    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    """Every migration shipped in the package, in version order."""
    folder = resources.files("relayq.db") / "sql" / "migrations"
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _FILE_RE.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.version)


def schema_sql() -> str:
    """The whole schema as the newest migration leaves it (db/sql/schema.sql)."""
    return (resources.files("relayq.db") / "sql" / "schema.sql").read_text(encoding="utf-8")


async def migrate(conn: asyncpg.Connection) -> list[int]:
    """Apply pending migrations in one transaction; return the versions applied by this call.

    The lock is transaction-scoped (pg_advisory_xact_lock), so it also works through
    pgbouncer in transaction mode, and it is released even if the process dies mid-way.
    """
    applied_now: list[int] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
        await conn.execute(
            """CREATE SCHEMA IF NOT EXISTS relay;
            CREATE TABLE IF NOT EXISTS relay.schema_migrations (
                version integer PRIMARY KEY,
                name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM relay.schema_migrations")}
        for migration in load_migrations():
            if migration.version in done:
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO relay.schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
            applied_now.append(migration.version)
    return applied_now


async def migrate_dsn(dsn: str) -> list[int]:
    """Connect, migrate, disconnect: what `relay migrate` runs."""
    conn = await asyncpg.connect(dsn)
    try:
        return await migrate(conn)
    finally:
        await conn.close()
