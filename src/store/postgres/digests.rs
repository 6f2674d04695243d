//! Digests in the PostgreSQL store: a window claimed with its deliveries
//! in one transaction, and a stored digest written again (erasure).

use super::*;

pub(super) fn digest_window(row: &PgRow) -> Result<DigestWindow, sqlx::Error> {
    Ok(DigestWindow {
        digest: row.try_get("digest")?,
        start: time(row.try_get("window_start")?),
        end: time(row.try_get("window_end")?),
        event_id: row.try_get("event_id")?,
    })
}

pub(super) async fn claim_digest(pool: &PgPool, digest: &NewDigest) -> Result<DigestClaim, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let (start, end) = (digest.start.timestamp_millis(), digest.end.timestamp_millis());
    let event_id = digest.body.as_ref().map(|_| new_id());
    let claimed = sqlx::query(concat!(
        "INSERT INTO digest_windows (digest, window_start, window_end, event_id, claimed_at) VALUES ($1, $2, $3, $4, ",
        now!(),
        // A window skipped (no event) is taken when the digest is asked
        // for: there is nothing to send or replay otherwise.
        ") ON CONFLICT (digest, window_start) DO UPDATE SET event_id = EXCLUDED.event_id, \
         claimed_at = EXCLUDED.claimed_at WHERE digest_windows.event_id IS NULL AND EXCLUDED.event_id IS NOT NULL \
         AND $5"
    ))
    .bind(&digest.digest)
    .bind(start)
    .bind(end)
    .bind(&event_id)
    .bind(digest.asked)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if claimed == 0 {
        let row = sqlx::query(
            "SELECT digest, window_start, window_end, event_id FROM digest_windows WHERE digest = $1 AND window_start = $2",
        )
        .bind(&digest.digest)
        .bind(start)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        return Ok(DigestClaim::Taken(digest_window(&row)?));
    }
    let (Some(id), Some(body)) = (event_id, &digest.body) else {
        tx.commit().await?;
        return Ok(DigestClaim::Skipped);
    };
    sqlx::query(concat!(
        "INSERT INTO events (id, dedup_key, received_at, body, source) VALUES ($1, $2, ",
        now!(),
        ", $3, 'digest')"
    ))
    .bind(&id)
    .bind(policy::digest_key(&digest.digest, digest.start))
    .bind(body.as_bytes())
    .execute(&mut *tx)
    .await?;
    let ids: Vec<String> = digest.deliveries.iter().map(|_| new_id()).collect();
    sqlx::query(concat!(
        "INSERT INTO deliveries (id, event_id, destination, routes, status, attempts, next_attempt_at, created_at, \
         updated_at, payload) SELECT d.id, $1, d.destination, d.routes, 'pending', 0, ",
        now!(),
        ", ",
        now!(),
        ", ",
        now!(),
        ", d.payload FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) AS d(id, destination, routes, payload)"
    ))
    .bind(&id)
    .bind(&ids)
    .bind(digest.deliveries.iter().map(|d| d.destination.as_str()).collect::<Vec<_>>())
    .bind(digest.deliveries.iter().map(|d| policy::join_routes(&d.routes)).collect::<Vec<_>>())
    .bind(digest.deliveries.iter().map(|d| d.payload.as_deref()).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(DigestClaim::Queued { event_id: id, deliveries: ids })
}

/// The stored digests whose figures quote `customer`.
pub(super) async fn digests_quoting(pool: &PgPool, customer: &str) -> Result<Vec<StoredDigest>, sqlx::Error> {
    let rows: Vec<(String, Vec<u8>, String, i64, i64)> = sqlx::query_as(
        "SELECT e.id, e.body, w.digest, w.window_start, w.window_end FROM events e \
         JOIN digest_windows w ON w.event_id = e.id WHERE e.source = 'digest'",
    )
    .fetch_all(pool)
    .await?;
    Ok(quoting(rows, customer))
}

/// Writes a stored digest again ([`Digests::rewrite_digest`]), in one
/// transaction.
pub(super) async fn rewrite_digest(pool: &PgPool, rewrite: &DigestRewrite) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("UPDATE events SET body = $1 WHERE id = $2 AND source = 'digest'")
        .bind(rewrite.figures.as_bytes())
        .bind(&rewrite.event_id)
        .execute(&mut *tx)
        .await?;
    let deliveries: Vec<(String, String)> =
        sqlx::query_as("SELECT id, destination FROM deliveries WHERE event_id = $1 FOR UPDATE")
            .bind(&rewrite.event_id)
            .fetch_all(&mut *tx)
            .await?;
    for (id, destination) in deliveries {
        sqlx::query("UPDATE deliveries SET payload = $1 WHERE id = $2")
            .bind(rewrite.payload_for(&destination))
            .bind(&id)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(
        "UPDATE attempts SET payload = NULL, response = NULL WHERE delivery_id IN \
         (SELECT id FROM deliveries WHERE event_id = $1)",
    )
    .bind(&rewrite.event_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}
