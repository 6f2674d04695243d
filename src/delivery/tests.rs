//! [`attempt`] against an in-memory queue and a scripted transport, on
//! tokio's paused clock: every time below is exact.

use super::*;
use crate::alerts::Alerts;
use crate::channels::{AttemptReport, Destination, Payload};
use crate::metrics::Metrics;
use crate::pacing::Pacer;
use crate::retry::Outcome;
use crate::store::memory::MemoryQueue;
use crate::store::{Job, Queue, Status};
use async_trait::async_trait;
use std::collections::VecDeque;
use std::sync::Mutex;
use tokio::time::{advance, Instant};

/// Answers each send with the next report of its script (delivered once
/// the script is spent), and notes when each send was made and to whom.
#[derive(Default)]
struct Scripted {
    answers: Mutex<VecDeque<AttemptReport>>,
    sent: Mutex<Vec<(Instant, String)>>,
}

impl Scripted {
    fn answering(answers: impl IntoIterator<Item = AttemptReport>) -> Arc<Scripted> {
        Arc::new(Scripted { answers: Mutex::new(answers.into_iter().collect()), ..Default::default() })
    }

    fn sent(&self) -> Vec<(Instant, String)> {
        self.sent.lock().unwrap().clone()
    }
}

#[async_trait]
impl Transport for Scripted {
    async fn send(&self, destination: &Destination, _: &Payload, _: Duration, _: &MessageKey) -> AttemptReport {
        self.sent.lock().unwrap().push((Instant::now(), destination.name.clone()));
        self.answers.lock().unwrap().pop_front().unwrap_or_else(delivered)
    }
}

fn report(outcome: Outcome, status: u16, pause: Option<Duration>) -> AttemptReport {
    AttemptReport { outcome, status: Some(status), response: None, latency: Duration::ZERO, pause }
}

fn delivered() -> AttemptReport {
    report(Outcome::Delivered, 200, None)
}

fn server_error() -> AttemptReport {
    report(Outcome::Retry { after: None, reason: "HTTP 500".into() }, 500, None)
}

fn too_many(after: Duration) -> AttemptReport {
    report(Outcome::Retry { after: Some(after), reason: "HTTP 429".into() }, 429, Some(after))
}

const SECOND: Duration = Duration::from_secs(1);

/// The running set: three webhooks (one unpaced, one paced at one a
/// second, one at one per ten seconds), three attempts at most, backoff
/// from 1 s to 1 min.
fn loaded() -> Arc<LoadedConfig> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("templates")).unwrap();
    std::fs::write(dir.path().join("templates/hook.json.hbs"), r#"{"customer": "{{customer.id}}"}"#).unwrap();
    let hook = |name: &str, rate: &str| {
        format!(
            "[destinations.{name}]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/{name}\"\n\
             template = \"hook.json.hbs\"\nrate_limit = \"{rate}\"\n"
        )
    };
    let config = format!(
        "templates_dir = \"templates\"\n[raaft]\ntokens = [\"t\"]\n\
         [retry]\nmax_attempts = 3\ninitial_backoff = \"1s\"\nmax_backoff = \"1m\"\nattempt_timeout = \"10s\"\n\
         {}{}{}[[routes]]\nname = \"all\"\nto = [\"hook\"]\n",
        hook("hook", "none"),
        hook("paced", "1/s"),
        hook("slow", "1/10s"),
    );
    std::fs::write(dir.path().join("relay.toml"), config).unwrap();
    Arc::new(LoadedConfig::load(&dir.path().join("relay.toml")).unwrap())
}

struct Bench {
    queue: Arc<MemoryQueue>,
    transport: Arc<Scripted>,
    services: Services,
    loaded: Arc<LoadedConfig>,
    lease: Duration,
    stopping: watch::Sender<bool>,
    stop: watch::Receiver<bool>,
}

impl Bench {
    fn new(transport: Arc<Scripted>) -> Bench {
        let queue = Arc::new(MemoryQueue::default());
        let metrics = Arc::new(Metrics::new());
        let services = Services {
            queue: queue.clone(),
            alerts: Arc::new(Alerts::new(metrics.clone())),
            metrics,
            pacer: Arc::new(Pacer::default()),
            transport: transport.clone(),
            // The backoff's ceiling, always.
            jitter: || 1.0,
        };
        let loaded = loaded();
        let lease = lease_for(&loaded);
        let (stop_tx, stop) = watch::channel(false);
        Bench { queue, transport, services, loaded, lease, stopping: stop_tx, stop }
    }

    fn add(&self, destination: &str) -> String {
        self.queue.add(destination, serde_json::json!({"customer": {"id": "cus_1"}}))
    }

