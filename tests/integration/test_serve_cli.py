"""`relay serve` (and `relay migrate`) refuse what they cannot run with a one-line reason and a distinct exit status,
before it starts serving (no traceback of a failed application start-up)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from urllib.parse import urlsplit, urlunsplit

from tests.support.server import free_port


def serve(env: dict[str, str], command: str = "serve") -> subprocess.CompletedProcess[str]:
    args = ["--port", str(free_port())] if command == "serve" else []
    return subprocess.run([sys.executable, "-m", "relayq", command, *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=60)


def test_a_database_that_does_not_exist_is_exit_3_with_the_reason(database_url: str) -> None:
    missing = urlunsplit(urlsplit(database_url)._replace(path="/relay_no_such_database"))
    for command in ("serve", "migrate"):
        done = serve({"DATABASE_URL": missing}, command)
        assert done.returncode == 3, done.stderr
        assert 'database "relay_no_such_database" does not exist' in done.stderr
        assert "Traceback" not in done.stderr + done.stdout


def test_a_refused_connection_is_exit_3_and_hides_the_password() -> None:
    done = serve({"DATABASE_URL": "postgresql://relay:s3cret@127.0.0.1:1/relay"})
    assert done.returncode == 3, done.stderr
    assert "127.0.0.1:1" in done.stderr and "s3cret" not in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_an_unknown_log_level_is_a_configuration_error(database_url: str) -> None:
    done = serve({"DATABASE_URL": database_url, "LOG_LEVEL": "verbose"})
    assert done.returncode == 2 and "LOG_LEVEL" in done.stderr, done.stderr
    assert "serving on" not in done.stdout  # refused before it claimed to serve


def test_a_port_in_use_is_reported_before_serving(database_url: str) -> None:
    """uvicorn found it only after "serving on" was printed, and exited with 3, the status that
    says the database cannot be reached."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "relayq", "serve", "--host", "127.0.0.1", "--port", str(port)],
                              env={**os.environ, "DATABASE_URL": database_url}, capture_output=True, text=True,
                              timeout=60)
    assert done.returncode == 1, done.stderr
    assert f"relay: cannot listen on 127.0.0.1:{port}: Address already in use" in done.stderr
    assert "serving on" not in done.stdout and "Traceback" not in done.stderr


def test_an_open_server_on_the_network_is_warned_about(database_url: str) -> None:
    """HOST defaults to 0.0.0.0: without SECRET_KEY anyone on the network may delete queues."""
    for host, key, warned in (("0.0.0.0", "", True), ("127.0.0.1", "", False), ("0.0.0.0", "k", False)):
        process = subprocess.Popen(
            [sys.executable, "-m", "relayq", "serve", "--host", host, "--port", str(free_port())],
            env={**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": key, "LOG_LEVEL": "warning"},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert process.stdout is not None and "serving on" in process.stdout.readline()
        finally:
            process.send_signal(signal.SIGTERM)
            _, err = process.communicate(timeout=30)
        assert ("no SECRET_KEY set" in err) is warned, (host, key, err)
