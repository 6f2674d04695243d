//! Rendering: Handlebars templates kept as files under `templates_dir`,
//! compiled once per load, with escaping chosen by where the text lands.
//! A template whose name ends in `.json.hbs` produces a whole JSON payload;
//! any other produces text the destination wraps. Pure: no I/O after load.
//!
//! Nothing a template says can crash or stall the relay: its structure is
//! bounded when it is compiled ([`structure`]: no loop of partials, no
//! computed partial name, nesting at most [`MAX_NESTING`]), and each render
//! has a budget of time and output ([`budget`]). Callers on the async
//! workers render through [`off_workers`].

mod budget;
mod escape;
mod fields;
mod files;
pub mod helpers;
mod inline;
mod structure;
mod syntax;

pub use budget::{Budget, RENDER_OUTPUT, RENDER_TIME};
pub use escape::{discord_markdown, json_string, slack_mrkdwn, Escape};
pub use fields::FieldUse;
use files::PartialSource;
pub use files::TemplateFiles;
pub use structure::MAX_NESTING;

use crate::problems::Problem;
use handlebars::Handlebars;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The name a template is registered under beside its partials: no
/// partial file can have it (a file's name has no `/`), and a partial tag
/// that names it is refused as a loop.
const ROOT: &str = "/template";

/// The stack of the thread a template is compiled on.
const COMPILE_STACK: usize = 64 << 20;

/// How large a template (or a partial) may be: thirty times the largest
/// shipped one. Handlebars' parser takes time in the square of the number
/// of tags (it counts each tag's line from the start of the text); at this
/// size a template of nothing but tags still compiles within a second.
pub const MAX_TEMPLATE_BYTES: usize = 64 * 1024;

/// Refuses a template (or partial) text over [`MAX_TEMPLATE_BYTES`].
fn check_size(source: &str) -> Result<(), String> {
    if source.len() > MAX_TEMPLATE_BYTES {
        return Err(format!(
            "it is {} bytes long, more than the {MAX_TEMPLATE_BYTES} a template may have",
            source.len()
        ));
    }
    Ok(())
}

/// Whether a template file produces a JSON payload.
pub fn is_json_template(name: &str) -> bool {
    name.ends_with(".json.hbs")
}

/// Why rendering failed at run time (an unknown helper or partial: things
/// `check` reports before they reach production; or a render past its
/// [`Budget`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template \"{template}\": {reason}")]
pub struct RenderError {
    pub template: String,
    pub reason: String,
    /// The render was stopped at its budget.
    pub over_budget: bool,
}

impl RenderError {
    pub fn new(template: impl Into<String>, reason: impl Into<String>) -> RenderError {
        RenderError { template: template.into(), reason: reason.into(), over_budget: false }
    }
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
    /// Loads `rel` of `files`, escaping inserted values with
    /// `escape(json)`. Partials are every `*.hbs` under `partials/`, named
    /// by their file stem.
    pub fn load(files: &TemplateFiles, rel: &str, escape: impl Fn(bool) -> Escape) -> Result<Template, Problem> {
        let file = files.path(rel);
        let source = files.read(rel).map_err(|e| Problem::new(&file, format!("cannot read template: {e}")))?;
        let json = is_json_template(rel);
        Self::compile(rel.to_owned(), file, &source, escape(json), json, Some(files), true)
    }

    /// Compiles `source` as if it were the file `templates_dir/rel` (a
    /// template edited in the console, not saved).
    pub fn from_source(templates_dir: &Path, rel: &str, source: &str, escape: Escape) -> Result<Template, Problem> {
        let files = TemplateFiles::new(templates_dir).with_edit(rel, source);
        Self::load(&files, rel, |_| escape)
    }

    /// Compiles an inline template (such as an e-mail `subject`) that was
    /// written in `file`.
    pub fn inline(name: &str, source: &str, escape: Escape, file: &Path) -> Result<Template, Problem> {
        Self::compile(name.to_owned(), file.to_path_buf(), source, escape, false, None, true)
    }

