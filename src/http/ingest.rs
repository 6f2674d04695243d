//! `POST /webhooks/raaft`: the token (after the client's allowance), the
//! body (bounded in size and time, decoded when compressed), the event,
//! its routes and its deliveries, stored before the answer.

use super::ApiError;
use crate::auth::{Refused, Scheme};
use crate::event::Event;
use crate::history::{self, mrr::Mrr, Flow, History};
use crate::http::server::ClientAddr;
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::store::{Enqueued, NewDelivery, NewEvent, NewFlow, StoreError};
use bytes::Bytes;
use serde_json::json;
use std::sync::Arc;
use tracing::{info, warn, Instrument};
use warp::{Filter, Rejection, Reply};

/// The ingest route.
pub fn route(state: AppState) -> impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone {
    warp::path!("webhooks" / "raaft")
        .and(warp::post())
        .and(authorized(state.clone()))
        .and(body_limited(state))
        .and_then(ingest)
}

/// Lets the request through only with a valid `x-raaft-token`; the body is
/// not read otherwise. A client past its allowance of failures is answered
/// 429 before its token is looked at; failures count against it
/// ([`AuthGuard::verify`](crate::auth::AuthGuard::verify)).
fn authorized(state: AppState) -> impl Filter<Extract = (AppState,), Error = Rejection> + Clone {
    warp::header::optional::<String>("x-raaft-token")
        .or(warp::any().map(|| None))
        .unify()
        .and(warp::ext::optional::<ClientAddr>())
        .and(warp::header::optional::<String>("x-forwarded-for").or(warp::any().map(|| None)).unify())
        .and_then(move |token: Option<String>, peer: Option<ClientAddr>, forwarded_for: Option<String>| {
            let state = state.clone();
            async move {
                let guard = state.auth.load();
                let client = guard.client(peer.map(|a| a.0.ip()), forwarded_for.as_deref());
                let tokens = &state.loaded.load().config.tokens;
                match guard.verify(Scheme::RaaftToken, client, token.as_deref().map(str::as_bytes), tokens) {
                    Ok(()) => Ok(state.clone()),
                    Err(refused) => {
                        let result = match refused {
                            Refused::TooManyFailures(_) => "limited",
                            Refused::Unauthorized(_) => "unauthorized",
                        };
                        state.metrics().events.with_label_values(&["unknown", result]).inc();
                        Err(warp::reject::custom(ApiError::from(refused)))
                    }
                }
            }
        })
}

/// Reads the body up to `max_body_bytes` (see [`super::body`]). A `gzip`
/// or `deflate` body is decoded, with the limit applied to the decoded
/// bytes too; any other `Content-Encoding` gets 415 before the body is
/// read.
fn body_limited(state: AppState) -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
    let limit = |config: &crate::config::Config| config.server.max_body_bytes;
    warp::header::optional::<String>("content-encoding")
        .and_then(|encoding: Option<String>| async move {
            crate::http::encoding::ContentCoding::parse(encoding.as_deref())
                .map_err(|e| warp::reject::custom(ApiError::UnsupportedEncoding(e.to_string())))
        })
        .and(super::body::read(state.clone(), limit))
        .and_then(move |coding: crate::http::encoding::ContentCoding, body: Bytes| {
            let limit = limit(&state.loaded.load().config);
            async move {
                coding.decode(body, limit).map_err(|e| match e {
                    crate::http::encoding::DecodeError::TooLarge => warp::reject::custom(ApiError::TooLarge(limit)),
                    e => warp::reject::custom(ApiError::BadRequest(e.to_string())),
                })
            }
        })
}

async fn ingest(state: AppState, body: Bytes) -> Result<warp::reply::Response, Rejection> {
    let event = Event::parse(&body).map_err(|e| {
        state.metrics().events.with_label_values(&["unknown", "invalid"]).inc();
        warp::reject::custom(ApiError::BadRequest(e.to_string()))
    })?;
    let outcome = Metrics::outcome_label(event.outcome_field());
    let metrics = state.metrics().clone();
    let count = move |result: &str| metrics.events.with_label_values(&[outcome, result]).inc();
    let dedup_key = event.dedup_key();
    let customer = history::customer_key(&event.raw);
    let span = tracing::info_span!(
        "event",
        event_id = tracing::field::Empty,
        dedup_key = %dedup_key,
        outcome = %event.outcome(),
        customer = %customer.as_deref().map(|c| crate::redact::customer(c, &state.log_key)).unwrap_or_else(|| "-".into())
    );
    async move {
        let unavailable = |e: StoreError| {
            count("unavailable");
            warn!(error = %e, "cannot store event");
            warp::reject::custom(ApiError::Unavailable("store unavailable, retry later".into()))
        };
        let (new_event, deliveries, matched) =
            routed(&state, event, &body, dedup_key, customer).await.map_err(unavailable)?;
        match state.store().enqueue(new_event, deliveries).await {
            Ok(Enqueued::Accepted { event_id, deliveries }) => {
                tracing::Span::current().record("event_id", event_id.as_str());
                count("accepted");
                for route in &matched {
                    state.metrics().route_matches.with_label_values(&[route]).inc();
                }
                if deliveries.is_empty() {
                    state.metrics().unrouted.inc();
                    info!("event matched no route");
                } else {
                    state.wake.notify_one();
                    info!(deliveries = deliveries.len(), "event accepted");
                }
                Ok(answer("accepted", deliveries.len()))
            }
            Ok(Enqueued::Duplicate) => {
                count("duplicate");
                info!("duplicate event: delivered already or queued, not delivered again");
                Ok(answer("duplicate", 0))
            }
            Err(e) => Err(unavailable(e)),
        }
    }
    .instrument(span)
    .await
}

/// The event to store, with what rules and templates read beside it (its
/// MRR and the customer's history as of now), the deliveries its routes
/// ask for, and the routes that matched.
async fn routed(
    state: &AppState,
    event: Event,
    body: &[u8],
    dedup_key: String,
    customer: Option<String>,
) -> Result<(NewEvent, Vec<NewDelivery>, Vec<String>), StoreError> {
    let received = chrono::Utc::now();
    let mrr = Mrr::of(&event.raw);
    let earlier = match &customer {
        Some(c) => Some(state.store().history(c, history::PREVIOUS_SHOWN).await?),
        None => None,
    };
    let past = earlier.map(|earlier| History { now: received, earlier });
    let facts = history::facts(mrr.as_ref(), past.as_ref());
    let flow = customer.as_ref().map(|_| NewFlow::of(&Flow::of("", &event.raw, mrr.as_ref(), received)));
    let outcome = event.outcome_field().map(str::to_owned);
    let routed = history::with_facts(Arc::unwrap_or_clone(event.raw), Some(&facts));
    let loaded = state.loaded.load();
    let (targets, matched) = loaded.router.route_with_matches(&routed);
    let matched = matched.into_iter().map(str::to_owned).collect();
    let deliveries = targets.into_iter().map(|t| NewDelivery::rendered_later(t.destination, t.routes)).collect();
    let new_event = NewEvent {
        dedup_key,
        // serde_json accepted it, so it is UTF-8.
        body: String::from_utf8_lossy(body).into_owned(),
        outcome,
        customer,
        facts: Some(facts.to_string()),
        flow,
    };
    Ok((new_event, deliveries, matched))
}

/// The 200 answer: `accepted` (stored, with the deliveries it queued) or
/// `duplicate` (a retry of an event already stored: nothing queued).
fn answer(status: &str, deliveries: usize) -> warp::reply::Response {
    warp::reply::json(&json!({"status": status, "deliveries": deliveries})).into_response()
}
