//! The delivery queue behind one trait: ingest records an event and one
//! delivery per destination, workers claim due deliveries and record each
//! attempt, operators list, inspect and replay. Two engines implement it,
//! each whole in its own module: [`sqlite`] (embedded, the default; one
//! `serve` per file) and [`postgres`] (several replicas on one database).
//! What they do alike lives once in [`policy`].
//!
//! The promise both keep: an event acknowledged is never lost, and an
//! attempt is sent at most once. Leases and due times run on the store's
//! clock, an attempt counts from the moment it is claimed, and a delivery
//! whose attempt cannot be recorded is not handed out again while its
//! worker keeps trying.

pub mod copy;
pub mod inspect;
pub mod policy;
pub mod postgres;
pub mod sqlite;

use crate::config::StoreLocation;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Deliveries, events and attempts are named by lowercase ULIDs: unique
/// across replicas and sorted by creation time.
pub type DeliveryId = String;

/// A fresh identifier.
pub fn new_id() -> String {
    ulid::Ulid::new().to_string().to_ascii_lowercase()
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot take or give work right now (unreachable, disk
    /// full, a write refused). Ingest answers 503 so Raaft retries.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Another `serve` holds the SQLite file.
    #[error(
        "the store \"{}\" is in use by another raaft-relay serve (one serve per SQLite file; \
         several relays need PostgreSQL)",
        .0.display()
    )]
    InUse(PathBuf),
    /// A store command (or `serve` beside older replicas) found a schema
    /// older than this release's: only `migrate` (or `serve`) changes it.
    #[error(
        "the store is at version {version}, this release needs version {latest}: run `raaft-relay migrate` \
         (stop every replica first on PostgreSQL)"
    )]
    Outdated { version: usize, latest: usize },
    /// The schema is newer than this release knows.
    #[error(
        "the store is at version {version}, newer than this release knows ({latest}): use the release that \
         upgraded it, or a newer one"
    )]
    Newer { version: usize, latest: usize },
    /// `serve` on PostgreSQL found an older schema while other clients of
    /// the database, replicas of an older release by all signs, are
    /// connected.
    #[error(
        "the store is at version {version}, this release needs version {latest}, and {connections} other \
         connection(s) to the database look like raaft-relay replicas of an older release: stop every replica, \
         then run `raaft-relay migrate` (or start this one again)"
    )]
    OlderReplicas { version: usize, latest: usize, connections: usize },
    /// A store command found a database without the relay's tables.
    #[error("the store has no raaft-relay tables yet: start `serve` on it, or run `raaft-relay migrate`")]
    Empty,
    /// A store command named an SQLite file that does not exist.
    #[error("there is no store at \"{}\" yet (`serve` creates it): is `[store] url` the one `serve` uses?", .0.display())]
    Missing(PathBuf),
}

/// What `raaft-relay migrate` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    /// The version the store was at (0: it was new).
    pub from: usize,
    /// The version it is at now, this release's.
    pub to: usize,
}

/// Who opens the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `serve`: the one process that delivers from an SQLite file (it takes
    /// the file's lock and the claims a previous run left).
    Serve,
    /// The store commands (`deliveries`, `history`, `forget`, `digest`),
    /// beside a running `serve`: they never change the schema.
    Tool,
}

/// Brings the store at `location` to this release's schema, creating it
/// when new (`raaft-relay migrate`). On SQLite it takes the file's lock
/// (no `serve` may be running); on PostgreSQL the operator stops every
/// replica first.
pub async fn migrate(location: &StoreLocation) -> Result<Migrated, StoreError> {
    match location {
        StoreLocation::Sqlite(path) => sqlite::migrate(path).await,
        StoreLocation::Postgres(url) => postgres::migrate(url).await,
    }
}

