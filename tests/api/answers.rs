//! Every answer says what happened: a duplicate is called one, a sample
//! can be posted again as a new event, a webhook receiver can tell a retry
//! from a new message, a replayed delivery's attempts are counted across
//! the replay, and a store that cannot be reached says why.

use crate::helpers::*;
use crate::store::flow_config;
use serde_json::json;
use std::time::Duration;

fn said_by(out: &std::process::Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Every shipped sample, as `config/events/NAME` (how the quick start
/// names them).
fn shipped_samples() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo_path("config/events"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    names.into_iter().map(|n| format!("config/events/{n}")).collect()
}

#[tokio::test]
async fn every_sample_is_a_new_event_a_repeat_is_called_a_duplicate_and_post_fresh_sends_it_again() {
    let cfg = ConfigDir::new(
        "[destinations.out]\nkind = \"console\"\ntemplate = \"console/event.hbs\"\n\
         [[routes]]\nname = \"all\"\nto = [\"out\"]\n",
    );
    let relay = RelayProcess::start(&cfg.path()).await;
    let url = format!("http://127.0.0.1:{}/webhooks/raaft", relay.port);
    let post = |args: &[&str]| {
        relay_command()
            .args(["--config", cfg.path().to_str().unwrap(), "post", "--url", &url])
            .args(args)
            .output()
            .unwrap()
    };
    let samples = shipped_samples();
    assert_eq!(samples.len(), 8, "{samples:?}");
    let files: Vec<&str> = samples.iter().map(String::as_str).collect();

    let out = post(&files);
    let (stdout, stderr) = said_by(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let expected: String = samples.iter().map(|f| format!("{f}: accepted: 1 delivery queued\n")).collect();
    assert_eq!(stdout, expected);

    // The same file again is Raaft's retry of it: said so, with the way out.
    let out = post(&["config/events/canceled.json"]);
    assert_eq!(
        said_by(&out).0,
        "config/events/canceled.json: duplicate: the relay received this event before and sends nothing again \
         (post it with --fresh to send it as a new event)\n"
    );
    let answer = relay.post(sample_exact("canceled.json")).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.json::<serde_json::Value>().await.unwrap(), json!({"status": "duplicate", "deliveries": 0}));
    wait_until(Duration::from_secs(10), "the duplicate logged", || relay.logs().contains("duplicate event")).await;

    // --fresh makes each a new event, even two posted in one go.
    let out = post(&["--fresh", "config/events/canceled.json", "config/events/canceled.json"]);
    assert_eq!(said_by(&out).0, "config/events/canceled.json: accepted: 1 delivery queued\n".repeat(2));

    // A refusal says why, and the command fails.
    let wrong = cfg.dir.path().join("wrong.toml");
    std::fs::write(&wrong, std::fs::read_to_string(cfg.path()).unwrap().replace(TOKEN, "not-the-token-at-all"))
        .unwrap();
    let out = relay_command()
        .args(["--config", wrong.to_str().unwrap(), "post", "--url", &url, "config/events/canceled.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(said_by(&out).0, "config/events/canceled.json: refused (401): missing or invalid x-raaft-token\n");
}

on_both_stores! {
    async fn a_webhook_message_carries_one_idempotency_key_through_retries_and_replays(store) {
        let hook = Receiver::start(Answer::new(200, "")).await;
        hook.then(Answer::new(503, "busy"));
        let app = spawn_app(flow_config(&hook, ""), &store).await;
        app.post_event(sample("canceled.json")).await;
        let received = hook.wait_for(2, Duration::from_secs(10)).await;
        app.wait_settled(Duration::from_secs(10)).await;
        let list = deliveries_cli(&app.config_path(), &["list"]);
        let id = list.lines().next().and_then(|l| l.split_whitespace().next()).unwrap().to_owned();
        let show = deliveries_cli(&app.config_path(), &["show", &id]);
        let event_id = show.lines().find_map(|l| l.strip_prefix("event        ")).unwrap().split(' ').next().unwrap();
        let keys = |received: &[Received]| -> Vec<(String, String)> {
            received
                .iter()
                .map(|r| {
                    let header = |name: &str| r.headers.get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
                    (header("idempotency-key"), header("x-raaft-relay-event-id"))
                })
                .collect()
        };
        assert_eq!(keys(&received), vec![(id.clone(), event_id.to_owned()); 2], "the retry carries the first attempt's key");

        // A replay is the same message again: same key; its attempts are
        // numbered after the first two and counted with them.
        deliveries_cli(&app.config_path(), &["replay", &id]);
        let received = hook.wait_for(3, Duration::from_secs(10)).await;
        assert_eq!(keys(&received)[2], (id.clone(), event_id.to_owned()));
        app.wait_settled(Duration::from_secs(10)).await;
        let show = deliveries_cli(&app.config_path(), &["show", &id]);
        assert!(show.contains("status       delivered after 3 attempt(s)\n"), "{show}");
        let numbers: Vec<&str> =
            show.lines().filter_map(|l| l.trim_start().strip_prefix('#')).map(|l| l.split(' ').next().unwrap()).collect();
        assert_eq!(numbers, ["1", "2", "3"], "{show}");

        // Another event is another message.
        app.post_event(sample("canceled.json")).await;
        let received = hook.wait_for(4, Duration::from_secs(10)).await;
        let (other_key, other_event) = keys(&received)[3].clone();
        assert!(other_key != id && !other_key.is_empty() && other_event != event_id, "{other_key} {other_event}");
    }
}

#[test]
fn a_store_that_cannot_be_reached_is_named_whole_with_the_reason() {
    let cfg = ConfigDir::new("[destinations.out]\nkind = \"console\"\ntemplate = \"console/event.hbs\"\n");
    // A port nothing listens on, given the two ways libpq takes it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    for url in [
        format!("postgres://relay:s3cret@127.0.0.1:{closed}/ncux"),
        format!("postgres:///ncux?host=127.0.0.1&port={closed}"),
    ] {
        cfg_with_store(&cfg, &url);
        let out =
            relay_command().args(["--config", cfg.path().to_str().unwrap(), "deliveries", "list"]).output().unwrap();
        let (_, stderr) = said_by(&out);
        let shown = url.replace("s3cret", "***");
        assert_eq!(
            stderr,
            format!("error: cannot open the store at \"{shown}\": store unavailable: cannot connect: connection refused (os error 111)\n")
        );
    }
}

fn cfg_with_store(cfg: &ConfigDir, url: &str) {
    let text = std::fs::read_to_string(cfg.path()).unwrap();
    let start = text.find("[store]\n").unwrap();
    std::fs::write(cfg.path(), format!("{}[store]\nurl = \"{url}\"\n", &text[..start])).unwrap();
}

#[tokio::test]
#[cfg_attr(not(postgres_tests), ignore = "set RAAFT_RELAY_TEST_POSTGRES to a PostgreSQL URL to run it")]
async fn store_commands_on_postgresql_print_no_server_notices() {
    let cfg = ConfigDir::new("[destinations.out]\nkind = \"console\"\ntemplate = \"console/event.hbs\"\n");
    let url = TestStore::postgres().fresh_url(cfg.dir.path()).await;
    cfg_with_store(&cfg, &url);
    for args in [&["migrate"][..], &["migrate"], &["deliveries", "list"]] {
        let out = relay_command().args(["--config", cfg.path().to_str().unwrap()]).args(args).output().unwrap();
        let (stdout, stderr) = said_by(&out);
        assert!(out.status.success(), "{args:?}: {stdout}{stderr}");
        assert!(!stderr.contains("sqlx::postgres::notice") && !stderr.contains("already exists"), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn readable_logs_into_a_pipe_have_no_colour_codes() {
    let cfg = ConfigDir::new("[destinations.out]\nkind = \"console\"\ntemplate = \"console/event.hbs\"\n");
    // NO_COLOR unset: the pipe alone must turn colour off.
    let relay = RelayProcess::start_pretty(&cfg.path()).await;
    let logs = relay.logs();
    assert!(logs.contains("raaft-relay listening") && !logs.contains('\u{1b}'), "{logs:?}");
}

#[test]
fn durations_are_printed_as_people_write_them() {
    let cfg = ConfigDir::new("[destinations.out]\nkind = \"console\"\ntemplate = \"console/event.hbs\"\n");
    let config = cfg.path();
    let config = config.to_str().unwrap();
    let migrated = relay_command().args(["--config", config, "migrate"]).output().unwrap();
    assert!(migrated.status.success(), "{:?}", said_by(&migrated));
    let out = relay_command().args(["--config", config, "history", "cus_nobody"]).output().unwrap();
    assert_eq!(said_by(&out).0, "no flows for customer \"cus_nobody\" in the last 400 days\n");
}
