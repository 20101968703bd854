"""The migrations, applied in order, produce exactly db/sql/schema.sql."""

from __future__ import annotations

import asyncio

import asyncpg

from relayq.db.migrate import load_migrations, migrate, schema_sql
from tests.support.server import fresh_database

CATALOG_SQL = """
SELECT 'column' AS kind, c.relname || '.' || a.attname AS name,
       format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
       || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
       || CASE WHEN a.attidentity <> '' THEN ' identity' ELSE '' END
       || CASE WHEN a.attstattarget >= 0 THEN ' statistics ' || a.attstattarget ELSE '' END AS def
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE n.nspname = 'relay' AND a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'u')
UNION ALL
SELECT 'index', indexrelid::regclass::text, pg_get_indexdef(indexrelid)
FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'relay'
UNION ALL
SELECT 'constraint', conrelid::regclass::text || '.' || conname, pg_get_constraintdef(oid)
FROM pg_constraint WHERE connamespace = 'relay'::regnamespace
UNION ALL
SELECT 'table', c.relname, c.relkind::text || c.relpersistence::text || coalesce(array_to_string(c.reloptions, ','), '')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'relay' AND c.relkind IN ('r', 'p')
ORDER BY 1, 2, 3
"""


async def _catalog(url: str) -> list[tuple[str, str, str]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(CATALOG_SQL)
        return [(r["kind"], r["name"], r["def"]) for r in rows if "schema_migrations" not in r["name"]]
    finally:
        await conn.close()


async def _build(migrated: str, direct: str) -> None:
    conn = await asyncpg.connect(migrated)
    try:
        applied = await migrate(conn)
        assert applied == [m.version for m in load_migrations()]
        assert await migrate(conn) == []  # idempotent
    finally:
        await conn.close()
    conn = await asyncpg.connect(direct)
    try:
        await conn.execute(schema_sql())
    finally:
        await conn.close()


def test_migrations_match_schema_file() -> None:
    with fresh_database("relay_mig") as migrated, fresh_database("relay_schema") as direct:
        asyncio.run(_build(migrated, direct))
        assert asyncio.run(_catalog(migrated)) == asyncio.run(_catalog(direct))