/// Opens the store at `location`. `serve` creates and migrates it as
/// needed (on PostgreSQL, not beside replicas of an older release); the
/// store commands refuse a store that is missing or at another version.
/// `dedup_window` is how long an idempotency key makes a new event a
/// duplicate.
pub async fn open(
    location: &StoreLocation,
    dedup_window: Duration,
    access: Access,
) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match location {
        StoreLocation::Sqlite(path) => Arc::new(sqlite::SqliteStore::open(path, dedup_window, access).await?),
        StoreLocation::Postgres(url) => Arc::new(postgres::PostgresStore::open(url, dedup_window, access).await?),
    })
}

/// An event to record, with what identifies it across Raaft's retries.
/// The store stamps its receipt time with its own clock.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The idempotency key.
    pub key: String,
    /// The request body as received (a JSON object).
    pub body: String,
    pub outcome: Option<String>,
    /// Whose history the event belongs to ([`crate::history::customer_key`]).
    pub customer: Option<String>,
    /// What the relay computed at receipt (`{"mrr": ..., "history": ...}`).
    pub facts: Option<String>,
    /// The customer's flow to add to the history, when the event has a
    /// customer.
    pub flow: Option<NewFlow>,
}

/// A flow to add to a customer's history: its record
/// ([`crate::history::Flow::record`]) and what the history counts of it.
#[derive(Debug, Clone)]
pub struct NewFlow {
    pub record: String,
    pub saved: bool,
    pub canceled: bool,
    /// An offer was accepted.
    pub offered: bool,
}

impl NewFlow {
    pub fn of(flow: &crate::history::Flow) -> NewFlow {
        NewFlow { record: flow.record(), saved: flow.saved(), canceled: flow.canceled(), offered: flow.offer.is_some() }
    }
}

/// One (event, destination) pair to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    pub destination: String,
    pub routes: Vec<String>,
    /// A payload rendered once and sent as it is on every attempt (a
    /// digest), as [`crate::channels::Payload::to_stored`] wrote it.
    pub payload: Option<String>,
}

impl NewDelivery {
    /// A delivery rendered at each attempt from its event.
    pub fn rendered_later(destination: String, routes: Vec<String>) -> NewDelivery {
        NewDelivery { destination, routes, payload: None }
    }
}

/// An event as stored, with the relay's facts beside its fields.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub id: String,
    pub received_at: DateTime<Utc>,
    pub event: Value,
}

/// A digest window claimed (or skipped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DigestWindow {
    pub digest: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The digest sent for it; `None` for a window skipped.
    pub event_id: Option<String>,
}

/// A digest to queue for one window: its figures (kept as its event) and
/// one delivery per destination with the payload rendered.
#[derive(Debug, Clone)]
pub struct NewDigest {
    pub digest: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The digest's figures as JSON; `None` records the window as skipped.
    pub body: Option<String>,
    pub deliveries: Vec<NewDelivery>,
}

/// What [`Store::claim_digest`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DigestClaim {
    /// This claim took the window: its deliveries are queued.
    Queued { event_id: String, deliveries: Vec<DeliveryId> },
    /// This claim recorded the window as skipped.
    Skipped,
    /// The window was claimed before (by another replica, a restart, or
    /// `digest send`).
    Taken(DigestWindow),
}

/// What [`Store::events_with_email`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmailMatches {
    /// The customer ids the address appears under, sorted.
    pub customers: Vec<String>,
    /// Events that name the address but no customer id, sorted.
    pub events: Vec<String>,
}

/// What [`Store::forget`] erased.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Forgotten {
    pub flows: u64,
    pub events: u64,
    pub deliveries: u64,
    pub attempts: u64,
    /// Digests written again without the customer's quotes.
    pub digests: u64,
}

/// What [`Store::enqueue`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    Accepted {
        deliveries: Vec<DeliveryId>,
    },
    /// The event was seen within the dedup window; nothing new was created.
    Duplicate,
}

