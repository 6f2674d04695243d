//! Probes and metrics: `/healthz`, `/readyz` and `/metrics`. The listener
//! Raaft reaches is the public internet's: there `/readyz` says only
//! whether the relay is ready (why not goes to the log), and `/metrics`
//! answers only a request with an admin token. The operators' own
//! listener (`[admin] listen`) says why, and serves `/metrics` as
//! configured.

use crate::http::server::ClientAddr;
use crate::state::AppState;
use serde_json::json;
use warp::http::StatusCode;
use warp::{Rejection, Reply};

/// Where a probe or `/metrics` is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// The listener Raaft reaches.
    Public,
    /// `[admin] listen`.
    Operators,
}

/// 200 while the config is loaded and the store answers; 503 otherwise,
/// with the reason on the operators' listener only (and in the log).
pub async fn readyz(state: AppState, listener: Listener) -> Result<warp::reply::Response, Rejection> {
    match state.store().ping().await {
        Ok(()) => Ok(warp::reply::json(&json!({"status": "ready"})).into_response()),
        Err(e) => {
            if report_now() {
                tracing::warn!(error = %e, "not ready: the store does not answer (logged once a minute)");
            }
            let body = match listener {
                Listener::Operators => json!({"status": "unavailable", "reason": e.to_string()}),
                Listener::Public => json!({"status": "unavailable"}),
            };
            Ok(warp::reply::with_status(warp::reply::json(&body), StatusCode::SERVICE_UNAVAILABLE).into_response())
        }
    }
}

/// Whether a failed readiness probe is logged now: at most once a minute,
/// however often the public asks.
fn report_now() -> bool {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let last = LAST.load(Ordering::Relaxed);
    (last == 0 || now.saturating_sub(last) >= 60)
        && LAST.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
}

/// Prometheus text: on the operators' listener as configured
/// (`metrics_auth`); on the public one, only with an admin token (404
/// without admin tokens).
pub async fn metrics(
    state: AppState,
    listener: Listener,
    authorization: Option<String>,
    peer: Option<ClientAddr>,
    forwarded_for: Option<String>,
) -> Result<warp::reply::Response, Rejection> {
    let loaded = state.loaded.load_full();
    if !loaded.config.server.metrics {
        return Err(warp::reject::not_found());
    }
    let needs_token = match listener {
        Listener::Operators => loaded.config.metrics_auth,
        Listener::Public if loaded.config.admin_tokens.is_empty() => return Err(warp::reject::not_found()),
        Listener::Public => true,
    };
    if needs_token {
        crate::http::admin::check_bearer(&state, authorization.as_deref(), peer, forwarded_for.as_deref())?;
    }
    let text = state.metrics().render();
    Ok(warp::http::Response::builder()
        .header("content-type", "text/plain; version=0.0.4")
        .body(text.into())
        .unwrap_or_default())
}
