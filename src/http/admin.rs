//! The admin API: deliveries listed, shown and replayed over HTTP for
//! tooling, behind its own bearer tokens (`[admin] tokens`). With no admin
//! token configured the API does not exist (404).

use super::ApiError;
use crate::auth::Scheme;
use crate::http::server::ClientAddr;
use crate::state::AppState;
use crate::store::{ListFilter, Status};
use serde::Deserialize;
use serde_json::json;
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

/// Checks an admin bearer token for a request from `peer`
/// ([`AuthGuard::verify`](crate::auth::AuthGuard::verify) with the admin
/// allowance, `[admin] auth_failures`).
pub fn check_bearer(
    state: &AppState,
    authorization: Option<&str>,
    peer: Option<ClientAddr>,
    forwarded_for: Option<&str>,
) -> Result<(), Rejection> {
    let guard = state.admin_auth.load();
    let client = guard.client(peer.map(|a| a.0.ip()), forwarded_for);
    let presented = authorization.map(|h| h.strip_prefix("Bearer ").unwrap_or("").trim().as_bytes());
    guard
        .verify(Scheme::AdminToken, client, presented, &state.loaded.load().config.admin_tokens)
        .map_err(|refused| warp::reject::custom(ApiError::from(refused)))
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
