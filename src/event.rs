//! A Raaft event: the JSON object as received, which rules and templates
//! read so that a field Raaft adds tomorrow is usable without a release.
//! The relay itself reads a few documented fields (outcome, customer id,
//! the identifying fields) through accessors; a field of an unexpected type
//! reads as absent instead of failing ingest.

use serde_json::Value;
use std::sync::Arc;

/// Why a request body is not an event.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    #[error("body is JSON but not an object (found {0})")]
    NotObject(&'static str),
}

/// An accepted Raaft event.
#[derive(Debug, Clone)]
pub struct Event {
    /// The body exactly as parsed; the source of truth for rules and
    /// templates.
    pub raw: Arc<Value>,
}

impl Event {
    /// Parses a request body. Only a JSON object is an event.
    pub fn parse(body: &[u8]) -> Result<Event, EventError> {
        let raw: Value = serde_json::from_slice(body).map_err(|e| EventError::NotJson(e.to_string()))?;
        Self::from_value(raw)
    }

    pub fn from_value(raw: Value) -> Result<Event, EventError> {
        if !raw.is_object() {
            return Err(EventError::NotObject(json_type(&raw)));
        }
        Ok(Event { raw: Arc::new(raw) })
    }

    /// The string at `path` (object keys), or `None` when it is missing or
    /// not a string.
    pub fn text(&self, path: &[&str]) -> Option<&str> {
        path.iter().try_fold(&*self.raw, |v, key| v.get(key))?.as_str()
    }

    /// The documented `outcome` (`canceled`, `saved`, ...), when it is a
    /// string.
    pub fn outcome_field(&self) -> Option<&str> {
        self.text(&["outcome"])
    }

    /// The outcome, or "unknown" for logs when Raaft sent none.
    pub fn outcome(&self) -> &str {
        self.outcome_field().unwrap_or("unknown")
    }

    /// The customer's id, when the event names one.
    pub fn customer_id(&self) -> Option<&str> {
        self.text(&["customer", "id"])
    }

    /// The idempotency key (`dedup_key`): the same for every retry of one
    /// event, and stable across releases: the lowercase hex SHA-256 of the
    /// documented identifying fields (`appId`, `flowId`, `customer.id`,
    /// `createdAt`, `outcome`), or of the whole event (re-serialized as compact JSON,
    /// keys in the order received) when one of them is missing. Every part
    /// is preceded by its length, so no value can pass for two.
    pub fn dedup_key(&self) -> String {
        let field = |name: &str| self.text(&[name]);
        match (field("appId"), field("flowId"), field("createdAt"), field("outcome")) {
            (Some(app), Some(flow), Some(created), Some(outcome)) => {
                let customer = self.customer_id().unwrap_or("");
                key_of(&[KEY_OF_FIELDS, app, flow, customer, created, outcome])
            }
            _ => key_of(&[KEY_OF_BODY, &self.raw.to_string()]),
        }
    }
}

/// What a key was made of: the first part hashed, so the two kinds can
/// never give the same key.
const KEY_OF_FIELDS: &str = "raaft-relay/fields/v1";
const KEY_OF_BODY: &str = "raaft-relay/body/v1";

/// SHA-256 over each part as its length (8 bytes, big-endian) and its UTF-8
/// bytes, in lowercase hex.
fn key_of(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_fields_are_read() {
        let event = Event::parse(include_bytes!("../config/events/saved-switch-plan.json")).unwrap();
        assert_eq!(event.outcome(), "saved");
        assert_eq!(event.customer_id(), Some("customer-id"));
        assert_eq!(event.text(&["customer", "name"]), Some("Customer Name"));
        assert_eq!(event.raw["subscription"]["plan"]["amount"], 10.0);
        assert_eq!(event.raw["responseAccepted"]["type"], "change-plans");
    }

    #[test]
    fn unknown_fields_are_kept_and_odd_types_read_as_absent() {
        let event = Event::parse(br#"{"outcome": 5, "customer": "bob", "newField": {"x": 1}}"#).unwrap();
        assert_eq!(event.outcome_field(), None);
        assert_eq!(event.outcome(), "unknown");
        assert_eq!(event.customer_id(), None);
        assert_eq!(event.text(&["customer", "id", "x"]), None);
        assert_eq!(event.raw["newField"]["x"], 1);
        assert_eq!(event.raw["outcome"], 5);
    }

    #[test]
    fn only_json_objects_are_events() {
        assert!(matches!(Event::parse(b"not json"), Err(EventError::NotJson(_))));
        assert!(matches!(Event::parse(b"[1,2]"), Err(EventError::NotObject("an array"))));
        assert!(matches!(Event::parse(b"\"x\""), Err(EventError::NotObject("a string"))));
        assert!(Event::parse(b"{}").is_ok());
    }

    #[test]
    fn dedup_key_is_pinned_for_the_documented_example() {
        // The example of Raaft's webhook documentation. This constant must
        // never change: a Raaft retry after an upgrade would be delivered
        // again. docs/delivery.md shows how to compute it.
        let event = Event::parse(include_bytes!("../config/events/saved-switch-plan.json")).unwrap();
        assert_eq!(event.dedup_key(), "b4f5fee35bf160cf828564a48160b2b08fdd217c82de946803478b4eca33f1c5");
        let same = Event::parse(include_bytes!("../config/events/saved-switch-plan.json")).unwrap();
        assert_eq!(event.dedup_key(), same.dedup_key());
    }

    #[test]
    fn dedup_key_parts_are_length_prefixed() {
        let fields = |app: &str, flow: &str| {
            let body = serde_json::json!({"appId": app, "flowId": flow, "createdAt": "t", "outcome": "saved"});
            Event::from_value(body).unwrap().dedup_key()
        };
        // With a separator, both were "a|b|c|t|saved|".
        assert_ne!(fields("a|b", "c"), fields("a", "b|c"));
        assert_ne!(fields("ab", ""), fields("a", "b"));
        assert_eq!(fields("a", "b").len(), 64);
        assert!(fields("a", "b").bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }

    #[test]
    fn dedup_key_falls_back_to_the_whole_event() {
        let bare = Event::parse(br#"{"outcome":"canceled","n":1}"#).unwrap();
        let spaced = Event::parse(br#"{ "outcome": "canceled", "n": 1 }"#).unwrap();
        let other = Event::parse(br#"{"outcome":"canceled","n":2}"#).unwrap();
        assert_eq!(bare.dedup_key(), spaced.dedup_key());
        assert_ne!(bare.dedup_key(), other.dedup_key());
        assert_eq!(bare.dedup_key(), key_of(&[KEY_OF_BODY, r#"{"outcome":"canceled","n":1}"#]));
        // A body cannot pass for the fields of another event.
        let full = Event::parse(include_bytes!("../config/events/canceled.json")).unwrap();
        assert_ne!(full.dedup_key(), key_of(&[KEY_OF_BODY, &full.raw.to_string()]));
    }
}
