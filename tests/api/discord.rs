//! Discord webhooks over real HTTP: 204, 429 with a JSON `retry_after`,
//! the versioned URL, and mentions that never ping.

use crate::helpers::*;
use serde_json::{json, Value};
use std::time::Duration;

fn config(receiver: &Receiver, template: &str) -> ConfigDir {
    ConfigDir::new(&format!(
        r#"
[destinations.wins]
kind = "discord"
url = "{}"
template = "{template}"
username = "Raaft"
avatar_url = "https://example.com/raaft.png"
[[routes]]
name = "all"
to = ["wins"]
"#,
        receiver.url("/api/webhooks/123456/tok-en_SECRET")
    ))
}

on_both_stores! {
    async fn saved_events_post_an_embed_to_the_versioned_api(store) {
        let discord = Receiver::discord().await;
        let app = spawn_app(config(&discord, "discord/saved.json.hbs"), &store).await;
        app.post_event(sample("saved-switch-plan.json")).await;
        let got = discord.wait_for(1, Duration::from_secs(5)).await;
        assert_eq!(got[0].path, "/api/v10/webhooks/123456/tok-en_SECRET");
        assert_eq!(got[0].query, "wait=true");
        let body = got[0].json();
        assert_eq!(body["allowed_mentions"], json!({"parse": []}));
        assert_eq!(body["username"], "Raaft");
        assert_eq!(body["avatar_url"], "https://example.com/raaft.png");
        let embed = &body["embeds"][0];
        assert_eq!(embed["title"], "Saved: Customer Name stayed");
        assert!(embed["description"].as_str().unwrap().contains("Switch Plans"));
        assert!(embed["description"].as_str().unwrap().contains("$8.00"));
        assert_eq!(embed["timestamp"], "2024-10-07T08:10:07.558Z");
        let stats = app.wait_settled(Duration::from_secs(5)).await;
        assert_eq!((stats.delivered, stats.attempts), (1, 1));
    }
}

