-- Named queries of the activity log, anomalies and consumer stats. Filters use the
-- `($n IS NULL OR ...)` form so every statement is static and prepared once; values are binds.
-- An entry's JSON is stored whole in `entry`; `log_id` and `timestamp` come from their columns.

-- name: activity_filter
-- The WHERE clause shared by listing and counting ($1..$8).
($1::text IS NULL OR l.message_id = $1)
AND ($2::text IS NULL OR l.consumer_id = $2)
AND ($3::text[] IS NULL OR l.action = ANY($3))
AND ($4::text IS NULL OR l.queue = $4)
AND ($5::float8 IS NULL OR l.ts >= to_timestamp($5))
-- end_time is inclusive of its whole second, since entries show floored seconds.
AND ($6::float8 IS NULL OR l.ts < to_timestamp(CASE WHEN $6 = floor($6) THEN $6 + 1 ELSE $6 END))
AND ($7::bool IS NULL OR NOT $7 OR l.anomaly_type IS NOT NULL)
AND ($8::text IS NULL OR l.anomaly_type = $8)
AND ($9::text IS NULL OR l.anomaly_severity = $9)

-- name: activity_entry_json
-- The API's ActivityEntry: the stored entry plus its id and event time (Unix seconds). Entries are
-- stored without their null fields; {blank_entry} (every field, null) puts them back.
({blank_entry} || l.entry::jsonb || jsonb_build_object('log_id', l.log_id::text, 'timestamp', floor(extract(epoch FROM l.ts))::bigint))::text

-- name: anomaly_json
(jsonb_build_object('log_id', l.log_id::text, 'message_id', l.message_id, 'action', l.action,
    'timestamp', floor(extract(epoch FROM l.ts))::bigint, 'queue', l.queue, 'consumer_id', l.consumer_id,
    'message_type', l.entry -> 'message_type', 'payload', l.entry -> 'payload', 'anomaly', l.entry -> 'anomaly'))::text

-- name: anomaly_summary
SELECT l.anomaly_type, l.anomaly_severity, count(*) AS n
FROM relay.activity_log l WHERE l.anomaly_type IS NOT NULL AND {filter}
GROUP BY 1, 2

-- name: activity_history
SELECT {entry_json} AS entry FROM relay.activity_log l
WHERE l.message_id = $1
ORDER BY l.ts, l.log_id

-- name: activity_clear
WITH a AS (DELETE FROM relay.activity_log RETURNING 1), s AS (DELETE FROM relay.consumer_stats RETURNING 1)
SELECT (SELECT count(*) FROM a) AS entries, (SELECT count(*) FROM s) AS stats

-- name: activity_prune
-- Retention: delete a bounded batch of old entries per statement so no single delete runs long.
WITH old AS (
    SELECT log_id FROM relay.activity_log WHERE ts < now() - make_interval(secs => $1::float8 * 3600) LIMIT $2
)
DELETE FROM relay.activity_log l USING old WHERE l.log_id = old.log_id

-- name: stats_add
-- The tail of an INSERT INTO relay.consumer_stats AS s: counts added to the stored totals.
ON CONFLICT (consumer_id, queue) DO UPDATE SET
    dequeue_count = s.dequeue_count + excluded.dequeue_count,
    ack_count = s.ack_count + excluded.ack_count,
    fail_count = s.fail_count + excluded.fail_count,
    last_dequeue = greatest(s.last_dequeue, excluded.last_dequeue),
    last_ack = greatest(s.last_ack, excluded.last_ack)

-- name: stats_upsert
-- One statement per flush: per (consumer, queue) deltas, added to the stored totals.
INSERT INTO relay.consumer_stats AS s (consumer_id, queue, dequeue_count, ack_count, fail_count, last_dequeue, last_ack)
SELECT u.c, u.q, u.d, u.a, u.f, to_timestamp(u.ld), to_timestamp(u.la)
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::float8[], $7::float8[])
     AS u(c, q, d, a, f, ld, la)
{stats_add}

-- name: stats_rename
-- A renamed queue's stats ($1 -> $2), added to rows the new name may already have: a dequeue in
-- flight during an earlier rename flushes its counts under the old name after it, and renaming
-- back onto that name made a plain UPDATE break the primary key (a 500, every time).
WITH moved AS (DELETE FROM relay.consumer_stats WHERE queue = $1 RETURNING *)
INSERT INTO relay.consumer_stats AS s (consumer_id, queue, dequeue_count, ack_count, fail_count, last_dequeue, last_ack)
SELECT consumer_id, $2, dequeue_count, ack_count, fail_count, last_dequeue, last_ack FROM moved
{stats_add}

-- name: stats_select
SELECT consumer_id, queue, dequeue_count, ack_count, fail_count,
       extract(epoch FROM last_dequeue)::float8 AS last_dequeue, extract(epoch FROM last_ack)::float8 AS last_ack
FROM relay.consumer_stats WHERE ($1::text IS NULL OR consumer_id = $1)
