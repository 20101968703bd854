"""Terminal output for the CLI: aligned tables, JSON for scripts, a progress bar."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TextIO

import msgspec

_json_encoder = msgspec.json.Encoder()


def to_jsonable(value: Any) -> Any:
    """Plain JSON types for any result (structs, lists of structs, datetimes as ISO strings)."""
    return msgspec.to_builtins(value)


def print_json(value: Any, *, stream: TextIO | None = None, indent: int = 0) -> None:
    """One JSON document on one line (``indent=0``), so that output can be read as JSON Lines.

    A ``msgspec.Raw`` (JSON as the server sent it) is written as it is, only re-spaced.
    """
    if isinstance(value, msgspec.Raw):
        data = msgspec.json.format(bytes(value), indent=indent or -1)  # -1: no spaces at all
    else:
        data = _json_encoder.encode(to_jsonable(value))
        if indent:
            data = msgspec.json.format(data, indent=indent)
    out = stream or sys.stdout
    out.write(data.decode() + "\n")
    out.flush()


def cell(value: Any, width: int = 60) -> str:
    """A value as table text: JSON for structures, blank for ``None``, shortened when long."""
    if value is None:
        text = ""
    elif isinstance(value, str):
        text = value
    elif isinstance(value, datetime):
        text = value.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    elif isinstance(value, float):
        text = f"{value:,.1f}"
    elif isinstance(value, (bool, int)):
        text = str(value)
    else:
        text = _json_encoder.encode(to_jsonable(value)).decode()
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned text columns; numbers are right-aligned so digits line up."""
    texts = [[cell(value) for value in row] for row in rows]
    numeric = [
        all(isinstance(row[i], (int, float)) and not isinstance(row[i], bool) for row in rows) and bool(rows)
        for i in range(len(headers))
    ]
    widths = [max([len(h), *(len(row[i]) for row in texts)]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    return "\n".join([line([h.upper() for h in headers]), *(line(row) for row in texts)])


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, empty: str = "(none)") -> None:
    """Print a table, or ``empty`` when there are no rows."""
    print(format_table(headers, rows) if rows else empty)


def clock(timestamp: float | None) -> str:
    """Local wall-clock time of a Unix timestamp, for log-like lines."""
    if timestamp is None:
        return "--:--:--"
    return datetime.fromtimestamp(timestamp).strftime("%H:%M:%S")


class Progress:
    """A one-line progress bar on stderr, drawn only when stderr is a terminal."""

    def __init__(self, total: int | None, *, label: str = "", stream: TextIO | None = None) -> None:
        self.total = total
        self.done = 0
        self.label = label
        self._stream = stream or sys.stderr
        self._enabled = self._stream.isatty()
        self._started = time.monotonic()
        self._last_draw = 0.0

    def advance(self, count: int) -> None:
        """Record ``count`` more items done; redraws at most ten times a second."""
        self.done += count
        now = time.monotonic()
        if self._enabled and (now - self._last_draw >= 0.1 or self.done == self.total):
            self._last_draw = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        rate = self.done / max(now - self._started, 1e-9)
        if self.total:
            filled = int(30 * self.done / self.total)
            bar = "#" * filled + "." * (30 - filled)
            text = f"{self.label}[{bar}] {self.done}/{self.total} {100 * self.done // self.total}%"
        else:
            text = f"{self.label}{self.done}"
        self._stream.write(f"\r{text}  {rate:,.0f}/s ")
        self._stream.flush()

    def close(self) -> None:
        """Finish the line so that later output starts on a fresh one."""
        if self._enabled:
            self._draw(time.monotonic())
            self._stream.write("\n")
            self._stream.flush()

    @property
    def elapsed(self) -> float:
        """Seconds since the bar was created."""
        return time.monotonic() - self._started
