//! Slack incoming webhooks over real HTTP: 200 `ok`, 429 with
//! Retry-After, permanent 4xx errors, 500, and hostile customer text.

use crate::helpers::*;
use serde_json::{json, Value};
use std::time::Duration;

fn config(receiver: &Receiver, template: &str, retry: &str) -> ConfigDir {
    ConfigDir::new(&format!(
        r#"
[destinations.churn]
kind = "slack"
url = "{}"
template = "{template}"
[[routes]]
name = "cancellations"
when = {{ outcome = "canceled" }}
to = ["churn"]
{retry}
"#,
        receiver.url("/services/T000/B000/XXXXXXXX")
    ))
}

fn fast_config(receiver: &Receiver) -> ConfigDir {
    config(receiver, "slack/canceled.json.hbs", "")
}

on_both_stores! {
    async fn the_default_template_posts_blocks_with_a_fallback_text(store) {
        let slack = Receiver::slack().await;
        let app = spawn_app(fast_config(&slack), &store).await;
        app.post_event(sample("canceled.json")).await;
        let got = slack.wait_for(1, Duration::from_secs(5)).await;
        assert_eq!(got[0].path, "/services/T000/B000/XXXXXXXX");
        assert_eq!(got[0].headers["content-type"], "application/json");
        let body = got[0].json();
        assert_eq!(body["text"], "Ana Lima canceled Pro ($49.00/month)");
        let all = body.to_string();
        for expected in [
            "Missing features or integrations",
            "We moved to a tool that integrates with HubSpot.",
            "lossAversion → survey",
            "$49.00/month",
            "ana@northwind.example",
        ] {
            assert!(all.contains(expected), "missing {expected:?} in {all}");
        }
        let stats = app.wait_settled(Duration::from_secs(5)).await;
        assert_eq!((stats.delivered, stats.dead, stats.attempts), (1, 0, 1));
    }
}

on_both_stores! {
    async fn a_429_is_retried_after_its_retry_after(store) {
        let slack = Receiver::slack().await;
        slack.then(Answer::new(429, "rate_limited").header("retry-after", "1"));
        let app = spawn_app(fast_config(&slack), &store).await;
        app.post_event(sample("canceled.json")).await;
        let got = slack.wait_for(2, Duration::from_secs(10)).await;
        let waited = got[1].at - got[0].at;
        // Backoff alone would retry within 50 ms; Retry-After says a second.
        assert!(waited >= Duration::from_millis(950), "retried after {waited:?}");
        let stats = app.wait_settled(Duration::from_secs(5)).await;
        assert_eq!((stats.delivered, stats.attempts), (1, 2));
    }
}

on_both_stores! {
    async fn retry_after_as_an_http_date_is_honoured(store) {
        let slack = Receiver::slack().await;
        let when = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(2));
        slack.then(Answer::new(503, "").header("retry-after", &when));
        let app = spawn_app(fast_config(&slack), &store).await;
        app.post_event(sample("canceled.json")).await;
        let got = slack.wait_for(2, Duration::from_secs(10)).await;
        // An HTTP date has whole seconds: at least one second must have passed.
        assert!(got[1].at - got[0].at >= Duration::from_millis(900), "{:?}", got[1].at - got[0].at);
    }
}

on_both_stores! {
    async fn permanent_errors_are_not_retried(store) {
        for (status, body) in
            [(404, "channel_not_found"), (410, "channel_is_archived"), (400, "invalid_payload"), (403, "action_prohibited")]
        {
            let slack = Receiver::start(Answer::new(status, body)).await;
            let app = spawn_app(fast_config(&slack), &store).await;
            app.post_event(sample("canceled.json")).await;
            let stats = app.wait_settled(Duration::from_secs(5)).await;
            assert_eq!((stats.dead, stats.attempts), (1, 1), "{status} {body}");
            assert_eq!(slack.count(), 1);
            let dead = app.dead_reasons().await;
            assert!(dead[0].contains(body), "reason {:?} names the response", dead[0]);
        }
    }
}

on_both_stores! {
    async fn server_errors_are_retried_with_backoff_until_delivered(store) {
        let slack = Receiver::slack().await;
        slack.then(Answer::new(500, "rollup_error")).then(Answer::new(502, "")).then(Answer::new(408, ""));
        let app = spawn_app(fast_config(&slack), &store).await;
        app.post_event(sample("canceled.json")).await;
        let stats = app.wait_settled(Duration::from_secs(10)).await;
        assert_eq!((stats.delivered, stats.attempts), (1, 4));
        assert_eq!(slack.count(), 4);
    }
}

