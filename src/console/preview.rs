//! Payloads shown the way their platform shows them: Slack's blocks and
//! mrkdwn, a Discord message with its embeds, an e-mail with its subject,
//! text and HTML. Built from the payload's values only, each escaped as
//! HTML text: the markup is the console's own (bold, links shown as text
//! with their address in a title, never followed; the platforms' markup
//! is read by [`crate::channels::markup`]). And the warnings a rendering
//! earns against the platform's limits.

use crate::channels::markup;
use crate::channels::{Payload, Rendered};
use crate::config::DestinationKind;
use maud::{html, Markup, PreEscaped};
use serde_json::{Map, Value};

/// `payload` as `kind`'s platform would show it.
pub fn payload(kind: Option<DestinationKind>, payload: &Payload) -> Markup {
    match (kind, payload) {
        (Some(DestinationKind::Slack), Payload::Json(v)) => slack_message(v),
        (Some(DestinationKind::Discord), Payload::Json(v)) => discord_message(v),
        (_, Payload::Email(mail)) => html! {
            div.preview.email {
                p.subject { (mail.subject) }
                pre.text { (mail.text) }
                @if let Some(body) = &mail.html {
                    // A sandboxed frame: no script, no same origin.
                    iframe sandbox="" title="HTML part" srcdoc=(body) {}
                }
            }
        },
        (_, other) => html! { div.preview.plain { pre { (other.display()) } } },
    }
}

fn text_of(v: &Value) -> &str {
    v.get("text").and_then(Value::as_str).unwrap_or("")
}

fn slack_message(v: &Value) -> Markup {
    let blocks = v.get("blocks").and_then(Value::as_array);
    html! {
        div.preview.slack {
            @match blocks {
                Some(blocks) if !blocks.is_empty() => {
                    @for block in blocks { (slack_block(block)) }
                }
                _ => div.block { (slack_text(text_of(v))) },
            }
        }
    }
}

fn slack_text(s: &str) -> Markup {
    PreEscaped(markup::slack_text(s))
}

fn discord_text(s: &str) -> Markup {
    PreEscaped(markup::discord_text(s))
}

fn slack_text_object(v: &Value) -> Markup {
    match v.get("type").and_then(Value::as_str) {
        Some("mrkdwn") => slack_text(text_of(v)),
        _ => html! { (text_of(v)) },
    }
}

fn slack_block(block: &Value) -> Markup {
    match block.get("type").and_then(Value::as_str).unwrap_or("") {
        "header" => html! { div.block.header { (text_of(&block["text"])) } },
        "divider" => html! { hr; },
        "section" => html! {
            div.block.section {
                @if let Some(t) = block.get("text") { div { (slack_text_object(t)) } }
                @if let Some(fields) = block.get("fields").and_then(Value::as_array) {
                    div.fields { @for f in fields { div { (slack_text_object(f)) } } }
                }
            }
        },
        "context" => html! {
            div.block.context {
                @for (i, e) in block.get("elements").and_then(Value::as_array).into_iter().flatten().enumerate() {
                    @if i > 0 { " · " }
                    @if e.get("type").and_then(Value::as_str) == Some("image") { "[image]" } @else { (slack_text_object(e)) }
                }
            }
        },
        _ => html! { pre.block { (serde_json::to_string_pretty(block).unwrap_or_default()) } },
    }
}

fn discord_message(v: &Value) -> Markup {
    let content = v.get("content").and_then(Value::as_str).unwrap_or("");
    html! {
        div.preview.discord {
            @if let Some(name) = v.get("username").and_then(Value::as_str) { p.author { strong { (name) } } }
            @if !content.is_empty() { div.content { (discord_text(content)) } }
            @for e in v.get("embeds").and_then(Value::as_array).into_iter().flatten() {
                div.embed {
                    @if let Some(a) = e.pointer("/author/name").and_then(Value::as_str) { div.footer { (a) } }
                    @if let Some(t) = e.get("title").and_then(Value::as_str) { div.embed-title { (discord_text(t)) } }
                    @if let Some(d) = e.get("description").and_then(Value::as_str) { div { (discord_text(d)) } }
                    @if let Some(fields) = e.get("fields").and_then(Value::as_array) {
                        div.embed-fields {
                            @for f in fields {
                                div {
                                    div.embed-field-name { (discord_text(f.get("name").and_then(Value::as_str).unwrap_or(""))) }
                                    div { (discord_text(f.get("value").and_then(Value::as_str).unwrap_or(""))) }
                                }
                            }
                        }
                    }
                    @if let Some(t) = e.pointer("/footer/text").and_then(Value::as_str) { div.footer { (t) } }
                }
            }
        }
    }
}

/// What the templates rendered that the platform would refuse or cut: the
/// relay cuts such text to fit when it sends, so the reader loses it. The
/// platform's own walk of its limits ([`crate::channels::limits_of`]) finds them.
pub fn warnings(kind: DestinationKind, rendered: &Rendered) -> Vec<String> {
    let Some(walk) = crate::channels::limits_of(kind) else { return Vec::new() };
    let mut message = match serde_json::from_str(&rendered.body) {
        Ok(Value::Object(map)) if rendered.json => map,
        _ if rendered.json => return Vec::new(),
        _ => {
            let key = if kind == DestinationKind::Slack { "text" } else { "content" };
            Map::from_iter([(key.to_owned(), Value::String(rendered.body.clone()))])
        }
    };
    let mut out = Vec::new();
    walk(&mut message, &mut |place| {
        let (what, n, max) = place.measure();
        if n > max {
            out.push(format!("{what} is {n} long, over the limit of {max}: the relay cuts it"));
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_warned_about() {
        let long = "x".repeat(3001);
        let body = serde_json::json!({"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": long}}]});
        let rendered = Rendered { body: body.to_string(), json: true, html: None, subject: None };
        let w = warnings(DestinationKind::Slack, &rendered);
        assert_eq!(w, vec!["block 1 (section) text is 3001 long, over the limit of 3000: the relay cuts it"]);
        let text = Rendered { body: "y".repeat(2001), json: false, html: None, subject: None };
        assert_eq!(warnings(DestinationKind::Discord, &text).len(), 1);
        assert!(warnings(DestinationKind::Discord, &Rendered { body: "ok".into(), ..text }).is_empty());
    }
}
