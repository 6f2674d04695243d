//! A digest as the running set holds it: a summary of the events of a
//! window ([`crate::schedule`]), with figures worked out by [`figures`]
//! and templates compiled for each destination it goes to. What is
//! claimed for a window ([`NewDigest`]) is ordinary deliveries whose
//! payloads are rendered once: retries, dead letters, replay and the
//! attempt log apply, and a replay sends the same digest.
//! [`crate::digest_scheduler`] claims and sends them.

pub mod figures;

use crate::schedule::Window;

use crate::channels::{escape_for, Destination, Payload, Rendered};
use crate::config::{DestinationKind, DigestConfig};
use crate::problems::{Problem, Problems};
use crate::render::{Escape, EventContext, RenderError, Template, TemplateFiles};
use crate::rules::EvalContext;
use crate::store::{NewDelivery, NewDigest, Store, StoreError};
use serde_json::Value;
use std::path::Path;

/// The subject of a digest e-mail without a `subject`.
pub const DEFAULT_SUBJECT: &str =
    "Raaft digest: {{total}} flows, {{outcomes.saved}} saved, {{outcomes.canceled}} canceled";

/// A digest with its templates compiled for each destination it goes to.
pub struct Digest {
    pub config: DigestConfig,
    renderers: Vec<(String, Renderer)>,
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Digest").field("name", &self.config.name).finish()
    }
}

/// A digest's templates, escaped for one destination's kind.
struct Renderer {
    body: Template,
    html: Option<Template>,
    subject: Option<Template>,
}

