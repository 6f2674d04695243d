//! Self-monitoring: a short notice to the `[alerts]` destination when a
//! delivery goes dead and when a destination's backlog grows old. At most
//! one notice per destination and reason per hour; notices about the
//! alerts destination itself are never sent to it.

use crate::loaded_config::LoadedConfig;
use crate::metrics::Metrics;
use crate::retry::Outcome;
use crate::store::Store;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// The quiet time between two notices of one kind.
pub const NOTICE_INTERVAL: Duration = Duration::from_secs(3600);

pub struct Alerts {
    last_sent: Mutex<HashMap<(String, &'static str), Instant>>,
    metrics: Arc<Metrics>,
}

impl Alerts {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Alerts { last_sent: Mutex::default(), metrics }
    }

    /// Whether a notice about `destination` for `reason` may go out now
    /// (and, if so, counts it as sent): not about the alerts destination
    /// itself (`to`), nor within the hour of the last of its kind. A notice
    /// held back is counted as such.
    fn allow(&self, to: &str, destination: &str, reason: &'static str) -> bool {
        let mut last = self.last_sent.lock().expect("alerts lock");
        let key = (destination.to_owned(), reason);
        let allowed = match last.get(&key) {
            _ if destination == to => false,
            Some(at) if at.elapsed() < NOTICE_INTERVAL => false,
            _ => {
                last.insert(key, Instant::now());
                true
            }
        };
        if !allowed {
            self.metrics.alerts_held.with_label_values(&[reason]).inc();
        }
        allowed
    }

    /// A delivery to `destination` went dead.
    pub fn delivery_dead(&self, loaded: Arc<LoadedConfig>, destination: &str, delivery: &str, why: &str) {
        let Some(alerts) = &loaded.config.alerts else { return };
        if !self.allow(&alerts.destination, destination, "dead") {
            return;
        }
        let text = format!(
            "raaft-relay: a delivery to \"{destination}\" failed for good: {why}\n\
             Replay it once the destination is fixed: raaft-relay deliveries replay {delivery}\n\
             (all of them: raaft-relay deliveries replay --dead --destination {destination})"
        );
        self.send(loaded, "dead", text);
    }

    /// Sends a notice for every destination whose oldest pending delivery
    /// is older than `backlog_after`.
    pub async fn check_backlog(&self, loaded: Arc<LoadedConfig>, store: &dyn Store) {
        let Some(alerts) = &loaded.config.alerts else { return };
        let Ok(stats) = store.destination_stats().await else { return };
        for s in stats {
            if s.pending == 0 || s.oldest_pending_age < alerts.backlog_after {
                continue;
            }
            if !self.allow(&alerts.destination, &s.destination, "backlog") {
                continue;
            }
            let text = format!(
                "raaft-relay: \"{}\" has {} pending deliveries, the oldest waiting for {}.\n\
                 See them with: raaft-relay deliveries list --status pending --destination {}",
                s.destination,
                s.pending,
                crate::text::duration(Duration::from_secs(s.oldest_pending_age.as_secs())),
                s.destination
            );
            self.send(loaded.clone(), "backlog", text);
        }
    }

    fn send(&self, loaded: Arc<LoadedConfig>, reason: &'static str, text: String) {
        let metrics = self.metrics.clone();
        tokio::spawn(async move {
            let Some(alerts) = &loaded.config.alerts else { return };
            let Some(dest) = loaded.destination(&alerts.destination) else { return };
            let payload = dest.notice(&text);
            let key = crate::channels::MessageKey::once("alert");
            let report = dest.send(&payload, loaded.config.retry.attempt_timeout, &key).await;
            match report.outcome {
                Outcome::Delivered => {
                    metrics.alerts.with_label_values(&[reason]).inc();
                    info!(destination = %dest.name, reason, "alert sent");
                }
                Outcome::Retry { reason: why, .. } | Outcome::Permanent { reason: why } => {
                    warn!(destination = %dest.name, reason, error = %why, "cannot send alert")
                }
            }
        });
    }
}
