//! Console destinations print the rendered message to standard output: the
//! shipped config uses one so a fresh clone shows its messages without any
//! account anywhere.

//!
//! Standard output is written through tokio (its blocking pool), never from
//! a runtime thread: a stdout nobody reads (a full pipe, a stopped
//! terminal) holds up console messages, never ingest. A message not out
//! within the attempt timeout is retried.

use super::{AttemptReport, Payload, Rendered};
use crate::retry::Outcome;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

pub struct Console;

/// One message at a time, so concurrent messages never interleave.
static STDOUT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl Console {
    pub async fn send(&self, name: &str, text: &str, timeout: Duration) -> AttemptReport {
        let started = Instant::now();
        let message = format!("── {name} ──────────────────────────────\n{}\n\n", text.trim_end());
        let write = async {
            let _turn = STDOUT.lock().await;
            let mut out = tokio::io::stdout();
            out.write_all(message.as_bytes()).await?;
            out.flush().await
        };
        let outcome = match tokio::time::timeout(timeout, write).await {
            Ok(Ok(())) => Outcome::Delivered,
            Ok(Err(e)) => Outcome::Retry { after: None, reason: format!("cannot write to stdout: {e}") },
            Err(_) => Outcome::Retry {
                after: None,
                reason: format!("stdout took more than {} to take the message", crate::text::duration(timeout)),
            },
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
