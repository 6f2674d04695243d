//! The store's promise, tried from outside: an event answered 200 is
//! delivered once, whatever bytes it carries, whatever write the store
//! refuses and whatever the replicas' clocks say; a replay never overlaps
//! the attempt under way; an SQLite file has one `serve`, and only its
//! owner can read it.

use crate::helpers::*;
use crate::store::{flow_config, flow_config_url};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A webhook destination whose text template writes the feedback as it is.
fn feedback_config(receiver: &Receiver, extra: &str) -> ConfigDir {
    let cfg = ConfigDir::new(&format!(
        "[destinations.hook]\nkind = \"webhook\"\nurl = \"{}\"\ntemplate = \"feedback.hbs\"\n[[routes]]\nname = \"all\"\nto = [\"hook\"]\n{extra}",
        receiver.url("/hook")
    ));
    cfg.write_template("feedback.hbs", "{{feedback}}");
    cfg
}

/// A trigger that makes the store refuse rows of `table` whose `column`
/// contains `marker` (or every row, for an empty marker), as a disk or a
/// constraint might.
fn refuse_rows(store: &TestStore, table: &str, column: &str, marker: &str) -> String {
    match store {
        TestStore::Sqlite => format!(
            "CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} WHEN instr(CAST(NEW.{column} AS TEXT), '{marker}') > 0 \
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;"
        ),
        TestStore::Postgres(_) => format!(
            "CREATE FUNCTION refuse_{table}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             IF position('{marker}' IN convert_from(NEW.{column}, 'UTF8')) > 0 THEN RAISE EXCEPTION 'refused by the test'; END IF; \
             RETURN NEW; END $$; \
             CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION refuse_{table}();"
        ),
    }
}

fn allow_rows(store: &TestStore, table: &str) -> String {
    match store {
        TestStore::Sqlite => format!("DROP TRIGGER refuse_{table};"),
        TestStore::Postgres(_) => format!("DROP TRIGGER refuse_{table} ON {table};"),
    }
}

