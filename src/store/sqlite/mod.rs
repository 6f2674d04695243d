//! The SQLite store: one file, private to its owner, used by one `serve` at
//! a time (an OS lock on the file says so; the `deliveries` commands work
//! beside it). One thread owns the write connection and takes every write
//! from a queue: whatever is waiting when it looks goes into one
//! transaction with one fsync, each write under a savepoint of its own so
//! that one that fails is undone alone. Reads go through a small pool of
//! read-only connections (WAL keeps them apart from the writer), but for
//! ingest's history lookups, which a thread of their own answers
//! ([`history`]). Digests are in [`digests`]. Times are milliseconds since
//! the epoch by SQLite's clock, read when each statement runs.

use super::policy::{self, millis};
use super::*;
use crate::event::Event;
use crate::history::{EarlierFlows, Flow};
use crate::store::dialect::{self, time};
use crate::store::inspect::{Activity, DestinationHealth, EventDetail, EventFilter, EventSummary};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row, Transaction};
use serde_json::Value;
use std::fs::File;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use tokio::sync::{mpsc, oneshot};

/// Now, by SQLite's clock, in milliseconds since the epoch.
/// How the shared read side ([`read`]) writes SQLite's SQL.
const DIALECT: dialect::Dialect = dialect::Dialect::Sqlite;

macro_rules! now {
    () => {
        "CAST(unixepoch('subsec') * 1000 AS INTEGER)"
    };
}

mod digests;
mod history;
mod inspect;
mod schema;
mod secrets;

use digests::{claim_digest, digest_window, digests_quoting, rewrite_digest};
use history::{answer_lookups, events_with_email, forget, forget_events, lookups_stopped, remember, Lookup};

/// How the connection that writes is set up (see [`SqliteStore::open`]).
const WRITER_SETUP: &str = concat!(
    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
    "PRAGMA busy_timeout = 10000; PRAGMA temp_store = MEMORY; PRAGMA secure_delete = ON;"
);

/// How long a connection waits for another process's write lock (a
/// `deliveries` command beside `serve`).
const BUSY_TIMEOUT: &str = "PRAGMA busy_timeout = 10000;";

/// The store in one SQLite file.
pub struct SqliteStore {
    writes: mpsc::Sender<Box<dyn Write>>,
    readers: r2d2::Pool<SqliteConnectionManager>,
    /// History lookups, for the thread that answers them.
    lookups: mpsc::Sender<Lookup>,
    /// The file's lock, held by `serve` while the store is open.
    _lock: Option<File>,
}

impl SqliteStore {
    /// Opens the store at `path`, creating it (readable by its owner only)
    /// and migrating it as needed. `serve` takes the file's lock and frees
    /// the claims a previous run left behind.
    pub async fn open(path: &Path, dedup_window: Duration, access: Access) -> Result<SqliteStore, StoreError> {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || Self::open_blocking(&path, dedup_window, access))
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot open the store: {e}")))?
    }

    fn open_blocking(path: &Path, dedup_window: Duration, access: Access) -> Result<SqliteStore, StoreError> {
        let shown = path.display();
        let lock = match access {
            Access::Serve => {
                create_private(path)?;
                Some(lock(path)?)
            }
            Access::Tool if !path.exists() => return Err(StoreError::Missing(path.to_path_buf())),
            Access::Tool => None,
        };
        let failed =
            |what: &str, e: &dyn std::fmt::Display| StoreError::Unavailable(format!("cannot {what} \"{shown}\": {e}"));
        let mut conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .map_err(|e| failed("open", &e))?;
        // Every acknowledged event is on disk (FULL) without blocking
        // readers (WAL). The savepoint of each write in a batch keeps what
        // it would undo in memory (temp_store): spilled to a temporary
        // file, it doubled the bytes written per event and put customers'
        // data in /var/tmp. What is deleted is overwritten with zeros
        // (secure_delete), so an erased customer's text does not linger in
        // free space.
        conn.execute_batch(WRITER_SETUP).map_err(|e| failed("set up", &e))?;
        match access {
            Access::Serve => drop(schema::migrate(&mut conn)?),
            Access::Tool => schema::require_latest(&conn)?,
        }
        if access == Access::Serve {
            // Only this process delivers from the file: a claim left by a
            // previous run (killed mid-attempt) is free at once. Its
            // attempt was counted when it was claimed.
            conn.execute(
                concat!(
                    "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL, next_attempt_at = \
                     CASE WHEN status = 'pending' THEN ",
                    now!(),
                    " ELSE next_attempt_at END WHERE lease_owner IS NOT NULL"
                ),
                [],
            )
            .map_err(|e| failed("free the claims of a previous run in", &e))?;
        }
        conn.set_prepared_statement_cache_capacity(32);
        let readers = r2d2::Pool::builder()
            .max_size(4)
            .min_idle(Some(0))
            .connection_timeout(Duration::from_secs(10))
            .build(
                SqliteConnectionManager::file(path)
                    .with_flags(OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                    .with_init(|c| c.execute_batch(BUSY_TIMEOUT)),
            )
            .map_err(|e| failed("read", &e))?;
        let (writes, queue) = mpsc::channel(4 * policy::MAX_BATCH);
        let window = millis(dedup_window);
        std::thread::Builder::new()
            .name("raaft-store-writer".into())
            .spawn(move || write_batches(conn, queue, window))
            .map_err(|e| failed("start the writer of", &e))?;
        let history_reader =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .and_then(|c| c.execute_batch(BUSY_TIMEOUT).map(|_| c))
                .map_err(|e| failed("read", &e))?;
        let (lookups, lookup_queue) = mpsc::channel(4 * policy::MAX_BATCH);
        std::thread::Builder::new()
            .name("raaft-store-history".into())
            .spawn(move || answer_lookups(history_reader, lookup_queue))
            .map_err(|e| failed("start the history reader of", &e))?;
        Ok(SqliteStore { writes, readers, lookups, _lock: lock })
    }

    /// Runs `work` on the writer thread, in the next batch's transaction
    /// (twice if another write of that batch fails: see [`write_batch`]).
    async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&Transaction<'_>, &Batch) -> rusqlite::Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let op = Op { work, done: None, reply };
        self.writes.send(Box::new(op)).await.map_err(|_| writer_stopped())?;
        answer.await.map_err(|_| writer_stopped())?
    }

    /// Runs `work` on a read-only connection, off the async loaded.
    async fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let conn = readers.get().map_err(|e| StoreError::Unavailable(e.to_string()))?;
            work(&conn).map_err(unavailable)
        })
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?
    }
}

