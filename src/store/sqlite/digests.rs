//! Digests in the SQLite store: a window claimed with its deliveries in
//! one transaction, and a stored digest written again (erasure).

use super::*;

/// Claims a digest's window and queues its deliveries, or records it
/// skipped; the primary key on (digest, window start) makes a second claim
/// find the first (but for a window skipped, which a digest asked for
/// takes).
pub(super) fn claim_digest(tx: &Transaction<'_>, digest: &NewDigest) -> rusqlite::Result<DigestClaim> {
    let (start, end) = (digest.start.timestamp_millis(), digest.end.timestamp_millis());
    let event_id = digest.body.as_ref().map(|_| new_id());
    let taken = tx
        .prepare_cached(concat!(
            "INSERT INTO digest_windows (digest, window_start, window_end, event_id, claimed_at) VALUES (?1, ?2, ?3, ?4, ",
            now!(),
            // A window skipped (no event) is taken when the digest is
            // asked for: there is nothing to send or replay otherwise.
            ") ON CONFLICT (digest, window_start) DO UPDATE SET event_id = excluded.event_id, \
             claimed_at = excluded.claimed_at WHERE digest_windows.event_id IS NULL AND excluded.event_id IS NOT NULL \
             AND ?5 RETURNING digest"
        ))?
        .query_row(params![digest.digest, start, end, event_id, digest.asked], |_| Ok(()))
        .optional()?
        .is_none();
    if taken {
        let window = tx
            .prepare_cached(
                "SELECT digest, window_start, window_end, event_id FROM digest_windows WHERE digest = ?1 AND window_start = ?2",
            )?
            .query_row(params![digest.digest, start], digest_window)?;
        return Ok(DigestClaim::Taken(window));
    }
    let (Some(id), Some(body)) = (event_id, &digest.body) else {
        return Ok(DigestClaim::Skipped);
    };
    let event = NewEvent {
        dedup_key: policy::digest_key(&digest.digest, digest.start),
        body: body.clone(),
        outcome: None,
        customer: None,
        facts: None,
        flow: None,
    };
    insert_event(tx, &id, &event, "digest")?;
    let deliveries = insert_deliveries(tx, &id, &digest.deliveries)?;
    Ok(DigestClaim::Queued { event_id: id, deliveries })
}

pub(super) fn digest_window(row: &Row<'_>) -> rusqlite::Result<DigestWindow> {
    Ok(DigestWindow { digest: row.get(0)?, start: time(row.get(1)?), end: time(row.get(2)?), event_id: row.get(3)? })
}

pub(super) fn rewrite_digest(tx: &Transaction<'_>, rewrite: &DigestRewrite) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE events SET body = ?1 WHERE id = ?2 AND source = 'digest'",
        params![rewrite.figures, rewrite.event_id],
    )?;
    let deliveries: Vec<(String, String)> = tx
        .prepare("SELECT id, destination FROM deliveries WHERE event_id = ?1")?
        .query_map(params![rewrite.event_id], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (id, destination) in deliveries {
        tx.execute("UPDATE deliveries SET payload = ?1 WHERE id = ?2", params![rewrite.payload_for(&destination), id])?;
    }
    tx.execute(
        "UPDATE attempts SET payload = NULL, response = NULL WHERE delivery_id IN \
         (SELECT id FROM deliveries WHERE event_id = ?1)",
        params![rewrite.event_id],
    )?;
    Ok(())
}

/// The stored digests whose figures quote `customer`.
pub(super) fn digests_quoting(conn: &Connection, customer: &str) -> rusqlite::Result<Vec<StoredDigest>> {
    let rows: Vec<(String, Vec<u8>, String, i64, i64)> = conn
        .prepare(
            "SELECT e.id, e.body, w.digest, w.window_start, w.window_end FROM events e \
                     JOIN digest_windows w ON w.event_id = e.id WHERE e.source = 'digest'",
        )?
        .query_map([], |row| {
            Ok((row.get(0)?, bytes(row, 1)?.unwrap_or_default(), row.get(2)?, row.get(3)?, row.get(4)?))
        })?
        .collect::<Result<_, _>>()?;
    Ok(quoting(rows, customer))
}
