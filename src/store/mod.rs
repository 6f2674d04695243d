//! The delivery queue behind one small trait: ingest writes an event and
//! one delivery per destination, workers claim due deliveries and record
//! each attempt, operators list, inspect and replay. [`SqlStore`] backs it
//! with SQLite (embedded, the default) or PostgreSQL (several replicas).

mod sql;
mod sqlite;

pub use sql::{resolve_url, Backend, SqlStore};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Deliveries, events and attempts are named by lowercase ULIDs: unique
/// across replicas and sorted by creation time.
pub type DeliveryId = String;

/// A fresh identifier.
pub fn new_id() -> String {
    ulid::Ulid::new().to_string().to_ascii_lowercase()
}

/// The store cannot take or give work right now (unreachable, disk full).
/// Ingest answers 503 so Raaft retries.
#[derive(Debug, thiserror::Error)]
#[error("store unavailable: {0}")]
pub struct StoreError(pub String);

/// An event to record, with what identifies it across Raaft's retries.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub key: String,
    /// The request body as received (a JSON object).
    pub body: String,
    pub outcome: Option<String>,
    pub customer: Option<String>,
    pub received_at: DateTime<Utc>,
}

/// One (event, destination) pair to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    pub destination: String,
    pub routes: Vec<String>,
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
    /// Attempts made before this one (since the last replay).
    pub attempts: u32,
    /// The claim this job was handed out under.
    pub lease: String,
}

impl Job {
    /// The event, made into a template context; the job keeps `null` in
    /// its place (the attempt's record needs the rest, not the event).
    pub fn take_event(&mut self) -> crate::render::EventContext {
        let event = std::mem::replace(&mut self.event, Arc::new(Value::Null));
        crate::render::EventContext::new(Arc::unwrap_or_clone(event))
    }
}

/// One attempt, as recorded.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub at: DateTime<Utc>,
    pub status: Option<u16>,
    pub latency: Duration,
    pub response: Option<String>,
    pub error: Option<String>,
    /// The rendered payload, as sent.
    pub payload: Option<String>,
}

/// Where a delivery stands after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    Delivered,
    RetryAt(DateTime<Utc>),
    Dead { reason: String },
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
    pub limit: usize,
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
    pub response: Option<String>,
    pub error: Option<String>,
    #[serde(skip)]
    pub payload: Option<String>,
}

/// Everything about one delivery, for `deliveries show`.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryDetail {
    #[serde(flatten)]
    pub summary: DeliverySummary,
    pub event: Value,
    /// The rendered payload of the last attempt.
    pub last_payload: Option<String>,
    pub attempt_log: Vec<AttemptView>,
}

/// Counts for health checks, metrics and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StoreStats {
    pub pending: u64,
    /// Pending deliveries currently claimed by a worker.
    pub in_flight: u64,
    pub delivered: u64,
    pub dead: u64,
    pub attempts: u64,
    pub events: u64,
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
    /// Records `event` and its deliveries in one transaction: after `Ok`
    /// nothing of it may be lost. An event whose key was seen within the
    /// dedup window is a [`Enqueued::Duplicate`].
    async fn enqueue(&self, event: NewEvent, deliveries: Vec<NewDelivery>) -> Result<Enqueued, StoreError>;

    /// Claims up to `limit` due deliveries for `lease`; a claimed delivery
    /// is not handed out again until its attempt is recorded or the lease
    /// runs out (its holder died).
    async fn claim_due(&self, limit: usize, lease: Duration) -> Result<Vec<Job>, StoreError>;

    /// Records an attempt of a claimed delivery and its new state.
    async fn finish_attempt(&self, job: &Job, attempt: AttemptRecord, state: JobState) -> Result<(), StoreError>;

    /// When the earliest pending delivery is due, if any.
    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Whether the store answers.
    async fn ping(&self) -> Result<(), StoreError>;

    async fn stats(&self) -> Result<StoreStats, StoreError>;

    /// Pending and dead deliveries per destination.
    async fn destination_stats(&self) -> Result<Vec<DestinationStats>, StoreError>;

    /// Hands a claimed delivery back for later without counting an attempt
    /// (its destination is paced or paused).
    async fn postpone(&self, job: &Job, until: DateTime<Utc>) -> Result<(), StoreError>;

    async fn list(&self, filter: &ListFilter) -> Result<Vec<DeliverySummary>, StoreError>;

    async fn show(&self, id: &str) -> Result<Option<DeliveryDetail>, StoreError>;

    /// Requeues the given deliveries for an attempt now, with a fresh
    /// attempt budget; returns the ids that exist.
    async fn replay(&self, ids: &[String]) -> Result<Vec<DeliveryId>, StoreError>;

    /// Requeues every dead delivery (of one destination); returns how many.
    async fn replay_dead(&self, destination: Option<&str>) -> Result<u64, StoreError>;

    /// Deletes dead deliveries last updated longer ago than `older_than`.
    async fn purge_dead(&self, older_than: Duration) -> Result<u64, StoreError>;

    /// Deletes delivered deliveries, their attempts and their events older
    /// than `retention`, and idempotency keys older than `dedup_window`.
    async fn prune(&self, retention: Duration, dedup_window: Duration) -> Result<u64, StoreError>;

    /// Hands back every lease: for a store only this process uses, at start.
    async fn release_leases(&self) -> Result<(), StoreError>;
}