fn unavailable(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn writer_stopped() -> StoreError {
    StoreError::Unavailable("the store writer stopped".into())
}

/// `raaft-relay migrate` on an SQLite file: with the file's lock, as
/// `serve` takes it, so not while a `serve` runs on it.
pub(super) async fn migrate(path: &Path) -> Result<Migrated, StoreError> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        create_private(&path)?;
        let _lock = lock(&path)?;
        let mut conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_WRITE)
            .and_then(|c| c.execute_batch(WRITER_SETUP).map(|_| c))
            .map_err(|e| StoreError::Unavailable(format!("cannot open \"{}\": {e}", path.display())))?;
        let from = schema::migrate(&mut conn)?;
        Ok(Migrated { from, to: schema::LATEST })
    })
    .await
    .map_err(|e| StoreError::Unavailable(format!("cannot migrate the store: {e}")))?
}

/// The source of `raaft-relay store copy`: a private snapshot of the file
/// (`VACUUM INTO`, beside it), brought to this release's schema, so the
/// file itself is left as it was. Holds the file's lock: `serve` must be
/// stopped. The snapshot is removed when the returned guard drops.
pub(super) fn copy_source(path: &Path) -> Result<(Connection, CopySource), StoreError> {
    if !path.exists() {
        return Err(StoreError::Missing(path.to_path_buf()));
    }
    let failed = |what: &str, e: &dyn std::fmt::Display| {
        StoreError::Unavailable(format!("cannot {what} \"{}\": {e}", path.display()))
    };
    let lock = lock(path)?;
    let snapshot = path.with_file_name(format!(".{}.copy-{}", file_name(path), new_id()));
    let guard = CopySource { snapshot: snapshot.clone(), _lock: lock };
    let source = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|e| failed("open", &e))?;
    source
        .execute("VACUUM INTO ?1", params![snapshot.to_string_lossy()])
        .map_err(|e| failed("take a snapshot of", &e))?;
    std::fs::set_permissions(&snapshot, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| failed("protect the snapshot of", &e))?;
    let mut conn = Connection::open(&snapshot).map_err(|e| failed("open the snapshot of", &e))?;
    schema::migrate(&mut conn)?;
    Ok((conn, guard))
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// What [`copy_source`] holds: the source file's lock and the snapshot,
/// removed on drop.
pub(super) struct CopySource {
    snapshot: std::path::PathBuf,
    _lock: File,
}

impl Drop for CopySource {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.snapshot);
    }
}

/// Creates the store's folder (owner only) and file (owner read and write)
/// when missing. SQLite gives the `-wal` and `-shm` files the file's
/// permissions. A store made readable by others is left as it is, with a
/// warning.
fn create_private(path: &Path) -> Result<(), StoreError> {
    let failed = |what: &str, at: &Path, e: std::io::Error| {
        StoreError::Unavailable(format!("cannot create {what} \"{}\": {e}", at.display()))
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| failed("the folder", dir, e))?;
    }
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let mode = std::fs::metadata(path).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
            if mode & 0o077 != 0 {
                tracing::warn!(
                    store = %path.display(),
                    mode = %format!("{mode:o}"),
                    "the store holds customers' data and is readable by other users: chmod 600 it and its -wal and -shm files"
                );
            }
        }
        Err(e) => return Err(failed("the store", path, e)),
    }
    Ok(())
}

