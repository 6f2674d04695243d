//! The PostgreSQL store: several relays share one queue. The hot writes
//! (new events, attempt records, claims) of every request waiting go to
//! one task that writes them in one transaction with one statement per
//! kind (arrays of rows, one round trip each) and one commit; a batch that
//! fails is written again one write at a time, so one that cannot be
//! written fails alone. Leases, due times and ages run on the database's
//! clock (`now()`), so replicas whose clocks disagree never take each
//! other's work. What comes from outside is stored as bytes (TEXT cannot
//! hold NUL). Ingest's history lookups are read in batches too
//! ([`history`]); digests are in [`digests`].

use super::policy::{self, millis};
use super::*;
use crate::event::Event;
use crate::history::{EarlierFlows, Flow};
use crate::store::dialect::{self, time};
use crate::store::inspect::{Activity, DestinationHealth, EventDetail, EventFilter, EventSummary};
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{PgConnection, Row};
use std::str::FromStr;
use tokio::sync::{mpsc, oneshot, Mutex};

/// Now, by the database's clock, in milliseconds since the epoch (the
/// transaction's start).
/// How the shared read side ([`read`]) writes PostgreSQL's SQL.
const DIALECT: dialect::Dialect = dialect::Dialect::Postgres;

macro_rules! now {
    () => {
        "(EXTRACT(EPOCH FROM now()) * 1000)::BIGINT"
    };
}

mod digests;
mod history;
mod inspect;
mod schema;
mod secrets;

use digests::{claim_digest, digest_window};
use history::{answer_lookups, events_with_email, forget, forget_events, Lookup};

/// The store in one PostgreSQL database.
pub struct PostgresStore {
    pool: PgPool,
    writes: mpsc::Sender<Write>,
    /// History lookups, for the task that answers them in batches.
    lookups: mpsc::Sender<Lookup>,
}

/// A hot write, for the batching task.
enum Write {
    Enqueue { event: NewEvent, deliveries: Vec<NewDelivery>, reply: oneshot::Sender<Result<Enqueued, StoreError>> },
    Finish { job: Job, attempt: AttemptRecord, state: NextStep, reply: oneshot::Sender<Result<Recorded, StoreError>> },
    Claim { owner: String, limit: usize, lease_ms: i64, reply: oneshot::Sender<Result<Vec<Job>, StoreError>> },
}

/// What one write came to, before it is answered.
enum Written {
    Enqueued(Enqueued),
    Finished(Recorded),
    Claimed(Vec<Job>),
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// How long opening the store waits for the server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a connection could not be made, as the OS or the server said it
/// (connection refused, no such host, authentication failed, no such
/// database).
fn cannot_connect(e: sqlx::Error) -> StoreError {
    StoreError::Unavailable(match e {
        sqlx::Error::Io(io) => format!("cannot connect: {}", lowercase_first(&io.to_string())),
        sqlx::Error::Database(db) => format!("the server refused the connection: {}", db.message()),
        sqlx::Error::Tls(tls) => format!("cannot connect over TLS: {tls}"),
        other => format!("cannot connect: {other}"),
    })
}

/// "Connection refused (os error 111)" as an error message reads it.
fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_lowercase().chain(chars).collect()).unwrap_or_default()
}

fn writer_stopped<T>(_: T) -> StoreError {
    StoreError::Unavailable("the store writer stopped".into())
}

/// A pool of up to `size` connections to `url`, named after this release
/// in `pg_stat_activity` (which is how a newer release knows an older
/// replica is connected).
pub(super) async fn connect(url: &str, size: u32) -> Result<PgPool, StoreError> {
    // Every statement is planned with the table as it is now. A plan
    // cached while the queue was small (a sequential scan of a few
    // hundred deliveries) would otherwise stay in use as the queue grows:
    // recording attempts once took 40 ms a batch over a backlog of
    // 100 000 that way.
    let options = PgConnectOptions::from_str(url)
        .map_err(unavailable)?
        .options([("plan_cache_mode", "force_custom_plan")])
        .application_name(schema::APPLICATION_NAME);
    // One connection first, on its own: a pool retries a refused
    // connection until its timeout and then says only that it timed out.
    let first = tokio::time::timeout(CONNECT_TIMEOUT, sqlx::ConnectOptions::connect(&options))
        .await
        .map_err(|_| {
            StoreError::Unavailable(format!(
                "no answer from the server within {}",
                crate::text::duration(CONNECT_TIMEOUT)
            ))
        })?
        .map_err(cannot_connect)?;
    let _ = sqlx::Connection::close(first).await;
    PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
        .map_err(unavailable)
}

