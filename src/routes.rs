//! What each listener serves: the one Raaft reaches (ingest and the
//! probes, plus the operators' routes when they have no listener of their
//! own) and the operators' listener (`[admin] listen`): the admin API,
//! `/metrics`, the probes and the web console. [`crate::http::server`]
//! serves these on its connections.

use crate::http::{self, probes::Listener, with_state};
use crate::state::AppState;
use std::convert::Infallible;
use warp::{Filter, Reply};

/// What the listener Raaft reaches serves: ingest and the probes, plus the
/// operators' routes when they have no listener of their own
/// (`operators_here`); otherwise those answer 404 here.
pub fn public_routes(
    state: AppState,
    operators_here: bool,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let operators = warp::any()
        .and_then(move || async move {
            if operators_here {
                Ok(())
            } else {
                Err(warp::reject::not_found())
            }
        })
        .untuple_one()
        .and(operator_routes(state.clone(), state.tls.is_some(), Listener::Public));
    http::ingest::route(state.clone())
        .or(probes(state, Listener::Public))
        .or(operators)
        .recover(http::rejection::handle_rejection)
}

/// What the operators' listener (`[admin] listen`) serves: the admin API,
/// `/metrics` and the probes.
pub fn admin_listener_routes(state: AppState) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    operator_routes(state.clone(), false, Listener::Operators)
        .or(probes(state, Listener::Operators))
        .recover(http::rejection::handle_rejection)
}

/// `/healthz` and `/readyz`.
fn probes(
    state: AppState,
    listener: Listener,
) -> impl Filter<Extract = (impl Reply,), Error = warp::Rejection> + Clone {
    let healthz =
        warp::path!("healthz").and(warp::get()).map(|| warp::reply::json(&serde_json::json!({"status": "ok"})));
    let readyz = warp::path!("readyz")
        .and(warp::get())
        .and(with_state(state))
        .and(warp::any().map(move || listener))
        .and_then(http::probes::readyz);
    healthz.or(readyz)
}

/// `/metrics`, the admin API and the console (`secure`: served over TLS),
/// on `listener`.
fn operator_routes(
    state: AppState,
    secure: bool,
    listener: Listener,
) -> impl Filter<Extract = (impl Reply,), Error = warp::Rejection> + Clone {
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(warp::any().map(move || listener))
        .and(http::admin::credentials())
        .and_then(http::probes::metrics);
    metrics
        .or(http::admin::routes(state.clone()))
        .or(http::customers::routes(state.clone()))
        .or(crate::console::routes(state, secure))
}
