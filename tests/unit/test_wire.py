"""Wire formatting of messages (API.md §1 timestamps)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from relayq.domain.messages import iso_millis, unix_seconds


@given(st.floats(min_value=0, max_value=4e9, allow_nan=False))
def test_iso_millis_matches_datetime(epoch: float) -> None:
    stamp = datetime.fromtimestamp(epoch, UTC)
    expected = stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"
    assert iso_millis(epoch) == expected


def test_nulls_and_flooring() -> None:
    assert iso_millis(None) is None and unix_seconds(None) is None
    assert unix_seconds(1796399319.999) == 1796399319
    assert iso_millis(1796399361.121) == "2026-12-04T15:49:21.121Z"