/// `raaft-relay migrate` on PostgreSQL.
pub(super) async fn migrate(url: &str) -> Result<Migrated, StoreError> {
    let pool = connect(url, 1).await?;
    let from = schema::migrate(&pool).await?;
    pool.close().await;
    Ok(Migrated { from, to: schema::latest() })
}

impl PostgresStore {
    /// Connects to the database at `url`: `serve` brings its schema up to
    /// date ([`schema::upgrade_for_serve`]), a store command only checks it.
    pub async fn open(url: &str, dedup_window: Duration, access: Access) -> Result<PostgresStore, StoreError> {
        let pool = connect(url, 16).await?;
        match access {
            Access::Serve => schema::upgrade_for_serve(&pool).await?,
            Access::Tool => schema::require_latest(&pool).await?,
        }
        let (writes, queue) = mpsc::channel(4 * policy::MAX_BATCH);
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..WRITERS {
            tokio::spawn(write_batches(pool.clone(), queue.clone(), millis(dedup_window)));
        }
        let (lookups, lookup_queue) = mpsc::channel(4 * policy::MAX_BATCH);
        tokio::spawn(answer_lookups(pool.clone(), lookup_queue));
        Ok(PostgresStore { pool, writes, lookups })
    }
}

/// How many batches are written at once. While one batch waits for its
/// commit (the server's fsync), the next is written: the server commits
/// them together.
const WRITERS: usize = 3;

/// A batching task: takes every write waiting, writes them together,
/// answers each. [`WRITERS`] of them share the queue. Batches written at
/// once touch different rows (a delivery is claimed by one batch and
/// recorded by the batch after its attempt); two that store the same new
/// idempotency key take it in key order, so they wait on each other
/// without deadlocking.
async fn write_batches(pool: PgPool, queue: Arc<Mutex<mpsc::Receiver<Write>>>, window: i64) {
    loop {
        let batch = {
            let mut queue = queue.lock().await;
            let Some(first) = queue.recv().await else { return };
            policy::gather(first, || queue.try_recv().ok())
        };
        match write_together(&pool, &batch, window).await {
            Ok(written) => {
                for (write, written) in batch.into_iter().zip(written) {
                    answer(write, Ok(written));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, writes = batch.len(), "a batch of writes failed; writing them one by one");
                for write in batch {
                    let written = write_alone(&pool, &write, window).await;
                    answer(write, written);
                }
            }
        }
    }
}

fn answer(write: Write, written: Result<Written, StoreError>) {
    match (write, written) {
        (Write::Enqueue { reply, .. }, Ok(Written::Enqueued(e))) => drop(reply.send(Ok(e))),
        (Write::Finish { reply, .. }, Ok(Written::Finished(r))) => drop(reply.send(Ok(r))),
        (Write::Claim { reply, .. }, Ok(Written::Claimed(jobs))) => drop(reply.send(Ok(jobs))),
        (Write::Enqueue { reply, .. }, Err(e)) => drop(reply.send(Err(e))),
        (Write::Finish { reply, .. }, Err(e)) => drop(reply.send(Err(e))),
        (Write::Claim { reply, .. }, Err(e)) => drop(reply.send(Err(e))),
        _ => unreachable!("each write is answered with its own kind"),
    }
}

/// Writes a whole batch in one transaction: its new events, then its
/// attempt records, then its claims (which may take what the batch just
/// queued). Answers follow the batch's order.
async fn write_together(pool: &PgPool, batch: &[Write], window: i64) -> Result<Vec<Written>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let events: Vec<(&NewEvent, &[NewDelivery])> = batch
        .iter()
        .filter_map(|w| match w {
            Write::Enqueue { event, deliveries, .. } => Some((event, deliveries.as_slice())),
            _ => None,
        })
        .collect();
    let mut enqueued = enqueue(&mut tx, &events, window).await?.into_iter();
    let finishes: Vec<(&Job, &AttemptRecord, &NextStep)> = batch
        .iter()
        .filter_map(|w| match w {
            Write::Finish { job, attempt, state, .. } => Some((job, attempt, state)),
            _ => None,
        })
        .collect();
    let mut finished = finish(&mut tx, &finishes).await?.into_iter();
    let mut written = Vec::with_capacity(batch.len());
    for write in batch {
        written.push(match write {
            Write::Enqueue { .. } => Written::Enqueued(enqueued.next().expect("one answer per event")),
            Write::Finish { .. } => Written::Finished(finished.next().expect("one answer per attempt")),
            Write::Claim { owner, limit, lease_ms, .. } => {
                Written::Claimed(claim(&mut tx, owner, *limit, *lease_ms).await?)
            }
        });
    }
    tx.commit().await?;
    Ok(written)
}