on_both_stores! {
    async fn a_200_with_the_message_counts_as_delivered(store) {
        let discord = Receiver::start(Answer::new(200, r#"{"id": "1", "content": "x"}"#)).await;
        let app = spawn_app(config(&discord, "discord/canceled.hbs"), &store).await;
        app.post_event(sample("canceled.json")).await;
        let stats = app.wait_settled(Duration::from_secs(5)).await;
        assert_eq!(stats.delivered, 1);
    }
}

on_both_stores! {
    async fn a_429_waits_for_the_json_retry_after(store) {
        let discord = Receiver::discord().await;
        discord.then(
            Answer::new(429, r#"{"message": "You are being rate limited.", "retry_after": 0.8, "global": false}"#)
                .header("content-type", "application/json")
                .header("retry-after", "5"),
        );
        let app = spawn_app(config(&discord, "discord/canceled.hbs"), &store).await;
        app.post_event(sample("canceled.json")).await;
        let got = discord.wait_for(2, Duration::from_secs(10)).await;
        let waited = got[1].at - got[0].at;
        // The body's 0.8 s wins over the header's rounded 5 s.
        assert!(waited >= Duration::from_millis(750) && waited < Duration::from_secs(4), "retried after {waited:?}");
        let stats = app.wait_settled(Duration::from_secs(5)).await;
        assert_eq!((stats.delivered, stats.attempts), (1, 2));
    }
}

on_both_stores! {
    async fn unknown_webhooks_and_bad_requests_are_permanent(store) {
        for (status, body) in [
            (404, r#"{"message": "Unknown Webhook", "code": 10015}"#),
            (400, r#"{"message": "Invalid Form Body", "code": 50035}"#),
            (401, r#"{"message": "Invalid Webhook Token", "code": 50027}"#),
        ] {
            let discord = Receiver::start(Answer::new(status, body)).await;
            let app = spawn_app(config(&discord, "discord/canceled.hbs"), &store).await;
            app.post_event(sample("canceled.json")).await;
            let stats = app.wait_settled(Duration::from_secs(5)).await;
            assert_eq!((stats.dead, stats.attempts), (1, 1), "{status}");
            assert!(app.dead_reasons().await[0].contains(&status.to_string()));
        }
    }
}

on_both_stores! {
    async fn hostile_text_pings_nobody_and_stays_within_limits(store) {
        let discord = Receiver::discord().await;
        let cfg = config(&discord, "discord/canceled.hbs");
        cfg.write_template("embed.json.hbs", r#"{"content": "{{customer.name}}", "embeds": [{"title": "{{customer.name}}", "description": "{{feedback}}", "fields": [{"name": "Reason", "value": "{{motivator}}"}]}]}"#);
        let text = std::fs::read_to_string(cfg.path()).unwrap().replace("discord/canceled.hbs", "embed.json.hbs");
        std::fs::write(cfg.path(), text).unwrap();
        let app = spawn_app(cfg, &store).await;
        let mut event: Value = serde_json::from_str(&sample("canceled.json")).unwrap();
        event["customer"]["name"] = json!("@everyone \"Bob\" <@&123> & co\r\n😀");
        event["feedback"] = json!(format!("@here {}\\\"", "ß".repeat(20_000)));
        event["motivator"] = json!("x".repeat(3000));
        assert_eq!(app.post_event(event.to_string()).await.status(), 200);
        let got = discord.wait_for(1, Duration::from_secs(5)).await;
        let body = got[0].json();
        assert_eq!(body["allowed_mentions"], json!({"parse": []}));
        // No HTML entities for Discord; the tag is backslash-escaped markdown.
        assert_eq!(body["content"], "@everyone \"Bob\" \\<@&123> & co\r\n😀");
        let embed = &body["embeds"][0];
        assert_eq!(embed["description"].as_str().unwrap().chars().count(), 4096);
        assert!(embed["description"].as_str().unwrap().ends_with('…'));
        assert_eq!(embed["fields"][0]["value"].as_str().unwrap().chars().count(), 1024);
        let stats = app.wait_settled(Duration::from_secs(5)).await;
        assert_eq!(stats.delivered, 1);
    }
}

on_both_stores! {
    async fn customer_markdown_arrives_as_text_in_text_and_json_templates(store) {
        let discord = Receiver::discord().await;
        let cfg = config(&discord, "discord/canceled.hbs");
        cfg.write_template("embed.json.hbs", r#"{"embeds": [{"description": "{{feedback}}"}]}"#);
        let text = std::fs::read_to_string(cfg.path()).unwrap()
            + "[destinations.embeds]\nkind = \"discord\"\nurl = \"URL\"\ntemplate = \"embed.json.hbs\"\n\
               [[routes]]\nname = \"embeds\"\nto = [\"embeds\"]\n";
        std::fs::write(cfg.path(), text.replace("URL", &discord.url("/api/webhooks/2/tok"))).unwrap();
        let app = spawn_app(cfg, &store).await;
        let mut event: Value = serde_json::from_str(&sample("canceled.json")).unwrap();
        event["feedback"] = json!("Please [Verify account](https://evil.example/login)\n# Urgent\n**now**");
        assert_eq!(app.post_event(event.to_string()).await.status(), 200);
        let got = discord.wait_for(2, Duration::from_secs(5)).await;
        let escaped = "Please \\[Verify account\\](https://evil.example/login)\n\\# Urgent\n\\*\\*now\\*\\*";
        let mut seen = Vec::new();
        for r in &got {
            let body = r.json();
            let text = body["content"].as_str().or(body["embeds"][0]["description"].as_str()).unwrap().to_owned();
            assert!(text.contains(escaped), "not escaped: {text}");
            assert!(!text.contains("[Verify account]("), "a live masked link: {text}");
            seen.push(r.path.clone());
        }
        seen.sort();
        assert_eq!(seen, ["/api/v10/webhooks/123456/tok-en_SECRET", "/api/v10/webhooks/2/tok"]);
        // The template's own markdown stays markdown.
        let content = got.iter().find_map(|r| r.json()["content"].as_str().map(str::to_owned)).unwrap();
        assert!(content.starts_with(":rotating_light: **"), "{content}");
    }
}