/// A claimed delivery, ready for an attempt.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: DeliveryId,
    pub event_key: String,
    pub event: Arc<Value>,
    pub destination: String,
    pub routes: Vec<String>,
    /// This attempt's number (1 for the first since the delivery was
    /// created or replayed). It was counted when claimed: an attempt that
    /// never got recorded (the relay died during it) counts too.
    pub attempt: u32,
    /// The claim this job was handed out under.
    pub lease: String,
    /// The payload to send as it is (a digest), when it was rendered once
    /// at creation.
    pub payload: Option<String>,
}

impl Job {
    /// The event, taken out of the job; the job keeps `null` in its place
    /// (the attempt's record needs the rest, not the event).
    pub fn take_event(&mut self) -> Value {
        let event = std::mem::replace(&mut self.event, Arc::new(Value::Null));
        Arc::unwrap_or_clone(event)
    }
}

/// One attempt, as recorded.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub at: DateTime<Utc>,
    pub status: Option<u16>,
    pub latency: Duration,
    /// The start of the receiver's answer, as the bytes it sent.
    pub response: Option<Vec<u8>>,
    pub error: Option<String>,
    /// The rendered payload, as sent.
    pub payload: Option<String>,
}

/// Where a delivery stands after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    Delivered,
    /// Pending again, due this long after the attempt is recorded.
    RetryIn(Duration),
    Dead {
        reason: String,
    },
}

/// What [`Store::finish_attempt`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// The attempt and the delivery's new state are stored.
    Done,
    /// The attempt is stored, but the lease ran out before: another worker
    /// owns the delivery now and decides its state.
    LeaseLost,
}

/// What a replay did to one delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replayed {
    pub id: DeliveryId,
    /// An attempt was under way: the replay waits for it to finish instead
    /// of sending the message a second time beside it.
    pub after_attempt_under_way: bool,
}

/// A delivery's status as stored and listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Delivered,
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Delivered => "delivered",
            Status::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "pending" => Some(Status::Pending),
            "delivered" => Some(Status::Delivered),
            "dead" => Some(Status::Dead),
            _ => None,
        }
    }
}

/// Which deliveries to list.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<Status>,
    pub destination: Option<String>,
    /// Only deliveries created within this long.
    pub since: Option<Duration>,
    /// At most this many; 0 for all.
    pub limit: usize,
    /// Only deliveries of events with this outcome.
    pub outcome: Option<String>,
    /// Only deliveries of this customer's flows (a history key).
    pub customer: Option<String>,
    /// Only deliveries a route of this name asked for.
    pub route: Option<String>,
    /// Only deliveries of this event.
    pub event_id: Option<String>,
    /// Only deliveries older than this id (the next page).
    pub before: Option<String>,
}

/// One line of `deliveries list`.
#[derive(Debug, Clone, Serialize)]
pub struct DeliverySummary {
    pub id: DeliveryId,
    pub event_id: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub destination: String,
    pub routes: Vec<String>,
    pub outcome: Option<String>,
    pub customer: Option<String>,
    pub status: Status,
    /// Attempts made (the one under way included) since creation or the
    /// last replay.
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
}

/// One attempt, as shown.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptView {
    pub number: u32,
    pub at: DateTime<Utc>,
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    /// The receiver's bytes; JSON shows them as text (invalid sequences
    /// replaced), `deliveries show` with escapes.
    #[serde(serialize_with = "bytes_as_text")]
    pub response: Option<Vec<u8>>,
    pub error: Option<String>,
    #[serde(skip)]
    pub payload: Option<String>,
}

fn bytes_as_text<S: Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    bytes.as_deref().map(String::from_utf8_lossy).serialize(s)
}

/// Everything about one delivery, for `deliveries show`.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryDetail {
    #[serde(flatten)]
    pub summary: DeliverySummary,
    pub event: Value,
    /// What the relay computed at the event's receipt (`mrr`, `history`).
    pub facts: Value,
    /// The rendered payload of the last attempt.
    pub last_payload: Option<String>,
    pub attempt_log: Vec<AttemptView>,
}

