"""The asyncpg pool, with round-trip accounting and database-outage mapping.

Every call that reaches PostgreSQL goes through `Database`, so `round_trips` is an exact count
of the queries/op figure the benchmark reports, and an unreachable database surfaces as one
`DATABASE_UNAVAILABLE` error instead of whichever exception the driver happened to raise.
"""

from __future__ import annotations

import asyncio
import copy
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal, TypeVar

import asyncpg

from relayq.config import Settings
from relayq.domain.errors import RelayError, database_unavailable

# Errors that mean "the database is not there right now", as opposed to a bad statement.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InterfaceError,
    # 57014: statement_timeout or a cancel; the statement rolled back, so a retry is safe.
    asyncpg.exceptions.QueryCanceledError,
    # 53xxx: "too many clients" and friends, typical while PostgreSQL restarts.
    asyncpg.exceptions.InsufficientResourcesError,
    # The driver's own state broke, e.g. a connection the server killed mid-statement.
    asyncpg.exceptions.InternalClientError,
    # 25006: a database that refuses writes, typically a standby the URL reaches after a failover
    # (the failed connection is dropped, so a new one finds the new primary).
    asyncpg.exceptions.ReadOnlySQLTransactionError,
    # 55P03: a lock_timeout (a DBA's, on the role or database) ran out behind another session's
    # lock; the statement rolled back, so a retry is safe. See `lock_timed_out`.
    asyncpg.exceptions.LockNotAvailableError,
)

# For statements whose filters are `($n IS NULL OR ...)` (the admin listings, the activity log):
# only a plan made with the values folds the unused filters away and reaches an index. A generic
# plan, which PostgreSQL may switch a prepared statement to after five executions (or always,
# under plan_cache_mode = force_generic_plan), reads whole tables. SET LOCAL: per transaction,
# which pgbouncer's transaction mode keeps.
CUSTOM_PLANS_SQL = "SET LOCAL plan_cache_mode = force_custom_plan"


def lock_timed_out(exc: BaseException) -> bool:
    """True for the 503 of a statement that ran out of lock_timeout: maintenance, which sets a
    short one for its DDL, skips the queue until the next pass instead of failing the pass."""
    return isinstance(exc, RelayError) and isinstance(exc.__cause__, asyncpg.exceptions.LockNotAvailableError)


# SQLSTATE class 22 (data exception): a value PostgreSQL cannot store or compute with, such as
# a NUL character in text, an integer beyond 32 bits or a timestamp past year 294276. Every
# value reaches SQL as a bind parameter from a request, so these are the client's input: 400.
# Class 54 (program limit exceeded) likewise: a text too long for an index row. As a 400 (a
# RelayError), a coalesced statement that fails so runs each request again alone, instead of
# failing the other clients' requests that shared it.
INVALID_VALUE_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.DataError, asyncpg.exceptions.ProgramLimitExceededError,
)

# PostgreSQL rolled the whole statement back; running it again is safe and usually succeeds
# (two statements that lock the same rows or unique keys in opposite orders, e.g. coalesced
# batches retrying the same idempotency keys).
RETRYABLE_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.SerializationError,
)
RETRIES = 3

T = TypeVar("T")


async def run_retrying(attempt: Callable[[], Awaitable[T]]) -> T:
    """Run `attempt` (one statement, or one whole transaction) again after PostgreSQL rolled it
    back as a deadlock victim, up to RETRIES times with a short random pause; then 503."""
    for tries in range(RETRIES + 1):
        try:
            return await attempt()
        except RETRYABLE_ERRORS:
            if tries == RETRIES:
                raise database_unavailable("deadlock, retries exhausted") from None
        await asyncio.sleep(random.uniform(0.002, 0.02) * (tries + 1))
    raise AssertionError("unreachable")


def command_timeout(settings: Settings) -> float | None:
    """The client-side bound on every pool statement: a little past `statement_timeout`.

    `statement_timeout` is PostgreSQL's own, so it cannot end a statement whose server stopped
    answering (a stalled host, a network partition, a paused pgbouncer, which also drops the
    setting): without a bound here such a request hung until TCP gave up, minutes later, and so
    did every request coalesced behind it. A live server's own cancel still comes first."""
    if settings.statement_timeout_ms <= 0:
        return None
    return settings.statement_timeout_ms / 1000 + settings.connect_timeout


# How long Relay waits for a bulk statement when neither timeout bounds it.
UNBOUNDED_WAIT = 7 * 86400.0

# What a bulk transaction is: "read" (an export), or "write" (a queue delete, purge, rename,
# clear), which also bounds its lock waits.
Bulk = Literal["read", "write"]


