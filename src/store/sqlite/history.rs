//! Customers' histories in the SQLite store: a flow and the customer's
//! counts written with each event, lookups answered by a thread of their
//! own, and erasure.

use super::*;

/// Adds a flow to a customer's history and to the customer's counts.
pub(super) fn remember(tx: &Transaction<'_>, event_id: &str, customer: &str, flow: &NewFlow) -> rusqlite::Result<()> {
    tx.prepare_cached(concat!(
        "INSERT INTO flows (event_id, customer, received_at, saved, canceled, offered, record) VALUES (?1, ?2, ",
        now!(),
        ", ?3, ?4, ?5, ?6)"
    ))?
    .execute(params![event_id, customer, flow.saved, flow.canceled, flow.offered, flow.record])?;
    tx.prepare_cached(concat!(
        "INSERT INTO customer_histories (customer, flows, saved, canceled, first_seen, last_save_at, last_save, \
         last_offer_at, last_offer) VALUES (?1, 1, ?2, ?3, ",
        now!(),
        ", CASE WHEN ?2 THEN ",
        now!(),
        " END, CASE WHEN ?2 THEN ?5 END, CASE WHEN ?4 THEN ",
        now!(),
        " END, CASE WHEN ?4 THEN ?5 END) \
         ON CONFLICT (customer) DO UPDATE SET flows = flows + 1, saved = saved + excluded.saved, \
         canceled = canceled + excluded.canceled, \
         last_save_at = COALESCE(excluded.last_save_at, last_save_at), last_save = COALESCE(excluded.last_save, last_save), \
         last_offer_at = COALESCE(excluded.last_offer_at, last_offer_at), \
         last_offer = COALESCE(excluded.last_offer, last_offer)"
    ))?
    .execute(params![customer, flow.saved, flow.canceled, flow.offered, flow.record])?;
    Ok(())
}

/// Erases a customer's flows, events, deliveries and attempts. Their
/// events are found by the customer column once (it has no index: every
/// event would pay for one, and erasure is rare), then by id.
pub(super) fn forget(tx: &Transaction<'_>, customer: &str) -> rusqlite::Result<Forgotten> {
    let ids: Vec<String> = tx
        .prepare("SELECT id FROM events WHERE customer = ?1")?
        .query_map(params![customer], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let mut forgotten = forget_events(tx, &ids)?;
    forgotten.flows = tx.execute("DELETE FROM flows WHERE customer = ?1", params![customer])? as u64;
    tx.execute("DELETE FROM customer_histories WHERE customer = ?1", params![customer])?;
    Ok(forgotten)
}

/// Erases the events `ids`, their deliveries and attempts.
pub(super) fn forget_events(tx: &Transaction<'_>, ids: &[String]) -> rusqlite::Result<Forgotten> {
    let (mut attempts, mut deliveries, mut events) = (0, 0, 0);
    for id in ids {
        attempts += tx.execute(
            "DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE event_id = ?1)",
            params![id],
        )?;
        deliveries += tx.execute("DELETE FROM deliveries WHERE event_id = ?1", params![id])?;
        tx.execute(
            "DELETE FROM dedup WHERE dedup_key = (SELECT dedup_key FROM events WHERE id = ?1) AND event_id = ?1",
            params![id],
        )?;
        events += tx.execute("DELETE FROM events WHERE id = ?1", params![id])?;
    }
    Ok(Forgotten {
        flows: 0,
        events: events as u64,
        deliveries: deliveries as u64,
        attempts: attempts as u64,
        digests: 0,
    })
}

/// The events that name `email` (see [`History::events_with_email`]):
/// events whose body holds the address (ASCII case folded), checked field
/// by field.
pub(super) fn events_with_email(conn: &Connection, email: &str) -> rusqlite::Result<EmailMatches> {
    let (mut customers, mut events) = (std::collections::BTreeSet::new(), std::collections::BTreeSet::new());
    let mut statement =
        conn.prepare("SELECT id, customer, body FROM events WHERE instr(lower(CAST(body AS TEXT)), ?1) > 0")?;
    let mut rows = statement.query(params![email.to_ascii_lowercase()])?;
    while let Some(row) = rows.next()? {
        if !names_email(&bytes(row, 2)?.unwrap_or_default(), email) {
            continue;
        }
        match optional_text(row, 1)? {
            Some(customer) => customers.insert(customer),
            None => events.insert(text(row, 0)?),
        };
    }
    Ok(EmailMatches { customers: customers.into_iter().collect(), events: events.into_iter().collect() })
}

/// A customer's counts and newest flows (see [`History::history`]).
fn read_history(conn: &Connection, customer: &str, recent: usize) -> rusqlite::Result<EarlierFlows> {
    let limit = i64::try_from(recent).unwrap_or(i64::MAX);
    let counts = conn
        .prepare_cached(
            "SELECT flows, saved, canceled, first_seen, last_save_at, last_save, last_offer_at, last_offer \
                     FROM customer_histories WHERE customer = ?1",
        )?
        .query_row(params![customer], |row| {
            let flow = |at: usize, record: usize| -> rusqlite::Result<Option<Flow>> {
                Ok(match (row.get::<_, Option<i64>>(at)?, optional_text(row, record)?) {
                    (Some(at), Some(record)) => Some(Flow::from_record(&record, time(at))),
                    _ => None,
                })
            };
            Ok(EarlierFlows {
                flows: row.get::<_, i64>(0)?.max(0) as u64,
                saved: row.get::<_, i64>(1)?.max(0) as u64,
                canceled: row.get::<_, i64>(2)?.max(0) as u64,
                first_seen: Some(time(row.get(3)?)),
                last_save: flow(4, 5)?,
                last_offer: flow(6, 7)?,
                recent: Vec::new(),
            })
        })
        .optional()?;
    let Some(mut earlier) = counts else { return Ok(EarlierFlows::default()) };
    earlier.recent = conn
        .prepare_cached(
            "SELECT event_id, received_at, record FROM flows WHERE customer = ?1 \
                     ORDER BY received_at DESC, event_id DESC LIMIT ?2",
        )?
        .query_map(params![customer, limit], |row| {
            Ok(Flow { event: row.get(0)?, ..Flow::from_record(&text(row, 2)?, time(row.get(1)?)) })
        })?
        .collect::<Result<_, _>>()?;
    Ok(earlier)
}

/// A lookup of a customer's history, for [`answer_lookups`].
pub(super) type Lookup = (String, usize, oneshot::Sender<Result<EarlierFlows, StoreError>>);

/// The thread that answers history lookups, on a read-only connection of
/// its own: ingest asks for one per event, and a thread hop per lookup
/// (a blocking task and the readers' pool) cost more than the lookup.
/// Whatever is waiting when it looks is answered in one go.
pub(super) fn answer_lookups(conn: Connection, mut queue: mpsc::Receiver<Lookup>) {
    while let Some(first) = queue.blocking_recv() {
        for (customer, recent, reply) in policy::gather(first, || queue.try_recv().ok()) {
            let _ = reply.send(read_history(&conn, &customer, recent).map_err(unavailable));
        }
    }
}

pub(super) fn lookups_stopped() -> StoreError {
    StoreError::Unavailable("the store's history reader stopped".into())
}
