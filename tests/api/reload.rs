//! Hot reload from outside: the binary with its log and a busy file in
//! the config's folder, edits and SIGHUP.

use crate::helpers::*;
use std::time::Duration;

/// How many reloads the relay has logged in `logs`, and how many of them
/// SIGHUP set off.
fn reloads(logs: &str) -> (usize, usize) {
    let reloaded: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "configuration reloaded")
        .collect();
    (reloaded.len(), reloaded.iter().filter(|v| v["trigger"] == "SIGHUP").count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_running_sets_files_reload_it_and_a_busy_folder_delays_neither_edits_nor_sighup() {
    let cfg = ConfigDir::new(
        "[destinations.out]\nkind = \"console\"\ntemplate = \"note.hbs\"\n[[routes]]\nname = \"all\"\nto = [\"out\"]\n",
    );
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

    std::fs::write(dir.join("templates/note.hbs"), "version two {{outcome}}").unwrap();
    let edited = tokio::time::Instant::now();
    while reloads(&logs()).0 < 1 {
        assert!(
            edited.elapsed() < Duration::from_secs(2),
            "the template edit was not reloaded within 2 s:\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    post().await;
    wait_until(Duration::from_secs(5), "the edited template in use", || {
        stdout.lock().unwrap().contains("version two canceled")
    })
    .await;

    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    let signalled = tokio::time::Instant::now();
    while reloads(&logs()).1 < 1 {
        assert!(signalled.elapsed() < Duration::from_secs(2), "SIGHUP was not served within 2 s:\n{}", logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The busy file and the log go on; they are not the running set.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    noise.abort();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(reloads(&logs()), (2, 1), "one reload per edit and one per SIGHUP");
}