    async fn claim(&self) -> Vec<Job> {
        self.queue.claim_due(10, self.lease).await.unwrap()
    }

    async fn claim_one(&self) -> Job {
        let mut jobs = self.claim().await;
        assert_eq!(jobs.len(), 1, "one delivery due");
        jobs.pop().unwrap()
    }

    async fn attempt(&self, job: Job) {
        attempt(&self.services, self.loaded.clone(), job, self.stop.clone()).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_attempt_is_retried_after_its_backoff_until_delivered() {
    let bench = Bench::new(Scripted::answering([server_error(), server_error()]));
    let id = bench.add("hook");
    let t0 = Instant::now();
    bench.attempt(bench.claim_one().await).await;
    let kept = bench.queue.get(&id);
    assert_eq!((kept.status, kept.attempts, kept.due), (Status::Pending, 1, t0 + SECOND));
    assert_eq!(kept.log.len(), 1);
    assert_eq!(kept.log[0].1.status, Some(500));

    advance(SECOND - Duration::from_millis(1)).await;
    assert!(bench.claim().await.is_empty(), "not due before its backoff");
    advance(Duration::from_millis(1)).await;
    bench.attempt(bench.claim_one().await).await;
    // The second failure waits twice as long.
    assert_eq!(bench.queue.get(&id).due, t0 + 3 * SECOND);

    advance(2 * SECOND).await;
    bench.attempt(bench.claim_one().await).await;
    let kept = bench.queue.get(&id);
    assert_eq!((kept.status, kept.attempts, kept.log.len()), (Status::Delivered, 3, 3));
    let times: Vec<Instant> = bench.transport.sent().into_iter().map(|(at, _)| at).collect();
    assert_eq!(times, [t0, t0 + SECOND, t0 + 3 * SECOND]);
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_up_to_max_backoff_and_pauses_the_destination() {
    let bench = Bench::new(Scripted::answering([too_many(30 * SECOND)]));
    let first = bench.add("hook");
    let t0 = Instant::now();
    bench.attempt(bench.claim_one().await).await;
    assert_eq!(bench.queue.get(&first).due, t0 + 30 * SECOND, "due when the receiver asked");

    // Another delivery to the paused destination is handed back, due when
    // the pause ends, without counting an attempt or sending.
    advance(SECOND).await;
    let second = bench.add("hook");
    bench.attempt(bench.claim_one().await).await;
    let kept = bench.queue.get(&second);
    assert_eq!((kept.status, kept.attempts, kept.due), (Status::Pending, 0, t0 + 30 * SECOND));
    assert!(kept.log.is_empty());
    assert_eq!(bench.transport.sent().len(), 1);

    // A wait longer than max_backoff (1 min) is cut to it.
    let bench = Bench::new(Scripted::answering([too_many(3600 * SECOND)]));
    let id = bench.add("hook");
    let t0 = Instant::now();
    bench.attempt(bench.claim_one().await).await;
    assert_eq!(bench.queue.get(&id).due, t0 + 60 * SECOND);
}

#[tokio::test(start_paused = true)]
async fn the_last_allowed_attempt_that_fails_gives_up_with_the_reason() {
    let bench = Bench::new(Scripted::answering([server_error(), server_error(), server_error()]));
    let id = bench.add("hook");
    for wait in [0, 1, 2] {
        advance(wait * SECOND).await;
        bench.attempt(bench.claim_one().await).await;
    }
    let kept = bench.queue.get(&id);
    assert_eq!((kept.status, kept.attempts), (Status::Dead, 3));
    assert_eq!(kept.last_error.as_deref(), Some("gave up after 3 attempts: HTTP 500"));
    assert!(bench.claim().await.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_lease_that_runs_out_hands_the_delivery_over_and_the_late_record_changes_nothing() {
    let bench = Bench::new(Scripted::answering([]));
    let id = bench.add("hook");
    let t0 = Instant::now();
    // A worker claims it and dies before sending.
    let lost = bench.claim_one().await;
    assert_eq!(bench.lease, 17 * SECOND, "attempt timeout, pace wait and margin");
    advance(bench.lease - Duration::from_millis(1)).await;
    assert!(bench.claim().await.is_empty(), "not handed out while its lease runs");
    advance(Duration::from_millis(1)).await;
    let taken_over = bench.claim_one().await;
    assert_eq!(taken_over.attempt, 2, "the lost attempt counts");
    assert_eq!(Instant::now(), t0 + 17 * SECOND);

    // The first worker's attempt, finished late, is logged but decides nothing.
    bench.attempt(lost).await;
    let kept = bench.queue.get(&id);
    assert_eq!((kept.status, kept.log.len()), (Status::Pending, 1));
    assert_eq!(kept.lease.as_deref(), Some(taken_over.lease.as_str()));

    bench.attempt(taken_over).await;
    assert_eq!(bench.queue.get(&id).status, Status::Delivered);

    // Attempts cut short until none is left: the next claim gives up
    // without sending.
    let bench = Bench::new(Scripted::answering([]));
    let id = bench.add("hook");
    for _ in 0..3 {
        bench.claim_one().await;
        advance(bench.lease).await;
    }
    bench.attempt(bench.claim_one().await).await;
    let kept = bench.queue.get(&id);
    assert_eq!((kept.status, kept.attempts), (Status::Dead, 4));
    assert!(kept.last_error.unwrap().starts_with("gave up before attempt 4: max_attempts is 3"));
    assert!(bench.transport.sent().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_refused_record_is_tried_again_with_the_claim_kept_and_sent_once() {
    let bench = Bench::new(Scripted::answering([]));
    let id = bench.add("hook");
    bench.queue.refuse_records(3);
    let t0 = Instant::now();
    let job = bench.claim_one().await;
    let services = Arc::new(bench.services);
    let (for_task, loaded, stop) = (services.clone(), bench.loaded.clone(), bench.stop.clone());
    let attempt = tokio::spawn(async move { attempt(&for_task, loaded, job, stop).await });
    // Waiting to be recorded, it is not handed out again: its claim is
    // extended at each try.
    tokio::time::sleep(Duration::from_millis(650)).await;
    assert!(bench.queue.claim_due(10, bench.lease).await.unwrap().is_empty());
    assert_eq!(bench.queue.get(&id).due, t0 + Duration::from_millis(300) + bench.lease);
    attempt.await.unwrap();
    // Tries at 0, 100, 300 and 700 ms (waits of 100, 200, 400 ms).
    let kept = bench.queue.get(&id);
    assert_eq!(Instant::now(), t0 + Duration::from_millis(700));
    assert_eq!((kept.status, kept.log.len()), (Status::Delivered, 1));
    assert_eq!(bench.transport.sent().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn at_shutdown_a_record_refused_for_good_is_given_up_after_the_drain_deadline() {
    let bench = Bench::new(Scripted::answering([]));
    let id = bench.add("hook");
    bench.queue.refuse_records(usize::MAX);
    bench.stopping.send(true).unwrap();
    let t0 = Instant::now();
    bench.attempt(bench.claim_one().await).await;
    // Waits of 0.1, 0.2, 0.4, 0.8, 1.6, then 2 s: the first failure past
    // 10 s is at 11.1 s.
    assert_eq!(Instant::now(), t0 + Duration::from_millis(11_100));
    let kept = bench.queue.get(&id);
    assert_eq!((kept.status, kept.log.len()), (Status::Pending, 0));
    assert_eq!(kept.attempts, 1, "counted when claimed again");
}

#[tokio::test(start_paused = true)]
async fn a_paced_destination_sends_one_per_interval_and_hands_back_a_long_wait() {
    let bench = Bench::new(Scripted::answering([]));
    let (a, b) = (bench.add("paced"), bench.add("paced"));
    let t0 = Instant::now();
    let jobs = bench.claim().await;
    assert_eq!(jobs.len(), 2);
    futures_util::future::join_all(jobs.into_iter().map(|job| bench.attempt(job))).await;
    let times: Vec<Instant> = bench.transport.sent().into_iter().map(|(at, _)| at).collect();
    assert_eq!(times, [t0, t0 + SECOND], "the second waits its turn in memory");
    for id in [a, b] {
        assert_eq!(bench.queue.get(&id).status, Status::Delivered);
    }

    // One per 10 s: the second's turn is past the 2 s it may wait in
    // memory, so it goes back to the queue, due at its turn, its attempt
    // not counted.
    let bench = Bench::new(Scripted::answering([]));
    let (a, b) = (bench.add("slow"), bench.add("slow"));
    let t0 = Instant::now();
    let jobs = bench.claim().await;
    futures_util::future::join_all(jobs.into_iter().map(|job| bench.attempt(job))).await;
    assert_eq!(bench.transport.sent().len(), 1);
    let (first, second) = (bench.queue.get(&a), bench.queue.get(&b));
    let (sent, postponed) = if first.status == Status::Delivered { (first, second) } else { (second, first) };
    assert_eq!(sent.status, Status::Delivered);
    assert_eq!((postponed.status, postponed.attempts, postponed.due), (Status::Pending, 0, t0 + 10 * SECOND));
    assert_eq!(Instant::now(), t0, "nothing waited");
}
