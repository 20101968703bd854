-- Named queries for the message tables. `{messages}` is replaced by one of the three
-- whitelisted message tables, `{columns}` by the Message column list, `{event_columns}` by the
-- narrower list the activity log needs, `{queue_filter}` by the partition-pruning condition.
-- Every value arrives as a bind parameter; nothing here is built from user input.

-- name: enqueue
-- One statement for one or many messages. $2 is the messages as one JSON array (API.md's field
-- names; parsed by PostgreSQL in C rather than as ten parameter arrays), zipped with their ids
-- in $1. It inserts nothing unless every named queue still exists with the id the caller
-- resolved (cache check), and relay.queue_open holds each queue's shared advisory lock until
-- commit so a concurrent delete or rename cannot orphan the new rows (migration 0009).
-- `keys` first takes the lock of every idempotency key ($5 queues, $6 keys: sorted, distinct),
-- in that one order: statements with the same new keys in other orders (producers retrying one
-- batch) each locked them as they inserted, in their own order, and deadlocked. It is the lock
-- relay.idempotency_key_free takes again (a no-op then) for partitioned queues.
WITH q AS (
    SELECT id, name, ack_timeout_seconds, max_attempts FROM relay.queues
    WHERE id = ANY($4::bigint[]) AND relay.queue_open(id, name)
), ok AS (
    SELECT count(*) = cardinality($4::bigint[]) AS all_found
    FROM q JOIN unnest($3::text[], $4::bigint[]) AS d(name, id) ON d.id = q.id AND d.name = q.name
), keys AS (
    SELECT count(pg_advisory_xact_lock(1768188793, hashtext(k.queue || '/' || k.key))) AS locked
    FROM (SELECT * FROM unnest($5::text[], $6::text[]) WITH ORDINALITY AS u(queue, key, ord) ORDER BY u.ord) AS k
), ins AS (
    INSERT INTO {messages} AS m (id, queue_id, queue_name, type, payload, priority, max_attempts,
                                 ack_timeout_seconds, available_at, delayed, idempotency_key, payload_size)
    SELECT i.id, q.id, q.name, i.type, coalesce(i.payload, 'null'), coalesce(i.priority, 0),
           coalesce(i.max_attempts, q.max_attempts),
           coalesce(nullif(i.ack_timeout, 0), q.ack_timeout_seconds),
           now() + make_interval(secs => coalesce(i.delay, 0)), coalesce(i.delay, 0) > 0, i.idem_key,
           coalesce(octet_length(i.payload::text), 4)
    FROM ROWS FROM (
            json_to_recordset($2::json) AS (queue text, type text, payload json, priority int, "ackTimeout" int,
                                            "maxAttempts" int, "delaySeconds" float8, "idempotencyKey" text),
            unnest($1::text[])
         ) WITH ORDINALITY AS i(queue_name, type, payload, priority, ack_timeout, max_attempts, delay, idem_key,
                                id, ord)
    JOIN q ON q.name = coalesce(i.queue_name, 'default')
    WHERE (SELECT all_found FROM ok) AND (SELECT locked FROM keys) IS NOT NULL {idempotency_guard}
    ORDER BY i.ord
    {on_conflict}
    RETURNING m.id, m.max_attempts
)
SELECT (SELECT all_found FROM ok) AS all_found, array_agg(ins.id) AS inserted,
       array_agg(ins.max_attempts) AS max_attempts
FROM ins

-- name: enqueue_uniform
-- `enqueue` for the usual batch: one queue ($3 name, $4 id, checked as above), one set of
-- settings ($5..$9), no idempotency keys. The messages travel as two texts rather than arrays
-- (asyncpg encodes arrays element by element, type checks included, a fifth of the server's CPU
-- on batch enqueue): $1 the ids joined by commas (an id never contains one), $2 the payloads as
-- one JSON array, parsed once; each element keeps its text, as sent. Every row is stored (no key
-- can conflict) with the same max_attempts: one value comes back.
-- The queue is guarded as in `enqueue`: relay.queue_open (a shared advisory lock, then a check
-- with a fresh snapshot) rather than FOR KEY SHARE, which writes the queue's row every time.
WITH q AS (
    SELECT id, name, ack_timeout_seconds, max_attempts FROM relay.queues
    WHERE id = $4 AND name = $3 AND relay.queue_open($4, $3)
), ins AS (
    INSERT INTO {messages} AS m (id, queue_id, queue_name, type, payload, priority, max_attempts,
                                 ack_timeout_seconds, available_at, delayed, payload_size)
    SELECT i.id, q.id, q.name, $5, i.payload, $6, coalesce($7, q.max_attempts),
           coalesce(nullif($8, 0), q.ack_timeout_seconds), now() + make_interval(secs => $9::float8), $9 > 0,
           octet_length(i.payload::text)
    FROM q, ROWS FROM (unnest(string_to_array($1::text, ',')), json_array_elements($2::json))
        WITH ORDINALITY AS i(id, payload, ord)
    ORDER BY i.ord
    RETURNING m.max_attempts
)
SELECT EXISTS (SELECT 1 FROM q) AS all_found, max(ins.max_attempts) AS max_attempts FROM ins

