"""The import's item count is read one item at a time, up to the limit plus one."""

from __future__ import annotations

import pytest

from relayq.api.routes.admin import _more_items_than


@pytest.mark.parametrize("raw,limit,expected", [
    (b"[]", 0, False),
    (b" [ {} ] ", 0, True),
    (b"[{}, {}, {}]", 3, False),
    (b"[{}, {}, {}, {}]", 3, True),
    (b'[{"a": "],[{,"}, [1, [2, 3]], "x", null]', 3, True),  # brackets and commas inside items
    (b'[{"a": "],[{,"}, [1, [2, 3]], "x"]', 3, False),
    (b'{"queue": "q"}', 0, False),  # one message object: counted as one, by the route
    (b"[{}, {}, oops", 1, True),  # past the limit before the damage
    (b"[{}, oops, {}]", 1, False),  # unreadable before the limit: the full decoder says why
    (b"\xff[{}]", 0, False),
    (b"[" + b"[" * 5000 + b"]" * 5000 + b"]", 0, False),  # too deep for the scan: the decoder decides
])
def test_counts_only_as_far_as_needed(raw: bytes, limit: int, expected: bool) -> None:
    assert _more_items_than(raw, limit) is expected


def test_twenty_million_tiny_items_are_refused_after_reading_a_few() -> None:
    raw = b"[" + b"{}," * 20_000_000 + b"{}]"
    assert _more_items_than(raw, 10_000)
