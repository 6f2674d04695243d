//! Shared secrets and signed-out console sessions in the PostgreSQL
//! store: every replica reads the same.

use super::*;

/// The secret `name`, made the first time it is asked for (replicas asking
/// at once get the one that was stored first).
pub(super) async fn secret(pool: &PgPool, name: &str, fresh: &[u8]) -> Result<Vec<u8>, sqlx::Error> {
    let made: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT value FROM secrets WHERE name = $1").bind(name).fetch_optional(pool).await?;
    if let Some(secret) = made {
        return Ok(secret);
    }
    sqlx::query(concat!(
        "INSERT INTO secrets (name, value, created_at) VALUES ($1, $2, ",
        now!(),
        ") ON CONFLICT (name) DO NOTHING"
    ))
    .bind(name)
    .bind(fresh)
    .execute(pool)
    .await?;
    sqlx::query_scalar("SELECT value FROM secrets WHERE name = $1").bind(name).fetch_one(pool).await
}

/// Replaces the secret `name`.
pub(super) async fn renew_secret(pool: &PgPool, name: &str, fresh: &[u8]) -> Result<(), sqlx::Error> {
    sqlx::query(concat!(
        "INSERT INTO secrets (name, value, created_at) VALUES ($1, $2, ",
        now!(),
        ") ON CONFLICT (name) DO UPDATE SET value = excluded.value, created_at = excluded.created_at"
    ))
    .bind(name)
    .bind(fresh)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn revoke_session(pool: &PgPool, id: &str, issued_ms: i64) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO revoked_sessions (id, issued_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING")
        .bind(id)
        .bind(issued_ms)
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn session_revoked(pool: &PgPool, id: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM revoked_sessions WHERE id = $1)").bind(id).fetch_one(pool).await
}