/// Writes one write on its own, after its batch failed. An attempt whose
/// full record cannot be stored is recorded reduced, so it still counts.
async fn write_alone(pool: &PgPool, write: &Write, window: i64) -> Result<Written, StoreError> {
    let mut conn = pool.acquire().await.map_err(unavailable)?;
    match write {
        Write::Enqueue { event, deliveries, .. } => {
            let mut enqueued = enqueue(&mut conn, &[(event, deliveries.as_slice())], window).await.map_err(|e| {
                tracing::warn!(error = %e, "cannot store an event");
                unavailable(e)
            })?;
            Ok(Written::Enqueued(enqueued.remove(0)))
        }
        Write::Claim { owner, limit, lease_ms, .. } => {
            Ok(Written::Claimed(claim(&mut conn, owner, *limit, *lease_ms).await.map_err(unavailable)?))
        }
        Write::Finish { job, attempt, state, .. } => match finish(&mut conn, &[(job, attempt, state)]).await {
            Ok(mut recorded) => Ok(Written::Finished(recorded.remove(0))),
            Err(e) => {
                tracing::warn!(delivery = %job.id, error = %e, "cannot store an attempt's full record; keeping a reduced one");
                let reduced = policy::reduced(attempt, &e.to_string());
                let state = policy::reduced_state(state, &reduced);
                let mut recorded = finish(&mut conn, &[(job, &reduced, &state)]).await.map_err(unavailable)?;
                Ok(Written::Finished(recorded.remove(0)))
            }
        },
    }
}

