//! Every refusal the HTTP side answers with: a status and a short JSON
//! reason (`{"error": ...}`), with Retry-After or a closed connection where
//! the status calls for one.

use crate::auth::{Refused, Scheme};
use serde_json::json;
use std::convert::Infallible;
use tracing::warn;
use warp::http::StatusCode;
use warp::{Rejection, Reply};

/// Every refusal the HTTP side can answer with.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// A missing or wrong token of this scheme.
    Unauthorized(Scheme),
    TooLarge(u64),
    BadRequest(String),
    Unavailable(String),
    NotFound(String),
    BodyTimeout(std::time::Duration),
    TooManyFailures(std::time::Duration),
    UnsupportedEncoding(String),
    /// The client has its share of bodies under way already.
    TooManyBodies(crate::auth::ClientKey),
}

impl warp::reject::Reject for ApiError {}

impl From<Refused> for ApiError {
    fn from(refused: Refused) -> ApiError {
        match refused {
            Refused::Unauthorized(scheme) => ApiError::Unauthorized(scheme),
            Refused::TooManyFailures(wait) => ApiError::TooManyFailures(wait),
        }
    }
}

fn error_reply(status: StatusCode, message: &str) -> warp::reply::Response {
    warp::reply::with_status(warp::reply::json(&json!({"error": message})), status).into_response()
}

pub async fn handle_rejection(err: Rejection) -> Result<warp::reply::Response, Infallible> {
    let reply = if let Some(e) = err.find::<ApiError>() {
        match e {
            ApiError::Unauthorized(Scheme::RaaftToken) => {
                error_reply(StatusCode::UNAUTHORIZED, "missing or invalid x-raaft-token")
            }
            ApiError::Unauthorized(Scheme::AdminToken) => {
                let mut reply = error_reply(StatusCode::UNAUTHORIZED, "missing or invalid bearer token");
                let challenge = "Bearer realm=\"raaft-relay\"".parse().expect("a valid header");
                reply.headers_mut().insert(warp::http::header::WWW_AUTHENTICATE, challenge);
                reply
            }
            ApiError::TooLarge(limit) => {
                warn!(limit, "refused a request: body too large");
                error_reply(StatusCode::PAYLOAD_TOO_LARGE, &format!("body exceeds {limit} bytes"))
            }
            ApiError::BadRequest(reason) => {
                warn!(%reason, "refused a request: bad request");
                error_reply(StatusCode::BAD_REQUEST, reason)
            }
            ApiError::Unavailable(reason) => error_reply(StatusCode::SERVICE_UNAVAILABLE, reason),
            ApiError::NotFound(what) => error_reply(StatusCode::NOT_FOUND, what),
            ApiError::UnsupportedEncoding(reason) => {
                warn!(%reason, "refused a request: unsupported content encoding");
                error_reply(StatusCode::UNSUPPORTED_MEDIA_TYPE, reason)
            }
            ApiError::TooManyFailures(wait) => {
                let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                let mut reply = error_reply(
                    StatusCode::TOO_MANY_REQUESTS,
                    &format!("too many failed authentications from this address; retry in {seconds}s"),
                );
                reply.headers_mut().insert(warp::http::header::RETRY_AFTER, seconds.into());
                reply
            }
            ApiError::TooManyBodies(client) => {
                tracing::debug!(%client, "refused a request: too many bodies under way from this client");
                let mut reply = error_reply(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many requests from this address are still sending their body; retry when they are done",
                );
                reply.headers_mut().insert(warp::http::header::RETRY_AFTER, 1.into());
                reply.headers_mut().insert(warp::http::header::CONNECTION, "close".parse().expect("a valid header"));
                reply
            }
            ApiError::BodyTimeout(deadline) => {
                let message = format!("body not received within {}", crate::text::duration(*deadline));
                warn!("refused a request: {message}");
                let mut reply = error_reply(StatusCode::REQUEST_TIMEOUT, &message);
                reply.headers_mut().insert(warp::http::header::CONNECTION, "close".parse().expect("a valid header"));
                reply
            }
        }
    } else if err.is_not_found() {
        error_reply(StatusCode::NOT_FOUND, "not found")
    } else if err.find::<warp::reject::MethodNotAllowed>().is_some() {
        error_reply(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
    } else if let Some(e) = err.find::<warp::reject::InvalidHeader>() {
        error_reply(StatusCode::BAD_REQUEST, &e.to_string())
    } else {
        warn!(rejection = ?err, "unhandled rejection");
        error_reply(StatusCode::BAD_REQUEST, "bad request")
    };
    Ok(reply)
}
