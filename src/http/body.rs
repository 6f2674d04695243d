//! Request bodies, read the same way on every route that reads one (ingest,
//! the console's sign-in and forms): at most a limit of bytes, refused
//! with 413 without buffering them; within `[server] body_timeout`, or 408
//! and a closed connection; and at most [`BodyGate::per_client`] bodies
//! under way per client at once, so that a client that opens connections
//! and sends headers but never its body cannot fill the connection cap
//! (it is answered 429 at once for the bodies past its share).

use super::ApiError;
use crate::auth::ClientKey;
use crate::body_gate::BodyGate;
use crate::http::server::ClientAddr;
use crate::state::AppState;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use warp::{Buf, Filter, Rejection};

/// The body of a request, up to `limit(config)` bytes (see the module's
/// doc).
pub fn read(
    state: AppState,
    limit: fn(&crate::config::Config) -> u64,
) -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and(warp::ext::optional::<ClientAddr>())
        .and(warp::header::optional::<String>("x-forwarded-for"))
        .and(warp::body::stream())
        .and_then(move |declared: Option<u64>, peer: Option<ClientAddr>, forwarded: Option<String>, stream| {
            let state = state.clone();
            async move {
                let (deadline, max_connections, limit) = {
                    let config = &state.loaded.load().config;
                    (config.server.body_timeout, config.server.max_connections, limit(config))
                };
                let client = state.auth.load().client(peer.map(|a| a.0.ip()), forwarded.as_deref()).map(ClientKey::of);
                let _reading = match client {
                    Some(client) => Some(
                        state
                            .bodies
                            .enter(client, BodyGate::per_client(max_connections))
                            .ok_or_else(|| warp::reject::custom(ApiError::TooManyBodies(client)))?,
                    ),
                    None => None,
                };
                // A client that stops sending gets an answer and a closed
                // connection, not a worker held forever.
                tokio::time::timeout(deadline, read_limited(declared, stream, limit))
                    .await
                    .unwrap_or(Err(warp::reject::custom(ApiError::BodyTimeout(deadline))))
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
