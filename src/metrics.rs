//! Prometheus metrics, named `raaft_relay_*`: what came in, where it went,
//! how long attempts took, and how much waits in the store. Labels are
//! bounded: destination and route names come from the config, outcomes
//! from a closed list.

use crate::store::Store;
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    /// `outcome` (canceled, saved, aborted, error, other, unknown) and
    /// `result` (accepted, unauthorized, invalid, duplicate, unavailable).
    pub events: IntCounterVec,
    pub unrouted: IntCounter,
    pub route_matches: IntCounterVec,
    /// `result`: delivered, retried, dead.
    pub deliveries: IntCounterVec,
    pub attempt_duration: HistogramVec,
    /// `result`: success, error.
    pub reloads: IntCounterVec,
    pub alerts: IntCounterVec,
    /// Notices held back: one of the same kind went out within the hour,
    /// or it was about the alerts destination itself.
    pub alerts_held: IntCounterVec,
    /// `result`: change (a file of the running set changed), ignored.
    pub config_file_events: IntCounterVec,
    store: StoreGauges,
}

/// What waits in the store, per destination.
struct StoreGauges {
    queue_depth: IntGaugeVec,
    oldest_pending: GaugeVec,
    dead: IntGaugeVec,
}

impl StoreGauges {
    fn new(r: &Registry) -> StoreGauges {
        StoreGauges {
            queue_depth: per_destination(
                r,
                IntGaugeVec::new,
                "raaft_relay_queue_depth",
                "Pending deliveries by destination.",
            ),
            oldest_pending: per_destination(
                r,
                GaugeVec::new,
                "raaft_relay_oldest_pending_age_seconds",
                "Age of the oldest pending delivery by destination.",
            ),
            dead: per_destination(
                r,
                IntGaugeVec::new,
                "raaft_relay_dead_deliveries",
                "Dead deliveries kept in the store, by destination.",
            ),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn register<C: prometheus::core::Collector + Clone + 'static>(registry: &Registry, collector: C) -> C {
    registry.register(Box::new(collector.clone())).expect("metric registered once");
    collector
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(registry, IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"))
}

/// A counter by one label whose values are known up front: every series
/// is there from the start, at 0, so a dashboard or alert never reads a
/// missing one.
fn counter_of(registry: &Registry, name: &str, help: &str, label: &str, values: &[&str]) -> IntCounterVec {
    let c = counter(registry, name, help, &[label]);
    for value in values {
        c.with_label_values(&[value]);
    }
    c
}

/// A gauge by destination.
fn per_destination<G: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    make: impl FnOnce(Opts, &[&str]) -> prometheus::Result<G>,
    name: &str,
    help: &str,
) -> G {
    register(registry, make(Opts::new(name, help), &["destination"]).expect("valid metric"))
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let r = &registry;
        let events = counter(
            r,
            "raaft_relay_events_received_total",
            "Raaft webhook requests by event outcome and result.",
            &["outcome", "result"],
        );
        let unrouted = register(
            r,
            IntCounter::new("raaft_relay_events_unrouted_total", "Accepted events that matched no route.")
                .expect("valid metric"),
        );
        let route_matches = counter(r, "raaft_relay_route_matches_total", "Events each route matched.", &["route"]);
        let deliveries = counter(
            r,
            "raaft_relay_deliveries_total",
            "Delivery attempts by destination and result (delivered, retried, dead).",
            &["destination", "result"],
        );
        let attempt_duration = register(
            r,
            HistogramVec::new(
                HistogramOpts::new("raaft_relay_attempt_duration_seconds", "Duration of delivery attempts.")
                    .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
                &["destination"],
            )
            .expect("valid metric"),
        );
        let reloads = counter_of(
            r,
            "raaft_relay_config_reloads_total",
            "Configuration reloads by result.",
            "result",
            &["success", "error"],
        );
        let config_file_events = counter_of(
            r,
            "raaft_relay_config_file_events_total",
            "Events in the folders of the running configuration's files, by result: change (one of its files \
             changed: a reload follows) or ignored (a read, a metadata change, another file).",
            "result",
            &["change", "ignored"],
        );
        let alerts = counter_of(
            r,
            "raaft_relay_alerts_sent_total",
            "Notices sent to the alerts destination, by reason.",
            "reason",
            &["dead", "backlog"],
        );
        let alerts_held = counter_of(
            r,
            "raaft_relay_alerts_held_total",
            "Notices not sent, by reason: one of the kind went out within the hour, or it was about the alerts \
             destination itself.",
            "reason",
            &["dead", "backlog"],
        );
        Metrics {
            events,
            unrouted,
            route_matches,
            deliveries,
            attempt_duration,
            reloads,
            alerts,
            alerts_held,
            config_file_events,
            store: StoreGauges::new(r),
            registry,
        }
    }

    /// The outcome label for an event: Raaft's four, or "other".
    pub fn outcome_label(outcome: Option<&str>) -> &'static str {
        match outcome {
            Some("canceled") => "canceled",
            Some("saved") => "saved",
            Some("aborted") => "aborted",
            Some("error") => "error",
            Some(_) => "other",
            None => "unknown",
        }
    }

    /// Reads the store's gauges (queue depth, oldest pending, dead) for
    /// every destination in `destinations` (0 where the store has none)
    /// and any other the store knows. Run in the background: a scrape
    /// never touches the store.
    pub async fn refresh_store_gauges(&self, store: &dyn Store, destinations: &[String]) {
        match store.destination_stats().await {
            Ok(stats) => {
                self.store.queue_depth.reset();
                self.store.oldest_pending.reset();
                self.store.dead.reset();
                for name in destinations {
                    self.store.queue_depth.with_label_values(&[name]).set(0);
                    self.store.oldest_pending.with_label_values(&[name]).set(0.0);
                    self.store.dead.with_label_values(&[name]).set(0);
                }
                for s in stats {
                    self.store.queue_depth.with_label_values(&[&s.destination]).set(s.pending as i64);
                    self.store
                        .oldest_pending
                        .with_label_values(&[&s.destination])
                        .set(s.oldest_pending_age.as_secs_f64());
                    self.store.dead.with_label_values(&[&s.destination]).set(s.dead as i64);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read queue gauges"),
        }
    }

    /// The text exposition, gauges as last refreshed.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}
