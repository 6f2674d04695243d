//! The bare baseline of the ingest benchmark: a warp server that checks
//! the Raaft token as the relay does (constant time) and answers 200 without
//! doing anything else. What the relay adds is measured against it.
//!
//! Usage: `bench_bare ADDR` with `RAAFT_TOKEN` set.

use bytes::Bytes;
use subtle::ConstantTimeEq;
use warp::http::StatusCode;
use warp::Filter;

#[tokio::main]
async fn main() {
    let addr: std::net::SocketAddr =
        std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9101".into()).parse().expect("ADDR is host:port");
    let token = std::env::var("RAAFT_TOKEN").unwrap_or_else(|_| "bench-token".into());
    let route = warp::path!("webhooks" / "raaft")
        .and(warp::post())
        .and(warp::header::optional::<String>("x-raaft-token"))
        .and(warp::body::bytes())
        .map(move |presented: Option<String>, _body: Bytes| {
            let ok = presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(token.as_bytes())));
            let status = if ok { StatusCode::OK } else { StatusCode::UNAUTHORIZED };
            warp::reply::with_status("{\"status\":\"accepted\"}", status)
        });
    warp::serve(route).run(addr).await;
}