/// Moves every page of the log into the database and empties the log
/// (`wal_checkpoint(TRUNCATE)`), so content deleted (and zeroed) in the
/// database is not left in the log's older pages. Runs on the writer's
/// connection between batches, so no write of this process waits on it;
/// it waits a little for readers of older snapshots to finish.
fn checkpoint_and_truncate(conn: &Connection) -> Result<(), StoreError> {
    let failed = |e: &dyn std::fmt::Display| StoreError::Unavailable(format!("cannot empty the store's log: {e}"));
    conn.busy_timeout(Duration::from_secs(2)).map_err(|e| failed(&e))?;
    let mut result = Err(failed(&"readers kept it busy"));
    for _ in 0..3 {
        match conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get::<_, i64>(0)) {
            Ok(0) => {
                result = Ok(());
                break;
            }
            Ok(_) => {}
            Err(e) => {
                result = Err(failed(&e));
                break;
            }
        }
    }
    conn.execute_batch(BUSY_TIMEOUT).map_err(|e| failed(&e))?;
    result
}

/// The write that empties the log once every write before it is
/// committed ([`checkpoint_and_truncate`]).
struct Scrub {
    reply: oneshot::Sender<Result<(), StoreError>>,
}

impl Write for Scrub {
    fn apply(&mut self, _: &Transaction<'_>, _: &Batch) -> rusqlite::Result<()> {
        Ok(())
    }

    fn after_commit(&mut self, conn: &Connection) -> Option<StoreError> {
        checkpoint_and_truncate(conn).err()
    }

    fn answer(self: Box<Self>, failure: Option<StoreError>) {
        let _ = self.reply.send(failure.map_or(Ok(()), Err));
    }
}

/// Takes the lock that says a `serve` uses the file, or says who holds it.
fn lock(path: &Path) -> Result<File, StoreError> {
    let file = File::open(path)
        .map_err(|e| StoreError::Unavailable(format!("cannot open \"{}\" to lock it: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::InUse(path.to_path_buf())),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(StoreError::Unavailable(format!("cannot lock \"{}\": {e}", path.display())))
        }
    }
}

/// What a write knows of the batch it is applied in.
struct Batch {
    /// The dedup window in milliseconds.
    window: i64,
    /// The write runs alone under a savepoint, because a write of its batch
    /// failed: it may fall back to a lesser form instead of failing.
    alone: bool,
}

