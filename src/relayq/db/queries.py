"""Named queries from db/sql/queries.sql, expanded once per message table.

Identifiers come from the whitelist below, never from requests; values are bind parameters.
"""

from __future__ import annotations

import re
from importlib import resources

from relayq.domain.ids import StorageKind
from relayq.domain.messages import MESSAGE_COLUMNS

MESSAGE_TABLES: dict[StorageKind, str] = {
    "standard": "relay.messages",
    "unlogged": "relay.messages_unlogged",
    "partitioned": "relay.messages_partitioned",
}

# "Any status", spelled so the planner can answer it from indexes (table alias `m`). Queued
# messages are only in messages_dequeue_idx, leased ones in messages_lease_idx (every queue's:
# it has no queue column, so that part costs the leases in flight), acknowledged ones in
# messages_acknowledged_idx, dead and archived ones in messages_status_idx (migrations 0008,
# 0012); no index alone covers `queue_name = $1`, but with the four groups named the planner
# combines them (BitmapOr), in custom and generic plans alike.
ANY_STATUS = (
    "(m.status = 'queued' OR m.status = 'processing' OR m.status = 'acknowledged'"
    " OR m.status NOT IN ('queued', 'processing', 'acknowledged'))"
)

# What the activity log and anomaly detectors need from a changed row (no payload: it may be
# a megabyte, and the hot path should not ship it back).
EVENT_COLUMNS = """m.id, m.queue_name, m.type, m.priority, m.status, m.attempt_count, m.max_attempts,
    m.ack_timeout_seconds, m.consumer_id, m.lock_token, m.payload_size, m.last_error,
    extract(epoch FROM m.created_at)::float8 AS created_at,
    extract(epoch FROM m.dequeued_at)::float8 AS dequeued_at,
    extract(epoch FROM m.available_at)::float8 AS available_at"""

# The retry backoff of the row aliased {alias} (`{backoff:alias}` in queries.sql), in seconds.
# The exponent stops at 30 (the cap of 3600 s is reached by then): 2^1024 overflows float8, which
# failed every nack of a message on its 1025th attempt, and every reaper pass that met one.
BACKOFF = (
    "least(coalesce((SELECT q.retry_delay_seconds FROM relay.queues q WHERE q.id = {alias}.queue_id), 0)"
    " * power(2, least(greatest({alias}.attempt_count - 1, 0), 30)), 3600)"
)

_BLOCK_RE = re.compile(r"^-- name: (\w+)\n", re.MULTILINE)


def load_named(filename: str) -> dict[str, str]:
    """The `-- name: x` blocks of one file under db/sql/, by name."""
    text = (resources.files("relayq.db") / "sql" / filename).read_text(encoding="utf-8")
    parts = _BLOCK_RE.split(text)
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}


def queue_filter(kind: StorageKind, param: int) -> str:
    """`AND m.queue_id = ANY($param)` for partitioned ids (their queue ids, domain.ids.queue_ids_of),
    which prunes to those queues' subtrees; other tables keep the parameter (so numbering stays
    the same) but ignore it."""
    if kind == "partitioned":
        return f"AND m.queue_id = ANY(${param}::bigint[])"
    return f"AND ${param}::bigint[] IS NULL"


def _expand(body: str, kind: StorageKind) -> str:
    partitioned = kind == "partitioned"
    replacements = {  # in order: the guard names {messages}
        "{idempotency_guard}": (  # an advisory lock per key, then a fresh look (migration 0013)
            "AND (i.idem_key IS NULL OR relay.idempotency_key_free(coalesce(i.queue_name, 'default'), i.idem_key))"
            if partitioned else ""
        ),
        "{messages}": MESSAGE_TABLES[kind],
        "{columns}": MESSAGE_COLUMNS,
        "{event_columns}": EVENT_COLUMNS,
        # A unique index answers for idempotency keys where one can exist; time partitions
        # cannot hold one across the whole queue, so there a locked lookup per keyed message does.
        "{on_conflict}": (
            "" if partitioned else "ON CONFLICT (queue_name, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
        ),
    }
    for key, value in replacements.items():
        body = body.replace(key, value)
    body = re.sub(r"\{backoff:(\w+)\}", lambda m: BACKOFF.format(alias=m[1]), body)
    # Partitioned ids carry their queue id; filtering on it prunes to that queue's subtree.
    body = re.sub(r"\{queue_filter:(\d)\}", lambda m: queue_filter(kind, int(m[1])), body)
    return re.sub(
        r"\{queue_filter_single:(\d)\}",
        lambda m: f"AND m.queue_id = ${m[1]}" if partitioned else f"AND ${m[1]}::bigint IS NULL",
        body,
    )


class Queries:
    """`Queries.get(name, kind)` returns the SQL text for one message table."""

    def __init__(self) -> None:
        blocks = load_named("queries.sql")
        for name, body in list(blocks.items()):  # a claim for any type, and one for a given type
            if "{type_filter}" in body:
                blocks[name] = body.replace("{type_filter}", "AND $6::text IS NULL")
                blocks[name + "_typed"] = body.replace("{type_filter}", "AND type = $6::text")
        self._sql: dict[tuple[str, StorageKind], str] = {
            (name, kind): _expand(body, kind) for name, body in blocks.items() for kind in MESSAGE_TABLES
        }

    def get(self, name: str, kind: StorageKind) -> str:
        """The named query for the table that stores `kind` messages."""
        return self._sql[(name, kind)]


QUERIES = Queries()
