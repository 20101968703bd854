"""Producer and consumer operations: enqueue, dequeue (with long-poll), ack, nack, touch.

Each successful operation is one statement, one round trip: the message's own state change.
Everything else (activity log, stats, anomaly checks, live events) is announced on the
ChangeHub and happens off the request path. Failure paths (unknown id, lost lock) may spend a
second query to say precisely what went wrong.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, NamedTuple, overload

import msgspec

from relayq.config import Settings
from relayq.db.database import Database, Transaction
from relayq.db.queries import QUERIES
from relayq.domain.errors import RelayError
from relayq.domain.ids import StorageKind, new_message_id, new_message_ids, queue_ids_of, storage_of
from relayq.services.changes import Change, ChangeHub, Row, grouped_changes
from relayq.services.coalesce import Coalescer
from relayq.services.delays import DuePromoter
from relayq.services.queues import QueueRef, QueueService
from relayq.services.waiters import Waiters

# A parked long-poll re-checks at least this often, for a missed wake-up (services/waiters.py).
# One that waits for a type spends at most RECHECK_COST_SHARE of the time on it, up to
# RECHECK_MAX_SECONDS apart: its claim may read a lot even when it finds nothing (a type no
# queued message has reads the whole backlog: 0.5-0.9 s at 1,000,000 messages), and rechecking
# every second kept a core busy per parked (queue, type). Wake-ups still come at once; only the
# search for a missed one slows down, and the cap bounds a claim slowed by load, not by its work.
LONG_POLL_RECHECK_SECONDS = 1.0
RECHECK_COST_SHARE = 0.1
RECHECK_MAX_SECONDS = 5.0


def recheck_after(claim_seconds: float) -> float:
    """Seconds a parked typed long-poll waits before claiming again unless woken (see above)."""
    return min(RECHECK_MAX_SECONDS, max(LONG_POLL_RECHECK_SECONDS, claim_seconds / RECHECK_COST_SHARE))


# Python attribute → JSON key, as API.md spells the enqueue fields (and as the SQL reads them).
WIRE_NAMES = {
    "ack_timeout": "ackTimeout", "max_attempts": "maxAttempts", "delay": "delaySeconds",
    "idempotency_key": "idempotencyKey", "consumer_id": "consumerId",
}

# A nack request item: (id, lock_token, reason, delay seconds).
NackItem = tuple[str, str | None, str | None, float | None]


# Bounds shared by the HTTP fields (api/routes/messages.py) and the fast decoder below.
MAX_DELAY_SECONDS = 2_592_000
# Longest message type and consumer id: both are btree keys (with the queue name) of the
# per-queue type counters and the consumer stats, whose rows hold at most 2704 bytes. A longer
# type made its enqueue fail with a database error (a 500, also for every request coalesced
# into the same statement), a longer consumer id made every later stats flush fail.
MAX_KEY_CHARS = 500
INT32_MAX = 2**31 - 1


class NewMessage(msgspec.Struct, kw_only=True, omit_defaults=True, rename=WIRE_NAMES):
    """One validated message to enqueue; `payload` is its compact JSON text.

    A msgspec Struct so that a batch body decodes straight into these (validation in C) and a
    list of them encodes into the one JSON parameter of the insert statement.
    """

    queue: str = "default"
    type: Annotated[str, msgspec.Meta(max_length=MAX_KEY_CHARS)]
    payload: msgspec.Raw
    priority: Annotated[int, msgspec.Meta(ge=0, le=9)] = 0
    ack_timeout: Annotated[int, msgspec.Meta(ge=0, le=INT32_MAX)] | None = None
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=INT32_MAX)] | None = None
    delay: Annotated[float, msgspec.Meta(ge=0, le=MAX_DELAY_SECONDS)] = 0.0
    idempotency_key: Annotated[str, msgspec.Meta(min_length=1, max_length=255)] | None = None
    consumer_id: Annotated[str, msgspec.Meta(max_length=MAX_KEY_CHARS)] | None = None


_encode_items = msgspec.json.Encoder().encode


class Enqueued(NamedTuple):
    """The outcome of one enqueue: the stored (or already existing) id. (A tuple: batches make
    hundreds, and a frozen dataclass costs three times as much to build.)"""

    id: str
    queue: str
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class _EnqueueRequest:
    """One enqueue request waiting for a shared statement."""

    items: Sequence[NewMessage]
    batch: bool


@dataclass(frozen=True, slots=True)
class ItemFailure:
    """Why one item of an ack/nack/touch did not apply."""

    id: str
    code: str
    status: str | None = None  # current status, for INVALID_STATE
    current: Mapping[str, Any] | None = None  # the row as found, for LOCK_LOST reports


@dataclass(slots=True)
class Settled:
    """Result of an ack or nack batch: applied rows (input order) and failures."""

    rows: list[Mapping[str, Any]]
    failures: list[ItemFailure]


class MessageService:
    """The hot path. Routes call these methods; each success costs one round trip."""

    def __init__(
        self, db: Database, settings: Settings, queues: QueueService, hub: ChangeHub, waiters: Waiters
    ) -> None:
        self.db = db
        self.settings = settings
        self.queues = queues
        self.hub = hub
        self.waiters = waiters
        self.delays = DuePromoter(db, waiters, settings.reaper_interval_ms / 1000)
        self.coalescing = settings.coalesce_enabled
        batch, inflight = settings.coalesce_max_batch, settings.coalesce_max_inflight or settings.pool_size
        self._enqueues: Coalescer[None, _EnqueueRequest, list[Enqueued]] = Coalescer(
            self._enqueue_coalesced, max_batch=batch, max_inflight=inflight, latency=db.rtt, weight=lambda request: len(request.items)
        )
        self._claims: Coalescer[tuple[QueueRef, str | None], _ClaimRequest, list[Mapping[str, Any]] | None] = Coalescer(
            self._claim_coalesced, max_batch=batch, max_inflight=inflight, latency=db.rtt, weight=lambda request: request.count
        )
        self._acks: Coalescer[None, Sequence[tuple[str, str | None]], Settled] = Coalescer(
            self._ack_coalesced, max_batch=batch, max_inflight=inflight, latency=db.rtt, weight=len,
            identity=lambda items: [mid for mid, _ in items],
        )
        self._nacks: Coalescer[None, NackItem, Settled] = Coalescer(
            self._nack_coalesced, max_batch=batch, max_inflight=inflight, latency=db.rtt, identity=lambda item: (item[0],)
        )

    # ----- enqueue ---------------------------------------------------------------------
    async def enqueue(self, items: Sequence[NewMessage], *, batch: bool = False) -> list[Enqueued]:
        """Store every item or none; 404 if any named queue does not exist."""
        if self.coalescing and items:
            for name in dict.fromkeys(i.queue for i in items):
                await self.queues.resolve(name)  # an unknown queue fails alone, before coalescing
            return await self._enqueues.submit(None, _EnqueueRequest(items, batch))
        return await self._enqueue_now(items, batch=batch)

    async def _enqueue_coalesced(
        self, _: None, requests: list[_EnqueueRequest]
    ) -> list[list[Enqueued] | BaseException]:
        """One statement for concurrent requests, single messages and batches alike.

        Fewer, larger statements cost PostgreSQL less per message (one commit, one trigger
        call, one plan per statement). Each request stays all or nothing: if the shared
        statement fails (other than with a 503), every request runs again alone and gets its
        own outcome.
        """
        flat = [item for request in requests for item in request.items] if len(requests) > 1 else requests[0].items
        try:
            results, inserted = await self._store(flat)
        except RelayError as exc:
            # An unavailable database (503) is no item's fault: running each request again
            # alone held all of them for one more timeout per request, and stored them twice
            # if the shared statement had committed before its connection died.
            if len(requests) == 1 or exc.status == 503:
                raise
            outcomes: list[list[Enqueued] | BaseException] = []
            for request in requests:
                try:
                    outcomes.append(await self._enqueue_now(request.items, batch=request.batch))
                except RelayError as exc:
                    outcomes.append(exc)
            return outcomes
        outcomes = []
        start = 0
        for request in requests:
            part = results[start : start + len(request.items)]
            start += len(request.items)
            try:
                outcomes.append(self._settle_request(request.items, part, request.batch, inserted))
            except RelayError as exc:
                outcomes.append(exc)
        return outcomes

    async def _enqueue_now(self, items: Sequence[NewMessage], *, batch: bool) -> list[Enqueued]:
        results, inserted = await self._store(items)
        return self._settle_request(items, results, batch, inserted)

    def _settle_request(self, items: Sequence[NewMessage], results: Sequence[Outcome], batch: bool,
                        inserted: Mapping[str, int]) -> list[Enqueued]:
        """Announce what one request stored; its outcomes, or its first failed item's error."""
        self._announce_enqueue(items, results, batch, inserted)
        for result in results:
            if isinstance(result, RelayError):
                raise result
        return [r for r in results if isinstance(r, Enqueued)]

    async def _store(self, items: Sequence[NewMessage]) -> tuple[list[Outcome], dict[str, int]]:
        """Insert `items` in one statement (per table); their outcomes and {stored id: max_attempts}.

        Once the statement has committed, an item that cannot be stored after all (see below)
        gets an error as its outcome, for its own request alone: raised, it failed every request
        coalesced with it, whose messages were stored, and a client's retry stored them twice.
        """
        refs = {name: await self.queues.resolve(name) for name in dict.fromkeys(i.queue for i in items)}
        ids = _new_ids(items, refs)
        try:
            inserted = await self._insert(items, ids, refs)
        except _StaleQueues:
            refs = {name: await self.queues.resolve(name, refresh=True) for name in refs}
            ids = _new_ids(items, refs)
            inserted = await self._insert(items, ids, refs)
        for attempt in range(HOLDER_RETRIES + 1):
            results, vanished = await self._resolve_duplicates(items, ids, inserted, refs)
            if not vanished or attempt == HOLDER_RETRIES:
                break
            # These items' keys were held when they were inserted, and the holders were deleted
            # before the look-up: the keys are free now, so the items are stored after all (a
            # repeat creates nothing only while a holder exists). Answering "retry" instead would
            # leave the rest of the statement stored (the batch no longer all or nothing, and
            # merged requests run again: stored twice).
            again = [items[i] for i in vanished]
            again_ids = _new_ids(again, refs)
            try:
                inserted.update(await self._insert(again, again_ids, refs))
            except _StaleQueues:  # their queue is gone (or renamed) too: they alone are not stored
                for i in vanished:
                    results[i] = RelayError(404, "QUEUE_NOT_FOUND", f"Queue not found: {items[i].queue}")
                return results, inserted
            for index, mid in zip(vanished, again_ids, strict=True):
                ids[index] = mid
        for i in vanished:  # their keys changed hands HOLDER_RETRIES times while we looked
            results[i] = RelayError(409, "INVALID_STATE", "Idempotency key is in use by a message being deleted; retry")
        return results, inserted

    async def _insert(
        self, items: Sequence[NewMessage], ids: list[str], refs: dict[str, QueueRef]
    ) -> dict[str, int]:
        """Insert per table; returns {stored id: its effective max_attempts}."""
        kinds = {ref.kind for ref in refs.values()}
        if len(kinds) == 1:
            return await self._insert_kind(self.db, kinds.pop(), items, ids, refs)
        by_kind: dict[StorageKind, list[int]] = defaultdict(list)
        for index, item in enumerate(items):
            by_kind[refs[item.queue].kind].append(index)

        async def transaction(tx: Transaction) -> dict[str, int]:  # mixed queue types: all or nothing
            inserted: dict[str, int] = {}
            for kind in sorted(by_kind):  # the same table order in every transaction
                indexes = by_kind[kind]
                inserted.update(await self._insert_kind(
                    tx, kind, [items[i] for i in indexes], [ids[i] for i in indexes], refs
                ))
            return inserted

        return await self.db.run_in_transaction(transaction)

    async def _insert_kind(
        self, runner: Any, kind: StorageKind, items: Sequence[NewMessage], ids: list[str],
        refs: dict[str, QueueRef],
    ) -> dict[str, int]:
        """One statement: the items travel as one JSON array, their ids as a text array.

        The usual batch (one queue, the same settings for every message, no idempotency keys)
        sends only ids and payloads instead, so PostgreSQL parses each payload once and nothing
        else per row.
        """
        if len(refs) == 1 and _uniform(items):
            (ref,) = refs.values()
            first = items[0]
            row = await runner.fetchrow(
                QUERIES.get("enqueue_uniform", kind), ",".join(ids),
                (b"[" + b",".join(i.payload for i in items) + b"]").decode(),
                ref.name, ref.id, first.type, first.priority, first.max_attempts, first.ack_timeout, first.delay,
            )
            if not row["all_found"]:
                raise _StaleQueues()
            return dict.fromkeys(ids, row["max_attempts"])  # every row stored, one max_attempts
        if kind == "partitioned":
            items, ids = _first_of_each_key(items, ids)
        queue_names = list(dict.fromkeys(i.queue for i in items)) if len(refs) > 1 else list(refs)
        keys = sorted({(i.queue, i.idempotency_key) for i in items if i.idempotency_key is not None})
        row = await runner.fetchrow(
            QUERIES.get("enqueue", kind), ids, _encode_items(items).decode(), queue_names,
            [refs[name].id for name in queue_names], [q for q, _ in keys], [k for _, k in keys],
        )
        if not row["all_found"]:
            raise _StaleQueues()
        return dict(zip(row["inserted"] or [], row["max_attempts"] or [], strict=True))

    async def _resolve_duplicates(
        self, items: Sequence[NewMessage], ids: list[str], inserted: Mapping[str, int], refs: dict[str, QueueRef]
    ) -> tuple[list[Outcome], list[int]]:
        """Each item's outcome, and the indexes of items whose key holder vanished since the insert
        (their outcome is a placeholder, _VANISHED)."""
        if len(inserted) == len(items):  # `inserted` only holds ids in `ids`: all of them stored
            return [Enqueued(mid, item.queue) for mid, item in zip(ids, items, strict=True)], []
        # Some idempotency keys already existed (in the table, or earlier in this batch).
        first_in_batch: dict[tuple[str, str], str] = {}
        missing: list[tuple[int, str, StorageKind]] = []
        for mid, item in zip(ids, items, strict=True):
            if mid in inserted and item.idempotency_key is not None:
                first_in_batch.setdefault((item.queue, item.idempotency_key), mid)
            elif mid not in inserted and item.idempotency_key is not None:
                ref = refs[item.queue]
                missing.append((ref.id, item.idempotency_key, ref.kind))
        existing: dict[tuple[int, str], str] = {}
        for kind in {k for _, _, k in missing}:
            wanted = [(q, key) for q, key, k in missing if k == kind]
            rows = await self.db.fetch(
                QUERIES.get("existing_by_idempotency_key", kind), [q for q, _ in wanted], [k for _, k in wanted]
            )
            existing.update({(r["queue_id"], r["idempotency_key"]): r["id"] for r in rows})
        results: list[Outcome] = []
        vanished: list[int] = []
        for index, (mid, item) in enumerate(zip(ids, items, strict=True)):
            if mid in inserted:
                results.append(Enqueued(mid, item.queue))
                continue
            key = item.idempotency_key or ""
            found = first_in_batch.get((item.queue, key)) or existing.get((refs[item.queue].id, key))
            if found is None:  # the holder was deleted between our insert and lookup
                vanished.append(index)
                results.append(_VANISHED)
                continue
            results.append(Enqueued(found, item.queue, duplicate=True))
        return results, vanished

    def _announce_enqueue(
        self, items: Sequence[NewMessage], results: Sequence[Outcome], batch: bool, inserted: Mapping[str, int]
    ) -> None:
        now = time.time()
        per_queue: dict[str, list[tuple[NewMessage, str]]] = defaultdict(list)
        for item, result in zip(items, results, strict=True):
            if isinstance(result, Enqueued) and not result.duplicate:
                per_queue[item.queue].append((item, result.id))
        for queue, stored in per_queue.items():
            self.hub.publish(Change(
                "enqueue", queue, rows=_EnqueuedRows(stored, inserted, now), at=now,
                consumer_id=stored[0][0].consumer_id, batch_size=len(items) if batch else None,
            ))
            delays = [i.delay for i, _ in stored if i.delay > 0]
            if delays:  # make the earliest delayed message dequeuable on time (it wakes the waiters)
                self.delays.due_in(min(delays))

    # ----- dequeue ---------------------------------------------------------------------
    async def dequeue(
        self, queue: str, count: int, *, wait: float = 0.0, ack_timeout: float | None = None,
        consumer_id: str | None = None, type_filter: str | None = None, batch: bool = False,
        abandoned: asyncio.Event | None = None,
    ) -> list[Mapping[str, Any]]:
        """Lease up to `count` messages; wait up to `wait` seconds (long-poll) for the first to arrive.

        `abandoned` set (the client is gone) ends the wait without another claim, at the next
        wake-up or recheck.
        """
        deadline = time.monotonic() + max(wait, 0.0)
        ref = await self.queues.resolve(queue)
        while True:
            event = self.waiters.arm(queue, type_filter) if wait > 0 else None
            try:
                started = time.monotonic()
                claimed = await self._claim(ref, count, ack_timeout, consumer_id, type_filter)
                recheck = recheck_after(time.monotonic() - started) if type_filter else LONG_POLL_RECHECK_SECONDS
                if claimed is None:
                    # The queue was deleted, renamed or recreated since `ref` was cached: look
                    # it up again (404 if it is gone) and claim from what the name means now.
                    ref = await self.queues.resolve(queue, refresh=True)
                    continue
                rows = claimed
                if rows or event is None or self.waiters.closing:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    await asyncio.wait_for(event.wait(), min(remaining, recheck))
                except TimeoutError:
                    pass
                if abandoned is not None and abandoned.is_set():
                    break
            finally:
                if event is not None:
                    self.waiters.disarm(queue, event)
        if rows:
            self.hub.publish(Change(
                "dequeue", queue, rows=rows, consumer_id=consumer_id, batch_size=len(rows) if batch else None,
            ))
        return rows

    async def _claim(
        self, ref: QueueRef, count: int, ack_timeout: float | None, consumer_id: str | None, type_filter: str | None
    ) -> list[Mapping[str, Any]] | None:
        """The leased rows; None when `ref` no longer names the queue (nothing was claimed then)."""
        request = _ClaimRequest(count, ack_timeout, consumer_id)
        if self.coalescing:
            return await self._claims.submit((ref, type_filter), request)
        return (await self._claim_coalesced((ref, type_filter), [request]))[0]

    async def _claim_coalesced(
        self, key: tuple[QueueRef, str | None], requests: list[_ClaimRequest]
    ) -> list[list[Mapping[str, Any]] | None]:
        """One claim statement for several dequeue requests; slot n of the claim goes to request n."""
        ref, type_filter = key
        overrides: list[float | None] = []
        consumers: list[str | None] = []
        owner: list[int] = []
        for index, request in enumerate(requests):
            overrides += [request.ack_timeout] * request.count
            consumers += [request.consumer_id] * request.count
            owner += [index] * request.count
        rows = await self.db.fetch(
            QUERIES.get("dequeue" if type_filter is None else "dequeue_typed", ref.kind),
            ref.name, len(owner), overrides, consumers, ref.id, type_filter,
        )
        if rows[0]["slot"] is None:  # nothing claimed: the one row says whether the queue is current
            return [[] if rows[0]["current"] else None for _ in requests]
        shares: list[list[Mapping[str, Any]]] = [[] for _ in requests]
        for row in sorted(rows, key=lambda r: r["slot"]):
            shares[owner[row["slot"] - 1]].append(row)
        claimed: list[list[Mapping[str, Any]] | None] = list(shares)
        return claimed

    # ----- ack ---------------------------------------------------------------------------
    async def ack(self, items: Sequence[tuple[str, str | None]], *, batch: bool = False) -> Settled:
        """Acknowledge leased messages; each item is (id, lock_token or None to skip fencing)."""
        if self.coalescing and items and len({mid for mid, _ in items}) == len(items):
            settled = await self._acks.submit(None, items)  # requests with repeated ids run alone
        else:
            settled = await self._settle(items, _ack_statement)
        self.hub.publish_many(grouped_changes(settled.rows, "acknowledge", at=time.time(),
                                              batch_size=len(items) if batch else None))
        await self._report_lock_lost("acknowledge", settled, items)
        return settled

    async def _ack_coalesced(self, _: None, requests: list[Sequence[tuple[str, str | None]]]) -> list[Settled]:
        """One ack statement for concurrent ack requests, single and batch (ids distinct across them)."""
        flat = [item for items in requests for item in items] if len(requests) > 1 else list(requests[0])
        return _split(await self._settle(flat, _ack_statement), [[mid for mid, _ in items] for items in requests])

    # ----- nack --------------------------------------------------------------------------
    async def nack(self, items: Sequence[NackItem], *, batch: bool = False) -> Settled:
        """Requeue (attempts left, with backoff) or dead-letter; item = (id, token, reason, delay)."""
        if self.coalescing and not batch and len(items) == 1:
            settled = await self._nacks.submit(None, items[0])
        else:
            settled = await self._nack_now(items, batch)
        self.hub.publish_many(grouped_changes(settled.rows, _nack_outcome, at=time.time(),
                                              batch_size=len(items) if batch else None))
        for row in settled.rows:
            if row["due_in"]:  # seconds, as the database counts them (not this host's clock)
                self.delays.due_in(row["due_in"])
        await self._report_lock_lost("nack", settled, [(i[0], i[1]) for i in items])
        return settled

    async def _nack_now(self, items: Sequence[NackItem], batch: bool) -> Settled:
        requeue_default = "NACK - requeued" if batch else None
        by_id = {i[0]: i for i in items}

        def statement(kind: StorageKind, ids: list[str], tokens: list[str | None], qids: list[int] | None) -> tuple[Any, ...]:
            return (
                QUERIES.get("nack", kind), ids, tokens,
                [by_id[i][2] for i in ids], requeue_default, "Max attempts exceeded",
                [by_id[i][3] for i in ids], qids,
            )

        return await self._settle([(i[0], i[1]) for i in items], statement)

    async def _nack_coalesced(self, _: None, items: list[NackItem]) -> list[Settled]:
        """One nack statement for several single-nack requests (distinct ids)."""
        return _split(await self._nack_now(items, batch=False), [[i[0]] for i in items])

    # ----- touch -------------------------------------------------------------------------
    async def touch(self, message_id: str, lock_token: str, extend: float | None) -> Mapping[str, Any]:
        """Extend a lease to now + `extend` (default: the message's ack timeout)."""
        where = storage_of(message_id)
        if where is None:
            raise RelayError(404, "NOT_FOUND", "Message not found", error="NOT_FOUND")
        kind, qid = where
        row = await self.db.fetchrow(QUERIES.get("touch", kind), message_id, lock_token, extend, qid)
        if row is not None:
            self.hub.publish(Change("touch", row["queue_name"], rows=[row], consumer_id=row["consumer_id"],
                                    context={"extend_seconds": row["extended_by"]}))
            return row
        current = await self._diagnose(kind, [message_id], [qid] if qid is not None else None)
        found = current.get(message_id)
        if found is None or found["status"] != "processing":
            raise RelayError(404, "NOT_FOUND", "Message not found", error="NOT_FOUND")
        await self.hub.publish_durable(_lock_stolen("touch", found, lock_token))
        raise RelayError(409, "LOCK_LOST", "Lock token mismatch", error="LOCK_LOST")

    # ----- shared settle logic -----------------------------------------------------------
    async def _settle(self, items: Sequence[tuple[str, str | None]], statement: Any) -> Settled:
        """Apply ack/nack statements per table, then explain every item that did not apply."""
        failures: dict[int, ItemFailure] = {}
        seen: set[str] = set()
        by_kind: dict[StorageKind, list[int]] = defaultdict(list)
        for index, (mid, _) in enumerate(items):
            if mid in seen:
                failures[index] = ItemFailure(mid, "DUPLICATE")
                continue
            seen.add(mid)
            where = storage_of(mid)
            if where is None:
                failures[index] = ItemFailure(mid, "NOT_FOUND")
                continue
            by_kind[where[0]].append(index)
        applied: dict[str, Mapping[str, Any]] = {}
        for kind, indexes in by_kind.items():
            ids = [items[i][0] for i in indexes]
            tokens = [items[i][1] for i in indexes]
            qids = queue_ids_of(ids)
            sql, *args = statement(kind, ids, tokens, qids)
            rows = await self.db.fetch(sql, *args)
            applied.update((r["id"], r) for r in rows)
            lost = [mid for mid in ids if mid not in applied]
            if lost:
                current = await self._diagnose(kind, lost, queue_ids_of(lost))
                for index in indexes:
                    mid, token = items[index]
                    if mid in applied:
                        continue
                    found = current.get(mid)
                    if found is None:
                        failures[index] = ItemFailure(mid, "NOT_FOUND")
                    elif found["status"] != "processing":
                        failures[index] = ItemFailure(mid, "INVALID_STATE", found["status"])
                    else:
                        failures[index] = ItemFailure(mid, "LOCK_LOST", found["status"], found)
        ordered_rows = [applied[mid] for mid, _ in items if mid in applied]
        # Keep the input order for failures, and dedupe rows of repeated ids.
        unique_rows = list({r["id"]: r for r in ordered_rows}.values())
        return Settled(unique_rows, [failures[i] for i in sorted(failures)])

    async def _diagnose(self, kind: StorageKind, ids: list[str], qids: list[int] | None) -> dict[str, Mapping[str, Any]]:
        rows = await self.db.fetch(QUERIES.get("diagnose", kind), ids, qids)
        found: dict[str, Mapping[str, Any]] = {r["id"]: r for r in rows}
        return found

    async def _report_lock_lost(self, op: str, settled: Settled, items: Sequence[tuple[str, str | None]]) -> None:
        tokens = dict(items)
        await self.hub.publish_durable_many([
            _lock_stolen(op, failure.current or {"id": failure.id}, tokens.get(failure.id))
            for failure in settled.failures if failure.code == "LOCK_LOST"
        ])


