//! The digest scheduler: once a second, each digest's next window is
//! looked at on the store's clock; a window that has ended (and settled)
//! is worked out, rendered and claimed. The claim is the store's: a
//! restart, a reload or another replica reaching the same window finds it
//! taken, so each window is sent once. An operator can also preview a
//! digest or send one now ([`preview`], [`send_now`]).

use crate::channels::Payload;
use crate::digest::Digest;
use crate::loaded_config::LoadedConfig;
use crate::render::RenderError;
use crate::schedule::{Due, Window};
use crate::store::{DigestClaim, NewDelivery, NewDigest, Store, StoreError};
use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tracing::{info, warn};

/// How often the scheduler looks.
const TICK: Duration = Duration::from_secs(1);

/// How long after a window's end its digest is worked out: an event whose
/// receipt was stamped just before the end may still be committing.
pub const SETTLE: Duration = Duration::from_secs(2);

/// Runs until `stop` turns true, reading digests from the running set
/// `loaded` at each look; `wake` is told when a digest queued deliveries.
pub async fn run(
    loaded: Arc<ArcSwap<LoadedConfig>>,
    store: Arc<dyn Store>,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    // Per digest (and schedule), a window end not yet reached: no store
    // read until then.
    let mut waiting: HashMap<(String, String), DateTime<Utc>> = HashMap::new();
    loop {
        let running = loaded.load_full();
        if running.digests().next().is_some() {
            if let Err(e) = tick(store.as_ref(), &wake, &running, &mut waiting).await {
                warn!(error = %e, "cannot run digests");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = stop.changed() => return,
        }
    }
}

async fn tick(
    store: &dyn Store,
    wake: &Notify,
    loaded: &Arc<LoadedConfig>,
    waiting: &mut HashMap<(String, String), DateTime<Utc>>,
) -> Result<(), StoreError> {
    let now = store.now().await? - chrono::Duration::from_std(SETTLE).expect("small");
    for digest in loaded.digests() {
        let key = (digest.config.name.clone(), format!("{:?}", digest.config.schedule));
        if waiting.get(&key).is_some_and(|until| *until > now) {
            continue;
        }
        waiting.remove(&key);
        // Several windows may be due at once (skipped ones, then the last).
        for _ in 0..8 {
            match advance(store, loaded, digest, now).await? {
                Some(until) => {
                    waiting.insert(key.clone(), until);
                    break;
                }
                None => {
                    wake.notify_one();
                    continue;
                }
            }
        }
    }
    Ok(())
}

/// Takes one step for `digest` at `now`: claims the next window if it is
/// due. Returns when to look again, or `None` to look again at once.
pub async fn advance(
    store: &dyn Store,
    loaded: &Arc<LoadedConfig>,
    digest: &Digest,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let name = &digest.config.name;
    let last = store.last_digest_window(name).await?;
    let catch_up = loaded.config.history.catch_up;
    match digest.config.schedule.due(last.map(|w| w.end), now, catch_up) {
        Due::Wait { until } => Ok(Some(until)),
        Due::Skip(window) => {
            let claim = NewDigest {
                digest: name.clone(),
                start: window.start,
                end: window.end,
                body: None,
                deliveries: Vec::new(),
                asked: false,
            };
            if store.claim_digest(claim).await? == DigestClaim::Skipped {
                warn!(
                    digest = %name,
                    from = %window.start.to_rfc3339(),
                    to = %window.end.to_rfc3339(),
                    catch_up = %crate::text::duration(catch_up),
                    "digest windows ended longer ago than [history] catch_up: skipped, not sent"
                );
            }
            Ok(None)
        }
        Due::Send(window) => {
            let context = digest.context(store, window).await?;
            let claim = claim_off_workers(loaded, name, window, &context, false).await;
            let sent = claim.body.is_some();
            match store.claim_digest(claim).await? {
                DigestClaim::Queued { deliveries, .. } => {
                    info!(digest = %name, window_end = %window.end.to_rfc3339(), events = %context["total"], deliveries = deliveries.len(), "digest queued");
                }
                DigestClaim::Skipped if !sent => {
                    info!(digest = %name, window_end = %window.end.to_rfc3339(), "digest window had no event; not sent (empty = \"skip\")");
                }
                DigestClaim::Skipped | DigestClaim::Taken(_) => {}
            }
            Ok(None)
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
        for_render.digest(&digest).map(|d| d.to_claim(|n| for_render.destination(n), window, &figures, asked))
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
                asked,
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
        for_render.digest(&digest).map(|d| d.payloads(|n| for_render.destination(n), &figures)).unwrap_or_default()
    })
    .await;
    rendered.unwrap_or_else(|e| {
        let to = loaded.digest(name).map(|d| d.config.to.clone()).unwrap_or_default();
        to.into_iter().map(|destination| (destination, Err(e.clone()))).collect()
    })
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
) -> Result<(Window, DigestClaim), DigestError> {
    let (digest, window) = last_window(loaded, name, store.now().await?)?;
    let context = digest.context(store, window).await?;
    // Sent on request even when empty: it was asked for.
    let claim = claim_off_workers(loaded, name, window, &context, true).await;
    Ok((window, store.claim_digest(claim).await?))
}
