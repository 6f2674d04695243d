//! `POST /webhooks/raaft`: the token (after the client's allowance), the
//! body (bounded in size and time, decoded when compressed), the event,
//! its routes and its deliveries, stored before the answer.

use super::ApiError;
use crate::event::Event;
use crate::history::{self, mrr::Mrr, Flow, History};
use crate::http::server::ClientAddr;
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::store::{Enqueued, NewDelivery, NewEvent, NewFlow, StoreError};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde_json::json;
use std::sync::Arc;
use tracing::{info, warn, Instrument};
use warp::{Buf, Filter, Rejection, Reply};

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
/// 429 before its token is looked at; failures count against it.
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
                let limited = |wait| {
                    state.metrics().events.with_label_values(&["unknown", "limited"]).inc();
                    if client.is_some_and(|ip| guard.should_report(ip)) {
                        let shown = client.map(crate::auth::ClientKey::of);
                        warn!(client = %shown.map(|k| k.to_string()).unwrap_or_default(), "too many failed authentications; answering 429 for a while");
                    }
                    warp::reject::custom(ApiError::TooManyFailures(wait))
                };
                if let Some(wait) = client.and_then(|ip| guard.blocked(ip).err()) {
                    return Err(limited(wait));
                }
                match token {
                    Some(t) if state.token_ok(t.as_bytes()) => Ok(state.clone()),
                    presented => {
                        if let Some(wait) = client.and_then(|ip| guard.failed(ip).err()) {
                            return Err(limited(wait));
                        }
                        state.metrics().events.with_label_values(&["unknown", "unauthorized"]).inc();
                        let why = if presented.is_some() { "wrong token" } else { "missing token" };
                        let shown = client.map(|ip| ip.to_string()).unwrap_or_else(|| "unknown".into());
                        warn!(client = %shown, reason = why, "rejected webhook: {why}");
                        Err(warp::reject::custom(ApiError::Unauthorized))
                    }
                }
            }
        })
}

/// Reads the body up to `limit` bytes; larger bodies are refused with 413
/// without buffering them, whether or not they declare a length. A `gzip`
/// or `deflate` body is decoded, with the limit applied to the decoded
/// bytes too; any other `Content-Encoding` gets 415.
fn body_limited(state: AppState) -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and(warp::header::optional::<String>("content-encoding"))
        .and(warp::body::stream())
        .and_then(move |declared: Option<u64>, encoding: Option<String>, stream| {
            let server = &state.loaded.load().config.server;
            let (limit, deadline) = (server.max_body_bytes, server.body_timeout);
            async move {
                let coding = crate::http::encoding::ContentCoding::parse(encoding.as_deref())
                    .map_err(|e| warp::reject::custom(ApiError::UnsupportedEncoding(e.to_string())))?;
                // A client that stops sending gets an answer and a closed
                // connection, not a worker held forever.
                let body = tokio::time::timeout(deadline, read_limited(declared, stream, limit))
                    .await
                    .unwrap_or(Err(warp::reject::custom(ApiError::BodyTimeout(deadline))))?;
                coding.decode(body, limit).map_err(|e| match e {
                    crate::http::encoding::DecodeError::TooLarge => warp::reject::custom(ApiError::TooLarge(limit)),
                    e => warp::reject::custom(ApiError::BadRequest(e.to_string())),
                })
            }
        })
}

/// How much of a refused body is read and thrown away before answering:
/// closing a connection with unread data makes the kernel reset it, and
/// the client may then never see the 413.
const DRAIN_MAX: u64 = 1 << 20;

