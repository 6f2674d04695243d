//! Operating the relay: health, readiness, metrics, pacing, pauses, hot
//! reload, alerts and logs without secrets.

use crate::helpers::*;
use crate::store::flow_config;
use serde_json::Value;
use std::time::{Duration, Instant};

async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    app.client().get(format!("{}{path}", app.address)).send().await.unwrap()
}

/// An admin token: on the listener Raaft reaches, `/metrics` answers only
/// requests that carry one.
const OPS: &str = "ops-token-0123456789";

/// The `[admin]` section that gives a test relay [`OPS`].
fn ops_admin() -> String {
    format!("[admin]\ntokens = [\"{OPS}\"]\n")
}

/// `/metrics` on the main listener, with [`OPS`].
async fn scrape(app: &TestApp) -> reqwest::Response {
    app.client().get(format!("{}/metrics", app.address)).bearer_auth(OPS).send().await.unwrap()
}

/// The value of one sample line of the metrics text; a series that is not
/// there fails the test (a misspelt name must not read as 0).
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{series} has no number: {v}")))
        .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
}

on_both_stores! {
    async fn health_readiness_and_metrics_tell_what_happened(store) {
        let hook = Receiver::start(Answer::new(200, "")).await;
        hook.then(Answer::new(500, "boom"));
        let app = spawn_app(flow_config(&hook, &ops_admin()), &store).await;
        assert_eq!(get(&app, "/healthz").await.status(), 200);
        let ready = get(&app, "/readyz").await;
        assert_eq!(ready.status(), 200);
        assert_eq!(ready.json::<Value>().await.unwrap()["status"], "ready");
        app.post_event(sample("canceled.json")).await;
        app.post_event(sample("saved-discount.json")).await;
        app.post_with_token(sample("canceled.json"), Some("nope")).await;
        app.post_event("not json".to_string()).await;
        let dup = sample("aborted.json");
        app.post_event(dup.clone()).await;
        app.post_event(dup).await;
        app.wait_settled(Duration::from_secs(10)).await;
        let response = scrape(&app).await;
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
        let text = response.text().await.unwrap();
        let expect = [
            (r#"raaft_relay_events_received_total{outcome="canceled",result="accepted"}"#, 1.0),
            (r#"raaft_relay_events_received_total{outcome="saved",result="accepted"}"#, 1.0),
            (r#"raaft_relay_events_received_total{outcome="aborted",result="duplicate"}"#, 1.0),
            (r#"raaft_relay_events_received_total{outcome="unknown",result="unauthorized"}"#, 1.0),
            (r#"raaft_relay_events_received_total{outcome="unknown",result="invalid"}"#, 1.0),
            (r#"raaft_relay_route_matches_total{route="all"}"#, 3.0),
            (r#"raaft_relay_deliveries_total{destination="hook",result="delivered"}"#, 3.0),
            (r#"raaft_relay_deliveries_total{destination="hook",result="retried"}"#, 1.0),
            (r#"raaft_relay_attempt_duration_seconds_count{destination="hook"}"#, 4.0),
        ];
        for (series, value) in expect {
            assert_eq!(metric(&text, series), value, "{series} in:\n{text}");
        }
        // The store's own files beside the config are not config changes.
        assert_eq!(metric(&text, r#"raaft_relay_config_reloads_total{result="success"}"#), 0.0, "{text}");
        assert_eq!(metric(&text, r#"raaft_relay_config_reloads_total{result="error"}"#), 0.0, "{text}");
    }

    async fn a_dead_destination_shows_its_backlog_in_metrics_while_others_flow(store) {
        let down = Receiver::start(Answer::new(503, "")).await;
        let up = Receiver::start(Answer::new(200, "")).await;
        let cfg = ConfigDir::new(&format!(
            "[destinations.down]\nkind = \"webhook\"\nurl = \"{}\"\ntemplate = \"webhook/event.json.hbs\"\n\
             [destinations.up]\nkind = \"webhook\"\nurl = \"{}\"\ntemplate = \"webhook/event.json.hbs\"\n\
             [[routes]]\nname = \"all\"\nto = [\"down\", \"up\"]\n\
             [retry]\nmax_attempts = 100\ninitial_backoff = \"50ms\"\nmax_backoff = \"100ms\"\nattempt_timeout = \"1s\"\n{}",
            down.url("/d"),
            up.url("/u"),
            ops_admin()
        ));
        let app = spawn_app(cfg, &store).await;
        for _ in 0..3 {
            app.post_event(sample("canceled.json")).await;
        }
        up.wait_for(3, Duration::from_secs(5)).await;
        // The gauges are a snapshot the relay refreshes in the background:
        // wait for one taken after the healthy destination's answers were
        // recorded.
        wait_until_async(Duration::from_secs(10), "a snapshot with the backlog and the empty queue", || async {
            let text = scrape(&app).await.text().await.unwrap();
            metric(&text, r#"raaft_relay_queue_depth{destination="up"}"#) == 0.0
                && metric(&text, r#"raaft_relay_queue_depth{destination="down"}"#) == 3.0
        })
        .await;
        let text = scrape(&app).await.text().await.unwrap();
        assert!(metric(&text, r#"raaft_relay_oldest_pending_age_seconds{destination="down"}"#) > 0.0, "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_be_turned_off_or_need_the_admin_token() {
    let hook = Receiver::start(Answer::new(200, "")).await;
    let off = flow_config(&hook, "");
    let text = std::fs::read_to_string(off.path())
        .unwrap()
        .replace("listen = \"127.0.0.1:0\"", "listen = \"127.0.0.1:0\"\nmetrics = false");
    std::fs::write(off.path(), text).unwrap();
    let app = spawn_app(off, &TestStore::Sqlite).await;
    assert_eq!(get(&app, "/metrics").await.status(), 404);

    let guarded = flow_config(&hook, "[admin]\ntokens = [\"m3trics\"]\nmetrics_auth = true\n");
    let app = spawn_app(guarded, &TestStore::Sqlite).await;
    assert_eq!(get(&app, "/metrics").await.status(), 401);
    let ok = app.client().get(format!("{}/metrics", app.address)).bearer_auth("m3trics").send().await.unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_raaft_reaches_serves_metrics_only_with_an_admin_token() {
    let hook = Receiver::start(Answer::new(200, "")).await;
    // No admin token, no operators' listener: nobody may scrape it there.
    let app = spawn_app(flow_config(&hook, ""), &TestStore::Sqlite).await;
    assert_eq!(get(&app, "/metrics").await.status(), 404);
    // Admin tokens, no operators' listener: only with one of them.
    let app = spawn_app(flow_config(&hook, &ops_admin()), &TestStore::Sqlite).await;
    let refused = get(&app, "/metrics").await;
    assert_eq!(refused.status(), 401);
    assert!(!refused.text().await.unwrap().contains("raaft_relay_"));
    let wrong = app.client().get(format!("{}/metrics", app.address)).bearer_auth("guess").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(scrape(&app).await.status(), 200);
    // With an operators' listener: there, as configured, without a token.
    let app = spawn_app(
        flow_config(&hook, &format!("[admin]\ntokens = [\"{OPS}\"]\nlisten = \"127.0.0.1:0\"\n")),
        &TestStore::Sqlite,
    )
    .await;
    let admin = app.admin_address.clone().unwrap();
    assert_eq!(app.post_event(sample("canceled.json")).await.status(), 200);
    let there = app.client().get(format!("{admin}/metrics")).send().await.unwrap();
    assert_eq!(there.status(), 200);
    assert!(there.text().await.unwrap().contains("raaft_relay_events_received_total"));
    assert_eq!(scrape(&app).await.status(), 404, "not on the listener Raaft reaches");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(postgres_tests), ignore = "set RAAFT_RELAY_TEST_POSTGRES to a PostgreSQL URL to run it")]
async fn readiness_fails_while_the_store_is_unreachable() {
    let store = TestStore::postgres();
    use sqlx::Connection;
    let hook = Receiver::start(Answer::new(200, "")).await;
    let cfg = flow_config(&hook, &format!("[admin]\ntokens = [\"{OPS}\"]\nlisten = \"127.0.0.1:0\"\n"));
    let url = store.fresh_url(cfg.dir.path()).await;
    cfg.set_store(&url);
    let app = spawn_on(cfg).await;
    let operators = app.admin_address.clone().unwrap();
    assert_eq!(get(&app, "/readyz").await.status(), 200);
    let TestStore::Postgres(server) = &store else { unreachable!() };
    let db = url.rsplit('/').next().unwrap().to_owned();
    let mut admin = sqlx::PgConnection::connect(server).await.unwrap();
    sqlx::query(&format!("ALTER DATABASE \"{db}\" ALLOW_CONNECTIONS false")).execute(&mut admin).await.unwrap();
    sqlx::query(&format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'"))
        .execute(&mut admin)
        .await
        .unwrap();
    // The public is told only that the relay is not ready.
    let response = get(&app, "/readyz").await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"status": "unavailable"}));
    // The operators' listener says why.
    let response = app.client().get(format!("{operators}/readyz")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    assert!(body["reason"].as_str().unwrap().contains("store"), "{body}");
    assert_eq!(get(&app, "/healthz").await.status(), 200, "the process still runs");
    sqlx::query(&format!("ALTER DATABASE \"{db}\" ALLOW_CONNECTIONS true")).execute(&mut admin).await.unwrap();
    wait_until_async(Duration::from_secs(10), "readiness to come back", || async {
        get(&app, "/readyz").await.status() == 200
    })
    .await;
}

/// Notices held back for `reason`, as the relay counts them.
fn held(app: &TestApp, reason: &str) -> u64 {
    app.metrics.alerts_held.with_label_values(&[reason]).get()
}

async fn wait_until_async<F, Fut>(deadline: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !cond().await {
        assert!(start.elapsed() < deadline, "timed out after {deadline:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

on_both_stores! {
    async fn a_burst_arrives_paced_and_never_bounced(store) {
        let slack = Receiver::slack().await;
        // Faster than 2 per second (with 10% slack for timing) gets 429.
        slack.limit(2, Duration::from_millis(900));
        let fast = Receiver::start(Answer::new(200, "")).await;
        let cfg = ConfigDir::new(&format!(
            "[destinations.churn]\nkind = \"slack\"\nurl = \"{}\"\ntemplate = \"slack/saved.hbs\"\nrate_limit = \"2/s\"\n\
             [destinations.other]\nkind = \"webhook\"\nurl = \"{}\"\ntemplate = \"webhook/event.json.hbs\"\n\
             [[routes]]\nname = \"all\"\nto = [\"churn\", \"other\"]\n",
            slack.url("/services/x"),
            fast.url("/o")
        ));
        let app = spawn_app(cfg, &store).await;
        let start = Instant::now();
        for _ in 0..10 {
            assert_eq!(app.post_event(sample("canceled.json")).await.status(), 200);
        }
        // The unpaced destination is not held back by the paced one.
        fast.wait_for(10, Duration::from_secs(2)).await;
        assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
        let got = slack.wait_for(10, Duration::from_secs(20)).await;
        assert!(got.iter().all(|r| r.status == 200), "bounced: {:?}", got.iter().map(|r| r.status).collect::<Vec<_>>());
        assert_eq!(got.len(), 10);
        let spread = got[9].at - got[0].at;
        assert!(spread >= Duration::from_millis(4300), "10 messages at 2/s took only {spread:?}");
        let stats = app.wait_settled(Duration::from_secs(5)).await;
        assert_eq!((stats.delivered, stats.attempts), (20, 20), "no attempt was wasted on a 429");
    }

    async fn a_429_pauses_the_whole_destination(store) {
        let slack = Receiver::slack().await;
        slack.then(Answer::new(429, "rate_limited").header("retry-after", "2"));
        let cfg = ConfigDir::new(&format!(
            "[destinations.churn]\nkind = \"slack\"\nurl = \"{}\"\ntemplate = \"slack/saved.hbs\"\nrate_limit = \"none\"\n[[routes]]\nname = \"all\"\nto = [\"churn\"]\n",
            slack.url("/services/x")
        ));
        let app = spawn_app(cfg, &store).await;
        app.post_event(sample("canceled.json")).await;
        slack.wait_for(1, Duration::from_secs(5)).await;
        app.post_event(sample("saved-discount.json")).await;
        let got = slack.wait_for(3, Duration::from_secs(10)).await;
        // Neither the retry nor the other event went out during the pause.
        assert!(got[1].at - got[0].at >= Duration::from_millis(1900), "{:?}", got[1].at - got[0].at);
        assert_eq!(app.wait_settled(Duration::from_secs(5)).await.delivered, 2);
    }

    async fn discord_rate_limit_headers_pause_before_a_429(store) {
        let discord = Receiver::discord().await;
        discord.then(Answer::new(204, "").header("x-ratelimit-remaining", "0").header("x-ratelimit-reset-after", "1.5"));
        let cfg = ConfigDir::new(&format!(
            "[destinations.wins]\nkind = \"discord\"\nurl = \"{}\"\ntemplate = \"discord/canceled.hbs\"\nrate_limit = \"none\"\n[[routes]]\nname = \"all\"\nto = [\"wins\"]\n",
            discord.url("/api/webhooks/1/tok")
        ));
        let app = spawn_app(cfg, &store).await;
        app.post_event(sample("canceled.json")).await;
        discord.wait_for(1, Duration::from_secs(5)).await;
        app.post_event(sample("canceled.json")).await;
        let got = discord.wait_for(2, Duration::from_secs(10)).await;
        assert!(got[1].at - got[0].at >= Duration::from_millis(1400), "{:?}", got[1].at - got[0].at);
        assert!(got.iter().all(|r| r.status != 429));
    }

    async fn a_dead_delivery_sends_one_notice_to_the_ops_destination(store) {
        let churn = Receiver::start(Answer::new(404, "channel_not_found")).await;
        let ops = Receiver::slack().await;
        let cfg = ConfigDir::new(&format!(
            "[destinations.churn]\nkind = \"slack\"\nurl = \"{}\"\ntemplate = \"slack/saved.hbs\"\nrate_limit = \"none\"\n\
             [destinations.ops]\nkind = \"slack\"\nurl = \"{}\"\ntemplate = \"slack/saved.hbs\"\n\
             [[routes]]\nname = \"all\"\nto = [\"churn\"]\n[alerts]\ndestination = \"ops\"\n",
            churn.url("/services/churn"),
            ops.url("/services/ops")
        ));
        let app = spawn_app(cfg, &store).await;
        app.post_event(sample("canceled.json")).await;
        let notices = ops.wait_for(1, Duration::from_secs(5)).await;
        let text = notices[0].json()["text"].as_str().unwrap().to_owned();
        assert!(text.contains("\"churn\"") && text.contains("channel_not_found"), "{text}");
        let dead = app.store.list(&raaft_relay::store::ListFilter { limit: 10, ..Default::default() }).await.unwrap();
        assert!(text.contains(&format!("raaft-relay deliveries replay {}", dead[0].id)), "{text}");
        // A second dead delivery within the hour sends no second notice.
        app.post_event(sample("canceled.json")).await;
        assert_eq!(app.wait_settled(Duration::from_secs(5)).await.dead, 2);
        wait_until(Duration::from_secs(5), "the second notice held back", || held(&app, "dead") >= 1).await;
        assert_eq!(ops.count(), 1);
    }

    async fn an_old_backlog_sends_a_notice_but_never_about_the_ops_destination_to_itself(store) {
        let down = Receiver::start(Answer::new(503, "")).await;
        let ops = Receiver::start(Answer::new(200, "")).await;
        let cfg = ConfigDir::new(&format!(
            "[destinations.down]\nkind = \"webhook\"\nurl = \"{}\"\ntemplate = \"webhook/event.json.hbs\"\n\
             [destinations.ops]\nkind = \"webhook\"\nurl = \"{}\"\ntemplate = \"webhook/event.json.hbs\"\n\
             [[routes]]\nname = \"all\"\nto = [\"down\"]\n[alerts]\ndestination = \"ops\"\nbacklog_after = \"1s\"\n\
             [retry]\nmax_attempts = 100\ninitial_backoff = \"100ms\"\nmax_backoff = \"200ms\"\nattempt_timeout = \"1s\"\n",
            down.url("/d"),
            ops.url("/ops")
        ));
        let app = spawn_app(cfg, &store).await;
        app.post_event(sample("canceled.json")).await;
        let got = ops.wait_for(1, Duration::from_secs(10)).await;
        let text = got[0].json()["text"].as_str().unwrap().to_owned();
        assert!(text.contains("\"down\" has 1 pending deliveries"), "{text}");
        // The next looks at the backlog find it as old, and hold their notice back.
        wait_until(Duration::from_secs(10), "a later notice held back", || held(&app, "backlog") >= 2).await;
        assert_eq!(ops.count(), 1, "one notice per destination and reason per hour");
    }
}

async fn reloads(app: &TestApp, result: &str) -> f64 {
    let text = scrape(app).await.text().await.unwrap();
    metric(&text, &format!("raaft_relay_config_reloads_total{{result=\"{result}\"}}"))
}

on_both_stores! {
    async fn an_edited_template_is_used_by_the_next_event_and_a_broken_one_is_not(store) {
        let hook = Receiver::start(Answer::new(200, "")).await;
        let cfg = ConfigDir::new(&format!(
            "[destinations.hook]\nkind = \"webhook\"\nurl = \"{}\"\ntemplate = \"note.hbs\"\n[[routes]]\nname = \"all\"\nto = [\"hook\"]\n{}",
            hook.url("/h"),
            ops_admin()
        ));
        cfg.write_template("note.hbs", "v1 {{outcome}}");
        let dir = cfg.dir.path().to_path_buf();
        let app = spawn_app(cfg, &store).await;
        app.post_event(sample("canceled.json")).await;
        assert_eq!(hook.wait_for(1, Duration::from_secs(5)).await[0].body, "v1 canceled");

        std::fs::write(dir.join("templates/note.hbs"), "v2 {{outcome}} for {{customer.name}}").unwrap();
        wait_until_async(Duration::from_secs(10), "the reload", || async { reloads(&app, "success").await >= 1.0 }).await;
        app.post_event(sample("canceled.json")).await;
        assert_eq!(hook.wait_for(2, Duration::from_secs(5)).await[1].body, "v2 canceled for Ana Lima");
        // Reloading reads the files; reading them must not set off more
        // reloads. A file beside them, written after the reload, is seen
        // after whatever the reload's reads caused, and ignored.
        let file_events = |result: &str| app.metrics.config_file_events.with_label_values(&[result]).get();
        let (changes, ignored) = (file_events("change"), file_events("ignored"));
        std::fs::write(dir.join("templates/not-a-template.txt"), "x").unwrap();
        wait_until(Duration::from_secs(10), "the file beside them seen", || file_events("ignored") > ignored).await;
        assert_eq!(file_events("change"), changes, "reloads keep triggering themselves");

        // A broken edit: the running template stays, the relay keeps going.
        std::fs::write(dir.join("templates/note.hbs"), "v3 {{#if outcome}} never closed").unwrap();
        wait_until_async(Duration::from_secs(10), "the failed reload", || async { reloads(&app, "error").await >= 1.0 }).await;
        assert_eq!(app.post_event(sample("canceled.json")).await.status(), 200);
        assert_eq!(hook.wait_for(3, Duration::from_secs(5)).await[2].body, "v2 canceled for Ana Lima");
        assert_eq!(get(&app, "/readyz").await.status(), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_at_once_and_a_listen_change_waits_for_a_restart() {
    let hook = Receiver::start(Answer::new(200, "")).await;
    let cfg = ConfigDir::new(&format!(
        "[destinations.hook]\nkind = \"webhook\"\nurl = \"{}\"\ntemplate = \"note.hbs\"\n[[routes]]\nname = \"all\"\nto = [\"hook\"]\n",
        hook.url("/h")
    ));
    cfg.write_template("note.hbs", "before");
    cfg.set_store(&TestStore::Sqlite.fresh_url(cfg.dir.path()).await);
    let mut relay = RelayProcess::start(&cfg.path()).await;
    std::fs::write(cfg.dir.path().join("templates/note.hbs"), "after").unwrap();
    let text =
        std::fs::read_to_string(cfg.path()).unwrap().replace("listen = \"127.0.0.1:0\"", "listen = \"127.0.0.1:1\"");
    std::fs::write(cfg.path(), text).unwrap();
    let pid = relay.child.id().to_string();
    // Sent as soon as the relay has said it listens: the signal must be
    // caught by then (its default action ends the process).
    assert!(std::process::Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    wait_until(Duration::from_secs(5), "the SIGHUP reload", || {
        relay.logs().contains("\"trigger\":\"SIGHUP\"") || relay.child.try_wait().unwrap().is_some()
    })
    .await;
    assert_eq!(relay.child.try_wait().unwrap(), None, "SIGHUP ended the relay:\n{}", relay.logs());
    let warned = relay.logs().lines().any(|line| {
        serde_json::from_str::<serde_json::Value>(line).is_ok_and(|v| {
            v["key"] == "server.listen"
                && v["message"]
                    == "a start-only setting changed: restart the relay to apply it; the running value stays"
        })
    });
    assert!(warned, "{}", relay.logs());
    assert_eq!(relay.post(sample("canceled.json")).await.status(), 200, "still listening where it was");
    assert_eq!(hook.wait_for(1, Duration::from_secs(5)).await[0].body, "after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_and_metrics_carry_no_secrets() {
    let slack = Receiver::start(Answer::new(404, "channel_not_found")).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let cfg = ConfigDir::new(&format!(
        "[destinations.churn]\nkind = \"slack\"\nurl = \"{}\"\ntemplate = \"slack/saved.hbs\"\n\
         [destinations.wins]\nkind = \"discord\"\nurl = \"http://{closed}/api/webhooks/123/DISCORDSECRET\"\ntemplate = \"discord/canceled.hbs\"\n\
         [destinations.founders]\nkind = \"email\"\nurl = \"smtp://relay:SMTPSECRET@127.0.0.1:{}\"\nfrom = \"r@example.com\"\nto = [\"f@example.com\"]\ntemplate = \"email/canceled.hbs\"\n\
         [[routes]]\nname = \"all\"\nto = [\"churn\", \"wins\", \"founders\"]\n\
         [admin]\ntokens = [\"ADMINSECRET\"]\n\
         [retry]\nmax_attempts = 2\ninitial_backoff = \"10ms\"\nmax_backoff = \"20ms\"\nattempt_timeout = \"1s\"\n",
        slack.url("/services/T0SECRET/B0SECRET/XSECRETX"),
        closed.port()
    ));
    cfg.set_store(&TestStore::Sqlite.fresh_url(cfg.dir.path()).await);
    let relay = RelayProcess::start(&cfg.path()).await;
    relay.post(sample("canceled.json")).await;
    let client = reqwest::Client::new();
    client
        .post(format!("http://127.0.0.1:{}/webhooks/raaft", relay.port))
        .header("x-raaft-token", "GUESSEDSECRET")
        .body("{}")
        .send()
        .await
        .unwrap();
    wait_until(Duration::from_secs(15), "every delivery to fail", || {
        relay.logs().matches("delivery failed for good").count() >= 3
    })
    .await;
    let metrics =
        client.get(format!("http://127.0.0.1:{}/metrics", relay.port)).bearer_auth("ADMINSECRET").send().await;
    let metrics = metrics.unwrap();
    assert_eq!(metrics.status(), 200);
    let metrics = metrics.text().await.unwrap();
    let logs = relay.logs();
    for secret in
        ["T0SECRET", "B0SECRET", "XSECRETX", "DISCORDSECRET", "SMTPSECRET", "ADMINSECRET", TOKEN, "GUESSEDSECRET"]
    {
        assert!(!logs.contains(secret), "{secret} in the logs:\n{logs}");
        assert!(!metrics.contains(secret), "{secret} in the metrics");
    }
    assert!(logs.contains("channel_not_found"), "failures are still explained: {logs}");
}

on_both_stores! {
    async fn notices_about_the_ops_destination_never_go_to_it(store) {
        // The ops destination's own delivery fails for good; the notice
        // about that would go to ops itself, so none is sent.
        let ops = Receiver::start(Answer::new(404, "no_service")).await;
        let cfg = ConfigDir::new(&format!(
            "[destinations.ops]\nkind = \"webhook\"\nurl = \"{}\"\ntemplate = \"webhook/event.json.hbs\"\n\
             [[routes]]\nname = \"all\"\nto = [\"ops\"]\n[alerts]\ndestination = \"ops\"\n{}",
            ops.url("/ops"),
            ops_admin()
        ));
        let app = spawn_app(cfg, &store).await;
        app.post_event(sample("canceled.json")).await;
        assert_eq!(app.wait_settled(Duration::from_secs(5)).await.dead, 1);
        wait_until(Duration::from_secs(5), "the notice about ops held back", || held(&app, "dead") >= 1).await;
        assert_eq!(ops.count(), 1, "only the delivery itself reached ops");
        let text = scrape(&app).await.text().await.unwrap();
        assert_eq!(metric(&text, r#"raaft_relay_alerts_sent_total{reason="dead"}"#), 0.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_name_a_customer_by_id_or_a_keyed_hash_never_by_address() {
    // The receiver refuses, echoing the payload's address back.
    let echo = Receiver::start(Answer::new(400, r#"{"error": "unknown recipient ana@northwind.example"}"#)).await;
    let cfg = ConfigDir::new(&format!(
        "[destinations.hook]\nkind = \"webhook\"\nurl = \"{}\"\ntemplate = \"webhook/event.json.hbs\"\n\
         [[routes]]\nname = \"all\"\nto = [\"hook\"]\n",
        echo.url("/hook")
    ));
    let relay = RelayProcess::start(&cfg.path()).await;
    let mut known_by_address: Value = serde_json::from_str(&sample("canceled.json")).unwrap();
    known_by_address["customer"] = serde_json::json!({"email": "Ana@Northwind.example", "name": "Ana"});
    known_by_address["subscription"]["customer"] = serde_json::json!({});
    assert_eq!(relay.post(known_by_address.to_string()).await.status(), 200);
    let with_id = sample("canceled.json");
    assert_eq!(relay.post(with_id).await.status(), 200);
    wait_until(Duration::from_secs(15), "both deliveries to fail", || {
        relay.logs().matches("delivery failed for good").count() >= 2
    })
    .await;
    let logs = relay.logs();
    assert!(!logs.to_lowercase().contains("ana@northwind.example"), "an address in the logs:\n{logs}");
    let customers: Vec<String> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == "event accepted")
        .filter_map(|v| v["span"]["customer"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(customers.len(), 2, "{logs}");
    assert!(customers.contains(&"cus_Q1w2E3r4".to_owned()), "a customer with an id is logged by it: {customers:?}");
    let hashed: Vec<&String> = customers.iter().filter(|c| c.starts_with("email:")).collect();
    assert_eq!(hashed.len(), 1, "{customers:?}");
    assert_eq!(hashed[0].len(), "email:".len() + 12, "{customers:?}");
    assert!(logs.contains("[e-mail]"), "the receiver's answer is logged with the address blanked:\n{logs}");
}
