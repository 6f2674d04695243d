//! The durable store through the running relay: deduplication, group
//! commit, dead deliveries, replay (CLI and admin API), retention and
//! store outages.

use crate::helpers::*;
use raaft_relay::store::sqlite::SqliteStore;
use raaft_relay::store::{Access, AttemptRecord, Enqueued, NewDelivery, NewEvent, NextStep, Recorded};
use raaft_relay::{Application, LoadedConfig};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// A webhook destination whose body names the event's flow.
pub fn flow_config(receiver: &Receiver, extra: &str) -> ConfigDir {
    flow_config_url(&receiver.url("/hook"), extra)
}

pub fn flow_config_url(url: &str, extra: &str) -> ConfigDir {
    let cfg = ConfigDir::new(&format!(
        "[destinations.hook]\nkind = \"webhook\"\nurl = \"{url}\"\ntemplate = \"flow.json.hbs\"\n[[routes]]\nname = \"all\"\nto = [\"hook\"]\n{extra}"
    ));
    cfg.write_template("flow.json.hbs", r#"{"flow": "{{flowId}}", "outcome": "{{outcome}}"}"#);
    cfg
}

on_both_stores! {
    async fn a_redelivered_event_is_answered_200_and_sent_once(store) {
        let hook = Receiver::start(Answer::new(200, "")).await;
        let app = spawn_app(flow_config(&hook, ""), &store).await;
        let event = sample_exact("canceled.json");
        let first: Value = app.post_event(event.clone()).await.json().await.unwrap();
        assert_eq!(first["deliveries"], 1);
        for _ in 0..3 {
            let again = app.post_event(event.clone()).await;
            assert_eq!(again.status(), 200);
            let body: Value = again.json().await.unwrap();
            assert_eq!(body["deliveries"], 0);
        }
        let stats = app.wait_settled(Duration::from_secs(5)).await;
        assert_eq!((stats.events, stats.delivered), (1, 1));
        // Every attempt is recorded, so the receiver's count is final.
        assert_eq!(hook.count(), 1);
        // A different event is not a duplicate.
        app.post_event(sample("canceled.json")).await;
        hook.wait_for(2, Duration::from_secs(5)).await;
    }

    async fn a_key_older_than_the_dedup_window_is_a_new_event(store) {
        let hook = Receiver::start(Answer::new(200, "")).await;
        let cfg = flow_config(&hook, "");
        let text = std::fs::read_to_string(cfg.path()).unwrap().replace("second-token\"]", "second-token\"]\ndedup_window = \"1s\"");
        std::fs::write(cfg.path(), text).unwrap();
        let app = spawn_app(cfg, &store).await;
        let event = sample_exact("saved-discount.json");
        app.post_event(event.clone()).await;
        let body: Value = app.post_event(event.clone()).await.json().await.unwrap();
        assert_eq!(body["deliveries"], 0);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let body: Value = app.post_event(event).await.json().await.unwrap();
        assert_eq!(body["deliveries"], 1);
        hook.wait_for(2, Duration::from_secs(5)).await;
    }

    async fn concurrent_events_are_all_committed(store) {
        let hook = Receiver::start(Answer::new(200, "")).await;
        let app = Arc::new(spawn_app(flow_config(&hook, ""), &store).await);
        let mut posts = Vec::new();
        for _ in 0..200 {
            let app = app.clone();
            posts.push(tokio::spawn(async move { app.post_event(sample("canceled.json")).await.status() }));
        }
        for p in posts {
            assert_eq!(p.await.unwrap(), 200);
        }
        assert_eq!(app.stats().await.events, 200);
        let got = hook.wait_for(200, Duration::from_secs(30)).await;
        assert_eq!(flow_counts(&got).len(), 200);
        assert!(flow_counts(&got).values().all(|n| *n == 1));
    }

    async fn dead_deliveries_are_listed_shown_and_replayed_over_the_admin_api(store) {
        let hook = Receiver::start(Answer::new(200, "")).await;
        hook.then(Answer::new(404, "no_service"));
        let app = spawn_app(flow_config(&hook, "[admin]\ntokens = [\"adm1n\"]\n"), &store).await;
        app.post_event(sample("canceled.json")).await;
        let stats = app.wait_settled(Duration::from_secs(5)).await;
        assert_eq!(stats.dead, 1);
        let client = app.client();
        let get = |path: &str, token: &str| {
            client.get(format!("{}{path}", app.address)).header("authorization", format!("Bearer {token}")).send()
        };
        assert_eq!(get("/admin/deliveries", "wrong").await.unwrap().status(), 401);
        let list: Value = get("/admin/deliveries?status=dead", "adm1n").await.unwrap().json().await.unwrap();
        let dead = list["deliveries"].as_array().unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0]["destination"], "hook");
        assert_eq!(dead[0]["routes"], json!(["all"]));
        assert!(dead[0]["last_error"].as_str().unwrap().contains("no_service"));
        let id = dead[0]["id"].as_str().unwrap().to_owned();
        let detail: Value = get(&format!("/admin/deliveries/{id}"), "adm1n").await.unwrap().json().await.unwrap();
        assert_eq!(detail["event"]["outcome"], "canceled");
        assert_eq!(detail["attempt_log"][0]["status_code"], 404);
        assert!(detail["last_payload"].as_str().unwrap().contains("\"outcome\": \"canceled\""));
        assert_eq!(get("/admin/deliveries/nope", "adm1n").await.unwrap().status(), 404);
        let replay = client
            .post(format!("{}/admin/deliveries/{id}/replay", app.address))
            .header("authorization", "Bearer adm1n")
            .send()
            .await
            .unwrap();
        assert_eq!(replay.status(), 200);
        hook.wait_for(2, Duration::from_secs(5)).await;
        let stats = app.wait_settled(Duration::from_secs(5)).await;
        assert_eq!((stats.dead, stats.delivered, stats.attempts), (0, 1, 2));
    }

    async fn without_admin_tokens_the_admin_api_does_not_exist(store) {
        let hook = Receiver::start(Answer::new(200, "")).await;
        let app = spawn_app(flow_config(&hook, ""), &store).await;
        let r = app.client().get(format!("{}/admin/deliveries", app.address)).header("authorization", "Bearer x").send().await.unwrap();
        assert_eq!(r.status(), 404);
    }

    async fn retention_prunes_delivered_work_and_keeps_the_dead(store) {
        let dir = tempfile::tempdir().unwrap();
        let location = store.fresh_location(dir.path()).await;
        let store = raaft_relay::store::open(&location, Duration::from_secs(3600), Access::Serve).await.unwrap();
        let event = |flow: &str| NewEvent {
            dedup_key: flow.to_owned(),
            body: json!({"flowId": flow}).to_string(),
            outcome: Some("canceled".into()),
            customer: None,
            facts: None,
            flow: None,
        };
        let to = || vec![NewDelivery::rendered_later("hook".into(), vec!["all".into()])];
        store.enqueue(event("a"), to()).await.unwrap();
        store.enqueue(event("b"), to()).await.unwrap();
        assert_eq!(store.enqueue(event("b"), to()).await.unwrap(), Enqueued::Duplicate);
        let jobs = store.claim_due(10, Duration::from_secs(30)).await.unwrap();
        assert_eq!(jobs.len(), 2);
        assert!(store.claim_due(10, Duration::from_secs(30)).await.unwrap().is_empty(), "claimed jobs are not handed out twice");
        let record = || AttemptRecord { at: chrono::Utc::now(), status: Some(200), latency: Duration::from_millis(5), response: None, error: None, payload: Some("{}".into()) };
        let (a, b) = if jobs[0].event["flowId"] == "a" { (&jobs[0], &jobs[1]) } else { (&jobs[1], &jobs[0]) };
        assert_eq!(store.finish_attempt(a, record(), NextStep::Delivered).await.unwrap(), Recorded::Done);
        store.finish_attempt(b, record(), NextStep::Dead { reason: "HTTP 404".into() }).await.unwrap();
        // Nothing is old enough yet.
        assert_eq!(store.prune(&retention(Duration::from_secs(3600))).await.unwrap(), 0);
        // Older than a millisecond once the store's clock has moved on.
        let recorded = store.now().await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while store.now().await.unwrap() <= recorded + chrono::Duration::milliseconds(2) {
            assert!(std::time::Instant::now() < deadline, "the store's clock does not move");
            tokio::task::yield_now().await;
        }
        assert_eq!(store.prune(&retention(Duration::from_millis(1))).await.unwrap(), 1);
        let stats = count(&location).await;
        assert_eq!((stats.delivered, stats.dead, stats.events, stats.attempts), (0, 1, 1, 1));
        // The pruned idempotency key no longer makes "a" a duplicate.
        assert!(matches!(store.enqueue(event("a"), to()).await.unwrap(), Enqueued::Accepted { .. }));
        assert_eq!(store.purge_dead(Duration::from_secs(3600)).await.unwrap(), 0);
        assert_eq!(store.purge_dead(Duration::ZERO).await.unwrap(), 1);
        let stats = count(&location).await;
        assert_eq!((stats.dead, stats.pending), (0, 1));
    }

    async fn the_same_event_in_one_batch_is_accepted_once(store) {
        let dir = tempfile::tempdir().unwrap();
        let location = store.fresh_location(dir.path()).await;
        let store = raaft_relay::store::open(&location, Duration::from_secs(3600), Access::Serve).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..40 {
            let store = store.clone();
            // Half the requests carry one key (Raaft retrying at once), half their own.
            let key = if i % 2 == 0 { "same".to_owned() } else { format!("own-{i}") };
            tasks.push(tokio::spawn(async move {
                let event = NewEvent { dedup_key: key, body: "{}".into(), outcome: None, customer: None, facts: None, flow: None };
                store.enqueue(event, vec![NewDelivery::rendered_later("d".into(), vec![])]).await.unwrap()
            }));
        }
        let mut accepted = 0;
        for t in tasks {
            if matches!(t.await.unwrap(), Enqueued::Accepted { .. }) {
                accepted += 1;
            }
        }
        assert_eq!(accepted, 21, "20 distinct events and one of the 20 copies");
        let stats = count(&location).await;
        assert_eq!((stats.events, stats.pending), (21, 21));
    }

    async fn a_delivery_whose_worker_died_is_taken_over_when_its_lease_runs_out(store) {
        let dir = tempfile::tempdir().unwrap();
        let location = store.fresh_location(dir.path()).await;
        let store = raaft_relay::store::open(&location, Duration::from_secs(3600), Access::Serve).await.unwrap();
        let event = NewEvent { dedup_key: "k".into(), body: "{}".into(), outcome: None, customer: None, facts: None, flow: None };
        store.enqueue(event, vec![NewDelivery::rendered_later("d".into(), vec![])]).await.unwrap();
        let first = store.claim_due(10, Duration::from_secs(2)).await.unwrap();
        assert_eq!(first.len(), 1);
        assert!(store.claim_due(10, Duration::from_secs(2)).await.unwrap().is_empty());
        // Due again when the lease runs out, not before.
        let due_in = store.next_due().await.unwrap().expect("a claimed delivery is due when its lease runs out");
        assert!(due_in > Duration::from_secs(1) && due_in <= Duration::from_secs(2), "due in {due_in:?}");
        let start = std::time::Instant::now();
        let second = loop {
            let claimed = store.claim_due(10, Duration::from_secs(30)).await.unwrap();
            if !claimed.is_empty() {
                break claimed;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "the delivery was never taken over");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(start.elapsed() >= due_in - Duration::from_millis(100), "taken over before its lease ran out");
        assert_eq!(second.len(), 1);
        assert_ne!(first[0].lease, second[0].lease);
        // The first holder's late result does not overwrite the new claim.
        let record = AttemptRecord { at: chrono::Utc::now(), status: None, latency: Duration::ZERO, response: None, error: Some("late".into()), payload: None };
        assert_eq!(first[0].attempt, 1);
        assert_eq!(second[0].attempt, 2, "the attempt cut short counts");
        let late = store.finish_attempt(&first[0], record.clone(), NextStep::Dead { reason: "late".into() }).await.unwrap();
        assert_eq!(late, Recorded::LeaseLost);
        assert_eq!(count(&location).await.dead, 0);
        store.finish_attempt(&second[0], record, NextStep::Delivered).await.unwrap();
        assert_eq!(count(&location).await.delivered, 1);
    }
}

