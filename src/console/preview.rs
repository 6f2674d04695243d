//! Payloads shown the way their platform shows them: Slack's blocks and
//! mrkdwn, a Discord message with its embeds, an e-mail with its subject,
//! text and HTML. Built from the payload's values only, each escaped as
//! HTML text: the markup is the console's own (bold, links shown as text
//! with their address in a title, never followed). And the warnings a
//! rendering earns against the platform's limits.

use crate::channels::{discord, slack, Payload, Rendered};
use crate::config::DestinationKind;
use maud::{html, Markup, PreEscaped};
use serde_json::Value;

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

/// HTML text: `&`, `<`, `>`, `"` and `'` as entities.
fn escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// Slack mrkdwn: `<url|label>` links and mentions, `*bold*`, `_italic_`,
/// `~strike~`, `` `code` ``; `&amp;`, `&lt;` and `&gt;` are Slack's own
/// escapes of the characters themselves.
pub fn slack_text(s: &str) -> Markup {
    let mut out = String::new();
    for (i, line) in s.split('\n').enumerate() {
        if i > 0 {
            out.push_str("<br>");
        }
        let mut rest = line;
        while let Some(open) = rest.find('<') {
            let Some(close) = rest[open..].find('>') else { break };
            inline(&slack_unescape(&rest[..open]), SLACK_MARKS, false, &mut out);
            let inside = &rest[open + 1..open + close];
            let (target, label) = inside.split_once('|').unwrap_or((inside, inside));
            out.push_str("<span class=\"link\" title=\"");
            escape(&slack_unescape(target), &mut out);
            out.push_str("\">");
            escape(&slack_unescape(label), &mut out);
            out.push_str("</span>");
            rest = &rest[open + close + 1..];
        }
        inline(&slack_unescape(rest), SLACK_MARKS, false, &mut out);
    }
    PreEscaped(out)
}

