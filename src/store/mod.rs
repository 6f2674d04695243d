//! The delivery queue behind one small trait: ingest writes an event and
//! one delivery per destination, workers claim due deliveries and record
//! each attempt. [`MemoryStore`] keeps it in process; the durable SQLite and
//! PostgreSQL stores implement the same trait.

mod memory;

pub use memory::{MemoryStats, MemoryStore};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

pub type DeliveryId = u64;

/// The store cannot take or give work right now (unreachable, disk full).
/// Ingest answers 503 so Raaft retries.
#[derive(Debug, thiserror::Error)]
#[error("store unavailable: {0}")]
pub struct StoreError(pub String);

/// An event to record, with what identifies it across Raaft's retries.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub key: String,
    pub raw: Arc<Value>,
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
    /// The event was seen before; nothing new was created.
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
    /// Attempts made before this one.
    pub attempts: u32,
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

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Records `event` and its deliveries in one step: after `Ok` nothing
    /// of it may be lost.
    async fn enqueue(&self, event: NewEvent, deliveries: Vec<NewDelivery>) -> Result<Enqueued, StoreError>;

    /// Claims up to `limit` deliveries that are due now. A claimed delivery
    /// is not handed out again until its attempt is finished.
    async fn claim_due(&self, limit: usize) -> Result<Vec<Job>, StoreError>;

    /// Records an attempt of a claimed delivery and its new state.
    async fn finish_attempt(&self, job: &Job, attempt: AttemptRecord, state: JobState) -> Result<(), StoreError>;

    /// When the earliest pending delivery is due, if any.
    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError>;
}
