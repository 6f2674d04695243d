//! The real binary with its durable store: kill -9, restarts, replays from
//! the command line against a running relay, several replicas on one
//! PostgreSQL database, and SIGTERM.

use crate::helpers::*;
use crate::store::flow_config_url;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Retries fast and never gives up within a test.
const PATIENT: &str =
    "[retry]\nmax_attempts = 1000\ninitial_backoff = \"20ms\"\nmax_backoff = \"200ms\"\nattempt_timeout = \"2s\"\n";

async fn config_with_store(url: &str, extra: &str, store: &TestStore) -> ConfigDir {
    let cfg = flow_config_url(url, extra);
    cfg.set_store(&store.fresh_url(cfg.dir.path()).await);
    cfg
}

/// A port where nothing listens (yet).
fn free_addr() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// Whether the store of the relay at `config` has no delivery pending.
fn nothing_pending(config: &std::path::Path) -> bool {
    deliveries_cli(config, &["list", "--status", "pending"]).trim() == "no deliveries"
}

on_both_stores! {
    async fn acknowledged_events_survive_kill_9_and_are_delivered_once(store) {
        let addr = free_addr();
        // Reserve the URL; the destination is down while the events come in.
        let cfg = config_with_store(&format!("http://{addr}/hook"), PATIENT, &store).await;
        let relay = RelayProcess::start(&cfg.path()).await;
        let mut flows = Vec::new();
        for i in 0..20 {
            let event = sample(if i % 2 == 0 { "canceled.json" } else { "saved-discount.json" });
            flows.push(serde_json::from_str::<serde_json::Value>(&event).unwrap()["flowId"].as_str().unwrap().to_owned());
            assert_eq!(relay.post(event).await.status(), 200);
        }
        relay.kill();
        let hook = Receiver::start_on(addr, Answer::new(200, "")).await;
        let relay = RelayProcess::start(&cfg.path()).await;
        let got = hook.wait_for(20, Duration::from_secs(30)).await;
        assert!(!relay.logs().contains("panicked"), "{}", relay.logs());
        // Once nothing is pending, nothing more can be sent.
        let config = cfg.path();
        wait_until(Duration::from_secs(10), "nothing pending", || nothing_pending(&config)).await;
        let counts = flow_counts(&hook.received());
        assert_eq!(counts.len(), 20, "{counts:?}");
        for flow in &flows {
            assert_eq!(counts.get(flow), Some(&1), "event {flow} delivered {:?} times", counts.get(flow));
        }
        assert_eq!(got.len(), 20);
        let listed = deliveries_cli(&cfg.path(), &["list", "--status", "delivered", "--limit", "100"]);
        assert_eq!(listed.lines().count(), 20, "{listed}");
        drop(relay);
    }

    async fn a_dead_delivery_is_replayed_from_the_command_line_and_arrives(store) {
        let hook = Receiver::start(Answer::new(200, "")).await;
        hook.then(Answer::new(404, "no_service"));
        let cfg = config_with_store(&hook.url("/hook"), PATIENT, &store).await;
        let relay = RelayProcess::start(&cfg.path()).await;
        assert_eq!(relay.post(sample("canceled.json")).await.status(), 200);
        let config = cfg.path();
        let start = Instant::now();
        let line = loop {
            let out = deliveries_cli(&config, &["list", "--status", "dead"]);
            if let Some(line) = out.lines().find(|l| l.contains("no_service")) {
                break line.to_owned();
            }
            assert!(start.elapsed() < Duration::from_secs(10), "no dead delivery listed: {out}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(line.contains("hook") && line.contains("all") && line.contains("dead"), "{line}");
        let id = line.split_whitespace().next().unwrap().to_owned();
        let shown = deliveries_cli(&config, &["show", &id]);
        assert!(shown.contains("status       dead after 1 attempt(s)"), "{shown}");
        assert!(shown.contains("status 404"), "{shown}");
        assert!(shown.contains("\"outcome\": \"canceled\""), "{shown}");
        assert!(shown.contains("payload of the last attempt"), "{shown}");
        // The destination is back: replay while the relay runs.
        let out = deliveries_cli(&config, &["replay", &id]);
        assert!(out.contains(&format!("replayed {id}")), "{out}");
        hook.wait_for(2, Duration::from_secs(10)).await;
        let start = Instant::now();
        while !deliveries_cli(&config, &["list", "--status", "delivered"]).contains(&id) {
            assert!(start.elapsed() < Duration::from_secs(10), "the replayed delivery was not recorded as delivered");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let unknown = relay_command().args(["--config", config.to_str().unwrap(), "deliveries", "replay", "01nosuchdelivery"]).output().unwrap();
        assert_eq!(unknown.status.code(), Some(1));
        drop(relay);
    }

    async fn sigterm_lets_the_attempt_under_way_finish_and_exits_0(store) {
        let hook = Receiver::start(Answer::new(200, "").delayed(Duration::from_millis(800))).await;
        let cfg = config_with_store(&hook.url("/hook"), PATIENT, &store).await;
        let relay = RelayProcess::start(&cfg.path()).await;
        relay.post(sample("canceled.json")).await;
        hook.wait_for(1, Duration::from_secs(10)).await;
        let status = relay.terminate().await;
        assert!(status.success(), "exit {status:?}");
        let listed = deliveries_cli(&cfg.path(), &["list"]);
        assert!(listed.contains(" delivered "), "the attempt under way was recorded: {listed}");
        assert_eq!(hook.count(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(postgres_tests), ignore = "set RAAFT_RELAY_TEST_POSTGRES to a PostgreSQL URL to run it")]
async fn two_relays_share_one_postgres_queue_and_survive_losing_one() {
    let store = TestStore::postgres();
    let hook = Receiver::start(Answer::new(200, "").delayed(Duration::from_millis(150))).await;
    let retry =
        "[retry]\nmax_attempts = 1000\ninitial_backoff = \"20ms\"\nmax_backoff = \"200ms\"\nattempt_timeout = \"1s\"\n";
    let cfg = config_with_store(&hook.url("/hook"), retry, &store).await;
    let a = RelayProcess::start(&cfg.path()).await;
    let b = RelayProcess::start(&cfg.path()).await;
    let mut flows = Vec::new();
    for i in 0..60 {
        let event = sample("canceled.json");
        flows.push(serde_json::from_str::<serde_json::Value>(&event).unwrap()["flowId"].as_str().unwrap().to_owned());
        let relay = if i % 2 == 0 { &a } else { &b };
        assert_eq!(relay.post(event).await.status(), 200);
    }
    hook.wait_for(10, Duration::from_secs(20)).await;
    let killed_at = Instant::now();
    a.kill();
    // B takes over A's claims when their leases run out (the 1 s attempt
    // timeout, 2 s of waiting for a turn and a 5 s margin).
    wait_until(Duration::from_secs(40), "every event to arrive", || flow_counts(&hook.received()).len() == 60).await;
    // Once nothing is pending, nothing more can be sent.
    let config = cfg.path();
    wait_until(Duration::from_secs(20), "nothing pending", || nothing_pending(&config)).await;
    let received = hook.received();
    let mut first_seen: BTreeMap<String, Instant> = BTreeMap::new();
    for r in &received {
        let flow = r.json()["flow"].as_str().unwrap().to_owned();
        first_seen.entry(flow).or_insert(r.at);
    }
    let counts = flow_counts(&received);
    for flow in &flows {
        let n = counts[flow];
        assert!(n <= 2, "event {flow} delivered {n} times");
        if n == 2 {
            // Only an attempt the killed relay had under way may be repeated.
            assert!(first_seen[flow] < killed_at, "event {flow} was duplicated without a crash in flight");
        }
    }
    drop(b);
}

on_both_stores! {
    async fn dead_deliveries_are_replayed_in_bulk_and_purged(store) {
        let hook = Receiver::start(Answer::new(410, "channel_is_archived")).await;
        let cfg = config_with_store(&hook.url("/hook"), PATIENT, &store).await;
        let relay = RelayProcess::start(&cfg.path()).await;
        relay.post(sample("canceled.json")).await;
        relay.post(sample("saved-discount.json")).await;
        let config = cfg.path();
        let dead_count = || deliveries_cli(&config, &["list", "--status", "dead", "--since", "1h"]).lines().filter(|l| l.contains(" dead ")).count();
        wait_until(Duration::from_secs(10), "two dead deliveries", || dead_count() == 2).await;
        assert_eq!(deliveries_cli(&config, &["list", "--status", "dead", "--limit", "1"]).lines().count(), 1);
        assert_eq!(deliveries_cli(&config, &["list", "--destination", "elsewhere"]).trim(), "no deliveries");
        let out = deliveries_cli(&config, &["replay", "--dead", "--destination", "hook"]);
        assert_eq!(out.trim(), "replayed 2 dead deliveries");
        // Still archived: both come back dead after one more attempt each.
        hook.wait_for(4, Duration::from_secs(10)).await;
        wait_until(Duration::from_secs(10), "two dead deliveries again", || dead_count() == 2).await;
        assert_eq!(deliveries_cli(&config, &["purge", "--dead", "--older-than", "1h"]).trim(), "purged 0 dead deliveries");
        assert_eq!(deliveries_cli(&config, &["purge", "--dead", "--older-than", "0s"]).trim(), "purged 2 dead deliveries");
        assert_eq!(dead_count(), 0);
        drop(relay);
    }
}

#[tokio::test]
async fn outside_content_cannot_forge_a_log_line() {
    let forged = "\n2026-01-01T00:00:00.000000Z  INFO raaft_relay: forged line\u{1b}[2J";
    let hook = Receiver::start(Answer::new(500, &format!("down{forged}"))).await;
    let cfg = ConfigDir::new(&format!(
        "[destinations.hook]\nkind = \"webhook\"\nurl = \"{}\"\ntemplate = \"webhook/event.json.hbs\"\n\
         [[routes]]\nname = \"all\"\nto = [\"hook\"]\n\
         [retry]\nmax_attempts = 1\ninitial_backoff = \"10ms\"\nmax_backoff = \"10ms\"\nattempt_timeout = \"2s\"\n",
        hook.url("/hook")
    ));
    let relay = RelayProcess::start_pretty(&cfg.path()).await;
    let mut event: serde_json::Value = serde_json::from_str(&sample("canceled.json")).unwrap();
    event["customer"]["id"] = format!("cus_1{forged}").into();
    let status = relay.post(event.to_string()).await.status();
    assert_eq!(status, 200, "{}", relay.logs());
    hook.wait_for(1, Duration::from_secs(5)).await;
    // The whole line (its fields come after the message) has been read.
    wait_until(Duration::from_secs(5), "the delivery to be given up", || {
        relay.logs().split_once("delivery failed for good").is_some_and(|(_, rest)| rest.contains('\n'))
    })
    .await;
    let logs = relay.logs();
    let forged_lines: Vec<&str> = logs.lines().filter(|l| l.starts_with("2026-01-01T00:00:00")).collect();
    assert!(forged_lines.is_empty(), "forged lines: {forged_lines:?}\n{logs}");
    assert!(!logs.contains('\u{1b}'), "a terminal escape reached the log: {logs:?}");
    // The customer id and the reply are there, escaped.
    assert!(
        logs.contains(r"customer=cus_1\n2026-01-01T00:00:00.000000Z  INFO raaft_relay: forged line\x1b[2J"),
        "{logs}"
    );
    assert!(logs.contains(r"down\n2026-01-01"), "{logs}");
}

#[tokio::test]
async fn a_stdout_nobody_reads_holds_up_console_messages_not_ingest() {
    let cfg = ConfigDir::new(
        "[destinations.out]\nkind = \"console\"\ntemplate = \"console/event.hbs\"\n[[routes]]\nname = \"all\"\nto = [\"out\"]\n\
         [retry]\nmax_attempts = 1000\ninitial_backoff = \"100ms\"\nmax_backoff = \"1s\"\nattempt_timeout = \"1s\"\n",
    );
    cfg.set_store(&TestStore::Sqlite.fresh_url(cfg.dir.path()).await);
    let relay = RelayProcess::start_with_stdout_unread(&cfg.path()).await;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    // Each message is about a kilobyte: the 64 KiB pipe fills long before
    // the last event, and every console write after that blocks.
    for i in 0..400 {
        let mut event: serde_json::Value = serde_json::from_str(&sample("canceled.json")).unwrap();
        event["flowId"] = format!("stalled-{i}").into();
        event["feedback"] = "x".repeat(1000).into();
        let answer = client
            .post(format!("http://127.0.0.1:{}/webhooks/raaft", relay.port))
            .header("x-raaft-token", TOKEN)
            .body(event.to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("event {i} not answered: {e}\n{}", relay.logs()));
        assert_eq!(answer.status(), 200, "event {i}");
    }
    let health = client.get(format!("http://127.0.0.1:{}/healthz", relay.port)).send().await.unwrap();
    assert_eq!(health.status(), 200);
}
