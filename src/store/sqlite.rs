//! The SQLite write path: one thread owns the store's write connection and
//! takes every write (new events, attempt records, claims) from a queue.
//! Whatever is waiting when it looks goes into one transaction with one
//! fsync, through statements prepared once, so a burst of events costs a
//! few commits, not one per request, and nothing ever waits for SQLite's
//! write lock. Reads go through the pool beside it (WAL keeps them apart).

use super::sql::{delivery_after, ms, now_ms, Written};
use super::*;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use tokio::sync::{mpsc, oneshot};

/// How many writes one transaction takes at most.
const MAX_BATCH: usize = 1024;

/// A claimed delivery as read in the claim's transaction; the body is
/// parsed by the caller, off the writer's thread.
pub(super) struct ClaimedRow {
    pub id: String,
    pub destination: String,
    pub routes: String,
    pub attempts: i64,
    pub event_key: String,
    pub body: String,
}

/// A request to the writer thread.
pub(super) enum Request {
    Enqueue {
        event: NewEvent,
        deliveries: Vec<NewDelivery>,
        reply: oneshot::Sender<Result<Enqueued, StoreError>>,
    },
    Finish {
        job: Job,
        attempt: AttemptRecord,
        state: JobState,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    Claim {
        token: String,
        lease_until: i64,
        now: i64,
        limit: i64,
        reply: oneshot::Sender<Result<Vec<ClaimedRow>, StoreError>>,
    },
}

/// What one request in a batch came to.
enum Outcome {
    Written(Written),
    Claimed(Vec<ClaimedRow>),
}

/// Opens the write connection to the SQLite file at `path` (already
/// migrated) and starts the writer thread; it stops when every sender is
/// dropped.
pub(super) fn start(path: &str, dedup_window: Duration) -> Result<mpsc::Sender<Request>, StoreError> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| StoreError(format!("cannot open \"{path}\": {e}")))?;
    // Every acknowledged event is on disk (FULL) without blocking readers
    // (WAL); writes made through the pool (replay, retention) are waited for.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
    )
    .map_err(|e| StoreError(format!("cannot set up \"{path}\": {e}")))?;
    conn.set_prepared_statement_cache_capacity(16);
    let (sender, requests) = mpsc::channel(4 * MAX_BATCH);
    let window = i64::try_from(dedup_window.as_millis()).unwrap_or(i64::MAX);
    std::thread::Builder::new()
        .name("raaft-store-writer".into())
        .spawn(move || run(conn, requests, window))
        .map_err(|e| StoreError(format!("cannot start the store writer: {e}")))?;
    Ok(sender)
}

fn run(mut conn: Connection, mut requests: mpsc::Receiver<Request>, dedup_window: i64) {
    while let Some(first) = requests.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match requests.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        match write(&mut conn, &batch, dedup_window) {
            Ok(outcomes) => {
                for (request, outcome) in batch.into_iter().zip(outcomes) {
                    answer(request, outcome);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, writes = batch.len(), "cannot write to the store");
                for request in batch {
                    let error = StoreError(e.to_string());
                    match request {
                        Request::Enqueue { reply, .. } => drop(reply.send(Err(error))),
                        Request::Finish { reply, .. } => drop(reply.send(Err(error))),
                        Request::Claim { reply, .. } => drop(reply.send(Err(error))),
                    }
                }
            }
        }
    }
}

fn answer(request: Request, outcome: Outcome) {
    match (request, outcome) {
        (Request::Enqueue { reply, .. }, Outcome::Written(Written::Enqueued(e))) => drop(reply.send(Ok(e))),
        (Request::Finish { reply, job, .. }, Outcome::Written(Written::Finished(updated))) => {
            if !updated {
                tracing::warn!(delivery = %job.id, "lease lost before the attempt was recorded; another worker owns it now");
            }
            drop(reply.send(Ok(())));
        }
        (Request::Claim { reply, .. }, Outcome::Claimed(rows)) => drop(reply.send(Ok(rows))),
        _ => unreachable!("outcomes follow the batch"),
    }
}

/// Writes one batch in one transaction.
fn write(conn: &mut Connection, batch: &[Request], dedup_window: i64) -> rusqlite::Result<Vec<Outcome>> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for request in batch {
        let outcome = match request {
            Request::Enqueue { event, deliveries, .. } => {
                Outcome::Written(Written::Enqueued(enqueue(&tx, event, deliveries, dedup_window)?))
            }
            Request::Finish { job, attempt, state, .. } => {
                Outcome::Written(Written::Finished(finish(&tx, job, attempt, state)?))
            }
            Request::Claim { token, lease_until, now, limit, .. } => {
                Outcome::Claimed(claim(&tx, token, *lease_until, *now, *limit)?)
            }
        };
        outcomes.push(outcome);
    }
    tx.commit()?;
    Ok(outcomes)
}

