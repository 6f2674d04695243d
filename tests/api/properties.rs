//! Properties over arbitrary events (proptest): routing and rendering are
//! total, every Slack and Discord payload stays within the platform limits
//! as the platforms count them (characters), truncation never splits a
//! character, and escaping is applied exactly once.

use proptest::prelude::*;
use raaft_relay::channels::Payload;
use raaft_relay::render::slack_mrkdwn;
use raaft_relay::text::{truncate_chars, truncate_escaped, ELLIPSIS};
use raaft_relay::LoadedConfig;
use serde_json::{Map, Value};
use std::sync::OnceLock;

/// Any JSON scalar: null, booleans, integers, finite floats, any text.
fn any_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f).map(Value::Number)),
        any_text().prop_map(Value::from),
    ]
}

/// Any JSON value, with strings of any Unicode (long ones included).
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = any_scalar();
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((any_text(), inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Any JSON value without arrays below it: the shapes documented fields
/// can take while templates still read them as written (Handlebars refuses
/// `a.b` when `a` is an array, see `odd_shapes_fail_cleanly`).
fn any_json_without_arrays() -> impl Strategy<Value = Value> {
    let leaf = any_scalar();
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop::collection::vec((any_text(), inner), 0..6)
            .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>()))
    })
}

/// Short and very long strings of arbitrary characters, markup included.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,40}",
        "[<>&*_~`|@!#:\\\\\"'{}\\[\\]\n]{0,40}",
        (".{1,4}", 500usize..9000).prop_map(|(s, n)| s.repeat(n / s.chars().count().max(1))),
    ]
}

/// The documented example with its fields replaced by arbitrary values
/// (any shape but arrays; `path` any list of such values), and arbitrary
/// extra fields: what templates and rules actually read.
fn any_event() -> impl Strategy<Value = Value> {
    event_with(
        any_json_without_arrays().boxed(),
        prop::collection::vec(any_json_without_arrays(), 0..8).prop_map(Value::Array).boxed(),
    )
}

/// The same with fields of any shape at all.
fn any_event_any_shape() -> impl Strategy<Value = Value> {
    event_with(any_json().boxed(), any_json().boxed())
}

fn event_with(values: BoxedStrategy<Value>, steps: BoxedStrategy<Value>) -> impl Strategy<Value = Value> {
    let base: Value = serde_json::from_str(include_str!("../../config/events/saved-switch-plan.json")).unwrap();
    let paths: &[&[&str]] = &[
        &["outcome"],
        &["feedback"],
        &["motivator"],
        &["customer"],
        &["customer", "name"],
        &["customer", "email"],
        &["subscription", "plan", "amount"],
        &["subscription", "plan", "currency"],
        &["subscription", "plan", "interval"],
        &["subscription", "plan", "name"],
        &["responseAccepted"],
        &["responseAccepted", "plan", "amount"],
        &["createdAt"],
    ];
    (prop::collection::vec(prop::option::of(values), paths.len()), prop::option::of(steps), any_json()).prop_map(
        move |(values, steps, extra)| {
            let mut event = base.clone();
            for (path, value) in paths.iter().zip(values) {
                if let Some(value) = value {
                    set(&mut event, path, value);
                }
            }
            if let Some(steps) = steps {
                event["path"] = steps;
            }
            event["extra"] = extra;
            event
        },
    )
}

fn set(target: &mut Value, path: &[&str], value: Value) {
    let mut at = target;
    for key in &path[..path.len() - 1] {
        if !at[*key].is_object() {
            at[*key] = Value::Object(Map::new());
        }
        at = &mut at[*key];
    }
    at[path[path.len() - 1]] = value;
}

