-- Relay Queue schema, version 1.
-- Three message tables share one column layout: `messages` (durable), `messages_unlogged`
-- (UNLOGGED: no WAL, lost on a crash) and `messages_partitioned` (LIST by queue, each queue's
-- subtree RANGE-partitioned by created_at so retention drops whole partitions).
CREATE SCHEMA IF NOT EXISTS relay;

CREATE TABLE relay.queues (
    id                  bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    name                text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_-]{1,64}$'),
    queue_type          text NOT NULL DEFAULT 'standard'
                        CHECK (queue_type IN ('standard', 'unlogged', 'partitioned')),
    ack_timeout_seconds integer NOT NULL CHECK (ack_timeout_seconds > 0),
    max_attempts        integer NOT NULL CHECK (max_attempts > 0),
    retry_delay_seconds integer NOT NULL DEFAULT 0 CHECK (retry_delay_seconds >= 0),
    partition_interval  text CHECK (partition_interval IN ('hourly', 'daily', 'weekly')),
    retention_interval  text,
    description         text CHECK (length(description) <= 500),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE relay.messages (
    id                  text PRIMARY KEY,
    seq                 bigint GENERATED ALWAYS AS IDENTITY,
    queue_id            bigint NOT NULL,
    queue_name          text NOT NULL,
    type                text,
    payload             json,
    priority            smallint NOT NULL DEFAULT 0 CHECK (priority BETWEEN 0 AND 9),
    status              text NOT NULL DEFAULT 'queued'
                        CHECK (status IN ('queued', 'processing', 'acknowledged', 'dead', 'archived')),
    attempt_count       integer NOT NULL DEFAULT 0,
    max_attempts        integer NOT NULL,
    ack_timeout_seconds integer NOT NULL,
    lock_token          text,
    locked_until        timestamptz,
    consumer_id         text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    available_at        timestamptz NOT NULL DEFAULT now(),
    dequeued_at         timestamptz,
    acknowledged_at     timestamptz,
    last_error          text,
    payload_size        integer NOT NULL DEFAULT 0,
    idempotency_key     text
) WITH (fillfactor = 80);
-- Dequeue reads only this partial index, so its cost does not grow with finished messages.
CREATE INDEX messages_dequeue_idx ON relay.messages (queue_name, priority DESC, created_at, seq)
    WHERE status = 'queued';
CREATE INDEX messages_lease_idx ON relay.messages (locked_until) WHERE status = 'processing';
CREATE INDEX messages_status_idx ON relay.messages (queue_name, status, created_at);
CREATE INDEX messages_created_idx ON relay.messages (created_at);
CREATE UNIQUE INDEX messages_idempotency_idx ON relay.messages (queue_name, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE UNLOGGED TABLE relay.messages_unlogged (LIKE relay.messages INCLUDING ALL);

CREATE TABLE relay.messages_partitioned (
    LIKE relay.messages INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING IDENTITY,
    -- A partitioned table's keys must include the partition columns.
    PRIMARY KEY (queue_id, id, created_at)
) PARTITION BY LIST (queue_id);
CREATE INDEX messages_partitioned_dequeue_idx
    ON relay.messages_partitioned (queue_name, priority DESC, created_at, seq) WHERE status = 'queued';
CREATE INDEX messages_partitioned_lease_idx
    ON relay.messages_partitioned (locked_until) WHERE status = 'processing';
CREATE INDEX messages_partitioned_status_idx
    ON relay.messages_partitioned (queue_name, status, created_at);
CREATE INDEX messages_partitioned_created_idx ON relay.messages_partitioned (created_at);
CREATE INDEX messages_partitioned_idempotency_idx
    ON relay.messages_partitioned (queue_name, idempotency_key) WHERE idempotency_key IS NOT NULL;

CREATE TABLE relay.activity_log (
    log_id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ts                  timestamptz NOT NULL,
    action              text NOT NULL,
    message_id          text,
    queue               text,
    consumer_id         text,
    anomaly_type        text,
    anomaly_severity    text,
    entry               jsonb NOT NULL
);
CREATE INDEX activity_log_ts_idx ON relay.activity_log (ts DESC, log_id DESC);
CREATE INDEX activity_log_message_idx ON relay.activity_log (message_id, ts, log_id);
CREATE INDEX activity_log_anomaly_idx ON relay.activity_log (ts DESC) WHERE anomaly_type IS NOT NULL;

CREATE TABLE relay.consumer_stats (
    consumer_id         text NOT NULL,
    queue               text NOT NULL,
    dequeue_count       bigint NOT NULL DEFAULT 0,
    ack_count           bigint NOT NULL DEFAULT 0,
    fail_count          bigint NOT NULL DEFAULT 0,
    last_dequeue        timestamptz,
    last_ack            timestamptz,
    PRIMARY KEY (consumer_id, queue)
);
