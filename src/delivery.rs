//! The dispatcher: claims due deliveries from the store and attempts each
//! on its own task, at most `max_in_flight` at once, so one slow or failing
//! destination never delays ingest or the others. Each destination is
//! paced; every attempt is recorded with its outcome and, for retries, the
//! time of the next one.

use crate::alerts::Alerts;
use crate::channels::AttemptReport;
use crate::metrics::Metrics;
use crate::pacing::{Pacer, Turn};
use crate::retry::{next_step, NextStep, Outcome};
use crate::runtime::Runtime;
use crate::store::{AttemptRecord, Job, JobState, Store};
use arc_swap::ArcSwap;
use chrono::Utc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinSet;
use tracing::{error, info, warn, Instrument};

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
const MAX_PACE_WAIT: Duration = Duration::from_secs(2);
/// How long shutdown waits for attempts already under way.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// What attempts share.
pub struct Services {
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    pub pacer: Arc<Pacer>,
    pub alerts: Arc<Alerts>,
}

pub struct Dispatcher {
    pub services: Arc<Services>,
    pub runtime: Arc<ArcSwap<Runtime>>,
    /// Notified by ingest after each enqueue.
    pub wake: Arc<Notify>,
    pub max_in_flight: usize,
}

impl Dispatcher {
    /// Runs until `shutdown` turns true, then lets attempts under way
    /// finish (up to [`DRAIN_DEADLINE`]).
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let store = self.services.store.clone();
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
                let lease = self.runtime.load().config.retry.attempt_timeout + MAX_PACE_WAIT + LEASE_MARGIN;
                match store.claim_due(free, lease).await {
                    Ok(jobs) => {
                        claimed = jobs.len();
                        for job in jobs {
                            let permit = permits.clone().acquire_owned().await.expect("semaphore never closes");
                            let services = self.services.clone();
                            let runtime = self.runtime.load_full();
                            tasks.spawn(async move {
                                attempt(&services, runtime, job).await;
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
                match store.next_due().await {
                    Ok(Some(due)) => (due - Utc::now()).to_std().unwrap_or(Duration::ZERO).min(POLL_INTERVAL),
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

/// Makes one attempt of `job` with the destination as configured now, and
/// records it.
pub async fn attempt(services: &Services, runtime: Arc<Runtime>, mut job: Job) {
    let number = job.attempts + 1;
    let span = tracing::info_span!(
        "attempt",
        event = %job.event_key,
        destination = %job.destination,
        attempt = number,
        status = tracing::field::Empty,
        latency_ms = tracing::field::Empty,
    );
    async move {
        let started = Instant::now();
        let policy = &runtime.config.retry;
        let dest = runtime.destination(&job.destination);
        if let Some(dest) = dest {
            let pace = services.pacer.for_destination(&dest.name, dest.rate_limit);
            if let Turn::Later(wait) = pace.turn(MAX_PACE_WAIT).await {
                let until = Utc::now() + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
                if let Err(e) = services.store.postpone(&job, until).await {
                    warn!(error = %e, "cannot postpone a paced delivery");
                }
                return;
            }
        }
        let started_send = Instant::now();
        let (report, payload) = match dest {
            None => (
                failed(format!("destination \"{}\" is no longer configured", job.destination), started),
                None,
            ),
            Some(dest) => match dest.payload_in(&job.take_event()) {
                Ok(payload) => (dest.send(&payload, policy.attempt_timeout).await, Some(payload.display())),
                Err(e) => (failed(e.to_string(), started), None),
            },
        };
        if let (Some(dest), Some(pause)) = (dest, report.pause) {
            services.pacer.for_destination(&dest.name, dest.rate_limit).pause(pause);
            warn!(pause_ms = pause.as_millis() as u64, "destination asked for a break; pausing it");
        }
        services.metrics.attempt_duration.with_label_values(&[&job.destination]).observe(started_send.elapsed().as_secs_f64());
        let step = next_step(policy, &report.outcome, number, rand::random::<f64>());
        let latency_ms = report.latency.as_millis() as u64;
        let status = report.status.map(|s| s.to_string()).unwrap_or_else(|| "-".into());
        let span = tracing::Span::current();
        span.record("status", status.as_str());
        span.record("latency_ms", latency_ms);
        let (state, result) = match &step {
            NextStep::Delivered => {
                info!(%status, latency_ms, "delivered");
                (JobState::Delivered, "delivered")
            }
            NextStep::RetryIn(delay) => {
                let reason = reason(&report.outcome);
                warn!(%status, latency_ms, %reason, retry_in_ms = delay.as_millis() as u64, "attempt failed, will retry");
                let at = Utc::now() + chrono::Duration::from_std(*delay).unwrap_or(chrono::Duration::MAX);
                (JobState::RetryAt(at), "retried")
            }
            NextStep::Dead { reason } => {
                error!(%status, latency_ms, %reason, response = report.response.as_deref().unwrap_or(""), "delivery failed for good");
                (JobState::Dead { reason: reason.clone() }, "dead")
            }
        };
        services.metrics.deliveries.with_label_values(&[&job.destination, result]).inc();
        let record = AttemptRecord {
            at: Utc::now(),
            status: report.status,
            latency: report.latency,
            response: report.response.clone(),
            error: match &report.outcome {
                Outcome::Delivered => None,
                other => Some(reason(other)),
            },
            payload,
        };
        let dead_reason = match &state {
            JobState::Dead { reason } => Some(reason.clone()),
            _ => None,
        };
        if let Err(e) = services.store.finish_attempt(&job, record, state).await {
            error!(error = %e, "cannot record the attempt");
        }
        if let Some(why) = dead_reason {
            services.alerts.delivery_dead(runtime.clone(), &job.destination, &job.id, &why);
        }
    }
    .instrument(span)
    .await
}

fn failed(reason: String, started: Instant) -> AttemptReport {
    AttemptReport::failed(Outcome::Permanent { reason }, started)
}

fn reason(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Delivered => "delivered".into(),
        Outcome::Retry { reason, .. } | Outcome::Permanent { reason } => reason.clone(),
    }
}
