//! Customers' histories in the PostgreSQL store: lookups answered in
//! batches by a task of their own, and erasure. (A flow and the customer's
//! counts are written with each event, in the batch's statement.)

use super::*;

/// Erases a customer's flows, events, deliveries and attempts. Their
/// events are found by the customer column once (it has no index: every
/// event would pay for one, and erasure is rare), then by id.
pub(super) async fn forget(pool: &PgPool, customer: &str) -> Result<Forgotten, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let customer = customer.as_bytes();
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT id FROM events WHERE customer = $1").bind(customer).fetch_all(&mut *tx).await?;
    let mut forgotten = forget_events_in(&mut tx, &ids).await?;
    forgotten.flows =
        sqlx::query("DELETE FROM flows WHERE customer = $1").bind(customer).execute(&mut *tx).await?.rows_affected();
    sqlx::query("DELETE FROM customer_histories WHERE customer = $1").bind(customer).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(forgotten)
}

/// Erases the events `ids`, their deliveries and attempts.
pub(super) async fn forget_events(pool: &PgPool, ids: &[String]) -> Result<Forgotten, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let forgotten = forget_events_in(&mut tx, ids).await?;
    tx.commit().await?;
    Ok(forgotten)
}

async fn forget_events_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    ids: &[String],
) -> Result<Forgotten, sqlx::Error> {
    let attempts =
        sqlx::query("DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE event_id = ANY($1))")
            .bind(ids)
            .execute(&mut **tx)
            .await?
            .rows_affected();
    let deliveries = sqlx::query("DELETE FROM deliveries WHERE event_id = ANY($1)")
        .bind(ids)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    sqlx::query(
        "DELETE FROM dedup d USING events e WHERE e.id = ANY($1) AND d.dedup_key = e.dedup_key AND d.event_id = e.id",
    )
    .bind(ids)
    .execute(&mut **tx)
    .await?;
    let events =
        sqlx::query("DELETE FROM events WHERE id = ANY($1)").bind(ids).execute(&mut **tx).await?.rows_affected();
    Ok(Forgotten { flows: 0, events, deliveries, attempts, digests: 0 })
}

/// The events that name `email` (see [`History::events_with_email`]):
/// events whose body holds the address (case folded), checked field by
/// field.
pub(super) async fn events_with_email(pool: &PgPool, email: &str) -> Result<EmailMatches, sqlx::Error> {
    let rows: Vec<(String, Option<Vec<u8>>, Vec<u8>)> =
        sqlx::query_as("SELECT id, customer, body FROM events WHERE strpos(lower(convert_from(body, 'UTF8')), $1) > 0")
            .bind(email.to_lowercase())
            .fetch_all(pool)
            .await?;
    let (mut customers, mut events) = (std::collections::BTreeSet::new(), std::collections::BTreeSet::new());
    for (id, customer, _) in rows.into_iter().filter(|(_, _, body)| names_email(body, email)) {
        match customer {
            Some(customer) => customers.insert(String::from_utf8_lossy(&customer).into_owned()),
            None => events.insert(id),
        };
    }
    Ok(EmailMatches { customers: customers.into_iter().collect(), events: events.into_iter().collect() })
}

/// A lookup of a customer's history, for [`answer_lookups`].
pub(super) type Lookup = (String, usize, oneshot::Sender<Result<EarlierFlows, StoreError>>);

/// Answers history lookups in batches: whatever is waiting when it looks
/// is read in two statements (the customers' counts, then the newest flows
/// of those that have any), instead of two round trips per event.
pub(super) async fn answer_lookups(pool: PgPool, mut queue: mpsc::Receiver<Lookup>) {
    while let Some(first) = queue.recv().await {
        let batch = policy::gather(first, || queue.try_recv().ok());
        let mut customers: Vec<&str> = batch.iter().map(|(c, _, _)| c.as_str()).collect();
        customers.sort_unstable();
        customers.dedup();
        let recent = batch.iter().map(|(_, r, _)| *r).max().unwrap_or(0);
        match read_histories(&pool, &customers, recent).await {
            Ok(found) => {
                for (customer, recent, reply) in batch {
                    let mut earlier = found.get(&customer).cloned().unwrap_or_default();
                    earlier.recent.truncate(recent);
                    let _ = reply.send(Ok(earlier));
                }
            }
            Err(e) => {
                for (_, _, reply) in batch {
                    let _ = reply.send(Err(unavailable(&e)));
                }
            }
        }
    }
}

/// The counts and the `recent` newest flows of each of `customers` that
/// has a history.
pub(super) async fn read_histories(
    pool: &PgPool,
    customers: &[&str],
    recent: usize,
) -> Result<std::collections::HashMap<String, EarlierFlows>, sqlx::Error> {
    type Counts = (Vec<u8>, i64, i64, i64, i64, Option<i64>, Option<String>, Option<i64>, Option<String>);
    let keys: Vec<&[u8]> = customers.iter().map(|c| c.as_bytes()).collect();
    let rows: Vec<Counts> = sqlx::query_as(
        "SELECT customer, flows, saved, canceled, first_seen, last_save_at, last_save, last_offer_at, last_offer \
         FROM customer_histories WHERE customer = ANY($1)",
    )
    .bind(&keys)
    .fetch_all(pool)
    .await?;
    let flow = |at: Option<i64>, record: Option<String>| Some(Flow::from_record(&record?, time(at?)));
    let mut found = std::collections::HashMap::new();
    for (customer, flows, saved, canceled, first_seen, save_at, save, offer_at, offer) in rows {
        let earlier = EarlierFlows {
            flows: flows.max(0) as u64,
            saved: saved.max(0) as u64,
            canceled: canceled.max(0) as u64,
            first_seen: Some(time(first_seen)),
            last_save: flow(save_at, save),
            last_offer: flow(offer_at, offer),
            recent: Vec::new(),
        };
        found.insert(String::from_utf8_lossy(&customer).into_owned(), earlier);
    }
    if found.is_empty() || recent == 0 {
        return Ok(found);
    }
    let with_history: Vec<&[u8]> = found.keys().map(|c| c.as_bytes()).collect();
    let flows: Vec<(Vec<u8>, String, i64, String)> = sqlx::query_as(
        "SELECT c.customer, f.event_id, f.received_at, f.record FROM unnest($1::bytea[]) AS c(customer) \
         CROSS JOIN LATERAL (SELECT event_id, received_at, record FROM flows WHERE flows.customer = c.customer \
         ORDER BY received_at DESC, event_id DESC LIMIT $2) f \
         ORDER BY c.customer, f.received_at DESC, f.event_id DESC",
    )
    .bind(&with_history)
    .bind(i64::try_from(recent).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await?;
    for (customer, event, at, record) in flows {
        if let Some(earlier) = found.get_mut(String::from_utf8_lossy(&customer).as_ref()) {
            earlier.recent.push(Flow { event, ..Flow::from_record(&record, time(at)) });
        }
    }
    Ok(found)
}
