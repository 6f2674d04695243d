-- Secrets the replicas of one store share, made the first time they are
-- needed: the key that signs console sessions (a new one when an admin
-- token is removed) and the key that hashes customers' e-mail addresses
-- in logs. `created_at` in milliseconds since the epoch.
CREATE TABLE secrets (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    created_at BIGINT NOT NULL
);

-- Console sessions signed out: every copy of their cookie is refused. A
-- row is pruned once its session, issued at `issued_at`, would have ended
-- under the `[admin] session` configured then.
CREATE TABLE revoked_sessions (
    id TEXT PRIMARY KEY,
    issued_at BIGINT NOT NULL
);
