"""The client-side ``relay`` commands against a real server."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from relayq.client import Client
from relayq.client.cli import (
    EXIT_API_ERROR,
    EXIT_EMPTY,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    main,
)
from tests.client.client_support import cli_env, run_cli, skip_unless_served


class CLI:
    """Runs ``relay`` commands in-process against the live server and captures their output."""

    def __init__(self, url: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.url = url
        self.capsys = capsys

    def __call__(self, *args: str, expect: int = EXIT_OK) -> str:
        self.capsys.readouterr()
        command, *rest = args
        if command == "queues" and rest and not rest[0].startswith("-"):
            argv = [command, rest[0], "--url", self.url, *rest[1:]]
        else:
            argv = [command, "--url", self.url, *rest]
        code = main(argv)
        out, err = self.capsys.readouterr()
        assert code == expect, f"relay {' '.join(args)} exited {code}\n{out}\n{err}"
        return out + err

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json"))

    def json_lines(self, *args: str) -> list[Any]:
        return [json.loads(line) for line in self(*args, "--json").splitlines() if line.strip()]


@pytest.fixture
def cli(relay_url: str, capsys: pytest.CaptureFixture[str]) -> CLI:
    return CLI(relay_url, capsys)


def test_queue_commands(cli: CLI, client: Client, make_queue: Callable[..., str]) -> None:
    name = make_queue()
    created = cli.json("queues", "create", name + "-x", "--ack-timeout", "5", "--max-attempts", "2")
    assert (created["name"], created["ack_timeout_seconds"], created["max_attempts"]) == (name + "-x", 5, 2)
    assert "updated queue" in cli("queues", "update", name + "-x", "--description", "hello")
    table = cli("queues")
    assert "NAME" in table and name + "-x" in table and "hello" in table
    assert name in [q["name"] for q in cli.json("queues", "list")]
    assert cli.json("queues", "show", name)["name"] == name
    assert "renamed" in cli("queues", "rename", name + "-x", name + "-y")
    client.enqueue(1, queue=name + "-y")
    assert "QUEUE_NOT_EMPTY) — pass --force" in cli("queues", "delete", name + "-y", expect=EXIT_API_ERROR)
    assert cli.json("queues", "purge", name + "-y", "--status", "queued")["deleted_count"] == 1
    assert "deleted queue" in cli("queues", "delete", name + "-y")
    assert "QUEUE_EXISTS" in cli("queues", "create", name, expect=EXIT_API_ERROR)
    assert "QUEUE_NOT_FOUND" in cli("queues", "show", name + "-y", expect=EXIT_API_ERROR)


def test_enqueue_dequeue_ack_nack(
    cli: CLI, make_queue: Callable[..., str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = make_queue(max_attempts=5)
    first = cli.json("enqueue", '{"to": "a@b.c"}', "--queue", queue, "--type", "email", "--priority", "7")
    assert first["queue"] == queue
    payload_file = tmp_path / "payload.json"
    payload_file.write_text('{"from": "file"}')
    assert "enqueued" in cli("enqueue", "--file", str(payload_file), "-q", queue)
    monkeypatch.setattr("sys.stdin", io.StringIO("[1, 2, 3]"))
    assert "enqueued" in cli("enqueue", "-", "-q", queue)
    assert "enqueued" in cli("enqueue", "plain text", "--string", "-q", queue)
    assert "not valid JSON" in cli("enqueue", "{oops", "-q", queue, expect=EXIT_USAGE)

    [message] = cli.json_lines("dequeue", "-q", queue)
    assert message["id"] == first["id"] and message["payload"] == {"to": "a@b.c"} and message["lock_token"]
    assert "LOCK_LOST" in cli("ack", message["id"], "wrong-token", expect=EXIT_API_ERROR)
    assert "acknowledged" in cli("ack", message["id"], message["lock_token"])

    rest = cli.json_lines("dequeue", "-q", queue, "-n", "10")
    assert sorted(json.dumps(m["payload"], separators=(",", ":")) for m in rest) == sorted(
        ['{"from":"file"}', "[1,2,3]", '"plain text"']
    )
    result = cli.json("nack", rest[0]["id"], rest[0]["lock_token"], "--error", "try later")
    assert result["requeued"] is True
    table = cli("dequeue", "-q", queue, "--ack")
    assert "LOCK_TOKEN" in table and rest[0]["id"] in table
    assert "no message" in cli("dequeue", "-q", queue, expect=EXIT_EMPTY)


def test_json_output_is_what_the_server_sent(
    cli: CLI, client: Client, make_queue: Callable[..., str], api: httpx.Client
) -> None:
    queue = make_queue()
    client.enqueue_batch([{"type": "j", "payload": {"n": n}} for n in range(2)], queue=queue)
    done = client.dequeue(queue)
    assert done is not None
    client.ack(done)
    # Timestamps keep the server's text ("...55.613Z", not "...55.613000Z"); no field is dropped
    # (acknowledged_count, archived_count, ...).
    shown = cli.json("queues", "show", queue)
    assert shown == api.get(f"/queues/{queue}").json() and shown["acknowledged_count"] == 1
    assert client.get_queue(queue).acknowledged_count == 1  # the model has the count too
    [listed] = [q for q in cli.json("queues") if q["name"] == queue]
    [sent] = [q for q in api.get("/queues").json()["queues"] if q["name"] == queue]
    assert listed == sent
    [leased] = cli.json_lines("dequeue", "-q", queue)
    exported = api.get("/queue/processing/export", params={"queueName": queue}).json()
    assert [leased] == exported and leased["locked_until"]
    assert json.loads(cli("export", "processing", "-q", queue)) == exported


def test_enqueue_batch_from_jsonl(
    cli: CLI, client: Client, make_queue: Callable[..., str], tmp_path: Path
) -> None:
    queue = make_queue()
    lines = tmp_path / "batch.jsonl"
    lines.write_text(
        "".join(
            json.dumps({"type": "b", "payload": {"n": i}, "priority": i % 10}) + "\n" for i in range(2500)
        )
    )
    result = cli.json("enqueue", "--batch", str(lines), "-q", queue)
    assert result["count"] == 2500 and len(result["ids"]) == 2500
    payloads = tmp_path / "payloads.jsonl"
    payloads.write_text('1\n"two"\n\n{"three": 3}\n')
    assert "enqueued 3 messages" in cli(
        "enqueue", "--batch", str(payloads), "--payloads", "-q", queue, "-t", "bare"
    )
    assert client.get_queue(queue).message_count == 2503
    assert "expected an object" in cli("enqueue", "--batch", str(payloads), "-q", queue, expect=EXIT_USAGE)


def test_stats_tail_export_import(
    cli: CLI, client: Client, make_queue: Callable[..., str], tmp_path: Path
) -> None:
    queue = make_queue()
    target = make_queue()
    client.enqueue_batch([{"type": "s", "payload": i} for i in range(4)], queue=queue)
    message = client.dequeue(queue)
    assert message is not None
    client.ack(message)

    [snapshot] = cli.json_lines("stats", "--once", "-q", queue)
    [row] = snapshot["queues"]
    assert (row["queue"], row["queued"], row["acknowledged"]) == (queue, 3, 1)
    snapshots = cli.json_lines("stats", "--count", "2", "--interval", "0.1", "-q", queue)
    assert snapshots[1]["queues"][0]["in_per_s"] == 0.0
    assert "QUEUED" in cli("stats", "--once", "-q", queue)

    exported = tmp_path / "export.json"
    assert "exported 3 messages" in cli("export", "main", "-q", queue, "-o", str(exported))
    messages = json.loads(exported.read_text())
    for item in messages:
        item["queue_name"] = target
    exported.write_text(json.dumps(messages))
    assert cli.json("import", str(exported)) == {"count": 3}
    assert client.get_queue(target).message_count == 3
    # An export larger than the server's per-import limit (MAX_BATCH_SIZE, 10,000) goes in chunks.
    exported.write_text(json.dumps([{"queue_name": target, "type": "t", "payload": i} for i in range(10_001)]))
    assert cli.json("import", str(exported)) == {"count": 10_001}
    assert client.get_queue(target).message_count == 10_004
    exported.write_text(json.dumps(messages[:1]))
    assert cli("import", str(exported)).strip() == "imported 1 message (new ids, queued)"


def test_tail(cli: CLI, client: Client, make_queue: Callable[..., str], api: httpx.Client) -> None:
    skip_unless_served(lambda: client.activity(limit=1))
    queue = make_queue()
    client.enqueue(1, queue=queue)
    message = client.dequeue(queue)
    assert message is not None
    client.ack(message)
    deadline = time.monotonic() + 3
    while True:
        entries = cli.json_lines("tail", "--no-follow", "-q", queue, "-n", "50")
        if "acknowledge" in [e["action"] for e in entries] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert {"enqueue", "dequeue", "acknowledge"} <= {e["action"] for e in entries}
    logs = api.get("/queue/activity", params={"queue_name": queue, "limit": 50}).json()["logs"]
    assert entries == sorted(logs, key=lambda e: int(e["log_id"]))  # every field, as the server sent it
    assert "acknowledge" in cli("tail", "--no-follow", "-q", queue, "--action", "acknowledge")


def test_cli_errors_and_exit_codes(relay_url: str, tmp_path: Path) -> None:
    unreachable = run_cli(relay_url, "queues", "--url", "http://127.0.0.1:9")
    assert unreachable.returncode == EXIT_UNREACHABLE and "cannot reach Relay" in unreachable.stderr
    wrong_root = run_cli(relay_url, "queues", "--url", relay_url + "/dashboard")
    assert wrong_root.returncode == EXIT_API_ERROR and "ROUTE_NOT_FOUND) — is " in wrong_root.stderr
    assert "the server's root URL" in wrong_root.stderr
    missing = run_cli(relay_url, "enqueue", "1", "-q", "no-such-queue-anywhere")
    assert missing.returncode == EXIT_API_ERROR and "QUEUE_NOT_FOUND" in missing.stderr
    assert "Traceback" not in missing.stderr
    bad_handler = run_cli(relay_url, "worker", "nomodule_here:handle")
    assert bad_handler.returncode == EXIT_USAGE and "cannot import" in bad_handler.stderr
    usage = run_cli(relay_url, "dequeue", "--count", "many")
    assert usage.returncode == EXIT_USAGE
    # Bad input is exit 2, whether the parser knows the limit or only the server does.
    priority = run_cli(relay_url, "enqueue", '"x"', "-p", "12")
    assert priority.returncode == EXIT_USAGE and "must be 0 to 9" in priority.stderr
    count = run_cli(relay_url, "dequeue", "-n", "0")
    assert count.returncode == EXIT_USAGE and "must be 1 to 1000" in count.stderr
    # An action the log never has: the server answers with nothing, like a quiet queue; warned.
    action = run_cli(relay_url, "tail", "--no-follow", "-a", "dequeue,ack")
    assert action.returncode == EXIT_OK and "no such activity action 'ack' (did you mean 'acknowledge'?)" in action.stderr
    long_key = run_cli(relay_url, "enqueue", "1", "--idempotency-key", "k" * 300)
    assert long_key.returncode == EXIT_USAGE and "VALIDATION_ERROR" in long_key.stderr
    for closed in (["enqueue", "-q", "default"], ["import", "-"]):  # `<&-`: Python has no sys.stdin
        done = subprocess.run(["bash", "-c", 'exec "$0" -m relayq.client "$@" <&-', sys.executable, *closed],
                              env=cli_env(relay_url), capture_output=True, text=True, timeout=30)
        assert done.returncode == EXIT_USAGE and "standard input is closed" in done.stderr, done.stderr
    empty = run_cli(relay_url, "enqueue", "-q", "default", input="")
    assert empty.returncode == EXIT_USAGE and "no payload given (stdin is empty)" in empty.stderr
    garbage = run_cli(relay_url, "import", "-", input="garbage\n")
    assert garbage.returncode == EXIT_USAGE and "not valid JSON" in garbage.stderr
    assert "--string" not in garbage.stderr and "JSON array of messages" in garbage.stderr
    piped = run_cli(relay_url, "enqueue", "-q", "default", "--json", input='{"piped": true}')
    assert piped.returncode == EXIT_OK and json.loads(piped.stdout)["queue"] == "default"


@pytest.mark.parametrize("command", [["stats", "--interval", "0.2"], ["tail", "--interval", "0.2"]])
def test_ctrl_c_stops_a_following_command_with_130(
    relay_url: str, client: Client, make_queue: Callable[..., str], command: list[str]
) -> None:
    queue = make_queue()
    client.enqueue(1, queue=queue)
    process = subprocess.Popen(
        [sys.executable, "-m", "relayq.client", *command, "-q", queue],
        env=cli_env(relay_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A runner started in the background may ignore SIGINT; Ctrl-C must reach the command.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert process.stdout is not None
    watchdog = threading.Timer(15, process.kill)  # readline has no timeout of its own
    watchdog.start()
    try:
        assert process.stdout.readline(), "no output before Ctrl-C"
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=10)
    finally:
        watchdog.cancel()
        process.kill()
    assert process.returncode == EXIT_INTERRUPTED, stderr
    assert "Traceback" not in stderr


def test_connection_options_before_or_after_the_command(
    relay_url: str, make_queue: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    from relayq.cli import main as relay_main  # the `relay` entry point, with serve and bench

    name = make_queue()
    for run in (main, relay_main):
        capsys.readouterr()
        assert run(["--url", relay_url, "--json", "queues", "show", name]) == EXIT_OK
        assert json.loads(capsys.readouterr().out)["name"] == name
        # Given twice, the option after the command wins.
        assert run(["--url", "http://127.0.0.1:9", "queues", "list", "--url", relay_url]) == EXIT_OK
        assert name in capsys.readouterr().out
        assert run(["--json", "queues", "--url", relay_url]) == EXIT_OK
        assert name in [q["name"] for q in json.loads(capsys.readouterr().out)]
    # Server commands do not take them; bench has its own --url, which must not be ignored.
    with pytest.raises(SystemExit) as refused:
        relay_main(["--url", relay_url, "bench"])
    assert refused.value.code == EXIT_USAGE
    assert "--url before 'bench' is for the client commands" in capsys.readouterr().err
