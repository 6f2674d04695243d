//! Upgrading in place: a store written by the first release (its schema,
//! its idempotency keys, its queue), by the exactly-once release or by the
//! console release (the previous one, with customers' histories) is
//! migrated when this release starts on it, on both engines. The stores in
//! `tests/fixtures/first-release/`, `exactly-once-release/` and
//! `console-release/` were made by those releases; their READMEs say how.

use crate::helpers::*;
use raaft_relay::config::StoreLocation;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// The events the first release was given, as Raaft would send them again.
fn first_release_event(n: u32) -> String {
    sample_exact("canceled.json").replace("\"flowId\": \"your-flow-id\"", &format!("\"flowId\": \"flow-upgrade-{n}\""))
}

/// A release's store (`fixtures`: its folder under `tests/fixtures`),
/// copied (SQLite) or loaded (PostgreSQL) where this test's relay keeps its
/// own.
pub(crate) async fn release_store(fixtures: &str, store: &TestStore, dir: &std::path::Path) -> StoreLocation {
    let fixtures = repo_path(&format!("tests/fixtures/{fixtures}"));
    match store {
        TestStore::Sqlite => {
            let path = dir.join("relay.db");
            std::fs::copy(fixtures.join("relay.db"), &path).unwrap();
            StoreLocation::Sqlite(path)
        }
        TestStore::Postgres(_) => {
            let location = store.fresh_location(dir).await;
            execute(&location, &std::fs::read_to_string(fixtures.join("postgres.sql")).unwrap()).await;
            location
        }
    }
}

/// How many requests each (path, flow) got.
fn per_path_and_flow(received: &[Received]) -> BTreeMap<(String, String), usize> {
    let mut counts = BTreeMap::new();
    for r in received {
        let flow = r.json()["flow"].as_str().unwrap_or_default().to_owned();
        *counts.entry((r.path.clone(), flow)).or_insert(0) += 1;
    }
    counts
}

on_both_stores! {
    async fn a_store_of_the_first_release_keeps_its_queue(store) {
        keeps_its_queue("first-release", store, 0).await;
    }

    async fn a_store_of_the_exactly_once_release_keeps_its_queue(store) {
        keeps_its_queue("exactly-once-release", store, 0).await;
    }

    async fn a_store_of_the_console_release_keeps_its_queue_and_history(store) {
        keeps_its_queue("console-release", store, 3).await;
    }
}

