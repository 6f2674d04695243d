//! One attempt of one delivery, step by step: give up when the attempts
//! are spent, wait for the destination's turn (or hand the delivery back
//! for later), send, decide what follows from the answer, and record it.

use super::services::{lease_for, Services, DRAIN_DEADLINE, MAX_PACE_WAIT, RECORD_RETRY};
use crate::channels::{AttemptReport, Destination, MessageKey, Payload};
use crate::loaded_config::LoadedConfig;
use crate::pacing::Turn;
use crate::retry::{capped_pause, next_step, NextStep, Outcome};
use crate::store::{AttemptRecord, Job, Recorded};
use chrono::Utc;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{error, info, warn, Instrument};

/// Makes one attempt of `job` with the destination as configured now, and
/// records it. `stop` turns true at shutdown (a record the store keeps
/// refusing is then given up).
pub async fn attempt(services: &Services, loaded: Arc<LoadedConfig>, mut job: Job, stop: watch::Receiver<bool>) {
    let span = tracing::info_span!(
        "attempt",
        event_id = %job.event_id,
        delivery = %job.id,
        destination = %job.destination,
        attempt = job.attempt,
        status = tracing::field::Empty,
        latency_ms = tracing::field::Empty,
    );
    async move {
        if job.attempt > loaded.config.retry.max_attempts {
            return give_up(services, &loaded, &job, stop).await;
        }
        let dest = loaded.destination(&job.destination);
        if let Some(dest) = dest {
            if !take_turn(services, dest, &job).await {
                return;
            }
        }
        let (report, payload) = send(services, &loaded, dest, &mut job).await;
        let step = decide(services, &loaded, dest, &job, &report);
        let record = AttemptRecord {
            at: Utc::now(),
            status: report.status,
            latency: report.latency,
            response: report.response,
            error: match &report.outcome {
                Outcome::Delivered => None,
                other => Some(reason(other)),
            },
            payload,
        };
        finish(services, &loaded, &job, record, step, stop).await;
    }
    .instrument(span)
    .await
}

