//! Probes and metrics: `/healthz`, `/readyz` and `/metrics`.

use crate::http::server::ClientAddr;
use crate::state::AppState;
use serde_json::json;
use warp::http::StatusCode;
use warp::{Rejection, Reply};

/// 200 while the config is loaded and the store answers; 503 with the
/// reason otherwise.
pub async fn readyz(state: AppState) -> Result<warp::reply::Response, Rejection> {
    match state.store().ping().await {
        Ok(()) => Ok(warp::reply::json(&json!({"status": "ready"})).into_response()),
        Err(e) => Ok(warp::reply::with_status(
            warp::reply::json(&json!({"status": "unavailable", "reason": e.to_string()})),
            StatusCode::SERVICE_UNAVAILABLE,
        )
        .into_response()),
    }
}

pub async fn metrics(
    state: AppState,
    authorization: Option<String>,
    peer: Option<ClientAddr>,
    forwarded_for: Option<String>,
) -> Result<warp::reply::Response, Rejection> {
    let loaded = state.loaded.load_full();
    if !loaded.config.server.metrics {
        return Err(warp::reject::not_found());
    }
    if loaded.config.metrics_auth {
        crate::http::admin::check_bearer(&state, authorization.as_deref(), peer, forwarded_for.as_deref())?;
    }
    let text = state.metrics().render();
    Ok(warp::http::Response::builder()
        .header("content-type", "text/plain; version=0.0.4")
        .body(text.into())
        .unwrap_or_default())
}