/// A write for the writer thread: applied inside a batch's transaction,
/// answered once the batch is committed (or has failed).
trait Write: Send {
    fn apply(&mut self, tx: &Transaction<'_>, batch: &Batch) -> rusqlite::Result<()>;
    /// Runs once the batch is committed, outside any transaction.
    fn after_commit(&mut self, _conn: &Connection) -> Option<StoreError> {
        None
    }
    fn answer(self: Box<Self>, failure: Option<StoreError>);
}

struct Op<T, F> {
    work: F,
    done: Option<T>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Write for Op<T, F>
where
    T: Send,
    F: Fn(&Transaction<'_>, &Batch) -> rusqlite::Result<T> + Send,
{
    fn apply(&mut self, tx: &Transaction<'_>, batch: &Batch) -> rusqlite::Result<()> {
        self.done = None;
        self.done = Some((self.work)(tx, batch)?);
        Ok(())
    }

    fn answer(self: Box<Self>, failure: Option<StoreError>) {
        let result = match (failure, self.done) {
            (Some(e), _) => Err(e),
            (None, Some(done)) => Ok(done),
            (None, None) => Err(StoreError::Unavailable("the write was not applied".into())),
        };
        let _ = self.reply.send(result);
    }
}

/// The writer thread: batches until every sender is gone.
fn write_batches(mut conn: Connection, mut queue: mpsc::Receiver<Box<dyn Write>>, window: i64) {
    while let Some(first) = queue.blocking_recv() {
        let mut batch = policy::gather(first, || queue.try_recv().ok());
        let failures = match write_batch(&mut conn, &mut batch, window) {
            Ok(failures) => failures,
            Err(e) => {
                tracing::warn!(error = %e, writes = batch.len(), "cannot write to the store");
                batch.iter().map(|_| Some(StoreError::Unavailable(e.to_string()))).collect()
            }
        };
        for (mut write, failure) in batch.into_iter().zip(failures) {
            let failure = failure.or_else(|| write.after_commit(&conn));
            write.answer(failure);
        }
    }
}

/// Applies the writes of `batch` in one transaction and commits them
/// together. If one fails, that transaction is rolled back and the batch
/// is written again, each write under its own savepoint: a write that
/// fails then is undone alone and answered with its error, and the others
/// commit. (Savepoints cost a copy of every page a write touches, so only
/// a batch that needs them pays for them.) An error here (the transaction
/// itself failed) fails them all.
fn write_batch(
    conn: &mut Connection,
    batch: &mut [Box<dyn Write>],
    window: i64,
) -> rusqlite::Result<Vec<Option<StoreError>>> {
    let together = Batch { window, alone: false };
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    if batch.iter_mut().try_for_each(|write| write.apply(&tx, &together)).is_ok() {
        tx.commit()?;
        return Ok(batch.iter().map(|_| None).collect());
    }
    drop(tx);
    let alone = Batch { window, alone: true };
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut failures = Vec::with_capacity(batch.len());
    for write in batch.iter_mut() {
        tx.prepare_cached("SAVEPOINT write")?.execute([])?;
        match write.apply(&tx, &alone) {
            Ok(()) => failures.push(None),
            Err(e) => {
                tracing::warn!(error = %e, "a write to the store failed; the others in its batch go on");
                tx.prepare_cached("ROLLBACK TO write")?.execute([])?;
                failures.push(Some(unavailable(e)));
            }
        }
        tx.prepare_cached("RELEASE write")?.execute([])?;
    }
    tx.commit()?;
    Ok(failures)
}

/// Records an event and its deliveries unless its key was seen within the
/// dedup window (in the store, or earlier in this batch); an older key is
/// taken over.
fn enqueue(
    tx: &Transaction<'_>,
    event: &NewEvent,
    deliveries: &[NewDelivery],
    window: i64,
) -> rusqlite::Result<Enqueued> {
    let id = new_id();
    let fresh = tx
        .prepare_cached(concat!(
            "INSERT INTO dedup (dedup_key, event_id, received_at) VALUES (?1, ?2, ",
            now!(),
            ") ON CONFLICT (dedup_key) DO UPDATE SET event_id = excluded.event_id, received_at = excluded.received_at \
             WHERE dedup.received_at < excluded.received_at - ?3 RETURNING dedup_key"
        ))?
        .query_row(params![event.dedup_key, id, window], |_| Ok(()))
        .optional()?
        .is_some();
    if !fresh {
        return Ok(Enqueued::Duplicate);
    }
    insert_event(tx, &id, event, "raaft")?;
    if let (Some(customer), Some(flow)) = (&event.customer, &event.flow) {
        remember(tx, &id, customer, flow)?;
    }
    let ids = insert_deliveries(tx, &id, deliveries)?;
    Ok(Enqueued::Accepted { event_id: id, deliveries: ids })
}

fn insert_event(tx: &Transaction<'_>, id: &str, event: &NewEvent, source: &str) -> rusqlite::Result<()> {
    tx.prepare_cached(concat!(
        "INSERT INTO events (id, dedup_key, received_at, outcome, customer, body, facts, source) VALUES (?1, ?2, ",
        now!(),
        ", ?3, ?4, ?5, ?6, ?7)"
    ))?
    .execute(params![id, event.dedup_key, event.outcome, event.customer, event.body, event.facts, source])?;
    Ok(())
}

fn insert_deliveries(
    tx: &Transaction<'_>,
    event_id: &str,
    deliveries: &[NewDelivery],
) -> rusqlite::Result<Vec<String>> {
    let mut insert = tx.prepare_cached(concat!(
        "INSERT INTO deliveries (id, event_id, destination, routes, status, attempts, next_attempt_at, created_at, \
         updated_at, payload) VALUES (?1, ?2, ?3, ?4, 'pending', 0, ",
        now!(),
        ", ",
        now!(),
        ", ",
        now!(),
        ", ?5)"
    ))?;
    let mut ids = Vec::with_capacity(deliveries.len());
    for d in deliveries {
        let delivery = new_id();
        insert.execute(params![delivery, event_id, d.destination, policy::join_routes(&d.routes), d.payload])?;
        ids.push(delivery);
    }
    Ok(ids)
}

/// A claimed delivery as read in the claim's transaction; its event is
/// parsed by the caller, off the writer thread.
struct Claimed {
    id: String,
    destination: String,
    routes: String,
    attempt: i64,
    event_id: String,
    dedup_key: String,
    body: String,
    facts: Option<String>,
    payload: Option<String>,
}

/// Leases up to `limit` due deliveries to `owner` for `lease_ms`, counts
/// their attempt, and reads them with their events, oldest due first.
///
/// A leased delivery is due again when its lease runs out (`next_attempt_at`
/// moves with `lease_until`), so a claim reads one range of the pending
/// index and never steps over deliveries under way. The index is named:
/// without statistics SQLite's planner prefers the status index and sorts
/// every pending delivery for each claim, which a backlog makes slow.
fn claim(tx: &Transaction<'_>, owner: &str, limit: usize, lease_ms: i64) -> rusqlite::Result<Vec<Claimed>> {
    let due: Vec<Claimed> = tx
        .prepare_cached(concat!(
            "SELECT d.id, d.destination, d.routes, e.dedup_key, e.body, e.facts, d.payload, d.event_id \
             FROM (SELECT id, event_id, destination, routes, next_attempt_at, payload \
                   FROM deliveries INDEXED BY deliveries_pending \
                   WHERE status = 'pending' AND next_attempt_at <= ",
            now!(),
            " ORDER BY next_attempt_at LIMIT ?1) d \
             JOIN events e ON e.id = d.event_id ORDER BY d.next_attempt_at"
        ))?
        .query_map(params![limit as i64], |row| {
            Ok(Claimed {
                id: row.get(0)?,
                destination: row.get(1)?,
                routes: row.get(2)?,
                attempt: 0,
                event_id: row.get(7)?,
                dedup_key: row.get(3)?,
                body: text(row, 4)?,
                facts: optional_text(row, 5)?,
                payload: optional_text(row, 6)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut lease = tx.prepare_cached(concat!(
        "UPDATE deliveries SET lease_owner = ?1, lease_until = ",
        now!(),
        " + ?2, next_attempt_at = ",
        now!(),
        " + ?2, attempts = CASE WHEN replay_requested THEN 1 ELSE attempts + 1 END, replay_requested = 0 \
         WHERE id = ?3 RETURNING attempts"
    ))?;
    due.into_iter()
        .map(|mut c| {
            c.attempt = lease.query_row(params![owner, lease_ms, c.id], |row| row.get(0))?;
            Ok(c)
        })
        .collect()
}

/// Records an attempt and the delivery's new state (if the lease is still
/// the job's). Alone in its batch, a full record that cannot be stored is
/// replaced by a reduced one, so the attempt counts whatever its content.
fn finish(
    tx: &Transaction<'_>,
    batch: &Batch,
    job: &Job,
    attempt: &AttemptRecord,
    state: &NextStep,
) -> rusqlite::Result<Recorded> {
    if !batch.alone {
        return record(tx, job, attempt, state);
    }
    tx.prepare_cached("SAVEPOINT record")?.execute([])?;
    let full = record(tx, job, attempt, state);
    if full.is_err() {
        tx.prepare_cached("ROLLBACK TO record")?.execute([])?;
    }
    tx.prepare_cached("RELEASE record")?.execute([])?;
    match full {
        Ok(recorded) => Ok(recorded),
        Err(e) => {
            tracing::warn!(delivery = %job.id, error = %e, "cannot store an attempt's full record; keeping a reduced one");
            let reduced = policy::reduced(attempt, &e.to_string());
            record(tx, job, &reduced, &policy::reduced_state(state, &reduced))
        }
    }
}

fn record(tx: &Transaction<'_>, job: &Job, attempt: &AttemptRecord, state: &NextStep) -> rusqlite::Result<Recorded> {
    tx.prepare_cached(
        "INSERT INTO attempts (id, delivery_id, number, at, status_code, latency_ms, response, error, payload, \
         destination, delivered) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        new_id(),
        job.id,
        job.attempt,
        attempt.at.timestamp_millis(),
        attempt.status,
        millis(attempt.latency),
        attempt.response,
        attempt.error,
        attempt.payload,
        job.destination,
        attempt.error.is_none(),
    ])?;
    let after = policy::after_attempt(state, attempt);
    // A replay asked for during the attempt starts the delivery over now,
    // whatever the attempt came to.
    let updated = tx
        .prepare_cached(concat!(
            "UPDATE deliveries SET status = CASE WHEN replay_requested THEN 'pending' ELSE ?1 END, \
             attempts = CASE WHEN replay_requested THEN 0 ELSE attempts END, \
             next_attempt_at = ",
            now!(),
            " + CASE WHEN replay_requested OR ?2 IS NULL THEN 0 ELSE ?2 END, \
             last_error = ?3, replay_requested = 0, lease_owner = NULL, lease_until = NULL, updated_at = ",
            now!(),
            " WHERE id = ?4 AND lease_owner = ?5"
        ))?
        .execute(params![after.status.as_str(), after.retry_in.map(millis), after.last_error, job.id, job.lease])?;
    Ok(if updated > 0 { Recorded::Done } else { Recorded::LeaseLost })
}

/// Hands deliveries back to the queue: requeued now with a fresh attempt
/// budget, or, when an attempt is under way (a live lease), marked to be
/// requeued when that attempt is recorded.
fn replay(tx: &Transaction<'_>, ids: &[String]) -> rusqlite::Result<Vec<Replayed>> {
    let mut update = tx.prepare_cached(concat!(
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
        " WHERE id = ?1 RETURNING replay_requested"
    ))?;
    let mut replayed = Vec::new();
    for id in ids {
        let id = id.to_ascii_lowercase();
        if let Some(waits) = update.query_row(params![id], |row| row.get::<_, bool>(0)).optional()? {
            replayed.push(Replayed { id, after_attempt_under_way: waits });
        }
    }
    Ok(replayed)
}

/// Deletes what [`Store::prune`] says ([`upkeep::prune`]); how many
/// delivered deliveries went.
fn prune(tx: &Transaction<'_>, retention: &Retention) -> rusqlite::Result<u64> {
    let mut pruned = 0;
    for (i, statement) in upkeep::prune(DIALECT, retention).iter().enumerate() {
        let n = execute(tx, statement)?;
        if i == upkeep::PRUNED_DELIVERIES {
            pruned = n as u64;
        }
    }
    Ok(pruned)
}

/// A text column, also when it holds bytes.
fn text(row: &Row<'_>, i: usize) -> rusqlite::Result<String> {
    Ok(optional_text(row, i)?.unwrap_or_default())
}

fn optional_text(row: &Row<'_>, i: usize) -> rusqlite::Result<Option<String>> {
    Ok(bytes(row, i)?.map(dialect::lossy))
}

/// A column of bytes (a receiver's reply), also when an earlier release
/// stored it as text.
fn bytes(row: &Row<'_>, i: usize) -> rusqlite::Result<Option<Vec<u8>>> {
    Ok(match row.get_ref(i)? {
        ValueRef::Text(b) | ValueRef::Blob(b) => Some(b.to_vec()),
        ValueRef::Null => None,
        ValueRef::Integer(n) => Some(n.to_string().into_bytes()),
        ValueRef::Real(x) => Some(x.to_string().into_bytes()),
    })
}

impl dialect::Columns for Row<'_> {
    type Error = rusqlite::Error;

    fn int(&self, i: usize) -> rusqlite::Result<i64> {
        self.get(i)
    }

    fn optional_int(&self, i: usize) -> rusqlite::Result<Option<i64>> {
        self.get(i)
    }

    fn optional_bytes(&self, i: usize) -> rusqlite::Result<Option<Vec<u8>>> {
        bytes(self, i)
    }
}

/// A shared statement's arguments, as SQLite takes them.
fn arguments(statement: &dialect::Statement) -> impl Iterator<Item = rusqlite::types::Value> + '_ {
    use rusqlite::types::Value;
    statement.args.iter().map(|a| match a {
        dialect::Arg::Text(t) | dialect::Arg::Kept(t) => Value::Text(t.clone()),
        dialect::Arg::Int(n) => Value::Integer(*n),
    })
}

/// The rows of a shared statement ([`read`]), each read by `row`.
fn rows<T>(
    conn: &Connection,
    statement: &dialect::Statement,
    row: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    conn.prepare_cached(&statement.sql)?.query_map(rusqlite::params_from_iter(arguments(statement)), row)?.collect()
}

/// Runs a shared statement ([`upkeep`]); how many rows it changed.
fn execute(tx: &Transaction<'_>, statement: &dialect::Statement) -> rusqlite::Result<usize> {
    tx.prepare_cached(&statement.sql)?.execute(rusqlite::params_from_iter(arguments(statement)))
}

#[async_trait]
impl Queue for SqliteStore {
    async fn enqueue(&self, event: NewEvent, deliveries: Vec<NewDelivery>) -> Result<Enqueued, StoreError> {
        self.write(move |tx, batch| enqueue(tx, &event, &deliveries, batch.window)).await
    }

    async fn claim_due(&self, limit: usize, lease: Duration) -> Result<Vec<Job>, StoreError> {
        let owner = new_id();
        let lease_ms = millis(lease);
        let claimed = {
            let owner = owner.clone();
            self.write(move |tx, _| claim(tx, &owner, limit, lease_ms)).await?
        };
        Ok(claimed
            .into_iter()
            .map(|c| Job {
                id: c.id,
                event_id: c.event_id,
                dedup_key: c.dedup_key,
                event: Arc::new(policy::event_with_facts(c.body.as_bytes(), c.facts.as_deref())),
                destination: c.destination,
                routes: policy::split_routes(&c.routes),
                attempt: c.attempt.try_into().unwrap_or(u32::MAX),
                lease: owner.clone(),
                payload: c.payload,
            })
            .collect())
    }

    async fn next_due(&self) -> Result<Option<Duration>, StoreError> {
        self.read(|conn| {
            let wait: Option<i64> = conn
                .prepare_cached(concat!(
                    "SELECT MIN(next_attempt_at) - ",
                    now!(),
                    " FROM deliveries INDEXED BY deliveries_pending WHERE status = 'pending'"
                ))?
                .query_row([], |row| row.get(0))?;
            Ok(wait.map(|ms| Duration::from_millis(ms.max(0) as u64)))
        })
        .await
    }

    async fn finish_attempt(&self, job: &Job, attempt: AttemptRecord, state: NextStep) -> Result<Recorded, StoreError> {
        let job = Job { event: Arc::new(Value::Null), ..job.clone() };
        self.write(move |tx, batch| finish(tx, batch, &job, &attempt, &state)).await
    }

    async fn extend_lease(&self, job: &Job, lease: Duration) -> Result<bool, StoreError> {
        let (id, owner, lease_ms) = (job.id.clone(), job.lease.clone(), millis(lease));
        self.write(move |tx, _| {
            let n = tx
                .prepare_cached(concat!(
                    "UPDATE deliveries SET lease_until = ",
                    now!(),
                    " + ?1, next_attempt_at = ",
                    now!(),
                    " + ?1 WHERE id = ?2 AND lease_owner = ?3"
                ))?
                .execute(params![lease_ms, id, owner])?;
            Ok(n > 0)
        })
        .await
    }

    async fn postpone(&self, job: &Job, delay: Duration) -> Result<(), StoreError> {
        let (id, owner, delay_ms) = (job.id.clone(), job.lease.clone(), millis(delay));
        self.write(move |tx, _| {
            // The attempt counted by the claim was not made.
            tx.prepare_cached(concat!(
                "UPDATE deliveries SET next_attempt_at = ",
                now!(),
                " + ?1, attempts = CASE WHEN replay_requested THEN 0 ELSE attempts - 1 END, \
                 replay_requested = 0, lease_owner = NULL, lease_until = NULL WHERE id = ?2 AND lease_owner = ?3"
            ))?
            .execute(params![delay_ms, id, owner])?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl Inspect for SqliteStore {
    async fn destination_stats(&self) -> Result<Vec<DestinationStats>, StoreError> {
        let rows: Vec<(String, String, i64, i64)> = self
            .read(|conn| {
                conn.prepare_cached(concat!(
                    "SELECT destination, status, COUNT(*), ",
                    now!(),
                    " - MIN(created_at) FROM deliveries WHERE status IN ('pending', 'dead') GROUP BY destination, status"
                ))?
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))?
                .collect()
            })
            .await?;
        Ok(policy::per_destination(rows))
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<DeliverySummary>, StoreError> {
        let filter = filter.clone();
        self.read(move |conn| inspect::list(conn, &filter)).await
    }

    async fn show(&self, id: &str) -> Result<Option<DeliveryDetail>, StoreError> {
        let id = id.to_ascii_lowercase();
        self.read(move |conn| {
            let Some(detail) = rows(conn, &read::show(DIALECT, &id), |row| read::detail(row))?.pop() else {
                return Ok(None);
            };
            let attempts = rows(conn, &read::attempts(DIALECT, &id), |row| read::attempt(row))?;
            Ok(Some(read::with_attempts(detail, attempts)))
        })
        .await
    }

    async fn replay(&self, ids: &[String]) -> Result<Vec<Replayed>, StoreError> {
        let ids = ids.to_vec();
        self.write(move |tx, _| replay(tx, &ids)).await
    }

    async fn replay_dead(&self, destination: Option<&str>) -> Result<u64, StoreError> {
        let destination = destination.unwrap_or("").to_owned();
        self.write(move |tx, _| {
            let n = tx.execute(
                concat!(
                    "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = ",
                    now!(),
                    ", updated_at = ",
                    now!(),
                    ", lease_owner = NULL, lease_until = NULL, replay_requested = 0 \
                     WHERE status = 'dead' AND (?1 = '' OR destination = ?1)"
                ),
                params![destination],
            )?;
            Ok(n as u64)
        })
        .await
    }

    async fn purge_dead(&self, older_than: Duration) -> Result<u64, StoreError> {
        let age = millis(older_than);
        self.write(move |tx, _| {
            let [attempts, deliveries] = upkeep::delete_older(DIALECT, Status::Dead, age);
            execute(tx, &attempts)?;
            Ok(execute(tx, &deliveries)? as u64)
        })
        .await
    }

    async fn discard(&self, ids: &[String], reason: &str) -> Result<Vec<DeliveryId>, StoreError> {
        let (ids, reason) = (ids.to_vec(), reason.to_owned());
        self.write(move |tx, _| inspect::discard(tx, &ids, &reason)).await
    }

    async fn activity(&self, periods: &[Duration]) -> Result<Vec<Activity>, StoreError> {
        let periods = periods.to_vec();
        self.read(move |conn| inspect::activity(conn, &periods)).await
    }

    async fn list_events(&self, filter: &EventFilter) -> Result<Vec<EventSummary>, StoreError> {
        let filter = filter.clone();
        self.read(move |conn| inspect::list_events(conn, &filter)).await
    }

    async fn event(&self, id: &str) -> Result<Option<EventDetail>, StoreError> {
        let id = id.to_ascii_lowercase();
        self.read(move |conn| inspect::event(conn, &id)).await
    }

    async fn destination_health(&self, destinations: &[String]) -> Result<Vec<DestinationHealth>, StoreError> {
        let destinations = destinations.to_vec();
        self.read(move |conn| inspect::destination_health(conn, &destinations)).await
    }
}

#[async_trait]
impl History for SqliteStore {
    async fn history(&self, customer: &str, recent: usize) -> Result<EarlierFlows, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.lookups.send((customer.to_owned(), recent, reply)).await.map_err(|_| lookups_stopped())?;
        answer.await.map_err(|_| lookups_stopped())?
    }

    async fn forget(&self, customer: &str) -> Result<Forgotten, StoreError> {
        let customer = customer.to_owned();
        self.write(move |tx, _| forget(tx, &customer)).await
    }

    async fn events_with_email(&self, email: &str) -> Result<EmailMatches, StoreError> {
        let email = email.trim().to_owned();
        self.read(move |conn| events_with_email(conn, &email)).await
    }

    async fn forget_events(&self, ids: &[String]) -> Result<Forgotten, StoreError> {
        let ids = ids.to_vec();
        self.write(move |tx, _| forget_events(tx, &ids)).await
    }

    async fn scrub(&self) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writes.send(Box::new(Scrub { reply })).await.map_err(|_| writer_stopped())?;
        answer.await.map_err(|_| writer_stopped())?
    }
}

#[async_trait]
impl Digests for SqliteStore {
    async fn events_between(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Vec<StoredEvent>, StoreError> {
        let (start, end) = (start.timestamp_millis(), end.timestamp_millis());
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT id, received_at, body, facts FROM events WHERE received_at >= ?1 AND received_at < ?2 \
                 AND source = 'raaft' ORDER BY received_at, id",
            )?
            .query_map(params![start, end], |row| {
                Ok(StoredEvent {
                    id: row.get(0)?,
                    received_at: time(row.get(1)?),
                    event: policy::event_with_facts(text(row, 2)?.as_bytes(), optional_text(row, 3)?.as_deref()),
                })
            })?
            .collect()
        })
        .await
    }

    async fn last_digest_window(&self, digest: &str) -> Result<Option<DigestWindow>, StoreError> {
        let digest = digest.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT digest, window_start, window_end, event_id FROM digest_windows WHERE digest = ?1 \
                 ORDER BY window_end DESC LIMIT 1",
            )?
            .query_row(params![digest], digest_window)
            .optional()
        })
        .await
    }