on_both_stores! {
    async fn retries_stop_at_max_attempts(store) {
        let slack = Receiver::start(Answer::new(500, "rollup_error")).await;
        let app = spawn_app(fast_config(&slack), &store).await;
        app.post_event(sample("canceled.json")).await;
        let stats = app.wait_settled(Duration::from_secs(10)).await;
        assert_eq!((stats.dead, stats.attempts), (1, 4));
        assert_eq!(slack.count(), 4);
        assert!(app.dead_reasons().await[0].contains("gave up after 4 attempts"));
    }
}

on_both_stores! {
    async fn timeouts_and_refused_connections_are_transient(store) {
        let slow = Receiver::slack().await;
        slow.then(Answer::new(200, "ok").delayed(Duration::from_secs(3)));
        let app = spawn_app(config(
            &slow,
            "slack/canceled.json.hbs",
            "[retry]\nmax_attempts = 3\ninitial_backoff = \"10ms\"\nmax_backoff = \"20ms\"\nattempt_timeout = \"300ms\"\n",
            ),
            &store,
        )
        .await;
        app.post_event(sample("canceled.json")).await;
        let stats = app.wait_settled(Duration::from_secs(10)).await;
        assert_eq!((stats.delivered, stats.attempts), (1, 2));

        // Nothing listens on this port.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/services/x", closed.local_addr().unwrap());
        drop(closed);
        let cfg = ConfigDir::new(&format!(
            "[destinations.churn]\nkind = \"slack\"\nurl = \"{url}\"\ntemplate = \"slack/saved.hbs\"\n[[routes]]\nname = \"all\"\nto = [\"churn\"]\n"
        ));
        let app = spawn_app(cfg, &store).await;
        app.post_event(sample("canceled.json")).await;
        let stats = app.wait_settled(Duration::from_secs(10)).await;
        assert_eq!((stats.dead, stats.attempts), (1, 4));
        let reason = &app.dead_reasons().await[0];
        assert!(reason.contains("connection failed"), "{reason}");
        assert!(!reason.contains("/services/x"), "the webhook path is a secret: {reason}");
    }
}

fn hostile_event() -> Value {
    let mut event: Value = serde_json::from_str(&sample("canceled.json")).unwrap();
    event["customer"]["name"] = json!("<!channel> \"Bobby\" & <@U123> @everyone\r\nBcc: x@y.z 😀");
    event["feedback"] =
        json!(format!("\"quoted\"\\ back\nslash <https://evil.example|click> 😀 {}", "é".repeat(20_000)));
    event["motivator"] = json!("<!here>");
    event
}

on_both_stores! {
    async fn hostile_customer_text_cannot_ping_break_the_payload_or_exceed_limits(store) {
        let slack = Receiver::slack().await;
        let app = spawn_app(fast_config(&slack), &store).await;
        assert_eq!(app.post_event(hostile_event().to_string()).await.status(), 200);
        let got = slack.wait_for(1, Duration::from_secs(5)).await;
        let body = got[0].json();
        let all = body.to_string();
        assert!(!all.contains("<!channel>") && !all.contains("<!here>") && !all.contains("<@U123>"), "{all}");
        assert!(all.contains("&lt;!channel&gt;"));
        assert!(all.contains("\\\"Bobby\\\""), "quotes stay quotes: {all}");
        assert!(!all.contains("&quot;"));
        assert!(all.contains("&lt;https://evil.example|click&gt;"));
        for block in body["blocks"].as_array().unwrap() {
            if let Some(t) = block["text"]["text"].as_str() {
                assert!(t.chars().count() <= 3000, "section text {} chars", t.chars().count());
            }
            for f in block["fields"].as_array().into_iter().flatten() {
                assert!(f["text"].as_str().unwrap().chars().count() <= 2000);
            }
        }
        let feedback = body["blocks"][2]["text"]["text"].as_str().unwrap();
        assert!(feedback.ends_with('…'));
        let stats = app.wait_settled(Duration::from_secs(5)).await;
        assert_eq!(stats.delivered, 1);
    }
}

on_both_stores! {
    async fn text_templates_are_wrapped_and_escaped(store) {
        let slack = Receiver::slack().await;
        let cfg = config(&slack, "plain.hbs", "");
        cfg.write_template("plain.hbs", "{{customer.name}} said: {{feedback}}");
        let app = spawn_app(cfg, &store).await;
        app.post_event(hostile_event().to_string()).await;
        let got = slack.wait_for(1, Duration::from_secs(5)).await;
        let body = got[0].json();
        let text = body["text"].as_str().unwrap();
        assert!(text.starts_with("&lt;!channel&gt; \"Bobby\" &amp; &lt;@U123&gt; @everyone\r\nBcc"), "{text}");
        assert_eq!(body.as_object().unwrap().len(), 1);
    }
}
