//! The delivery queue: ingest records an event and one delivery per
//! destination, workers claim due deliveries and record each attempt.
//! Leases and due times run on the store's clock; an attempt counts from
//! the moment it is claimed, and a delivery whose attempt cannot be
//! recorded is not handed out again while its worker keeps trying.

use super::error::StoreError;
use super::ids::DeliveryId;
pub use crate::retry::NextStep;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// What the dispatcher and ingest need of a store: the queue alone.
#[async_trait]
pub trait Queue: Send + Sync + 'static {
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
    async fn finish_attempt(&self, job: &Job, attempt: AttemptRecord, state: NextStep) -> Result<Recorded, StoreError>;

    /// Keeps a claim for `lease` more, while its attempt waits to be
    /// recorded. False when the lease was already lost.
    async fn extend_lease(&self, job: &Job, lease: Duration) -> Result<bool, StoreError>;

    /// Hands a claimed delivery back, due in `delay`, without counting its
    /// attempt (its destination is paced or paused).
    async fn postpone(&self, job: &Job, delay: Duration) -> Result<(), StoreError>;
}

/// An event to record, with what identifies it across Raaft's retries.
/// The store stamps its receipt time with its own clock.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The idempotency key.
    pub dedup_key: String,
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

/// What [`Queue::enqueue`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    Accepted {
        /// The event's id, as the console shows it.
        event_id: String,
        deliveries: Vec<DeliveryId>,
    },
    /// The event was seen within the dedup window; nothing new was created.
    Duplicate,
}

/// A claimed delivery, ready for an attempt.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: DeliveryId,
    /// The event's id, as the console shows it.
    pub event_id: String,
    /// The event's idempotency key.
    pub dedup_key: String,
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

/// What [`Queue::finish_attempt`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// The attempt and the delivery's new state are stored.
    Done,
    /// The attempt is stored, but the lease ran out before: another worker
    /// owns the delivery now and decides its state.
    LeaseLost,
}
