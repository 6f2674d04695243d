//! The HTTP side: the routes Raaft reaches (ingest, probes), the
//! operators' API (admin, metrics, customers), how refusals are answered,
//! and the pieces the web console shares with them (bodies, credentials,
//! the client's address). [`server`] accepts the connections;
//! [`crate::routes`] puts these routes and the console's on each listener.

pub mod admin;
pub mod body;
pub mod customers;
pub mod encoding;
pub mod ingest;
pub mod probes;
pub mod rejection;
pub mod server;

use crate::state::AppState;
use std::convert::Infallible;
use warp::Filter;

pub(crate) use rejection::ApiError;

/// The running state, for a route's handler.
pub(crate) fn with_state(state: AppState) -> impl Filter<Extract = (AppState,), Error = Infallible> + Clone {
    warp::any().map(move || state.clone())
}
