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

    /// A key that is the same for every retry of one event: the documented
    /// identifying fields, or a hash of the whole body when they are
    /// missing.
    pub fn idempotency_key(&self) -> String {
        let field = |name: &str| self.text(&[name]);
        match (field("appId"), field("flowId"), field("createdAt"), field("outcome")) {
            (Some(app), Some(flow), Some(created), Some(outcome)) => {
                format!("{app}|{flow}|{}|{created}|{outcome}", self.customer_id().unwrap_or(""))
            }
            _ => {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                self.raw.to_string().hash(&mut h);
                format!("body:{:016x}", h.finish())
            }
        }
    }
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
    fn idempotency_key_is_stable_and_falls_back_to_a_body_hash() {
        let a = Event::parse(include_bytes!("../config/events/canceled.json")).unwrap();
        let b = Event::parse(include_bytes!("../config/events/canceled.json")).unwrap();
        assert_eq!(a.idempotency_key(), b.idempotency_key());
        assert!(a.idempotency_key().contains("cus_Q1w2E3r4"));
        let bare = Event::parse(br#"{"outcome":"canceled"}"#).unwrap();
        assert!(bare.idempotency_key().starts_with("body:"));
    }
}
