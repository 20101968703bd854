"""Client-side ``relay`` commands: worker, enqueue, dequeue, ack, nack, queues, stats, tail,
export and import.

They talk to a server over the REST API only, so they work against any Relay deployment.
``register()`` adds them to the main ``relay`` parser; ``main()`` runs them on their own
(``python -m relayq.client``).

Exit codes: 0 success (also ``relay worker`` stopped by SIGTERM), 1 the server refused (API
error), 2 bad usage or input (refused by the parser, or by the server as VALIDATION_ERROR or
INVALID_JSON), 3 the server cannot be reached, 4 nothing to dequeue, 130 interrupted by Ctrl-C
(SIGINT), even when a worker then drained gracefully.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO, TypeVar

import msgspec

from relayq.client import protocol
from relayq.client.client import Client
from relayq.client.errors import (
    APIError,
    RelayConnectionError,
    RelayError,
    UnauthorizedError,
    ValidationError,
)
from relayq.client.models import ActivityEntry, Event, Message, Queue
from relayq.client.output import Progress, clock, print_json, print_table, to_jsonable
from relayq.client.protocol import DEFAULT_URL, Call, Response
from relayq.client.worker import Handler, Worker

EXIT_OK = 0
EXIT_API_ERROR = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_EMPTY = 4
EXIT_INTERRUPTED = 130
# Messages per import request when the server does not say its MAX_BATCH_SIZE (its default).
IMPORT_CHUNK = 10_000

Command = Callable[[argparse.Namespace], int]
T = TypeVar("T")


class UsageError(Exception):
    """Bad input from the user (a file that is not JSON, a handler that cannot be imported)."""


def _bounded(kind: Callable[[str], float], low: float, high: float | None = None) -> Callable[[str], Any]:
    """An argparse type: ``kind`` within the API's documented range, else exit 2 before any request."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {kind.__name__} value: {text!r}") from None
        if value < low or (high is not None and value > high):
            limits = f"{low:g} to {high:g}" if high is not None else f"at least {low:g}"
            raise argparse.ArgumentTypeError(f"must be {limits}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


_PRIORITY = _bounded(int, 0, 9)
_BATCH_COUNT = _bounded(int, 1, 1000)
_POSITIVE_INT = _bounded(int, 1)
_NON_NEGATIVE_INT = _bounded(int, 0)
_NON_NEGATIVE = _bounded(float, 0)


def _actions(text: str) -> str | None:
    """An argparse type: a comma list of activity actions (API.md §8.3), None if it names none.

    The server answers an action the log never has with no entries, which looked like a quiet
    queue (`-a ack` for `acknowledge`): such a name gets a warning, with a suggestion. Only a
    warning: a newer server may log actions this client does not know.
    """
    names = [name.strip() for name in text.split(",") if name.strip()]
    for name in names:
        if name not in protocol.ACTIVITY_ACTIONS:
            close = [a for a in protocol.ACTIVITY_ACTIONS if a.startswith(name)] or difflib.get_close_matches(
                name, protocol.ACTIVITY_ACTIONS, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            print(f"relay: warning: no such activity action {name!r}{hint}; the actions are: "
                  + ", ".join(protocol.ACTIVITY_ACTIONS), file=sys.stderr)
    return ",".join(names) or None


# ---------------------------------------------------------------------------------------------
# Parsers


def _common_options(*, suppress: bool = False) -> argparse.ArgumentParser:
    """``--url``, ``--api-key`` and ``--json``, shared by every command.

    ``suppress`` is for a nested action (``queues list``): an option not given there must not
    overwrite the value given before the action (``relay queues --json list``).
    """
    default: Any = argparse.SUPPRESS if suppress else None
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("connection")
    group.add_argument("--url", default=default, help=f"server URL (env RELAY_URL, default {DEFAULT_URL})")
    group.add_argument("--api-key", default=default, help="API key (env RELAY_API_KEY)")
    group.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="machine-readable JSON output",
    )
    return parent


_CONNECTION_DEFAULTS: dict[str, Any] = {"url": None, "api_key": None, "json": False}


def add_global_options(parser: argparse.ArgumentParser) -> None:
    """Accept ``--url``, ``--api-key`` and ``--json`` before the command too (``relay --url U queues``).

    They land in ``global_url`` etc. (merged by ``_guarded``), not in ``url``: a command's own
    option would overwrite them with its default, and a command that does not use them
    (``serve``, or ``bench`` with its own ``--url``) can refuse them instead of ignoring them.
    """
    group = parser.add_argument_group("client commands (these options also work after the command)")
    group.add_argument(
        "--url",
        dest="global_url",
        metavar="URL",
        default=argparse.SUPPRESS,
        help="server URL (env RELAY_URL)",
    )
    group.add_argument(
        "--api-key",
        dest="global_api_key",
        metavar="API_KEY",
        default=argparse.SUPPRESS,
        help="API key (env RELAY_API_KEY)",
    )
    group.add_argument(
        "--json", dest="global_json", action="store_true", default=argparse.SUPPRESS, help="JSON output"
    )


def _merge_global_options(args: argparse.Namespace) -> None:
    """An option given after the command wins over the same option given before it."""
    for name, default in _CONNECTION_DEFAULTS.items():
        given_before = getattr(args, "global_" + name, default)
        if getattr(args, name, default) == default:
            setattr(args, name, given_before)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the client-side commands to the ``relay`` parser; each sets ``func(args) -> int``."""
    common = _common_options()
    nested = _common_options(suppress=True)

    def add(
        name: str, func: Command, help_text: str, *, parents: Sequence[argparse.ArgumentParser] = ()
    ) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = subparsers.add_parser(
            name, help=help_text, description=help_text, parents=[*parents] or [common]
        )
        parser.set_defaults(func=_guarded(func), client_command=True)
        return parser

    p = add("worker", cmd_worker, "run a handler function over one or more queues")
    p.add_argument("handler", help="the handler as module:function (the current directory is importable)")
    p.add_argument(
        "-q",
        "--queue",
        action="append",
        dest="queues",
        help="queue to consume (repeatable; default: default)",
    )
    p.add_argument(
        "-c", "--concurrency", type=_POSITIVE_INT, default=1, help="messages handled at once (default 1)"
    )
    p.add_argument(
        "--batch-size", type=_BATCH_COUNT, help="messages fetched per request (default: concurrency)"
    )
    p.add_argument(
        "--poll-timeout", type=_NON_NEGATIVE, default=5.0, help="long-poll seconds per fetch (default 5)"
    )
    p.add_argument("--ack-timeout", type=_NON_NEGATIVE, help="lease seconds (default: each message's own)")
    p.add_argument("--type", help="only messages of this type")
    p.add_argument("--consumer-id", help="consumer id recorded on each delivery (default host-pid)")
    p.add_argument(
        "--shutdown-timeout",
        type=_NON_NEGATIVE,
        default=30.0,
        help="seconds to finish in-flight messages on SIGTERM",
    )
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")

    p = add(
        "enqueue",
        cmd_enqueue,
        "enqueue a message (payload from an argument, a file or stdin) or a JSONL batch",
    )
    p.add_argument("payload", nargs="?", help="JSON payload; '-' or omitted reads stdin")
    p.add_argument("-q", "--queue", help="queue (default: default)")
    p.add_argument("-t", "--type", default=None, help="message type (default empty)")
    p.add_argument("-p", "--priority", type=_PRIORITY, help="0-9, higher first")
    p.add_argument("--ack-timeout", type=_NON_NEGATIVE_INT, help="lease seconds for this message")
    p.add_argument("--max-attempts", type=_POSITIVE_INT, help="deliveries before the dead-letter state")
    p.add_argument("--delay", type=_NON_NEGATIVE, help="seconds before the message becomes available")
    p.add_argument("--idempotency-key", help="a repeat with the same key creates nothing")
    p.add_argument("-f", "--file", help="read the payload from this file")
    p.add_argument("--string", action="store_true", help="send the payload text as a JSON string")
    p.add_argument("--batch", metavar="FILE", help="JSON Lines file ('-' for stdin) of messages to enqueue")
    p.add_argument("--payloads", action="store_true", help="with --batch: each line is a bare payload")
    p.add_argument(
        "--chunk-size",
        type=_BATCH_COUNT,
        default=1000,
        help="with --batch: messages per request (default 1000)",
    )

    p = add("dequeue", cmd_dequeue, "lease messages (prints them with their lock tokens)")
    p.add_argument("-q", "--queue", help="queue (default: default)")
    p.add_argument("-n", "--count", type=_BATCH_COUNT, default=1, help="how many (1-1000, default 1)")
    p.add_argument("-w", "--wait", type=_NON_NEGATIVE, default=0.0, help="long-poll seconds (default 0)")
    p.add_argument("-t", "--type", help="only messages of this type")
    p.add_argument("--ack-timeout", type=_NON_NEGATIVE, help="lease seconds")
    p.add_argument("--consumer-id", help="consumer id recorded on the delivery")
    p.add_argument("--ack", action="store_true", help="acknowledge at once (consume)")

    p = add("ack", cmd_ack, "acknowledge a leased message")
    p.add_argument("id", help="message id")
    p.add_argument("lock_token", nargs="?", help="lock token from the dequeue")

    p = add("nack", cmd_nack, "give a leased message back (requeue or dead-letter)")
    p.add_argument("id", help="message id")
    p.add_argument("lock_token", nargs="?", help="lock token from the dequeue")
    p.add_argument("-e", "--error", help="reason, recorded as last_error")
    p.add_argument("--delay", type=_NON_NEGATIVE, help="seconds before the message is available again")

    queues = add("queues", cmd_queues_list, "list and manage queues (default: list)")
    actions = queues.add_subparsers(dest="queues_action", metavar="ACTION")

    def add_action(name: str, func: Command, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = actions.add_parser(
            name, help=help_text, description=help_text, parents=[nested]
        )
        parser.set_defaults(func=_guarded(func))
        return parser

    add_action("list", cmd_queues_list, "list queues with their counts")
    p = add_action("show", cmd_queues_show, "show one queue")
    p.add_argument("name")
    for name, func, help_text in (
        ("create", cmd_queues_create, "create a queue"),
        ("update", cmd_queues_update, "change a queue's settings"),
    ):
        p = add_action(name, func, help_text)
        p.add_argument("name")
        if name == "create":
            p.add_argument("--type", dest="queue_type", choices=["standard", "unlogged", "partitioned"])
            p.add_argument("--partition-interval", choices=["hourly", "daily", "weekly"])
            p.add_argument("--retention", dest="retention_interval", help='e.g. "7 days"')
        p.add_argument("--ack-timeout", type=_POSITIVE_INT, help="lease seconds")
        p.add_argument("--max-attempts", type=_POSITIVE_INT, help="deliveries before the dead-letter state")
        p.add_argument("--retry-delay", type=_NON_NEGATIVE_INT, help="base seconds of the retry backoff")
        p.add_argument("--description")
    p = add_action("delete", cmd_queues_delete, "delete a queue and its messages")
    p.add_argument("name")
    p.add_argument("--force", action="store_true", help="even with queued or processing messages")
    p = add_action("purge", cmd_queues_purge, "delete a queue's messages, keep the queue")
    p.add_argument("name")
    p.add_argument(
        "--status", default="all", choices=["all", "queued", "processing", "dead", "acknowledged", "archived"]
    )
    p = add_action("rename", cmd_queues_rename, "rename a queue")
    p.add_argument("name")
    p.add_argument("new_name")

    p = add("stats", cmd_stats, "live table of queue depths and rates (Ctrl-C to stop)")
    p.add_argument("-q", "--queue", action="append", dest="queues", help="only these queues (repeatable)")
    p.add_argument(
        "-i", "--interval", type=_NON_NEGATIVE, default=2.0, help="seconds between refreshes (default 2)"
    )
    p.add_argument("--once", action="store_true", help="print one snapshot and exit")
    p.add_argument("--count", type=_POSITIVE_INT, help="stop after this many snapshots")

    p = add("tail", cmd_tail, "follow the activity log (or, with --events, the live event stream)")
    p.add_argument("-q", "--queue", help="only this queue")
    p.add_argument("-a", "--action", type=_actions, help="only these actions (comma list): "
                   + ", ".join(protocol.ACTIVITY_ACTIONS))
    p.add_argument(
        "-n", "--lines", type=_NON_NEGATIVE_INT, default=20, help="entries to show first (default 20)"
    )
    p.add_argument(
        "-i", "--interval", type=_NON_NEGATIVE, default=1.0, help="seconds between polls (default 1)"
    )
    p.add_argument("--events", action="store_true", help="follow Server-Sent Events instead of the log")
    p.add_argument("--no-follow", action="store_true", help="print the last entries and exit")

    p = add("export", cmd_export, "export messages of one status as a JSON file")
    p.add_argument(
        "status",
        nargs="?",
        default="main",
        choices=["main", "processing", "dead", "acknowledged", "archived"],
    )
    p.add_argument("-q", "--queue", help="only this queue")
    p.add_argument("-t", "--type", help="only this type (or a comma list)")
    p.add_argument("-o", "--output", help="file to write (default stdout)")

    p = add("import", cmd_import, "import messages from an exported JSON file")
    p.add_argument("file", help="JSON file ('-' for stdin)")
    p.add_argument("--chunk-size", type=_POSITIVE_INT,
                   help="messages per request (default: the server's MAX_BATCH_SIZE, from /queue/config); "
                        "each request is all or nothing")


def build_parser() -> argparse.ArgumentParser:
    """A ``relay`` parser with only the client-side commands (for ``python -m relayq.client``)."""
    parser = argparse.ArgumentParser(prog="relay", description="Relay Queue client commands")
    add_global_options(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the command; returns the exit code."""
    args = build_parser().parse_args(argv)
    func: Command = args.func
    return func(args)


# ---------------------------------------------------------------------------------------------
# Error handling


def _guarded(func: Command) -> Command:
    """Turn exceptions into one clear line on stderr and a documented exit code."""

    def run(args: argparse.Namespace) -> int:
        _merge_global_options(args)
        try:
            return func(args)
        except UsageError as exc:
            _error(str(exc))
            return EXIT_USAGE
        except UnauthorizedError as exc:
            _error(f"{exc.message} — pass --api-key or set RELAY_API_KEY")
            return EXIT_API_ERROR
        except ValidationError as exc:
            # The server found the input invalid (a limit the parser does not know): bad input.
            _error(f"{exc.message} ({exc.code})")
            return EXIT_USAGE
        except APIError as exc:
            _error(f"{exc.message} ({exc.code}){_hint(exc.code, args)}")
            return EXIT_API_ERROR
        except RelayConnectionError as exc:
            _error(f"cannot reach Relay at {_url(args)}: {exc}")
            return EXIT_UNREACHABLE
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED
        except BrokenPipeError:
            # `relay tail | head`: the reader left; not an error worth a traceback.
            sys.stderr.close()
            return EXIT_OK

    run.__doc__ = func.__doc__
    return run


def _hint(code: str | None, args: argparse.Namespace) -> str:
    """What to do about an API error, in the CLI's terms (the server's text speaks HTTP)."""
    if code == "QUEUE_NOT_EMPTY":
        return " — pass --force to delete the queue with all its messages"
    if code == "ROUTE_NOT_FOUND":
        return f" — is {_url(args)} the server's root URL (like {DEFAULT_URL})?"
    return ""


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _error(text: str) -> None:
    print(f"relay: error: {text}", file=sys.stderr)


def _url(args: argparse.Namespace) -> str:
    return str(getattr(args, "url", None) or os.environ.get("RELAY_URL") or DEFAULT_URL)


def _client(args: argparse.Namespace) -> Client:
    return Client(getattr(args, "url", None), api_key=getattr(args, "api_key", None))


def _wants_json(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "json", False))