/// Records new events and their deliveries in one statement. An event
/// whose key was seen within the window (in the store, or earlier in this
/// batch) is a duplicate; an older key is taken over.
async fn enqueue(
    conn: &mut PgConnection,
    events: &[(&NewEvent, &[NewDelivery])],
    window: i64,
) -> Result<Vec<Enqueued>, sqlx::Error> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let first = policy::first_of_each_key(events.iter().map(|(e, _)| e.dedup_key.as_str()));
    let candidates: Vec<usize> = (0..events.len()).filter(|&i| first[i]).collect();
    let ids: Vec<String> = events.iter().map(|_| new_id()).collect();
    let mut delivery_ids: Vec<Vec<String>> = events.iter().map(|(_, d)| d.iter().map(|_| new_id()).collect()).collect();
    let (mut d_id, mut d_event, mut d_destination, mut d_routes) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for &i in &candidates {
        for (id, d) in delivery_ids[i].iter().zip(events[i].1) {
            d_id.push(id.as_str());
            d_event.push(ids[i].as_str());
            d_destination.push(d.destination.as_str());
            d_routes.push(policy::join_routes(&d.routes));
        }
    }
    let fresh: Vec<String> = sqlx::query_scalar(concat!(
        "WITH input AS (\
           SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::bytea[], $5::bytea[], $11::text[], \
             $12::text[], $13::bigint[], $14::bigint[], $15::bigint[]) WITH ORDINALITY \
             AS i(event_id, dedup_key, outcome, customer, body, facts, flow, saved, canceled, offered, ord)\
         ), fresh AS (\
           INSERT INTO dedup (dedup_key, event_id, received_at) SELECT dedup_key, event_id, ",
        now!(),
        " FROM input ORDER BY dedup_key \
           ON CONFLICT (dedup_key) DO UPDATE SET event_id = excluded.event_id, received_at = excluded.received_at \
           WHERE dedup.received_at < excluded.received_at - $6 RETURNING event_id\
         ), stored AS (\
           INSERT INTO events (id, dedup_key, received_at, outcome, customer, body, facts) \
           SELECT i.event_id, i.dedup_key, ",
        now!(),
        ", i.outcome, i.customer, i.body, i.facts FROM input i JOIN fresh f ON f.event_id = i.event_id RETURNING id\
         ), remembered AS (\
           INSERT INTO flows (event_id, customer, received_at, saved, canceled, offered, record) \
           SELECT i.event_id, i.customer, ",
        now!(),
        ", i.saved, i.canceled, i.offered, i.flow FROM input i JOIN stored s ON s.id = i.event_id \
           WHERE i.customer IS NOT NULL AND i.flow IS NOT NULL\
         ), counted AS (\
           INSERT INTO customer_histories (customer, flows, saved, canceled, first_seen, last_save_at, last_save, \
             last_offer_at, last_offer) \
           SELECT i.customer, COUNT(*), SUM(i.saved), SUM(i.canceled), ",
        now!(),
        ", CASE WHEN bool_or(i.saved = 1) THEN ",
        now!(),
        " END, (array_agg(i.flow ORDER BY i.ord DESC) FILTER (WHERE i.saved = 1))[1], \
             CASE WHEN bool_or(i.offered = 1) THEN ",
        now!(),
        " END, (array_agg(i.flow ORDER BY i.ord DESC) FILTER (WHERE i.offered = 1))[1] \
           FROM input i JOIN stored s ON s.id = i.event_id WHERE i.customer IS NOT NULL AND i.flow IS NOT NULL \
           GROUP BY i.customer ORDER BY i.customer \
           ON CONFLICT (customer) DO UPDATE SET flows = customer_histories.flows + excluded.flows, \
             saved = customer_histories.saved + excluded.saved, canceled = customer_histories.canceled + excluded.canceled, \
             last_save_at = COALESCE(excluded.last_save_at, customer_histories.last_save_at), \
             last_save = COALESCE(excluded.last_save, customer_histories.last_save), \
             last_offer_at = COALESCE(excluded.last_offer_at, customer_histories.last_offer_at), \
             last_offer = COALESCE(excluded.last_offer, customer_histories.last_offer)\
         ), queued AS (\
           INSERT INTO deliveries (id, event_id, destination, routes, status, attempts, next_attempt_at, created_at, updated_at) \
           SELECT d.id, d.event_id, d.destination, d.routes, 'pending', 0, ",
        now!(),
        ", ",
        now!(),
        ", ",
        now!(),
        " FROM unnest($7::text[], $8::text[], $9::text[], $10::text[]) AS d(id, event_id, destination, routes) \
           JOIN stored s ON s.id = d.event_id\
         ) SELECT event_id FROM fresh"
    ))
    .bind(candidates.iter().map(|&i| ids[i].as_str()).collect::<Vec<_>>())
    .bind(candidates.iter().map(|&i| events[i].0.dedup_key.as_str()).collect::<Vec<_>>())
    .bind(candidates.iter().map(|&i| events[i].0.outcome.as_deref().map(str::as_bytes)).collect::<Vec<_>>())
    .bind(candidates.iter().map(|&i| events[i].0.customer.as_deref().map(str::as_bytes)).collect::<Vec<_>>())
    .bind(candidates.iter().map(|&i| events[i].0.body.as_bytes()).collect::<Vec<_>>())
    .bind(window)
    .bind(&d_id)
    .bind(&d_event)
    .bind(&d_destination)
    .bind(&d_routes)
    .bind(candidates.iter().map(|&i| events[i].0.facts.as_deref()).collect::<Vec<_>>())
    .bind(candidates.iter().map(|&i| events[i].0.flow.as_ref().map(|f| f.record.as_str())).collect::<Vec<_>>())
    .bind(candidates.iter().map(|&i| events[i].0.flow.as_ref().map_or(0, |f| i64::from(f.saved))).collect::<Vec<_>>())
    .bind(candidates.iter().map(|&i| events[i].0.flow.as_ref().map_or(0, |f| i64::from(f.canceled))).collect::<Vec<_>>())
    .bind(candidates.iter().map(|&i| events[i].0.flow.as_ref().map_or(0, |f| i64::from(f.offered))).collect::<Vec<_>>())
    .fetch_all(&mut *conn)
    .await?;
    let fresh: std::collections::HashSet<String> = fresh.into_iter().collect();
    Ok((0..events.len())
        .map(|i| {
            if first[i] && fresh.contains(&ids[i]) {
                Enqueued::Accepted { event_id: ids[i].clone(), deliveries: std::mem::take(&mut delivery_ids[i]) }
            } else {
                Enqueued::Duplicate
            }
        })
        .collect())
}

