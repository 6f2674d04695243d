//! The binary: `check`, `render`, `send-test` and `serve` as users run them.

use crate::helpers::*;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn relay() -> Command {
    relay_command()
}

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn check_passes_on_the_shipped_config_with_only_the_token_set() {
    let out = relay().env("RAAFT_TOKEN", "t").arg("check").output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("config/relay.toml: ok"), "{stdout}");
    // Where the store is, and that the console is off, said before the
    // first start.
    let store = format!("store: sqlite://{}", repo_path("data/relay.db").display());
    assert!(stdout.lines().any(|l| l == store), "{store} in:\n{stdout}");
    assert!(stdout.lines().any(|l| l == "console: off (no [admin] tokens)"), "{stdout}");
}

#[tokio::test]
async fn serve_and_check_say_where_the_store_is_and_where_the_console_answers() {
    let cfg = ConfigDir::new(
        "[destinations.out]\nkind = \"console\"\ntemplate = \"console/event.hbs\"\n\
         [admin]\ntokens = [\"an-admin-token-of-some-length\"]\n",
    );
    let pg_like = "postgres://relay:s3cret@db.internal:5433/relay";
    let checked = relay().args(["--config", cfg.path().to_str().unwrap(), "check"]).output().unwrap();
    let (stdout, _) = text(&checked);
    let store = format!("store: sqlite://{}", cfg.dir.path().join("data/relay.db").display());
    assert!(stdout.lines().any(|l| l == store), "{stdout}");
    assert!(stdout.lines().any(|l| l == "console: http://127.0.0.1:0/console/"), "{stdout}");

    let relay = RelayProcess::start(&cfg.path()).await;
    let started = relay.logs();
    let line = started.lines().find(|l| l.contains("raaft-relay listening")).unwrap();
    let line: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(line["console"], format!("http://127.0.0.1:{}/console/", relay.port));
    assert_eq!(line["store"], format!("sqlite://{}", cfg.dir.path().join("data/relay.db").display()));
    drop(relay);

    // Behind a proxy, the address people use; a PostgreSQL store without
    // its password.
    let text_now = std::fs::read_to_string(cfg.path()).unwrap();
    let text_now = text_now.replace("[server]\n", "[server]\npublic_url = \"https://relay.example.com/raaft/\"\n");
    std::fs::write(cfg.path(), text_now.replace("sqlite://data/relay.db", pg_like)).unwrap();
    let checked = relay_command().args(["--config", cfg.path().to_str().unwrap(), "check"]).output().unwrap();
    let (stdout, stderr) = text(&checked);
    assert!(checked.status.success(), "{stdout}{stderr}");
    assert!(stdout.lines().any(|l| l == "console: https://relay.example.com/raaft/console/"), "{stdout}");
    assert!(stdout.lines().any(|l| l == "store: postgres://relay:***@db.internal:5433/relay"), "{stdout}");
}

#[test]
fn check_warns_about_a_token_short_enough_to_guess_without_showing_it() {
    let out = relay().env("RAAFT_TOKEN", "change-me").arg("check").output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "a warning is not a failure: {stdout}{stderr}");
    assert!(stdout.contains("warning: raaft.tokens[0] is 9 characters long: use at least 16"), "{stdout}");
    assert!(!stdout.contains("change-me"), "the token itself is never printed: {stdout}");
    let out = relay().env("RAAFT_TOKEN", "4f1c9a7e2b6d8f03a5c1e9b7").arg("check").output().unwrap();
    assert!(!text(&out).0.contains("warning: raaft.tokens"), "{}", text(&out).0);
}

#[test]
fn check_names_the_missing_variable_and_its_key() {
    let out = relay().arg("check").output().unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("RAAFT_TOKEN") && stderr.contains("`raaft.tokens[0]`"), "{stderr}");
    assert!(stderr.contains("config/relay.toml:19:"), "{stderr}");
}

/// A value of the right shape for the variable `name` of an example.
fn example_value(name: &str) -> &'static str {
    match name {
        "SMTP_URL" => "smtp://relay:secret@smtp.example.com:587?tls=required",
        "MAIL_FROM" => "Raaft Relay <relay@example.com>",
        "MAIL_TO" => "founders@example.com",
        name if name.ends_with("_URL") => "https://hooks.example.com/services/x",
        _ => "a-token-of-some-length",
    }
}

