//! What every attempt shares: the queue, metrics, the destinations'
//! pacing and the alerts, how a payload reaches its destination, and the
//! times a claim is given.

use crate::alerts::Alerts;
use crate::channels::{AttemptReport, Destination, MessageKey, Payload};
use crate::loaded_config::LoadedConfig;
use crate::metrics::Metrics;
use crate::pacing::Pacer;
use crate::store::Queue;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

/// How long a claim outlives the attempt timeout: a delivery whose worker
/// died is taken over by another once its lease runs out.
pub const LEASE_MARGIN: Duration = Duration::from_secs(5);
/// How long a claimed delivery waits in memory for its destination's turn
/// before going back to the store for later (well inside the lease margin).
pub const MAX_PACE_WAIT: Duration = Duration::from_secs(2);
/// How long shutdown waits for attempts already under way.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(10);
/// How long to wait before recording an attempt again after the store
/// refused the record: short at first, then at most this.
pub const RECORD_RETRY: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(2));

/// What attempts share.
pub struct Services {
    pub queue: Arc<dyn Queue>,
    pub metrics: Arc<Metrics>,
    pub pacer: Arc<Pacer>,
    pub alerts: Arc<Alerts>,
    /// How a payload reaches its destination.
    pub transport: Arc<dyn Transport>,
    /// A uniform random number in [0, 1], for the backoff's jitter.
    pub jitter: fn() -> f64,
}

impl Services {
    /// What attempts share in the relay: sent through the destinations'
    /// channels, with random jitter.
    pub fn new(queue: Arc<dyn Queue>, metrics: Arc<Metrics>) -> Services {
        Services {
            queue,
            alerts: Arc::new(Alerts::new(metrics.clone())),
            metrics,
            pacer: Arc::new(Pacer::default()),
            transport: Arc::new(Channels),
            jitter: rand::random::<f64>,
        }
    }
}

/// How an attempt reaches its destination.
#[async_trait]
pub trait Transport: Send + Sync {
    async fn send(
        &self,
        destination: &Destination,
        payload: &Payload,
        timeout: Duration,
        key: &MessageKey,
    ) -> AttemptReport;
}

/// Through the destination's channel (Slack, Discord, e-mail, a webhook,
/// the console).
pub struct Channels;

#[async_trait]
impl Transport for Channels {
    async fn send(
        &self,
        destination: &Destination,
        payload: &Payload,
        timeout: Duration,
        key: &MessageKey,
    ) -> AttemptReport {
        destination.send(payload, timeout, key).await
    }
}

/// How long a claim lasts: the attempt, a wait for the destination's turn,
/// and a margin.
pub fn lease_for(loaded: &LoadedConfig) -> Duration {
    loaded.config.retry.attempt_timeout + MAX_PACE_WAIT + LEASE_MARGIN
}
