//! Single values of the file, parsed: durations, conditions, names.

use crate::rules::Condition;
use std::time::Duration;

/// Parses "500ms", "10s", "5m", "14d".
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("invalid duration \"{s}\": {e} (write e.g. \"500ms\", \"10s\", \"5m\")"))
}

/// A route's or a digest's `when`: absent (always), a table of
/// `field = value`, or a CEL expression.
pub(super) fn condition(when: Option<&toml::Value>) -> Result<Condition, String> {
    match when {
        None => Ok(Condition::Always),
        Some(toml::Value::String(expr)) => Condition::cel(expr),
        Some(toml::Value::Table(table)) => Condition::table(table),
        Some(other) => {
            Err(format!("`when` must be a table of field = value or a CEL expression string, not {}", other.type_str()))
        }
    }
}

/// Destination and route names appear in logs, metric labels and the
/// store (a delivery lists its routes separated by commas).
pub(super) fn check_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err(format!("\"{name}\" is blank"));
    }
    if let Some(c) = name.chars().find(|c| c.is_control() || *c == ',') {
        return Err(format!("\"{}\" contains {c:?}, which a name may not", name.escape_debug()));
    }
    Ok(())
}
