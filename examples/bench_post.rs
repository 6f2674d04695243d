//! Posts unique Raaft events (the documented example with its own `flowId`
//! and a `sentAt` time) to a relay: at a steady rate for the end-to-end
//! figure, or as fast as a number of connections allow for the backlog.
//!
//! Usage: `bench_post URL --rate 200 --seconds 10` or
//! `bench_post URL --count 100000 --connections 64`, with `RAAFT_TOKEN` set.
//! Prints `sent N accepted N failed N seconds S`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const EXAMPLE: &str = include_str!("../config/events/saved-switch-plan.json");

fn arg(name: &str) -> Option<u64> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok())
}

fn body(template: &serde_json::Value, n: u64) -> String {
    let mut event = template.clone();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
    // Unique, and random like the customer ids of real events, so events
    // land all over the store's idempotency-key index as they would.
    event["flowId"] = serde_json::json!(format!("{:016x}-{n}", rand::random::<u64>()));
    // A customer drawn from a million, so each customer's history is short,
    // as in production.
    let customer = serde_json::json!(format!("cus_{}", rand::random::<u32>() % 1_000_000));
    event["customer"]["id"] = customer.clone();
    event["subscription"]["customer"]["id"] = customer;
    event["sentAt"] = serde_json::json!(now.to_string());
    event.to_string()
}

#[tokio::main]
async fn main() {
    let url =
        std::env::args().nth(1).expect("usage: bench_post URL [--rate N --seconds S | --count N --connections C]");
    let token = std::env::var("RAAFT_TOKEN").unwrap_or_else(|_| "bench-token".into());
    let template: serde_json::Value = serde_json::from_str(EXAMPLE).expect("the example is JSON");
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build().expect("client");
    let accepted = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let post = {
        let (accepted, failed) = (accepted.clone(), failed.clone());
        move |n: u64| {
            let (client, url, token, accepted, failed) =
                (client.clone(), url.clone(), token.clone(), accepted.clone(), failed.clone());
            let body = body(&template, n);
            async move {
                match client.post(&url).header("x-raaft-token", token).body(body).send().await {
                    Ok(r) if r.status().is_success() => accepted.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }
    };
    let sent = if let Some(rate) = arg("--rate") {
        let seconds = arg("--seconds").unwrap_or(10);
        let total = rate * seconds;
        let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
        let mut tasks = Vec::new();
        for n in 0..total {
            ticker.tick().await;
            tasks.push(tokio::spawn(post(n)));
        }
        for t in tasks {
            let _ = t.await;
        }
        total
    } else {
        let count = arg("--count").unwrap_or(10_000);
        let connections = arg("--connections").unwrap_or(64);
        let next = Arc::new(AtomicU64::new(0));
        let mut workers = Vec::new();
        for _ in 0..connections {
            let next = next.clone();
            let post = post.clone();
            workers.push(tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= count {
                        break;
                    }
                    post(n).await;
                }
            }));
        }
        for w in workers {
            let _ = w.await;
        }
        count
    };
    println!(
        "sent {sent} accepted {} failed {} seconds {:.3}",
        accepted.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
}
