//! Routing and delivery end to end: fan-out, one delivery per destination,
//! `stop`, and destinations that never hold each other up.

use crate::helpers::*;
use std::time::{Duration, Instant};

on_both_stores! {
    async fn a_destination_reached_by_two_routes_gets_the_event_once(store) {
        let slack = Receiver::slack().await;
        let hook = Receiver::start(Answer::new(202, "")).await;
        let cfg = ConfigDir::new(&format!(
            r#"
    [destinations.churn]
    kind = "slack"
    url = "{}"
    template = "slack/canceled.json.hbs"
    [destinations.crm]
    kind = "webhook"
    url = "{}"
    template = "webhook/event.json.hbs"
    headers = {{ authorization = "Bearer crm-key", x-source = "raaft" }}
    [[routes]]
    name = "cancellations"
    when = {{ outcome = "canceled" }}
    to = ["churn"]
    [[routes]]
    name = "big-accounts"
    when = 'outcome == "canceled" && subscription.plan.amount >= 100'
    to = ["churn", "crm"]
    "#,
            slack.url("/services/a"),
            hook.url("/crm")
        ));
        let app = spawn_app(cfg, &store).await;
        app.post_event(sample("canceled-annual-enterprise.json")).await;
        let stats = app.wait_settled(Duration::from_secs(5)).await;
        assert_eq!(stats.delivered, 2);
        assert_eq!(slack.count(), 1);
        let crm = hook.received();
        assert_eq!(crm.len(), 1);
        assert_eq!(crm[0].headers["authorization"], "Bearer crm-key");
        assert_eq!(crm[0].headers["x-source"], "raaft");
        assert_eq!(crm[0].headers["content-type"], "application/json");
        let body = crm[0].json();
        assert_eq!(body["type"], "raaft.canceled");
        assert_eq!(body["event"]["subscription"]["plan"]["amount"], 1200);
    }
}

on_both_stores! {
    async fn stop_keeps_later_routes_from_firing(store) {
        let slack = Receiver::slack().await;
        let cfg = ConfigDir::new(&format!(
            r#"
    [destinations.churn]
    kind = "slack"
    url = "{}"
    template = "slack/canceled.json.hbs"
    [destinations.quiet]
    kind = "console"
    template = "console/event.hbs"
    [[routes]]
    name = "test-accounts"
    when = 'customer.email.endsWith("@northwind.example")'
    to = ["quiet"]
    stop = true
    [[routes]]
    name = "cancellations"
    when = {{ outcome = "canceled" }}
    to = ["churn"]
    "#,
            slack.url("/services/a")
        ));
        let app = spawn_app(cfg, &store).await;
        app.post_event(sample("canceled.json")).await;
        app.post_event(sample("canceled-no-payment-provider.json")).await;
        let stats = app.wait_settled(Duration::from_secs(5)).await;
        assert_eq!(stats.delivered, 2);
        // Only the event without a customer reached Slack.
        let got = slack.received();
        assert_eq!(got.len(), 1);
        assert!(got[0].json()["text"].as_str().unwrap().starts_with("A customer canceled"));
    }
}

on_both_stores! {
    async fn a_slow_destination_delays_neither_ingest_nor_the_others(store) {
        let slow = Receiver::start(Answer::new(200, "ok").delayed(Duration::from_secs(3))).await;
        let fast = Receiver::slack().await;
        let cfg = ConfigDir::new(&format!(
            r#"
    [destinations.slow]
    kind = "slack"
    url = "{}"
    template = "slack/canceled.json.hbs"
    rate_limit = "none"
    [destinations.fast]
    kind = "slack"
    url = "{}"
    template = "slack/canceled.json.hbs"
    rate_limit = "none"
    [[routes]]
    name = "all"
    to = ["slow", "fast"]
    [retry]
    max_attempts = 2
    initial_backoff = "10ms"
    max_backoff = "10ms"
    attempt_timeout = "5s"
    "#,
            slow.url("/services/slow"),
            fast.url("/services/fast")
        ));
        let app = spawn_app(cfg, &store).await;
        let started = Instant::now();
        for _ in 0..5 {
            assert_eq!(app.post_event(sample("canceled.json")).await.status(), 200);
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "ingest waited for the slow destination: {:?}",
            started.elapsed()
        );
        fast.wait_for(5, Duration::from_secs(2)).await;
        assert!(started.elapsed() < Duration::from_secs(2), "the fast destination waited: {:?}", started.elapsed());
        let stats = app.wait_settled(Duration::from_secs(10)).await;
        assert_eq!(stats.delivered, 10);
    }
}

on_both_stores! {
    async fn a_broken_template_fails_only_its_destination(store) {
        let good = Receiver::slack().await;
        let bad = Receiver::slack().await;
        let cfg = ConfigDir::new(&format!(
            r#"
    [destinations.good]
    kind = "slack"
    url = "{}"
    template = "slack/canceled.json.hbs"
    [destinations.bad]
    kind = "slack"
    url = "{}"
    template = "broken.json.hbs"
    [[routes]]
    name = "all"
    to = ["good", "bad"]
    "#,
            good.url("/g"),
            bad.url("/b")
        ));
        cfg.write_template("broken.json.hbs", r#"{"text": {{customer.name}} }"#);
        let app = spawn_app(cfg, &store).await;
        app.post_event(sample("canceled.json")).await;
        let stats = app.wait_settled(Duration::from_secs(5)).await;
        assert_eq!((stats.delivered, stats.dead, stats.attempts), (1, 1, 2));
        assert_eq!(bad.count(), 0);
        let reason = &app.dead_reasons().await[0];
        assert!(reason.contains("broken.json.hbs") && reason.contains("not valid JSON"), "{reason}");
    }
}

on_both_stores! {
    async fn shutdown_lets_attempts_under_way_finish(store) {
        let slow = Receiver::start(Answer::new(200, "ok").delayed(Duration::from_millis(700))).await;
        let cfg = ConfigDir::new(&format!(
            "[destinations.s]\nkind = \"slack\"\nurl = \"{}\"\ntemplate = \"slack/saved.hbs\"\n[[routes]]\nname = \"all\"\nto = [\"s\"]\n",
            slow.url("/s")
        ));
        let app = spawn_app(cfg, &store).await;
        app.post_event(sample("canceled.json")).await;
        slow.wait_for(1, Duration::from_secs(5)).await;
        let location = app.location.clone();
        let _config = app.stop().await;
        assert_eq!(count(&location).await.delivered, 1, "the attempt under way was finished, not cut");
    }
}
