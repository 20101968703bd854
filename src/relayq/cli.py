"""`relay`: serve, migrate, compact, bench, and the client commands (worker, enqueue, queues, ...)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from relayq.config import ConfigError, Settings

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
EXIT_NO_DATABASE = 3  # as the client commands' "server cannot be reached"
EXIT_CANNOT_LISTEN = 1


def _embedded_data_dir(settings: Settings) -> Path:
    """Where the embedded PostgreSQL keeps its data: RELAY_DATA_DIR, else the default."""
    from relayq.db.embedded import default_data_dir

    return Path(settings.data_dir) if settings.data_dir else default_data_dir()


def _database_url(settings: Settings) -> str:
    """The configured database, or an embedded PostgreSQL started now."""
    if not settings.uses_embedded_database:
        return settings.dsn()
    from relayq.db.embedded import EmbeddedPostgres

    data_dir = _embedded_data_dir(settings)
    print(f"relay: no DATABASE_URL or POSTGRES_HOST set; starting embedded PostgreSQL in {data_dir}", flush=True)
    url = EmbeddedPostgres(data_dir).start()
    print(f"relay: embedded PostgreSQL ready ({url})", flush=True)
    return url


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the HTTP server (uvicorn, uvloop, httptools; one write per response: api/protocol.py)."""
    import uvicorn

    settings = Settings.from_env()
    host = args.host or settings.host
    port = args.port or settings.port
    problem = _listen_problem(host, port)
    if problem:
        print(f"relay: cannot listen on {host}:{port}: {problem}", file=sys.stderr)
        return EXIT_CANNOT_LISTEN
    url = _checked_database_url(settings)
    if url is None:
        return EXIT_NO_DATABASE
    os.environ["DATABASE_URL"] = url
    if not settings.secret_key and host not in LOOPBACK_HOSTS:
        print(f"relay: warning: no SECRET_KEY set, so anyone who can reach port {port} may read, change and "
              "delete messages and queues; set SECRET_KEY, or HOST=127.0.0.1 for this machine only",
              file=sys.stderr, flush=True)
    print(f"relay: serving on http://{host}:{port} (dashboard /dashboard, API /api, docs /api/reference)",
          flush=True)
    # After its graceful shutdown uvicorn raises the captured SIGTERM again for whatever handler it
    # found; with the default one the process would die by the signal (exit status 143).
    signal.signal(signal.SIGTERM, _exit_cleanly)
    uvicorn.run(
        "relayq.api.asgi:app", host=host, port=port, workers=args.workers if args.workers > 1 else None,
        loop="uvloop", http="relayq.api.protocol:RelayHttpProtocol", log_level=settings.log_level.lower(), access_log=args.access_log,
        timeout_graceful_shutdown=args.graceful_timeout, lifespan="on",
    )
    return 0


