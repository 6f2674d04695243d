//! Sample Raaft events shipped in `config/events/` and built into the
//! binary, so `check` can render every template against realistic events
//! wherever the binary runs.

/// (file name, JSON) of every shipped sample event.
pub const SAMPLE_EVENTS: &[(&str, &str)] = &[
    ("canceled.json", include_str!("../config/events/canceled.json")),
    ("canceled-annual-enterprise.json", include_str!("../config/events/canceled-annual-enterprise.json")),
    ("canceled-no-payment-provider.json", include_str!("../config/events/canceled-no-payment-provider.json")),
    ("minimal-canceled.json", include_str!("../config/events/minimal-canceled.json")),
    ("saved-switch-plan.json", include_str!("../config/events/saved-switch-plan.json")),
    ("saved-discount.json", include_str!("../config/events/saved-discount.json")),
    ("aborted.json", include_str!("../config/events/aborted.json")),
    ("error.json", include_str!("../config/events/error.json")),
];

/// The event `send-test` sends when no route to the destination matches
/// any sample.
pub const DEFAULT_TEST_EVENT: &str = include_str!("../config/events/canceled.json");

/// A sample chosen for a test message.
#[derive(Debug, Clone)]
pub struct TestSample {
    /// Its file name under `config/events/`.
    pub name: &'static str,
    pub event: serde_json::Value,
    /// A route to the destination matches it (else it is the default).
    pub routed: bool,
}

impl TestSample {
    /// How the CLI and the console say which sample went.
    pub fn describe(&self, destination: &str) -> String {
        if self.routed {
            format!("sample event {} (the first a route to \"{destination}\" matches)", self.name)
        } else {
            format!("sample event {} (no route to \"{destination}\" matches any sample)", self.name)
        }
    }
}

/// Every sample as routes and templates see it when it is a customer's
/// first flow (with the relay's facts as of now): (file name, event).
pub fn first_flows() -> Vec<(&'static str, serde_json::Value)> {
    let now = chrono::Utc::now();
    SAMPLE_EVENTS
        .iter()
        .map(|(name, json)| {
            let event: serde_json::Value = serde_json::from_str(json).expect("shipped samples are JSON");
            let facts = crate::history::first_flow_facts(&event, now);
            (*name, crate::history::with_facts(event, Some(&facts)))
        })
        .collect()
}

/// The sample a test message to `destination` sends: the first sample (a
/// customer's first flow) that the routes send there, so that `wins` gets
/// a save and `churn` a cancellation; `canceled.json` when none is.
pub fn for_destination(router: &crate::routing::Router, destination: &str) -> TestSample {
    let parsed = |json: &str| serde_json::from_str::<serde_json::Value>(json).expect("shipped samples are JSON");
    // Routed as received; sent as Raaft sends it (`send_test` adds the facts).
    let routed = SAMPLE_EVENTS
        .iter()
        .zip(first_flows())
        .find(|(_, (_, event))| router.route(event).iter().any(|t| t.destination == destination));
    match routed {
        Some(((name, json), _)) => TestSample { name, event: parsed(json), routed: true },
        None => TestSample { name: "canceled.json", event: parsed(DEFAULT_TEST_EVENT), routed: false },
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_sample_is_an_event() {
        for (name, json) in super::SAMPLE_EVENTS {
            crate::event::Event::parse(json.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}