on_both_stores! {
    async fn a_nul_in_an_event_is_delivered_once_and_recorded(store) {
        let hook = Receiver::start(Answer::new(200, "ok")).await;
        let app = spawn_app(feedback_config(&hook, ""), &store).await;
        let mut event: Value = serde_json::from_str(&sample("canceled.json")).unwrap();
        event["feedback"] = json!("a\u{0}b");
        event["customer"]["id"] = json!("cus_\u{0}1");
        assert_eq!(app.post_event(event.to_string()).await.status(), 200);
        let got = hook.wait_for(1, Duration::from_secs(10)).await;
        assert_eq!(&got[0].body[..], b"a\0b");
        // Recorded, so never handed out again.
        let stats = app.wait_settled(Duration::from_secs(10)).await;
        assert_eq!((stats.delivered, stats.attempts, stats.in_flight), (1, 1, 0), "{stats:?}");
        // Its key was stored too: Raaft's retry is a duplicate.
        let again: Value = app.post_event(event.to_string()).await.json().await.unwrap();
        assert_eq!(again["deliveries"], 0);
        assert_eq!(hook.count(), 1);
        let listed = deliveries_cli(&app.config_path(), &["list"]);
        assert!(listed.contains("cus_\\01") && listed.contains(" delivered "), "{listed}");
        let id = listed.split_whitespace().next().unwrap();
        let shown = deliveries_cli(&app.config_path(), &["show", id]);
        assert!(shown.contains("payload of the last attempt:\na\\0b"), "{shown}");
        assert!(shown.contains("customer cus_\\01"), "{shown}");
        assert!(!shown.contains('\0'), "a NUL reached the terminal: {shown}");
    }

    async fn a_nul_in_a_reply_is_recorded_with_each_attempt(store) {
        let hook = Receiver::start(Answer::new(500, "internal\u{0}error")).await;
        let app = spawn_app(flow_config(&hook, ""), &store).await;
        app.post_event(sample("canceled.json")).await;
        // max_attempts = 4: four sends, each recorded, then dead.
        let stats = app.wait_settled(Duration::from_secs(10)).await;
        assert_eq!((stats.dead, stats.attempts), (1, 4), "{stats:?}");
        assert_eq!(hook.count(), 4);
        let listed = deliveries_cli(&app.config_path(), &["list", "--status", "dead"]);
        let id = listed.split_whitespace().next().unwrap();
        let shown = deliveries_cli(&app.config_path(), &["show", id]);
        assert_eq!(shown.matches("status 500").count(), 4, "{shown}");
        assert!(shown.contains("internal\\0error"), "{shown}");
        let detail = app.store.show(id).await.unwrap().unwrap();
        assert_eq!(detail.attempt_log[0].response.as_deref(), Some(&b"internal\0error"[..]));
    }

    async fn one_event_the_store_refuses_fails_alone_in_its_batch(store) {
        let hook = Receiver::start(Answer::new(200, "")).await;
        let app = std::sync::Arc::new(spawn_app(flow_config(&hook, ""), &store).await);
        execute(&app.location, &refuse_rows(&store, "events", "body", "poison-pill")).await;
        let mut posts = Vec::new();
        for i in 0..60 {
            let app = app.clone();
            let mut event: Value = serde_json::from_str(&sample("canceled.json")).unwrap();
            if i == 30 {
                event["feedback"] = json!("poison-pill");
            }
            posts.push(tokio::spawn(async move { (i, app.post_event(event.to_string()).await.status()) }));
        }
        for post in posts {
            let (i, status) = post.await.unwrap();
            assert_eq!(status, if i == 30 { 503 } else { 200 }, "event {i}");
        }
        let got = hook.wait_for(59, Duration::from_secs(20)).await;
        let stats = app.wait_settled(Duration::from_secs(10)).await;
        assert_eq!((stats.events, stats.delivered), (59, 59));
        assert!(flow_counts(&got).values().all(|n| *n == 1), "{:?}", flow_counts(&got));
        assert_eq!(hook.count(), 59);
    }

    async fn an_attempt_whose_record_is_refused_is_not_sent_again(store) {
        let hook = Receiver::start(Answer::new(200, "")).await;
        // A claim lasts attempt_timeout + 7 s = 8 s.
        let retry = "[retry]\nmax_attempts = 4\ninitial_backoff = \"10ms\"\nmax_backoff = \"50ms\"\nattempt_timeout = \"1s\"\n";
        let app = spawn_app(flow_config(&hook, retry), &store).await;
        execute(&app.location, &refuse_rows(&store, "attempts", "delivery_id", "")).await;
        app.post_event(sample("canceled.json")).await;
        hook.wait_for(1, Duration::from_secs(10)).await;
        // The relay keeps the delivery claimed while it tries to record the
        // attempt: wait until the claim has outlived the one it was given.
        let lease = "SELECT lease_until FROM deliveries";
        let claimed_until = query_number(&app.location, lease).await.expect("the delivery is claimed");
        let start = Instant::now();
        while query_number(&app.location, lease).await.unwrap_or(0) < claimed_until + 9_000 {
            assert!(start.elapsed() < Duration::from_secs(30), "the claim was not kept");
            assert_eq!(hook.count(), 1, "sent again while its attempt could not be recorded");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(hook.count(), 1, "sent again once its first claim ran out");
        execute(&app.location, &allow_rows(&store, "attempts")).await;
        let stats = app.wait_settled(Duration::from_secs(10)).await;
        assert_eq!((stats.delivered, stats.attempts), (1, 1), "{stats:?}");
        assert_eq!(hook.count(), 1);
    }

    async fn a_replay_during_an_attempt_waits_for_it(store) {
        let slow = Duration::from_millis(1500);
        let hook = Receiver::start(Answer::new(200, "").delayed(slow)).await;
        let app = spawn_app(flow_config(&hook, "[admin]\ntokens = [\"adm1n\"]\n"), &store).await;
        app.post_event(sample("canceled.json")).await;
        hook.wait_for(1, Duration::from_secs(10)).await;
        let id = deliveries_cli(&app.config_path(), &["list"]).split_whitespace().next().unwrap().to_owned();
        // Over the admin API, which wakes the dispatcher at once.
        let replay: Value = app
            .client()
            .post(format!("{}/admin/deliveries/{id}/replay", app.address))
            .header("authorization", "Bearer adm1n")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(replay, json!({"replayed": [id], "after_attempt_under_way": true}));
        // From the command line, during the next attempt.
        let got = hook.wait_for(2, Duration::from_secs(10)).await;
        let out = deliveries_cli(&app.config_path(), &["replay", &id]);
        assert!(out.contains(&format!("replayed {id} (after the attempt under way")), "{out}");
        let got3 = hook.wait_for(3, Duration::from_secs(10)).await;
        for pair in [(&got[0], &got[1]), (&got3[1], &got3[2])] {
            assert!(pair.1.at.duration_since(pair.0.at) >= slow, "a replay overlapped the attempt under way");
        }
        let stats = app.wait_settled(Duration::from_secs(10)).await;
        assert_eq!((stats.delivered, stats.attempts), (1, 3), "{stats:?}");
        assert_eq!(hook.count(), 3);
        let summary = &app.store.list(&Default::default()).await.unwrap()[0];
        assert_eq!(summary.attempts, 1, "a replay starts the attempt count over");
    }
}

on_both_stores! {
    async fn an_attempt_cut_short_by_a_crash_counts_toward_max_attempts(store) {
        // A delivery whose attempt kills the relay every time (think of a
        // payload that exhausts memory) must not be retried forever.
        let hook = Receiver::start(Answer::new(200, "").delayed(Duration::from_secs(2))).await;
        let retry = "[retry]\nmax_attempts = 2\ninitial_backoff = \"10ms\"\nmax_backoff = \"50ms\"\nattempt_timeout = \"3s\"\n";
        let cfg = flow_config(&hook, retry);
        let location = store.fresh_location(cfg.dir.path()).await;
        cfg.set_store(&match &location {
            raaft_relay::config::StoreLocation::Sqlite(path) => format!("sqlite://{}", path.display()),
            raaft_relay::config::StoreLocation::Postgres(url) => url.clone(),
        });
        let relay = RelayProcess::start(&cfg.path()).await;
        relay.post(sample("canceled.json")).await;
        hook.wait_for(1, Duration::from_secs(10)).await;
        relay.kill();
        // Taken over at once on SQLite, when the claim runs out (10 s) on
        // PostgreSQL.
        let relay = RelayProcess::start(&cfg.path()).await;
        hook.wait_for(2, Duration::from_secs(20)).await;
        relay.kill();
        let relay = RelayProcess::start(&cfg.path()).await;
        wait_for_counts(&location, Duration::from_secs(20), "the delivery to be given up", |s| s.dead == 1).await;
        assert_eq!(hook.count(), 2, "a third attempt was sent");
        let dead = deliveries_cli(&cfg.path(), &["list", "--status", "dead"]);
        assert!(dead.contains("gave up before attempt 3: max_attempts is 2"), "{dead}");
        drop(relay);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(postgres_tests), ignore = "set RAAFT_RELAY_TEST_POSTGRES to a PostgreSQL URL to run it")]
async fn replicas_whose_clocks_disagree_send_each_event_once() {
    let store = TestStore::postgres();
    // A claim lasts attempt_timeout + 7 s = 17 s; the receiver takes 9 s,
    // more than half of it. One replica's clock is 30 s ahead: by its own
    // clock, every claim of the other has long run out.
    let hook = Receiver::start(Answer::new(200, "").delayed(Duration::from_secs(9))).await;
    let retry =
        "[retry]\nmax_attempts = 1000\ninitial_backoff = \"20ms\"\nmax_backoff = \"200ms\"\nattempt_timeout = \"10s\"\n";
    let cfg = flow_config_url(&hook.url("/hook"), retry);
    let location = store.fresh_location(cfg.dir.path()).await;
    let raaft_relay::config::StoreLocation::Postgres(url) = &location else { unreachable!() };
    cfg.set_store(url);
    let on_time = RelayProcess::start(&cfg.path()).await;
    let ahead = RelayProcess::start_with(skewed_relay_command("+30s"), &cfg.path()).await;
    // Its own log says its clock runs ahead.
    let first_line: Value = serde_json::from_str(ahead.logs().lines().next().unwrap()).unwrap();
    let its_time = chrono::DateTime::parse_from_rfc3339(first_line["timestamp"].as_str().unwrap()).unwrap();
    let skew = its_time.signed_duration_since(chrono::Utc::now());
    assert!(skew > chrono::Duration::seconds(25), "the replica's clock is not ahead: {skew}");
    let mut flows = Vec::new();
    for i in 0..12 {
        let event = sample("canceled.json");
        flows.push(serde_json::from_str::<Value>(&event).unwrap()["flowId"].as_str().unwrap().to_owned());
        let relay = if i % 2 == 0 { &on_time } else { &ahead };
        assert_eq!(relay.post(event).await.status(), 200);
    }
    wait_until(Duration::from_secs(60), "every event to arrive", || flow_counts(&hook.received()).len() == 12).await;
    // Every attempt recorded: nothing more can be sent.
    wait_for_counts(&location, Duration::from_secs(30), "every delivery recorded", |s| s.delivered == 12).await;
    let counts = flow_counts(&hook.received());
    for flow in &flows {
        assert_eq!(counts[flow], 1, "event {flow} was sent {} times", counts[flow]);
    }
    assert!(!ahead.logs().contains("panicked") && !on_time.logs().contains("panicked"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_serve_on_one_sqlite_file_is_refused() {
    let hook = Receiver::start(Answer::new(200, "")).await;
    let cfg = flow_config(&hook, "");
    let db = cfg.dir.path().join("relay.db");
    cfg.set_store(&format!("sqlite://{}", db.display()));
    let relay = RelayProcess::start(&cfg.path()).await;
    let mut second = relay_command()
        .args(["--config", cfg.path().to_str().unwrap(), "serve"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = collect_output(second.stderr.take().unwrap());
    let mut status = None;
    wait_until(Duration::from_secs(10), "the second serve to exit", || {
        status = second.try_wait().unwrap();
        status.is_some()
    })
    .await;
    let _ = second.kill();
    assert_eq!(status.unwrap().code(), Some(1));
    wait_until(Duration::from_secs(5), "its message", || !stderr.lock().unwrap().is_empty()).await;
    let message = stderr.lock().unwrap().clone();
    assert!(
        message.contains(&format!("the store \"{}\" is in use by another raaft-relay serve", db.display())),
        "{message}"
    );
    // The first one goes on, and the `deliveries` commands work beside it.
    assert_eq!(relay.post(sample("canceled.json")).await.status(), 200);
    hook.wait_for(1, Duration::from_secs(10)).await;
    wait_until(Duration::from_secs(10), "the delivery to be listed", || {
        deliveries_cli(&cfg.path(), &["list", "--status", "delivered"]).contains(" delivered ")
    })
    .await;
    drop(relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sqlite_store_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let hook = Receiver::start(Answer::new(200, "")).await;
    let cfg = flow_config(&hook, "");
    let folder = cfg.dir.path().join("data/relay");
    cfg.set_store(&format!("sqlite://{}/relay.db", folder.display()));
    let app = spawn_on(cfg).await;
    app.post_event(sample("canceled.json")).await;
    hook.wait_for(1, Duration::from_secs(10)).await;
    let mode = |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&folder), 0o700, "the folder the relay created");
    for file in ["relay.db", "relay.db-wal", "relay.db-shm"] {
        assert_eq!(mode(&folder.join(file)), 0o600, "{file}");
    }
}
