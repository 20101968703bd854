"""Declarative request fields: one description drives validation, alias handling and OpenAPI.

Each `Field` knows its documented name, the aliases API.md allows (the other case style is
always accepted), its type and bounds. `parse_body` and `parse_query` turn raw input into
plain Python values or raise a 400 VALIDATION_ERROR whose `details` name the offending field.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from relayq.domain.errors import RelayError

_CAMEL_RE = re.compile(r"_([a-z0-9])")
_SNAKE_RE = re.compile(r"(?<=[a-z0-9])([A-Z])")

MISSING: Any = object()
# Integer fields land in PostgreSQL `integer` columns unless a field sets a tighter maximum.
INT32_MAX = 2**31 - 1


def other_case(name: str) -> str:
    """snake_case ↔ camelCase twin of a name."""
    if "_" in name:
        return _CAMEL_RE.sub(lambda m: m.group(1).upper(), name)
    return _SNAKE_RE.sub(lambda m: "_" + m.group(1).lower(), name)


@dataclass(frozen=True, slots=True)
class Field:
    """One body field or query parameter.

    kind: str | int | number | bool | any | array | object | timestamp | choice.
    For arrays, min_length/max_length bound the item count (checked by the route, which also
    parses the items) and `items` documents them: the fields of object items, or a scalar kind.
    """

    name: str
    kind: str = "str"
    required: bool = False
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    max_length: int | None = None
    min_length: int | None = None
    choices: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    nullable: bool = False  # JSON null is a value (payload), not "absent"
    clamp_max: bool = False  # values above maximum are clamped instead of refused
    doc: str = ""
    items: tuple[Field, ...] | str = ()

    spellings: tuple[str, ...] = dataclasses.field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Every accepted spelling, the documented one first; computed once, read per request.
        out = [self.name, other_case(self.name)]
        for alias in self.aliases:
            out += [alias, other_case(alias)]
        object.__setattr__(self, "spellings", tuple(dict.fromkeys(out)))

    def names(self) -> tuple[str, ...]:
        """Every accepted spelling, the documented one first."""
        return self.spellings


def upper_bound(spec: Field) -> float | None:
    """The largest value `spec` accepts: its maximum, else the int32 range every int field keeps
    (the columns are `integer`), for the reference and the OpenAPI document."""
    if spec.maximum is not None:
        return spec.maximum
    return INT32_MAX if spec.kind == "int" else None


def _fail(field: str, message: str) -> RelayError:
    return RelayError(400, "VALIDATION_ERROR", f"{field} {message}", details=[{"field": field, "message": message}])


def _pick(source: Mapping[str, Any], spec: Field) -> Any:
    for name in spec.spellings:
        if name in source:
            value = source[name]
            if value is None and not spec.nullable:
                continue
            return value
    return MISSING


def _check_number(spec: Field, path: str, value: float) -> float:
    if spec.minimum is not None:
        if spec.exclusive_minimum and value <= spec.minimum:
            raise _fail(path, f"must be greater than {_num(spec.minimum)}")
        if value < spec.minimum:
            raise _fail(path, f"must be at least {_num(spec.minimum)}")
    if spec.maximum is not None and value > spec.maximum:
        if spec.clamp_max:
            return spec.maximum
        raise _fail(path, f"must be at most {_num(spec.maximum)}")
    return value


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


# The epoch seconds of 0001-01-01 and 9999-12-31T23:59:59Z: the range of Python's datetime.
EPOCH_MIN = -62135596800.0
EPOCH_MAX = 253402300799.0
# A number in a query string: ASCII digits only. Python's int() and float() also take "1_0",
# surrounding whitespace and other scripts' digits, which no client means to send.
QUERY_NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)


def parse_timestamp(raw: str, path: str) -> float:
    """ISO-8601 (offset-free means UTC) or, when purely numeric, Unix milliseconds → epoch seconds.

    Milliseconds are held to the years 1–9999 that ISO-8601 dates can name, so a value
    PostgreSQL cannot store is refused here, naming its field, rather than by the query.
    """
    text = raw.strip()
    if re.fullmatch(r"-?\d+(\.\d+)?", text, re.ASCII):
        seconds = float(text) / 1000.0
        if not EPOCH_MIN <= seconds <= EPOCH_MAX:
            raise _fail(path, "is out of range (years 1 to 9999)")
        return seconds
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise _fail(path, "must be an ISO-8601 date or Unix milliseconds") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


def coerce(spec: Field, value: Any, path: str, *, from_query: bool) -> Any:
    """Check one present value against its field; query strings are converted first."""
    kind = spec.kind
    if kind == "any":
        return value
    # Fast paths for the common exact types; anything unusual takes the full checks below.
    value_type = type(value)
    if (value_type is str and kind == "str" and spec.max_length is None and spec.min_length is None
            and "\x00" not in value):
        return value
    if value_type is int and kind == "int" and not from_query and (spec.maximum is not None or abs(value) <= INT32_MAX):
        return _check_number(spec, path, value)
    if kind == "bool":
        if from_query:
            if value not in ("true", "false"):
                raise _fail(path, "must be true or false")
            return value == "true"
        if not isinstance(value, bool):
            raise _fail(path, "must be a boolean")
        return value
    if kind in ("int", "number"):
        if from_query:
            if not isinstance(value, str) or not QUERY_NUMBER_RE.fullmatch(value):
                raise _fail(path, "must be a number")
            try:
                value = float(value) if kind == "number" or "." in value or "e" in value.lower() else int(value)
            except (ValueError, AttributeError):
                raise _fail(path, "must be a number") from None
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise _fail(path, "must be a number")
        if kind == "int":
            if isinstance(value, float):
                if not value.is_integer():
                    raise _fail(path, "must be an integer")
                value = int(value)
            if abs(value) > INT32_MAX and spec.maximum is None:
                raise _fail(path, f"must be at most {INT32_MAX}" if value > 0 else f"must be at least {-INT32_MAX}")
        return _check_number(spec, path, value)
    if kind == "timestamp":
        if not isinstance(value, str):
            raise _fail(path, "must be a string")
        return parse_timestamp(value, path)
    if kind in ("str", "choice"):
        if not isinstance(value, str):
            raise _fail(path, "must be a string")
        require_storable(value, path)
        if spec.min_length is not None and len(value) < spec.min_length:
            raise _fail(path, f"must be at least {spec.min_length} characters")
        if spec.max_length is not None and len(value) > spec.max_length:
            raise _fail(path, f"must be at most {spec.max_length} characters")
        if spec.choices and value not in spec.choices:
            raise _fail(path, "must be one of " + ", ".join(spec.choices))
        return value
    if kind == "array":
        if not isinstance(value, list):
            raise _fail(path, "must be an array")
        return value
    if kind == "object":
        if not isinstance(value, dict):
            raise _fail(path, "must be an object")
        return value
    raise AssertionError(f"unknown field kind {kind}")


def require_storable(text: str, path: str) -> str:
    """`text`, or a 400 naming `path` when it holds NUL, which PostgreSQL text cannot store."""
    if "\x00" in text:
        raise _fail(path, "must not contain NUL characters")
    return text


def parse_fields(
    fields: Sequence[Field], source: Mapping[str, Any], *, prefix: str = "", from_query: bool = False
) -> dict[str, Any]:
    """Validate `source` against `fields`; returns {documented name: value} (defaults filled)."""
    out: dict[str, Any] = {}
    for spec in fields:
        value = _pick(source, spec)
        path = prefix + spec.name
        if value is MISSING or (from_query and value == "" and spec.kind not in ("str", "choice")):
            if spec.required:
                raise _fail(path, "is required")
            out[spec.name] = spec.default
            continue
        out[spec.name] = coerce(spec, value, path, from_query=from_query)
    return out


def parse_query(fields: Sequence[Field], params: Mapping[str, str]) -> dict[str, Any]:
    """Validate query parameters (all strings on the wire)."""
    return parse_fields(fields, params, from_query=True)


def require_object(body: Any, what: str = "body") -> dict[str, Any]:
    """Bodies of most endpoints, and the items of array bodies, must be JSON objects.

    `what` is "body" for a whole body (its details name no field) or an item's dotted path.
    """
    if not isinstance(body, dict):
        raise RelayError(400, "VALIDATION_ERROR", f"{what} must be a JSON object",
                         details=[{"field": "" if what == "body" else what, "message": "must be an object"}])
    return body


def count_bound(max_count: int | None, page_end: int) -> int | None:
    """A listing's `maxCount`, raised to the end of the page asked for (so that page's own rows
    are always counted); None, an exact count, when it was not given."""
    return None if max_count is None else max(max_count, page_end)
