//! Generic webhooks: the template's output is the body (JSON for
//! `.json.hbs` templates, text otherwise), with configured extra headers.

use super::http::{exchange, parse_http_url, report};
use super::{AttemptReport, MessageKey, Payload, Rendered};
use crate::config::DestinationConfig;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use std::time::{Duration, Instant};

/// The header a receiver drops a repeated delivery by (the IETF draft's
/// name, as Stripe and others use it).
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The header naming the event in the relay.
pub const EVENT_ID: &str = "x-raaft-relay-event-id";

pub struct Webhook {
    url: url::Url,
    headers: HeaderMap,
    http: reqwest::Client,
}

impl Webhook {
    pub fn new(url: &str, cfg: &DestinationConfig, http: reqwest::Client) -> Result<Self, (&'static str, String)> {
        let url = parse_http_url(url)?;
        let mut headers = HeaderMap::new();
        for (name, value) in &cfg.headers {
            let n = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| ("headers", format!("invalid header name \"{name}\"")))?;
            let v = HeaderValue::from_str(value)
                .map_err(|_| ("headers", format!("invalid value for header \"{name}\"")))?;
            headers.insert(n, v);
        }
        Ok(Webhook { url, headers, http })
    }

    /// Posts the payload with `Idempotency-Key` (the same on every retry
    /// and replay of one delivery) and `X-Raaft-Relay-Event-Id`.
    pub async fn send(&self, payload: &Payload, timeout: Duration, key: &MessageKey) -> AttemptReport {
        let started = Instant::now();
        let (body, content_type) = match payload {
            Payload::Json(v) => (v.to_string(), "application/json"),
            Payload::Text(t) => (t.clone(), "text/plain; charset=utf-8"),
            other => (other.display(), "text/plain; charset=utf-8"),
        };
        let request = self
            .http
            .post(self.url.clone())
            .header(CONTENT_TYPE, content_type)
            .headers(self.headers.clone())
            .header(IDEMPOTENCY_KEY, &key.idempotency_key)
            .header(EVENT_ID, &key.event_id)
            .body(body);
        report(exchange(request, timeout).await, started)
    }
}

/// Builds the webhook body from rendered templates. Pure.
pub fn payload(rendered: Rendered) -> Result<Payload, String> {
    if rendered.json {
        serde_json::from_str(&rendered.body)
            .map(Payload::Json)
            .map_err(|e| format!("rendered payload is not valid JSON: {e}"))
    } else {
        Ok(Payload::Text(rendered.body))
    }
}