fn slack_unescape(s: &str) -> String {
    s.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

/// Discord markdown: `**bold**`, `*italic*`, `__underline__`, `_italic_`,
/// `~~strike~~`, `` `code` ``, and backslash escapes.
pub fn discord_text(s: &str) -> Markup {
    let mut out = String::new();
    for (i, line) in s.split('\n').enumerate() {
        if i > 0 {
            out.push_str("<br>");
        }
        inline(line, DISCORD_MARKS, true, &mut out);
    }
    PreEscaped(out)
}

const SLACK_MARKS: &[(&str, &str)] = &[("`", "code"), ("*", "strong"), ("_", "em"), ("~", "del")];
const DISCORD_MARKS: &[(&str, &str)] =
    &[("`", "code"), ("**", "strong"), ("__", "u"), ("~~", "del"), ("*", "em"), ("_", "em")];

/// Writes `text` with its paired marks as tags (the longest mark first,
/// code spans verbatim), every character of it escaped.
fn inline(text: &str, marks: &[(&str, &str)], backslashes: bool, out: &mut String) {
    let mut i = 0;
    let mut plain = String::new();
    while i < text.len() {
        let rest = &text[i..];
        if backslashes && rest.starts_with('\\') {
            if let Some(c) = rest[1..].chars().next().filter(|c| c.is_ascii_punctuation()) {
                plain.push(c);
                i += 1 + c.len_utf8();
                continue;
            }
        }
        let found = marks.iter().find_map(|(mark, tag)| {
            let after = rest.strip_prefix(mark)?;
            let end = after.find(mark)?;
            (end > 0 && !after.starts_with(' ')).then_some((mark.len(), end, *tag))
        });
        if let Some((len, end, tag)) = found {
            escape(&plain, out);
            plain.clear();
            let inner = &rest[len..len + end];
            out.push_str(&format!("<{tag}>"));
            if tag == "code" {
                escape(inner, out);
            } else {
                inline(inner, marks, backslashes, out);
            }
            out.push_str(&format!("</{tag}>"));
            i += len + end + len;
            continue;
        }
        let c = rest.chars().next().expect("not at the end");
        plain.push(c);
        i += c.len_utf8();
    }
    escape(&plain, out);
}

fn chars(v: Option<&Value>) -> usize {
    v.and_then(Value::as_str).map(|s| s.chars().count()).unwrap_or(0)
}

/// What the templates rendered that the platform would refuse or cut: the
/// relay cuts such text to fit when it sends, so the reader loses it.
pub fn warnings(kind: DestinationKind, rendered: &Rendered) -> Vec<String> {
    let mut out = Vec::new();
    let mut over = |what: String, n: usize, max: usize| {
        if n > max {
            out.push(format!("{what} is {n} long, over the limit of {max}: the relay cuts it"));
        }
    };
    let json: Option<Value> = if rendered.json { serde_json::from_str(&rendered.body).ok() } else { None };
    match (kind, json) {
        (DestinationKind::Slack, None) => over("the text".into(), rendered.body.chars().count(), slack::TEXT_MAX),
        (DestinationKind::Slack, Some(v)) => {
            over("the text".into(), chars(v.get("text")), slack::TEXT_MAX);
            let blocks = v.get("blocks").and_then(Value::as_array).cloned().unwrap_or_default();
            over("the number of blocks".into(), blocks.len(), slack::BLOCKS_MAX);
            for (i, b) in blocks.iter().enumerate() {
                let n = i + 1;
                match b.get("type").and_then(Value::as_str).unwrap_or("") {
                    "header" => {
                        over(format!("block {n} (header) text"), chars(b.pointer("/text/text")), slack::HEADER_TEXT_MAX)
                    }
                    "section" => {
                        over(
                            format!("block {n} (section) text"),
                            chars(b.pointer("/text/text")),
                            slack::SECTION_TEXT_MAX,
                        );
                        let fields = b.get("fields").and_then(Value::as_array).cloned().unwrap_or_default();
                        over(format!("block {n}'s number of fields"), fields.len(), slack::FIELDS_MAX);
                        for (j, f) in fields.iter().enumerate() {
                            over(format!("block {n} field {}", j + 1), chars(f.get("text")), slack::FIELD_TEXT_MAX);
                        }
                    }
                    "context" => over(
                        format!("block {n}'s number of context elements"),
                        b.get("elements").and_then(Value::as_array).map_or(0, Vec::len),
                        slack::CONTEXT_ELEMENTS_MAX,
                    ),
                    _ => {}
                }
            }
        }
        (DestinationKind::Discord, None) => {
            over("the content".into(), rendered.body.chars().count(), discord::CONTENT_MAX)
        }
        (DestinationKind::Discord, Some(v)) => {
            over("the content".into(), chars(v.get("content")), discord::CONTENT_MAX);
            let embeds = v.get("embeds").and_then(Value::as_array).cloned().unwrap_or_default();
            over("the number of embeds".into(), embeds.len(), discord::EMBEDS_MAX);
            let mut total = 0;
            for (i, e) in embeds.iter().enumerate() {
                let n = i + 1;
                let title = chars(e.get("title"));
                let description = chars(e.get("description"));
                let footer = chars(e.pointer("/footer/text"));
                let author = chars(e.pointer("/author/name"));
                over(format!("embed {n} title"), title, discord::TITLE_MAX);
                over(format!("embed {n} description"), description, discord::DESCRIPTION_MAX);
                over(format!("embed {n} footer"), footer, discord::FOOTER_MAX);
                over(format!("embed {n} author"), author, discord::AUTHOR_MAX);
                total += title + description + footer + author;
                let fields = e.get("fields").and_then(Value::as_array).cloned().unwrap_or_default();
                over(format!("embed {n}'s number of fields"), fields.len(), discord::FIELDS_MAX);
                for (j, f) in fields.iter().enumerate() {
                    let (name, value) = (chars(f.get("name")), chars(f.get("value")));
                    over(format!("embed {n} field {} name", j + 1), name, discord::FIELD_NAME_MAX);
                    over(format!("embed {n} field {} value", j + 1), value, discord::FIELD_VALUE_MAX);
                    total += name + value;
                }
            }
            over("the embeds' text altogether".into(), total, discord::EMBEDS_TOTAL_MAX);
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_markup_is_made_from_escaped_values() {
        let shown =
            slack_text("*Bold* &lt;script&gt;alert(1)&lt;/script&gt; <https://x.test/?a=1&amp;b=\"2\"|the \"link\">")
                .into_string();
        assert_eq!(
            shown,
            "<strong>Bold</strong> &lt;script&gt;alert(1)&lt;/script&gt; \
             <span class=\"link\" title=\"https://x.test/?a=1&amp;b=&quot;2&quot;\">the &quot;link&quot;</span>"
        );
        assert_eq!(slack_text("a\n_b_ `&lt;i&gt;`").into_string(), "a<br><em>b</em> <code>&lt;i&gt;</code>");
    }

    #[test]
    fn discord_markup_keeps_escaped_marks_as_text() {
        assert_eq!(
            discord_text("**Big** \\*not\\* <img src=x onerror=alert(1)>").into_string(),
            "<strong>Big</strong> *not* &lt;img src=x onerror=alert(1)&gt;"
        );
        assert_eq!(discord_text("~~old~~ __new__").into_string(), "<del>old</del> <u>new</u>");
    }

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
