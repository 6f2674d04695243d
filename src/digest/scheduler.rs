//! The digest scheduler: once a second, each digest's next window is
//! looked at on the store's clock; a window that has ended (and settled)
//! is worked out, rendered and claimed. The claim is the store's: a
//! restart, a reload or another replica reaching the same window finds it
//! taken, so each window is sent once.

use super::{Digest, Due};
use crate::loaded_config::LoadedConfig;
use crate::state::AppState;
use crate::store::{DigestClaim, Store};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{info, warn};

/// How often the scheduler looks.
const TICK: Duration = Duration::from_secs(1);

/// How long after a window's end its digest is worked out: an event whose
/// receipt was stamped just before the end may still be committing.
pub const SETTLE: Duration = Duration::from_secs(2);

/// Runs until `stop` turns true.
pub async fn run(state: AppState, mut stop: watch::Receiver<bool>) {
    // Per digest (and schedule), a window end not yet reached: no store
    // read until then.
    let mut waiting: HashMap<(String, String), DateTime<Utc>> = HashMap::new();
    loop {
        let loaded = state.loaded.load_full();
        if loaded.digests().next().is_some() {
            if let Err(e) = tick(&state, &loaded, &mut waiting).await {
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
    state: &AppState,
    loaded: &Arc<LoadedConfig>,
    waiting: &mut HashMap<(String, String), DateTime<Utc>>,
) -> Result<(), crate::store::StoreError> {
    let store = state.store();
    let now = store.now().await? - chrono::Duration::from_std(SETTLE).expect("small");
    for digest in loaded.digests() {
        let key = (digest.config.name.clone(), format!("{:?}", digest.config.schedule));
        if waiting.get(&key).is_some_and(|until| *until > now) {
            continue;
        }
        waiting.remove(&key);
        // Several windows may be due at once (skipped ones, then the last).
        for _ in 0..8 {
            match advance(store.as_ref(), loaded, digest, now).await? {
                Some(until) => {
                    waiting.insert(key.clone(), until);
                    break;
                }
                None => {
                    state.wake.notify_one();
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
) -> Result<Option<DateTime<Utc>>, crate::store::StoreError> {
    let name = &digest.config.name;
    let last = store.last_digest_window(name).await?;
    let catch_up = loaded.config.history.catch_up;
    match digest.config.schedule.due(last.map(|w| w.end), now, catch_up) {
        Due::Wait { until } => Ok(Some(until)),
        Due::Skip(window) => {
            let claim = crate::store::NewDigest {
                digest: name.clone(),
                start: window.start,
                end: window.end,
                body: None,
                deliveries: Vec::new(),
            };
            if store.claim_digest(claim).await? == DigestClaim::Skipped {
                warn!(
                    digest = %name,
                    from = %window.start.to_rfc3339(),
                    to = %window.end.to_rfc3339(),
                    catch_up = %humantime::format_duration(catch_up),
                    "digest windows ended longer ago than [history] catch_up: skipped, not sent"
                );
            }
            Ok(None)
        }
        Due::Send(window) => {
            let context = digest.context(store, window).await?;
            let claim = super::claim_off_workers(loaded, name, window, &context, false).await;
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
