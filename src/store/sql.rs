//! The SQL store: one schema and one set of queries for SQLite and
//! PostgreSQL through sqlx's `Any` driver. The writes on the hot path (new
//! events, attempt records, claims on SQLite) are batched, so concurrent
//! requests share one transaction and one commit: on SQLite by the writer
//! thread in `sqlite.rs`, on PostgreSQL by the task below, with multi-row
//! statements (one round trip for many rows).

use super::*;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use std::path::Path;
use std::str::FromStr;
use tokio::sync::{mpsc, oneshot};

/// The schema, embedded: migrations run at start.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How many ingest requests one transaction takes at most.
const MAX_BATCH: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A write for the PostgreSQL batching writer.
enum Write {
    Enqueue { event: NewEvent, deliveries: Vec<NewDelivery>, reply: oneshot::Sender<Result<Enqueued, StoreError>> },
    Finish { job: Job, attempt: AttemptRecord, state: JobState, reply: oneshot::Sender<Result<(), StoreError>> },
}

/// What one write in a batch came to.
pub(super) enum Written {
    Enqueued(Enqueued),
    /// Whether the delivery's row was updated (false: the lease was lost).
    Finished(bool),
}

/// Where writes go: SQLite's writer thread, or PostgreSQL's batching task.
enum Writer {
    Sqlite(mpsc::Sender<sqlite::Request>),
    Postgres(mpsc::Sender<Write>),
}

/// A store in SQLite or PostgreSQL.
pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
    writer: Writer,
}