/// Records attempts and their deliveries' new states in one statement. A
/// delivery updates only while the lease is still the job's; a replay
/// asked for during its attempt starts it over now, whatever the attempt
/// came to.
async fn finish(
    conn: &mut PgConnection,
    finishes: &[(&Job, &AttemptRecord, &NextStep)],
) -> Result<Vec<Recorded>, sqlx::Error> {
    if finishes.is_empty() {
        return Ok(Vec::new());
    }
    let after: Vec<policy::AfterAttempt<'_>> = finishes.iter().map(|(_, a, s)| policy::after_attempt(s, a)).collect();
    let updated: Vec<String> = sqlx::query_scalar(concat!(
        "WITH input AS (\
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], \
             $7::bigint[], $8::bytea[], $9::bytea[], $10::bytea[], $11::text[], $12::bigint[], $13::bytea[], \
             $14::text[]) \
           AS i(delivery_id, lease, attempt_id, number, at, status_code, latency_ms, response, error, payload, \
             status, retry_in, last_error, destination)\
         ), logged AS (\
           INSERT INTO attempts (id, delivery_id, number, at, status_code, latency_ms, response, error, payload, \
             destination, delivered) \
           SELECT attempt_id, delivery_id, number, at, status_code, latency_ms, response, error, payload, \
             destination, CASE WHEN error IS NULL THEN 1 ELSE 0 END FROM input\
         ) UPDATE deliveries d SET \
           status = CASE WHEN d.replay_requested THEN 'pending' ELSE i.status END, \
           attempts = CASE WHEN d.replay_requested THEN 0 ELSE d.attempts END, \
           next_attempt_at = ",
        now!(),
        " + CASE WHEN d.replay_requested OR i.retry_in IS NULL THEN 0 ELSE i.retry_in END, \
           last_error = i.last_error, replay_requested = false, lease_owner = NULL, lease_until = NULL, updated_at = ",
        now!(),
        " FROM input i WHERE d.id = i.delivery_id AND d.lease_owner = i.lease RETURNING d.id"
    ))
    .bind(finishes.iter().map(|(j, _, _)| j.id.as_str()).collect::<Vec<_>>())
    .bind(finishes.iter().map(|(j, _, _)| j.lease.as_str()).collect::<Vec<_>>())
    .bind(finishes.iter().map(|_| new_id()).collect::<Vec<_>>())
    .bind(finishes.iter().map(|(j, _, _)| i64::from(j.attempt)).collect::<Vec<_>>())
    .bind(finishes.iter().map(|(_, a, _)| a.at.timestamp_millis()).collect::<Vec<_>>())
    .bind(finishes.iter().map(|(_, a, _)| a.status.map(i64::from)).collect::<Vec<_>>())
    .bind(finishes.iter().map(|(_, a, _)| millis(a.latency)).collect::<Vec<_>>())
    .bind(finishes.iter().map(|(_, a, _)| a.response.as_deref()).collect::<Vec<_>>())
    .bind(finishes.iter().map(|(_, a, _)| a.error.as_deref().map(str::as_bytes)).collect::<Vec<_>>())
    .bind(finishes.iter().map(|(_, a, _)| a.payload.as_deref().map(str::as_bytes)).collect::<Vec<_>>())
    .bind(after.iter().map(|a| a.status.as_str()).collect::<Vec<_>>())
    .bind(after.iter().map(|a| a.retry_in.map(millis)).collect::<Vec<_>>())
    .bind(after.iter().map(|a| a.last_error.map(str::as_bytes)).collect::<Vec<_>>())
    .bind(finishes.iter().map(|(j, _, _)| j.destination.as_str()).collect::<Vec<_>>())
    .fetch_all(&mut *conn)
    .await?;
    Ok(finishes
        .iter()
        .map(|(job, _, _)| if updated.contains(&job.id) { Recorded::Done } else { Recorded::LeaseLost })
        .collect())
}

/// Leases up to `limit` due deliveries to `owner` for `lease_ms`, counts
/// their attempt and reads them with their events, oldest due first, in
/// one statement. Replicas skip each other's rows instead of waiting on
/// them. A leased delivery is due again when its lease runs out
/// (`next_attempt_at` moves with `lease_until`), so a claim reads one range
/// of the pending index, in its order, whatever the table's statistics say.
async fn claim(conn: &mut PgConnection, owner: &str, limit: usize, lease_ms: i64) -> Result<Vec<Job>, sqlx::Error> {
    let rows = sqlx::query(concat!(
        "WITH due AS (\
           SELECT id, next_attempt_at AS due FROM deliveries WHERE status = 'pending' AND next_attempt_at <= ",
        now!(),
        " ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED\
         ), claimed AS (\
           UPDATE deliveries d SET lease_owner = $1, lease_until = ",
        now!(),
        " + $3, next_attempt_at = ",
        now!(),
        " + $3, \
             attempts = CASE WHEN d.replay_requested THEN 1 ELSE d.attempts + 1 END, replay_requested = false \
           FROM due WHERE d.id = due.id \
           RETURNING d.id, d.event_id, d.destination, d.routes, d.attempts, d.payload, due.due\
         ) SELECT c.id, c.event_id, c.destination, c.routes, c.attempts, c.payload, e.dedup_key, e.body, e.facts \
         FROM claimed c JOIN events e ON e.id = c.event_id ORDER BY c.due"
    ))
    .bind(owner)
    .bind(limit as i64)
    .bind(lease_ms)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            let body: Vec<u8> = row.try_get("body")?;
            let facts: Option<String> = row.try_get("facts")?;
            Ok(Job {
                id: row.try_get("id")?,
                event_id: row.try_get("event_id")?,
                dedup_key: row.try_get("dedup_key")?,
                event: Arc::new(policy::event_with_facts(&body, facts.as_deref())),
                payload: row.try_get("payload")?,
                destination: row.try_get("destination")?,
                routes: policy::split_routes(row.try_get("routes")?),
                attempt: row.try_get::<i64, _>("attempts")?.try_into().unwrap_or(u32::MAX),
                lease: owner.to_owned(),
            })
        })
        .collect()
}

