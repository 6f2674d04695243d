//! Discord webhooks: `{"content": ...}` for text templates, the template's
//! own JSON (embeds) otherwise, cut to Discord's limits, always with
//! `allowed_mentions: {"parse": []}` so customer text pings nobody. Sent to
//! the versioned API, whose rate-limit values are in seconds.

use super::http::{classify as classify_answer, excerpt, exchange, parse_http_url, pause_for, Answer};
use super::{empty_fallback, AttemptReport, Payload, Rendered};
use crate::config::DestinationConfig;
use crate::retry::Outcome;
use crate::text::truncate_chars;
use serde_json::{json, Map, Value};
use std::time::{Duration, Instant};

pub const CONTENT_MAX: usize = 2000;
pub const EMBEDS_MAX: usize = 10;
pub const TITLE_MAX: usize = 256;
pub const DESCRIPTION_MAX: usize = 4096;
pub const FIELDS_MAX: usize = 25;
pub const FIELD_NAME_MAX: usize = 256;
pub const FIELD_VALUE_MAX: usize = 1024;
pub const FOOTER_MAX: usize = 2048;
pub const AUTHOR_MAX: usize = 256;
/// Across every embed of one message.
pub const EMBEDS_TOTAL_MAX: usize = 6000;

pub struct Discord {
    url: url::Url,
    username: Option<String>,
    avatar_url: Option<String>,
    http: reqwest::Client,
}

/// The URL users copy (`/api/webhooks/...`) selects an old API version
/// that reports rate limits in milliseconds; send to `/api/v10/...`, and
/// ask Discord to confirm the message was saved (`wait=true`).
pub fn versioned_url(url: &url::Url) -> url::Url {
    let mut url = url.clone();
    if let Some(rest) = url.path().strip_prefix("/api/webhooks/") {
        let path = format!("/api/v10/webhooks/{rest}");
        url.set_path(&path);
    }
    if !url.query_pairs().any(|(k, _)| k == "wait") {
        url.query_pairs_mut().append_pair("wait", "true");
    }
    url
}

impl Discord {
    pub fn new(url: &str, cfg: &DestinationConfig, http: reqwest::Client) -> Result<Self, (&'static str, String)> {
        let url = versioned_url(&parse_http_url(url)?);
        Ok(Discord { url, username: cfg.username.clone(), avatar_url: cfg.avatar_url.clone(), http })
    }

    pub fn payload(&self, rendered: Rendered) -> Result<Payload, String> {
        let mut map = if rendered.json {
            match serde_json::from_str(&rendered.body) {
                Ok(Value::Object(map)) => map,
                Ok(_) => return Err("rendered payload must be a JSON object".into()),
                Err(e) => return Err(format!("rendered payload is not valid JSON: {e}")),
            }
        } else {
            let mut map = Map::new();
            map.insert("content".into(), Value::String(rendered.body));
            map
        };
        if let Some(name) = &self.username {
            map.entry("username").or_insert_with(|| Value::String(name.clone()));
        }
        if let Some(avatar) = &self.avatar_url {
            map.entry("avatar_url").or_insert_with(|| Value::String(avatar.clone()));
        }
        enforce_limits(&mut map);
        Ok(Payload::Json(Value::Object(map)))
    }

    pub async fn send(&self, body: &Value, timeout: Duration) -> AttemptReport {
        let started = Instant::now();
        let request = self.http.post(self.url.clone()).json(body);
        match exchange(request, timeout).await {
            Ok(answer) => {
                let outcome = classify(&answer);
                let after = match &outcome {
                    Outcome::Retry { after, .. } => *after,
                    _ => None,
                };
                let mut report = AttemptReport::new(outcome, Some(answer.status), excerpt(&answer.body), started);
                report.pause = pause_for(&answer, after);
                report
            }
            Err(outcome) => AttemptReport::new(outcome, None, None, started),
        }
    }
}

