//! Logging: `tracing` to stderr, filtered by `RUST_LOG` (default `info`),
//! as readable lines or JSON for log shippers. Standard output stays free
//! for what commands print (and console destinations).
//!
//! Log fields carry outside content (customer ids, outcomes, receivers'
//! replies). In the readable format every field value has its control
//! characters escaped, so a customer id holding a newline or a terminal
//! escape sequence cannot write a line of its own or repaint the
//! operator's terminal; JSON escapes them by itself.

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// PostgreSQL's notices (`relation "_sqlx_migrations" already exists,
/// skipping`) are the server talking to itself: shown only when asked for
/// by name in `RUST_LOG`.
const QUIET: &str = "sqlx::postgres::notice=warn";

pub fn init(format: LogFormat) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(asked) if asked.contains("sqlx") => EnvFilter::new(asked),
        Ok(asked) => EnvFilter::new(format!("{asked},{QUIET}")),
        Err(_) => EnvFilter::new(format!("info,{QUIET}")),
    };
    // Colour only for a person at a terminal: a file or a pipe gets plain
    // text, and NO_COLOR (no-color.org) turns it off anywhere.
    use std::io::IsTerminal;
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = match format {
        LogFormat::Pretty => builder.fmt_fields(EscapedFields).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Writes fields as the default format does (`message`, then `name=value`
/// separated by spaces), with control characters in values escaped.
#[derive(Debug, Default, Clone, Copy)]
pub struct EscapedFields;

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> std::fmt::Result {
        let mut visitor = EscapingVisitor { writer, result: Ok(()), first: true };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct EscapingVisitor<'writer> {
    writer: Writer<'writer>,
    result: std::fmt::Result,
    first: bool,
}

impl Visit for EscapingVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        // A `&str` field is shown as `"..."` by the default format; keep
        // that, escaped.
        if field.name() == "message" {
            self.write(field, value);
        } else {
            self.write(field, &format!("{value:?}"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        // `%value` arrives here too, as a wrapper whose Debug is Display.
        self.write(field, &format!("{value:?}"));
    }
}

impl EscapingVisitor<'_> {
    fn write(&mut self, field: &Field, value: &str) {
        if self.result.is_err() || field.name().starts_with("log.") {
            return;
        }
        let separator = if std::mem::take(&mut self.first) { "" } else { " " };
        self.result = if field.name() == "message" {
            write!(self.writer, "{separator}{}", crate::text::shown_on_one_line(value))
        } else {
            write!(self.writer, "{separator}{}={}", field.name(), crate::text::shown_on_one_line(value))
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_forged_line_in_a_field_stays_on_one_line() {
        let buffer = Buffer::default();
        let sink = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .fmt_fields(EscapedFields)
            .finish();
        let forged = "cus_1\n2026-01-01T00:00:00Z  INFO raaft_relay: admin token accepted\u{1b}[2J";
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("event", customer = %forged);
            let _in = span.enter();
            tracing::info!(reason = %forged, reply = forged, count = 3, "event accepted");
        });
        let logs = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert_eq!(logs.lines().count(), 1, "{logs}");
        assert!(!logs.contains('\u{1b}'), "{logs:?}");
        assert!(logs.contains(r"customer=cus_1\n2026-01-01T00:00:00Z  INFO"), "{logs}");
        assert!(logs.contains(r#"reply="cus_1\n2026"#), "{logs}");
        assert!(logs.contains(r"INFO raaft_relay: admin token accepted\x1b[2J"), "{logs}");
        assert!(logs.contains("event accepted") && logs.contains("count=3"), "{logs}");
    }
}
