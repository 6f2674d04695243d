//! Destinations: one file per channel, each building its payload from the
//! rendered templates (wrapping text, enforcing the platform's limits) and
//! classifying the platform's answer, with each platform's limits as one
//! table ([`slack::LIMITS`], [`discord::LIMITS`]) and its markup shown as
//! HTML ([`markup`]). Outside this folder only the escaping of a
//! template's values knows a platform ([`crate::render`]).

mod console;
pub mod discord;
mod email;
mod http;
pub mod markup;
pub mod slack;
mod webhook;

use crate::config::{DestinationConfig, DestinationKind, RetryPolicy};
use crate::problems::{Problem, Problems};
use crate::render::{Escape, EventContext, RenderError, Template, TemplateFiles};
use crate::retry::Outcome;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

/// The HTTP client destinations share unless they have a `ca_file`.
pub fn http_client() -> reqwest::Client {
    http::client(None).expect("the HTTP client builds with static settings")
}

/// A message ready to send.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "message", rename_all = "lowercase")]
pub enum Payload {
    /// A JSON body (Slack, Discord, JSON webhooks).
    Json(Value),
    /// A text body (text webhooks).
    Text(String),
    Email(EmailPayload),
    /// Printed by a console destination.
    Console(String),
}

/// A rendered e-mail.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EmailPayload {
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}

impl Payload {
    /// The form a delivery keeps when its payload is rendered once (a
    /// digest): sent as it is on every attempt and replay.
    pub fn to_stored(&self) -> String {
        serde_json::to_string(self).expect("a payload serializes")
    }

    /// Reads what [`Payload::to_stored`] wrote, or the reason kept by
    /// [`Payload::stored_failure`].
    pub fn from_stored(stored: &str) -> Result<Payload, String> {
        let value: Value = serde_json::from_str(stored).map_err(|e| format!("stored payload cannot be read: {e}"))?;
        if let Some(reason) = value.get("failed").and_then(Value::as_str) {
            return Err(reason.to_owned());
        }
        serde_json::from_value(value).map_err(|e| format!("stored payload cannot be read: {e}"))
    }

    /// What a delivery keeps when its payload could not be rendered: each
    /// attempt fails with `reason`, so the delivery goes dead saying why.
    pub fn stored_failure(reason: &str) -> String {
        serde_json::json!({ "failed": reason }).to_string()
    }

    /// The payload as it is sent, for people: pretty JSON, or the text.
    pub fn display(&self) -> String {
        match self {
            Payload::Json(v) => serde_json::to_string_pretty(v).unwrap_or_default(),
            Payload::Text(t) | Payload::Console(t) => t.clone(),
            Payload::Email(e) => {
                let mut out = format!("Subject: {}\n\n{}", e.subject, e.text);
                if let Some(html) = &e.html {
                    out.push_str("\n\n--- text/html ---\n");
                    out.push_str(html);
                }
                out
            }
        }
    }
}

/// The result of one attempt, with what the receiver said.
#[derive(Debug, Clone)]
pub struct AttemptReport {
    pub outcome: Outcome,
    /// HTTP status or SMTP reply code.
    pub status: Option<u16>,
    /// The start of the receiver's answer, as the bytes it sent.
    pub response: Option<Vec<u8>>,
    pub latency: Duration,
    /// The receiver asked for a break (429, or no requests left): the whole
    /// destination waits this long.
    pub pause: Option<Duration>,
}

impl AttemptReport {
    fn new(outcome: Outcome, status: Option<u16>, response: Option<Vec<u8>>, started: Instant) -> Self {
        AttemptReport { outcome, status, response, latency: started.elapsed(), pause: None }
    }

    /// A report for a failure before anything was sent.
    pub fn failed(outcome: Outcome, started: Instant) -> Self {
        Self::new(outcome, None, None, started)
    }
}

/// The rendered templates of one destination for one event.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub body: String,
    pub json: bool,
    pub html: Option<String>,
    pub subject: Option<String>,
}

