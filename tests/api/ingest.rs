//! POST /webhooks/raaft: token first, then size, then JSON; 200 once the
//! event is handed to delivery.

use crate::helpers::*;
use serde_json::{json, Value};
use std::time::Duration;

fn console_config() -> ConfigDir {
    ConfigDir::new(
        r#"
[destinations.out]
kind = "console"
template = "console/event.hbs"
[[routes]]
name = "cancellations"
when = { outcome = "canceled" }
to = ["out"]
"#,
    )
}

fn slack_config(receiver: &Receiver) -> ConfigDir {
    ConfigDir::new(&format!(
        r#"
[destinations.churn]
kind = "slack"
url = "{}"
template = "slack/canceled.json.hbs"
[[routes]]
name = "cancellations"
when = {{ outcome = "canceled" }}
to = ["churn"]
"#,
        receiver.url("/services/T0/B0/secret")
    ))
}

on_both_stores! {
    async fn a_valid_event_is_accepted_and_delivered(store) {
        let slack = Receiver::slack().await;
        let app = spawn_app(slack_config(&slack), &store).await;
        let response = app.post_event(sample("canceled.json")).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, json!({"status": "accepted", "deliveries": 1}));
        let got = slack.wait_for(1, Duration::from_secs(5)).await;
        assert!(got[0].json()["text"].as_str().unwrap().contains("Ana Lima"));
    }
}

on_both_stores! {
    async fn missing_or_wrong_tokens_are_refused_before_the_body_is_read(store) {
        let slack = Receiver::slack().await;
        let app = spawn_app(slack_config(&slack), &store).await;
        for token in [None, Some("wrong"), Some(""), Some("test-token-7f3")] {
            let response = app.post_with_token(sample("canceled.json"), token).await;
            assert_eq!(response.status(), 401, "token {token:?}");
            let body: Value = response.json().await.unwrap();
            assert!(body["error"].as_str().unwrap().contains("x-raaft-token"));
        }
        // Not JSON with a wrong token: 401, not 400, since the body is never parsed.
        let response = app.post_with_token("not json", Some("wrong")).await;
        assert_eq!(response.status(), 401);
        // Nothing was stored, so nothing can be sent.
        let stats = app.stats().await;
        assert_eq!((stats.events, stats.pending, stats.attempts), (0, 0, 0));
        assert_eq!(slack.count(), 0);
    }
}

on_both_stores! {
    async fn every_configured_token_is_accepted_and_the_header_name_is_case_insensitive(store) {
        let app = spawn_app(console_config(), &store).await;
        assert_eq!(app.post_with_token(sample("canceled.json"), Some("second-token")).await.status(), 200);
        let response = app
            .client()
            .post(format!("{}/webhooks/raaft", app.address))
            .header("X-Raaft-Token", TOKEN)
            .body(sample("canceled.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
}

on_both_stores! {
    async fn oversized_bodies_get_413(store) {
        let config = ConfigDir::new(
            "[destinations.out]\nkind = \"console\"\ntemplate = \"console/event.hbs\"\n[[routes]]\nname = \"all\"\nto = [\"out\"]\n",
        );
        let text = std::fs::read_to_string(config.path())
            .unwrap()
            .replace("listen = \"127.0.0.1:0\"", "listen = \"127.0.0.1:0\"\nmax_body_bytes = 2048");
        std::fs::write(config.path(), text).unwrap();
        let app = spawn_app(config, &store).await;
        let big = json!({"outcome": "canceled", "feedback": "x".repeat(5000)}).to_string();
        let response = app.post_event(big.clone()).await;
        assert_eq!(response.status(), 413);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "body exceeds 2048 bytes");
        // Without a Content-Length (chunked), the cap holds too.
        let stream = futures_util::stream::iter(
            big.into_bytes().chunks(512).map(|c| Ok::<_, std::io::Error>(c.to_vec())).collect::<Vec<_>>(),
        );
        let response = app.post_event(reqwest::Body::wrap_stream(stream)).await;
        assert_eq!(response.status(), 413);
        assert_eq!(app.post_event(sample("minimal-canceled.json")).await.status(), 200);
    }
}

on_both_stores! {
    async fn bodies_that_are_not_json_objects_get_400_with_a_reason(store) {
        let app = spawn_app(console_config(), &store).await;
        let cases: &[(&str, &str)] = &[
            ("not json", "not valid JSON"),
            ("{\"outcome\": ", "not valid JSON"),
            ("[1, 2]", "not an object (found an array)"),
            ("\"canceled\"", "not an object (found a string)"),
            ("null", "not an object (found null)"),
            ("", "not valid JSON"),
        ];
        for (body, reason) in cases {
            let response = app.post_event(body.to_string()).await;
            assert_eq!(response.status(), 400, "body {body:?}");
            let answer: Value = response.json().await.unwrap();
            assert!(answer["error"].as_str().unwrap().contains(reason), "{body:?}: {answer}");
        }
        let invalid_utf8 = vec![b'{', b'"', 0xff, 0xfe, b'"', b':', b'1', b'}'];
        assert_eq!(app.post_event(invalid_utf8).await.status(), 400);
        assert_eq!(app.post_event(sample("canceled.json")).await.status(), 200);
    }
}

on_both_stores! {
    async fn unrouted_events_are_answered_200_and_counted(store) {
        let app = spawn_app(console_config(), &store).await;
        let response = app.post_event(sample("saved-discount.json")).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["deliveries"], 0);
        // Kept all the same, for the customer's history and for digests.
        let stats = app.stats().await;
        assert_eq!((stats.events, stats.pending, stats.delivered), (1, 0, 0));
        assert_eq!(app.metrics.unrouted.get(), 1);
        app.post_event(sample("canceled.json")).await;
        assert_eq!(app.metrics.unrouted.get(), 1);
    }
}

on_both_stores! {
    async fn fields_raaft_adds_tomorrow_are_usable_in_rules_and_templates(store) {
        let hook = Receiver::start(Answer::new(200, "")).await;
        let config = ConfigDir::new(&format!(
            r#"
    [destinations.hook]
    kind = "webhook"
    url = "{}"
    template = "custom.hbs"
    [[routes]]
    name = "vip"
    when = 'accountTier == "vip" && healthScore.value < 30'
    to = ["hook"]
    "#,
            hook.url("/in")
        ));
        config.write_template("custom.hbs", "{{accountTier}} {{healthScore.value}} {{customer.name}}");
        let app = spawn_app(config, &store).await;
        let mut event: Value = serde_json::from_str(&sample("canceled.json")).unwrap();
        event["accountTier"] = json!("vip");
        event["healthScore"] = json!({"value": 12});
        assert_eq!(app.post_event(event.to_string()).await.status(), 200);
        let got = hook.wait_for(1, Duration::from_secs(5)).await;
        assert_eq!(got[0].body, "vip 12 Ana Lima");
        // Without the new field the rule does not hold and nothing is queued.
        let answer = app.post_event(sample("canceled.json")).await;
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.json::<Value>().await.unwrap()["deliveries"], 0);
        assert_eq!(hook.count(), 1);
    }
}

