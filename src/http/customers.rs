//! The admin API for customers and digests: `GET /admin/customers/ID`
//! (history), `DELETE /admin/customers/ID` (forget),
//! `GET /admin/digests/NAME/preview[?at=TIME]` and
//! `POST /admin/digests/NAME/send`.

use super::admin::admin;
use super::ApiError;
use crate::history::Flow;
use crate::state::AppState;
use crate::store::DigestClaim;
use serde::Deserialize;
use serde_json::{json, Value};
use warp::{Filter, Rejection, Reply};

#[derive(Debug, Deserialize)]
struct PreviewQuery {
    at: Option<String>,
}

pub fn routes(state: AppState) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let history =
        warp::path!("admin" / "customers" / String).and(warp::get()).and(admin(state.clone())).and_then(history);
    let forget =
        warp::path!("admin" / "customers" / String).and(warp::delete()).and(admin(state.clone())).and_then(forget);
    let preview = warp::path!("admin" / "digests" / String / "preview")
        .and(warp::get())
        .and(admin(state.clone()))
        .and(warp::query::<PreviewQuery>())
        .and_then(preview);
    let send = warp::path!("admin" / "digests" / String / "send").and(warp::post()).and(admin(state)).and_then(send);
    history.or(forget).or(preview).or(send)
}

/// A customer's flows as JSON, newest first.
pub fn history_json(customer: &str, flows: &[Flow]) -> Value {
    let flows: Vec<Value> = flows
        .iter()
        .map(|f| {
            json!({
                "at": f.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "event": f.event,
                "outcome": f.outcome,
                "plan": f.plan,
                "monthly": f.monthly,
                "currency": f.currency,
                "motivator": f.motivator,
                "offer": f.offer,
            })
        })
        .collect();
    json!({"customer": customer, "flows": flows})
}

fn unavailable(e: crate::store::StoreError) -> Rejection {
    warp::reject::custom(ApiError::Unavailable(e.to_string()))
}

/// Path segments arrive percent-encoded (an e-mail's `@` as `%40`).
fn decoded(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment).decode_utf8_lossy().into_owned()
}

async fn history(customer: String, state: AppState) -> Result<warp::reply::Response, Rejection> {
    let customer = decoded(&customer);
    let (key, flows) = crate::store::customer_history(state.store().as_ref(), &customer).await.map_err(unavailable)?;
    Ok(warp::reply::json(&history_json(&key, &flows)).into_response())
}

/// Forgets a customer by id or e-mail address: what was erased under each
/// id (`customers`, empty when nothing was kept) and in all (`forgotten`).
async fn forget(customer: String, state: AppState) -> Result<warp::reply::Response, Rejection> {
    let customer = decoded(&customer);
    let loaded = state.loaded.load_full();
    let erasure = crate::forget::forget(&loaded, state.store().as_ref(), &customer).await.map_err(unavailable)?;
    let all = crate::forget::total(&erasure);
    tracing::info!(
        customers = erasure.customers.len(),
        flows = all.flows,
        events = all.events,
        deliveries = all.deliveries,
        digests = all.digests,
        "customer forgotten"
    );
    let mut answer = json!({"customer": customer.trim(), "forgotten": all, "customers": erasure.customers});
    if erasure.customers.is_empty() {
        answer["note"] = json!("found nothing to forget: no event, flow or digest of the relay names this customer");
    }
    if let Some(why) = &erasure.unscrubbed {
        tracing::warn!(error = %why, "customer erased, but the store's files may still hold the text");
        answer["warning"] = json!(format!("erased, but the store's files may still hold the erased text: {why}"));
    }
    Ok(warp::reply::json(&answer).into_response())
}

fn digest_error(e: crate::digest_scheduler::DigestError) -> Rejection {
    match e {
        crate::digest_scheduler::DigestError::Unknown(_) => warp::reject::custom(ApiError::NotFound(e.to_string())),
        crate::digest_scheduler::DigestError::NoWindow(..) => warp::reject::custom(ApiError::BadRequest(e.to_string())),
        crate::digest_scheduler::DigestError::Store(e) => unavailable(e),
    }
}

async fn preview(name: String, state: AppState, q: PreviewQuery) -> Result<warp::reply::Response, Rejection> {
    let at = match q.at.as_deref() {
        Some(t) => chrono::DateTime::parse_from_rfc3339(t)
            .map_err(|_| {
                warp::reject::custom(ApiError::BadRequest(format!(
                    "at \"{t}\" is not an RFC 3339 time (e.g. 2026-12-01T09:00:00Z)"
                )))
            })?
            .with_timezone(&chrono::Utc),
        None => state.store().now().await.map_err(unavailable)?,
    };
    let loaded = state.loaded.load_full();
    let preview =
        crate::digest_scheduler::preview(&loaded, state.store().as_ref(), &name, at).await.map_err(digest_error)?;
    let payloads: serde_json::Map<String, Value> = preview
        .payloads
        .iter()
        .map(|(dest, p)| {
            let shown = match p {
                Ok(p) => json!({"payload": p.display()}),
                Err(e) => json!({"error": e.to_string()}),
            };
            (dest.clone(), shown)
        })
        .collect();
    Ok(warp::reply::json(&json!({"digest": name, "context": preview.context, "destinations": payloads}))
        .into_response())
}

async fn send(name: String, state: AppState) -> Result<warp::reply::Response, Rejection> {
    let loaded = state.loaded.load_full();
    let (window, claim) =
        crate::digest_scheduler::send_now(&loaded, state.store().as_ref(), &name).await.map_err(digest_error)?;
    let window = json!({"start": window.start.to_rfc3339(), "end": window.end.to_rfc3339()});
    match claim {
        DigestClaim::Queued { event_id, deliveries } => {
            state.wake.notify_one();
            Ok(warp::reply::json(&json!({"digest": name, "window": window, "event": event_id, "deliveries": deliveries}))
                .into_response())
        }
        DigestClaim::Taken(w) => Ok(warp::reply::with_status(
            warp::reply::json(&json!({"digest": name, "window": window, "error": "this window was claimed already", "event": w.event_id})),
            warp::http::StatusCode::CONFLICT,
        )
        .into_response()),
        DigestClaim::Skipped => Ok(warp::reply::json(&json!({"digest": name, "window": window})).into_response()),
    }
}