#[test]
fn every_example_config_needs_what_it_says_and_sends_only_where_the_user_said() {
    let mut checked = 0;
    for entry in std::fs::read_dir(repo_path("config/examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        // "# Needs A, B and C."
        let needs = source
            .lines()
            .find_map(|l| l.strip_prefix("# Needs "))
            .unwrap_or_else(|| panic!("{path:?} says what it needs"));
        let needs: Vec<&str> =
            needs.trim_end_matches('.').split([',', ' ']).filter(|w| !w.is_empty() && *w != "and").collect();
        let mut command = relay();
        command.env_clear().env("PATH", std::env::var("PATH").unwrap());
        for name in &needs {
            command.env(name, example_value(name));
        }
        let out = command.args(["--config", path.to_str().unwrap(), "check"]).output().unwrap();
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{} with only {needs:?} set: {stdout}{stderr}", path.display());
        // Every address a message goes to is one the user gave.
        let config: toml::Table = source.parse().unwrap();
        for (name, destination) in config.get("destinations").and_then(|d| d.as_table()).unwrap() {
            if let Some(url) = destination.get("url").and_then(|u| u.as_str()) {
                let variable = url.strip_prefix("${").and_then(|u| u.strip_suffix('}'));
                assert!(
                    variable.is_some_and(|v| needs.contains(&v)),
                    "{}: destination {name} sends to {url:?}, not to an address the user sets",
                    path.display()
                );
            }
        }
        checked += 1;
    }
    assert!(checked >= 3, "only {checked} examples");
}

#[test]
fn check_lists_every_problem_with_file_and_line() {
    let cfg = ConfigDir::new(
        r#"
[destinations.churn]
kind = "slack"
url = "https://hooks.slack.com/services/x"
template = "missing.hbs"
colour = "red"
[destinations.mail]
kind = "email"
url = "smtp://127.0.0.1:25"
from = "not an address"
to = ["a@example.com"]
template = "bad-syntax.hbs"
[destinations.json]
kind = "discord"
url = "https://discord.com/api/webhooks/1/x"
template = "bad-output.json.hbs"
[[routes]]
name = "big-accounts"
when = 'outcome == "canceled" && subscription.plan.amount >='
to = ["churn"]
[[routes]]
name = "typo"
to = ["chrun"]
"#,
    );
    cfg.write_template("bad-syntax.hbs", "line one\n{{#if outcome}}\nnever closed\n");
    cfg.write_template("bad-output.json.hbs", "{\"content\": {{customer.name}}}");
    let out = relay().args(["--config", cfg.path().to_str().unwrap(), "check"]).output().unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let expectations = [
        "`destinations.churn.colour`: unknown key",
        "route \"big-accounts\": invalid CEL condition",
        "route \"typo\": unknown destination \"chrun\"",
    ];
    for e in expectations {
        assert!(stderr.contains(e), "missing {e:?} in:\n{stderr}");
    }
    assert!(stderr.lines().any(|l| l.contains("relay.toml:11:") && l.contains("colour")), "{stderr}");
    // The unknown key stops semantic checks of that file's values? No: the
    // remaining problems are reported too, once the keys are fixed.
    let fixed = std::fs::read_to_string(cfg.path()).unwrap().replace("colour = \"red\"\n", "");
    std::fs::write(cfg.path(), fixed).unwrap();
    let out = relay().args(["--config", cfg.path().to_str().unwrap(), "check"]).output().unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    for e in [
        "route \"big-accounts\": invalid CEL condition",
        "route \"typo\": unknown destination \"chrun\"",
        "`destinations.churn.template`: template \"missing.hbs\" not found",
        "invalid address \"not an address\"",
        "bad-syntax.hbs",
    ] {
        assert!(stderr.contains(e), "missing {e:?} in:\n{stderr}");
    }
    assert!(stderr.lines().filter(|l| l.contains("problem(s) found")).count() == 1);
}

#[test]
fn check_renders_templates_against_the_sample_events() {
    let cfg = ConfigDir::new(
        "[destinations.json]\nkind = \"discord\"\nurl = \"https://discord.com/api/webhooks/1/x\"\ntemplate = \"bad-output.json.hbs\"\n[[routes]]\nname = \"all\"\nto = [\"json\"]\n",
    );
    cfg.write_template("bad-output.json.hbs", "{\"content\": {{customer.name}}}");
    let out = relay().args(["--config", cfg.path().to_str().unwrap(), "check"]).output().unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("bad-output.json.hbs")
            && stderr.contains("every sample event (8)")
            && stderr.contains("not valid JSON"),
        "{stderr}"
    );
}

