//! Slack incoming webhooks: `{"text": ...}` for text templates, the
//! template's own JSON (blocks) otherwise, cut to Slack's limits; answers
//! are 200 `ok` or a plain-text error code with a status.

use super::http::{exchange, parse_http_url, report};
use super::{empty_fallback, AttemptReport, Limited, Payload, Rendered};
use crate::text::truncate_escaped;
use serde_json::{Map, Value};
use std::time::{Duration, Instant};

/// What Slack limits in a message (Block Kit reference; top-level `text`
/// is truncated by Slack past its limit). The one table of them: the
/// cutting below and the console's warnings read it through [`limited`].
pub struct Limits {
    pub text: usize,
    pub blocks: usize,
    pub section_text: usize,
    pub fields: usize,
    pub field_text: usize,
    pub header_text: usize,
    pub context_elements: usize,
}

pub const LIMITS: Limits = Limits {
    text: 40_000,
    blocks: 50,
    section_text: 3000,
    fields: 10,
    field_text: 2000,
    header_text: 150,
    context_elements: 10,
};

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
        map.insert("text".into(), Value::String(truncate_escaped(&text, LIMITS.text)));
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

/// Cuts every text and list Slack limits, so long customer text never
/// makes a message fail, and makes sure the notification fallback `text`
/// exists.
pub fn enforce_limits(map: &mut Map<String, Value>) {
    limited(map, &mut |place| match place {
        Limited::Text { text, max, .. } => *text = truncate_escaped(text, max),
        Limited::Items { items, max, .. } => items.truncate(max),
        Limited::Total { .. } => {}
    });
    let has_text = map.get("text").and_then(Value::as_str).is_some_and(|t| !t.trim().is_empty());
    if !has_text {
        let fallback = fallback_text(map).unwrap_or_else(|| empty_fallback("slack"));
        map.insert("text".into(), Value::String(truncate_escaped(&fallback, LIMITS.text)));
    }
}

/// Visits every place of `message` that [`LIMITS`] bounds, lists before
/// their items.
pub fn limited(message: &mut Map<String, Value>, visit: &mut dyn FnMut(Limited<'_>)) {
    let l = &LIMITS;
    if let Some(Value::String(text)) = message.get_mut("text") {
        visit(Limited::Text { what: "the text".into(), text, max: l.text });
    }
    let Some(Value::Array(blocks)) = message.get_mut("blocks") else { return };
    visit(Limited::Items { what: "the number of blocks".into(), items: blocks, max: l.blocks });
    for (i, block) in blocks.iter_mut().enumerate() {
        let n = i + 1;
        let kind = block.get("type").and_then(Value::as_str).unwrap_or("").to_owned();
        match kind.as_str() {
            "section" => {
                text_of(block.get_mut("text"), format!("block {n} (section) text"), l.section_text, visit);
                if let Some(Value::Array(fields)) = block.get_mut("fields") {
                    visit(Limited::Items {
                        what: format!("block {n}'s number of fields"),
                        items: fields,
                        max: l.fields,
                    });
                    for (j, f) in fields.iter_mut().enumerate() {
                        text_of(Some(f), format!("block {n} field {}", j + 1), l.field_text, visit);
                    }
                }
            }
            "header" => text_of(block.get_mut("text"), format!("block {n} (header) text"), l.header_text, visit),
            "context" => {
                if let Some(Value::Array(elements)) = block.get_mut("elements") {
                    let what = format!("block {n}'s number of context elements");
                    visit(Limited::Items { what, items: elements, max: l.context_elements });
                    for (j, e) in elements.iter_mut().enumerate() {
                        text_of(Some(e), format!("block {n} context element {}", j + 1), l.section_text, visit);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The `text` of a text object.
fn text_of(object: Option<&mut Value>, what: String, max: usize, visit: &mut dyn FnMut(Limited<'_>)) {
    if let Some(Value::String(text)) = object.and_then(|o| o.get_mut("text")) {
        visit(Limited::Text { what, text, max });
    }
}

fn fallback_text(map: &Map<String, Value>) -> Option<String> {
    let blocks = map.get("blocks")?.as_array()?;
    blocks.iter().find_map(|b| {
        let t = b.get("text")?.get("text")?.as_str()?;
        (!t.trim().is_empty()).then(|| truncate_escaped(t, LIMITS.section_text))
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
        assert_eq!(count(&v["blocks"][0]["text"]["text"]), 150);
        assert_eq!(count(&v["blocks"][1]["text"]["text"]), 3000);
        assert_eq!(v["blocks"][1]["fields"].as_array().unwrap().len(), 10);
        assert_eq!(count(&v["blocks"][1]["fields"][0]["text"]), 2000);
        assert_eq!(v["blocks"][2]["elements"].as_array().unwrap().len(), 10);
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
        assert_eq!(v["blocks"].as_array().unwrap().len(), 50);
    }

    #[test]
    fn invalid_json_output_is_an_error() {
        let r = Rendered { body: "{\"text\": oops}".into(), json: true, html: None, subject: None };
        assert!(payload(r).unwrap_err().contains("not valid JSON"));
        let r = Rendered { body: "[1]".into(), json: true, html: None, subject: None };
        assert!(payload(r).is_err());
    }
}