# Inserts again of items whose idempotency key holder vanished before the look-up (_store).
HOLDER_RETRIES = 3
# One item's outcome in a shared insert: stored (or found), or an error for its request alone.
Outcome = Enqueued | RelayError
_VANISHED = RelayError(409, "INVALID_STATE", "Idempotency key is in use by a message being deleted; retry")


def _first_of_each_key(items: Sequence[NewMessage], ids: list[str]) -> tuple[list[NewMessage], list[str]]:
    """The items to insert into a partitioned table: each (queue, idempotency key) once.

    Time partitions cannot hold a unique index across a queue, and the statement's existence
    check does not see the rows the statement itself inserts, so a key repeated within one
    statement (a batch, or concurrent single enqueues merged into one) would be stored each time.
    The left-out items resolve to the first one's id (`_resolve_duplicates`).
    """
    seen: set[tuple[str, str]] = set()
    kept_items: list[NewMessage] = []
    kept_ids: list[str] = []
    for item, mid in zip(items, ids, strict=True):
        if item.idempotency_key is not None:
            key = (item.queue, item.idempotency_key)
            if key in seen:
                continue
            seen.add(key)
        kept_items.append(item)
        kept_ids.append(mid)
    return kept_items, kept_ids


def _uniform(items: Sequence[NewMessage]) -> bool:
    """Every message has the first one's settings and none carries an idempotency key."""
    first = items[0]
    key = (first.type, first.priority, first.max_attempts, first.ack_timeout, first.delay)
    return first.idempotency_key is None and all(
        (i.type, i.priority, i.max_attempts, i.ack_timeout, i.delay) == key and i.idempotency_key is None
        for i in items
    )


