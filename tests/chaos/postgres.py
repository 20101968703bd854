"""A throwaway PostgreSQL cluster that chaos tests may crash, restart and cut off at will.

Never the machine's shared cluster: this one lives in a temporary directory on its own port
and is removed afterwards. It uses the system's PostgreSQL binaries (initdb/pg_ctl); as root
they run as the `postgres` user, which owns the data directory.
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import asyncpg

from tests.support.server import free_port


def _bin_dir() -> Path | None:
    found = os.environ.get("RELAY_PG_BIN")
    if found:
        return Path(found)
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for candidate in candidates:
        if (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    which = shutil.which("pg_ctl")
    return Path(which).parent if which else None


def available() -> bool:
    """True when initdb/pg_ctl exist and (as root) a `postgres` user can run them."""
    bin_dir = _bin_dir()
    if bin_dir is None or not (bin_dir / "initdb").exists():
        return False
    if os.geteuid() == 0:
        return subprocess.run(["id", "-u", "postgres"], capture_output=True).returncode == 0
    return True


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc: no pgrep needed)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


class ThrowawayPostgres:
    """initdb + pg_ctl on a free loopback port; `restart(crash=True)` is a real crash-restart."""

    def __init__(self) -> None:
        bin_dir = _bin_dir()
        assert bin_dir is not None, "no PostgreSQL binaries found"
        self.bin = bin_dir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="relay-chaos-pg-"))
        self.data = self.root / "data"
        self.logfile = self.root / "postgres.log"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=120)

    def init(self) -> ThrowawayPostgres:
        """Create the cluster (trust auth, loopback only) and start it."""
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self.root.chmod(0o700)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = '{self.root}'\n"
                       "max_connections = 200\nshared_buffers = 32MB\nfsync = on\nlogging_collector = off\n")
        self.start()
        return self

    def start(self) -> None:
        """Start and wait until it accepts connections (crash recovery included)."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop: `fast` (clean), or `immediate` (a crash: no checkpoint, WAL replay on start)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop", check=False)

    def restart(self, crash: bool = True, down_seconds: float = 0.0) -> None:
        """Stop (crashing by default), stay down `down_seconds`, start again."""
        import time

        self.stop("immediate" if crash else "fast")
        time.sleep(down_seconds)
        self.start()

    def freeze(self) -> None:
        """SIGSTOP the postmaster, then every backend: PostgreSQL stops answering without closing
        a socket, as a stalled host or a network partition does (`thaw` ends it)."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        os.kill(postmaster, signal.SIGSTOP)  # first, so it forks no backend we would miss
        for pid in _children(postmaster):
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT what `freeze` stopped."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        for pid in [*_children(postmaster), postmaster]:
            os.kill(pid, signal.SIGCONT)

    def terminate_backends(self, application_names: tuple[str, ...] = ("relayq", "relayq-listen")) -> int:
        """pg_terminate_backend every connection of the Relay servers (pool and event listener);
        returns how many."""
        return asyncio.run(self._terminate(application_names))

    async def _terminate(self, application_names: tuple[str, ...]) -> int:
        conn = await asyncpg.connect(self.url, timeout=5)
        try:
            killed = await conn.fetchval(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = ANY($1::text[]) AND pid <> pg_backend_pid()", list(application_names))
            return int(killed)
        finally:
            await conn.close()

    def destroy(self) -> None:
        """Stop the cluster and delete its files."""
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> ThrowawayPostgres:
        return self.init()

    def __exit__(self, *exc: object) -> None:
        self.destroy()