def _as_sent(client: Client, call: Call[T], field: str | None = None) -> tuple[T, msgspec.Raw]:
    """``call``'s typed result, and the JSON the server sent (its ``field``) for ``--json``.

    ``--json`` prints the server's JSON as sent, not the typed result encoded again: that would
    rewrite its timestamps (``.613Z`` as ``.613000Z``) and drop the fields the models leave out.
    """

    def parse(response: Response) -> tuple[T, msgspec.Raw]:
        result = call.parse(response)  # raises the API error first
        if field is None:
            return result, msgspec.Raw(response.body)
        return result, msgspec.json.decode(response.body, type=dict[str, msgspec.Raw])[field]

    return client.execute(Call(call.request, parse))


def _items(array: msgspec.Raw) -> list[msgspec.Raw]:
    """The elements of a JSON array, each as sent."""
    return msgspec.json.decode(array, type=list[msgspec.Raw])


def _parse_json(text: str, source: str, hint: str = "") -> Any:
    """``text`` decoded; a ``UsageError`` naming ``source`` (and ``hint``: what this command expects)."""
    try:
        return msgspec.json.decode(text.encode())
    except msgspec.DecodeError as exc:
        raise UsageError(f"{source} is not valid JSON ({exc})" + (f"; {hint}" if hint else "")) from exc