def _new_ids(items: Sequence[NewMessage], refs: dict[str, QueueRef]) -> list[str]:
    """Ids for a batch: one random draw for the usual single-queue batch."""
    if len(refs) == 1:
        (ref,) = refs.values()
        return new_message_ids(ref.kind, ref.id, len(items))
    return [new_message_id(refs[i.queue].kind, refs[i.queue].id) for i in items]


class _EnqueuedRows(Sequence[Mapping[str, Any]]):
    """An enqueue's changed rows, built only if a listener reads them (most only count them)."""

    __slots__ = ("_stored", "_inserted", "_now", "_rows")

    def __init__(self, stored: list[tuple[NewMessage, str]], inserted: Mapping[str, int], now: float) -> None:
        self._stored, self._inserted, self._now = stored, inserted, now
        self._rows: list[Mapping[str, Any]] | None = None

    def __len__(self) -> int:
        return len(self._stored)

    @overload
    def __getitem__(self, index: int) -> Mapping[str, Any]: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Mapping[str, Any]]: ...
    def __getitem__(self, index: int | slice) -> Mapping[str, Any] | Sequence[Mapping[str, Any]]:
        if self._rows is None:
            now = self._now
            self._rows = [{
                "id": mid, "queue_name": item.queue, "type": item.type, "priority": item.priority,
                "payload": item.payload, "payload_size": len(item.payload), "attempt_count": 0,
                "max_attempts": self._inserted.get(mid), "consumer_id": item.consumer_id, "created_at": now,
                "available_at": now + item.delay, "status": "queued",
            } for item, mid in self._stored]
        return self._rows[index]


