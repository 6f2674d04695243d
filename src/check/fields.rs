//! The fields events have, as `check` knows them: every path of every
//! sample event with the relay's facts (as of a customer with earlier
//! flows, so that `history` is filled), and the nearest of them to a name
//! that is not one.

use crate::history::mrr::Mrr;
use crate::history::{EarlierFlows, History};
use crate::samples::SAMPLE_EVENTS;
use serde_json::Value;
use std::collections::BTreeSet;

/// Every shipped sample event with the relay's facts twice: as the
/// customer's first flow, and as a customer whose earlier flows are all
/// the samples (so that `history` has its lists filled and rules on a
/// returning customer can match).
pub fn samples_with_facts() -> Vec<(&'static str, Value)> {
    let now = chrono::Utc::now();
    let events: Vec<(&str, Value)> = SAMPLE_EVENTS
        .iter()
        .map(|(name, json)| (*name, serde_json::from_str::<Value>(json).expect("shipped samples are JSON")))
        .collect();
    let earlier: Vec<crate::history::Flow> = events
        .iter()
        .map(|(_, e)| {
            let mrr = Mrr::of(e);
            crate::history::Flow::of("sample", e, mrr.as_ref(), now - chrono::Duration::days(1))
        })
        .collect();
    let returning = History { now, earlier: EarlierFlows::from_flows(earlier) };
    let mut out = Vec::new();
    for ((name, event), (_, first)) in events.into_iter().zip(crate::samples::first_flows()) {
        let again = crate::history::facts(Mrr::of(&event).as_ref(), Some(&returning));
        out.push((name, first));
        out.push((name, crate::history::with_facts(event, Some(&again))));
    }
    out
}

/// Paths (`customer.name`, `path.[].type`), the JSON types each holds,
/// and string values seen.
#[derive(Debug, Default)]
pub struct KnownFields {
    paths: BTreeSet<String>,
    /// The types (`string`, `number`, ...) each path holds where it is not
    /// null.
    types: std::collections::BTreeMap<String, BTreeSet<&'static str>>,
    /// Short string values (`canceled`, `discount`): what an unquoted
    /// word in a condition most likely meant.
    values: BTreeSet<String>,
}

impl KnownFields {
    /// The fields of the shipped sample events, as routes and templates
    /// see them ([`samples_with_facts`]).
    pub fn of_events() -> KnownFields {
        let events: Vec<Value> = samples_with_facts().into_iter().map(|(_, e)| e).collect();
        Self::of(&events)
    }

    /// The fields of `values`.
    pub fn of(values: &[Value]) -> KnownFields {
        let mut known = KnownFields::default();
        for v in values {
            known.collect(v, &mut Vec::new());
        }
        known
    }

    fn collect(&mut self, value: &Value, at: &mut Vec<String>) {
        if !at.is_empty() {
            let path = at.join(".");
            if !value.is_null() {
                self.types.entry(path.clone()).or_default().insert(type_name(value));
            }
            self.paths.insert(path);
        }
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    at.push(key.clone());
                    self.collect(v, at);
                    at.pop();
                    // `{{#each object}}` iterates its values.
                    at.push("[]".into());
                    self.collect(v, at);
                    at.pop();
                }
            }
            Value::Array(items) => {
                at.push("length".into());
                self.paths.insert(at.join("."));
                at.pop();
                for v in items {
                    at.push("[]".into());
                    self.collect(v, at);
                    at.pop();
                }
            }
            Value::String(s) if s.len() <= 40 && !s.contains(char::is_whitespace) => {
                self.values.insert(s.clone());
            }
            _ => {}
        }
    }

    /// Whether some event has the field at `path`.
    pub fn has(&self, path: &str) -> bool {
        self.paths.contains(path)
    }

    /// The types the field at `path` holds in the samples (none when it is
    /// always null or unknown).
    pub fn types(&self, path: &str) -> Option<&BTreeSet<&'static str>> {
        self.types.get(path)
    }

    /// Whether `word` is a string value some event has (`canceled`).
    pub fn is_value(&self, word: &str) -> bool {
        self.values.contains(word)
    }

    /// The known path nearest to `path`, when one is near enough to be
    /// what was meant.
    pub fn nearest(&self, path: &str) -> Option<&str> {
        let depth = path.matches('.').count();
        self.paths
            .iter()
            .filter(|p| p.matches('.').count() == depth)
            .map(|p| (strsim::damerau_levenshtein(p, path), p))
            .filter(|(d, p)| *d <= (p.len() / 3).clamp(1, 3))
            .min()
            .map(|(_, p)| p.as_str())
    }

    /// The top-level names events have (what a CEL condition reads), and
    /// `event` (the whole event).
    pub fn has_top_level(&self, name: &str) -> bool {
        name == "event" || self.has(name)
    }
}

/// The name of `value`'s JSON type.
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "table",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_fields_with_facts_are_known_and_a_typo_has_its_nearest() {
        let known = KnownFields::of_events();
        for path in ["customer.name", "outcome", "path.[].stepType", "history.previous.[].outcome", "mrr.monthly"] {
            assert!(known.has(path), "{path}");
        }
        assert!(!known.has("customer.nmae"));
        assert_eq!(known.nearest("customer.nmae"), Some("customer.name"));
        assert_eq!(known.nearest("outcomes"), Some("outcome"));
        assert_eq!(known.nearest("zzz.qqq"), None);
        assert!(known.is_value("canceled") && !known.is_value("cancelled"));
    }
}