/// What waits in the store for one destination.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DestinationStats {
    pub destination: String,
    pub pending: u64,
    /// Zero when nothing is pending.
    pub oldest_pending_age: Duration,
    pub dead: u64,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Records `event` and its deliveries: after `Ok` nothing of it may be
    /// lost. An event whose key was seen within the dedup window is a
    /// [`Enqueued::Duplicate`]. One event that cannot be written fails
    /// alone, never the others written with it.
    async fn enqueue(&self, event: NewEvent, deliveries: Vec<NewDelivery>) -> Result<Enqueued, StoreError>;

    /// Claims up to `limit` due deliveries for `lease` (by the store's
    /// clock), counting an attempt for each; a claimed delivery is not
    /// handed out again until its attempt is recorded or the lease runs
    /// out (its worker died).
    async fn claim_due(&self, limit: usize, lease: Duration) -> Result<Vec<Job>, StoreError>;

    /// How long until the earliest pending delivery is due (zero when one
    /// is due now), if any. A claimed delivery is due when its lease runs
    /// out: that is when another worker may take it over.
    async fn next_due(&self) -> Result<Option<Duration>, StoreError>;

    /// Records an attempt of a claimed delivery and its new state. A record
    /// whose content cannot be stored is kept reduced (outcome, status,
    /// latency), so the attempt always counts; an `Err` means the store
    /// could not be written at all, and the caller tries again.
    async fn finish_attempt(&self, job: &Job, attempt: AttemptRecord, state: JobState) -> Result<Recorded, StoreError>;

    /// Keeps a claim for `lease` more, while its attempt waits to be
    /// recorded. False when the lease was already lost.
    async fn extend_lease(&self, job: &Job, lease: Duration) -> Result<bool, StoreError>;

    /// Hands a claimed delivery back, due in `delay`, without counting its
    /// attempt (its destination is paced or paused).
    async fn postpone(&self, job: &Job, delay: Duration) -> Result<(), StoreError>;

    /// Whether the store answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Pending and dead deliveries per destination.
    async fn destination_stats(&self) -> Result<Vec<DestinationStats>, StoreError>;

    async fn list(&self, filter: &ListFilter) -> Result<Vec<DeliverySummary>, StoreError>;

    async fn show(&self, id: &str) -> Result<Option<DeliveryDetail>, StoreError>;

    /// Requeues the given deliveries with a fresh attempt budget, at once,
    /// or after the attempt under way; returns the ones that exist.
    async fn replay(&self, ids: &[String]) -> Result<Vec<Replayed>, StoreError>;

    /// Requeues every dead delivery (of one destination); returns how many.
    async fn replay_dead(&self, destination: Option<&str>) -> Result<u64, StoreError>;

    /// Deletes dead deliveries last updated longer ago than `older_than`.
    async fn purge_dead(&self, older_than: Duration) -> Result<u64, StoreError>;

    /// Deletes delivered deliveries and their attempts older than
    /// `retention.deliveries`, events left without deliveries older than
    /// that, idempotency keys older than `retention.dedup_window`, and
    /// flows (their customers' counts follow) and digest windows older than
    /// `retention.history` (but each digest's latest window, which the next
    /// one starts from), and signed-out sessions issued longer ago than
    /// `retention.sessions`.
    async fn prune(&self, retention: &Retention) -> Result<u64, StoreError>;

    /// What is kept of the customer's flows: counts over all of them (read
    /// from one row, whatever their number) and the `recent` newest, newest
    /// first.
    async fn history(&self, customer: &str, recent: usize) -> Result<crate::history::EarlierFlows, StoreError>;

    /// Erases everything kept about a customer: flows, events, their
    /// deliveries (rendered payloads included) and attempts.
    async fn forget(&self, customer: &str) -> Result<Forgotten, StoreError>;

    /// The events that name the e-mail address `email` in
    /// `customer.email` or `subscription.customer.email`, in any case: the
    /// customer ids (history keys) they are kept under, and those kept
    /// under none. Reads every event: erasure is rare.
    async fn events_with_email(&self, email: &str) -> Result<EmailMatches, StoreError>;

    /// Erases the events `ids` (kept under no customer), their deliveries
    /// and attempts.
    async fn forget_events(&self, ids: &[String]) -> Result<Forgotten, StoreError>;

    /// Makes what was erased unreadable from the store's files: SQLite
    /// overwrites deleted content as it deletes it, and here moves its log
    /// into the database and empties the log. PostgreSQL keeps deleted rows
    /// in its files until VACUUM: nothing to do here.
    async fn scrub(&self) -> Result<(), StoreError>;

    /// The secret `name` (32 random bytes), made the first time it is
    /// asked for: the same for every replica of the store.
    async fn secret(&self, name: &str) -> Result<Vec<u8>, StoreError>;

    /// Replaces the secret `name` with a new one.
    async fn renew_secret(&self, name: &str) -> Result<(), StoreError>;

    /// Records the console session `id` (issued at `issued`) as signed
    /// out, until [`Store::prune`] finds it past `retention.sessions`.
    async fn revoke_session(&self, id: &str, issued: DateTime<Utc>) -> Result<(), StoreError>;

    /// Whether the console session `id` was signed out.
    async fn session_revoked(&self, id: &str) -> Result<bool, StoreError>;

    /// Raaft's events received in `[start, end)`, oldest first, with their
    /// facts.
    async fn events_between(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Vec<StoredEvent>, StoreError>;

    /// The digest's window that ends last, if any was claimed.
    async fn last_digest_window(&self, digest: &str) -> Result<Option<DigestWindow>, StoreError>;

    /// Claims `digest`'s window (unique per digest and window start) and
    /// queues its deliveries in the same transaction, or records it as
    /// skipped; says so when it was claimed before.
    async fn claim_digest(&self, digest: NewDigest) -> Result<DigestClaim, StoreError>;

    /// The store's clock, which event receipt times are read on.
    async fn now(&self) -> Result<DateTime<Utc>, StoreError>;

    /// Every digest still stored whose figures quote `customer` (a
    /// feedback entry with that `customer_id`).
    async fn digests_quoting(&self, customer: &str) -> Result<Vec<StoredDigest>, StoreError>;

    /// Marks pending deliveries dead with `reason`, so they are not tried
    /// again (an attempt under way finishes, and is recorded without
    /// changing that); returns the ones it changed.
    async fn discard(&self, ids: &[String], reason: &str) -> Result<Vec<DeliveryId>, StoreError>;

    /// Raaft's events received, and deliveries whose status last changed,
    /// within each of the last `periods` (one pass over the longest).
    async fn activity(&self, periods: &[Duration]) -> Result<Vec<inspect::Activity>, StoreError>;

    /// Events, newest first.
    async fn list_events(&self, filter: &inspect::EventFilter) -> Result<Vec<inspect::EventSummary>, StoreError>;

    async fn event(&self, id: &str) -> Result<Option<inspect::EventDetail>, StoreError>;

    /// The attempts of each of `destinations` over
    /// [`inspect::HEALTH_PERIOD`], read from one index per destination.
    async fn destination_health(&self, destinations: &[String]) -> Result<Vec<inspect::DestinationHealth>, StoreError>;

    /// Replaces a stored digest's figures and the payload of each of its
    /// deliveries (by destination; `otherwise` for a destination not
    /// listed), and erases what its attempts recorded of the payload sent
    /// and the answer.
    async fn rewrite_digest(&self, rewrite: DigestRewrite) -> Result<(), StoreError>;
}