#[tokio::test]
async fn render_explains_routing_and_prints_payloads_without_sending() {
    let slack = Receiver::slack().await;
    let cfg = ConfigDir::new(&format!(
        r#"
[destinations.churn]
kind = "slack"
url = "{}"
template = "slack/canceled.json.hbs"
[destinations.founders]
kind = "console"
template = "console/event.hbs"
[[routes]]
name = "cancellations"
when = {{ outcome = "canceled" }}
to = ["churn"]
[[routes]]
name = "big-accounts"
when = 'outcome == "canceled" && subscription.plan.amount >= 100'
to = ["founders"]
"#,
        slack.url("/services/x")
    ));
    let event = repo_path("config/events/canceled.json");
    let out = relay()
        .args(["--config", cfg.path().to_str().unwrap(), "render", "--event", event.to_str().unwrap()])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("route \"cancellations\": matched → churn"), "{stdout}");
    assert!(stdout.contains("route \"big-accounts\": not matched: `subscription.plan.amount >= 100` did not hold (saw subscription.plan.amount = 49)"), "{stdout}");
    assert!(stdout.contains("== destination \"churn\" (slack, via cancellations)"), "{stdout}");
    assert!(stdout.contains("\"text\": \"Ana Lima canceled Pro ($49.00/month)\""), "{stdout}");
    assert!(!stdout.contains("destination \"founders\""));

    let out = relay()
        .args([
            "--config",
            cfg.path().to_str().unwrap(),
            "render",
            "--event",
            event.to_str().unwrap(),
            "--destination",
            "founders",
        ])
        .output()
        .unwrap();
    let (stdout, _) = text(&out);
    assert!(stdout.contains("== destination \"founders\" (console, no route reaches it)"), "{stdout}");
    assert!(stdout.contains("Raaft canceled: Ana Lima"), "{stdout}");
    // render has exited: anything it sent has arrived.
    assert_eq!(slack.count(), 0, "render sends nothing");
}

#[tokio::test]
async fn send_test_sends_one_real_message_and_reports_failures() {
    let slack = Receiver::slack().await;
    slack.then(Answer::new(404, "channel_not_found"));
    let cfg = ConfigDir::new(&format!(
        "[destinations.churn]\nkind = \"slack\"\nurl = \"{}\"\ntemplate = \"slack/canceled.json.hbs\"\n[[routes]]\nname = \"all\"\nto = [\"churn\"]\n",
        slack.url("/services/T/B/secret")
    ));
    let config = cfg.path();
    let run = move |extra: &[&str]| {
        let mut args = vec!["--config", config.to_str().unwrap(), "send-test", "--destination", "churn"];
        args.extend_from_slice(extra);
        relay().args(args).output().unwrap()
    };
    let out = tokio::task::spawn_blocking({
        let run = run.clone();
        move || run(&[])
    })
    .await
    .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("permanent") && stderr.contains("channel_not_found"), "{stderr}");
    let saved = repo_path("config/events/saved-switch-plan.json");
    let out = tokio::task::spawn_blocking(move || run(&["--event", saved.to_str().unwrap()])).await.unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("delivered to \"churn\" (200)"), "{stdout}");
    let got = slack.received();
    assert_eq!(got.len(), 2);
    assert!(got[1].json()["text"].as_str().unwrap().contains("Customer Name"));
}