/// Every shipped template, behind table and CEL rules.
fn loaded() -> &'static LoadedConfig {
    static LOADED: OnceLock<(tempfile::TempDir, LoadedConfig)> = OnceLock::new();
    &LOADED
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let templates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
            std::fs::write(dir.path().join("plain.hbs"), "{{feedback}}").unwrap();
            let config = format!(
                r#"templates_dir = "{templates}"
[raaft]
tokens = ["t"]
[store]
url = "sqlite://{dir}/p.db"
[destinations.slack_text]
kind = "slack"
url = "https://hooks.slack.com/services/x"
template = "slack/saved.hbs"
[destinations.slack_blocks]
kind = "slack"
url = "https://hooks.slack.com/services/x"
template = "slack/canceled.json.hbs"
[destinations.discord_text]
kind = "discord"
url = "https://discord.com/api/webhooks/1/x"
template = "discord/canceled.hbs"
[destinations.discord_embeds]
kind = "discord"
url = "https://discord.com/api/webhooks/1/x"
template = "discord/saved.json.hbs"
[destinations.webhook]
kind = "webhook"
url = "https://example.com/hook"
template = "webhook/event.json.hbs"
[destinations.console]
kind = "console"
template = "console/event.hbs"
[destinations.slack_plain]
kind = "slack"
url = "https://hooks.slack.com/services/x"
template = "{plain}"
[[routes]]
name = "canceled"
when = {{ outcome = "canceled" }}
to = ["slack_blocks", "discord_text"]
[[routes]]
name = "big"
when = 'outcome == "saved" && subscription.plan.amount >= 5 && customer.name.startsWith("A")'
to = ["slack_text", "discord_embeds"]
[[routes]]
name = "all"
to = ["webhook", "console"]
"#,
                templates = templates.display(),
                dir = dir.path().display(),
                plain = dir.path().join("plain.hbs").display(),
            );
            let path = dir.path().join("relay.toml");
            std::fs::write(&path, config).unwrap();
            let loaded = LoadedConfig::load(&path).unwrap_or_else(|p| panic!("{p}"));
            (dir, loaded)
        })
        .1
}

fn chars(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.chars().count())
}

/// `n` characters (or items) against the platform's `max`.
fn check(what: &str, n: usize, max: usize) -> Result<(), String> {
    if n > max {
        Err(format!("{what}: {n} > {max}"))
    } else {
        Ok(())
    }
}

/// Slack's published limits (Block Kit reference), written here rather
/// than read from the relay, so a wrong number in the relay fails.
fn within_slack_limits(payload: &Value) -> Result<(), String> {
    check("text", chars(&payload["text"]), 40_000)?;
    let blocks = payload["blocks"].as_array().cloned().unwrap_or_default();
    check("blocks", blocks.len(), 50)?;
    for block in &blocks {
        match block["type"].as_str() {
            Some("header") => check("header", chars(&block["text"]["text"]), 150)?,
            Some("section") => {
                check("section text", chars(&block["text"]["text"]), 3000)?;
                let fields = block["fields"].as_array().cloned().unwrap_or_default();
                check("fields", fields.len(), 10)?;
                for field in &fields {
                    check("field", chars(&field["text"]), 2000)?;
                }
            }
            Some("context") => check("context elements", block["elements"].as_array().map_or(0, Vec::len), 10)?,
            _ => {}
        }
    }
    Ok(())
}

