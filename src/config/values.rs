//! Single values of the file, parsed: durations, conditions, names.

use super::types::DestinationKind;
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

/// Whether the template `rel` (a path under `templates_dir`) can be the
/// body of a `kind` destination: JSON is no e-mail body, and a template in
/// the folder of another of Slack, Discord and e-mail is written in that
/// one's markup (mrkdwn is not Discord's markdown).
pub fn template_fits(kind: DestinationKind, rel: &str) -> Result<(), String> {
    let kind_name = kind.as_str();
    if kind == DestinationKind::Email && rel.ends_with(".json.hbs") {
        return Err(format!(
            "\"{rel}\" is JSON, which an e-mail would show as its text: use a text template (e.g. email/canceled.hbs)"
        ));
    }
    let marked = ["slack", "discord", "email"];
    let folder = rel.split(['/', '\\']).next().unwrap_or("");
    if marked.contains(&kind_name) && marked.contains(&folder) && folder != kind_name {
        return Err(format!("\"{rel}\" is written for {folder} destinations, not {kind_name} ones"));
    }
    Ok(())
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
