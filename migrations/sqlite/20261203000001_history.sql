-- Every outcome remembered. An event keeps what the relay computed at its
-- receipt (`mrr`, the customer's `history`) as JSON, so a retry or a
-- replay renders the same message; `source` tells Raaft's events from the
-- digests the relay makes. The customer column holds the history's key
-- (erasure finds a customer's events through their flows; no index here,
-- which every event would pay for).
ALTER TABLE events ADD COLUMN facts TEXT;
ALTER TABLE events ADD COLUMN source TEXT NOT NULL DEFAULT 'raaft';

-- A delivery made with its payload already rendered (a digest) sends that
-- payload on every attempt and replay.
ALTER TABLE deliveries ADD COLUMN payload TEXT;

-- One compact row per flow of a customer, kept for [history] retention
-- (`record` is JSON; what the counts need has columns of its own). Flows
-- are pruned by `event_id`, a ULID that sorts by time: no index on their
-- receipt time to keep up on every event.
CREATE TABLE flows (
    event_id TEXT PRIMARY KEY,
    customer TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    saved BIGINT NOT NULL,
    canceled BIGINT NOT NULL,
    offered BIGINT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX flows_customer ON flows (customer, received_at);

-- One row per customer with flows: the counts ingest reads, one row
-- whatever the number of flows. Kept in step with `flows` by ingest,
-- retention and forget.
CREATE TABLE customer_histories (
    customer TEXT PRIMARY KEY,
    flows BIGINT NOT NULL,
    saved BIGINT NOT NULL,
    canceled BIGINT NOT NULL,
    first_seen BIGINT NOT NULL,
    last_save_at BIGINT,
    last_save TEXT,
    last_offer_at BIGINT,
    last_offer TEXT
);
CREATE INDEX customer_histories_first_seen ON customer_histories (first_seen);

-- One row per digest window: the claim that makes it sent once, whichever
-- replica or restart gets there first. A window skipped (older than
-- [history] catch_up) has no event.
CREATE TABLE digest_windows (
    digest TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    window_end BIGINT NOT NULL,
    event_id TEXT,
    claimed_at BIGINT NOT NULL,
    PRIMARY KEY (digest, window_start)
);
CREATE INDEX digest_windows_end ON digest_windows (digest, window_end);