/// New figures and payloads for a stored digest.
#[derive(Debug, Clone)]
pub struct DigestRewrite {
    pub event_id: String,
    pub figures: String,
    /// Per destination, the payload as [`crate::channels::Payload::to_stored`] wrote it.
    pub payloads: Vec<(String, String)>,
    /// The payload of a delivery to a destination not in `payloads`.
    pub otherwise: String,
}

impl DigestRewrite {
    /// The payload for a delivery to `destination`.
    pub fn payload_for(&self, destination: &str) -> &str {
        self.payloads.iter().find(|(d, _)| d == destination).map_or(self.otherwise.as_str(), |(_, p)| p.as_str())
    }
}

/// A digest as stored: its window and figures.
#[derive(Debug, Clone)]
pub struct StoredDigest {
    pub event_id: String,
    pub digest: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub figures: Value,
}

/// Whether `figures` (a digest's) quote `customer`.
pub fn quotes_customer(figures: &Value, customer: &str) -> bool {
    figures["feedback"].as_array().is_some_and(|quotes| quotes.iter().any(|q| quote_of(q, customer)))
}

/// Whether the quote `q` of a digest is `customer`'s: by id, or, for an
/// address, by the address it was sent with.
pub fn quote_of(q: &Value, customer: &str) -> bool {
    q["customer_id"].as_str() == Some(customer)
        || (customer.contains('@')
            && q["email"].as_str().is_some_and(|e| e.trim().eq_ignore_ascii_case(customer.trim())))
}