def _stdin() -> TextIO:
    """Standard input, or a usage error when it is closed (`<&-`: Python then has no sys.stdin)."""
    if sys.stdin is None:
        raise UsageError("standard input is closed: give the data as an argument or a file")
    return sys.stdin


def _read_text(path: str) -> str:
    if path == "-":
        return _stdin().read()
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from exc


# ---------------------------------------------------------------------------------------------
# worker


def load_handler(spec: str) -> Handler:
    """Import ``module:function`` (also ``module:object.method``) from the current directory."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise UsageError(f"handler must look like module:function, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"cannot import {module_name!r}: {exc}") from exc
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError as exc:
            raise UsageError(f"{module_name!r} has no attribute {attribute!r}") from exc
    if not callable(target):
        raise UsageError(f"{spec} is not callable")
    handler: Handler = target
    return handler


def cmd_worker(args: argparse.Namespace) -> int:
    """Run a worker until SIGTERM (exit 0) or Ctrl-C (exit 130)."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # Set the level explicitly: basicConfig is a no-op when the `relay` entry point configured logging.
    logging.getLogger().setLevel(args.log_level.upper())
    worker = Worker(
        load_handler(args.handler),
        args.queues or ["default"],
        url=args.url,
        api_key=args.api_key,
        concurrency=args.concurrency,
        batch_size=args.batch_size,
        poll_timeout=args.poll_timeout,
        ack_timeout=args.ack_timeout,
        type=args.type,
        consumer_id=args.consumer_id,
        shutdown_timeout=args.shutdown_timeout,
    )
    worker.run()
    # SIGTERM is how supervisors stop a worker: a clean stop. Ctrl-C is an interruption, as for
    # every other command, even though the worker drained gracefully.
    return EXIT_INTERRUPTED if worker.stop_signal == signal.SIGINT else EXIT_OK