#[tokio::test]
async fn a_failing_store_answers_503_and_keeps_nothing_half_written() {
    let hook = Receiver::start(Answer::new(200, "")).await;
    let cfg = flow_config(&hook, "");
    let dir = tempfile::tempdir().unwrap();
    let location = TestStore::Sqlite.fresh_location(dir.path()).await;
    let raaft_relay::config::StoreLocation::Sqlite(path) = &location else { unreachable!() };
    let inner = SqliteStore::open(path, Duration::from_secs(3600), Access::Serve).await.unwrap();
    let store = Arc::new(ProbedStore::new(Arc::new(inner)));
    store.down.store(true, Ordering::SeqCst);
    let loaded = LoadedConfig::load(&cfg.path()).unwrap();
    let app = Application::build_with_store(loaded, store.clone()).await.unwrap();
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    let post = || {
        reqwest::Client::new()
            .post(format!("{address}/webhooks/raaft"))
            .header("x-raaft-token", TOKEN)
            .body(sample_exact("canceled.json"))
            .send()
    };
    let r = post().await.unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("retry"), "{body}");
    assert_eq!(count(&location).await.events, 0);
    store.down.store(false, Ordering::SeqCst);
    // Raaft's retry of the same event now goes through, once.
    assert_eq!(post().await.unwrap().status(), 200);
    hook.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(count(&location).await.events, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(postgres_tests), ignore = "set RAAFT_RELAY_TEST_POSTGRES to a PostgreSQL URL to run it")]
