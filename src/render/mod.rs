//! Rendering: Handlebars templates kept as files under `templates_dir`,
//! compiled once per load, with escaping chosen by where the text lands.
//! A template whose name ends in `.json.hbs` produces a whole JSON payload;
//! any other produces text the destination wraps. Pure: no I/O after load.

mod escape;
pub mod helpers;
mod inline;

pub use escape::{discord_markdown, json_string, slack_mrkdwn, Escape};

use crate::problems::Problem;
use handlebars::Handlebars;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Whether a template file produces a JSON payload.
pub fn is_json_template(name: &str) -> bool {
    name.ends_with(".json.hbs")
}

/// Why rendering failed at run time (an unknown helper or partial: things
/// `check` reports before they reach production).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template \"{template}\": {reason}")]
pub struct RenderError {
    pub template: String,
    pub reason: String,
}

/// One compiled template.
pub struct Template {
    /// The name users know it by: its path under `templates_dir`, or the
    /// config key of an inline template.
    pub name: String,
    /// The file it came from (the config file for inline templates).
    pub file: PathBuf,
    pub json: bool,
    registry: Handlebars<'static>,
}

impl std::fmt::Debug for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Template").field("name", &self.name).field("json", &self.json).finish()
    }
}

impl Template {
    /// Loads `templates_dir/rel`, escaping inserted values with
    /// `escape(json)`. Partials are every `*.hbs` under
    /// `templates_dir/partials/`, named by their file stem.
    pub fn load(templates_dir: &Path, rel: &str, escape: impl Fn(bool) -> Escape) -> Result<Template, Problem> {
        let file = templates_dir.join(rel);
        let source =
            std::fs::read_to_string(&file).map_err(|e| Problem::new(&file, format!("cannot read template: {e}")))?;
        let json = is_json_template(rel);
        Self::compile(rel.to_owned(), file, &source, escape(json), json, Some(templates_dir), true)
    }

    /// Compiles `source` as if it were the file `templates_dir/rel` (a
    /// template edited in the console, not saved).
    pub fn from_source(templates_dir: &Path, rel: &str, source: &str, escape: Escape) -> Result<Template, Problem> {
        let json = is_json_template(rel);
        Self::compile(rel.to_owned(), templates_dir.join(rel), source, escape, json, Some(templates_dir), true)
    }

    /// Compiles an inline template (such as an e-mail `subject`) that was
    /// written in `file`.
    pub fn inline(name: &str, source: &str, escape: Escape, file: &Path) -> Result<Template, Problem> {
        Self::compile(name.to_owned(), file.to_path_buf(), source, escape, false, None, true)
    }

    fn compile(
        name: String,
        file: PathBuf,
        source: &str,
        escape: Escape,
        json: bool,
        templates_dir: Option<&Path>,
        inline_partials: bool,
    ) -> Result<Template, Problem> {
        let mut registry = Handlebars::new();
        registry.set_strict_mode(false);
        registry.register_escape_fn(move |s| escape.apply(s));
        helpers::register(&mut registry);
        let partials = match templates_dir {
            Some(dir) => register_partials(&mut registry, &dir.join("partials"))?,
            None => Vec::new(),
        };
        registry.register_template_string("t", source).map_err(|e| {
            let reason = e.reason().to_string();
            let (line, col) = e.pos().unzip();
            let at = col.map(|c| format!(" (column {c})")).unwrap_or_default();
            let problem = Problem::new(&file, format!("invalid template: {reason}{at}")).at_line(line);
            if file.extension().is_some_and(|e| e == "toml") {
                problem.with_key(name.clone())
            } else {
                problem
            }
        })?;
        if inline_partials {
            let inlinable = inline::Inlinable::new(
                partials
                    .iter()
                    .filter_map(|(name, source)| Some((name.as_str(), source.as_str(), registry.get_template(name)?))),
            );
            if let Some(compiled) = registry.get_template("t") {
                let copied = inlinable.apply(compiled);
                registry.register_template("t", copied);
            }
        }
        Ok(Template { name, file, json, registry })
    }

    /// Renders with `event` as the root context. A missing field renders
    /// empty.
    pub fn render(&self, event: &Value) -> Result<String, RenderError> {
        self.render_in(&EventContext::new(event.clone()))
    }

    /// Renders in `context`, which the templates of one message share.
    pub fn render_in(&self, context: &EventContext) -> Result<String, RenderError> {
        self.registry
            .render_with_context("t", &context.0)
            .map_err(|e| RenderError { template: self.name.clone(), reason: e.reason().to_string() })
    }
}

