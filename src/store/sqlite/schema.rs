//! The SQLite store's schema: its migrations, in order, and the version a
//! file is at. `serve` and `migrate` bring a file to the latest version;
//! the store commands only read the version, and refuse an older file.

use super::*;
use rusqlite_migration::{HookResult, Migrations, M};

/// The schema, in order: the first release's, then each change.
const MIGRATIONS: [&str; 5] = [
    include_str!("../../../migrations/sqlite/20261128000001_init.sql"),
    include_str!("../../../migrations/sqlite/20261201000001_exactly_once.sql"),
    include_str!("../../../migrations/sqlite/20261203000001_history.sql"),
    include_str!("../../../migrations/sqlite/20261204000001_console.sql"),
    include_str!("../../../migrations/sqlite/20261207000001_secrets.sql"),
];

/// The version this release writes.
pub(super) const LATEST: usize = MIGRATIONS.len();

fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(MIGRATIONS[0]),
        M::up_with_hook(MIGRATIONS[1], rekey_first_release),
        M::up(MIGRATIONS[2]),
        M::up(MIGRATIONS[3]),
        M::up(MIGRATIONS[4]),
    ])
}

/// The file's schema version: how many of the migrations it has (0 for a
/// new file). A store made by the first release was migrated by another
/// tool, which left its own bookkeeping table and no schema version: it
/// is at version 1.
pub(super) fn version(conn: &Connection) -> rusqlite::Result<usize> {
    let (user_version, first_release): (i64, bool) = conn.query_row(
        "SELECT user_version, EXISTS (SELECT 1 FROM sqlite_master WHERE name = '_sqlx_migrations') \
         FROM pragma_user_version",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    Ok(match (user_version, first_release) {
        (0, true) => 1,
        (v, _) => usize::try_from(v).unwrap_or(0),
    })
}

/// Brings the schema to the latest version; returns the version it was at.
pub(super) fn migrate(conn: &mut Connection) -> Result<usize, StoreError> {
    let failed = |e: &dyn std::fmt::Display| StoreError::Unavailable(format!("cannot migrate the store: {e}"));
    let before = version(conn).map_err(|e| failed(&e))?;
    if before > LATEST {
        return Err(StoreError::Newer { version: before, latest: LATEST });
    }
    if before == 1 {
        conn.pragma_update(None, "user_version", 1).map_err(|e| failed(&e))?;
    }
    migrations().to_latest(conn).map_err(|e| failed(&e))?;
    Ok(before)
}

/// Refuses a file at another version than this release's, without
/// changing it (what the store commands open).
pub(super) fn require_latest(conn: &Connection) -> Result<(), StoreError> {
    let version =
        version(conn).map_err(|e| StoreError::Unavailable(format!("cannot read the store's version: {e}")))?;
    match version {
        v if v == LATEST => Ok(()),
        0 => Err(StoreError::Empty),
        v if v > LATEST => Err(StoreError::Newer { version: v, latest: LATEST }),
        v => Err(StoreError::Outdated { version: v, latest: LATEST }),
    }
}

/// The first release's idempotency keys, recomputed from their events as
/// this release computes them, so that a Raaft retry of an event received
/// before the upgrade is still a duplicate. A key whose event is gone
/// could not match anything again and is dropped.
fn rekey_first_release(tx: &Transaction<'_>) -> HookResult {
    let rows: Vec<(String, Option<String>)> = tx
        .prepare("SELECT d.dedup_key, e.body FROM dedup d LEFT JOIN events e ON e.id = d.event_id")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut rekey = tx.prepare("UPDATE OR REPLACE dedup SET dedup_key = ?1 WHERE dedup_key = ?2")?;
    let mut drop = tx.prepare("DELETE FROM dedup WHERE dedup_key = ?1")?;
    for (old, body) in rows {
        match body.and_then(|b| Event::parse(b.as_bytes()).ok()) {
            Some(event) => rekey.execute(params![event.dedup_key(), old])?,
            None => drop.execute(params![old])?,
        };
    }
    Ok(())
}