impl dialect::Columns for PgRow {
    type Error = sqlx::Error;

    fn int(&self, i: usize) -> Result<i64, sqlx::Error> {
        self.try_get(i)
    }

    fn optional_int(&self, i: usize) -> Result<Option<i64>, sqlx::Error> {
        self.try_get(i)
    }

    /// A column of bytes, or of text.
    fn optional_bytes(&self, i: usize) -> Result<Option<Vec<u8>>, sqlx::Error> {
        use sqlx::{Column, TypeInfo};
        if self.columns().get(i).is_some_and(|c| c.type_info().name() == "BYTEA") {
            self.try_get(i)
        } else {
            Ok(self.try_get::<Option<String>, _>(i)?.map(String::into_bytes))
        }
    }
}

/// A shared statement ([`read`], [`upkeep`]) with its arguments bound.
fn query(statement: &dialect::Statement) -> sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments> {
    let mut query = sqlx::query(&statement.sql);
    for arg in &statement.args {
        query = match arg {
            dialect::Arg::Text(t) => query.bind(t.clone()),
            dialect::Arg::Int(n) => query.bind(*n),
            dialect::Arg::Kept(t) => query.bind(t.as_bytes().to_vec()),
        };
    }
    query
}

/// The rows of a shared statement ([`read`]).
async fn rows(pool: &PgPool, statement: &dialect::Statement) -> Result<Vec<PgRow>, sqlx::Error> {
    query(statement).fetch_all(pool).await
}

/// Deletes what [`Store::prune`] says ([`upkeep::prune`]), in one
/// transaction; how many delivered deliveries went.
async fn prune(pool: &PgPool, retention: &Retention) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut pruned = 0;
    for (i, statement) in upkeep::prune(DIALECT, retention).iter().enumerate() {
        let n = query(statement).execute(&mut *tx).await?.rows_affected();
        if i == upkeep::PRUNED_DELIVERIES {
            pruned = n;
        }
    }
    tx.commit().await?;
    Ok(pruned)
}

#[async_trait]
impl Queue for PostgresStore {
    async fn enqueue(&self, event: NewEvent, deliveries: Vec<NewDelivery>) -> Result<Enqueued, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writes.send(Write::Enqueue { event, deliveries, reply }).await.map_err(writer_stopped)?;
        answer.await.map_err(writer_stopped)?
    }

    async fn claim_due(&self, limit: usize, lease: Duration) -> Result<Vec<Job>, StoreError> {
        let (reply, answer) = oneshot::channel();
        let claim = Write::Claim { owner: new_id(), limit, lease_ms: millis(lease), reply };
        self.writes.send(claim).await.map_err(writer_stopped)?;
        answer.await.map_err(writer_stopped)?
    }

    async fn next_due(&self) -> Result<Option<Duration>, StoreError> {
        let wait: Option<i64> = sqlx::query_scalar(concat!(
            "SELECT MIN(next_attempt_at) - ",
            now!(),
            " FROM deliveries WHERE status = 'pending'"
        ))
        .fetch_one(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(wait.map(|ms| Duration::from_millis(ms.max(0) as u64)))
    }

    async fn finish_attempt(&self, job: &Job, attempt: AttemptRecord, state: NextStep) -> Result<Recorded, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job = Job { event: Arc::new(Value::Null), ..job.clone() };
        self.writes.send(Write::Finish { job, attempt, state, reply }).await.map_err(writer_stopped)?;
        answer.await.map_err(writer_stopped)?
    }

    async fn extend_lease(&self, job: &Job, lease: Duration) -> Result<bool, StoreError> {
        let n = sqlx::query(concat!(
            "UPDATE deliveries SET lease_until = ",
            now!(),
            " + $1, next_attempt_at = ",
            now!(),
            " + $1 WHERE id = $2 AND lease_owner = $3"
        ))
        .bind(millis(lease))
        .bind(&job.id)
        .bind(&job.lease)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?
        .rows_affected();
        Ok(n > 0)
    }

    async fn postpone(&self, job: &Job, delay: Duration) -> Result<(), StoreError> {
        // The attempt counted by the claim was not made.
        sqlx::query(concat!(
            "UPDATE deliveries SET next_attempt_at = ",
            now!(),
            " + $1, attempts = CASE WHEN replay_requested THEN 0 ELSE attempts - 1 END, \
             replay_requested = false, lease_owner = NULL, lease_until = NULL WHERE id = $2 AND lease_owner = $3"
        ))
        .bind(millis(delay))
        .bind(&job.id)
        .bind(&job.lease)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(())
    }
}

