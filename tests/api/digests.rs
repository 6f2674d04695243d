//! Digests through the real binary: a window is sent once whatever
//! happens to the relay (kill -9, a reload that changes the schedule, two
//! replicas on one PostgreSQL), with every event in it. The test takes
//! the scheduler's step itself, a minute ahead of the store's clock
//! ([`raaft_relay::digest_scheduler::advance`], on the store the relay
//! delivers from), instead of waiting for the minute to pass.

use crate::helpers::*;
use raaft_relay::store::{Access, Store};
use raaft_relay::LoadedConfig;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// A relay whose events go nowhere and whose digest `schedule` goes to
/// `digests`, with the figures and the window as JSON.
async fn digest_config(digests: &Receiver, schedule: &str, empty: &str, store: &TestStore) -> ConfigDir {
    let cfg = ConfigDir::new(&format!(
        "[destinations.digests]\nkind = \"webhook\"\nurl = \"{}\"\ntemplate = \"webhook/event.json.hbs\"\n\
         [digests.often]\nschedule = \"{schedule}\"\nto = [\"digests\"]\ntemplate = \"digest.json.hbs\"\nempty = \"{empty}\"\n\
         [retry]\nmax_attempts = 10\ninitial_backoff = \"10ms\"\nmax_backoff = \"100ms\"\nattempt_timeout = \"3s\"\n",
        digests.url("/digest")
    ));
    cfg.write_template(
        "digest.json.hbs",
        r#"{"total": {{total}}, "canceled": {{outcomes.canceled}}, "start": "{{window.start}}", "end": "{{window.end}}"}"#,
    );
    cfg.set_store(&store.fresh_url(cfg.dir.path()).await);
    cfg
}

/// The relay at `cfg`'s store, opened beside it as a store command opens
/// it, and its running set.
async fn store_of(cfg: &ConfigDir) -> (Arc<dyn Store>, Arc<LoadedConfig>) {
    let loaded = Arc::new(LoadedConfig::load(&cfg.path()).unwrap());
    let store = raaft_relay::store::open(&loaded.config.store.location, loaded.config.dedup_window, Access::Tool)
        .await
        .unwrap();
    (store, loaded)
}

/// Takes the scheduler's steps for digest `often` as if a minute had
/// passed on the store's clock: every window that would have ended by then
/// is claimed (once, whoever else claims it) and its deliveries queued for
/// the running relay to send.
async fn a_minute_later(store: &dyn Store, loaded: &Arc<LoadedConfig>) {
    let later = store.now().await.unwrap() + chrono::Duration::seconds(61);
    let digest = loaded.digest("often").unwrap();
    while raaft_relay::digest_scheduler::advance(store, loaded, digest, later).await.unwrap().is_none() {}
}

fn digests_of(received: &[Received]) -> Vec<Value> {
    received.iter().filter(|r| r.status == 200).map(|r| r.json()).collect()
}

/// Waits until the digests received cover `events` events, for at most
/// `deadline`.
async fn wait_for_events(receiver: &Receiver, events: u64, deadline: Duration) -> Vec<Value> {
    wait_until(deadline, &format!("digests covering {events} events"), || {
        digests_of(&receiver.received()).iter().map(|d| d["total"].as_u64().unwrap()).sum::<u64>() >= events
    })
    .await;
    digests_of(&receiver.received())
}

/// Each window is claimed once, and consecutive windows meet.
fn assert_windows_tile(digests: &[Value]) {
    let mut windows: Vec<(&str, &str)> =
        digests.iter().map(|d| (d["start"].as_str().unwrap(), d["end"].as_str().unwrap())).collect();
    windows.sort();
    let distinct = windows.iter().collect::<std::collections::BTreeSet<_>>();
    assert_eq!(distinct.len(), windows.len(), "a window was sent twice: {digests:?}");
    for pair in windows.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "windows overlap: {digests:?}");
    }
}

