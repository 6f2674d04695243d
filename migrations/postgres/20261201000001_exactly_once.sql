-- PostgreSQL's TEXT cannot hold NUL: what comes from outside (event bodies
-- and the fields copied from them, rendered payloads, receivers' replies,
-- error texts that quote them) is kept as bytes.
ALTER TABLE events
    ALTER COLUMN body TYPE BYTEA USING convert_to(body, 'UTF8'),
    ALTER COLUMN outcome TYPE BYTEA USING convert_to(outcome, 'UTF8'),
    ALTER COLUMN customer TYPE BYTEA USING convert_to(customer, 'UTF8');
ALTER TABLE attempts
    ALTER COLUMN response TYPE BYTEA USING convert_to(response, 'UTF8'),
    ALTER COLUMN error TYPE BYTEA USING convert_to(error, 'UTF8'),
    ALTER COLUMN payload TYPE BYTEA USING convert_to(payload, 'UTF8');
ALTER TABLE deliveries
    ALTER COLUMN last_error TYPE BYTEA USING convert_to(last_error, 'UTF8');

-- An attempt counts from its claim (an attempt cut short by a crash still
-- counts toward max_attempts), and a replay asked for while an attempt is
-- under way waits for that attempt instead of overlapping it.
ALTER TABLE deliveries ADD COLUMN replay_requested BOOLEAN NOT NULL DEFAULT false;

-- Claims read one range of a small index of pending deliveries: a leased
-- delivery is due again when its lease runs out, so its next_attempt_at
-- moves with its lease_until. A claim is found by its delivery, never by
-- its owner. Retention reads deliveries by status and age.
UPDATE deliveries SET next_attempt_at = lease_until
    WHERE status = 'pending' AND lease_until IS NOT NULL AND lease_until > next_attempt_at;
DROP INDEX deliveries_due;
DROP INDEX deliveries_lease;
CREATE INDEX deliveries_pending ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_status ON deliveries (status, updated_at);
ALTER TABLE deliveries SET (fillfactor = 80);

-- The first release's idempotency keys are recomputed from their events
-- when the store is next opened (a stable hash now); until then they wait
-- here, and this table stays empty afterwards.
CREATE TABLE dedup_legacy AS TABLE dedup;
TRUNCATE dedup;