/// A store made by an earlier release (`fixtures`), opened by this one:
/// what was pending is delivered once, what was delivered or dead stays
/// so, Raaft's retries are still duplicates, the dead can be replayed, and
/// the old events render with what this release adds (`mrr` worked out;
/// `history` as that release remembered it: `remembered` flows of the
/// customer, none before the history release).
async fn keeps_its_queue(fixtures: &str, store: TestStore, remembered: u64) {
    let hook = Receiver::start(Answer::new(200, "")).await;
    let cfg = ConfigDir::new(&format!(
            "[destinations.ok]\nkind = \"webhook\"\nurl = \"{}\"\ntemplate = \"flow.json.hbs\"\n\
             [destinations.gone]\nkind = \"webhook\"\nurl = \"{}\"\ntemplate = \"flow.json.hbs\"\n\
             [destinations.down]\nkind = \"webhook\"\nurl = \"{}\"\ntemplate = \"flow.json.hbs\"\n\
             [[routes]]\nname = \"all\"\nto = [\"ok\", \"gone\", \"down\"]\n\
             [retry]\nmax_attempts = 1000\ninitial_backoff = \"10ms\"\nmax_backoff = \"50ms\"\nattempt_timeout = \"2s\"\n",
            hook.url("/ok"),
            hook.url("/gone"),
            hook.url("/down")
        ));
    cfg.write_template(
            "flow.json.hbs",
            r#"{"flow": "{{flowId}}", "outcome": "{{outcome}}", "monthly": {{{json mrr.monthly}}}, "history": {{{json history}}}}"#,
        );
    // The fixture's events were received long before this test runs.
    let text = std::fs::read_to_string(cfg.path())
        .unwrap()
        .replace("second-token\"]", "second-token\"]\ndedup_window = \"36500d\"");
    std::fs::write(cfg.path(), text).unwrap();
    let location = release_store(fixtures, &store, cfg.dir.path()).await;
    let before = count(&location).await;
    assert_eq!((before.pending, before.delivered, before.dead, before.events), (3, 3, 3, 3));
    cfg.set_store(&store_url(&location));

    let relay = RelayProcess::start(&cfg.path()).await;
    // The pending deliveries are delivered, once each; nothing delivered
    // or dead is sent again.
    hook.wait_for(3, Duration::from_secs(20)).await;
    let after = wait_for_counts(&location, Duration::from_secs(20), "the pending deliveries", |s| s.pending == 0).await;
    assert_eq!(
        (after.delivered, after.dead, after.attempts, after.events),
        (6, 3, before.attempts + 3, 3),
        "{after:?}"
    );
    // The console reads attempts by destination: the old ones got theirs.
    let unnamed = "SELECT COUNT(*) FROM attempts WHERE destination IS NULL OR delivered IS NULL";
    assert_eq!(query_number(&location, unnamed).await, Some(0));
    let mismatched = "SELECT COUNT(*) FROM attempts a JOIN deliveries d ON d.id = a.delivery_id \
        WHERE a.destination <> d.destination OR a.delivered <> CASE WHEN a.error IS NULL THEN 1 ELSE 0 END";
    assert_eq!(query_number(&location, mismatched).await, Some(0));
    let failed = "SELECT COUNT(*) FROM attempts WHERE delivered = 0";
    assert!(query_number(&location, failed).await.unwrap() >= 3, "the dead deliveries' failed attempts");
    let counts = per_path_and_flow(&hook.received());
    for n in 1..=3 {
        assert_eq!(counts.get(&("/down".to_owned(), format!("flow-upgrade-{n}"))), Some(&1), "{counts:?}");
    }
    assert_eq!(hook.count(), 3, "{counts:?}");
    for sent in hook.received().iter().map(Received::json) {
        assert_eq!(sent["monthly"], serde_json::json!(49), "{sent}");
        match remembered {
            0 => assert_eq!(sent["history"], Value::Null, "{sent}"),
            n => assert!((1..=n).contains(&sent["history"]["nth"].as_u64().unwrap()), "{sent}"),
        }
    }

    // Raaft retrying an event the first release accepted: a duplicate.
    let retried: Value = relay.post(first_release_event(1)).await.json().await.unwrap();
    assert_eq!(retried["deliveries"], 0, "the first release's idempotency key was kept");

    // The dead keep their history and can be replayed.
    let dead = deliveries_cli(&cfg.path(), &["list", "--status", "dead"]);
    assert_eq!(dead.lines().count(), 3, "{dead}");
    let id = dead.split_whitespace().next().unwrap();
    let shown = deliveries_cli(&cfg.path(), &["show", id]);
    assert!(shown.contains("status 410") && shown.contains("channel_is_archived"), "{shown}");
    let replayed = deliveries_cli(&cfg.path(), &["replay", "--dead"]);
    assert_eq!(replayed.trim(), "replayed 3 dead deliveries");
    hook.wait_for(6, Duration::from_secs(20)).await;
    let last =
        wait_for_counts(&location, Duration::from_secs(20), "the replayed deliveries", |s| s.delivered == 9).await;
    assert_eq!((last.pending, last.dead, last.attempts), (0, 0, before.attempts + 6), "{last:?}");
    let counts = per_path_and_flow(&hook.received());
    assert!(counts.keys().all(|(path, _)| path != "/ok"), "a delivered delivery was sent again: {counts:?}");
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");
    assert_eq!(hook.count(), 6);
    // New events are remembered from now on.
    let mut next: Value = serde_json::from_str(&first_release_event(4)).unwrap();
    next["createdAt"] = "2026-12-01T00:00:00Z".into();
    assert_eq!(relay.post(next.to_string()).await.status(), 200);
    let latest = hook.wait_for(9, Duration::from_secs(20)).await;
    let new: Vec<Value> = latest[6..].iter().map(|r| r.json()).collect();
    assert!(new.iter().all(|b| b["history"]["nth"] == remembered + 1), "{new:?}");
    drop(relay);
}
