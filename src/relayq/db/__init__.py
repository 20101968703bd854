"""Database access: the asyncpg pool, migrations, named queries and the embedded server."""
