//! The dispatcher: claims due deliveries from the store and attempts each
//! on its own task, at most `max_in_flight` at once, so one slow or failing
//! destination never delays ingest or the others. Each destination is
//! paced; every attempt is recorded with its outcome and, for retries, the
//! time of the next one. An attempt whose record cannot be written is kept
//! (its claim extended) and recorded again until it is, so a store that
//! fails is never a reason to send a message twice.

use crate::alerts::Alerts;
use crate::channels::AttemptReport;
use crate::loaded_config::LoadedConfig;
use crate::metrics::Metrics;
use crate::pacing::{Pacer, Turn};
use crate::retry::{capped_pause, next_step, NextStep, Outcome};
use crate::store::{AttemptRecord, Job, JobState, Recorded, Store};
use arc_swap::ArcSwap;
use chrono::Utc;
use serde_json::Value;
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
/// How long to wait before recording an attempt again after the store
/// refused the record: short at first, then at most this.
const RECORD_RETRY: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(2));

/// What attempts share.
pub struct Services {
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    pub pacer: Arc<Pacer>,
    pub alerts: Arc<Alerts>,
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
                let lease = lease_for(&self.loaded.load());
                match store.claim_due(free, lease).await {
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
                match store.next_due().await {
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
fn lease_for(loaded: &LoadedConfig) -> Duration {
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

/// Makes one attempt of `job` with the destination as configured now, and
/// records it. `stop` turns true at shutdown (a record the store keeps
/// refusing is then given up).
pub async fn attempt(services: &Services, loaded: Arc<LoadedConfig>, mut job: Job, stop: watch::Receiver<bool>) {
    let number = job.attempt;
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
        let policy = &loaded.config.retry;
        if number > policy.max_attempts {
            // The attempts before this one reached the limit without one
            // deciding the delivery's fate: one was cut short (the relay
            // stopped during it, or lost its store) and counted all the
            // same, or `max_attempts` was lowered since.
            let reason = format!(
                "gave up before attempt {number}: max_attempts is {} (an attempt cut short by a stop counts too)",
                policy.max_attempts
            );
            error!(%reason, "delivery failed for good");
            let record = AttemptRecord {
                at: Utc::now(),
                status: None,
                latency: Duration::ZERO,
                response: None,
                error: Some(reason.clone()),
                payload: None,
            };
            record_attempt(services, &loaded, &job, record, JobState::Dead { reason: reason.clone() }, stop).await;
            services.alerts.delivery_dead(loaded.clone(), &job.destination, &job.id, &reason);
            return;
        }
        let dest = loaded.destination(&job.destination);
        if let Some(dest) = dest {
            let pace = services.pacer.for_destination(&dest.name, dest.rate_limit);
            if let Turn::Later(wait) = pace.turn(MAX_PACE_WAIT).await {
                if let Err(e) = services.store.postpone(&job, wait).await {
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
            Some(dest) => {
                let payload = match job.payload.take() {
                    Some(stored) => crate::channels::Payload::from_stored(&stored),
                    None => {
                        let event = crate::render::EventContext::new(job.take_event());
                        render_off_workers(&loaded, &job.destination, event).await
                    }
                };
                match payload {
                    Ok(payload) => (dest.send(&payload, policy.attempt_timeout).await, Some(payload.display())),
                    Err(e) => (failed(e, started), None),
                }
            }
        };
        if let (Some(dest), Some(pause)) = (dest, report.pause) {
            let pause = capped_pause(policy, pause);
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
                let reason = crate::redact::emails(&reason(&report.outcome));
                warn!(%status, latency_ms, %reason, retry_in_ms = delay.as_millis() as u64, "attempt failed, will retry");
                (JobState::RetryIn(*delay), "retried")
            }
            NextStep::Dead { reason } => {
                // A receiver's answer may echo the payload: no address of a
                // customer goes to the log.
                let response = report.response.as_deref().map(String::from_utf8_lossy).unwrap_or_default();
                let (reason_shown, response) = (crate::redact::emails(reason), crate::redact::emails(&response));
                error!(%status, latency_ms, reason = %reason_shown, %response, "delivery failed for good");
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
        record_attempt(services, &loaded, &job, record, state, stop).await;
        if let Some(why) = dead_reason {
            services.alerts.delivery_dead(loaded.clone(), &job.destination, &job.id, &why);
        }
    }
    .instrument(span)
    .await
}

/// Records an attempt, trying again while the store refuses: the delivery
/// stays claimed (its lease extended) meanwhile, so it is not sent again
/// beside an attempt whose outcome is known but not yet written. Gives up
/// only at shutdown, once the drain deadline has passed; the claim then
/// runs out and the next claim counts the attempt.
async fn record_attempt(
    services: &Services,
    loaded: &LoadedConfig,
    job: &Job,
    record: AttemptRecord,
    state: JobState,
    mut stop: watch::Receiver<bool>,
) {
    let mut wait = RECORD_RETRY.0;
    let mut stopping_since: Option<Instant> = None;
    loop {
        match services.store.finish_attempt(job, record.clone(), state.clone()).await {
            Ok(Recorded::Done) => return,
            Ok(Recorded::LeaseLost) => {
                warn!(delivery = %job.id, "lease lost before the attempt was recorded; another worker owns it now");
                return;
            }
            Err(e) => {
                error!(error = %e, retry_in_ms = wait.as_millis() as u64, "cannot record the attempt; trying again")
            }
        }
        if *stop.borrow() {
            let since = *stopping_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= DRAIN_DEADLINE {
                error!(delivery = %job.id, "shutting down with an attempt not recorded; it counts when claimed again");
                return;
            }
        }
        if let Err(e) = services.store.extend_lease(job, lease_for(loaded)).await {
            warn!(error = %e, "cannot extend the claim of an attempt waiting to be recorded");
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed(), if !*stop.borrow() => {}
        }
        wait = (wait * 2).min(RECORD_RETRY.1);
    }
}

/// The payload of `destination` for an event, rendered off the async
/// workers; a render past its budget is the reason the attempt failed.
async fn render_off_workers(
    loaded: &Arc<LoadedConfig>,
    destination: &str,
    event: crate::render::EventContext,
) -> Result<crate::channels::Payload, String> {
    let (for_render, destination) = (loaded.clone(), destination.to_owned());
    crate::render::off_workers(move || match for_render.destination(&destination) {
        Some(dest) => dest.payload_in(&event),
        None => {
            Err(crate::render::RenderError::new("-", format!("destination \"{destination}\" is no longer configured")))
        }
    })
    .await
    .and_then(|rendered| rendered)
    .map_err(|e| e.to_string())
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