/// Discord's published limits (message and embed references).
fn within_discord_limits(payload: &Value) -> Result<(), String> {
    check("content", chars(&payload["content"]), 2000)?;
    let embeds = payload["embeds"].as_array().cloned().unwrap_or_default();
    check("embeds", embeds.len(), 10)?;
    let mut total = 0;
    for embed in &embeds {
        check("title", chars(&embed["title"]), 256)?;
        check("description", chars(&embed["description"]), 4096)?;
        check("footer", chars(&embed["footer"]["text"]), 2048)?;
        check("author", chars(&embed["author"]["name"]), 256)?;
        let fields = embed["fields"].as_array().cloned().unwrap_or_default();
        check("fields", fields.len(), 25)?;
        total += chars(&embed["title"])
            + chars(&embed["description"])
            + chars(&embed["footer"]["text"])
            + chars(&embed["author"]["name"]);
        for field in &fields {
            check("field name", chars(&field["name"]), 256)?;
            check("field value", chars(&field["value"]), 1024)?;
            total += chars(&field["name"]) + chars(&field["value"]);
        }
    }
    check("embeds in all", total, 6000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn routing_and_rendering_are_total_and_within_limits(event in any_event()) {
        let loaded = loaded();
        // Routing never panics, whatever the event holds.
        let targets = loaded.router.route(&event);
        prop_assert!(targets.iter().any(|t| t.destination == "webhook"), "the catch-all route always matches");
        for dest in loaded.destinations() {
            let payload = dest.payload(&event);
            let payload = payload.map_err(|e| TestCaseError::fail(format!("{}: {e}", dest.name)))?;
            match (&payload, dest.name.as_str()) {
                (Payload::Json(v), name) if name.starts_with("slack") => {
                    within_slack_limits(v).map_err(|e| TestCaseError::fail(format!("{name}: {e}")))?;
                }
                (Payload::Json(v), name) if name.starts_with("discord") => {
                    within_discord_limits(v).map_err(|e| TestCaseError::fail(format!("{name}: {e}")))?;
                }
                _ => {}
            }
        }
    }

    #[test]
    fn odd_shapes_fail_only_where_a_template_reads_into_a_list(event in any_event_any_shape()) {
        // Fields of unexpected shapes render like missing ones, except one
        // case Handlebars refuses: reading a named field of a list (`path`
        // holding a list of lists, `plan` a list). That is an error naming
        // the template (the delivery goes dead with it), never a panic,
        // and never any other error.
        let loaded = loaded();
        let _ = loaded.router.route(&event);
        for dest in loaded.destinations() {
            if let Err(e) = dest.payload(&event) {
                prop_assert!(dest.templates().any(|t| t.name == e.template), "{e}");
                // The line of the tag, then Handlebars' reason.
                let reason = e.reason.split_once(": ").filter(|(at, _)| at.starts_with("line ")).map_or(&*e.reason, |(_, r)| r);
                prop_assert!(
                    reason.starts_with("Cannot access array/vector with string index"),
                    "{}: {e} on {event}", dest.name
                );
            }
        }
    }

    #[test]
    fn any_json_object_routes_and_renders(extra in any_json()) {
        let mut event = Map::new();
        event.insert("x".into(), extra);
        let event = Value::Object(event);
        let loaded = loaded();
        let _ = loaded.router.route(&event);
        for dest in loaded.destinations() {
            prop_assert!(dest.payload(&event).is_ok(), "{} fails on {event}", dest.name);
        }
    }

    #[test]
    fn truncation_keeps_whole_characters(text in any_text(), max in 0usize..5000) {
        for cut in [truncate_chars(&text, max), truncate_escaped(&slack_mrkdwn(&text), max)] {
            prop_assert!(cut.chars().count() <= max);
            let kept = cut.strip_suffix(ELLIPSIS).unwrap_or(&cut);
            prop_assert!(text.starts_with(kept) || slack_mrkdwn(&text).starts_with(kept));
        }
        // No half entity is ever left before the ellipsis.
        let cut = truncate_escaped(&slack_mrkdwn(&text), max);
        let kept = cut.strip_suffix(ELLIPSIS).unwrap_or(&cut);
        if let Some(amp) = kept.rfind('&') {
            let tail = &kept[amp..];
            prop_assert!(["&amp;", "&lt;", "&gt;"].iter().any(|e| tail.starts_with(e)), "{tail}");
        }
    }

    #[test]
    fn slack_text_is_escaped_exactly_once(feedback in any_text()) {
        let loaded = loaded();
        let dest = loaded.destination("slack_plain").unwrap();
        let event = serde_json::json!({"feedback": feedback});
        let Payload::Json(payload) = dest.payload(&event).unwrap() else { panic!("slack sends JSON") };
        let text = payload["text"].as_str().unwrap();
        // Blank text is never sent (Slack refuses it): a notice says the
        // template rendered nothing.
        let expected = if feedback.trim().is_empty() {
            r#"(template "slack" rendered an empty message)"#.to_owned()
        } else {
            slack_mrkdwn(&feedback)
        };
        let expected = truncate_escaped(&expected, 40_000);
        prop_assert_eq!(text, expected.as_str());
        if !feedback.trim().is_empty() && text == slack_mrkdwn(&feedback) {
            let unescaped = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&");
            prop_assert_eq!(unescaped, feedback);
        }
    }
}