def bulk_statement_ms(settings: Settings) -> int:
    """A bulk transaction's statement_timeout in ms, 0 for none: POSTGRES_BULK_STATEMENT_TIMEOUT_MS,
    never tighter than the request path's (which may be off, 0, or set above an hour)."""
    normal, bulk = settings.statement_timeout_ms, settings.bulk_statement_timeout_ms
    return 0 if normal <= 0 or bulk <= 0 else max(normal, bulk)


def bulk_timeout(settings: Settings) -> float:
    """The client-side bound on a bulk transaction's statements (see `Database.transaction`)."""
    ms = bulk_statement_ms(settings)
    return ms / 1000 + settings.connect_timeout if ms else UNBOUNDED_WAIT


# SET LOCAL (is_local): per transaction, which pgbouncer's transaction mode keeps, and nothing
# leaks to the connection's next user. A bulk write's lock_timeout ($2 ms, 0 for none) only ever
# tightens the one in force (a DBA's, on the role or database).
BULK_READ_SQL = "SELECT set_config('statement_timeout', $1, true)"
BULK_WRITE_SQL = """SELECT set_config('statement_timeout', $1, true), set_config('lock_timeout', (
    SELECT CASE WHEN $2::bigint = 0 THEN setting WHEN setting::bigint = 0 THEN $2::text
                ELSE least(setting::bigint, $2::bigint)::text END
    FROM pg_settings WHERE name = 'lock_timeout'), true)"""


# asyncpg.Record behaves as a read-only mapping; typing it so keeps mypy useful downstream.
Row = Mapping[str, Any]


class RelayConnection(asyncpg.Connection):  # type: ignore[misc]
    """A pool connection released without asyncpg's reset query.

    The default release sends `pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL` —
    one extra round trip after every statement, doubling the work of the hot path. Relay keeps
    no session state on pool connections (no LISTEN, no session advisory locks, no SET), so
    there is nothing to reset; open transactions are still rolled back by asyncpg.
    """

    def get_reset_query(self) -> str:
        return ""


class DatabaseStats:
    """Counters the benchmark and /metrics read: round trips and their total latency."""

    __slots__ = ("round_trips", "seconds", "errors")

    def __init__(self) -> None:
        self.round_trips = 0
        self.seconds = 0.0
        self.errors = 0


class QueryRunner:
    """The four query shapes, each one round trip; subclasses say where the connection comes from."""

    async def _run(self, op: str, query: str, args: tuple[Any, ...]) -> Any:
        raise NotImplementedError

    async def fetch(self, query: str, *args: Any) -> list[Row]:
        """All rows of a query."""
        rows: list[Row] = await self._run("fetch", query, args)
        return rows

    async def fetchrow(self, query: str, *args: Any) -> Row | None:
        """The first row of a query, or None."""
        row: Row | None = await self._run("fetchrow", query, args)
        return row

    async def fetchval(self, query: str, *args: Any) -> Any:
        """The first column of the first row."""
        return await self._run("fetchval", query, args)

    async def execute(self, query: str, *args: Any) -> str:
        """A statement's status tag, such as `UPDATE 3`."""
        status: str = await self._run("execute", query, args)
        return status