/// Discord's 429 carries `retry_after` (float seconds) in its JSON body,
/// more precise than the `Retry-After` header.
fn classify(answer: &Answer) -> Outcome {
    let body_after = (answer.status == 429)
        .then(|| serde_json::from_slice::<Value>(&answer.body).ok())
        .flatten()
        .and_then(|v| v.get("retry_after").and_then(Value::as_f64))
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(86_400.0)));
    classify_answer(answer, body_after.or(answer.retry_after))
}

fn cut(value: Option<&mut Value>, max: usize) {
    if let Some(Value::String(s)) = value {
        *s = truncate_chars(s, max);
    }
}

fn chars(v: Option<&Value>) -> usize {
    v.and_then(Value::as_str).map_or(0, |s| s.chars().count())
}

/// Cuts every text Discord limits and forbids mentions.
pub fn enforce_limits(map: &mut Map<String, Value>) {
    cut(map.get_mut("content"), CONTENT_MAX);
    if let Some(Value::Array(embeds)) = map.get_mut("embeds") {
        embeds.truncate(EMBEDS_MAX);
        for embed in embeds.iter_mut() {
            cut(embed.get_mut("title"), TITLE_MAX);
            cut(embed.get_mut("description"), DESCRIPTION_MAX);
            cut(embed.get_mut("footer").and_then(|f| f.get_mut("text")), FOOTER_MAX);
            cut(embed.get_mut("author").and_then(|a| a.get_mut("name")), AUTHOR_MAX);
            if let Some(Value::Array(fields)) = embed.get_mut("fields") {
                fields.truncate(FIELDS_MAX);
                for f in fields {
                    cut(f.get_mut("name"), FIELD_NAME_MAX);
                    cut(f.get_mut("value"), FIELD_VALUE_MAX);
                }
            }
        }
        fit_total(embeds);
    }
    let content_empty = map.get("content").and_then(Value::as_str).is_none_or(|c| c.trim().is_empty());
    let no_embeds = map.get("embeds").and_then(Value::as_array).is_none_or(Vec::is_empty);
    if content_empty && no_embeds {
        map.insert("content".into(), Value::String(empty_fallback("discord")));
    }
    map.insert("allowed_mentions".into(), json!({"parse": []}));
}

fn embed_chars(e: &Value) -> usize {
    let fields: usize = e
        .get("fields")
        .and_then(Value::as_array)
        .map_or(0, |fs| fs.iter().map(|f| chars(f.get("name")) + chars(f.get("value"))).sum());
    chars(e.get("title"))
        + chars(e.get("description"))
        + chars(e.get("footer").and_then(|f| f.get("text")))
        + chars(e.get("author").and_then(|a| a.get("name")))
        + fields
}

