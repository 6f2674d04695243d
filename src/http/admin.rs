//! The admin API: deliveries listed, shown and replayed over HTTP for
//! tooling, behind its own bearer tokens (`[admin] tokens`). With no admin
//! token configured the API does not exist (404).

use super::ApiError;
use crate::http::server::ClientAddr;
use crate::state::AppState;
use crate::store::{ListFilter, Status};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;
use warp::{Filter, Rejection, Reply};

#[derive(Debug, Deserialize)]
struct ListQuery {
    status: Option<String>,
    destination: Option<String>,
    since: Option<String>,
    limit: Option<usize>,
}

pub fn routes(state: AppState) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let list = warp::path!("admin" / "deliveries")
        .and(warp::get())
        .and(admin(state.clone()))
        .and(warp::query::<ListQuery>())
        .and_then(list);
    let show = warp::path!("admin" / "deliveries" / String).and(warp::get()).and(admin(state.clone())).and_then(show);
    let replay =
        warp::path!("admin" / "deliveries" / String / "replay").and(warp::post()).and(admin(state)).and_then(replay);
    list.or(show).or(replay)
}

/// Whether `authorization` carries one of `tokens` as a bearer token,
/// compared in constant time.
pub fn bearer_ok(tokens: &[String], authorization: Option<&str>) -> bool {
    let presented = authorization.and_then(|h| h.strip_prefix("Bearer ")).unwrap_or("").trim().as_bytes();
    let mut ok = subtle::Choice::from(0);
    for t in tokens {
        ok |= t.as_bytes().ct_eq(presented);
    }
    bool::from(ok) && !tokens.is_empty()
}

/// Checks an admin bearer token for a request from `peer`: a client past
/// its admin allowance (`[admin] auth_failures`) gets 429 before its token
/// is looked at; a wrong token counts against it and is logged at most
/// once a minute per client.
pub fn check_bearer(
    state: &AppState,
    authorization: Option<&str>,
    peer: Option<ClientAddr>,
    forwarded_for: Option<&str>,
) -> Result<(), Rejection> {
    let tokens = &state.loaded.load().config.admin_tokens;
    let guard = state.admin_auth.load();
    let client = guard.client(peer.map(|a| a.0.ip()), forwarded_for);
    if let Some(wait) = client.and_then(|ip| guard.blocked(ip).err()) {
        return Err(warp::reject::custom(ApiError::TooManyFailures(wait)));
    }
    if bearer_ok(tokens, authorization) {
        return Ok(());
    }
    let limited = client.and_then(|ip| guard.failed(ip).err());
    if client.is_none_or(|ip| guard.should_report(ip)) {
        let shown = client.map(|ip| crate::auth::ClientKey::of(ip).to_string()).unwrap_or_else(|| "unknown".into());
        tracing::warn!(client = %shown, "rejected admin request: missing or wrong bearer token (logged once a minute per client)");
    }
    match limited {
        Some(wait) => Err(warp::reject::custom(ApiError::TooManyFailures(wait))),
        None => Err(warp::reject::custom(ApiError::Unauthorized)),
    }
}

/// The request's `authorization` header, peer and `X-Forwarded-For`.
pub fn credentials(
) -> impl Filter<Extract = (Option<String>, Option<ClientAddr>, Option<String>), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization")
        .and(warp::ext::optional::<ClientAddr>())
        .and(warp::header::optional::<String>("x-forwarded-for"))
}

/// Passes with a valid `authorization: Bearer ...`; 404 when the admin API
/// is off, 401 (or 429, past the allowance) otherwise.
pub(super) fn admin(state: AppState) -> impl Filter<Extract = (AppState,), Error = Rejection> + Clone {
    credentials().and_then(move |header: Option<String>, peer: Option<ClientAddr>, forwarded: Option<String>| {
        let state = state.clone();
        async move {
            if state.loaded.load().config.admin_tokens.is_empty() {
                return Err(warp::reject::not_found());
            }
            check_bearer(&state, header.as_deref(), peer, forwarded.as_deref())?;
            Ok(state)
        }
    })
}

fn unavailable(e: crate::store::StoreError) -> Rejection {
    warp::reject::custom(ApiError::Unavailable(e.to_string()))
}

async fn list(state: AppState, q: ListQuery) -> Result<warp::reply::Response, Rejection> {
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(Status::parse(s).ok_or_else(|| {
            warp::reject::custom(ApiError::BadRequest(format!("unknown status \"{s}\" (pending, delivered or dead)")))
        })?),
    };
    let since = match q.since.as_deref() {
        None => None,
        Some(s) => Some(crate::config::parse_duration(s).map_err(|e| warp::reject::custom(ApiError::BadRequest(e)))?),
    };
    let filter = ListFilter {
        status,
        destination: q.destination,
        since,
        limit: q.limit.unwrap_or(100).min(10_000),
        ..Default::default()
    };
    let deliveries = state.store().list(&filter).await.map_err(unavailable)?;
    Ok(warp::reply::json(&json!({ "deliveries": deliveries })).into_response())
}

async fn show(id: String, state: AppState) -> Result<warp::reply::Response, Rejection> {
    match state.store().show(&id).await.map_err(unavailable)? {
        Some(detail) => {
            let mut value = serde_json::to_value(&detail).unwrap_or_default();
            value["last_payload"] = json!(detail.last_payload);
            Ok(warp::reply::json(&value).into_response())
        }
        None => Err(warp::reject::custom(ApiError::NotFound(format!("no delivery \"{id}\"")))),
    }
}

async fn replay(id: String, state: AppState) -> Result<warp::reply::Response, Rejection> {
    let replayed = state.store().replay(std::slice::from_ref(&id)).await.map_err(unavailable)?;
    let Some(r) = replayed.first() else {
        return Err(warp::reject::custom(ApiError::NotFound(format!("no delivery \"{id}\""))));
    };
    state.wake.notify_one();
    // `after_attempt_under_way`: the attempt in flight is not interrupted;
    // the delivery starts over once it is recorded.
    Ok(warp::reply::json(&json!({ "replayed": [&r.id], "after_attempt_under_way": r.after_attempt_under_way }))
        .into_response())
}