-- name: existing_by_idempotency_key
-- The holders of (queue id, key) pairs, under each queue's name as it is now: looked up by the
-- name the request used, a holder whose queue was renamed since the insert was not found, and
-- the item was inserted again under a name that no longer existed (a 500 for every request
-- coalesced with it, whose messages were stored).
SELECT k.queue_id, k.key AS idempotency_key, m.id
FROM unnest($1::bigint[], $2::text[]) AS k(queue_id, key)
JOIN relay.queues AS q ON q.id = k.queue_id
JOIN {messages} AS m ON m.queue_name = q.name AND m.idempotency_key = k.key AND m.queue_id = k.queue_id

-- name: dequeue
-- Claim up to $2 messages in priority then FIFO order and hand slot n to requester n: $3 and
-- $4 hold each slot's lease override and consumer id, so requests coalesced into one claim
-- each get their own lease. SKIP LOCKED lets concurrent claims take disjoint rows.
-- An empty claim still answers one row (slot NULL) whose `current` says whether the queue is
-- still the one the caller resolved ($5 under the name $1): an empty poll, the common case of
-- an idle worker fleet, costs one round trip instead of a claim plus a look-up.
-- The type filter: this block is also `dequeue_typed`, whose `type = $6` the dequeue index checks
-- (its last column, migration 0018); one statement for both, `($6 IS NULL OR type = $6)`, kept
-- it out of the index in a generic plan.
WITH picked AS (
    SELECT id, priority, created_at, seq FROM {messages} AS m
    WHERE queue_name = $1 AND queue_id = $5 AND status = 'queued' AND NOT delayed AND available_at <= now()
      {type_filter}
    ORDER BY priority DESC, created_at, seq
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), numbered AS (
    SELECT id, row_number() OVER (ORDER BY priority DESC, created_at, seq) AS slot FROM picked
), claimed AS (
    UPDATE {messages} AS m SET
        status = 'processing',
        lock_token = replace(gen_random_uuid()::text, '-', ''),
        locked_until = now() + make_interval(secs => coalesce(w.ack_override, m.ack_timeout_seconds)),
        dequeued_at = now(),
        attempt_count = m.attempt_count + 1,
        consumer_id = w.consumer
    FROM numbered AS n
    JOIN unnest($3::float8[], $4::text[]) WITH ORDINALITY AS w(ack_override, consumer, slot) ON w.slot = n.slot
    WHERE m.id = n.id AND m.queue_id = $5
    RETURNING {columns}, n.slot
)
SELECT c.*, q.current
FROM (SELECT EXISTS (SELECT 1 FROM relay.queues WHERE id = $5 AND name = $1) AS current) AS q
LEFT JOIN claimed AS c ON true

-- name: ack
-- $3: NULL, or the queue ids of partitioned ids (prunes to their subtrees).
-- `(m.status = 'processing') IS TRUE`, here and in nack and touch: the same test, but one the
-- planner cannot match to the lease index's predicate, so rows are always found by id. With
-- `m.status = 'processing'` it could walk the whole lease index instead, which is cheap only
-- while the statistics are right: after a burst of dequeues not yet analyzed (200,000 leases),
-- every single ack read all of them (200-650 ms each).
UPDATE {messages} AS m SET
    status = 'acknowledged', acknowledged_at = now(), lock_token = NULL, locked_until = NULL
FROM unnest($1::text[], $2::text[]) AS i(id, token)
WHERE m.id = i.id {queue_filter:3} AND (m.status = 'processing') IS TRUE
  AND (i.token IS NULL OR m.lock_token = i.token)
RETURNING {event_columns}, extract(epoch FROM m.acknowledged_at)::float8 AS acknowledged_at

-- name: diagnose
-- Failure path only: why an ack, nack or touch did not apply.
SELECT m.id, m.status, m.lock_token, m.queue_name, m.consumer_id FROM {messages} AS m
WHERE m.id = ANY($1::text[]) {queue_filter:2}