async fn read_limited<S, B>(declared: Option<u64>, stream: S, limit: u64) -> Result<Bytes, Rejection>
where
    S: futures_util::Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let too_large = || warp::reject::custom(ApiError::TooLarge(limit));
    futures_util::pin_mut!(stream);
    if declared.is_some_and(|len| len > limit) {
        if declared.is_some_and(|len| len <= DRAIN_MAX) {
            drain(stream, 0).await;
        }
        return Err(too_large());
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let mut chunk =
            chunk.map_err(|e| warp::reject::custom(ApiError::BadRequest(format!("cannot read body: {e}"))))?;
        if body.len() as u64 + chunk.remaining() as u64 > limit {
            drain(stream, body.len() as u64 + chunk.remaining() as u64).await;
            return Err(too_large());
        }
        while chunk.has_remaining() {
            let bytes = chunk.chunk();
            body.extend_from_slice(bytes);
            let n = bytes.len();
            chunk.advance(n);
        }
    }
    Ok(body.freeze())
}

/// Reads and discards the rest of a refused body, up to [`DRAIN_MAX`] in
/// all (`read` already read).
async fn drain<S, B>(mut stream: std::pin::Pin<&mut S>, mut read: u64)
where
    S: futures_util::Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    while read <= DRAIN_MAX {
        match stream.next().await {
            Some(Ok(chunk)) => read += chunk.remaining() as u64,
            _ => return,
        }
    }
}

async fn ingest(state: AppState, body: Bytes) -> Result<warp::reply::Response, Rejection> {
    let event = Event::parse(&body).map_err(|e| {
        state.metrics().events.with_label_values(&["unknown", "invalid"]).inc();
        warp::reject::custom(ApiError::BadRequest(e.to_string()))
    })?;
    let outcome = Metrics::outcome_label(event.outcome_field());
    let metrics = state.metrics().clone();
    let count = move |result: &str| metrics.events.with_label_values(&[outcome, result]).inc();
    let key = event.idempotency_key();
    let customer = history::customer_key(&event.raw);
    let span = tracing::info_span!(
        "event",
        event = %key,
        outcome = %event.outcome(),
        customer = %customer.as_deref().unwrap_or("-")
    );
    async move {
        let unavailable = |e: StoreError| {
            count("unavailable");
            warn!(error = %e, "cannot store event");
            warp::reject::custom(ApiError::Unavailable("store unavailable, retry later".into()))
        };
        let loaded = state.loaded.load();
        // What rules and templates read beside the event: its MRR and the
        // customer's history as of now, stored with it.
        let received = chrono::Utc::now();
        let mrr = Mrr::of(&event.raw);
        let earlier = match &customer {
            Some(c) => Some(state.store().history(c, history::PREVIOUS_SHOWN).await.map_err(unavailable)?),
            None => None,
        };
        let past = earlier.map(|earlier| History { now: received, earlier });
        let facts = history::facts(mrr.as_ref(), past.as_ref());
        let flow = customer.as_ref().map(|_| NewFlow::of(&Flow::of("", &event.raw, mrr.as_ref(), received)));
        let outcome_field = event.outcome_field().map(str::to_owned);
        let routed = history::with_facts(Arc::unwrap_or_clone(event.raw), Some(&facts));
        let (targets, matched) = loaded.router.route_with_matches(&routed);
        let deliveries: Vec<NewDelivery> =
            targets.into_iter().map(|t| NewDelivery::rendered_later(t.destination, t.routes)).collect();
        let new_event = NewEvent {
            key,
            // serde_json accepted it, so it is UTF-8.
            body: String::from_utf8_lossy(&body).into_owned(),
            outcome: outcome_field,
            customer,
            facts: Some(facts.to_string()),
            flow,
        };
        match state.store().enqueue(new_event, deliveries).await {
            Ok(Enqueued::Accepted { deliveries }) => {
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
                Ok(accepted(deliveries.len()))
            }
            Ok(Enqueued::Duplicate) => {
                count("duplicate");
                info!("duplicate event ignored");
                Ok(accepted(0))
            }
            Err(e) => Err(unavailable(e)),
        }
    }
    .instrument(span)
    .await
}

fn accepted(deliveries: usize) -> warp::reply::Response {
    warp::reply::json(&json!({"status": "accepted", "deliveries": deliveries})).into_response()
}