impl Digest {
    /// Compiles `config`'s templates for each of its destinations (which
    /// `destinations` looks up).
    pub fn build<'a>(
        config: &DigestConfig,
        config_file: &Path,
        templates: &TemplateFiles,
        destination: impl Fn(&str) -> Option<&'a Destination>,
    ) -> Result<Digest, Problems> {
        let mut problems = Problems::default();
        let key = |field: &str| format!("digests.{}.{field}", config.name);
        let at =
            |field: &str, message: String| Problem::new(config_file, message).at_line(config.line).with_key(key(field));
        let bodies = config.template.all().into_iter().map(|t| ("template", t));
        for (field, rel) in bodies.chain(config.html_template.as_deref().map(|t| ("html_template", t))) {
            if !templates.exists(rel) {
                problems.push(at(field, format!("template \"{rel}\" not found in \"{}\"", templates.dir().display())));
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut renderers = Vec::new();
        for name in &config.to {
            let Some(dest) = destination(name) else { continue };
            let kind = dest.kind;
            // Validation made sure each destination has one.
            let Some(rel) = config.template.for_destination(name, kind) else { continue };
            let body = Template::load(templates, rel, |json| escape_for(kind, json));
            let email = kind == DestinationKind::Email;
            let html = match (&config.html_template, email) {
                (Some(t), true) => Some(Template::load(templates, t, |_| Escape::Html)),
                _ => None,
            };
            let subject = email.then(|| {
                let source = config.subject.as_deref().unwrap_or(DEFAULT_SUBJECT);
                Template::inline(&key("subject"), source, Escape::None, config_file)
            });
            match (body, html.transpose(), subject.transpose()) {
                (Ok(body), Ok(html), Ok(subject)) => renderers.push((name.clone(), Renderer { body, html, subject })),
                (body, html, subject) => {
                    for problem in [body.err(), html.err(), subject.err()].into_iter().flatten() {
                        problems.push(problem);
                    }
                }
            }
        }
        problems.into_result(Digest { config: config.clone(), renderers })
    }

    /// The template files this digest uses.
    pub fn templates(&self) -> impl Iterator<Item = &Template> {
        self.renderers
            .iter()
            .flat_map(|(_, r)| std::iter::once(&r.body).chain(r.html.as_ref()).chain(r.subject.as_ref()))
    }

    /// The payload for each destination (which `destination` looks up in
    /// the running set), rendered from `context`.
    pub fn payloads<'a>(
        &self,
        destination: impl Fn(&str) -> Option<&'a Destination>,
        context: &Value,
    ) -> Vec<(String, Result<Payload, RenderError>)> {
        let context = EventContext::new(context.clone());
        self.renderers
            .iter()
            .map(|(name, r)| {
                let payload = destination(name)
                    .ok_or_else(|| {
                        RenderError::new(
                            self.config.name.clone(),
                            format!("destination \"{name}\" is no longer configured"),
                        )
                    })
                    .and_then(|dest| {
                        let rendered = Rendered {
                            body: r.body.render_in(&context)?,
                            json: r.body.json,
                            html: r.html.as_ref().map(|t| t.render_in(&context)).transpose()?,
                            subject: r.subject.as_ref().map(|t| t.render_in(&context)).transpose()?,
                        };
                        dest.wrap(rendered, &r.body.name)
                    });
                (name.clone(), payload)
            })
            .collect()
    }

    /// [`Digest::payloads`] as deliveries keep them: a payload that could
    /// not be rendered is kept as its reason, so its delivery goes dead
    /// saying why.
    pub fn stored_payloads<'a>(
        &self,
        destination: impl Fn(&str) -> Option<&'a Destination>,
        context: &Value,
    ) -> Vec<(String, String)> {
        self.payloads(destination, context)
            .into_iter()
            .map(|(destination, payload)| {
                let stored = match payload {
                    Ok(p) => p.to_stored(),
                    Err(e) => Payload::stored_failure(&e.to_string()),
                };
                (destination, stored)
            })
            .collect()
    }

    /// The template context for `window`: the events the store received in
    /// it (and in the window before) that this digest counts.
    pub async fn context(&self, store: &dyn Store, window: Window) -> Result<Value, StoreError> {
        let previous = self.config.schedule.window_before(window);
        let events = store.events_between(window.start, window.end).await?;
        let before = store.events_between(previous.start, previous.end).await?;
        let variables: std::sync::Arc<[String]> = self.config.when.cel_variables().into();
        let eval = |e: &Value| self.config.when.matches(e, &mut EvalContext::reading(variables.clone()));
        let counted: Vec<&Value> = events.iter().map(|e| &e.event).filter(|e| eval(e)).collect();
        let counted_before: Vec<&Value> = before.iter().map(|e| &e.event).filter(|e| eval(e)).collect();
        let timezone = self.config.schedule.timezone().name();
        Ok(figures::context(&self.config.name, timezone, window, previous, &counted, &counted_before))
    }

    /// The digest of `window`, ready to claim: the figures kept as its
    /// event, one delivery per destination with its payload rendered (or
    /// the reason it could not be, so the delivery goes dead saying why).
    /// An empty window of a digest that skips them is claimed as skipped,
    /// unless `asked` (an operator asked for it). Renders on the calling
    /// thread: async callers use [`crate::digest_scheduler::claim_off_workers`].
    pub fn to_claim<'a>(
        &self,
        destination: impl Fn(&str) -> Option<&'a Destination>,
        window: Window,
        context: &Value,
        asked: bool,
    ) -> NewDigest {
        let empty =
            !asked && context["total"].as_u64() == Some(0) && self.config.empty == crate::config::WhenEmpty::Skip;
        let deliveries = if empty {
            Vec::new()
        } else {
            self.stored_payloads(destination, context)
                .into_iter()
                .map(|(destination, payload)| NewDelivery {
                    destination,
                    routes: vec![format!("digest:{}", self.config.name)],
                    payload: Some(payload),
                })
                .collect()
        };
        NewDigest {
            digest: self.config.name.clone(),
            start: window.start,
            end: window.end,
            body: (!empty).then(|| context.to_string()),
            deliveries,
            asked,
        }
    }
}

/// The figures of the shipped sample events as one window: what `check`
/// renders every digest template against.
pub fn sample_context(name: &str) -> Value {
    let now = chrono::Utc::now();
    let events: Vec<Value> = crate::samples::first_flows().into_iter().map(|(_, e)| e).collect();
    let refs: Vec<&Value> = events.iter().collect();
    let window = Window { start: now - chrono::Duration::days(1), end: now };
    let before = Window { start: now - chrono::Duration::days(2), end: window.start };
    figures::context(name, "UTC", window, before, &refs, &refs[..refs.len() / 2])
}
