//! The operators' own address (`[admin] listen`): the admin API and
//! `/metrics` there and nowhere else, and scrapes that never reach the store.

use crate::helpers::*;
use crate::store::flow_config;
use raaft_relay::store::*;
use raaft_relay::{Application, LoadedConfig};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ADMIN: &str = "0123456789abcdef-operators";

fn operators_config(hook: &Receiver) -> ConfigDir {
    flow_config(hook, &format!("[admin]\ntokens = [\"{ADMIN}\"]\nlisten = \"127.0.0.1:0\"\n"))
}

#[tokio::test]
async fn with_an_admin_address_the_admin_api_and_metrics_are_served_there_only() {
    let hook = Receiver::start(Answer::new(200, "")).await;
    let app = spawn_app(operators_config(&hook), &TestStore::Sqlite).await;
    let admin = app.admin_address.clone().expect("the operators' listener is bound");
    let client = reqwest::Client::new();
    let status = |url: String| {
        let client = client.clone();
        async move { client.get(url).bearer_auth(ADMIN).send().await.unwrap().status().as_u16() }
    };
    // The address Raaft reaches has none of it, token or not.
    assert_eq!(status(format!("{}/metrics", app.address)).await, 404);
    assert_eq!(status(format!("{}/admin/deliveries", app.address)).await, 404);
    assert_eq!(app.post_event(sample("canceled.json")).await.status(), 200);
    // The operators' address has it, and no ingest.
    assert_eq!(status(format!("{admin}/metrics")).await, 200);
    assert_eq!(status(format!("{admin}/admin/deliveries")).await, 200);
    assert_eq!(status(format!("{admin}/healthz")).await, 200);
    let ingest = client
        .post(format!("{admin}/webhooks/raaft"))
        .header("x-raaft-token", TOKEN)
        .body(sample("canceled.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(ingest.status(), 404);
    let wrong = client.get(format!("{admin}/admin/deliveries")).bearer_auth("guess").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
}

#[tokio::test]
async fn a_scrape_reads_a_snapshot_and_never_the_store() {
    let hook = Receiver::start(Answer::new(200, "")).await;
    let cfg = operators_config(&hook);
    cfg.set_store(&TestStore::Sqlite.fresh_url(cfg.dir.path()).await);
    let loaded = LoadedConfig::load(&cfg.path()).unwrap();
    let inner = open(&loaded.config.store.location, loaded.config.dedup_window, Access::Serve).await.unwrap();
    let store = Arc::new(ProbedStore::new(inner));
    let stats_reads = &store.stats_reads;
    let app = Application::build_with_store(loaded, store.clone()).await.unwrap();
    let metrics_url = format!("http://127.0.0.1:{}/metrics", app.admin_port().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    wait_until(Duration::from_secs(5), "the first snapshot", || stats_reads.load(Ordering::SeqCst) >= 1).await;
    let before = stats_reads.load(Ordering::SeqCst);
    let started = Instant::now();
    let client = reqwest::Client::new();
    for _ in 0..200 {
        let text = client.get(&metrics_url).send().await.unwrap().text().await.unwrap();
        assert!(text.contains("raaft_relay_queue_depth{destination=\"hook\"} 0"), "{text}");
    }
    let reads = stats_reads.load(Ordering::SeqCst) - before;
    // Only the background refresh reads the store, every 2 s.
    let refreshes = (started.elapsed().as_secs_f64() / 2.0).ceil() as usize + 1;
    assert!(reads <= refreshes, "200 scrapes read the store {reads} times in {:?}", started.elapsed());
    let _ = stop.send(());
    running.await.unwrap().unwrap();
}
