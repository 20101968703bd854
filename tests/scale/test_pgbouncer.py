"""Relay through pgbouncer in transaction mode (Debian's pgbouncer; scripts/test.sh installs it).

Transaction pooling hands each transaction, or each statement outside one, to whichever
server connection is free, so nothing may rely on session state: the server must run with
POSTGRES_STATEMENT_CACHE_SIZE=0 (no named prepared statements), migrations use a
transaction-scoped advisory lock, and maintenance takes only transaction-scoped locks. The
bouncer here has fewer server connections than Relay's pool, so consecutive statements of one
client connection really do land on different server connections.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from relayq.bench.environment import with_database
from tests.support.server import free_port, fresh_database, spawn_server, stop_server

PGBOUNCER = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None)
pytestmark = pytest.mark.skipif(PGBOUNCER is None, reason="pgbouncer is not installed")

# asyncpg sends these in its startup packet; pgbouncer 1.18 refuses unknown startup parameters.
# statement_timeout is then NOT applied: behind pgbouncer, set it on the role or database instead
# (docs/scaling.md).
INI = """[databases]
* = host={host} port={port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen}
unix_socket_dir =
auth_type = trust
auth_file = {dir}/userlist.txt
pool_mode = transaction
default_pool_size = 3
max_client_conn = 200
ignore_startup_parameters = extra_float_digits,statement_timeout
logfile = {dir}/pgbouncer.log
pidfile = {dir}/pgbouncer.pid
"""


@pytest.fixture(scope="module")
def bouncer_url() -> Iterator[str]:
    """A database reached through a pgbouncer in transaction mode started for this module."""
    assert PGBOUNCER is not None
    with fresh_database("relay_bouncer") as direct, tempfile.TemporaryDirectory(prefix="relay-pgb-") as tmp:
        target = urlsplit(direct)
        listen = free_port()
        folder = Path(tmp)
        (folder / "pgbouncer.ini").write_text(INI.format(
            host=target.hostname, port=target.port or 5432, listen=listen, dir=folder))
        (folder / "userlist.txt").write_text(f'"{target.username}" ""\n')
        command = [PGBOUNCER, str(folder / "pgbouncer.ini")]
        if os.geteuid() == 0:  # pgbouncer refuses to run as root
            os.chmod(folder, 0o777)
            command = ["runuser", "-u", "postgres", "--", *command]
        process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.STDOUT)
        url = with_database(f"postgresql://{target.username}@127.0.0.1:{listen}/", target.path.lstrip("/"))
        try:
            _wait_for(url, process, folder)
            yield url
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=10)


def _wait_for(url: str, process: subprocess.Popen[bytes], folder: Path) -> None:
    async def ping() -> None:
        conn = await asyncpg.connect(url, statement_cache_size=0, timeout=2)
        await conn.close()

    deadline = time.monotonic() + 15
    while True:
        try:
            asyncio.run(ping())
            return
        except (OSError, asyncpg.PostgresError):
            log = folder / "pgbouncer.log"
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("pgbouncer did not start: " + (log.read_text() if log.exists() else "no log"))
            time.sleep(0.2)


@pytest.fixture(scope="module")
def api(bouncer_url: str) -> Iterator[httpx.Client]:
    # Migrations run at start-up, through the bouncer.
    server = spawn_server(bouncer_url, env={"POSTGRES_STATEMENT_CACHE_SIZE": "0", "POSTGRES_POOL_SIZE": "10",
                                            "MAINTENANCE_INTERVAL_SECONDS": "1"})
    try:
        with httpx.Client(base_url=server.api, timeout=30) as client:
            yield client
    finally:
        stop_server(server)


def test_message_lifecycle_through_pgbouncer(api: httpx.Client) -> None:
    queue = "b_" + secrets.token_hex(4)
    assert api.post("/queues", json={"name": queue, "max_attempts": 2}).status_code == 201
    one = api.post("/queue/message", json={"type": "t", "payload": {"n": 0}, "queue": queue})
    assert one.status_code == 201, one.text
    batch = [{"type": "t", "payload": {"n": i}, "queue": queue, "priority": i % 3} for i in range(1, 30)]
    assert api.post("/queue/batch", json=batch).json()["count"] == 29

    leased = api.get("/queue/message", params={"queue": queue}).json()
    touched = api.put(f"/queue/message/{leased['id']}/touch", json={"lock_token": leased["lock_token"]})
    assert touched.status_code == 200, touched.text
    assert api.post("/queue/ack", json={"id": leased["id"], "lock_token": leased["lock_token"]}).status_code == 200

    many = api.get("/queue/messages/batch", params={"queue": queue, "count": 20}).json()["messages"]
    acks = api.post("/queue/ack/batch", json={"acks": [
        {"id": m["id"], "lock_token": m["lock_token"]} for m in many[:10]]}).json()
    assert len(acks["succeeded"]) == 10
    nacked = api.post(f"/queue/message/{many[10]['id']}/nack",
                      json={"lock_token": many[10]["lock_token"], "errorReason": "boom"})
    assert nacked.status_code == 200, nacked.text
    nacks = api.post("/queue/nack/batch", json={"nacks": [
        {"id": m["id"], "lock_token": m["lock_token"]} for m in many[11:]]}).json()
    assert len(nacks["succeeded"]) == 9
    stolen = api.post("/queue/ack", json={"id": many[0]["id"], "lock_token": "wrong"})
    assert stolen.status_code in (400, 409)

    info = api.get(f"/queues/{queue}").json()
    assert (info["message_count"], info["processing_count"]) == (19, 0)
    assert api.post(f"/queues/{queue}/rename", json={"newName": queue + "_r"}).status_code == 200
    assert api.delete(f"/queues/{queue}_r", params={"force": "true"}).status_code == 200


def test_concurrent_clients_through_pgbouncer(api: httpx.Client) -> None:
    """More concurrent requests than the bouncer has server connections: statements of one
    client connection interleave over different server connections."""
    queue = "b_" + secrets.token_hex(4)
    assert api.post("/queues", json={"name": queue}).status_code == 201

    def cycle(i: int) -> str:
        sent = api.post("/queue/message", json={"type": "t", "payload": {"i": i}, "queue": queue})
        assert sent.status_code == 201, sent.text
        got = api.get("/queue/message", params={"queue": queue})
        assert got.status_code == 200, got.text
        message = got.json()
        done = api.post("/queue/ack", json={"id": message["id"], "lock_token": message["lock_token"]})
        assert done.status_code == 200, done.text
        return str(message["id"])

    with ThreadPoolExecutor(max_workers=16) as pool:
        ids = list(pool.map(cycle, range(100)))
    assert len(set(ids)) == 100
    counts = api.get("/queue/status", params={"queueName": queue, "include_messages": "false"}).json()
    assert counts["acknowledgedQueue"]["length"] == 100