-- name: nack
-- Requeue with backoff while attempts remain, else dead-letter. $4 and $5 are the default
-- reasons for the requeue and dead-letter cases. The self-join `prev` (the row before this
-- update) returns the consumer that failed, which a requeue clears, for the activity log and stats;
-- `d.secs`, the requeue's delay, is worked out once for available_at and delayed.
UPDATE {messages} AS m SET
    status = CASE WHEN m.attempt_count >= m.max_attempts THEN 'dead' ELSE 'queued' END,
    last_error = CASE WHEN m.attempt_count >= m.max_attempts THEN coalesce(i.reason, $5)
                      ELSE coalesce(i.reason, $4) END,
    lock_token = NULL,
    locked_until = NULL,
    consumer_id = CASE WHEN m.attempt_count >= m.max_attempts THEN m.consumer_id END,
    dequeued_at = CASE WHEN m.attempt_count >= m.max_attempts THEN m.dequeued_at END,
    available_at = CASE WHEN m.attempt_count >= m.max_attempts THEN m.available_at
        ELSE now() + make_interval(secs => d.secs) END,
    delayed = m.attempt_count < m.max_attempts AND d.secs > 0
FROM unnest($1::text[], $2::text[], $3::text[], $6::float8[]) AS i(id, token, reason, delay),
     {messages} AS prev CROSS JOIN LATERAL (SELECT coalesce(i.delay, {backoff:prev}) AS secs) AS d
WHERE m.id = i.id {queue_filter:7} AND (m.status = 'processing') IS TRUE
  AND (i.token IS NULL OR m.lock_token = i.token)
  AND prev.id = m.id AND prev.queue_id = m.queue_id
RETURNING {event_columns}, prev.lock_token AS prev_lock_token, prev.consumer_id AS prev_consumer_id,
          CASE WHEN m.delayed THEN d.secs END AS due_in

-- name: touch
UPDATE {messages} AS m SET locked_until = now() + make_interval(secs => coalesce($3::float8, m.ack_timeout_seconds))
WHERE m.id = $1 {queue_filter_single:4} AND (m.status = 'processing') IS TRUE AND m.lock_token = $2
RETURNING {event_columns}, extract(epoch FROM m.locked_until)::float8 AS new_locked_until,
          extract(epoch FROM m.locked_until - now())::float8 AS extended_by

-- name: reap
-- Reclaim expired leases. SKIP LOCKED makes several server processes share the work safely.
-- Joining on queue_id too lets the partitioned table reach each row through its primary key
-- (queue_id, id, created_at) instead of scanning every partition.
WITH expired AS (
    SELECT id, queue_id, consumer_id, lock_token, locked_until, {backoff:m} AS backoff FROM {messages} AS m
    WHERE status = 'processing' AND locked_until < now()
    ORDER BY locked_until
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE {messages} AS m SET
    status = CASE WHEN m.attempt_count >= m.max_attempts THEN 'dead' ELSE 'queued' END,
    last_error = CASE WHEN m.attempt_count >= m.max_attempts THEN 'Timeout after max attempts'
                      ELSE 'Timeout - requeued' END,
    lock_token = NULL,
    locked_until = NULL,
    consumer_id = CASE WHEN m.attempt_count >= m.max_attempts THEN m.consumer_id END,
    dequeued_at = CASE WHEN m.attempt_count >= m.max_attempts THEN m.dequeued_at END,
    available_at = CASE WHEN m.attempt_count >= m.max_attempts THEN m.available_at
        ELSE now() + make_interval(secs => e.backoff) END,
    delayed = m.attempt_count < m.max_attempts AND e.backoff > 0
FROM expired AS e
WHERE m.id = e.id AND m.queue_id = e.queue_id
RETURNING {event_columns}, e.consumer_id AS prev_consumer_id, e.lock_token AS prev_lock_token,
          extract(epoch FROM now() - e.locked_until)::float8 AS overdue_seconds

-- name: promote
-- Delayed messages whose time has come join the dequeue index (migration 0015): up to $1 of
-- them, oldest due first, through messages_delayed_idx. SKIP LOCKED lets every server process
-- run it; an admin move or delete holding a row lock only puts that row off to the next pass.
-- Answers how many each queue gained and of which types, for waking its parked long-polls that
-- can take them, and one row more (queue NULL) saying in how many seconds the next delayed
-- message is due (NULL: none is waiting).
WITH due AS (
    SELECT id, queue_id FROM {messages} AS m
    WHERE status = 'queued' AND delayed AND available_at <= now()
    ORDER BY available_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), promoted AS (
    UPDATE {messages} AS m SET delayed = false
    FROM due AS d
    WHERE m.id = d.id AND m.queue_id = d.queue_id
    RETURNING m.queue_name, m.type
)
SELECT queue_name, count(*)::int AS n, array_agg(DISTINCT type) AS types, NULL::float8 AS next_due_in
FROM promoted GROUP BY queue_name
UNION ALL
SELECT NULL, 0, NULL, extract(epoch FROM min(available_at) - now())::float8 FROM {messages}
WHERE status = 'queued' AND delayed AND available_at > now()
