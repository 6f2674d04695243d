//! A fast local destination for benchmarks: answers 200 to every POST,
//! counts them, and for bodies that carry `sentAt` (milliseconds since the
//! epoch, put there by the benchmark's template) records how long the event
//! took from its POST to the relay to its arrival here.
//!
//! Usage: `bench_sink ADDR`. `GET /stats` answers
//! `{"count": N, "p50_ms": .., "p99_ms": .., "first_ms": .., "last_ms": ..}`.

use bytes::Bytes;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use warp::Filter;

#[derive(Default)]
struct Stats {
    count: u64,
    latencies_ms: Vec<f64>,
    first_ms: Option<f64>,
    last_ms: Option<f64>,
}

fn now_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let addr: std::net::SocketAddr =
        std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9102".into()).parse().expect("ADDR is host:port");
    let stats = Arc::new(Mutex::new(Stats::default()));
    let recorder = stats.clone();
    let post = warp::post().and(warp::body::bytes()).map(move |body: Bytes| {
        let now = now_ms();
        let sent = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("sentAt").and_then(|s| s.as_str().and_then(|s| s.parse::<f64>().ok()).or(s.as_f64())));
        let mut s = recorder.lock().unwrap();
        s.count += 1;
        s.first_ms.get_or_insert(now);
        s.last_ms = Some(now);
        if let Some(sent) = sent {
            s.latencies_ms.push(now - sent);
        }
        "ok"
    });
    let report = warp::path!("stats").and(warp::get()).map(move || {
        let s = stats.lock().unwrap();
        let mut sorted = s.latencies_ms.clone();
        sorted.sort_by(|a, b| a.total_cmp(b));
        warp::reply::json(&serde_json::json!({
            "count": s.count,
            "p50_ms": percentile(&sorted, 0.50),
            "p99_ms": percentile(&sorted, 0.99),
            "first_ms": s.first_ms,
            "last_ms": s.last_ms,
        }))
    });
    warp::serve(report.or(post)).run(addr).await;
}