class Database(QueryRunner):
    """A pool of connections to Relay's database; all queries are parameterized."""

    def __init__(self, pool: asyncpg.Pool, settings: Settings, dsn: str = "") -> None:
        self.pool = pool
        self.settings = settings
        self.stats = DatabaseStats()
        self.background_stats = DatabaseStats()
        self.rtt = 0.0  # measured round trip to the database at start-up, seconds (0: unknown)
        # For the few services that need a connection of their own (LISTEN).
        self.dsn = dsn or settings.dsn()

    def background(self) -> Database:
        """The same pool, counted in `background_stats`: work no request waits for (maintenance)
        stays out of the request path's round-trip count that the benchmark divides by."""
        view = copy.copy(self)
        view.stats = self.background_stats
        return view

    @classmethod
    async def connect(cls, settings: Settings, dsn: str | None = None) -> Database:
        """Open the pool with the tuning settings (size, idle timeout, timeouts, statement cache)."""
        url = dsn or settings.dsn()
        try:
            pool = await asyncpg.create_pool(
                url,
                min_size=settings.pool_min_size,
                max_size=settings.pool_size,
                max_inactive_connection_lifetime=settings.pool_idle_timeout,
                timeout=settings.connect_timeout,
                command_timeout=command_timeout(settings),
                statement_cache_size=settings.statement_cache_size,
                connection_class=RelayConnection,
                server_settings={
                    "application_name": "relayq",
                    "statement_timeout": str(settings.statement_timeout_ms),
                },
            )
        except UNAVAILABLE_ERRORS as exc:
            raise database_unavailable(str(exc)) from exc
        db = cls(pool, settings, url)
        db.rtt = await db._measure_rtt()
        return db

    async def _measure_rtt(self) -> float:
        """The fastest of three trivial queries: the network's share of every statement.

        Natural batching sizes its in-flight statements from it (services/coalesce.py), and
        statements that carry whole batches cannot tell it apart from their own work."""
        async with self.pool.acquire(timeout=self.settings.connect_timeout) as conn:
            samples = []
            for _ in range(3):
                started = time.perf_counter()
                await conn.fetchval("SELECT 1")
                samples.append(time.perf_counter() - started)
        self.background_stats.round_trips += len(samples)
        return min(samples)

    async def close(self) -> None:
        """Close every connection, waiting briefly for queries in flight."""
        try:
            await asyncio.wait_for(self.pool.close(), timeout=10)
        except TimeoutError:
            self.pool.terminate()

    async def _run(self, op: str, query: str, args: tuple[Any, ...]) -> Any:
        async def once() -> Any:
            started = time.perf_counter()
            try:
                async with self._acquire() as conn:
                    return await getattr(conn, op)(query, *args)
            finally:
                self._account(started)

        return await run_retrying(once)

    @asynccontextmanager
    async def transaction(self, *, bulk: Bulk | None = None) -> AsyncIterator[Transaction]:
        """A connection inside BEGIN/COMMIT; its statements are counted like the pool's.

        `bulk`: the admin operations whose work grows with a queue (deleting, purging, renaming
        or exporting all of it) run under POSTGRES_BULK_STATEMENT_TIMEOUT_MS instead of the
        request path's statement timeout, on both sides: at 2.5 s per million rows, a queue of
        12 million could otherwise never be deleted (every attempt rolled back at 30 s). A bulk
        write still waits for a lock no longer than a request's statement may: while it waits
        it queues every later request for that lock behind it.
        """
        async with self._acquire() as conn, conn.transaction():
            tx = Transaction(conn, self)
            if bulk is not None:
                tx.timeout = bulk_timeout(self.settings)
                statement_ms = str(bulk_statement_ms(self.settings))
                if bulk == "write":
                    await tx.execute(BULK_WRITE_SQL, statement_ms, max(self.settings.statement_timeout_ms, 0))
                else:
                    await tx.execute(BULK_READ_SQL, statement_ms)
            yield tx

    async def run_in_transaction(self, body: Callable[[Transaction], Awaitable[T]], *, bulk: Bulk | None = None) -> T:
        """`body` inside one transaction, run again from the start when PostgreSQL rolls it back
        as a deadlock victim (run_retrying), as single statements are: request-path
        transactions lock rows in their own order while workers lock them in theirs."""
        async def attempt() -> T:
            async with self.transaction(bulk=bulk) as tx:
                return await body(tx)

        return await run_retrying(attempt)

    @asynccontextmanager
    async def _acquire(self) -> AsyncIterator[asyncpg.Connection]:
        try:
            async with self.pool.acquire(timeout=self.settings.connect_timeout) as conn:
                try:
                    yield conn
                except (*UNAVAILABLE_ERRORS, asyncpg.PostgresError):
                    # Never hand a connection that failed to the next request. Without a reset
                    # query on release nothing proves it is idle again: after an error during
                    # prepare, asyncpg may still be consuming up to ReadyForQuery, and the next
                    # statement fails with "cannot switch to state ...; another operation is in
                    # progress". Errors are rare on this path, so a reconnect is the cheap fix.
                    conn.terminate()
                    raise
        except INVALID_VALUE_ERRORS as exc:
            raise invalid_value(exc) from exc
        except UNAVAILABLE_ERRORS as exc:
            self.stats.errors += 1
            raise database_unavailable(type(exc).__name__) from exc

    def _account(self, started: float) -> None:
        self.stats.round_trips += 1
        self.stats.seconds += time.perf_counter() - started


def invalid_value(exc: BaseException) -> RelayError:
    """A 400 for a request value the database refused (see INVALID_VALUE_ERRORS)."""
    reason = str(exc).split("\n", 1)[0]
    return RelayError(400, "VALIDATION_ERROR", f"A value cannot be stored: {reason}",
                      details=[{"field": "", "message": reason}])


class Transaction(QueryRunner):
    """Statements run on one connection inside a transaction, counted per round trip."""

    def __init__(self, conn: asyncpg.Connection, db: Database) -> None:
        self.conn = conn
        self._db = db
        self.timeout: float | None = None  # None: the pool's command_timeout

    async def _run(self, op: str, query: str, args: tuple[Any, ...]) -> Any:
        started = time.perf_counter()
        try:
            return await getattr(self.conn, op)(query, *args, timeout=self.timeout)
        finally:
            self._db._account(started)

    async def executemany(self, query: str, args: Sequence[Sequence[Any]]) -> None:
        """One statement over many argument tuples (pipelined by asyncpg)."""
        started = time.perf_counter()
        try:
            await self.conn.executemany(query, args, timeout=self.timeout)
        finally:
            self._db._account(started)
