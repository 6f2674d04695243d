//! A Raaft event: the raw JSON object as received, which rules and
//! templates read so that a field Raaft adds tomorrow is usable without a
//! release, plus a typed view of the documented fields for the relay's own
//! use (logs, the idempotency key). Every typed field is optional and a
//! field of an unexpected type reads as absent instead of failing ingest.

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
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
    pub typed: RaaftEvent,
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
        let typed = RaaftEvent::deserialize(&raw).unwrap_or_default();
        Ok(Event { raw: Arc::new(raw), typed })
    }

    /// The outcome, or "unknown" for logs when Raaft sent none.
    pub fn outcome(&self) -> &str {
        self.typed.outcome.as_deref().unwrap_or("unknown")
    }

    /// A key that is the same for every retry of one event: the documented
    /// identifying fields, or a hash of the whole body when they are
    /// missing.
    pub fn idempotency_key(&self) -> String {
        let t = &self.typed;
        let customer = t.customer.as_ref().and_then(|c| c.id.as_deref());
        match (&t.app_id, &t.flow_id, &t.created_at, &t.outcome) {
            (Some(app), Some(flow), Some(created), Some(outcome)) => {
                format!("{app}|{flow}|{}|{created}|{outcome}", customer.unwrap_or(""))
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

/// The documented fields of a Raaft event. Enums are open strings: Raaft
/// publishes no closed list of step types or offer types.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RaaftEvent {
    #[serde(default, deserialize_with = "lenient")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub created_at: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub customer: Option<Customer>,
    #[serde(default, deserialize_with = "lenient")]
    pub feedback: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub flow_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub motivator: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub outcome: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub path: Option<Vec<Value>>,
    #[serde(default, deserialize_with = "lenient")]
    pub response_accepted: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "lenient")]
    pub subscription: Option<Subscription>,
    /// Fields Raaft does not document (yet).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Customer {
    #[serde(default, deserialize_with = "lenient")]
    pub email: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub photo: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Subscription {
    #[serde(default, deserialize_with = "lenient")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub currency: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub created_at: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub plan: Option<Plan>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Plan {
    #[serde(default, deserialize_with = "lenient")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub amount: Option<f64>,
    #[serde(default, deserialize_with = "lenient")]
    pub currency: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub interval: Option<String>,
}

/// Reads a field as `T`, or as absent when it has another type.
fn lenient<'de, D, T>(de: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = Value::deserialize(de)?;
    Ok(serde_json::from_value(value).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_example_is_typed() {
        let event = Event::parse(include_bytes!("../config/events/saved-switch-plan.json")).unwrap();
        assert_eq!(event.outcome(), "saved");
        assert_eq!(event.typed.customer.unwrap().name.as_deref(), Some("Customer Name"));
        assert_eq!(event.typed.subscription.unwrap().plan.unwrap().amount, Some(10.0));
        assert_eq!(event.typed.response_accepted.unwrap()["type"], "change-plans");
    }

    #[test]
    fn unknown_fields_are_kept_and_odd_types_read_as_absent() {
        let event = Event::parse(br#"{"outcome": 5, "customer": "bob", "newField": {"x": 1}}"#).unwrap();
        assert_eq!(event.typed.outcome, None);
        assert!(event.typed.customer.is_none());
        assert_eq!(event.typed.extra["newField"]["x"], 1);
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