/// An event as templates read it, made once per message from the parsed
/// event (handlebars' own `render` would copy the event through serde for
/// every template).
#[derive(Debug, Clone)]
pub struct EventContext(handlebars::Context);

impl EventContext {
    pub fn new(event: Value) -> EventContext {
        EventContext(handlebars::Context::from(event))
    }
}

/// Registers every `*.hbs` in `dir` as a partial named by its stem, and
/// returns their names and sources.
fn register_partials(registry: &mut Handlebars<'static>, dir: &Path) -> Result<Vec<(String, String)>, Problem> {
    let mut partials = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(partials) };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        let Some(stem) = file_name.strip_suffix(".hbs") else { continue };
        let source =
            std::fs::read_to_string(&path).map_err(|e| Problem::new(&path, format!("cannot read partial: {e}")))?;
        registry.register_partial(stem, &source).map_err(|e| {
            Problem::new(&path, format!("invalid partial: {}", e.reason())).at_line(e.pos().map(|p| p.0))
        })?;
        partials.push((stem.to_owned(), source));
    }
    Ok(partials)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn inline(src: &str, escape: Escape) -> Template {
        Template::inline("test", src, escape, Path::new("relay.toml")).unwrap()
    }

    #[test]
    fn missing_fields_render_empty() {
        let t = inline("Hi {{customer.name}}! Plan: {{subscription.plan.name}}.", Escape::None);
        assert_eq!(t.render(&json!({"customer": {"name": "Ana"}})).unwrap(), "Hi Ana! Plan: .");
        assert_eq!(t.render(&json!({})).unwrap(), "Hi ! Plan: .");
        let t =
            inline("{{money subscription.plan.amount subscription.plan.currency}}|{{date createdAt}}", Escape::None);
        assert_eq!(t.render(&json!({})).unwrap(), "|");
    }

    #[test]
    fn escaping_applies_to_values_not_template_text() {
        let t = inline("<b>{{customer.name}}</b>", Escape::SlackMrkdwn);
        assert_eq!(
            t.render(&json!({"customer": {"name": "<!channel> & co"}})).unwrap(),
            "<b>&lt;!channel&gt; &amp; co</b>"
        );
        let t = inline("{\"text\": \"{{feedback}}\"}", Escape::SlackMrkdwnJson);
        let out = t.render(&json!({"feedback": "say \"hi\"\n<@U1>"})).unwrap();
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["text"], "say \"hi\"\n&lt;@U1&gt;");
    }

    #[test]
    fn helpers_and_comparisons_are_available() {
        let t = inline(
            "{{#if (eq outcome \"saved\")}}saved{{else}}lost{{/if}} {{#if (gte subscription.plan.amount 100)}}big{{/if}} {{default motivator \"no reason\"}} {{truncate feedback 4}}",
            Escape::None,
        );
        let out = t
            .render(&json!({"outcome": "saved", "subscription": {"plan": {"amount": 120}}, "feedback": "abcdefgh"}))
            .unwrap();
        assert_eq!(out, "saved big no reason abc…");
    }

    #[test]
    fn syntax_errors_carry_the_line() {
        let err = Template::inline("subject", "ok\n{{#if x}}never closed", Escape::None, Path::new("relay.toml"))
            .unwrap_err();
        assert!(err.line.is_some(), "{err}");
        assert!(err.to_string().contains("invalid template"), "{err}");
    }

    #[test]
    fn unknown_helpers_fail_at_render_with_the_template_name() {
        let t = inline("{{nope customer}}", Escape::None);
        let err = t.render(&json!({"customer": 1})).unwrap_err();
        assert_eq!(err.template, "test");
    }

    #[test]
    fn partials_come_from_the_partials_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("partials")).unwrap();
        std::fs::write(dir.path().join("partials/who.hbs"), "{{customer.name}}").unwrap();
        std::fs::write(dir.path().join("main.hbs"), "by {{> who}}").unwrap();
        let t = Template::load(dir.path(), "main.hbs", |_| Escape::None).unwrap();
        assert_eq!(t.render(&json!({"customer": {"name": "Ana"}})).unwrap(), "by Ana");
        assert!(!t.json);
    }

    /// `source` compiled twice in a folder holding `partials`: with plain
    /// partials copied in, and with every partial left to Handlebars.
    fn both_ways(dir: &Path, source: &str, escape: Escape) -> (Template, Template) {
        let compile = |copy| {
            Template::compile("main.hbs".into(), dir.join("main.hbs"), source, escape, false, Some(dir), copy).unwrap()
        };
        (compile(true), compile(false))
    }

    fn partial_tags(t: &Template) -> usize {
        fn count(elements: &[handlebars::template::TemplateElement]) -> usize {
            use handlebars::template::TemplateElement as E;
            elements
                .iter()
                .map(|e| match e {
                    E::PartialExpression(_) | E::PartialBlock(_) => 1,
                    E::HelperBlock(h) => {
                        h.template.as_ref().map_or(0, |t| count(&t.elements))
                            + h.inverse.as_ref().map_or(0, |t| count(&t.elements))
                    }
                    _ => 0,
                })
                .sum()
        }
        count(&t.registry.get_template("t").unwrap().elements)
    }

    fn partials_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("partials")).unwrap();
        for (name, source) in [
            ("who", "{{default customer.name \"someone\"}}"),
            ("step", "{{@index}}:{{stepType}}{{#if @first}} (first){{/if}}"),
            ("up", "[{{../outcome}}]"),
            ("named", "{{name}}/{{customer.name}}"),
            ("lines", "a\nb\n"),
            ("nested", "<{{> who}}>"),
            ("sees", "{{s.stepType}}"),
        ] {
            std::fs::write(dir.path().join(format!("partials/{name}.hbs")), source).unwrap();
        }
        dir
    }

    #[test]
    fn plain_partials_are_copied_in_and_render_as_handlebars_renders_them() {
        let dir = partials_dir();
        let event = json!({
            "outcome": "saved",
            "customer": {"name": "<Ana & co>\nsecond line"},
            "path": [{"stepType": "survey"}, {"stepType": "offer"}]
        });
        // (template, partial tags left after copying)
        let cases = [
            ("by:{{> who}}!", 0),
            ("{{#if customer}}by:{{> who}}{{else}}{{> who}}{{/if}}", 0),
            // Handlebars indents what a partial after whitespace writes.
            ("by {{> who}}!", 1),
            ("{{#each path}}{{> step}} {{/each}}", 0),
            ("{{#each path}}{{> up}}{{/each}}", 1),
            ("{{> named name=\"x\"}} {{> named customer}}", 2),
            ("list:\n  {{> lines}}\nend", 1),
            ("list:\n{{> lines}}\nend", 0),
            ("{{> nested}}", 1),
            ("{{#each path as |s|}}{{> sees}}{{/each}}", 1),
            ("{{#*inline \"who\"}}inline{{/inline}}{{> who}}", 1),
            ("{{> missing}}", 1),
        ];
        for escape in [Escape::None, Escape::SlackMrkdwn, Escape::Html] {
            for (source, left) in cases {
                let (copied, real) = both_ways(dir.path(), source, escape);
                assert_eq!(copied.render(&event), real.render(&event), "{source}");
                assert_eq!(copied.render(&json!({})), real.render(&json!({})), "{source}");
                assert_eq!(partial_tags(&copied), left, "{source}");
            }
        }
    }

    #[test]
    fn the_shipped_templates_render_as_handlebars_renders_them() {
        let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        let events = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/events")).unwrap();
        let events: Vec<Value> = events
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .map(|e| serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap())
            .collect();
        assert!(events.len() >= 3);
        let mut copied_any = false;
        for rel in ["slack/saved.hbs", "slack/canceled.json.hbs", "discord/canceled.hbs", "discord/saved.json.hbs"]
            .into_iter()
            .chain(["email/canceled.hbs", "email/canceled.html.hbs", "console/event.hbs", "webhook/event.json.hbs"])
        {
            let source = std::fs::read_to_string(templates.join(rel)).unwrap();
            let (copied, real) = both_ways(&templates, &source, Escape::SlackMrkdwnJson);
            copied_any |= partial_tags(&copied) < partial_tags(&real);
            for event in &events {
                assert_eq!(copied.render(event), real.render(event), "{rel}");
            }
        }
        assert!(copied_any, "no shipped partial was copied in");
    }

    fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "[a-z<>&\n ]{0,12}|.{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("[a-zA-Z]{1,8}|amount|currency|interval|stepType", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Copying partials in changes nothing a template writes, on any
        /// shape of the fields the shipped partials read.
        #[test]
        fn copied_partials_render_the_same_on_any_event(
            plan in any_json(), currency in any_json(), path in any_json(), name in any_json()
        ) {
            let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
            let event = json!({
                "outcome": "canceled", "customer": {"name": name},
                "subscription": {"plan": plan, "currency": currency}, "path": path
            });
            for rel in ["slack/canceled.json.hbs", "discord/canceled.hbs", "email/canceled.html.hbs", "console/event.hbs"] {
                let source = std::fs::read_to_string(templates.join(rel)).unwrap();
                let (copied, real) = both_ways(&templates, &source, Escape::Html);
                proptest::prop_assert_eq!(copied.render(&event), real.render(&event), "{}", rel);
            }
        }
    }
}
