"""Every example in ``examples/`` runs against a real server."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from relayq.client import Client
from tests.client.client_support import REPO, cli_env

EXAMPLES = REPO / "examples"


def test_python_producer_and_worker(relay_url: str, client: Client, make_queue: Callable[..., str]) -> None:
    queue = make_queue()
    produced = subprocess.run(
        [sys.executable, str(EXAMPLES / "producer.py"), "--queue", queue, "--count", "4"],
        env=cli_env(relay_url),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert produced.returncode == 0, produced.stderr
    assert client.get_queue(queue).message_count == 4
    client.enqueue({"no": "recipient"}, queue=queue)  # fails in the handler: nacked

    worker = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "worker.py"), "--queue", queue],
        env=cli_env(relay_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 15
        while client.queue_status(queue).acknowledged < 4:
            assert time.monotonic() < deadline and worker.poll() is None, "worker example did not finish"
            time.sleep(0.1)
    finally:
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=15)
    assert worker.returncode == 0, output
    assert output.count("sent ") == 4 and "payload has no recipient" in output


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_example(relay_url: str, make_queue: Callable[..., str]) -> None:
    queue = make_queue()
    result = subprocess.run(
        ["bash", str(EXAMPLES / "curl.sh")],
        env=cli_env(relay_url, RELAY_QUEUE=queue),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Message added successfully" in result.stdout and "Message acknowledged" in result.stdout


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_node_example(relay_url: str, client: Client, make_queue: Callable[..., str]) -> None:
    queue = make_queue()
    result = subprocess.run(
        ["node", str(EXAMPLES / "node" / "worker.mjs")],
        env=cli_env(relay_url, RELAY_QUEUE=queue),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "acknowledged" in result.stdout
    assert client.queue_status(queue).acknowledged == 1