def _listen_problem(host: str, port: int) -> str | None:
    """Why uvicorn could not listen on host:port (bound as it binds), or None. Found only by
    uvicorn, a port in use came after "serving on" was printed, and as exit status 3, which
    says the database cannot be reached."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def _checked_database_url(settings: Settings) -> str | None:
    """The database URL once a connection to it works; None, with the reason printed, if not."""
    url = _database_url(settings)
    problem = asyncio.run(_database_problem(url, settings.connect_timeout))
    if problem:
        print(f"relay: cannot use the database {_without_password(url)}: {problem}", file=sys.stderr)
        return None
    return url


async def _database_problem(url: str, connect_timeout: float) -> str | None:
    """Why the database cannot be used, in one line, or None: a wrong URL is a message, not the
    traceback of a failed application start-up."""
    import asyncpg

    try:
        conn = await asyncpg.connect(url, timeout=connect_timeout)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return str(exc) or type(exc).__name__
    await conn.close()
    return None


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(":" + parts.password + "@", ":***@", 1)))


def _exit_cleanly(signum: int, frame: object) -> None:
    """SIGTERM after a graceful shutdown (or before serving started) is a clean stop: exit 0."""
    raise SystemExit(0)


def cmd_migrate(args: argparse.Namespace) -> int:
    """Apply pending migrations and exit."""
    from relayq.db.migrate import migrate_dsn

    settings = Settings.from_env()
    url = _checked_database_url(settings)
    if url is None:
        return EXIT_NO_DATABASE
    applied = asyncio.run(migrate_dsn(url))
    print(f"applied migrations: {applied}" if applied else "schema is up to date")
    return 0


def cmd_compact(args: argparse.Namespace) -> int:
    """Give back the space a drained backlog left in the message tables (relayq/db/compact.py)."""
    import asyncpg

    from relayq.db.compact import CompactRunning, NoRelaySchema, compact

    settings = Settings.from_env()
    if settings.uses_embedded_database:
        data_dir = _embedded_data_dir(settings)
        if not (data_dir / "PG_VERSION").exists():  # nothing there to compact: do not create a cluster
            print(f"relay: no database to compact: no embedded PostgreSQL in {data_dir}; set DATABASE_URL "
                  "(or POSTGRES_HOST), or RELAY_DATA_DIR to the server's data directory", file=sys.stderr)
            return EXIT_NO_DATABASE
    url = _checked_database_url(settings)
    if url is None:
        return EXIT_NO_DATABASE
    try:
        resized = asyncio.run(compact(url, dry_run=args.dry_run,
                                      progress=None if args.dry_run else lambda text: print(f"relay: {text}", flush=True)))
    except CompactRunning as exc:
        print(f"relay: {exc}", file=sys.stderr)
        return 1
    except NoRelaySchema as exc:
        print(f"relay: {exc}", file=sys.stderr)
        return EXIT_NO_DATABASE
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        # A lock or statement timeout of the role, a terminated session: one line, not a
        # traceback. An index it was rebuilding is left invalid; the next run drops it.
        print(f"relay: compact stopped: {type(exc).__name__}: {exc}; run it again to finish "
              "(directly against PostgreSQL, not through pgbouncer)", file=sys.stderr)
        return 1
    rows = [(r.table if r.kind == "table" else f"  {r.relation}", _mib(r.before),
             "dropped" if r.after is None else _mib(r.after)) for r in resized]
    rows.append(("total", _mib(sum(r.before for r in resized)), _mib(sum(r.after or 0 for r in resized))))
    width = max(len(name) for name, _, _ in rows)
    print(f"{'relation':<{width}}  {'before':>10}" + ("" if args.dry_run else f"  {'after':>10}"))
    for name, before, after in rows:
        print(f"{name:<{width}}  {before:>10}" + ("" if args.dry_run else f"  {after:>10}"))
    return 0


def _mib(size: int) -> str:
    return f"{size / 1048576:.2f} MiB"


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree."""
    parser = argparse.ArgumentParser(prog="relay", description="Relay Queue: a message broker on PostgreSQL")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--host", default=None, help="bind address (default HOST or 0.0.0.0)")
    serve.add_argument("--port", type=int, default=None, help="port (default PORT or 3001)")
    serve.add_argument("--workers", type=int, default=1, help="server processes sharing the port")
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.add_argument("--graceful-timeout", type=int, default=30, help="seconds to finish in-flight requests")
    serve.set_defaults(func=cmd_serve)
    migrate = sub.add_parser("migrate", help="apply database migrations and exit")
    migrate.set_defaults(func=cmd_migrate)
    compact = sub.add_parser(
        "compact", help="give back the space a drained backlog left (online: VACUUM TRUNCATE, REINDEX CONCURRENTLY)",
        description="Give back the space a drained backlog left in the message tables and the activity log, "
                    "while traffic goes on. Uses the server's database settings (DATABASE_URL or POSTGRES_*); "
                    "connect directly to PostgreSQL, not through pgbouncer. See docs/scaling.md, 'After a backlog'.")
    compact.add_argument("--dry-run", action="store_true", help="only print the current sizes")
    compact.set_defaults(func=cmd_compact)
    for module in ("relayq.bench.cli", "relayq.client.cli"):
        try:
            registrar = __import__(module, fromlist=["register"])
        except ImportError:
            continue
        registrar.register(sub)
        if hasattr(registrar, "add_global_options"):
            registrar.add_global_options(parser)  # `relay --url U queues` as well as `relay queues --url U`
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `relay` command."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    # The client's --url, --api-key and --json before the command (global_*) mean nothing to
    # serve, migrate, compact or bench; refuse them rather than ignore them (bench has its own --url).
    misplaced = ["--" + name[7:].replace("_", "-") for name in vars(args) if name.startswith("global_")]
    if misplaced and not getattr(args, "client_command", False):
        parser.error(f"{', '.join(misplaced)} before {args.command!r} is for the client commands; "
                     f"see relay {args.command} --help")
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"relay: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