    /// Compiles `source`, on a thread with a large stack of its own (see
    /// [`on_compile_thread`]).
    fn compile(
        name: String,
        file: PathBuf,
        source: &str,
        escape: Escape,
        json: bool,
        files: Option<&TemplateFiles>,
        inline_partials: bool,
    ) -> Result<Template, Problem> {
        on_compile_thread(&file.clone(), move || {
            let mut registry = Handlebars::new();
            registry.set_strict_mode(false);
            registry.register_escape_fn(move |s| escape.apply(s));
            helpers::register(&mut registry);
            registry.register_helper(budget::CHECK_HELPER, Box::new(budget::CheckHelper));
            let partials = match files {
                Some(files) => register_partials(&mut registry, files)?,
                None => Vec::new(),
            };
            let in_file = |problem: Problem| {
                if file.extension().is_some_and(|e| e == "toml") {
                    problem.with_key(name.clone())
                } else {
                    problem
                }
            };
            check_size(source).map_err(|reason| in_file(Problem::new(&file, format!("invalid template: {reason}"))))?;
            structure::check_source_nesting(source).map_err(|(reason, line)| {
                in_file(Problem::new(&file, format!("invalid template: {reason}")).at_line(Some(line)))
            })?;
            registry.register_template_string(ROOT, source).map_err(|e| {
                // The tags say more than the parser's grammar rules do.
                let (reason, line, col) = match syntax::explain(source) {
                    // Its reason names the line; the column adds nothing.
                    Some((reason, line, _)) => (reason, Some(line), None),
                    None => {
                        let (line, col) = e.pos().unzip();
                        (syntax::plain(&e.reason().to_string()), line, col)
                    }
                };
                let at = col.map(|c| format!(" (column {c})")).unwrap_or_default();
                in_file(Problem::new(&file, format!("invalid template: {reason}{at}")).at_line(line))
            })?;
            {
                let compiled: std::collections::HashMap<String, &handlebars::template::Template> =
                    partials.iter().filter_map(|p| Some((p.name.clone(), registry.get_template(&p.name)?))).collect();
                let root = registry.get_template(ROOT).expect("just registered");
                structure::check_partials(root, ROOT, &name, &compiled).map_err(|refused| {
                    let partial_file = refused.partial.as_ref().and_then(|n| partials.iter().find(|p| &p.name == n));
                    match partial_file {
                        Some(p) => {
                            Problem::new(&p.file, format!("invalid template: {}", refused.reason)).at_line(refused.line)
                        }
                        None => in_file(
                            Problem::new(&file, format!("invalid template: {}", refused.reason)).at_line(refused.line),
                        ),
                    }
                })?;
            }
            // Every loop checks the render's budget at each pass.
            for partial in partials.iter().map(|p| &p.name) {
                if let Some(mut t) = registry.get_template(partial).cloned() {
                    budget::instrument(&mut t);
                    registry.register_template(partial, t);
                }
            }
            if let Some(mut t) = registry.get_template(ROOT).cloned() {
                budget::instrument(&mut t);
                registry.register_template(ROOT, t);
            }
            if inline_partials {
                let inlinable = inline::Inlinable::new(
                    partials
                        .iter()
                        .filter_map(|p| Some((p.name.as_str(), p.source.as_str(), registry.get_template(&p.name)?))),
                );
                if let Some(compiled) = registry.get_template(ROOT) {
                    let copied = inlinable.apply(compiled);
                    registry.register_template(ROOT, copied);
                }
            }
            Ok(Template { name, file, json, registry })
        })
    }

    /// The fields the template reads, from the root of what it renders
    /// (see [`fields`]).
    pub fn fields(&self) -> Vec<FieldUse> {
        let Some(root) = self.registry.get_template(ROOT) else { return Vec::new() };
        fields::fields(root, &|name| name == budget::CHECK_HELPER || helpers::NAMES.contains(&name))
            .into_iter()
            .filter(|f| f.written != budget::CHECK_HELPER)
            .collect()
    }

    /// Renders with `event` as the root context. A missing field renders
    /// empty.
    pub fn render(&self, event: &Value) -> Result<String, RenderError> {
        self.render_in(&EventContext::new(event.clone()))
    }

    /// Renders in `context`, which the templates of one message share,
    /// within the default [`Budget`].
    pub fn render_in(&self, context: &EventContext) -> Result<String, RenderError> {
        self.render_within(context, Budget::default())
    }

    /// Renders in `context` within `budget`: a render past it is stopped
    /// and is an error naming the limit.
    pub fn render_within(&self, context: &EventContext, budget: Budget) -> Result<String, RenderError> {
        let (result, out, exceeded) =
            budget.run(|writer| self.registry.render_with_context_to_write(ROOT, &context.0, writer));
        let failed = |reason: String, line: Option<usize>| {
            let at = line.map(|l| format!("line {l}: ")).unwrap_or_default();
            RenderError::new(self.name.clone(), format!("{at}{reason}"))
        };
        let out = match (result, exceeded) {
            (_, Some(why)) => return Err(RenderError { over_budget: true, ..failed(why.to_string(), None) }),
            (Err(e), None) => {
                let reason = match e.reason() {
                    handlebars::RenderErrorReason::HelperNotFound(name) => format!(
                        "unknown helper \"{name}\" (the helpers are {}; see docs/templates.md)",
                        helpers::NAMES.join(", ")
                    ),
                    other => other.to_string(),
                };
                return Err(failed(reason, e.line_no));
            }
            (Ok(()), None) => out,
        };
        String::from_utf8(out).map_err(|e| failed(format!("output is not UTF-8: {e}"), None))
    }
}

