//! Templates: any source, with up to four partial files (the input split
//! at NUL bytes: the template, then `p0`, `p1`, ...), inline partials
//! included, compiled and rendered against every sample event within a
//! render budget. An error naming the problem, never a crash or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use raaft_relay::render::{Budget, Escape, EventContext, Template, TemplateFiles};
use std::sync::OnceLock;
use std::time::Duration;

fn samples() -> &'static [EventContext] {
    static SAMPLES: OnceLock<Vec<EventContext>> = OnceLock::new();
    SAMPLES.get_or_init(|| {
        raaft_relay::samples::SAMPLE_EVENTS
            .iter()
            .filter(|(name, _)| {
                ["canceled.json", "minimal-canceled.json", "canceled-no-payment-provider.json"].contains(name)
            })
            .map(|(_, json)| EventContext::new(serde_json::from_str(json).unwrap()))
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut parts = text.split('\0');
    let main = parts.next().unwrap_or_default();
    // A folder that does not exist: only the input's files are there.
    let mut files = TemplateFiles::new("/nonexistent/raaft-relay-fuzz").with_edit("main.hbs", main);
    for (i, partial) in parts.take(4).enumerate() {
        files = files.with_edit(&format!("partials/p{i}.hbs"), partial);
    }
    let Ok(template) = Template::load(&files, "main.hbs", |_| Escape::Html) else { return };
    let budget = Budget { time: Duration::from_millis(200), output: 64 * 1024 };
    for event in samples() {
        if let Err(e) = template.render_within(event, budget) {
            assert_eq!(e.template, "main.hbs", "{e}");
        }
    }
});
