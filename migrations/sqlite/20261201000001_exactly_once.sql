-- An attempt counts from its claim (an attempt cut short by a crash still
-- counts toward max_attempts), and a replay asked for while an attempt is
-- under way waits for that attempt instead of overlapping it.
ALTER TABLE deliveries ADD COLUMN replay_requested INTEGER NOT NULL DEFAULT 0;

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

-- The first release's migrations were run by another tool.
DROP TABLE IF EXISTS _sqlx_migrations;
