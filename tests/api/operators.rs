//! The operators' own address (`[admin] listen`): the admin API and
//! `/metrics` there and nowhere else, and scrapes that never reach the store.

use crate::helpers::*;
use crate::store::flow_config;
use raaft_relay::store::*;
use raaft_relay::{Application, LoadedConfig};
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// A store that counts how often its per-destination figures are read.
struct CountingStore {
    inner: Arc<dyn Store>,
    stats_reads: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl Store for CountingStore {
    async fn enqueue(&self, event: NewEvent, deliveries: Vec<NewDelivery>) -> Result<Enqueued, StoreError> {
        self.inner.enqueue(event, deliveries).await
    }
    async fn claim_due(&self, limit: usize, lease: Duration) -> Result<Vec<Job>, StoreError> {
        self.inner.claim_due(limit, lease).await
    }
    async fn next_due(&self) -> Result<Option<Duration>, StoreError> {
        self.inner.next_due().await
    }
    async fn finish_attempt(&self, job: &Job, attempt: AttemptRecord, state: JobState) -> Result<Recorded, StoreError> {
        self.inner.finish_attempt(job, attempt, state).await
    }
    async fn extend_lease(&self, job: &Job, lease: Duration) -> Result<bool, StoreError> {
        self.inner.extend_lease(job, lease).await
    }
    async fn postpone(&self, job: &Job, delay: Duration) -> Result<(), StoreError> {
        self.inner.postpone(job, delay).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
    async fn destination_stats(&self) -> Result<Vec<DestinationStats>, StoreError> {
        self.stats_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.destination_stats().await
    }
    async fn list(&self, filter: &ListFilter) -> Result<Vec<DeliverySummary>, StoreError> {
        self.inner.list(filter).await
    }
    async fn show(&self, id: &str) -> Result<Option<DeliveryDetail>, StoreError> {
        self.inner.show(id).await
    }
    async fn replay(&self, ids: &[String]) -> Result<Vec<Replayed>, StoreError> {
        self.inner.replay(ids).await
    }
    async fn replay_dead(&self, destination: Option<&str>) -> Result<u64, StoreError> {
        self.inner.replay_dead(destination).await
    }
    async fn purge_dead(&self, older_than: Duration) -> Result<u64, StoreError> {
        self.inner.purge_dead(older_than).await
    }
    async fn prune(&self, retention: Duration, dedup_window: Duration) -> Result<u64, StoreError> {
        self.inner.prune(retention, dedup_window).await
    }
}

#[tokio::test]
async fn a_scrape_reads_a_snapshot_and_never_the_store() {
    let hook = Receiver::start(Answer::new(200, "")).await;
    let cfg = operators_config(&hook);
    cfg.set_store(&TestStore::Sqlite.fresh_url(cfg.dir.path()).await);
    let loaded = LoadedConfig::load(&cfg.path()).unwrap();
    let inner = open(&loaded.config.store.location, loaded.config.dedup_window, Access::Serve).await.unwrap();
    let stats_reads = Arc::new(AtomicUsize::new(0));
    let store = Arc::new(CountingStore { inner, stats_reads: stats_reads.clone() });
    let app = Application::build_with_store(loaded, store).await.unwrap();
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