# ---------------------------------------------------------------------------------------------
# enqueue, dequeue, ack, nack


def _item_defaults(args: argparse.Namespace) -> dict[str, Any]:
    """The enqueue options given on the command line, as API field names."""
    values = {
        "queue": args.queue,
        "type": args.type,
        "priority": args.priority,
        "ackTimeout": args.ack_timeout,
        "maxAttempts": args.max_attempts,
        "delaySeconds": args.delay,
    }
    return {key: value for key, value in values.items() if value is not None}


def _batch_items(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    """Messages of a JSON Lines file: message objects, or bare payloads with ``--payloads``."""
    defaults = {"type": "", **_item_defaults(args)}
    stream = _stdin() if args.batch == "-" else None
    try:
        lines: Iterable[str] = stream if stream is not None else Path(args.batch).open()
    except OSError as exc:
        raise UsageError(f"cannot read {args.batch}: {exc.strerror}") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        value = _parse_json(line, f"{args.batch} line {number}")
        if args.payloads:
            yield {**defaults, "payload": value}
        elif isinstance(value, dict) and "payload" in value:
            yield {**defaults, **value}
        else:
            raise UsageError(
                f"{args.batch} line {number}: expected an object with a payload (use --payloads for bare payloads)"
            )


def _chunks(items: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _count_lines(path: str) -> int | None:
    if path == "-":
        return None
    try:
        with open(path, "rb") as file:
            return sum(1 for line in file if line.strip())
    except OSError:
        return None


def cmd_enqueue(args: argparse.Namespace) -> int:
    """Enqueue one message, or a JSON Lines batch with a progress bar."""
    with _client(args) as client:
        if args.batch:
            progress = Progress(_count_lines(args.batch), label="enqueue ")
            ids: list[str] = []
            try:
                for chunk in _chunks(_batch_items(args), max(1, args.chunk_size)):
                    ids.extend(client.enqueue_batch(chunk).ids)
                    progress.advance(len(chunk))
            finally:
                progress.close()
            if _wants_json(args):
                print_json({"count": len(ids), "ids": ids})
            else:
                print(f"enqueued {len(ids)} messages in {progress.elapsed:.2f}s")
            return EXIT_OK

        if args.file:
            text, source, place = _read_text(args.file), args.file, args.file
        elif args.payload is None or args.payload == "-":
            if args.payload is None and _stdin().isatty():
                raise UsageError("give a payload, --file, --batch, or pipe the payload on stdin")
            text, source, place = _stdin().read(), "the payload on stdin", "stdin"
        else:
            text, source, place = args.payload, "the payload", "the argument"
        if args.string:
            payload = text.rstrip("\n")
        elif not text.strip():
            # Not "not valid JSON (Input data was truncated)": nothing came at all.
            raise UsageError(f"no payload given ({place} is empty); give a JSON payload, --file or --batch")
        else:
            payload = _parse_json(text, source, "use --string to send text")
        result = client.enqueue(
            payload,
            type=args.type or "",
            queue=args.queue,
            priority=args.priority,
            ack_timeout=args.ack_timeout,
            max_attempts=args.max_attempts,
            delay=args.delay,
            idempotency_key=args.idempotency_key,
        )
        if _wants_json(args):
            print_json(result)
        else:
            note = " (duplicate ignored)" if result.duplicate else ""
            print(f"enqueued {result.id} to {result.queue}{note}")
        return EXIT_OK


def _print_messages(messages: list[Message]) -> None:
    rows = [
        [
            m.id,
            m.queue_name,
            m.type,
            m.priority,
            f"{m.attempt_count}/{m.max_attempts}",
            m.lock_token,
            m.payload,
        ]
        for m in messages
    ]
    print_table(["id", "queue", "type", "prio", "attempt", "lock_token", "payload"], rows)


def cmd_dequeue(args: argparse.Namespace) -> int:
    """Lease messages and print them; exit 4 when none arrived."""
    with _client(args) as client:
        options: dict[str, Any] = {
            "wait": args.wait,
            "type": args.type,
            "consumer_id": args.consumer_id,
            "ack_timeout": args.ack_timeout,
        }
        if args.count == 1:
            message, sent = _as_sent(client, protocol.dequeue(args.queue, **options))
            messages, sent_messages = ([message], [sent]) if message is not None else ([], [])
        else:
            messages, sent = _as_sent(
                client, protocol.dequeue_batch(args.count, args.queue, **options), "messages"
            )
            sent_messages = _items(sent)
        if args.ack and messages:
            result = client.ack_batch(messages)
            for failure in result.failed:
                _error(f"ack of {failure.id} failed: {failure.error} ({failure.code})")
        if _wants_json(args):
            for sent in sent_messages:
                print_json(sent)
        elif messages:
            _print_messages(messages)
        else:
            print("no message", file=sys.stderr)
        return EXIT_OK if messages else EXIT_EMPTY


def cmd_ack(args: argparse.Namespace) -> int:
    """Acknowledge one message."""
    with _client(args) as client:
        client.ack(args.id, args.lock_token)
        if _wants_json(args):
            print_json({"id": args.id, "acknowledged": True})
        else:
            print(f"acknowledged {args.id}")
    return EXIT_OK


def cmd_nack(args: argparse.Namespace) -> int:
    """Nack one message: requeued while attempts remain, else dead-lettered."""
    with _client(args) as client:
        result = client.nack(args.id, args.lock_token, error=args.error, delay=args.delay)
        if _wants_json(args):
            print_json({"id": args.id, **to_jsonable(result)})
        else:
            print(f"{'requeued' if result.requeued else 'moved to dead letter'}: {args.id}")
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# queues


def _print_queues(queues: list[Queue]) -> None:
    rows = [
        [
            q.name,
            q.queue_type,
            q.message_count,
            q.processing_count,
            q.dead_count,
            q.ack_timeout_seconds,
            q.max_attempts,
            q.description,
        ]
        for q in queues
    ]
    print_table(
        ["name", "type", "queued", "processing", "dead", "ack_timeout", "max_attempts", "description"], rows
    )


def _show_queue(args: argparse.Namespace, answer: tuple[Queue, msgspec.Raw], note: str = "") -> int:
    queue, sent = answer
    if _wants_json(args):
        print_json(sent)
    else:
        if note:
            print(note)
        _print_queues([queue])
    return EXIT_OK


def cmd_queues_list(args: argparse.Namespace) -> int:
    """List queues with their counts."""
    with _client(args) as client:
        queues, sent = _as_sent(client, protocol.list_queues(), "queues")
    if _wants_json(args):
        print_json(sent)
    else:
        _print_queues(queues)
    return EXIT_OK


def cmd_queues_show(args: argparse.Namespace) -> int:
    """Show one queue."""
    with _client(args) as client:
        return _show_queue(args, _as_sent(client, protocol.get_queue(args.name)))


def cmd_queues_create(args: argparse.Namespace) -> int:
    """Create a queue."""
    with _client(args) as client:
        call = protocol.create_queue(
            args.name,
            queue_type=args.queue_type,
            ack_timeout=args.ack_timeout,
            max_attempts=args.max_attempts,
            retry_delay=args.retry_delay,
            partition_interval=args.partition_interval,
            retention_interval=args.retention_interval,
            description=args.description,
        )
        answer = _as_sent(client, call, "queue")
        return _show_queue(args, answer, f"created queue {answer[0].name}")


def cmd_queues_update(args: argparse.Namespace) -> int:
    """Change a queue's settings."""
    with _client(args) as client:
        call = protocol.update_queue(
            args.name,
            ack_timeout=args.ack_timeout,
            max_attempts=args.max_attempts,
            retry_delay=args.retry_delay,
            description=args.description,
        )
        answer = _as_sent(client, call, "queue")
        return _show_queue(args, answer, f"updated queue {answer[0].name}")


def cmd_queues_delete(args: argparse.Namespace) -> int:
    """Delete a queue."""
    with _client(args) as client:
        deleted = client.delete_queue(args.name, force=args.force)
    if _wants_json(args):
        print_json({"name": args.name, "deleted_messages": deleted})
    else:
        print(f"deleted queue {args.name} ({deleted} messages)")
    return EXIT_OK


def cmd_queues_purge(args: argparse.Namespace) -> int:
    """Delete a queue's messages."""
    with _client(args) as client:
        deleted = client.purge_queue(args.name, status=args.status)
    if _wants_json(args):
        print_json({"name": args.name, "deleted_count": deleted})
    else:
        print(f"purged {deleted} messages from {args.name}")
    return EXIT_OK


def cmd_queues_rename(args: argparse.Namespace) -> int:
    """Rename a queue."""
    with _client(args) as client:
        answer = _as_sent(client, protocol.rename_queue(args.name, args.new_name), "queue")
        return _show_queue(args, answer, f"renamed {args.name} to {answer[0].name}")


# ---------------------------------------------------------------------------------------------
# stats


class QueueRates:
    """Depths of every queue plus rates derived from two snapshots.

    The API exposes counts, not counters, so rates come from differences: messages entering
    (the growth of the total over every status) and messages done (the growth of acknowledged).
    Deletions and retention make a rate dip; it never goes below zero.
    """

    def __init__(self, client: Client, only: Sequence[str] | None) -> None:
        self._client = client
        self._only = set(only) if only else None
        self._previous: dict[str, tuple[float, int, int]] = {}

    def snapshot(self) -> list[dict[str, Any]]:
        """One row per queue: depths per status and in/s, done/s since the last snapshot."""
        rows: list[dict[str, Any]] = []
        for queue in self._client.list_queues():
            if self._only is not None and queue.name not in self._only:
                continue
            status = self._client.queue_status(queue.name)
            now = time.monotonic()
            total = status.queued + status.processing + status.acknowledged + status.dead + status.archived
            before = self._previous.get(queue.name)
            self._previous[queue.name] = (now, total, status.acknowledged)
            elapsed = now - before[0] if before else 0.0
            rows.append(
                {
                    "queue": queue.name,
                    "type": queue.queue_type,
                    "queued": status.queued,
                    "processing": status.processing,
                    "dead": status.dead,
                    "acknowledged": status.acknowledged,
                    "in_per_s": max(0.0, (total - before[1]) / elapsed) if before and elapsed else None,
                    "done_per_s": max(0.0, (status.acknowledged - before[2]) / elapsed)
                    if before and elapsed
                    else None,
                }
            )
        return rows


def _stats_table(rows: list[dict[str, Any]]) -> None:
    headers = ["queue", "type", "queued", "processing", "dead", "acknowledged", "in/s", "done/s"]
    print_table(headers, [[*list(row.values())[:6], row["in_per_s"], row["done_per_s"]] for row in rows])


def cmd_stats(args: argparse.Namespace) -> int:
    """Print queue depths and rates, refreshing in place until Ctrl-C."""
    live = sys.stdout.isatty() and not args.once and not _wants_json(args)
    limit = 1 if args.once else args.count
    shown = 0
    with _client(args) as client:
        rates = QueueRates(client, args.queues)
        try:
            while True:
                rows = rates.snapshot()
                if _wants_json(args):
                    print_json({"timestamp": time.time(), "queues": rows})
                else:
                    if live:
                        sys.stdout.write("\x1b[H\x1b[2J")  # home and clear: redraw in place
                        print(
                            f"Relay {client.url}   {time.strftime('%H:%M:%S')}   every {args.interval:g}s, Ctrl-C to stop\n"
                        )
                    _stats_table(rows)
                    if not live and limit != 1:
                        print()
                    sys.stdout.flush()
                shown += 1
                if limit is not None and shown >= limit:
                    return EXIT_OK
                time.sleep(args.interval)
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED


# ---------------------------------------------------------------------------------------------
# tail


def _activity_line(entry: ActivityEntry) -> str:
    parts = [clock(entry.timestamp), f"{entry.action:<16}", entry.queue or "-", entry.message_id or "-"]
    if entry.consumer_id:
        parts.append(f"by {entry.consumer_id}")
    if entry.attempt_count is not None:
        parts.append(f"attempt {entry.attempt_count}")
    if entry.error_reason:
        parts.append(f"error: {entry.error_reason}")
    if entry.anomaly is not None:
        parts.append(f"[{entry.anomaly.severity}: {entry.anomaly.type}]")
    return "  ".join(parts)


def _event_line(event: Event) -> str:
    data = event.data if isinstance(event.data, dict) else {}
    payload = data.get("payload") if isinstance(data.get("payload"), dict) else {}
    assert isinstance(payload, dict)
    timestamp = data.get("timestamp")
    parts = [
        clock(timestamp / 1000 if isinstance(timestamp, (int, float)) else None),
        f"{data.get('type', event.event)!s:<12}",
        str(data.get("queue") or "-"),
        str(payload.get("status") or "-"),
        f"count {payload.get('count', 0)}",
    ]
    ids = payload.get("ids")
    if isinstance(ids, list) and ids:
        shown = ", ".join(str(i) for i in ids[:5])
        parts.append(shown + (f" (+{len(ids) - 5})" if len(ids) > 5 else ""))
    return "  ".join(parts)


SentEntry = tuple[ActivityEntry, msgspec.Raw]
"""An activity entry, typed for the text line and as sent for ``--json``."""


def _activity_page(client: Client, args: argparse.Namespace, limit: int, offset: int = 0) -> list[SentEntry]:
    """A page of the activity log (newest first) matching the command's filters."""
    call = protocol.activity(queue=args.queue, action=args.action, limit=limit, offset=offset)
    page, sent = _as_sent(client, call, "logs")
    return list(zip(page.logs, _items(sent), strict=True))


def _log_id(entry: SentEntry) -> int:
    return int(entry[0].log_id)


def _new_entries(client: Client, args: argparse.Namespace, after: int) -> list[SentEntry]:
    """Entries with a log id above ``after``, oldest first (pages back until it finds ``after``)."""
    collected: list[SentEntry] = []
    offset = 0
    for _ in range(20):
        page = _activity_page(client, args, 500, offset)
        fresh = [e for e in page if _log_id(e) > after]
        collected.extend(fresh)
        if len(fresh) < len(page) or len(page) < 500:
            break
        offset += 500
    return sorted(collected, key=_log_id)


def cmd_tail(args: argparse.Namespace) -> int:
    """Print recent activity, then follow new entries (or the live event stream)."""
    emit_json = _wants_json(args)
    with _client(args) as client:
        try:
            if args.events:
                for event in client.events():
                    if event.event != "queue-update":
                        continue
                    if args.queue and isinstance(event.data, dict) and event.data.get("queue") != args.queue:
                        continue
                    if emit_json:
                        print_json(event.data)
                    else:
                        print(_event_line(event), flush=True)
                return EXIT_OK
            page = _activity_page(client, args, max(1, min(args.lines, 1000)))
            entries = sorted(page, key=_log_id)[-args.lines :] if args.lines > 0 else []
            last = max((_log_id(e) for e in page), default=0)
            while True:
                for entry, sent in entries:
                    if emit_json:
                        print_json(sent)
                    else:
                        print(_activity_line(entry), flush=True)
                if args.no_follow:
                    return EXIT_OK
                time.sleep(args.interval)
                entries = _new_entries(client, args, last)
                if entries:
                    last = _log_id(entries[-1])
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED


# ---------------------------------------------------------------------------------------------
# export, import


def cmd_export(args: argparse.Namespace) -> int:
    """Write every message of one status as a JSON array (the server's export format)."""
    with _client(args) as client:
        messages, sent = _as_sent(
            client, protocol.export_messages(args.status, queue=args.queue, type=args.type)
        )
    data = msgspec.json.format(sent, indent=2) + b"\n"  # the server's file, re-spaced at most
    if args.output and args.output != "-":
        Path(args.output).write_bytes(data)
        print(f"exported {_count(len(messages), 'message')} to {args.output}", file=sys.stderr)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    """Import messages from a JSON file (an array of messages, as export writes)."""
    content = _stdin().buffer.read() if args.file == "-" else _read_bytes(args.file)
    source = "stdin" if args.file == "-" else args.file
    if not content.strip():
        raise UsageError(f"nothing to import ({source} is empty)")
    # Fail here, clearly, not on the server.
    parsed = _parse_json(
        content.decode("utf-8", "replace"),
        source,
        "expected a JSON array of messages, as relay export writes",
    )
    with _client(args) as client:
        chunk = args.chunk_size
        if chunk is None and isinstance(parsed, list) and len(parsed) > 1:
            chunk = client.server_config().max_batch_size or IMPORT_CHUNK
        if not isinstance(parsed, list) or chunk is None or len(parsed) <= chunk:
            count = client.import_messages(content)
        else:
            # The server takes at most MAX_BATCH_SIZE messages per import; a larger export goes
            # in chunks, each all or nothing. A failure says how many were already imported.
            count = 0
            for start in range(0, len(parsed), chunk):
                try:
                    count += client.import_messages(msgspec.json.encode(parsed[start:start + chunk]))
                except RelayError:
                    print(f"relay: messages {start} to {min(start + chunk, len(parsed)) - 1} were refused (item "
                          f"numbers in the error count from {start}); {count} before them were imported, "
                          "so import only the rest again", file=sys.stderr)
                    raise
    if _wants_json(args):
        print_json({"count": count})
    else:
        print(f"imported {_count(count, 'message')} (new ids, queued)")
    return EXIT_OK


def _read_bytes(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from exc