/// The attempts before this one reached the limit without one deciding
/// the delivery's fate: one was cut short (the relay stopped during it, or
/// lost its store) and counted all the same, or `max_attempts` was lowered
/// since. The delivery goes dead without a send.
async fn give_up(services: &Services, loaded: &Arc<LoadedConfig>, job: &Job, stop: watch::Receiver<bool>) {
    let reason = format!(
        "gave up before attempt {}: max_attempts is {} (an attempt cut short by a stop counts too)",
        job.attempt, loaded.config.retry.max_attempts
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
    finish(services, loaded, job, record, NextStep::Dead { reason }, stop).await;
}

/// Waits for the destination's turn (its rate limit, or a break it asked
/// for) up to [`MAX_PACE_WAIT`]; a longer wait hands the delivery back to
/// the queue, due when its turn comes, without counting the attempt.
/// False when it was handed back.
async fn take_turn(services: &Services, dest: &Destination, job: &Job) -> bool {
    let pace = services.pacer.for_destination(&dest.name, dest.rate_limit);
    match pace.turn(MAX_PACE_WAIT).await {
        Turn::Go => true,
        Turn::Later(wait) => {
            if let Err(e) = services.queue.postpone(job, wait).await {
                warn!(error = %e, "cannot postpone a paced delivery");
            }
            false
        }
    }
}

/// Renders (or takes the stored payload) and sends; the report, and the
/// payload as sent for the attempt log. Its time counts in the attempt
/// duration metric, whatever the outcome.
async fn send(
    services: &Services,
    loaded: &Arc<LoadedConfig>,
    dest: Option<&Destination>,
    job: &mut Job,
) -> (AttemptReport, Option<String>) {
    let started = std::time::Instant::now();
    let sent = match dest {
        None => (failed(format!("destination \"{}\" is no longer configured", job.destination), started), None),
        Some(dest) => {
            let payload = match job.payload.take() {
                Some(stored) => Payload::from_stored(&stored),
                None => {
                    let event = crate::render::EventContext::new(job.take_event());
                    render_off_workers(loaded, &job.destination, event).await
                }
            };
            match payload {
                Ok(payload) => {
                    let timeout = loaded.config.retry.attempt_timeout;
                    let key = MessageKey { idempotency_key: job.id.to_string(), event_id: job.event_id.clone() };
                    (services.transport.send(dest, &payload, timeout, &key).await, Some(payload.display()))
                }
                Err(e) => (failed(e, started), None),
            }
        }
    };
    services.metrics.attempt_duration.with_label_values(&[&job.destination]).observe(started.elapsed().as_secs_f64());
    sent
}

/// What follows from `report`: delivered, a retry after the backoff (or
/// the wait the receiver asked for), or dead. A receiver that asked for a
/// break pauses its whole destination. Logs the attempt and counts it.
fn decide(
    services: &Services,
    loaded: &LoadedConfig,
    dest: Option<&Destination>,
    job: &Job,
    report: &AttemptReport,
) -> NextStep {
    let policy = &loaded.config.retry;
    if let (Some(dest), Some(pause)) = (dest, report.pause) {
        let pause = capped_pause(policy, pause);
        services.pacer.for_destination(&dest.name, dest.rate_limit).pause(pause);
        warn!(pause_ms = pause.as_millis() as u64, "destination asked for a break; pausing it");
    }
    let step = next_step(policy, &report.outcome, job.attempt, (services.jitter)());
    let latency_ms = report.latency.as_millis() as u64;
    let status = report.status.map(|s| s.to_string()).unwrap_or_else(|| "-".into());
    let span = tracing::Span::current();
    span.record("status", status.as_str());
    span.record("latency_ms", latency_ms);
    let result = match &step {
        NextStep::Delivered => {
            info!(%status, latency_ms, "delivered");
            "delivered"
        }
        NextStep::RetryIn(delay) => {
            let reason = crate::redact::emails(&reason(&report.outcome));
            warn!(%status, latency_ms, %reason, retry_in_ms = delay.as_millis() as u64, "attempt failed, will retry");
            "retried"
        }
        NextStep::Dead { reason } => {
            // A receiver's answer may echo the payload: no address of a
            // customer goes to the log.
            let response = report.response.as_deref().map(String::from_utf8_lossy).unwrap_or_default();
            let (reason_shown, response) = (crate::redact::emails(reason), crate::redact::emails(&response));
            error!(%status, latency_ms, reason = %reason_shown, %response, "delivery failed for good");
            "dead"
        }
    };
    services.metrics.deliveries.with_label_values(&[&job.destination, result]).inc();
    step
}

/// Records the attempt and, for a delivery that went dead, tells the
/// alerts destination.
async fn finish(
    services: &Services,
    loaded: &Arc<LoadedConfig>,
    job: &Job,
    record: AttemptRecord,
    step: NextStep,
    stop: watch::Receiver<bool>,
) {
    let dead = match &step {
        NextStep::Dead { reason } => Some(reason.clone()),
        _ => None,
    };
    record_attempt(services, loaded, job, record, step, stop).await;
    if let Some(why) = dead {
        services.alerts.delivery_dead(loaded.clone(), &job.destination, &job.id, &why);
    }
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
    step: NextStep,
    mut stop: watch::Receiver<bool>,
) {
    let mut wait = RECORD_RETRY.0;
    let mut stopping_since: Option<Instant> = None;
    loop {
        match services.queue.finish_attempt(job, record.clone(), step.clone()).await {
            Ok(Recorded::Done) => return,
            Ok(Recorded::LeaseLost) => {
                warn!("lease lost before the attempt was recorded; another worker owns it now");
                return;
            }
            Err(e) => {
                error!(error = %e, retry_in_ms = wait.as_millis() as u64, "cannot record the attempt; trying again")
            }
        }
        if *stop.borrow() {
            let since = *stopping_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= DRAIN_DEADLINE {
                error!("shutting down with an attempt not recorded; it counts when claimed again");
                return;
            }
        }
        if let Err(e) = services.queue.extend_lease(job, lease_for(loaded)).await {
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
) -> Result<Payload, String> {
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

fn failed(reason: String, started: std::time::Instant) -> AttemptReport {
    AttemptReport::failed(Outcome::Permanent { reason }, started)
}

fn reason(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Delivered => "delivered".into(),
        Outcome::Retry { reason, .. } | Outcome::Permanent { reason } => reason.clone(),
    }
}
