//! The PostgreSQL store's schema: its migrations (embedded), the version a
//! database is at, and when `serve` may upgrade it. Replicas of an older
//! release keep writing with the schema they know, so `serve` upgrades a
//! database only when no other client that looks like one is connected;
//! otherwise it says to stop them and run `raaft-relay migrate`. The store
//! commands never change the schema.

use super::*;

/// The schema, embedded.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The newest migration's version: this release's schema.
macro_rules! schema {
    () => {
        "20261207000001"
    };
}

/// How this release's connections are named in `pg_stat_activity`.
/// Earlier releases named theirs nothing.
pub(super) const APPLICATION_NAME: &str = concat!("raaft-relay (schema ", schema!(), ")");

/// The version this release writes: how many migrations it has.
pub(super) fn latest() -> usize {
    MIGRATOR.iter().count()
}

/// How many of the migrations the database has (0 when it is new).
async fn version(pool: &PgPool) -> Result<usize, StoreError> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await
        .map_err(unavailable)?;
    if !exists {
        return Ok(0);
    }
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await
        .map_err(unavailable)?;
    Ok(usize::try_from(applied).unwrap_or(0))
}

/// Refuses a database at another version than this release's, without
/// changing it.
pub(super) async fn require_latest(pool: &PgPool) -> Result<(), StoreError> {
    let (version, latest) = (version(pool).await?, latest());
    match version {
        v if v == latest => Ok(()),
        0 => Err(StoreError::Empty),
        v if v > latest => Err(StoreError::Newer { version: v, latest }),
        v => Err(StoreError::Outdated { version: v, latest }),
    }
}

/// What `serve` does with the schema: creates it in a new database,
/// upgrades an older one when no older replica is connected, and refuses
/// otherwise.
pub(super) async fn upgrade_for_serve(pool: &PgPool) -> Result<(), StoreError> {
    let (version, latest) = (version(pool).await?, latest());
    if version == latest {
        // Keys a replica set aside and did not get to rekey (it stopped
        // between the two steps).
        return rekey_first_release(pool)
            .await
            .map_err(|e| unavailable(format!("cannot upgrade idempotency keys: {e}")));
    }
    if version > latest {
        return Err(StoreError::Newer { version, latest });
    }
    if version > 0 {
        let connections = older_clients(pool).await?;
        if connections > 0 {
            return Err(StoreError::OlderReplicas { version, latest, connections });
        }
    }
    migrate(pool).await.map(drop)
}

/// Brings the schema to this release's; returns the version it was at.
pub(super) async fn migrate(pool: &PgPool) -> Result<usize, StoreError> {
    let before = version(pool).await?;
    if before > latest() {
        return Err(StoreError::Newer { version: before, latest: latest() });
    }
    MIGRATOR.run(pool).await.map_err(|e| unavailable(format!("migrations failed: {e}")))?;
    rekey_first_release(pool).await.map_err(|e| unavailable(format!("cannot upgrade idempotency keys: {e}")))?;
    Ok(before)
}

/// How many other clients of this database look like replicas of an
/// older release: unnamed (as earlier releases connect) or named after
/// another schema. A client that is only passing (a command that has just
/// finished) is given two seconds to go.
async fn older_clients(pool: &PgPool) -> Result<usize, StoreError> {
    let mut seen = 0;
    for wait in [0, 500, 1500] {
        tokio::time::sleep(Duration::from_millis(wait)).await;
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND pid <> pg_backend_pid() AND backend_type = 'client backend' \
             AND (application_name = '' OR (application_name LIKE 'raaft-relay%' AND application_name <> $1))",
        )
        .bind(APPLICATION_NAME)
        .fetch_one(pool)
        .await
        .map_err(unavailable)?;
        seen = usize::try_from(count).unwrap_or(0);
        if seen == 0 {
            break;
        }
    }
    Ok(seen)
}

/// The first release's idempotency keys (set aside by the migration),
/// recomputed from their events as this release computes them, so that a
/// Raaft retry of an event received before the upgrade is still a
/// duplicate. A key whose event is gone could not match again and is
/// dropped. Replicas starting together take turns on the rows.
async fn rekey_first_release(pool: &PgPool) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let rows: Vec<(String, Option<Vec<u8>>)> = sqlx::query_as(
        "SELECT l.dedup_key, e.body FROM dedup_legacy l LEFT JOIN events e ON e.id = l.event_id FOR UPDATE OF l",
    )
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        return Ok(());
    }
    let (old, new): (Vec<String>, Vec<String>) =
        rows.into_iter().filter_map(|(old, body)| Some((old, Event::parse(&body?).ok()?.dedup_key()))).unzip();
    sqlx::query(
        "INSERT INTO dedup (dedup_key, event_id, received_at) \
         SELECT n.new, l.event_id, l.received_at FROM unnest($1::text[], $2::text[]) AS n(old, new) \
         JOIN dedup_legacy l ON l.dedup_key = n.old ON CONFLICT (dedup_key) DO NOTHING",
    )
    .bind(&old)
    .bind(&new)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM dedup_legacy").execute(&mut *tx).await?;
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_named_after_the_newest_migration() {
        let newest = MIGRATOR.iter().map(|m| m.version).max().unwrap();
        assert_eq!(newest.to_string(), schema!(), "name connections after a new migration");
        assert!(APPLICATION_NAME.len() < 64, "PostgreSQL keeps 63 bytes of a name");
    }
}
