//! What the relay keeps, as four traits, each for the side that uses it:
//! the delivery [`Queue`] (ingest and the dispatcher), [`Inspect`] (what
//! operators read and do), [`History`] (customers' histories and erasure)
//! and [`Digests`] (windows claimed and stored); [`Store`] is their sum,
//! with the store's clock, secrets and upkeep. Two engines implement it,
//! each in its own module: [`sqlite`] (embedded, the default; one `serve`
//! per file) and [`postgres`] (several replicas on one database).
//! Helpers both engines use live in [`policy`].
//!
//! The promise both keep: an event acknowledged is never lost, and an
//! attempt is sent at most once. Leases and due times run on the store's
//! clock, an attempt counts from the moment it is claimed, and a delivery
//! whose attempt cannot be recorded is not handed out again while its
//! worker keeps trying.

pub mod copy;
pub mod dialect;
pub mod digests;
mod error;
pub mod history;
mod ids;
pub mod inspect;
#[cfg(test)]
pub mod memory;
pub mod policy;
pub mod postgres;
pub mod queue;
pub mod read;
pub mod sqlite;
pub mod upkeep;

pub use digests::{
    quote_of, quotes_customer, quoting, DigestClaim, DigestRewrite, DigestWindow, Digests, NewDigest, StoredDigest,
    StoredEvent,
};
pub use error::StoreError;
pub use history::{customer_history, names_email, typed_keys, EmailMatches, Forgotten, History};
pub use ids::{new_id, DeliveryId};
pub use inspect::{
    AttemptView, DeliveryDetail, DeliverySummary, DestinationStats, Inspect, ListFilter, Replayed, Status,
};
pub use queue::{AttemptRecord, Enqueued, Job, NewDelivery, NewEvent, NewFlow, NextStep, Queue, Recorded};

use crate::config::StoreLocation;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;

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

/// A store: the four sides, the store's clock, its secrets and console
/// sessions, and its upkeep.
#[async_trait]
pub trait Store: Queue + Inspect + History + Digests {
    /// The store's clock, which event receipt times are read on.
    async fn now(&self) -> Result<DateTime<Utc>, StoreError>;

    /// Whether the store answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Deletes delivered deliveries and their attempts older than
    /// `retention.deliveries`, events left without deliveries older than
    /// that, idempotency keys older than `retention.dedup_window`, and
    /// flows (their customers' counts follow) and digest windows older than
    /// `retention.history` (but each digest's latest window, which the next
    /// one starts from), and signed-out sessions issued longer ago than
    /// `retention.sessions`.
    async fn prune(&self, retention: &Retention) -> Result<u64, StoreError>;

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
