-- The console reads a day of a destination's attempts, and a day of events
-- by outcome, from an index alone. An attempt names its destination and
-- whether it delivered (a covering index per destination and time); the
-- index on events' receipt time carries the outcome too (still one index
-- per event).
ALTER TABLE attempts ADD COLUMN destination TEXT;
ALTER TABLE attempts ADD COLUMN delivered BIGINT;
UPDATE attempts SET
    destination = (SELECT d.destination FROM deliveries d WHERE d.id = attempts.delivery_id),
    delivered = CASE WHEN error IS NULL THEN 1 ELSE 0 END;
CREATE INDEX attempts_destination ON attempts (destination, at, delivered);
DROP INDEX events_received_at;
CREATE INDEX events_received_outcome ON events (received_at, outcome);