on_both_stores! {
    async fn a_digest_survives_kill_9_and_is_sent_once_with_every_event(store) {
        // The relay is killed while its first attempt waits for an answer
        // (202, never given: the attempts that count are answered 200).
        let digests = Receiver::start(Answer::new(200, "")).await;
        digests.then(Answer::new(202, "").delayed(Duration::from_secs(120)));
        let cfg = digest_config(&digests, "* * * * *", "skip", &store).await;
        let relay = RelayProcess::start(&cfg.path()).await;
        for _ in 0..3 {
            assert_eq!(relay.post(sample("canceled.json")).await.status(), 200);
        }
        // The window that holds them ends within the minute.
        let (store, loaded) = store_of(&cfg).await;
        a_minute_later(store.as_ref(), &loaded).await;
        drop(store);
        digests.wait_for(1, Duration::from_secs(10)).await;
        relay.kill();
        let location = raaft_relay::config::Config::load(&cfg.path()).unwrap().store.location;
        let claimed = query_number(&location, "SELECT COUNT(*) FROM digest_windows WHERE event_id IS NOT NULL").await;
        assert_eq!(claimed, Some(1));
        let relay = RelayProcess::start(&cfg.path()).await;
        // On PostgreSQL, once the dead relay's lease (3 s + 7 s) runs out.
        let got = wait_for_events(&digests, 3, Duration::from_secs(30)).await;
        // The retry sent the same digest; no window was claimed again.
        let first: Value = digests.received()[0].json();
        assert_eq!(got[0], first, "the retry sends what the first attempt sent");
        assert_eq!(got[0]["total"], 3);
        assert_eq!(got[0]["canceled"], 3);
        let claimed = query_number(&location, "SELECT COUNT(*) FROM digest_windows WHERE event_id IS NOT NULL").await;
        assert_eq!(claimed, Some(1), "{}", relay.logs());
        assert_windows_tile(&got);
        drop(relay);
    }

    async fn a_reload_that_changes_the_schedule_sends_every_event_once(store) {
        let digests = Receiver::start(Answer::new(200, "")).await;
        // Daily at first: on start, the last day's window is sent (empty).
        let cfg = digest_config(&digests, "0 9 * * *", "send", &store).await;
        let relay = RelayProcess::start(&cfg.path()).await;
        digests.wait_for(1, Duration::from_secs(10)).await;
        for _ in 0..2 {
            assert_eq!(relay.post(sample("canceled.json")).await.status(), 200);
        }
        // Every minute from now on: the time since the daily window is one
        // window up to the last minute, then a window a minute.
        let text = std::fs::read_to_string(cfg.path()).unwrap().replace("schedule = \"0 9 * * *\"", "schedule = \"* * * * *\"");
        std::fs::write(cfg.path(), text).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !relay.logs().contains("configuration reloaded") {
            assert!(std::time::Instant::now() < deadline, "not reloaded:\n{}", relay.logs());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (store, loaded) = store_of(&cfg).await;
        a_minute_later(store.as_ref(), &loaded).await;
        let mut got = wait_for_events(&digests, 2, Duration::from_secs(10)).await;
        assert_eq!(got.iter().map(|d| d["total"].as_u64().unwrap()).sum::<u64>(), 2, "{got:?}");
        assert_windows_tile(&got);
        // The first window after the change starts where the daily one ended.
        got.sort_by_key(|d| d["start"].as_str().unwrap().to_owned());
        assert_eq!(got[1]["start"], got[0]["end"], "{got:?}");
        drop(relay);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(postgres_tests), ignore = "set RAAFT_RELAY_TEST_POSTGRES to a PostgreSQL URL to run it")]
async fn two_replicas_send_one_digest_per_window() {
    let store = TestStore::postgres();
    let digests = Receiver::start(Answer::new(200, "")).await;
    let cfg = digest_config(&digests, "* * * * *", "skip", &store).await;
    let (one, two) = (RelayProcess::start(&cfg.path()).await, RelayProcess::start(&cfg.path()).await);
    for i in 0..6 {
        let relay = if i % 2 == 0 { &one } else { &two };
        assert_eq!(relay.post(sample("canceled.json")).await.status(), 200);
    }
    // Both replicas' schedulers reach the window at once.
    let ((first, loaded), (second, _)) = (store_of(&cfg).await, store_of(&cfg).await);
    tokio::join!(a_minute_later(first.as_ref(), &loaded), a_minute_later(second.as_ref(), &loaded));
    let got = wait_for_events(&digests, 6, Duration::from_secs(10)).await;
    assert_eq!(got.iter().map(|d| d["total"].as_u64().unwrap()).sum::<u64>(), 6);
    assert_windows_tile(&got);
    // A digest delivery exists only with its window's claim: one event and
    // one delivery per window sent, whichever replica tried.
    let location = raaft_relay::config::Config::load(&cfg.path()).unwrap().store.location;
    let sent = query_number(&location, "SELECT COUNT(*) FROM digest_windows WHERE event_id IS NOT NULL").await.unwrap();
    let events = query_number(&location, "SELECT COUNT(*) FROM events WHERE source = 'digest'").await.unwrap();
    let deliveries = query_number(
        &location,
        "SELECT COUNT(*) FROM deliveries d JOIN events e ON e.id = d.event_id WHERE e.source = 'digest'",
    )
    .await
    .unwrap();
    assert_eq!((events, deliveries), (sent, sent));
    assert!(sent as usize >= got.len());
}

on_both_stores! {
    async fn digest_send_sends_a_window_the_scheduler_skipped_as_empty(store) {
        let digests = Receiver::start(Answer::new(200, "")).await;
        let cfg = digest_config(&digests, "0 * * * *", "skip", &store).await;
        let config = cfg.path();
        let config = config.to_str().unwrap();
        let migrated = relay_command().args(["--config", config, "migrate"]).output().unwrap();
        assert!(migrated.status.success(), "{}", said(&migrated));
        let (store, loaded) = store_of(&cfg).await;
        // The scheduler reaches the last hour: no event, so it is skipped.
        let now = store.now().await.unwrap();
        let digest = loaded.digest("often").unwrap();
        while raaft_relay::digest_scheduler::advance(store.as_ref(), &loaded, digest, now).await.unwrap().is_none() {}
        let skipped = store.last_digest_window("often").await.unwrap().unwrap();
        assert_eq!(skipped.event_id, None, "{skipped:?}");

        // Asked for, it is sent all the same.
        let out = relay_command().args(["--config", config, "digest", "send", "often"]).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{}", said(&out));
        let span = format!("{} to {}", skipped.start.to_rfc3339(), skipped.end.to_rfc3339());
        assert!(stdout.starts_with(&format!("queued digest \"often\" of {span}: ")), "{stdout}");
        let taken = store.last_digest_window("often").await.unwrap().unwrap();
        assert_eq!((taken.start, taken.end), (skipped.start, skipped.end));
        assert!(taken.event_id.is_some(), "{taken:?}");
        // Once.
        let again = relay_command().args(["--config", config, "digest", "send", "often"]).output().unwrap();
        assert_eq!(again.status.code(), Some(1), "{}", said(&again));
        assert!(String::from_utf8_lossy(&again.stdout).contains("was sent already"), "{}", said(&again));
    }
}
