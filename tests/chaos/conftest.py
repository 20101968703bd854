"""Chaos tests need a PostgreSQL of their own to crash; skip them where none can be made."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.chaos.postgres import ThrowawayPostgres, available


@pytest.fixture(scope="module")
def throwaway_pg() -> Iterator[ThrowawayPostgres]:
    """A private cluster for one test module, destroyed afterwards."""
    if not available():
        pytest.skip("initdb/pg_ctl not available: cannot run a throwaway PostgreSQL")
    with ThrowawayPostgres() as pg:
        yield pg
