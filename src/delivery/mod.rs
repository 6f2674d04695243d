//! The dispatcher: claims due deliveries from the store and attempts each
//! on its own task, at most `max_in_flight` at once, so one slow or failing
//! destination never delays ingest or the others. Each destination is
//! paced; every attempt is recorded with its outcome and, for retries, the
//! time of the next one. An attempt whose record cannot be written is kept
//! (its claim extended) and recorded again until it is, so a store that
//! fails is never a reason to send a message twice. [`attempt`] is one
//! attempt, step by step.

mod attempt;
mod services;
#[cfg(test)]
mod tests;

pub use attempt::attempt;
pub use services::{lease_for, Channels, Services, Transport, DRAIN_DEADLINE, LEASE_MARGIN};

use crate::channels::{AttemptReport, MessageKey};
use crate::loaded_config::LoadedConfig;
use arc_swap::ArcSwap;
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
        Ok(payload) => Ok(dest.send(&payload, loaded.config.retry.attempt_timeout, &MessageKey::once("test")).await),
        Err(e) => Err(e),
    })
}
