//! Console destinations print the rendered message to standard output: the
//! shipped config uses one so a fresh clone shows its messages without any
//! account anywhere.

use super::{AttemptReport, Payload, Rendered};
use crate::retry::Outcome;
use std::io::Write;
use std::time::Instant;

pub struct Console;

impl Console {
    pub fn send(&self, name: &str, text: &str, started: Instant) -> AttemptReport {
        let mut out = std::io::stdout().lock();
        let written =
            writeln!(out, "── {name} ──────────────────────────────\n{}\n", text.trim_end()).and_then(|_| out.flush());
        let outcome = match written {
            Ok(()) => Outcome::Delivered,
            Err(e) => Outcome::Retry { after: None, reason: format!("cannot write to stdout: {e}") },
        };
        AttemptReport::new(outcome, None, None, started)
    }
}

/// The text a console destination prints. Pure.
pub fn payload(rendered: Rendered) -> Payload {
    if rendered.json {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&rendered.body) {
            return Payload::Console(serde_json::to_string_pretty(&v).unwrap_or(rendered.body));
        }
    }
    Payload::Console(rendered.body)
}
