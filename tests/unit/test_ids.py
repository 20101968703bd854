"""Message ids: table prefix, time order (append-only primary key), uniqueness."""

from __future__ import annotations

import re
import time

import asyncpg
import pytest

from relayq.domain.ids import new_message_id, new_message_ids, storage_of

SHAPE = re.compile(r"^(s|u|p\d+-)[0-9a-v]{9}[A-Za-z0-9_-]{12}$")


def later_ids() -> list[str]:
    """One id per millisecond or so, across every kind and batch size."""
    ids = []
    for i in range(40):
        ids.append(new_message_id("standard", 1) if i % 2 else new_message_ids("standard", 1, 3)[i % 3])
        time.sleep(0.0015)
    return ids


def test_ids_have_the_documented_shape_and_name_their_table() -> None:
    for kind, queue_id in (("standard", 0), ("unlogged", 0), ("partitioned", 42)):
        for message_id in [new_message_id(kind, queue_id), *new_message_ids(kind, queue_id, 50)]:
            assert SHAPE.match(message_id), message_id
            assert storage_of(message_id) == (kind, 42 if kind == "partitioned" else None)


def test_ids_made_later_sort_later() -> None:
    ids = later_ids()
    assert ids == sorted(ids)
    assert len(set(new_message_ids("standard", 0, 1000))) == 1000


@pytest.mark.parametrize("collation", ["C", "en-x-icu"])
async def test_postgres_sorts_them_in_time_order_under_any_collation(database_url: str, collation: str) -> None:
    ids = later_ids()
    conn = await asyncpg.connect(database_url)
    try:
        found = await conn.fetchval(  # the collation name comes from the list above, never from input
            f'SELECT array_agg(i ORDER BY i COLLATE "{collation}") FROM unnest($1::text[]) i', ids[::-1])
    finally:
        await conn.close()
    assert found == ids