fn writer_stopped<T>(_: T) -> StoreError {
    StoreError("the store writer stopped".into())
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

pub(super) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(v: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(v).unwrap_or_default()
}

pub(super) fn now_ms() -> i64 {
    ms(Utc::now())
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Resolves a store URL from the config: a relative SQLite path is relative
/// to the config file's directory.
pub fn resolve_url(url: &str, config_dir: &Path) -> Result<String, String> {
    if let Some(rest) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
        let (path, query) = rest.split_once('?').map_or((rest, None), |(p, q)| (p, Some(q)));
        if path.is_empty() || path == ":memory:" {
            return Err(format!("store url \"{url}\" names no file"));
        }
        let full = if Path::new(path).is_absolute() { path.into() } else { config_dir.join(path) };
        // sqlx reads the URL as a URL: only an absolute, normalised path
        // survives that intact.
        let full = normalize(&std::env::current_dir().unwrap_or_default().join(full));
        let query = query.map(|q| format!("&{q}")).unwrap_or_default();
        return Ok(format!("sqlite://{}?mode=rwc{query}", full.display()));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(url.to_owned());
    }
    Err(format!(
        "store url must start with sqlite:// or postgres://, not \"{}\"",
        url.split("://").next().unwrap_or(url)
    ))
}

/// `path` with `.` and `..` resolved without touching the file system (the
/// folder may not exist yet).
fn normalize(path: &Path) -> std::path::PathBuf {
    use std::path::Component;
    let mut out = std::path::PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

impl SqlStore {
    /// Opens (creating it if needed) the store at `url` and runs the
    /// migrations. `dedup_window` is how long an idempotency key counts.
    pub async fn open(url: &str, dedup_window: Duration) -> Result<SqlStore, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") { Backend::Sqlite } else { Backend::Postgres };
        let path = url.trim_start_matches("sqlite:").trim_start_matches("//").split('?').next().unwrap_or_default();
        if backend == Backend::Sqlite {
            if let Some(dir) = Path::new(path).parent() {
                std::fs::create_dir_all(dir).map_err(|e| err(format!("cannot create \"{}\": {e}", dir.display())))?;
            }
        }
        // An SQLite store is created on first start.
        let url = if backend == Backend::Sqlite && !url.contains("mode=") {
            format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
        } else {
            url.to_owned()
        };
        let options = sqlx::any::AnyConnectOptions::from_str(&url).map_err(err)?;
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 8 })
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // Every acknowledged event is on disk (FULL) without
                        // blocking readers (WAL).
                        for pragma in [
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA synchronous = FULL",
                            "PRAGMA busy_timeout = 10000",
                            "PRAGMA foreign_keys = ON",
                        ] {
                            sqlx::query(pragma).execute(&mut *conn).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(err)?;
        MIGRATOR.run(&pool).await.map_err(|e| err(format!("migrations failed: {e}")))?;
        let writer = match backend {
            Backend::Sqlite => Writer::Sqlite(sqlite::start(path, dedup_window)?),
            Backend::Postgres => {
                let (writer, requests) = mpsc::channel(4 * MAX_BATCH);
                tokio::spawn(write_batches(pool.clone(), requests, dedup_window));
                Writer::Postgres(writer)
            }
        };
        Ok(SqlStore { pool, backend, writer })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Leases up to `limit` due deliveries to `token`; replicas skip each
    /// other's rows instead of waiting on them.
    async fn claim_postgres(
        &self,
        token: &str,
        lease_until: i64,
        now: i64,
        limit: usize,
    ) -> Result<Vec<sqlite::ClaimedRow>, StoreError> {
        let claimed = sqlx::query(
            "UPDATE deliveries SET lease_owner = $1, lease_until = $2 WHERE id IN (\
             SELECT id FROM deliveries WHERE status = 'pending' AND next_attempt_at <= $3 \
             AND (lease_until IS NULL OR lease_until < $3) ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED)",
        )
        .bind(token)
        .bind(lease_until)
        .bind(now)
        .bind(limit as i64)
        .execute(&self.pool)
        .await
        .map_err(err)?
        .rows_affected();
        if claimed == 0 {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT d.id, d.destination, d.routes, d.attempts, e.dedup_key, e.body \
             FROM deliveries d JOIN events e ON e.id = d.event_id WHERE d.lease_owner = $1 ORDER BY d.next_attempt_at",
        )
        .bind(token)
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.iter()
            .map(|row| {
                Ok(sqlite::ClaimedRow {
                    id: row.try_get("id")?,
                    destination: row.try_get("destination")?,
                    routes: row.try_get("routes")?,
                    attempts: row.try_get("attempts")?,
                    event_key: row.try_get("dedup_key")?,
                    body: row.try_get("body")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(err)
    }

    fn summary(row: &AnyRow) -> Result<DeliverySummary, sqlx::Error> {
        let routes: String = row.try_get("routes")?;
        let status: String = row.try_get("status")?;
        Ok(DeliverySummary {
            id: row.try_get("id")?,
            event_id: row.try_get("event_id")?,
            created_at: from_ms(row.try_get("created_at")?),
            updated_at: from_ms(row.try_get("updated_at")?),
            destination: row.try_get("destination")?,
            routes: routes.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
            outcome: row.try_get("outcome")?,
            customer: row.try_get("customer")?,
            status: Status::parse(&status).unwrap_or(Status::Pending),
            attempts: row.try_get::<i64, _>("attempts")?.try_into().unwrap_or(u32::MAX),
            next_attempt_at: from_ms(row.try_get("next_attempt_at")?),
            last_error: row.try_get("last_error")?,
        })
    }
}

const SUMMARY_COLUMNS: &str = "d.id, d.event_id, d.created_at, d.updated_at, d.destination, d.routes, \
     e.outcome, e.customer, d.status, d.attempts, d.next_attempt_at, d.last_error";

/// The PostgreSQL batching writer: takes every write waiting (new events
/// and attempt records alike), writes them in one transaction, answers
/// each. While one batch commits the next gathers.
async fn write_batches(pool: AnyPool, mut requests: mpsc::Receiver<Write>, dedup_window: Duration) {
    while let Some(first) = requests.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match requests.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        match write_batch(&pool, &batch, dedup_window).await {
            Ok(results) => {
                for (request, result) in batch.into_iter().zip(results) {
                    match (request, result) {
                        (Write::Enqueue { reply, .. }, Written::Enqueued(e)) => {
                            let _ = reply.send(Ok(e));
                        }
                        (Write::Finish { reply, job, .. }, Written::Finished(updated)) => {
                            if !updated {
                                tracing::warn!(delivery = %job.id, "lease lost before the attempt was recorded; another worker owns it now");
                            }
                            let _ = reply.send(Ok(()));
                        }
                        _ => unreachable!("results follow the batch"),
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, writes = batch.len(), "cannot write to the store");
                for request in batch {
                    let error = StoreError(e.to_string());
                    match request {
                        Write::Enqueue { reply, .. } => {
                            let _ = reply.send(Err(error));
                        }
                        Write::Finish { reply, .. } => {
                            let _ = reply.send(Err(error));
                        }
                    }
                }
            }
        }
    }
}

async fn write_batch(pool: &AnyPool, batch: &[Write], dedup_window: Duration) -> Result<Vec<Written>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let events: Vec<(&NewEvent, &[NewDelivery])> = batch
        .iter()
        .filter_map(|w| match w {
            Write::Enqueue { event, deliveries, .. } => Some((event, deliveries.as_slice())),
            Write::Finish { .. } => None,
        })
        .collect();
    let mut enqueued = insert_events(&mut tx, &events, dedup_window).await?.into_iter();
    let mut results = Vec::with_capacity(batch.len());
    for write in batch {
        let result = match write {
            Write::Enqueue { .. } => Written::Enqueued(enqueued.next().expect("one result per event")),
            Write::Finish { job, attempt, state, .. } => {
                Written::Finished(record_attempt(&mut tx, job, attempt, state).await?)
            }
        };
        results.push(result);
    }
    tx.commit().await?;
    Ok(results)
}

/// Rows per multi-row INSERT: well inside both engines' parameter limits.
const ROWS_PER_STATEMENT: usize = 400;

/// "$first, $first+1, ..." for `n` parameters.
fn numbered(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// "($1, $2, $3), ($4, $5, $6), ..." for `rows` rows of `columns` values,
/// numbered from `first`.
fn placeholders(rows: usize, columns: usize, first: usize) -> String {
    let mut out = String::with_capacity(rows * columns * 5);
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for c in 0..columns {
            if c > 0 {
                out.push_str(", ");
            }
            out.push_str(&format!("${}", first + r * columns + c));
        }
        out.push(')');
    }
    out
}

/// Writes new events and their deliveries with a few multi-row statements
/// per batch. An event whose key was seen within the window (in the store,
/// or earlier in this batch) is a duplicate.
async fn insert_events(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    events: &[(&NewEvent, &[NewDelivery])],
    dedup_window: Duration,
) -> Result<Vec<Enqueued>, sqlx::Error> {
    let mut seen = std::collections::HashSet::new();
    let ids: Vec<String> = events.iter().map(|_| new_id()).collect();
    // Within one batch the first event with a key wins.
    let candidates: Vec<usize> = (0..events.len()).filter(|&i| seen.insert(events[i].0.key.as_str())).collect();
    let mut fresh = std::collections::HashSet::new();
    for chunk in candidates.chunks(ROWS_PER_STATEMENT) {
        // A key seen within the window stays; an older one is taken over.
        let sql = format!(
            "INSERT INTO dedup (dedup_key, event_id, received_at) VALUES {} \
             ON CONFLICT (dedup_key) DO UPDATE SET event_id = excluded.event_id, received_at = excluded.received_at \
             WHERE dedup.received_at < excluded.received_at - ${} RETURNING dedup_key",
            placeholders(chunk.len(), 3, 1),
            chunk.len() * 3 + 1
        );
        let mut query = sqlx::query(&sql);
        for &i in chunk {
            let event = events[i].0;
            query = query.bind(&event.key).bind(&ids[i]).bind(ms(event.received_at));
        }
        let query = query.bind(duration_ms(dedup_window));
        for row in query.fetch_all(&mut **tx).await? {
            fresh.insert(row.try_get::<String, _>("dedup_key")?);
        }
    }
    let accepted: Vec<usize> = candidates.into_iter().filter(|&i| fresh.contains(events[i].0.key.as_str())).collect();
    for chunk in accepted.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO events (id, dedup_key, received_at, outcome, customer, body) VALUES {}",
            placeholders(chunk.len(), 6, 1)
        );
        let mut query = sqlx::query(&sql);
        for &i in chunk {
            let event = events[i].0;
            query = query
                .bind(&ids[i])
                .bind(&event.key)
                .bind(ms(event.received_at))
                .bind(event.outcome.clone())
                .bind(event.customer.clone())
                .bind(&event.body);
        }
        query.execute(&mut **tx).await?;
    }
    let mut delivery_ids: Vec<Vec<String>> = vec![Vec::new(); events.len()];
    let rows: Vec<(usize, &NewDelivery)> =
        accepted.iter().flat_map(|&i| events[i].1.iter().map(move |d| (i, d))).collect();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        // Seven numbered values a row, in order: `at` is bound three times.
        let values: Vec<String> = (0..chunk.len())
            .map(|r| format!("({}, 'pending', 0, {})", numbered(1 + r * 7, 4), numbered(5 + r * 7, 3)))
            .collect();
        let sql = format!(
                "INSERT INTO deliveries (id, event_id, destination, routes, status, attempts, next_attempt_at, created_at, updated_at) \
                 VALUES {}",
                values.join(", ")
            );
        let mut query = sqlx::query(&sql);
        for &(i, d) in chunk {
            let id = new_id();
            let at = ms(events[i].0.received_at);
            query = query
                .bind(id.clone())
                .bind(&ids[i])
                .bind(&d.destination)
                .bind(d.routes.join(","))
                .bind(at)
                .bind(at)
                .bind(at);
            delivery_ids[i].push(id);
        }
        query.execute(&mut **tx).await?;
    }
    let accepted: std::collections::HashSet<usize> = accepted.into_iter().collect();
    Ok((0..events.len())
        .map(|i| {
            if accepted.contains(&i) {
                Enqueued::Accepted { deliveries: std::mem::take(&mut delivery_ids[i]) }
            } else {
                Enqueued::Duplicate
            }
        })
        .collect())
}

/// A delivery's status, next attempt time and last error after an
/// attempt that ended in `state` (both engines record it the same way).
pub(super) fn delivery_after<'a>(
    state: &'a JobState,
    attempt: &'a AttemptRecord,
    now: i64,
) -> (&'static str, i64, Option<&'a str>) {
    match state {
        JobState::Delivered => ("delivered", now, None),
        JobState::RetryAt(at) => ("pending", ms(*at), attempt.error.as_deref()),
        JobState::Dead { reason } => ("dead", now, Some(reason.as_str())),
    }
}

