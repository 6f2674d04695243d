//! Shared secrets and signed-out console sessions in the SQLite store.

use super::*;

/// The secret `name`, if it was made.
pub(super) fn read_secret(conn: &Connection, name: &str) -> rusqlite::Result<Option<Vec<u8>>> {
    conn.prepare_cached("SELECT value FROM secrets WHERE name = ?1")?
        .query_row(params![name], |row| row.get(0))
        .optional()
}

/// The secret `name`, made the first time it is asked for.
pub(super) fn secret(tx: &Transaction<'_>, name: &str, fresh: &[u8]) -> rusqlite::Result<Vec<u8>> {
    tx.prepare_cached(concat!(
        "INSERT INTO secrets (name, value, created_at) VALUES (?1, ?2, ",
        now!(),
        ") ON CONFLICT (name) DO NOTHING"
    ))?
    .execute(params![name, fresh])?;
    tx.prepare_cached("SELECT value FROM secrets WHERE name = ?1")?.query_row(params![name], |row| row.get(0))
}

/// Replaces the secret `name`.
pub(super) fn renew_secret(tx: &Transaction<'_>, name: &str, fresh: &[u8]) -> rusqlite::Result<()> {
    tx.execute(
        concat!(
            "INSERT INTO secrets (name, value, created_at) VALUES (?1, ?2, ",
            now!(),
            ") ON CONFLICT (name) DO UPDATE SET value = excluded.value, created_at = excluded.created_at"
        ),
        params![name, fresh],
    )?;
    Ok(())
}

pub(super) fn revoke_session(tx: &Transaction<'_>, id: &str, issued_ms: i64) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO revoked_sessions (id, issued_at) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING",
        params![id, issued_ms],
    )?;
    Ok(())
}

pub(super) fn session_revoked(conn: &Connection, id: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM revoked_sessions WHERE id = ?1)")?
        .query_row(params![id], |row| row.get(0))
}