#[async_trait]
impl Inspect for PostgresStore {
    async fn destination_stats(&self) -> Result<Vec<DestinationStats>, StoreError> {
        let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(concat!(
            "SELECT destination, status, COUNT(*), ",
            now!(),
            " - MIN(created_at) FROM deliveries WHERE status IN ('pending', 'dead') GROUP BY destination, status"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(policy::per_destination(rows))
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<DeliverySummary>, StoreError> {
        inspect::list(&self.pool, filter).await.map_err(unavailable)
    }

    async fn show(&self, id: &str) -> Result<Option<DeliveryDetail>, StoreError> {
        let id = id.to_ascii_lowercase();
        let shown = rows(&self.pool, &read::show(DIALECT, &id)).await.map_err(unavailable)?;
        let Some(detail) = shown.first().map(read::detail).transpose().map_err(unavailable)? else {
            return Ok(None);
        };
        let attempts = rows(&self.pool, &read::attempts(DIALECT, &id)).await.map_err(unavailable)?;
        let attempts = attempts.iter().map(read::attempt).collect::<Result<Vec<_>, _>>().map_err(unavailable)?;
        Ok(Some(read::with_attempts(detail, attempts)))
    }

    async fn replay(&self, ids: &[String]) -> Result<Vec<Replayed>, StoreError> {
        let ids: Vec<String> = ids.iter().map(|id| id.to_ascii_lowercase()).collect();
        // An attempt under way (a live lease) is left to finish; its
        // record then starts the delivery over.
        let rows: Vec<(String, bool)> = sqlx::query_as(concat!(
            "UPDATE deliveries SET \
             replay_requested = (lease_owner IS NOT NULL AND lease_until >= ",
            now!(),
            "), \
             status = CASE WHEN lease_owner IS NOT NULL AND lease_until >= ",
            now!(),
            " THEN status ELSE 'pending' END, \
             attempts = CASE WHEN lease_owner IS NOT NULL AND lease_until >= ",
            now!(),
            " THEN attempts ELSE 0 END, \
             next_attempt_at = CASE WHEN lease_owner IS NOT NULL AND lease_until >= ",
            now!(),
            " THEN next_attempt_at ELSE ",
            now!(),
            " END, \
             lease_until = CASE WHEN lease_until >= ",
            now!(),
            " THEN lease_until END, \
             lease_owner = CASE WHEN lease_until >= ",
            now!(),
            " THEN lease_owner END, \
             updated_at = ",
            now!(),
            " WHERE id = ANY($1) RETURNING id, replay_requested"
        ))
        .bind(&ids)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(ids
            .into_iter()
            .filter_map(|id| {
                let waits = rows.iter().find(|(r, _)| *r == id)?.1;
                Some(Replayed { id, after_attempt_under_way: waits })
            })
            .collect())
    }

    async fn replay_dead(&self, destination: Option<&str>) -> Result<u64, StoreError> {
        let n = sqlx::query(concat!(
            "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = ",
            now!(),
            ", updated_at = ",
            now!(),
            ", lease_owner = NULL, lease_until = NULL, replay_requested = false \
             WHERE status = 'dead' AND ($1 = '' OR destination = $1)"
        ))
        .bind(destination.unwrap_or(""))
        .execute(&self.pool)
        .await
        .map_err(unavailable)?
        .rows_affected();
        Ok(n)
    }

    async fn purge_dead(&self, older_than: Duration) -> Result<u64, StoreError> {
        let [attempts, deliveries] = upkeep::delete_older(DIALECT, Status::Dead, millis(older_than));
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        query(&attempts).execute(&mut *tx).await.map_err(unavailable)?;
        let n = query(&deliveries).execute(&mut *tx).await.map_err(unavailable)?.rows_affected();
        tx.commit().await.map_err(unavailable)?;
        Ok(n)
    }

    async fn discard(&self, ids: &[String], reason: &str) -> Result<Vec<DeliveryId>, StoreError> {
        inspect::discard(&self.pool, ids, reason).await.map_err(unavailable)
    }

    async fn activity(&self, periods: &[Duration]) -> Result<Vec<Activity>, StoreError> {
        inspect::activity(&self.pool, periods).await.map_err(unavailable)
    }

    async fn list_events(&self, filter: &EventFilter) -> Result<Vec<EventSummary>, StoreError> {
        inspect::list_events(&self.pool, filter).await.map_err(unavailable)
    }

    async fn event(&self, id: &str) -> Result<Option<EventDetail>, StoreError> {
        inspect::event(&self.pool, id).await.map_err(unavailable)
    }

    async fn destination_health(&self, destinations: &[String]) -> Result<Vec<DestinationHealth>, StoreError> {
        inspect::destination_health(&self.pool, destinations).await.map_err(unavailable)
    }
}

#[async_trait]
impl History for PostgresStore {
    async fn history(&self, customer: &str, recent: usize) -> Result<EarlierFlows, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.lookups.send((customer.to_owned(), recent, reply)).await.map_err(writer_stopped)?;
        answer.await.map_err(writer_stopped)?
    }

    async fn forget(&self, customer: &str) -> Result<Forgotten, StoreError> {
        forget(&self.pool, customer).await.map_err(unavailable)
    }

    async fn events_with_email(&self, email: &str) -> Result<EmailMatches, StoreError> {
        events_with_email(&self.pool, email.trim()).await.map_err(unavailable)
    }

    async fn forget_events(&self, ids: &[String]) -> Result<Forgotten, StoreError> {
        forget_events(&self.pool, ids).await.map_err(unavailable)
    }

    async fn scrub(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[async_trait]
impl Digests for PostgresStore {
    async fn events_between(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Vec<StoredEvent>, StoreError> {
        let rows: Vec<(String, i64, Vec<u8>, Option<String>)> = sqlx::query_as(
            "SELECT id, received_at, body, facts FROM events WHERE received_at >= $1 AND received_at < $2 \
             AND source = 'raaft' ORDER BY received_at, id",
        )
        .bind(start.timestamp_millis())
        .bind(end.timestamp_millis())
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(rows
            .into_iter()
            .map(|(id, at, body, facts)| StoredEvent {
                id,
                received_at: time(at),
                event: policy::event_with_facts(&body, facts.as_deref()),
            })
            .collect())
    }

    async fn last_digest_window(&self, digest: &str) -> Result<Option<DigestWindow>, StoreError> {
        let row = sqlx::query(
            "SELECT digest, window_start, window_end, event_id FROM digest_windows WHERE digest = $1 \
             ORDER BY window_end DESC LIMIT 1",
        )
        .bind(digest)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        row.as_ref().map(digest_window).transpose().map_err(unavailable)
    }

    async fn claim_digest(&self, digest: NewDigest) -> Result<DigestClaim, StoreError> {
        claim_digest(&self.pool, &digest).await.map_err(unavailable)
    }

    async fn digests_quoting(&self, customer: &str) -> Result<Vec<StoredDigest>, StoreError> {
        digests::digests_quoting(&self.pool, customer).await.map_err(unavailable)
    }

    async fn rewrite_digest(&self, rewrite: DigestRewrite) -> Result<(), StoreError> {
        digests::rewrite_digest(&self.pool, &rewrite).await.map_err(unavailable)
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn now(&self) -> Result<DateTime<Utc>, StoreError> {
        let ms: i64 =
            sqlx::query_scalar(concat!("SELECT ", now!())).fetch_one(&self.pool).await.map_err(unavailable)?;
        Ok(time(ms))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(unavailable)?;
        Ok(())
    }

    async fn prune(&self, retention: &Retention) -> Result<u64, StoreError> {
        prune(&self.pool, retention).await.map_err(unavailable)
    }

    async fn secret(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        secrets::secret(&self.pool, name, &fresh_secret()).await.map_err(unavailable)
    }

    async fn renew_secret(&self, name: &str) -> Result<(), StoreError> {
        secrets::renew_secret(&self.pool, name, &fresh_secret()).await.map_err(unavailable)
    }

    async fn revoke_session(&self, id: &str, issued: DateTime<Utc>) -> Result<(), StoreError> {
        secrets::revoke_session(&self.pool, id, issued.timestamp_millis()).await.map_err(unavailable)
    }

    async fn session_revoked(&self, id: &str) -> Result<bool, StoreError> {
        secrets::session_revoked(&self.pool, id).await.map_err(unavailable)
    }
}
