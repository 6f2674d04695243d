//! The forwarding ceiling of the ingest benchmark: the bare baseline that
//! also sends each accepted body on to the receiver, as any relay that
//! delivers while it ingests must, with nothing stored, parsed or rendered.
//! It shows how much of the machine the outbound deliveries and the
//! receiver take before the relay does any work of its own.
//!
//! Usage: `bench_forward ADDR SINK_URL` with `RAAFT_TOKEN` set.

use bytes::Bytes;
use subtle::ConstantTimeEq;
use warp::http::StatusCode;
use warp::Filter;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let addr: std::net::SocketAddr =
        args.next().unwrap_or_else(|| "127.0.0.1:9102".into()).parse().expect("ADDR is host:port");
    let sink = args.next().unwrap_or_else(|| "http://127.0.0.1:9100/in".into());
    let token = std::env::var("RAAFT_TOKEN").unwrap_or_else(|_| "bench-token".into());
    let client = reqwest::Client::new();
    let route = warp::path!("webhooks" / "raaft")
        .and(warp::post())
        .and(warp::header::optional::<String>("x-raaft-token"))
        .and(warp::body::bytes())
        .map(move |presented: Option<String>, body: Bytes| {
            let ok = presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(token.as_bytes())));
            if !ok {
                return warp::reply::with_status("{\"error\":\"unauthorized\"}", StatusCode::UNAUTHORIZED);
            }
            let request = client.post(&sink).header("content-type", "application/json").body(body);
            tokio::spawn(async move {
                if let Ok(response) = request.send().await {
                    let _ = response.bytes().await;
                }
            });
            warp::reply::with_status("{\"status\":\"accepted\"}", StatusCode::OK)
        });
    warp::serve(route).run(addr).await;
}
