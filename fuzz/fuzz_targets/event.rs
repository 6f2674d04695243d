//! The event parser on arbitrary request bodies: an event or an error,
//! never a panic, and the relay's own reads of it (outcome, customer,
//! idempotency key) are total.
#![no_main]

use libfuzzer_sys::fuzz_target;
use raaft_relay::event::Event;

fuzz_target!(|body: &[u8]| {
    if let Ok(event) = Event::parse(body) {
        let _ = event.outcome();
        let _ = event.customer_id();
        let key = event.dedup_key();
        assert!(!key.is_empty());
    }
});