/// Records an event and its deliveries unless its key was seen within the
/// dedup window (in the store, or earlier in this batch); an older key is
/// taken over.
fn enqueue(
    tx: &rusqlite::Transaction<'_>,
    event: &NewEvent,
    deliveries: &[NewDelivery],
    dedup_window: i64,
) -> rusqlite::Result<Enqueued> {
    let id = new_id();
    let at = ms(event.received_at);
    let fresh = tx
        .prepare_cached(
            "INSERT INTO dedup (dedup_key, event_id, received_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (dedup_key) DO UPDATE SET event_id = excluded.event_id, received_at = excluded.received_at \
             WHERE dedup.received_at < excluded.received_at - ?4 RETURNING dedup_key",
        )?
        .query_row(params![event.key, id, at, dedup_window], |_| Ok(()))
        .optional()?
        .is_some();
    if !fresh {
        return Ok(Enqueued::Duplicate);
    }
    tx.prepare_cached(
        "INSERT INTO events (id, dedup_key, received_at, outcome, customer, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![id, event.key, at, event.outcome, event.customer, event.body])?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO deliveries (id, event_id, destination, routes, status, attempts, next_attempt_at, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, 'pending', 0, ?5, ?5, ?5)",
    )?;
    let mut ids = Vec::with_capacity(deliveries.len());
    for d in deliveries {
        let delivery = new_id();
        insert.execute(params![delivery, id, d.destination, d.routes.join(","), at])?;
        ids.push(delivery);
    }
    Ok(Enqueued::Accepted { deliveries: ids })
}

/// Records an attempt and the delivery's new state, if the lease is still
/// the job's. Returns whether the delivery was updated.
fn finish(
    tx: &rusqlite::Transaction<'_>,
    job: &Job,
    attempt: &AttemptRecord,
    state: &JobState,
) -> rusqlite::Result<bool> {
    let number = i64::from(job.attempts) + 1;
    let now = now_ms();
    let (status, next, last_error) = delivery_after(state, attempt, now);
    tx.prepare_cached(
        "INSERT INTO attempts (id, delivery_id, number, at, status_code, latency_ms, response, error, payload) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        new_id(),
        job.id,
        number,
        ms(attempt.at),
        attempt.status.map(i64::from),
        i64::try_from(attempt.latency.as_millis()).unwrap_or(i64::MAX),
        attempt.response,
        attempt.error,
        attempt.payload,
    ])?;
    let updated = tx
        .prepare_cached(
            "UPDATE deliveries SET status = ?1, attempts = ?2, next_attempt_at = ?3, last_error = ?4, \
             lease_owner = NULL, lease_until = NULL, updated_at = ?5 WHERE id = ?6 AND lease_owner = ?7",
        )?
        .execute(params![status, number, next, last_error, now, job.id, job.lease])?;
    Ok(updated > 0)
}

/// Leases up to `limit` due deliveries to `token` and reads them back with
/// their events.
fn claim(
    tx: &rusqlite::Transaction<'_>,
    token: &str,
    lease_until: i64,
    now: i64,
    limit: i64,
) -> rusqlite::Result<Vec<ClaimedRow>> {
    let claimed = tx
        .prepare_cached(
            "UPDATE deliveries SET lease_owner = ?1, lease_until = ?2 WHERE id IN (\
             SELECT id FROM deliveries WHERE status = 'pending' AND next_attempt_at <= ?3 \
             AND (lease_until IS NULL OR lease_until < ?3) ORDER BY next_attempt_at LIMIT ?4)",
        )?
        .execute(params![token, lease_until, now, limit])?;
    if claimed == 0 {
        return Ok(Vec::new());
    }
    let mut select = tx.prepare_cached(
        "SELECT d.id, d.destination, d.routes, d.attempts, e.dedup_key, e.body \
         FROM deliveries d JOIN events e ON e.id = d.event_id WHERE d.lease_owner = ?1 ORDER BY d.next_attempt_at",
    )?;
    let rows = select.query_map(params![token], |row| {
        Ok(ClaimedRow {
            id: row.get(0)?,
            destination: row.get(1)?,
            routes: row.get(2)?,
            attempts: row.get(3)?,
            event_key: row.get(4)?,
            body: row.get(5)?,
        })
    })?;
    rows.collect()
}