/// One place in a message that its platform limits, as a platform's
/// `limited` walk ([`slack::limited`], [`discord::limited`]) finds it:
/// what to call it, its size and the limit.
pub enum Limited<'a> {
    /// A text, in characters.
    Text { what: String, text: &'a mut String, max: usize },
    /// A list, in items.
    Items { what: String, items: &'a mut Vec<Value>, max: usize },
    /// A sum over several places, which the platform's own cutting keeps
    /// within the limit.
    Total { what: String, count: usize, max: usize },
}

/// A platform's walk of the places it limits in a message.
pub type LimitWalk = fn(&mut serde_json::Map<String, Value>, &mut dyn FnMut(Limited<'_>));

/// The walk of `kind`'s limits, for a platform that limits its messages.
pub fn limits_of(kind: DestinationKind) -> Option<LimitWalk> {
    match kind {
        DestinationKind::Slack => Some(slack::limited),
        DestinationKind::Discord => Some(discord::limited),
        _ => None,
    }
}

impl Limited<'_> {
    /// What the place is called, its size, and its limit.
    pub fn measure(&self) -> (&str, usize, usize) {
        match self {
            Limited::Text { what, text, max } => (what, text.chars().count(), *max),
            Limited::Items { what, items, max } => (what, items.len(), *max),
            Limited::Total { what, count, max } => (what, *count, *max),
        }
    }
}

enum Channel {
    Slack(slack::Slack),
    Discord(discord::Discord),
    Email(email::Email),
    Webhook(webhook::Webhook),
    Console(console::Console),
}

impl Channel {
    /// The channel of `cfg`'s kind, with its own client when it trusts a
    /// CA of its own (`ca_file`). `Err` names the key at fault.
    fn build(
        cfg: &DestinationConfig,
        retry: &RetryPolicy,
        http: &reqwest::Client,
    ) -> Result<Channel, (&'static str, String)> {
        let url = cfg.url.clone().unwrap_or_default();
        let ca = match &cfg.ca_file {
            Some(path) => {
                Some(std::fs::read(path).map_err(|e| ("ca_file", format!("cannot read \"{}\": {e}", path.display())))?)
            }
            None => None,
        };
        let http = match &ca {
            Some(pem) => http::client(Some(pem)).map_err(|e| {
                let path = cfg.ca_file.as_deref().unwrap_or(Path::new("")).display();
                ("ca_file", format!("cannot use \"{path}\": {e}"))
            })?,
            None => http.clone(),
        };
        let named = |(key, msg): (&'static str, String)| (key, format!("destination \"{}\": {msg}", cfg.name));
        match cfg.kind {
            DestinationKind::Slack => slack::Slack::new(&url, http).map(Channel::Slack),
            DestinationKind::Discord => discord::Discord::new(&url, cfg, http).map(Channel::Discord),
            DestinationKind::Email => {
                email::Email::new(&url, cfg, retry.attempt_timeout, ca.as_deref()).map(Channel::Email)
            }
            DestinationKind::Webhook => webhook::Webhook::new(&url, cfg, http).map(Channel::Webhook),
            DestinationKind::Console => Ok(Channel::Console(console::Console)),
        }
        .map_err(named)
    }
}

/// A configured destination: its templates and its channel.
pub struct Destination {
    pub name: String,
    pub kind: DestinationKind,
    body: Template,
    html: Option<Template>,
    subject: Option<Template>,
    channel: Channel,
    pub rate_limit: Option<crate::config::Rate>,
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Destination").field("name", &self.name).field("kind", &self.kind).finish()
    }
}

/// The escaping for values a template inserts, by channel and template type.
pub fn escape_for(kind: DestinationKind, json: bool) -> Escape {
    match (kind, json) {
        (DestinationKind::Slack, false) => Escape::SlackMrkdwn,
        (DestinationKind::Slack, true) => Escape::SlackMrkdwnJson,
        (DestinationKind::Discord, false) => Escape::DiscordMarkdown,
        (DestinationKind::Discord, true) => Escape::DiscordMarkdownJson,
        (_, true) => Escape::Json,
        (_, false) => Escape::None,
    }
}

impl Destination {
    /// Compiles the destination's templates and sets up its channel.
    pub fn build(
        cfg: &DestinationConfig,
        config_file: &Path,
        templates: &TemplateFiles,
        retry: &RetryPolicy,
        http: &reqwest::Client,
    ) -> Result<Destination, Problems> {
        let mut problems = Problems::default();
        let at = |key: &str, message: String| {
            Problem::new(config_file, message).at_line(cfg.line).with_key(format!("destinations.{}.{key}", cfg.name))
        };
        let kind = cfg.kind;
        let named = [Some(("template", &cfg.template)), cfg.html_template.as_ref().map(|t| ("html_template", t))];
        for (key, rel) in named.into_iter().flatten() {
            if !templates.exists(rel) {
                problems.push(at(key, format!("template \"{rel}\" not found in \"{}\"", templates.dir().display())));
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let body =
            Template::load(templates, &cfg.template, |json| escape_for(kind, json)).map_err(|p| problems.push(p)).ok();
        let html = cfg
            .html_template
            .as_deref()
            .and_then(|t| Template::load(templates, t, |_| Escape::Html).map_err(|p| problems.push(p)).ok());
        let subject = match (kind, &cfg.subject) {
            (DestinationKind::Email, subject) => {
                let source = subject.as_deref().unwrap_or(email::DEFAULT_SUBJECT);
                let key = format!("destinations.{}.subject", cfg.name);
                Template::inline(&key, source, Escape::None, config_file).map_err(|p| problems.push(p)).ok()
            }
            _ => None,
        };
        let channel = Channel::build(cfg, retry, http).map_err(|(key, msg)| problems.push(at(key, msg))).ok();
        match (body, channel) {
            (Some(body), Some(channel)) if problems.is_empty() => Ok(Destination {
                name: cfg.name.clone(),
                kind,
                body,
                html,
                subject,
                channel,
                rate_limit: cfg.rate_limit,
            }),
            _ => Err(problems),
        }
    }

    /// The template files this destination uses.
    pub fn templates(&self) -> impl Iterator<Item = &Template> {
        std::iter::once(&self.body).chain(self.html.as_ref()).chain(self.subject.as_ref())
    }

    /// Renders the templates for `event`. Pure.
    pub fn render_templates(&self, context: &EventContext) -> Result<Rendered, RenderError> {
        Ok(Rendered {
            body: self.body.render_in(context)?,
            json: self.body.json,
            html: self.html.as_ref().map(|t| t.render_in(context)).transpose()?,
            subject: self.subject.as_ref().map(|t| t.render_in(context)).transpose()?,
        })
    }

    /// The file of the template that makes the message body.
    pub fn body_template(&self) -> &str {
        &self.body.name
    }

    /// Compiles `source` as the body template `rel` with this destination's
    /// escaping (the console's playground).
    pub fn compile_body(&self, templates_dir: &Path, rel: &str, source: &str) -> Result<Template, Problem> {
        Template::from_source(templates_dir, rel, source, escape_for(self.kind, crate::render::is_json_template(rel)))
    }

    /// [`Destination::render_templates`] with `body` in place of the
    /// destination's own body template. Pure.
    pub fn render_with(&self, body: &Template, context: &EventContext) -> Result<Rendered, RenderError> {
        Ok(Rendered { body: body.render_in(context)?, json: body.json, ..self.render_templates(context)? })
    }

    /// Renders `event` into the payload this destination sends: templates,
    /// wrapping and platform limits. Pure.
    pub fn payload(&self, event: &Value) -> Result<Payload, RenderError> {
        self.payload_in(&EventContext::new(event.clone()))
    }

    /// [`Destination::payload`] for an event already made into a context.
    pub fn payload_in(&self, context: &EventContext) -> Result<Payload, RenderError> {
        let rendered = self.render_templates(context)?;
        self.wrap(rendered, &self.body.name)
    }

    /// Makes templates rendered elsewhere (a digest's, named `template`)
    /// into this destination's payload: wrapping and platform limits. Pure.
    pub fn wrap(&self, rendered: Rendered, template: &str) -> Result<Payload, RenderError> {
        let invalid = |reason: String| RenderError::new(template, reason);
        match &self.channel {
            Channel::Slack(_) => slack::payload(rendered).map_err(invalid),
            Channel::Discord(d) => d.payload(rendered).map_err(invalid),
            Channel::Email(_) => Ok(email::payload(rendered)),
            Channel::Webhook(_) => webhook::payload(rendered).map_err(invalid),
            Channel::Console(_) => Ok(console::payload(rendered)),
        }
    }

    /// A short notice from the relay itself (alerts), as this destination
    /// sends text. Pure.
    pub fn notice(&self, text: &str) -> Payload {
        let rendered = |body: String| Rendered { body, json: false, html: None, subject: None };
        match &self.channel {
            Channel::Slack(_) => {
                slack::payload(rendered(crate::render::slack_mrkdwn(text))).unwrap_or(Payload::Text(text.to_owned()))
            }
            Channel::Discord(d) => {
                d.payload(rendered(crate::render::discord_markdown(text))).unwrap_or(Payload::Text(text.to_owned()))
            }
            Channel::Email(_) => {
                let subject = text.lines().next().unwrap_or("raaft-relay notice").to_owned();
                email::payload(Rendered { subject: Some(subject), ..rendered(text.to_owned()) })
            }
            Channel::Webhook(_) => Payload::Json(serde_json::json!({ "text": text })),
            Channel::Console(_) => Payload::Console(text.to_owned()),
        }
    }

    /// Sends one payload, once, as the message `key` names. Never panics;
    /// every failure is an outcome.
    pub async fn send(&self, payload: &Payload, timeout: Duration, key: &MessageKey) -> AttemptReport {
        let started = Instant::now();
        match (&self.channel, payload) {
            (Channel::Slack(s), Payload::Json(body)) => s.send(body, timeout).await,
            (Channel::Discord(d), Payload::Json(body)) => d.send(body, timeout).await,
            (Channel::Email(e), Payload::Email(mail)) => e.send(mail, timeout).await,
            (Channel::Webhook(w), payload) => w.send(payload, timeout, key).await,
            (Channel::Console(c), Payload::Console(text)) => c.send(&self.name, text, timeout).await,
            _ => AttemptReport::new(
                Outcome::Permanent { reason: "payload does not fit the destination kind".into() },
                None,
                None,
                started,
            ),
        }
    }
}

/// What names one message on every attempt to send it: a delivery's
/// retries and replays carry the same key, so a receiver can drop a
/// message it has taken already.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageKey {
    /// The same for every attempt of one delivery (an event to one
    /// destination): the delivery's id.
    pub idempotency_key: String,
    /// The event's id in the relay (as the console and the CLI show it).
    pub event_id: String,
}

impl MessageKey {
    /// The key of a message sent outside the queue (a test, an alert):
    /// new each time.
    pub fn once(what: &str) -> MessageKey {
        let id = ulid::Ulid::new().to_string();
        MessageKey { idempotency_key: format!("{what}-{id}"), event_id: format!("{what}-{id}") }
    }
}

/// Text to send when a template rendered nothing: platforms reject empty
/// messages, and a blank notice beats a lost one.
fn empty_fallback(template: &str) -> String {
    format!("(template \"{template}\" rendered an empty message)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_follows_channel_and_template_type() {
        assert_eq!(escape_for(DestinationKind::Slack, false), Escape::SlackMrkdwn);
        assert_eq!(escape_for(DestinationKind::Slack, true), Escape::SlackMrkdwnJson);
        assert_eq!(escape_for(DestinationKind::Discord, false), Escape::DiscordMarkdown);
        assert_eq!(escape_for(DestinationKind::Discord, true), Escape::DiscordMarkdownJson);
        assert_eq!(escape_for(DestinationKind::Webhook, true), Escape::Json);
        assert_eq!(escape_for(DestinationKind::Email, false), Escape::None);
    }
}