on_both_stores! {
    async fn unknown_paths_and_methods_get_json_errors(store) {
        let app = spawn_app(console_config(), &store).await;
        let response = app.client().get(format!("{}/nope", app.address)).send().await.unwrap();
        assert_eq!(response.status(), 404);
        let body: Value = response.json().await.unwrap();
        assert!(body["error"].is_string());
        let response = app.client().get(format!("{}/webhooks/raaft", app.address)).send().await.unwrap();
        assert_eq!(response.status(), 405);
        let response = app.client().get(format!("{}/healthz", app.address)).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
}

fn compressed(coding: &str, data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    match coding {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        _ => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
    }
}

async fn post_encoded(app: &TestApp, coding: &str, body: Vec<u8>) -> reqwest::Response {
    app.client()
        .post(format!("{}/webhooks/raaft", app.address))
        .header("x-raaft-token", TOKEN)
        .header("content-type", "application/json")
        .header("content-encoding", coding)
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn compressed_bodies_are_decoded_and_bombs_and_unknown_codings_refused() {
    let app = spawn_app(console_config(), &TestStore::Sqlite).await;
    let event = sample("canceled.json");
    for coding in ["gzip", "deflate"] {
        let mut body: Value = serde_json::from_str(&event).unwrap();
        body["flowId"] = format!("flow-{coding}").into();
        let response = post_encoded(&app, coding, compressed(coding, body.to_string().as_bytes())).await;
        assert_eq!(response.status(), 200, "{coding}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["deliveries"], 1, "{coding}: {answer}");
    }
    assert_eq!(app.stats().await.events, 2);
    // 10 MB of spaces compress to a few kilobytes: the cap applies to the
    // decoded bytes.
    let bomb = compressed("gzip", &vec![b' '; 10_000_000]);
    assert!(bomb.len() < 64 * 1024);
    let response = post_encoded(&app, "gzip", bomb).await;
    assert_eq!(response.status(), 413);
    let response = post_encoded(&app, "br", event.clone().into_bytes()).await;
    assert_eq!(response.status(), 415);
    let answer: Value = response.json().await.unwrap();
    assert!(answer["error"].as_str().unwrap().contains("\"br\""), "{answer}");
    let response = post_encoded(&app, "gzip", event.into_bytes()).await;
    assert_eq!(response.status(), 400, "a body that says gzip but is not");
    assert_eq!(app.stats().await.events, 2);
}