/// Shrinks descriptions, last embed first, then drops fields, until all
/// embeds together fit in [`EMBEDS_TOTAL_MAX`].
fn fit_total(embeds: &mut [Value]) {
    let total = |embeds: &[Value]| embeds.iter().map(embed_chars).sum::<usize>();
    for i in (0..embeds.len()).rev() {
        let over = total(embeds).saturating_sub(EMBEDS_TOTAL_MAX);
        if over == 0 {
            return;
        }
        let len = chars(embeds[i].get("description"));
        if len > 0 {
            let keep = len.saturating_sub(over + 1);
            cut(embeds[i].get_mut("description"), keep.max(1));
        }
    }
    for i in (0..embeds.len()).rev() {
        while total(embeds) > EMBEDS_TOTAL_MAX {
            let Some(Value::Array(fields)) = embeds[i].get_mut("fields") else { break };
            if fields.pop().is_none() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn discord() -> Discord {
        let cfg: DestinationConfig = DestinationConfig {
            name: "wins".into(),
            kind: crate::config::DestinationKind::Discord,
            url: None,
            template: "x.hbs".into(),
            html_template: None,
            subject: None,
            from: None,
            to: vec![],
            username: Some("Raaft".into()),
            avatar_url: None,
            headers: Default::default(),
            rate_limit: None,
            ca_file: None,
            line: None,
        };
        Discord::new("https://discord.com/api/webhooks/1/tok", &cfg, reqwest::Client::new()).unwrap()
    }

    fn render(d: &Discord, body: &str, json: bool) -> Value {
        let Payload::Json(v) = d.payload(Rendered { body: body.into(), json, html: None, subject: None }).unwrap()
        else {
            panic!()
        };
        v
    }

    #[test]
    fn urls_gain_the_api_version() {
        let u = |s: &str| versioned_url(&url::Url::parse(s).unwrap()).to_string();
        assert_eq!(u("https://discord.com/api/webhooks/1/tok"), "https://discord.com/api/v10/webhooks/1/tok?wait=true");
        assert_eq!(
            u("https://discord.com/api/v10/webhooks/1/tok"),
            "https://discord.com/api/v10/webhooks/1/tok?wait=true"
        );
        assert_eq!(
            u("https://discord.com/api/webhooks/1/tok?thread_id=5"),
            "https://discord.com/api/v10/webhooks/1/tok?thread_id=5&wait=true"
        );
    }

    #[test]
    fn text_is_wrapped_with_mentions_disabled() {
        let v = render(&discord(), "@everyone look", false);
        assert_eq!(v["content"], "@everyone look");
        assert_eq!(v["allowed_mentions"], json!({"parse": []}));
        assert_eq!(v["username"], "Raaft");
        let v = render(&discord(), r#"{"content": "x", "allowed_mentions": {"parse": ["everyone"]}}"#, true);
        assert_eq!(v["allowed_mentions"], json!({"parse": []}));
    }

    #[test]
    fn limits_are_enforced_in_characters() {
        let long = "ü".repeat(20_000);
        let v = render(&discord(), &long, false);
        assert_eq!(v["content"].as_str().unwrap().chars().count(), CONTENT_MAX);
        let embeds: Vec<Value> = (0..12)
            .map(|_| json!({"title": long, "description": long, "fields": [{"name": long, "value": long}]}))
            .collect();
        let v = render(&discord(), &json!({"embeds": embeds}).to_string(), true);
        let embeds = v["embeds"].as_array().unwrap();
        assert_eq!(embeds.len(), EMBEDS_MAX);
        assert_eq!(chars(embeds[0].get("title")), TITLE_MAX);
        let total: usize = embeds.iter().map(embed_chars).sum();
        assert!(total <= EMBEDS_TOTAL_MAX, "{total}");
    }

    #[test]
    fn single_embed_keeps_its_long_description_up_to_the_limit() {
        let long = "a".repeat(5000);
        let v = render(&discord(), &json!({"embeds": [{"title": "t", "description": long}]}).to_string(), true);
        assert_eq!(chars(v["embeds"][0].get("description")), DESCRIPTION_MAX);
    }

    #[test]
    fn empty_messages_get_a_fallback() {
        let v = render(&discord(), "", false);
        assert!(v["content"].as_str().unwrap().contains("empty message"));
    }

    #[test]
    fn rate_limit_body_wins_over_the_header() {
        let a = Answer {
            status: 429,
            retry_after: Some(Duration::from_secs(9)),
            exhausted_for: None,
            location: None,
            body: r#"{"message":"You are being rate limited.","retry_after":0.25,"global":false}"#.into(),
        };
        assert_eq!(
            classify(&a),
            Outcome::Retry { after: Some(Duration::from_millis(250)), reason: format!("HTTP 429: {}", a.text()) }
        );
        let a = Answer {
            status: 404,
            retry_after: None,
            exhausted_for: None,
            location: None,
            body: r#"{"message": "Unknown Webhook", "code": 10015}"#.into(),
        };
        assert!(matches!(classify(&a), Outcome::Permanent { .. }));
        let a =
            Answer { status: 204, retry_after: None, exhausted_for: None, location: None, body: bytes::Bytes::new() };
        assert_eq!(classify(&a), Outcome::Delivered);
    }
}