/// Of the stored digests read as (event id, figures as stored, digest,
/// window start, window end in ms), those that quote `customer`.
pub fn quoting(
    rows: impl IntoIterator<Item = (String, Vec<u8>, String, i64, i64)>,
    customer: &str,
) -> Vec<StoredDigest> {
    let time = |ms: i64| DateTime::from_timestamp_millis(ms).unwrap_or_default();
    rows.into_iter()
        .filter_map(|(event_id, body, digest, start, end)| {
            let figures: Value = serde_json::from_slice(&body).ok()?;
            quotes_customer(&figures, customer).then(|| StoredDigest {
                event_id,
                digest,
                start: time(start),
                end: time(end),
                figures,
            })
        })
        .collect()
}

/// How long each kind of record is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub deliveries: Duration,
    pub dedup_window: Duration,
    pub history: Duration,
    /// How long a console session lasts (`[admin] session`): a signed-out
    /// session is remembered until it would have ended.
    pub sessions: Duration,
}

/// 32 random bytes, for a new secret.
pub fn fresh_secret() -> Vec<u8> {
    rand::random::<[u8; 32]>().to_vec()
}

/// Whether the event `body` names the e-mail address `email` (in any case)
/// as its customer's, or its subscription's customer's.
pub fn names_email(body: &[u8], email: &str) -> bool {
    let Ok(event) = serde_json::from_slice::<Value>(body) else { return false };
    let wanted = email.trim().to_lowercase();
    let named = [&event["customer"]["email"], &event["subscription"]["customer"]["email"]]
        .into_iter()
        .filter_map(Value::as_str)
        .any(|e| e.trim().to_lowercase() == wanted);
    named
}

/// The history key of what an operator typed: as typed, or lower-cased for
/// an e-mail address (the relay keys customers known only by their
/// address that way).
pub fn typed_keys(typed: &str) -> Vec<String> {
    let typed = typed.trim().to_owned();
    let lower = typed.to_lowercase();
    if lower != typed && typed.contains('@') {
        vec![typed, lower]
    } else {
        vec![typed]
    }
}

/// The flows of the customer an operator named (by id, or by e-mail
/// address in any case), newest first, with the key they are kept under.
pub async fn customer_history(
    store: &dyn Store,
    typed: &str,
) -> Result<(String, Vec<crate::history::Flow>), StoreError> {
    let keys = typed_keys(typed);
    for key in &keys {
        let flows = store.history(key, usize::MAX).await?.recent;
        if !flows.is_empty() {
            return Ok((key.clone(), flows));
        }
    }
    Ok((keys[0].clone(), Vec::new()))
}