#[tokio::test]
async fn serve_runs_the_shipped_config_prints_events_and_stops_on_sigterm() {
    // A user's checkout: the shipped config and templates, run from its root
    // with the default (relative) config path.
    let checkout = tempfile::tempdir().unwrap();
    for dir in ["config", "templates"] {
        copy_dir(&repo_path(dir), &checkout.path().join(dir));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = relay()
        .current_dir(checkout.path())
        .arg("serve")
        .env("RAAFT_TOKEN", "sh1pped-t0ken")
        .env("RAAFT_RELAY_LISTEN", format!("127.0.0.1:{port}"))
        .env_remove("RAAFT_RELAY_STORE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = collect_output(child.stdout.take().unwrap());
    let stderr = collect_output(child.stderr.take().unwrap());
    let url = format!("http://127.0.0.1:{port}/webhooks/raaft");
    let client = reqwest::Client::new();
    let mut accepted = false;
    for _ in 0..200 {
        if let Ok(r) =
            client.post(&url).header("x-raaft-token", "sh1pped-t0ken").body(sample("canceled.json")).send().await
        {
            assert_eq!(r.status(), 200);
            accepted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(accepted, "the relay never answered: {}", stderr.lock().unwrap());
    let r = client.post(&url).header("x-raaft-token", "guessed-s3cret").body("{}").send().await.unwrap();
    assert_eq!(r.status(), 401);
    wait_until(Duration::from_secs(5), "the console message", || {
        stdout.lock().unwrap().contains("Raaft canceled: Ana Lima")
    })
    .await;
    wait_until(Duration::from_secs(5), "the rejection warning", || stderr.lock().unwrap().contains("rejected webhook"))
        .await;
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    assert!(exit.success(), "exit {exit:?}: {}", stderr.lock().unwrap());
    let logs = stderr.lock().unwrap().clone();
    assert!(!logs.contains("guessed-s3cret") && !logs.contains("sh1pped-t0ken"), "tokens leaked into logs:\n{logs}");
    assert!(stdout.lock().unwrap().contains("Missing features or integrations"));
    assert!(checkout.path().join("data/relay.db").is_file(), "the store is created beside the config folder");
}

#[test]
fn check_names_template_loops_computed_partials_deep_nesting_and_renders_past_their_budget() {
    let cfg = ConfigDir::new(
        "[destinations.loop]\nkind = \"console\"\ntemplate = \"loop.hbs\"\n\
         [destinations.computed]\nkind = \"console\"\ntemplate = \"computed.hbs\"\n\
         [destinations.deep]\nkind = \"console\"\ntemplate = \"deep.hbs\"\n\
         [[routes]]\nname = \"all\"\nto = [\"loop\", \"computed\", \"deep\"]\n",
    );
    cfg.write_template("partials/ping.hbs", "ping\n{{> pong}}");
    cfg.write_template("partials/pong.hbs", "{{> ping}}");
    cfg.write_template("loop.hbs", "{{#if (eq feedback \"never\")}}{{> ping}}{{/if}}");
    cfg.write_template("computed.hbs", "first\n{{> (lookup this \"outcome\")}}");
    cfg.write_template("deep.hbs", &format!("ok\n{}", "{{#if outcome}}".repeat(1000)));
    let out = relay().args(["--config", cfg.path().to_str().unwrap(), "check"]).output().unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let line = |needle: &str| {
        stderr.lines().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("no {needle:?} in:\n{stderr}")).to_owned()
    };
    let looped = line("include each other in a loop");
    assert!(looped.contains("partials/pong.hbs:1:") && looped.contains("ping → pong → ping"), "{looped}");
    let computed = line("computed while rendering");
    assert!(computed.contains("computed.hbs:2:"), "{computed}");
    let deep = line("nested deeper than");
    assert!(deep.contains("deep.hbs:2:"), "{deep}");

    // Once every template compiles, each renders every sample within the
    // render budget.
    let cfg = ConfigDir::new(
        "[destinations.slow]\nkind = \"console\"\ntemplate = \"slow.hbs\"\n[[routes]]\nname = \"all\"\nto = [\"slow\"]\n",
    );
    cfg.write_template("slow.hbs", &("{{#each @root.path}}".repeat(13) + "." + &"{{/each}}".repeat(13)));
    let out = relay().args(["--config", cfg.path().to_str().unwrap(), "check"]).output().unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let slow = stderr.lines().find(|l| l.contains("render stopped")).unwrap_or_else(|| panic!("{stderr}"));
    assert!(slow.contains("slow.hbs") && slow.contains("ran longer than 1 second"), "{slow}");
}

#[tokio::test]
async fn send_test_sends_a_sample_the_destinations_routes_match_and_says_which() {
    let hook = Receiver::start(Answer::new(200, "")).await;
    let cfg = ConfigDir::new(&format!(
        "[destinations.wins]\nkind = \"webhook\"\nurl = \"{0}\"\ntemplate = \"webhook/event.json.hbs\"\n\
         [destinations.churn]\nkind = \"webhook\"\nurl = \"{0}\"\ntemplate = \"webhook/event.json.hbs\"\n\
         [destinations.spare]\nkind = \"webhook\"\nurl = \"{0}\"\ntemplate = \"webhook/event.json.hbs\"\n\
         [[routes]]\nname = \"saves\"\nwhen = {{ outcome = \"saved\" }}\nto = [\"wins\"]\n\
         [[routes]]\nname = \"aborts\"\nwhen = {{ outcome = \"aborted\" }}\nto = [\"churn\"]\n",
        hook.url("/hook")
    ));
    let config = cfg.path();
    let sent = |destination: &'static str| {
        let config = config.clone();
        tokio::task::spawn_blocking(move || {
            relay()
                .args(["--config", config.to_str().unwrap(), "send-test", "--destination", destination])
                .output()
                .unwrap()
        })
    };
    for (destination, first_line, outcome) in [
        ("wins", "sending sample event saved-switch-plan.json (the first a route to \"wins\" matches)", "saved"),
        ("churn", "sending sample event aborted.json (the first a route to \"churn\" matches)", "aborted"),
        ("spare", "sending sample event canceled.json (no route to \"spare\" matches any sample)", "canceled"),
    ] {
        let out = sent(destination).await.unwrap();
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stdout}{stderr}");
        assert_eq!(stdout.lines().next(), Some(first_line));
        let last = hook.received().pop().unwrap();
        assert_eq!(last.json()["type"], format!("raaft.{outcome}"), "{destination}");
    }
}
