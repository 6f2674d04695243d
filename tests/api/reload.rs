//! Hot reload from outside: the binary with its log and a busy file in
//! the config's folder, edits and SIGHUP.

use crate::helpers::*;
use std::time::Duration;

/// How many reloads the relay has logged in `logs`, and how many of them
/// SIGHUP set off.
fn reloads(logs: &str) -> (usize, usize) {
    let reloaded = logged(logs, "configuration reloaded");
    (reloaded.len(), reloaded.iter().filter(|v| v["trigger"] == "SIGHUP").count())
}

/// Every JSON log line with `message`.
fn logged(logs: &str, message: &str) -> Vec<serde_json::Value> {
    logs.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == message)
        .collect()
}

/// The relay's own time of a log line.
fn at(line: &serde_json::Value) -> chrono::DateTime<chrono::Utc> {
    line["timestamp"].as_str().and_then(|t| t.parse().ok()).expect("a timestamp")
}

/// How long after `since` the relay logged `line`, by its own clock.
fn after(line: &serde_json::Value, since: chrono::DateTime<chrono::Utc>) -> Duration {
    (at(line) - since).to_std().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_running_sets_files_reload_it_and_a_busy_folder_delays_neither_edits_nor_sighup() {
    let cfg = ConfigDir::new(
        "[destinations.out]\nkind = \"console\"\ntemplate = \"note.hbs\"\n[[routes]]\nname = \"all\"\nto = [\"out\"]\n\
         [admin]\ntokens = [\"ops-token\"]\n",
    );
    // Metrics, to read what the watch made of the folder's events.
    let text = std::fs::read_to_string(cfg.path()).unwrap().replacen("[server]\n", "[server]\nmetrics = true\n", 1);
    std::fs::write(cfg.path(), text).unwrap();
    cfg.write_template("note.hbs", "version one {{outcome}}");
    // The store, the relay's own log (at debug level, so every request,
    // query and reload writes to it) and a file rewritten every 20 ms all
    // sit in the config's folder.
    cfg.set_store(&TestStore::Sqlite.fresh_url(cfg.dir.path()).await);
    let dir = cfg.dir.path().to_path_buf();
    let log_path = dir.join("relay.log");
    let mut child = relay_command()
        .args(["--config", cfg.path().to_str().unwrap(), "--log-format", "json", "serve"])
        .env("RUST_LOG", "debug")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let stdout = collect_output(child.stdout.take().unwrap());
    let logs = || String::from_utf8_lossy(&std::fs::read(&log_path).unwrap()).into_owned();
    let port_of = |logs: &str| {
        logs.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["message"] == "raaft-relay listening")
            .and_then(|v| v["port"].as_u64())
    };
    wait_until(Duration::from_secs(20), "the relay to listen", || port_of(&logs()).is_some()).await;
    let port = port_of(&logs()).unwrap();
    let busy = dir.join("busy.txt");
    let noise = tokio::spawn(async move {
        for i in 0u64.. {
            std::fs::write(&busy, i.to_string()).unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let post = || async {
        let answer = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/webhooks/raaft"))
            .header("x-raaft-token", TOKEN)
            .body(sample("canceled.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
    };

    // Timings are read from the relay's own log (its clock is the
    // machine's): a test machine busy with other tests may be slow to look,
    // but the relay must have acted within 2 s.
    let edited = chrono::Utc::now();
    std::fs::write(dir.join("templates/note.hbs"), "version two {{outcome}}").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while reloads(&logs()).0 < 1 {
        let raaft: Vec<String> = logs().lines().filter(|l| l.contains("raaft_relay")).map(str::to_owned).collect();
        assert!(std::time::Instant::now() < deadline, "the template edit was not reloaded:\n{}", raaft.join("\n"));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reload = logged(&logs(), "configuration reloaded").remove(0);
    assert!(after(&reload, edited) < Duration::from_secs(2), "reloaded {:?} after the edit", after(&reload, edited));
    post().await;
    wait_until(Duration::from_secs(5), "the edited template in use", || {
        stdout.lock().unwrap().contains("version two canceled")
    })
    .await;

    let pid = child.id().to_string();
    let signalled = chrono::Utc::now();
    assert!(std::process::Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    wait_until(Duration::from_secs(10), "the SIGHUP reload", || reloads(&logs()).1 >= 1).await;
    let reload = logged(&logs(), "configuration reloaded").into_iter().find(|v| v["trigger"] == "SIGHUP").unwrap();
    assert!(after(&reload, signalled) < Duration::from_secs(2), "SIGHUP served {:?} after", after(&reload, signalled));

    // The busy file and the log go on; they are not the running set: the
    // watch sees their writes and ignores them.
    let ignored = || async {
        let text = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .bearer_auth("ops-token")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let line = text.lines().find(|l| l.starts_with(r#"raaft_relay_config_file_events_total{result="ignored"}"#));
        line.and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok()).expect("the ignored file events")
    };
    let before = ignored().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while ignored().await < before + 50 {
        assert!(std::time::Instant::now() < deadline, "the busy folder's writes were not seen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    noise.abort();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(reloads(&logs()), (2, 1), "one reload per edit and one per SIGHUP");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_env_file_is_read_by_every_command_and_again_at_every_reload() {
    let (first, second) = (Receiver::start(Answer::new(200, "")).await, Receiver::start(Answer::new(200, "")).await);
    let cfg = ConfigDir::new(
        "[destinations.hook]\nkind = \"webhook\"\nurl = \"${HOOK_URL}\"\ntemplate = \"webhook/event.json.hbs\"\n\
         [[routes]]\nname = \"all\"\nto = [\"hook\"]\n",
    );
    let env_file = cfg.dir.path().join("env");
    std::fs::write(
        &env_file,
        format!("# what the unit's EnvironmentFile= holds\nHOOK_URL=\"{}\"\n", first.url("/first")),
    )
    .unwrap();
    let config = cfg.path();
    let config = config.to_str().unwrap();

    // check and the store commands see the file's variables, given the file.
    let without = relay_command().args(["--config", config, "check"]).output().unwrap();
    assert!(said(&without).contains("environment variable `HOOK_URL` is not set"), "{}", said(&without));
    let with =
        relay_command().args(["--config", config, "--env-file", env_file.to_str().unwrap(), "check"]).output().unwrap();
    assert!(with.status.success(), "{}", said(&with));
    let migrated = relay_command().args(["--config", config, "migrate"]).output().unwrap();
    assert!(migrated.status.success(), "{}", said(&migrated));
    let listed = relay_command()
        .args(["--config", config, "deliveries", "list"])
        .env("RAAFT_RELAY_ENV_FILE", &env_file)
        .output()
        .unwrap();
    assert_eq!(said(&listed), "no deliveries\n");
    // A line that is not KEY=VALUE is named.
    let broken = cfg.dir.path().join("broken-env");
    std::fs::write(&broken, "HOOK_URL=x\nnot a variable\n").unwrap();
    let out =
        relay_command().args(["--config", config, "--env-file", broken.to_str().unwrap(), "check"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(said(&out).contains("cannot read env file: not KEY=VALUE"), "{}", said(&out));

    // serve reads it again when it changes: the next event goes where it says now.
    let mut command = relay_command();
    command.env("RAAFT_RELAY_ENV_FILE", &env_file);
    let relay = RelayProcess::start_with(command, &cfg.path()).await;
    relay.post(sample("canceled.json")).await;
    first.wait_for(1, Duration::from_secs(10)).await;
    std::fs::write(&env_file, format!("HOOK_URL={}\n", second.url("/second"))).unwrap();
    wait_until(Duration::from_secs(10), "the reload after the env file changed", || reloads(&relay.logs()).0 >= 1)
        .await;
    relay.post(sample("canceled.json")).await;
    second.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(first.count(), 1);
}
