//! The dispatcher: claims due deliveries from the store and attempts each
//! on its own task, at most `max_in_flight` at once, so one slow or failing
//! destination never delays ingest or the others. Each destination is
//! paced; every attempt is recorded with its outcome and, for retries, the
//! time of the next one. An attempt whose record cannot be written is kept
//! (its claim extended) and recorded again until it is, so a store that
//! fails is never a reason to send a message twice. [`attempt`] is one
//! attempt, step by step.

mod attempt;
#[cfg(test)]
mod tests;

pub use attempt::attempt;

use crate::alerts::Alerts;
use crate::channels::{AttemptReport, Destination, Payload};
use crate::loaded_config::LoadedConfig;
use crate::metrics::Metrics;
use crate::pacing::Pacer;
use crate::store::Queue;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use chrono::Utc;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinSet;
use tracing::{info, warn};

/// How many attempts run at once by default.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 64;
/// How often the store is polled even without a wake-up, so work written
/// by another replica or due by the clock is picked up.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How long a claim outlives the attempt timeout: a delivery whose worker
/// died is taken over by another once its lease runs out.
pub const LEASE_MARGIN: Duration = Duration::from_secs(5);
/// How long a claimed delivery waits in memory for its destination's turn
/// before going back to the store for later (well inside the lease margin).
pub(crate) const MAX_PACE_WAIT: Duration = Duration::from_secs(2);
/// How long shutdown waits for attempts already under way.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(10);
/// How long to wait before recording an attempt again after the store
/// refused the record: short at first, then at most this.
pub(crate) const RECORD_RETRY: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(2));

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
    async fn send(&self, destination: &Destination, payload: &Payload, timeout: Duration) -> AttemptReport;
}

/// Through the destination's channel (Slack, Discord, e-mail, a webhook,
/// the console).
pub struct Channels;

#[async_trait]
impl Transport for Channels {
    async fn send(&self, destination: &Destination, payload: &Payload, timeout: Duration) -> AttemptReport {
        destination.send(payload, timeout).await
    }
}

pub struct Dispatcher {
    pub services: Arc<Services>,
    pub loaded: Arc<ArcSwap<LoadedConfig>>,
    /// Notified by ingest after each enqueue.
    pub wake: Arc<Notify>,
    pub max_in_flight: usize,
}

impl Dispatcher {
    /// Runs until `shutdown` turns true, then lets attempts under way
    /// finish (up to [`DRAIN_DEADLINE`]).
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let queue = self.services.queue.clone();
        let permits = Arc::new(Semaphore::new(self.max_in_flight.max(1)));
        let mut tasks = JoinSet::new();
        loop {
            if *shutdown.borrow() {
                break;
            }
            while tasks.try_join_next().is_some() {}
            let free = permits.available_permits();
            let mut claimed = 0;
            if free > 0 {
                let lease = lease_for(&self.loaded.load());
                match queue.claim_due(free, lease).await {
                    Ok(jobs) => {
                        claimed = jobs.len();
                        for job in jobs {
                            let permit = permits.clone().acquire_owned().await.expect("semaphore never closes");
                            let services = self.services.clone();
                            let loaded = self.loaded.load_full();
                            let stop = shutdown.clone();
                            tasks.spawn(async move {
                                attempt(&services, loaded, job, stop).await;
                                drop(permit);
                            });
                        }
                    }
                    Err(e) => warn!(error = %e, "cannot claim deliveries"),
                }
            }
            if claimed > 0 && claimed == free {
                continue;
            }
            // With every worker busy only a finishing attempt (or shutdown)
            // can change anything: the store is not asked when to look next.
            let wait = if permits.available_permits() == 0 {
                POLL_INTERVAL
            } else {
                match queue.next_due().await {
                    Ok(Some(due_in)) => due_in.min(POLL_INTERVAL),
                    _ => POLL_INTERVAL,
                }
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = shutdown.changed() => {}
            }
        }
        if !tasks.is_empty() {
            info!(in_flight = tasks.len(), "waiting for deliveries under way");
            let drained =
                tokio::time::timeout(DRAIN_DEADLINE, async { while tasks.join_next().await.is_some() {} }).await;
            if drained.is_err() {
                warn!(abandoned = tasks.len(), "shutdown deadline passed with deliveries under way");
            }
        }
    }
}

/// How long a claim lasts: the attempt, a wait for the destination's turn,
/// and a margin.
pub(crate) fn lease_for(loaded: &LoadedConfig) -> Duration {
    loaded.config.retry.attempt_timeout + MAX_PACE_WAIT + LEASE_MARGIN
}

/// Sends `event` (a Raaft event, with the facts of a first flow) to the
/// destination `name` of `loaded` once, outside the queue: `send-test` and
/// the console's "Send test". `None` when there is no such destination.
pub async fn send_test(
    loaded: &Arc<LoadedConfig>,
    name: &str,
    event: Value,
) -> Option<Result<AttemptReport, crate::render::RenderError>> {
    let dest = loaded.destination(name)?;
    let facts = crate::history::first_flow_facts(&event, Utc::now());
    let event = crate::history::with_facts(event, Some(&facts));
    let (for_render, destination) = (loaded.clone(), name.to_owned());
    let payload = crate::render::off_workers(move || {
        for_render.destination(&destination).map(|d| d.payload(&event)).expect("looked up above")
    })
    .await
    .and_then(|p| p);
    Some(match payload {
        Ok(payload) => Ok(dest.send(&payload, loaded.config.retry.attempt_timeout).await),
        Err(e) => Err(e),
    })
}
