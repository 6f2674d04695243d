-- An attempt counts from its claim (an attempt cut short by a crash still
-- counts toward max_attempts), and a replay asked for while an attempt is
-- under way waits for that attempt instead of overlapping it.
ALTER TABLE deliveries ADD COLUMN replay_requested INTEGER NOT NULL DEFAULT 0;

-- Claims read a small index of pending deliveries; a claim is found by its
-- delivery, never by its owner. Retention reads deliveries by status and age.
DROP INDEX deliveries_due;
DROP INDEX deliveries_lease;
CREATE INDEX deliveries_pending ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_status ON deliveries (status, updated_at);

-- The first release's migrations were run by another tool.
DROP TABLE IF EXISTS _sqlx_migrations;