async fn an_unreachable_postgres_answers_503_until_it_is_back() {
    let server = TestStore::postgres();
    use sqlx::Connection;
    let hook = Receiver::start(Answer::new(200, "")).await;
    let cfg = flow_config(&hook, "");
    let url = server.fresh_url(cfg.dir.path()).await;
    cfg.set_store(&url);
    let app = spawn_on(cfg).await;
    // This test's own database (other tests run beside it).
    let db = url.rsplit('/').next().unwrap().split('?').next().unwrap().to_owned();
    let TestStore::Postgres(server_url) = &server else { unreachable!() };
    let mut admin = sqlx::PgConnection::connect(server_url).await.unwrap();
    let cut = |allow: bool| format!("ALTER DATABASE \"{db}\" ALLOW_CONNECTIONS {allow}");
    sqlx::query(&cut(false)).execute(&mut admin).await.unwrap();
    sqlx::query(&format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'"))
        .execute(&mut admin)
        .await
        .unwrap();
    let r = app.post_event(sample("canceled.json")).await;
    assert_eq!(r.status(), 503);
    sqlx::query(&cut(true)).execute(&mut admin).await.unwrap();
    let mut ok = false;
    for _ in 0..50 {
        if app.post_event(sample("canceled.json")).await.status() == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "the relay did not recover when the database came back");
    hook.wait_for(1, Duration::from_secs(10)).await;
}

fn retention(all: Duration) -> raaft_relay::store::Retention {
    raaft_relay::store::Retention { deliveries: all, dedup_window: all, history: all, sessions: all }
}

on_both_stores! {
    async fn secrets_are_made_once_and_shared_and_sign_outs_last_until_expiry(store) {
        let dir = tempfile::tempdir().unwrap();
        let location = store.fresh_location(dir.path()).await;
        let window = Duration::from_secs(60);
        let serving = raaft_relay::store::open(&location, window, Access::Serve).await.unwrap();
        let beside = raaft_relay::store::open(&location, window, Access::Tool).await.unwrap();
        let first = serving.secret("console-session").await.unwrap();
        assert_eq!(first.len(), 32);
        assert_eq!(beside.secret("console-session").await.unwrap(), first, "one secret for every user of the store");
        assert_ne!(serving.secret("log-customer-hash").await.unwrap(), first, "one secret per name");
        serving.renew_secret("console-session").await.unwrap();
        let renewed = beside.secret("console-session").await.unwrap();
        assert!(renewed != first && renewed.len() == 32);

        let now = serving.now().await.unwrap();
        serving.revoke_session("s-live", now - chrono::Duration::minutes(30)).await.unwrap();
        serving.revoke_session("s-over", now - chrono::Duration::minutes(61)).await.unwrap();
        assert!(beside.session_revoked("s-live").await.unwrap());
        assert!(!beside.session_revoked("s-never").await.unwrap());
        let retention = raaft_relay::store::Retention {
            deliveries: Duration::from_secs(3600),
            dedup_window: window,
            history: Duration::from_secs(3600),
            sessions: Duration::from_secs(3600),
        };
        serving.prune(&retention).await.unwrap();
        assert!(serving.session_revoked("s-live").await.unwrap(), "kept while the session could still be used");
        assert!(!serving.session_revoked("s-over").await.unwrap(), "forgotten once it would have ended");
        // A longer session setting keeps what a shorter one would drop.
        serving.revoke_session("s-later", now - chrono::Duration::minutes(61)).await.unwrap();
        serving.prune(&raaft_relay::store::Retention { sessions: Duration::from_secs(7200), ..retention }).await.unwrap();
        assert!(serving.session_revoked("s-later").await.unwrap());
    }
}
