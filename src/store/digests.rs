//! Digest windows as the store keeps them: the events of a window, each
//! digest's last window, a window claimed once with its deliveries, and
//! the stored digests an erasure writes again.

use super::error::StoreError;
use super::ids::DeliveryId;
use super::queue::NewDelivery;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

/// What the digest scheduler needs of a store.
#[async_trait]
pub trait Digests: Send + Sync + 'static {
    /// Raaft's events received in `[start, end)`, oldest first, with their
    /// facts.
    async fn events_between(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Vec<StoredEvent>, StoreError>;

    /// The digest's window that ends last, if any was claimed.
    async fn last_digest_window(&self, digest: &str) -> Result<Option<DigestWindow>, StoreError>;

    /// Claims `digest`'s window (unique per digest and window start) and
    /// queues its deliveries in the same transaction, or records it as
    /// skipped; says so when it was claimed before.
    async fn claim_digest(&self, digest: NewDigest) -> Result<DigestClaim, StoreError>;

    /// Every digest still stored whose figures quote `customer` (a
    /// feedback entry with that `customer_id`).
    async fn digests_quoting(&self, customer: &str) -> Result<Vec<StoredDigest>, StoreError>;

    /// Replaces a stored digest's figures and the payload of each of its
    /// deliveries (by destination; `otherwise` for a destination not
    /// listed), and erases what its attempts recorded of the payload sent
    /// and the answer.
    async fn rewrite_digest(&self, rewrite: DigestRewrite) -> Result<(), StoreError>;
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
    /// Asked for (`digest send`): a window recorded as skipped is taken
    /// and sent all the same.
    pub asked: bool,
    pub deliveries: Vec<NewDelivery>,
}

/// What [`Digests::claim_digest`] did.
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