/// Records an attempt and the delivery's new state, if the lease is still
/// this job's. Returns whether the delivery was updated.
async fn record_attempt(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    job: &Job,
    attempt: &AttemptRecord,
    state: &JobState,
) -> Result<bool, sqlx::Error> {
    let number = i64::from(job.attempts) + 1;
    let now = now_ms();
    let (status, next, last_error) = delivery_after(state, attempt, now);
    sqlx::query(
        "INSERT INTO attempts (id, delivery_id, number, at, status_code, latency_ms, response, error, payload) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(new_id())
    .bind(&job.id)
    .bind(number)
    .bind(ms(attempt.at))
    .bind(attempt.status.map(i64::from))
    .bind(duration_ms(attempt.latency))
    .bind(attempt.response.clone())
    .bind(attempt.error.clone())
    .bind(attempt.payload.clone())
    .execute(&mut **tx)
    .await?;
    let updated = sqlx::query(
        "UPDATE deliveries SET status = $1, attempts = $2, next_attempt_at = $3, last_error = $4, \
         lease_owner = NULL, lease_until = NULL, updated_at = $5 WHERE id = $6 AND lease_owner = $7",
    )
    .bind(status)
    .bind(number)
    .bind(next)
    .bind(last_error)
    .bind(now)
    .bind(&job.id)
    .bind(&job.lease)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(updated > 0)
}

#[async_trait]
impl Store for SqlStore {
    async fn enqueue(&self, event: NewEvent, deliveries: Vec<NewDelivery>) -> Result<Enqueued, StoreError> {
        let (reply, answer) = oneshot::channel();
        match &self.writer {
            Writer::Sqlite(w) => {
                w.send(sqlite::Request::Enqueue { event, deliveries, reply }).await.map_err(writer_stopped)
            }
            Writer::Postgres(w) => w.send(Write::Enqueue { event, deliveries, reply }).await.map_err(writer_stopped),
        }?;
        answer.await.map_err(writer_stopped)?
    }

    async fn claim_due(&self, limit: usize, lease: Duration) -> Result<Vec<Job>, StoreError> {
        let now = now_ms();
        let token = new_id();
        let lease_until = now + duration_ms(lease);
        let rows = match &self.writer {
            Writer::Sqlite(w) => {
                let (reply, answer) = oneshot::channel();
                let request =
                    sqlite::Request::Claim { token: token.clone(), lease_until, now, limit: limit as i64, reply };
                w.send(request).await.map_err(writer_stopped)?;
                answer.await.map_err(writer_stopped)??
            }
            Writer::Postgres(_) => self.claim_postgres(&token, lease_until, now, limit).await?,
        };
        Ok(rows
            .into_iter()
            .map(|row| Job {
                id: row.id,
                event_key: row.event_key,
                event: Arc::new(serde_json::from_str(&row.body).unwrap_or(Value::Null)),
                destination: row.destination,
                routes: row.routes.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
                attempts: row.attempts.try_into().unwrap_or(u32::MAX),
                lease: token.clone(),
            })
            .collect())
    }

    async fn finish_attempt(&self, job: &Job, attempt: AttemptRecord, state: JobState) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        let job = job.clone();
        match &self.writer {
            Writer::Sqlite(w) => {
                w.send(sqlite::Request::Finish { job, attempt, state, reply }).await.map_err(writer_stopped)
            }
            Writer::Postgres(w) => w.send(Write::Finish { job, attempt, state, reply }).await.map_err(writer_stopped),
        }?;
        answer.await.map_err(writer_stopped)?
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let row = sqlx::query(
            "SELECT MIN(next_attempt_at) AS due FROM deliveries WHERE status = 'pending' AND lease_owner IS NULL",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(err)?;
        Ok(row.try_get::<Option<i64>, _>("due").map_err(err)?.map(from_ms))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(err)?;
        Ok(())
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        let rows = sqlx::query(
            "SELECT status, CASE WHEN lease_owner IS NULL THEN 0 ELSE 1 END AS leased, COUNT(*) AS n \
             FROM deliveries GROUP BY status, CASE WHEN lease_owner IS NULL THEN 0 ELSE 1 END",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        let mut stats = StoreStats::default();
        for row in rows {
            let status: String = row.try_get("status").map_err(err)?;
            let leased: i64 = row
                .try_get::<i32, _>("leased")
                .map(i64::from)
                .or_else(|_| row.try_get::<i64, _>("leased"))
                .map_err(err)?;
            let n = row.try_get::<i64, _>("n").map_err(err)? as u64;
            match status.as_str() {
                "pending" => {
                    stats.pending += n;
                    if leased == 1 {
                        stats.in_flight += n;
                    }
                }
                "delivered" => stats.delivered += n,
                "dead" => stats.dead += n,
                _ => {}
            }
        }
        let count = |sql: &'static str| async move {
            sqlx::query(sql).fetch_one(&self.pool).await.and_then(|r| r.try_get::<i64, _>("n")).map_err(err)
        };
        stats.attempts = count("SELECT COUNT(*) AS n FROM attempts").await? as u64;
        stats.events = count("SELECT COUNT(*) AS n FROM events").await? as u64;
        Ok(stats)
    }

    async fn destination_stats(&self) -> Result<Vec<DestinationStats>, StoreError> {
        let rows = sqlx::query(
            "SELECT destination, status, COUNT(*) AS n, MIN(created_at) AS oldest FROM deliveries \
             WHERE status IN ('pending', 'dead') GROUP BY destination, status",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        let now = now_ms();
        let mut out: Vec<DestinationStats> = Vec::new();
        for row in rows {
            let destination: String = row.try_get("destination").map_err(err)?;
            let status: String = row.try_get("status").map_err(err)?;
            let n = row.try_get::<i64, _>("n").map_err(err)?.max(0) as u64;
            let oldest: Option<i64> = row.try_get("oldest").map_err(err)?;
            let entry = match out.iter_mut().position(|s| s.destination == destination) {
                Some(i) => &mut out[i],
                None => {
                    out.push(DestinationStats { destination, ..Default::default() });
                    out.last_mut().expect("just pushed")
                }
            };
            if status == "pending" {
                entry.pending = n;
                entry.oldest_pending_age = Duration::from_millis(oldest.map_or(0, |o| (now - o).max(0) as u64));
            } else {
                entry.dead = n;
            }
        }
        Ok(out)
    }

    async fn postpone(&self, job: &Job, until: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE deliveries SET next_attempt_at = $1, lease_owner = NULL, lease_until = NULL \
             WHERE id = $2 AND lease_owner = $3",
        )
        .bind(ms(until))
        .bind(&job.id)
        .bind(&job.lease)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<DeliverySummary>, StoreError> {
        let since = filter.since.map(|s| now_ms() - duration_ms(s)).unwrap_or(i64::MIN);
        let sql = format!(
            "SELECT {SUMMARY_COLUMNS} FROM deliveries d JOIN events e ON e.id = d.event_id \
             WHERE ($1 = '' OR d.status = $1) AND ($2 = '' OR d.destination = $2) AND d.created_at >= $3 \
             ORDER BY d.created_at DESC, d.id DESC LIMIT $4"
        );
        let rows = sqlx::query(&sql)
            .bind(filter.status.map(Status::as_str).unwrap_or(""))
            .bind(filter.destination.clone().unwrap_or_default())
            .bind(since)
            .bind(if filter.limit == 0 { i64::MAX } else { filter.limit as i64 })
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        rows.iter().map(|r| Self::summary(r).map_err(err)).collect()
    }

    async fn show(&self, id: &str) -> Result<Option<DeliveryDetail>, StoreError> {
        let sql = format!(
            "SELECT {SUMMARY_COLUMNS}, e.body FROM deliveries d JOIN events e ON e.id = d.event_id WHERE d.id = $1"
        );
        let Some(row) =
            sqlx::query(&sql).bind(id.to_ascii_lowercase()).fetch_optional(&self.pool).await.map_err(err)?
        else {
            return Ok(None);
        };
        let summary = Self::summary(&row).map_err(err)?;
        let body: String = row.try_get("body").map_err(err)?;
        let rows = sqlx::query(
            "SELECT number, at, status_code, latency_ms, response, error, payload FROM attempts WHERE delivery_id = $1 ORDER BY at, id",
        )
        .bind(&summary.id)
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        let mut attempt_log = Vec::with_capacity(rows.len());
        for r in rows {
            attempt_log.push(AttemptView {
                number: r.try_get::<i64, _>("number").map_err(err)?.try_into().unwrap_or(0),
                at: from_ms(r.try_get("at").map_err(err)?),
                status_code: r
                    .try_get::<Option<i64>, _>("status_code")
                    .map_err(err)?
                    .and_then(|c| u16::try_from(c).ok()),
                latency_ms: r.try_get::<i64, _>("latency_ms").map_err(err)?.max(0) as u64,
                response: r.try_get("response").map_err(err)?,
                error: r.try_get("error").map_err(err)?,
                payload: r.try_get("payload").map_err(err)?,
            });
        }
        let last_payload = attempt_log.iter().rev().find_map(|a| a.payload.clone());
        Ok(Some(DeliveryDetail {
            summary,
            event: serde_json::from_str(&body).unwrap_or(Value::Null),
            last_payload,
            attempt_log,
        }))
    }

    async fn replay(&self, ids: &[String]) -> Result<Vec<DeliveryId>, StoreError> {
        let now = now_ms();
        let mut replayed = Vec::new();
        let mut tx = self.pool.begin().await.map_err(err)?;
        for id in ids {
            let id = id.to_ascii_lowercase();
            let n = sqlx::query(
                "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = $1, updated_at = $1, \
                 lease_owner = NULL, lease_until = NULL WHERE id = $2",
            )
            .bind(now)
            .bind(&id)
            .execute(&mut *tx)
            .await
            .map_err(err)?
            .rows_affected();
            if n > 0 {
                replayed.push(id);
            }
        }
        tx.commit().await.map_err(err)?;
        Ok(replayed)
    }

    async fn replay_dead(&self, destination: Option<&str>) -> Result<u64, StoreError> {
        let now = now_ms();
        let n = sqlx::query(
            "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = $1, updated_at = $1, \
             lease_owner = NULL, lease_until = NULL WHERE status = 'dead' AND ($2 = '' OR destination = $2)",
        )
        .bind(now)
        .bind(destination.unwrap_or(""))
        .execute(&self.pool)
        .await
        .map_err(err)?
        .rows_affected();
        Ok(n)
    }

    async fn purge_dead(&self, older_than: Duration) -> Result<u64, StoreError> {
        let cutoff = now_ms() - duration_ms(older_than);
        let mut tx = self.pool.begin().await.map_err(err)?;
        let n = delete_older(&mut tx, "dead", cutoff).await.map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(n)
    }

    async fn prune(&self, retention: Duration, dedup_window: Duration) -> Result<u64, StoreError> {
        let now = now_ms();
        let cutoff = now - duration_ms(retention);
        let mut tx = self.pool.begin().await.map_err(err)?;
        let n = delete_older(&mut tx, "delivered", cutoff).await.map_err(err)?;
        sqlx::query("DELETE FROM dedup WHERE received_at < $1")
            .bind(now - duration_ms(dedup_window))
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(n)
    }

    async fn release_leases(&self) -> Result<(), StoreError> {
        sqlx::query("UPDATE deliveries SET lease_owner = NULL, lease_until = NULL WHERE lease_owner IS NOT NULL")
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(())
    }
}

/// Deletes deliveries in `status` last updated before `cutoff`, their
/// attempts, and the events left without deliveries. Returns how many
/// deliveries went.
async fn delete_older(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    status: &str,
    cutoff: i64,
) -> Result<u64, sqlx::Error> {
    sqlx::query(
        "DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE status = $1 AND updated_at < $2)",
    )
    .bind(status)
    .bind(cutoff)
    .execute(&mut **tx)
    .await?;
    let n = sqlx::query("DELETE FROM deliveries WHERE status = $1 AND updated_at < $2")
        .bind(status)
        .bind(cutoff)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    delete_orphan_events(tx, cutoff).await?;
    Ok(n)
}

/// Events older than `cutoff` that no delivery refers to any more.
async fn delete_orphan_events(tx: &mut sqlx::Transaction<'_, sqlx::Any>, cutoff: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM events WHERE received_at < $1 AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = events.id)",
    )
    .bind(cutoff)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_row_statements_number_their_parameters() {
        assert_eq!(placeholders(2, 3, 1), "($1, $2, $3), ($4, $5, $6)");
    }

    #[test]
    fn sqlite_paths_resolve_against_the_config_directory() {
        let dir = Path::new("/etc/raaft");
        assert_eq!(resolve_url("sqlite://../data/relay.db", dir).unwrap(), "sqlite:///etc/data/relay.db?mode=rwc");
        // A relative config folder (the default `config/relay.toml`).
        let cwd = std::env::current_dir().unwrap();
        let relative = resolve_url("sqlite://../data/relay.db", Path::new("config")).unwrap();
        assert_eq!(relative, format!("sqlite://{}?mode=rwc", normalize(&cwd.join("data/relay.db")).display()));
        assert_eq!(resolve_url("sqlite:///var/lib/relay.db", dir).unwrap(), "sqlite:///var/lib/relay.db?mode=rwc");
        assert_eq!(resolve_url("postgres://u@db/relay", dir).unwrap(), "postgres://u@db/relay");
        assert!(resolve_url("mysql://x", dir).unwrap_err().contains("\"mysql\""));
        assert!(resolve_url("sqlite://", dir).is_err());
    }
}
