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

/// The event `send-test` sends when given none.
pub const DEFAULT_TEST_EVENT: &str = include_str!("../config/events/canceled.json");

#[cfg(test)]
mod tests {
    #[test]
    fn every_sample_is_an_event() {
        for (name, json) in super::SAMPLE_EVENTS {
            crate::event::Event::parse(json.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}