def _split(settled: Settled, requests: list[list[str]]) -> list[Settled]:
    """One coalesced ack/nack result as one Settled per request (ids are distinct), in input order."""
    applied = {row["id"]: row for row in settled.rows}
    failed = {f.id: f for f in settled.failures}
    return [
        Settled([applied[mid] for mid in ids if mid in applied], [failed[mid] for mid in ids if mid in failed])
        for ids in requests
    ]


@dataclass(frozen=True, slots=True)
class _ClaimRequest:
    """One dequeue request inside a coalesced claim."""

    count: int
    ack_timeout: float | None
    consumer_id: str | None


def _ack_statement(kind: StorageKind, ids: list[str], tokens: list[str | None], qids: list[int] | None) -> tuple[Any, ...]:
    return (QUERIES.get("ack", kind), ids, tokens, qids)


class _StaleQueues(Exception):
    """The queue cache disagreed with the database (queue deleted, recreated or renamed)."""


def _nack_outcome(row: Row) -> str:
    return "move_to_dlq" if row["status"] == "dead" else "nack"



def _lock_stolen(op: str, current: Mapping[str, Any], token: str | None) -> Change:
    """The lock_stolen anomaly of a stale lock token, recorded before the 409 leaves (API.md §6)."""
    return Change("lock_stolen", current.get("queue_name"), rows=[dict(current)],
                  context={"operation": op, "presented_lock_token": token})
