//! Digests: a summary of the events of a window, sent on a schedule
//! ([`schedule`]) with figures worked out by [`figures`]. A window is
//! claimed through the store, unique per digest and window, and sent as
//! ordinary deliveries whose payloads are rendered once: retries, dead
//! letters, replay and the attempt log apply, and a replay sends the same
//! digest. [`scheduler`] runs them.

pub mod figures;
pub mod schedule;
pub mod scheduler;

pub use schedule::{Due, Schedule, Window};

use crate::channels::{escape_for, Destination, Payload, Rendered};
use crate::config::{DestinationKind, DigestConfig};
use crate::loaded_config::LoadedConfig;
use crate::problems::{Problem, Problems};
use crate::render::{Escape, EventContext, RenderError, Template, TemplateFiles};
use crate::rules::EvalContext;
use crate::store::{NewDelivery, NewDigest, Store, StoreError};
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;

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
        let named = [Some(("template", &config.template)), config.html_template.as_ref().map(|t| ("html_template", t))];
        for (field, rel) in named.into_iter().flatten() {
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
            let body = Template::load(templates, &config.template, |json| escape_for(kind, json));
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

    /// The payload for each destination, rendered from `context`.
    pub fn payloads(&self, loaded: &LoadedConfig, context: &Value) -> Vec<(String, Result<Payload, RenderError>)> {
        let context = EventContext::new(context.clone());
        self.renderers
            .iter()
            .map(|(name, r)| {
                let payload = loaded
                    .destination(name)
                    .ok_or_else(|| {
                        RenderError::new(
                            self.config.template.clone(),
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
    pub fn stored_payloads(&self, loaded: &LoadedConfig, context: &Value) -> Vec<(String, String)> {
        self.payloads(loaded, context)
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
    /// thread: async callers use [`claim_off_workers`].
    pub fn to_claim(&self, loaded: &LoadedConfig, window: Window, context: &Value, asked: bool) -> NewDigest {
        let empty =
            !asked && context["total"].as_u64() == Some(0) && self.config.empty == crate::config::WhenEmpty::Skip;
        let deliveries = if empty {
            Vec::new()
        } else {
            self.stored_payloads(loaded, context)
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
        }
    }
}

/// [`Digest::to_claim`] for the digest `name` of `loaded`, rendered off
/// the async workers. A render that fails outright makes every delivery
/// go dead saying why.
pub async fn claim_off_workers(
    loaded: &Arc<LoadedConfig>,
    name: &str,
    window: Window,
    context: &Value,
    asked: bool,
) -> NewDigest {
    let (for_render, digest, figures) = (loaded.clone(), name.to_owned(), context.clone());
    let claimed = crate::render::off_workers(move || {
        for_render.digest(&digest).map(|d| d.to_claim(&for_render, window, &figures, asked))
    })
    .await;
    match claimed {
        Ok(Some(claim)) => claim,
        Ok(None) | Err(_) => {
            let reason = match claimed {
                Err(e) => e.to_string(),
                _ => format!("digest \"{name}\" is no longer configured"),
            };
            let to = loaded.digest(name).map(|d| d.config.to.clone()).unwrap_or_default();
            NewDigest {
                digest: name.to_owned(),
                start: window.start,
                end: window.end,
                body: Some(context.to_string()),
                deliveries: to
                    .into_iter()
                    .map(|destination| NewDelivery {
                        destination,
                        routes: vec![format!("digest:{name}")],
                        payload: Some(Payload::stored_failure(&reason)),
                    })
                    .collect(),
            }
        }
    }
}

/// [`Digest::payloads`] for the digest `name` of `loaded`, rendered off
/// the async workers.
pub async fn payloads_off_workers(
    loaded: &Arc<LoadedConfig>,
    name: &str,
    context: &Value,
) -> Vec<(String, Result<Payload, RenderError>)> {
    let (for_render, digest, figures) = (loaded.clone(), name.to_owned(), context.clone());
    let rendered = crate::render::off_workers(move || {
        for_render.digest(&digest).map(|d| d.payloads(&for_render, &figures)).unwrap_or_default()
    })
    .await;
    rendered.unwrap_or_else(|e| {
        let to = loaded.digest(name).map(|d| d.config.to.clone()).unwrap_or_default();
        to.into_iter().map(|destination| (destination, Err(e.clone()))).collect()
    })
}

/// The figures of the shipped sample events as one window: what `check`
/// renders every digest template against.
pub fn sample_context(name: &str) -> Value {
    let now = chrono::Utc::now();
    let events: Vec<Value> = crate::samples::SAMPLE_EVENTS
        .iter()
        .filter_map(|(_, json)| serde_json::from_str::<Value>(json).ok())
        .map(|e| {
            let facts = crate::history::first_flow_facts(&e, now);
            crate::history::with_facts(e, Some(&facts))
        })
        .collect();
    let refs: Vec<&Value> = events.iter().collect();
    let window = Window { start: now - chrono::Duration::days(1), end: now };
    let before = Window { start: now - chrono::Duration::days(2), end: window.start };
    figures::context(name, "UTC", window, before, &refs, &refs[..refs.len() / 2])
}

/// Why a digest command cannot run.
#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    #[error("unknown digest \"{0}\"")]
    Unknown(String),
    #[error("digest \"{0}\" has no complete window before {1}")]
    NoWindow(String, String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A digest worked out for one window.
#[derive(Debug)]
pub struct Preview {
    pub window: Window,
    pub context: Value,
    /// Per destination, the payload or why it cannot be rendered.
    pub payloads: Vec<(String, Result<Payload, RenderError>)>,
}

/// The digest `name` of the last complete window before `at`, rendered
/// for each destination; sends nothing.
pub async fn preview(
    loaded: &Arc<LoadedConfig>,
    store: &dyn Store,
    name: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<Preview, DigestError> {
    let (digest, window) = last_window(loaded, name, at)?;
    let context = digest.context(store, window).await?;
    let payloads = payloads_off_workers(loaded, name, &context).await;
    Ok(Preview { window, context, payloads })
}

/// The digest `name` and its last complete window at `at`.
fn last_window<'a>(
    loaded: &'a LoadedConfig,
    name: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(&'a Digest, Window), DigestError> {
    let digest = loaded.digest(name).ok_or_else(|| DigestError::Unknown(name.to_owned()))?;
    let window = digest
        .config
        .schedule
        .last_complete(at)
        .ok_or_else(|| DigestError::NoWindow(name.to_owned(), at.to_rfc3339()))?;
    Ok((digest, window))
}

/// Claims and queues the digest `name` of the last complete window before
/// `now` (by the store's clock): once per window, whoever asks.
pub async fn send_now(
    loaded: &Arc<LoadedConfig>,
    store: &dyn Store,
    name: &str,
) -> Result<(Window, crate::store::DigestClaim), DigestError> {
    let (digest, window) = last_window(loaded, name, store.now().await?)?;
    let context = digest.context(store, window).await?;
    // Sent on request even when empty: it was asked for.
    let claim = claim_off_workers(loaded, name, window, &context, true).await;
    Ok((window, store.claim_digest(claim).await?))
}

/// Takes `customer`'s quotes out of every digest still stored (its figures,
/// the payloads of its deliveries, rendered again without them, and what
/// its attempts recorded), for `forget`. Returns how many digests changed.
pub async fn forget_customer(loaded: &Arc<LoadedConfig>, store: &dyn Store, customer: &str) -> Result<u64, StoreError> {
    let mut changed = 0;
    for stored in store.digests_quoting(customer).await? {
        let mut figures = stored.figures;
        if let Some(quotes) = figures.get_mut("feedback").and_then(Value::as_array_mut) {
            let before = quotes.len();
            quotes.retain(|q| !crate::store::quote_of(q, customer));
            let removed = (before - quotes.len()) as u64;
            figures["more"] = serde_json::json!(figures["more"].as_u64().unwrap_or(0) + removed);
        }
        // Without templates to write it again with (the digest is no
        // longer configured), what was rendered goes, and a replay says
        // why it cannot send.
        let (for_render, digest, context) = (loaded.clone(), stored.digest.clone(), figures.clone());
        let rendered = crate::render::off_workers(move || {
            for_render.digest(&digest).map(|d| d.stored_payloads(&for_render, &context)).unwrap_or_default()
        })
        .await;
        let why = match &rendered {
            Ok(_) => "it is no longer configured".to_owned(),
            Err(e) => format!("it could not be rendered again: {e}"),
        };
        let payloads = rendered.unwrap_or_default();
        let otherwise = Payload::stored_failure(&format!(
            "digest \"{}\" was written again to forget a customer, and {why}",
            stored.digest
        ));
        let rewrite = crate::store::DigestRewrite {
            event_id: stored.event_id,
            figures: figures.to_string(),
            payloads,
            otherwise,
        };
        store.rewrite_digest(rewrite).await?;
        changed += 1;
    }
    Ok(changed)
}
