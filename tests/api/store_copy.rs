//! `raaft-relay store copy --to postgres://…`: an SQLite store, of this
//! release or the previous one, moved into PostgreSQL with nothing lost
//! and nothing delivered twice, however often the copy runs.

use crate::helpers::*;
use crate::upgrade::release_store;
use raaft_relay::config::StoreLocation;
use serde_json::Value;
use std::process::Output;
use std::time::Duration;

fn copy(cfg: &ConfigDir, to: &str) -> Output {
    relay_command().args(["--config", cfg.path().to_str().unwrap(), "store", "copy", "--to", to]).output().unwrap()
}

/// Points `cfg` at another store.
fn repoint(cfg: &ConfigDir, from: &str, to: &str) {
    let text = std::fs::read_to_string(cfg.path()).unwrap();
    assert!(text.contains(from));
    std::fs::write(cfg.path(), text.replace(from, to)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(postgres_tests), ignore = "set RAAFT_RELAY_TEST_POSTGRES to a PostgreSQL URL to run it")]
async fn a_store_of_the_previous_release_moves_to_postgres_with_nothing_lost_or_sent_twice() {
    let hook = Receiver::start(Answer::new(200, "")).await;
    let cfg = ConfigDir::new(&format!(
        "[destinations.ok]\nkind = \"webhook\"\nurl = \"{0}\"\ntemplate = \"flow.json.hbs\"\n\
         [destinations.gone]\nkind = \"webhook\"\nurl = \"{0}\"\ntemplate = \"flow.json.hbs\"\n\
         [destinations.down]\nkind = \"webhook\"\nurl = \"{0}\"\ntemplate = \"flow.json.hbs\"\n\
         [[routes]]\nname = \"all\"\nto = [\"ok\", \"gone\", \"down\"]\n\
         [retry]\nmax_attempts = 1000\ninitial_backoff = \"10ms\"\nmax_backoff = \"50ms\"\nattempt_timeout = \"2s\"\n",
        hook.url("/hook")
    ));
    cfg.write_template("flow.json.hbs", r#"{"flow": "{{flowId}}", "nth": {{{json history.nth}}}}"#);
    let text = std::fs::read_to_string(cfg.path())
        .unwrap()
        .replace("second-token\"]", "second-token\"]\ndedup_window = \"36500d\"");
    std::fs::write(cfg.path(), text).unwrap();
    let sqlite = release_store("console-release", &TestStore::Sqlite, cfg.dir.path()).await;
    repoint(&cfg, "sqlite://data/relay.db", &store_url(&sqlite));
    let before = count(&sqlite).await;
    assert_eq!((before.pending, before.delivered, before.dead, before.events), (3, 3, 3, 3));
    let target = TestStore::postgres().fresh_location(cfg.dir.path()).await;
    let StoreLocation::Postgres(url) = &target else { unreachable!() };

    let first = copy(&cfg, url);
    assert!(first.status.success(), "{}", said(&first));
    assert!(
        said(&first).contains(&format!(
            "3 event(s), 9 deliveries (3 dead, 3 delivered, 3 pending), {} attempt(s)",
            before.attempts
        )),
        "{}",
        said(&first)
    );
    // A copy run again copies nothing.
    let second = copy(&cfg, url);
    assert!(said(&second).contains("0 event(s), 0 deliveries (none), 0 attempt(s), 0 flow(s)"), "{}", said(&second));
    let copied = count(&target).await;
    assert_eq!(
        (copied.pending, copied.in_flight, copied.delivered, copied.dead, copied.attempts, copied.events),
        (3, 0, 3, 3, before.attempts, 3)
    );
    let version = "SELECT user_version FROM pragma_user_version";
    assert_eq!(query_number(&sqlite, version).await, Some(4), "the SQLite file is left as it was");

    // The relay on PostgreSQL delivers what was pending, once, and
    // nothing else; Raaft's retry of a copied event is a duplicate; the
    // customer's history came along.
    repoint(&cfg, &store_url(&sqlite), url);
    let relay = RelayProcess::start(&cfg.path()).await;
    hook.wait_for(3, Duration::from_secs(20)).await;
    let after =
        wait_for_counts(&target, Duration::from_secs(20), "the copied pending deliveries", |s| s.pending == 0).await;
    assert_eq!((after.delivered, after.dead), (6, 3));
    let retried =
        sample_exact("canceled.json").replace("\"flowId\": \"your-flow-id\"", "\"flowId\": \"flow-upgrade-1\"");
    let answer: Value = relay.post(retried).await.json().await.unwrap();
    assert_eq!(answer["deliveries"], 0, "the idempotency keys came along");
    let mut next: Value = serde_json::from_str(&sample_exact("canceled.json")).unwrap();
    next["flowId"] = "flow-after-the-move".into();
    next["createdAt"] = "2026-12-01T00:00:00Z".into();
    assert_eq!(relay.post(next.to_string()).await.status(), 200);
    let received = hook.wait_for(6, Duration::from_secs(20)).await;
    let moved: Vec<Value> =
        received.iter().map(Received::json).filter(|b| b["flow"] == "flow-after-the-move").collect();
    assert_eq!(moved.len(), 3, "{received:?}");
    assert!(moved.iter().all(|b| b["nth"] == 4), "the history counts the copied flows: {moved:?}");
    assert_eq!(hook.count(), 6, "nothing delivered or dead was sent again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(postgres_tests), ignore = "set RAAFT_RELAY_TEST_POSTGRES to a PostgreSQL URL to run it")]
async fn an_event_postgres_holds_already_is_left_out_and_never_delivered_twice() {
    // The SQLite relay could not deliver the event before it stopped.
    let down = Receiver::start(Answer::new(503, "")).await;
    let cfg = ConfigDir::new(&format!(
        "[destinations.crm]\nkind = \"webhook\"\nurl = \"{}\"\ntemplate = \"webhook/event.json.hbs\"\n\
         [[routes]]\nname = \"all\"\nto = [\"crm\"]\n\
         [retry]\nmax_attempts = 1000\ninitial_backoff = \"1h\"\nmax_backoff = \"1h\"\nattempt_timeout = \"2s\"\n",
        down.url("/crm")
    ));
    let event = sample("canceled.json");
    let relay = RelayProcess::start(&cfg.path()).await;
    assert_eq!(relay.post(event.clone()).await.status(), 200);
    down.wait_for(1, Duration::from_secs(10)).await;
    assert!(relay.terminate().await.success());

    // Raaft retried it to the relay already on PostgreSQL, which delivered it.
    let up = Receiver::start(Answer::new(200, "")).await;
    let target = TestStore::postgres().fresh_location(cfg.dir.path()).await;
    let StoreLocation::Postgres(url) = &target else { unreachable!() };
    let pg_cfg = ConfigDir::new(&format!(
        "[destinations.crm]\nkind = \"webhook\"\nurl = \"{}\"\ntemplate = \"webhook/event.json.hbs\"\n\
         [[routes]]\nname = \"all\"\nto = [\"crm\"]\n",
        up.url("/crm")
    ));
    pg_cfg.set_store(url);
    let pg_relay = RelayProcess::start(&pg_cfg.path()).await;
    assert_eq!(pg_relay.post(event).await.status(), 200);
    up.wait_for(1, Duration::from_secs(10)).await;
    wait_for_counts(&target, Duration::from_secs(10), "the delivery", |s| s.delivered == 1).await;

    let out = copy(&cfg, url);
    assert!(out.status.success(), "{}", said(&out));
    assert!(said(&out).contains("0 event(s), 0 deliveries (none)"), "{}", said(&out));
    assert!(said(&out).contains("1 event(s) left out"), "{}", said(&out));
    let after = count(&target).await;
    assert_eq!((after.pending, after.delivered, after.events), (0, 1, 1), "nothing to deliver again");
    drop(pg_relay);
    assert_eq!(up.count(), 1);
}

#[test]
fn a_copy_needs_the_sqlite_store_stopped_and_a_postgres_target() {
    let cfg = ConfigDir::new("[destinations.out]\nkind = \"console\"\ntemplate = \"console/event.hbs\"\n");
    let out = copy(&cfg, "sqlite:///tmp/elsewhere.db");
    assert_eq!(out.status.code(), Some(1));
    assert!(said(&out).contains("--to is a PostgreSQL url"), "{}", said(&out));
}
