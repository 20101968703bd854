"""Sampling the server while a test runs (py-spy), and summarising where its CPU time goes.

`relay bench --profile DIR` records the server process with py-spy during each timed run (the
server is a separate process, so the profiler does not slow the load generator) and writes the
collapsed stacks plus a short summary: time by layer (HTTP server, framework, validation,
service, driver, event loop) and the hottest functions. docs/benchmarks.md quotes these.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

# Leaf frames are charged to the first layer whose marker appears in their file path.
LAYERS: tuple[tuple[str, str], ...] = (
    ("relayq/api/validation", "relayq validation"),
    ("relayq/api", "relayq HTTP routes/app"),
    ("relayq/services", "relayq services"),
    ("relayq/db", "relayq db layer"),
    ("relayq/domain", "relayq domain (wire format)"),
    ("asyncpg", "asyncpg driver"),
    ("starlette", "starlette"),
    ("uvicorn", "uvicorn + httptools"),
    ("httptools", "uvicorn + httptools"),
    ("msgspec", "msgspec"),
    ("asyncio", "asyncio / uvloop"),
    ("uvloop", "asyncio / uvloop"),
)


def py_spy() -> str | None:
    """The py-spy executable next to this interpreter or on PATH."""
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def start(pid: int, seconds: float, out: Path, rate: int = 200) -> subprocess.Popen[bytes] | None:
    """Record `pid` (and its children) for `seconds` into collapsed-stack file `out`."""
    exe = py_spy()
    if exe is None:
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [exe, "record", "--pid", str(pid), "--subprocesses", "--rate", str(rate), "--format", "raw",
         "--duration", str(max(int(round(seconds)), 1)), "--output", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def _frame_file(frame: str) -> str:
    # py-spy frames look like "function (path/to/file.py:123)".
    return frame.rpartition("(")[2].rstrip(")")


def layer_of(stack: list[str]) -> str:
    """The layer charged for one sample: its innermost frame that belongs to a known layer."""
    for frame in reversed(stack):
        path = _frame_file(frame)
        for marker, name in LAYERS:
            if marker in path:
                return name
    return "other"


def summarize(raw: Path, top: int = 15) -> str:
    """A text summary of a py-spy collapsed-stack file."""
    by_layer: Counter[str] = Counter()
    by_leaf: Counter[str] = Counter()
    by_relayq: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack_text.split(";")
        total += count
        by_layer[layer_of(frames)] += count
        by_leaf[frames[-1]] += count
        for frame in set(frames):
            if "relayq/" in frame and "relayq/__main__" not in frame and "relayq/cli" not in frame:
                by_relayq[frame] += count
    if total == 0:
        return "no samples"
    lines = [f"{total} samples (active CPU only)", "", "time by layer (innermost known frame):"]
    lines += [f"  {n / total:6.1%}  {name}" for name, n in by_layer.most_common()]
    lines += ["", f"top {top} functions by self time:"]
    lines += [f"  {n / total:6.1%}  {frame}" for frame, n in by_leaf.most_common(top)]
    lines += ["", f"top {top} relayq functions by inclusive time:"]
    lines += [f"  {n / total:6.1%}  {frame}" for frame, n in by_relayq.most_common(top)]
    return "\n".join(lines)
