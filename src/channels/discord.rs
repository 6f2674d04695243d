//! Discord webhooks: `{"content": ...}` for text templates, the template's
//! own JSON (embeds) otherwise, cut to Discord's limits, always with
//! `allowed_mentions: {"parse": []}` so customer text pings nobody. Sent to
//! the versioned API, whose rate-limit values are in seconds.

use super::http::{classify as classify_answer, excerpt, exchange, parse_http_url, pause_for, Answer};
use super::{empty_fallback, AttemptReport, Limited, Payload, Rendered};
use crate::config::DestinationConfig;
use crate::retry::Outcome;
use crate::text::truncate_chars;
use serde_json::{json, Map, Value};
use std::time::{Duration, Instant};

/// What Discord limits in a message, in characters (code points) or
/// items (message and embed references). The one table of them: the
/// cutting below and the console's warnings read it through [`limited`].
pub struct Limits {
    pub content: usize,
    pub embeds: usize,
    pub title: usize,
    pub description: usize,
    pub fields: usize,
    pub field_name: usize,
    pub field_value: usize,
    pub footer: usize,
    pub author: usize,
    /// Across every embed of one message.
    pub embeds_total: usize,
}

pub const LIMITS: Limits = Limits {
    content: 2000,
    embeds: 10,
    title: 256,
    description: 4096,
    fields: 25,
    field_name: 256,
    field_value: 1024,
    footer: 2048,
    author: 256,
    embeds_total: 6000,
};

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

/// Cuts every text and list Discord limits and forbids mentions.
pub fn enforce_limits(map: &mut Map<String, Value>) {
    limited(map, &mut |place| match place {
        Limited::Text { text, max, .. } => *text = truncate_chars(text, max),
        Limited::Items { items, max, .. } => items.truncate(max),
        Limited::Total { .. } => {}
    });
    if let Some(Value::Array(embeds)) = map.get_mut("embeds") {
        fit_total(embeds);
    }
    let content_empty = map.get("content").and_then(Value::as_str).is_none_or(|c| c.trim().is_empty());
    let no_embeds = map.get("embeds").and_then(Value::as_array).is_none_or(Vec::is_empty);
    if content_empty && no_embeds {
        map.insert("content".into(), Value::String(empty_fallback("discord")));
    }
    map.insert("allowed_mentions".into(), json!({"parse": []}));
}

/// Visits every place of `message` that [`LIMITS`] bounds, lists before
/// their items, and last the embeds' text altogether.
pub fn limited(message: &mut Map<String, Value>, visit: &mut dyn FnMut(Limited<'_>)) {
    let l = &LIMITS;
    let text = |value: Option<&mut Value>, what: String, max: usize, visit: &mut dyn FnMut(Limited<'_>)| {
        if let Some(Value::String(text)) = value {
            visit(Limited::Text { what, text, max });
        }
    };
    text(message.get_mut("content"), "the content".into(), l.content, visit);
    let Some(Value::Array(embeds)) = message.get_mut("embeds") else { return };
    visit(Limited::Items { what: "the number of embeds".into(), items: embeds, max: l.embeds });
    for (i, embed) in embeds.iter_mut().enumerate() {
        let n = i + 1;
        text(embed.get_mut("title"), format!("embed {n} title"), l.title, visit);
        text(embed.get_mut("description"), format!("embed {n} description"), l.description, visit);
        text(embed.pointer_mut("/footer/text"), format!("embed {n} footer"), l.footer, visit);
        text(embed.pointer_mut("/author/name"), format!("embed {n} author"), l.author, visit);
        if let Some(Value::Array(fields)) = embed.get_mut("fields") {
            visit(Limited::Items { what: format!("embed {n}'s number of fields"), items: fields, max: l.fields });
            for (j, f) in fields.iter_mut().enumerate() {
                text(f.get_mut("name"), format!("embed {n} field {} name", j + 1), l.field_name, visit);
                text(f.get_mut("value"), format!("embed {n} field {} value", j + 1), l.field_value, visit);
            }
        }
    }
    let count = embeds.iter().map(embed_chars).sum();
    visit(Limited::Total { what: "the embeds' text altogether".into(), count, max: l.embeds_total });
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
/// embeds together fit in [`Limits::embeds_total`].
fn fit_total(embeds: &mut [Value]) {
    let total = |embeds: &[Value]| embeds.iter().map(embed_chars).sum::<usize>();
    for i in (0..embeds.len()).rev() {
        let over = total(embeds).saturating_sub(LIMITS.embeds_total);
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
        while total(embeds) > LIMITS.embeds_total {
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
        assert_eq!(v["content"].as_str().unwrap().chars().count(), 2000);
        let embeds: Vec<Value> = (0..12)
            .map(|_| json!({"title": long, "description": long, "fields": [{"name": long, "value": long}]}))
            .collect();
        let v = render(&discord(), &json!({"embeds": embeds}).to_string(), true);
        let embeds = v["embeds"].as_array().unwrap();
        assert_eq!(embeds.len(), 10);
        assert_eq!(chars(embeds[0].get("title")), 256);
        let total: usize = embeds.iter().map(embed_chars).sum();
        assert!(total <= 6000, "{total}");
    }

    #[test]
    fn single_embed_keeps_its_long_description_up_to_the_limit() {
        let long = "a".repeat(5000);
        let v = render(&discord(), &json!({"embeds": [{"title": "t", "description": long}]}).to_string(), true);
        assert_eq!(chars(v["embeds"][0].get("description")), 4096);
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
