//! Slack incoming webhooks: `{"text": ...}` for text templates, the
//! template's own JSON (blocks) otherwise, cut to Slack's limits; answers
//! are 200 `ok` or a plain-text error code with a status.

use super::http::{exchange, parse_http_url, report};
use super::{empty_fallback, AttemptReport, Payload, Rendered};
use crate::text::truncate_escaped;
use serde_json::{Map, Value};
use std::time::{Duration, Instant};

/// Slack truncates top-level `text` past this.
pub const TEXT_MAX: usize = 40_000;
/// Section `text`.
pub const SECTION_TEXT_MAX: usize = 3000;
/// Each section field.
pub const FIELD_TEXT_MAX: usize = 2000;
pub const FIELDS_MAX: usize = 10;
/// `header` block text.
pub const HEADER_TEXT_MAX: usize = 150;
pub const BLOCKS_MAX: usize = 50;
pub const CONTEXT_ELEMENTS_MAX: usize = 10;

pub struct Slack {
    url: url::Url,
    http: reqwest::Client,
}

impl Slack {
    pub fn new(url: &str, http: reqwest::Client) -> Result<Self, (&'static str, String)> {
        Ok(Slack { url: parse_http_url(url)?, http })
    }

    pub async fn send(&self, body: &Value, timeout: Duration) -> AttemptReport {
        let started = Instant::now();
        let request = self.http.post(self.url.clone()).json(body);
        report(exchange(request, timeout).await, started)
    }
}

/// Builds the Slack payload from rendered templates.
pub fn payload(rendered: Rendered) -> Result<Payload, String> {
    if !rendered.json {
        let text = if rendered.body.trim().is_empty() { empty_fallback("slack") } else { rendered.body };
        let mut map = Map::new();
        map.insert("text".into(), Value::String(truncate_escaped(&text, TEXT_MAX)));
        return Ok(Payload::Json(Value::Object(map)));
    }
    let mut value: Value =
        serde_json::from_str(&rendered.body).map_err(|e| format!("rendered payload is not valid JSON: {e}"))?;
    let Value::Object(map) = &mut value else {
        return Err("rendered payload must be a JSON object".into());
    };
    enforce_limits(map);
    Ok(Payload::Json(value))
}

/// Cuts every text Slack limits, so long customer text never makes a
/// message fail, and makes sure the notification fallback `text` exists.
pub fn enforce_limits(map: &mut Map<String, Value>) {
    if let Some(Value::Array(blocks)) = map.get_mut("blocks") {
        blocks.truncate(BLOCKS_MAX);
        for block in blocks.iter_mut() {
            limit_block(block);
        }
    }
    let has_text = map.get("text").and_then(Value::as_str).is_some_and(|t| !t.trim().is_empty());
    if !has_text {
        let fallback = fallback_text(map).unwrap_or_else(|| empty_fallback("slack"));
        map.insert("text".into(), Value::String(fallback));
    }
    if let Some(Value::String(text)) = map.get_mut("text") {
        *text = truncate_escaped(text, TEXT_MAX);
    }
}

fn limit_text_object(obj: Option<&mut Value>, max: usize) {
    if let Some(Value::String(t)) = obj.and_then(|o| o.get_mut("text")) {
        *t = truncate_escaped(t, max);
    }
}

fn limit_block(block: &mut Value) {
    let kind = block.get("type").and_then(Value::as_str).unwrap_or("").to_owned();
    match kind.as_str() {
        "section" => {
            limit_text_object(block.get_mut("text"), SECTION_TEXT_MAX);
            if let Some(Value::Array(fields)) = block.get_mut("fields") {
                fields.truncate(FIELDS_MAX);
                for f in fields {
                    limit_text_object(Some(f), FIELD_TEXT_MAX);
                }
            }
        }
        "header" => limit_text_object(block.get_mut("text"), HEADER_TEXT_MAX),
        "context" => {
            if let Some(Value::Array(elements)) = block.get_mut("elements") {
                elements.truncate(CONTEXT_ELEMENTS_MAX);
                for e in elements {
                    limit_text_object(Some(e), SECTION_TEXT_MAX);
                }
            }
        }
        _ => {}
    }
}

fn fallback_text(map: &Map<String, Value>) -> Option<String> {
    let blocks = map.get("blocks")?.as_array()?;
    blocks.iter().find_map(|b| {
        let t = b.get("text")?.get("text")?.as_str()?;
        (!t.trim().is_empty()).then(|| truncate_escaped(t, SECTION_TEXT_MAX))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(body: &str) -> Rendered {
        Rendered { body: body.into(), json: false, html: None, subject: None }
    }

    fn json_body(v: Value) -> Rendered {
        Rendered { body: v.to_string(), json: true, html: None, subject: None }
    }

    #[test]
    fn text_is_wrapped() {
        assert_eq!(payload(text("hello")).unwrap(), Payload::Json(json!({"text": "hello"})));
        let Payload::Json(v) = payload(text("  ")).unwrap() else { panic!() };
        assert!(v["text"].as_str().unwrap().contains("empty message"));
    }

    #[test]
    fn long_block_text_is_cut_to_the_limits() {
        let long = "é".repeat(20_000);
        let body = json!({
            "text": long,
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": long}},
                {"type": "section", "text": {"type": "mrkdwn", "text": long},
                 "fields": (0..12).map(|_| json!({"type": "mrkdwn", "text": long})).collect::<Vec<_>>()},
                {"type": "context", "elements": (0..12).map(|_| json!({"type": "mrkdwn", "text": long})).collect::<Vec<_>>()}
            ]
        });
        let Payload::Json(v) = payload(json_body(body)).unwrap() else { panic!() };
        let count = |v: &Value| v.as_str().unwrap().chars().count();
        assert_eq!(count(&v["blocks"][0]["text"]["text"]), HEADER_TEXT_MAX);
        assert_eq!(count(&v["blocks"][1]["text"]["text"]), SECTION_TEXT_MAX);
        assert_eq!(v["blocks"][1]["fields"].as_array().unwrap().len(), FIELDS_MAX);
        assert_eq!(count(&v["blocks"][1]["fields"][0]["text"]), FIELD_TEXT_MAX);
        assert_eq!(v["blocks"][2]["elements"].as_array().unwrap().len(), CONTEXT_ELEMENTS_MAX);
        assert_eq!(count(&v["text"]), 20_000);
        assert!(v["blocks"][1]["text"]["text"].as_str().unwrap().ends_with('…'));
    }

    #[test]
    fn blocks_without_text_get_a_fallback() {
        let body = json!({"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*Ana* canceled"}}]});
        let Payload::Json(v) = payload(json_body(body)).unwrap() else { panic!() };
        assert_eq!(v["text"], "*Ana* canceled");
        let many: Vec<Value> = (0..60).map(|_| json!({"type": "divider"})).collect();
        let Payload::Json(v) = payload(json_body(json!({"text": "x", "blocks": many}))).unwrap() else { panic!() };
        assert_eq!(v["blocks"].as_array().unwrap().len(), BLOCKS_MAX);
    }

    #[test]
    fn invalid_json_output_is_an_error() {
        let r = Rendered { body: "{\"text\": oops}".into(), json: true, html: None, subject: None };
        assert!(payload(r).unwrap_err().contains("not valid JSON"));
        let r = Rendered { body: "[1]".into(), json: true, html: None, subject: None };
        assert!(payload(r).is_err());
    }
}