/// Runs `work` (one render or several) on a blocking thread, so the async
/// workers that serve ingest and the probes never wait on a template; each
/// render inside keeps its own [`Budget`]. A render that panics is an error
/// for that work alone.
pub async fn off_workers<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, RenderError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| RenderError::new("(render)", format!("render failed: {e}")))
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

/// Runs `compile` on a thread with a large stack of its own: the checks
/// that bound nesting come before Handlebars' parser, but should one count
/// wrong, a deep template must fail alone, not abort the relay.
fn on_compile_thread<T: Send>(file: &Path, compile: impl FnOnce() -> Result<T, Problem> + Send) -> Result<T, Problem> {
    std::thread::scope(|scope| {
        let compiling = std::thread::Builder::new()
            .name("raaft-template-compile".into())
            .stack_size(COMPILE_STACK)
            .spawn_scoped(scope, compile)
            .map_err(|e| Problem::new(file, format!("cannot compile template: {e}")))?;
        compiling.join().unwrap_or_else(|_| {
            Err(Problem::new(file, "invalid template: the template compiler failed on it".to_owned()))
        })
    })
}

/// Registers every partial of `files` (`partials/*.hbs`, named by the
/// stem) and returns them.
fn register_partials(registry: &mut Handlebars<'static>, files: &TemplateFiles) -> Result<Vec<PartialSource>, Problem> {
    let partials = files.partials()?;
    for p in &partials {
        check_size(&p.source).map_err(|reason| Problem::new(&p.file, format!("invalid partial: {reason}")))?;
        structure::check_source_nesting(&p.source).map_err(|(reason, line)| {
            Problem::new(&p.file, format!("invalid partial: {reason}")).at_line(Some(line))
        })?;
        registry.register_partial(&p.name, &p.source).map_err(|e| {
            Problem::new(&p.file, format!("invalid partial: {}", e.reason())).at_line(e.pos().map(|p| p.0))
        })?;
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
    fn loops_of_partials_are_refused_when_compiled() {
        let source = r#"{{#*inline "a"}}{{> b}}{{/inline}}{{#*inline "b"}}{{> a}}{{/inline}}{{> a}}"#;
        let err = Template::inline("body", source, Escape::None, Path::new("relay.toml")).unwrap_err();
        assert!(err.to_string().contains("partials include each other in a loop: a → b → a"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("partials")).unwrap();
        std::fs::write(dir.path().join("partials/a.hbs"), "{{> b}}").unwrap();
        std::fs::write(dir.path().join("partials/b.hbs"), "one\n{{> a}}").unwrap();
        let guarded = "{{#if (eq feedback \"boom\")}}{{> a}}{{/if}}";
        let err = Template::from_source(dir.path(), "main.hbs", guarded, Escape::None).unwrap_err();
        assert_eq!(err.file, dir.path().join("partials/b.hbs"));
        assert_eq!(err.line, Some(2));
        assert!(err.to_string().contains("a → b → a"), "{err}");
    }

    #[test]
    fn a_render_past_its_budget_stops_and_says_why() {
        let event = json!({"path": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]});
        let nested = "{{#each @root.path}}".repeat(13) + &"{{/each}}".repeat(13);
        let t = inline(&nested, Escape::None);
        let started = std::time::Instant::now();
        let budget = Budget { time: std::time::Duration::from_millis(100), output: RENDER_OUTPUT };
        let err = t.render_within(&EventContext::new(event.clone()), budget).unwrap_err();
        assert!(err.reason.contains("render stopped: it ran longer than 100 ms"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "stopped after {:?}", started.elapsed());

        // The output limit, with time enough that only it can stop the
        // render on a busy machine.
        let writes = "{{#each @root.path}}".repeat(6) + "0123456789" + &"{{/each}}".repeat(6);
        let budget = Budget { time: std::time::Duration::from_secs(120), output: RENDER_OUTPUT };
        let err = inline(&writes, Escape::None).render_within(&EventContext::new(event.clone()), budget).unwrap_err();
        assert_eq!(err.reason, format!("render stopped: it wrote more than {RENDER_OUTPUT} bytes"));
        // Within the budget, loops render as Handlebars renders them.
        let t =
            inline("{{#each path}}{{#if @first}}[{{/if}}{{this}}{{#unless @last}},{{/unless}}{{/each}}]", Escape::None);
        assert_eq!(t.render(&event).unwrap(), "[1,2,3,4,5,6,7,8,9,10]");
    }

    /// Runs `f` on a thread with the 2 MiB stack of the blocking threads
    /// renders run on.
    fn on_small_stack<T: Send>(f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|s| std::thread::Builder::new().stack_size(2 << 20).spawn_scoped(s, f).unwrap().join())
            .unwrap()
    }

    #[test]
    fn no_template_reaches_itself_or_names_a_partial_from_the_event() {
        for source in [
            format!("{{{{#*inline \"x\"}}}}{{{{> {ROOT}}}}}{{{{/inline}}}}{{{{> x}}}}"),
            "{{#*inline feedback}}{{> boom}}{{/inline}}{{#if (eq feedback \"boom\")}}{{> boom}}{{/if}}".into(),
            "{{#> layout}}{{#each path}}{{json @root}}{{/each}}{{/layout}}".into(),
        ] {
            assert!(Template::inline("body", &source, Escape::None, Path::new("relay.toml")).is_err(), "{source}");
        }
        // The template's own old name is no way back to it.
        let t = inline("{{#*inline \"x\"}}{{> t}}{{/inline}}{{> x}}", Escape::None);
        let err = on_small_stack(|| t.render(&json!({"feedback": "boom"}))).unwrap_err();
        assert!(err.reason.contains("Partial not found t"), "{err}");
    }

    #[test]
    fn helpers_that_write_nothing_still_count_against_the_budget() {
        let event = json!({"feedback": "x".repeat(2_000_000)});
        let t = inline(&"{{#if (json this)}}{{/if}}".repeat(1_000), Escape::None);
        let started = std::time::Instant::now();
        let budget = Budget { time: std::time::Duration::from_millis(50), output: RENDER_OUTPUT };
        let err = t.render_within(&EventContext::new(event), budget).unwrap_err();
        assert!(err.over_budget, "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "stopped after {:?}", started.elapsed());
    }

    #[test]
    fn the_deepest_template_allowed_renders_on_a_small_stack() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("partials")).unwrap();
        let half = MAX_NESTING / 2 - 1;
        let nested = |body: &str| {
            "{{#each @root.path}}{{#with this}}".repeat(half / 2) + body + &"{{/with}}{{/each}}".repeat(half / 2)
        };
        std::fs::write(dir.path().join("partials/deep.hbs"), nested("{{#if @first}}{{{json this}}}{{/if}}")).unwrap();
        let t = Template::from_source(dir.path(), "main.hbs", &nested("{{> deep}}"), Escape::Json).unwrap();
        let event = json!({"path": [{"a": 1}]});
        assert_eq!(on_small_stack(|| t.render(&event)).unwrap(), r#"{"a":1}"#);
    }

    #[test]
    fn a_template_past_the_size_limit_is_refused_before_it_is_parsed() {
        let big = "{{x}}".repeat(MAX_TEMPLATE_BYTES / 5 + 1);
        let err = Template::inline("body", &big, Escape::None, Path::new("relay.toml")).unwrap_err();
        assert!(err.to_string().contains(&format!("more than the {MAX_TEMPLATE_BYTES} a template may have")), "{err}");
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("partials")).unwrap();
        std::fs::write(dir.path().join("partials/big.hbs"), &big).unwrap();
        let err = Template::from_source(dir.path(), "main.hbs", "x", Escape::None).unwrap_err();
        assert_eq!(err.file, dir.path().join("partials/big.hbs"));
    }

    #[test]
    fn nesting_past_the_limit_is_refused_with_its_line() {
        let deep = "ok\n".to_owned() + &"{{#if a}}".repeat(5_000);
        let err = Template::inline("body", &deep, Escape::None, Path::new("relay.toml")).unwrap_err();
        assert!(err.to_string().contains("nested deeper than"), "{err}");
        assert_eq!(err.line, Some(2));
    }

    #[test]
    fn partials_come_from_the_partials_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("partials")).unwrap();
        std::fs::write(dir.path().join("partials/who.hbs"), "{{customer.name}}").unwrap();
        std::fs::write(dir.path().join("main.hbs"), "by {{> who}}").unwrap();
        let t = Template::load(&TemplateFiles::new(dir.path()), "main.hbs", |_| Escape::None).unwrap();
        assert_eq!(t.render(&json!({"customer": {"name": "Ana"}})).unwrap(), "by Ana");
        assert!(!t.json);
    }

    /// `source` compiled twice in a folder holding `partials`: with plain
    /// partials copied in, and with every partial left to Handlebars.
    fn both_ways(dir: &Path, source: &str, escape: Escape) -> (Template, Template) {
        let compile = |copy| {
            let files = TemplateFiles::new(dir);
            Template::compile("main.hbs".into(), dir.join("main.hbs"), source, escape, false, Some(&files), copy)
                .unwrap()
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
        count(&t.registry.get_template(ROOT).unwrap().elements)
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