    async fn claim_digest(&self, digest: NewDigest) -> Result<DigestClaim, StoreError> {
        self.write(move |tx, _| claim_digest(tx, &digest)).await
    }

    async fn digests_quoting(&self, customer: &str) -> Result<Vec<StoredDigest>, StoreError> {
        let customer = customer.to_owned();
        self.read(move |conn| digests_quoting(conn, &customer)).await
    }

    async fn rewrite_digest(&self, rewrite: DigestRewrite) -> Result<(), StoreError> {
        self.write(move |tx, _| rewrite_digest(tx, &rewrite)).await
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn now(&self) -> Result<DateTime<Utc>, StoreError> {
        self.read(|conn| conn.query_row(concat!("SELECT ", now!()), [], |row| row.get::<_, i64>(0)).map(time)).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|conn| conn.query_row("SELECT 1", [], |_| Ok(()))).await
    }

    async fn prune(&self, retention: &Retention) -> Result<u64, StoreError> {
        let retention = *retention;
        self.write(move |tx, _| prune(tx, &retention)).await
    }

    async fn secret(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        let wanted = name.to_owned();
        if let Some(secret) = self.read(move |conn| secrets::read_secret(conn, &wanted)).await? {
            return Ok(secret);
        }
        let (name, fresh) = (name.to_owned(), fresh_secret());
        self.write(move |tx, _| secrets::secret(tx, &name, &fresh)).await
    }

    async fn renew_secret(&self, name: &str) -> Result<(), StoreError> {
        let (name, fresh) = (name.to_owned(), fresh_secret());
        self.write(move |tx, _| secrets::renew_secret(tx, &name, &fresh)).await
    }

    async fn revoke_session(&self, id: &str, issued: DateTime<Utc>) -> Result<(), StoreError> {
        let (id, issued) = (id.to_owned(), issued.timestamp_millis());
        self.write(move |tx, _| secrets::revoke_session(tx, &id, issued)).await
    }

    async fn session_revoked(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.read(move |conn| secrets::session_revoked(conn, &id)).await
    }
}
