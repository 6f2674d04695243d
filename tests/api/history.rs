//! Every outcome remembered: customer history and MRR in rules and
//! templates as of each event's receipt, erasure on request, and digests
//! claimed once per window, on both engines.

use crate::helpers::*;
use raaft_relay::LoadedConfig;
use serde_json::{json, Value};
use std::time::Duration;

/// A webhook that shows what the relay knew of the event, a second one
/// for third attempts, and the admin API.
fn history_config(hook: &Receiver, founders: &Receiver, extra: &str) -> ConfigDir {
    let cfg = ConfigDir::new(&format!(
        "[destinations.hook]\nkind = \"webhook\"\nurl = \"{}\"\ntemplate = \"facts.json.hbs\"\n\
         [destinations.founders]\nkind = \"webhook\"\nurl = \"{}\"\ntemplate = \"facts.json.hbs\"\n\
         [[routes]]\nname = \"saves\"\nwhen = {{ outcome = \"saved\" }}\nto = [\"hook\"]\n\
         [[routes]]\nname = \"cancellations\"\nwhen = {{ outcome = \"canceled\" }}\nto = [\"hook\"]\n\
         [[routes]]\nname = \"third-attempt\"\nwhen = 'history.nth >= 3 && outcome == \"canceled\"'\nto = [\"founders\"]\n\
         [[routes]]\nname = \"big-accounts\"\nwhen = 'mrr.monthly >= 100'\nto = [\"founders\"]\n\
         [admin]\ntokens = [\"adm1n-token-0123456789\"]\n{extra}",
        hook.url("/hook"),
        founders.url("/founders"),
    ));
    cfg.write_template(
        "facts.json.hbs",
        r#"{"flow": "{{flowId}}", "outcome": "{{outcome}}", "nth": {{{json history.nth}}}, "saved_before": {{{json history.saved_before}}}, "previous": {{{json history.previous}}}, "summary": {{{json history.summary}}}, "monthly": {{{json mrr.monthly}}}, "retained": {{{json mrr.retained}}}}"#,
    );
    cfg
}

/// A sample event of customer `id` (and `flowId` `flow`).
fn event_of(name: &str, id: &str, flow: &str) -> String {
    let mut e: Value = serde_json::from_str(&sample_exact(name)).unwrap();
    e["customer"]["id"] = json!(id);
    e["subscription"]["customer"]["id"] = json!(id);
    e["flowId"] = json!(flow);
    e.to_string()
}

fn bodies(received: &[Received]) -> Vec<Value> {
    received.iter().map(|r| serde_json::from_slice(&r.body).unwrap()).collect()
}

const ADMIN: &str = "Bearer adm1n-token-0123456789";

on_both_stores! {
    async fn history_is_counted_per_customer_as_of_receipt_and_a_replay_renders_the_same(store) {
        let (hook, founders) = (Receiver::start(Answer::new(200, "")).await, Receiver::start(Answer::new(200, "")).await);
        let app = spawn_app(history_config(&hook, &founders, ""), &store).await;
        // Saved with a discount, then canceled twice; another customer between.
        for (name, customer, flow) in [
            ("saved-discount.json", "cus_A", "f1"),
            ("canceled.json", "cus_B", "f2"),
            ("canceled.json", "cus_A", "f3"),
            ("aborted.json", "cus_A", "f4"),
            ("canceled.json", "cus_A", "f5"),
        ] {
            assert_eq!(app.post_event(event_of(name, customer, flow)).await.status(), 200);
            // One at a time: each event's history is what came before it.
            app.wait_settled(Duration::from_secs(10)).await;
        }
        let got = bodies(&hook.wait_for(4, Duration::from_secs(10)).await);
        let by_flow = |flow: &str| got.iter().find(|b| b["flow"] == flow).cloned().unwrap_or_else(|| panic!("{flow} not delivered: {got:?}"));
        assert_eq!((by_flow("f1")["nth"].clone(), by_flow("f1")["saved_before"].clone()), (json!(1), json!(0)));
        assert_eq!(by_flow("f1")["summary"], "First cancellation attempt");
        assert_eq!(by_flow("f1")["retained"], 10);
        assert_eq!(by_flow("f2")["nth"], 1, "another customer's flows do not count");
        let third = by_flow("f5");
        assert_eq!((third["nth"].clone(), third["saved_before"].clone()), (json!(4), json!(1)));
        let outcomes: Vec<&str> = third["previous"].as_array().unwrap().iter().map(|p| p["outcome"].as_str().unwrap()).collect();
        assert_eq!(outcomes, ["aborted", "canceled", "saved"], "newest first, the unrouted abort included");
        assert_eq!(third["previous"][2]["offer"], "30% off for 3 months");
        assert!(third["summary"].as_str().unwrap().starts_with("4th cancellation attempt today; saved in "), "{third}");
        assert_eq!(third["monthly"], 49);
        // The escalation: only the 3rd canceled-or-later attempt of cus_A reaches the founders.
        let escalated = bodies(&founders.wait_for(1, Duration::from_secs(10)).await);
        let flows: Vec<&str> = escalated.iter().map(|b| b["flow"].as_str().unwrap()).collect();
        assert_eq!(flows, ["f5"], "f3 is cus_A's 2nd flow, f4 was aborted: {escalated:?}");

        // A replay renders the history as it was at receipt.
        let first = app.store.list(&raaft_relay::store::ListFilter { destination: Some("hook".into()), limit: 0, ..Default::default() }).await.unwrap();
        let f1 = first.iter().find(|d| d.outcome.as_deref() == Some("saved")).unwrap();
        app.store.replay(std::slice::from_ref(&f1.id)).await.unwrap();
        let again = bodies(&hook.wait_for(5, Duration::from_secs(10)).await);
        assert_eq!(again[4], by_flow("f1"), "the replay sends what the first attempt sent");

        // The history as the operator sees it.
        let h: Value = app.client().get(format!("{}/admin/customers/cus_A", app.address)).header("authorization", ADMIN).send().await.unwrap().json().await.unwrap();
        let outcomes: Vec<&str> = h["flows"].as_array().unwrap().iter().map(|f| f["outcome"].as_str().unwrap()).collect();
        assert_eq!(outcomes, ["canceled", "aborted", "canceled", "saved"]);
        // Every event is kept, routed or not.
        assert_eq!(app.stats().await.events, 5);
    }

    async fn forget_erases_everything_about_one_customer(store) {
        let (hook, founders) = (Receiver::start(Answer::new(200, "")).await, Receiver::start(Answer::new(200, "")).await);
        let app = spawn_app(history_config(&hook, &founders, ""), &store).await;
        let mut by_email: Value = serde_json::from_str(&sample_exact("aborted.json")).unwrap();
        by_email["customer"] = json!({"email": "Ana@Example.com", "name": "Ana"});
        by_email["subscription"]["customer"] = json!({});
        for body in [event_of("canceled.json", "cus_A", "a1"), event_of("saved-discount.json", "cus_A", "a2"), event_of("canceled.json", "cus_B", "b1"), by_email.to_string()] {
            assert_eq!(app.post_event(body).await.status(), 200);
        }
        app.wait_settled(Duration::from_secs(10)).await;
        let before = app.stats().await;
        assert_eq!((before.events, before.delivered), (4, 3));
        let url = |who: &str| format!("{}/admin/customers/{who}", app.address);
        let r = app.client().delete(url("cus_A")).header("authorization", ADMIN).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let gone: Value = r.json().await.unwrap();
        assert_eq!(gone["forgotten"], json!({"flows": 2, "events": 2, "deliveries": 2, "attempts": 2, "digests": 0}));
        let after = app.stats().await;
        assert_eq!((after.events, after.delivered, after.attempts), (2, 1, 1));
        let h: Value = app.client().get(url("cus_A")).header("authorization", ADMIN).send().await.unwrap().json().await.unwrap();
        assert_eq!(h["flows"], json!([]));
        let b: Value = app.client().get(url("cus_B")).header("authorization", ADMIN).send().await.unwrap().json().await.unwrap();
        assert_eq!(b["flows"].as_array().unwrap().len(), 1, "the other customer is kept");
        // A customer known only by e-mail, named in any case.
        let r = app.client().delete(url("ANA%40example.COM")).header("authorization", ADMIN).send().await.unwrap();
        let gone: Value = r.json().await.unwrap();
        assert_eq!((gone["forgotten"]["flows"].clone(), gone["forgotten"]["events"].clone()), (json!(1), json!(1)));
        assert_eq!(app.stats().await.events, 1);
        // Without the admin token, nothing.
        assert_eq!(app.client().delete(url("cus_B")).send().await.unwrap().status(), 401);
    }

    async fn forget_by_e_mail_erases_every_id_it_appears_under_and_leaves_no_text_behind(store) {
        // The founders' endpoint refuses, echoing the customer's address:
        // attempts keep a reply that names it.
        let hook = Receiver::start(Answer::new(200, "")).await;
        let founders = Receiver::start(Answer::new(400, r#"{"rejected": "ana@northwind.example"}"#)).await;
        let cfg = history_config(
            &hook,
            &founders,
            "[digests.daily]\nschedule = \"0 9 * * *\"\nto = [\"hook\"]\ntemplate = \"digest.json.hbs\"\n",
        );
        cfg.write_template("digest.json.hbs", r#"{"quotes": [{{#each feedback}}{{#unless @first}}, {{/unless}}"{{email}}: {{text}}"{{/each}}]}"#);
        let app = spawn_app(cfg, &store).await;
        let ana = |flow: &str, amount: u32| {
            let mut e: Value = serde_json::from_str(&event_of("canceled.json", "cus_Q1w2E3r4", flow)).unwrap();
            e["feedback"] = json!("erase-me-7c1f: we moved to another tool");
            e["subscription"]["plan"]["amount"] = json!(amount);
            e.to_string()
        };
        let mut by_address: Value = serde_json::from_str(&sample_exact("aborted.json")).unwrap();
        by_address["customer"] = json!({"email": "ANA@Northwind.example", "name": "Ana"});
        by_address["subscription"]["customer"] = json!({});
        // Known by no id at all: the address only in the subscription.
        let mut unkeyed: Value = serde_json::from_str(&sample_exact("canceled.json")).unwrap();
        unkeyed["flowId"] = json!("u1");
        unkeyed["customer"] = Value::Null;
        unkeyed["subscription"]["customer"] = json!({"email": "ana@northwind.example"});
        unkeyed["feedback"] = json!("erase-me-7c1f, said without an id");
        let mut other: Value = serde_json::from_str(&event_of("canceled.json", "cus_B", "b1")).unwrap();
        other["customer"]["email"] = json!("bo@other.example");
        other["subscription"]["customer"]["email"] = json!("bo@other.example");
        let mut bodies: Vec<String> = (0..6).map(|i| ana(&format!("q{i}"), if i < 2 { 120 } else { 49 })).collect();
        bodies.extend([by_address.to_string(), unkeyed.to_string(), other.to_string()]);
        for body in bodies {
            assert_eq!(app.post_event(body).await.status(), 200);
        }
        app.wait_settled(Duration::from_secs(10)).await;
        // A day later the digest quotes Ana.
        let loaded = std::sync::Arc::new(LoadedConfig::load(&app.config_path()).unwrap());
        let later = app.store.now().await.unwrap() + chrono::Duration::hours(24);
        let digest = loaded.digest("daily").unwrap();
        while raaft_relay::digest_scheduler::advance(app.store.as_ref(), &loaded, digest, later).await.unwrap().is_none() {}
        app.wait_settled(Duration::from_secs(10)).await;
        let before = app.stats().await;
        assert_eq!(before.events, 10, "9 events and the digest");
        assert_eq!(before.dead, 6, "the founders refused every escalation: two big accounts, four third attempts");

        let url = format!("{}/admin/customers/ana%40northwind.example", app.address);
        let r = app.client().delete(&url).header("authorization", ADMIN).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let gone: Value = r.json().await.unwrap();
        let per_id: Vec<(String, u64, u64)> = gone["customers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["customer"].as_str().unwrap().to_owned(), c["events"].as_u64().unwrap(), c["digests"].as_u64().unwrap()))
            .collect();
        // The digest quotes Ana by id and by address: written again once.
        assert_eq!(per_id, [("ana@northwind.example".to_owned(), 2, 1), ("cus_Q1w2E3r4".to_owned(), 6, 0)], "{gone}");
        assert_eq!((gone["forgotten"]["events"].clone(), gone["forgotten"]["digests"].clone()), (json!(8), json!(1)));
        let after = app.stats().await;
        assert_eq!(after.events, 2, "Bo's event and the digest, rewritten");
        let b: Value = app.client().get(format!("{}/admin/customers/cus_B", app.address)).header("authorization", ADMIN).send().await.unwrap().json().await.unwrap();
        assert_eq!(b["flows"].as_array().unwrap().len(), 1, "the other customer is kept");

        // Nothing of Ana is left in the store's files.
        for text in ["ana@northwind.example", "erase-me-7c1f", "cus_Q1w2E3r4"] {
            assert_eq!(store_mentions(&app.location, text).await, Vec::<String>::new(), "{text} is still in the store");
        }
        // Asked again, it says it found nothing.
        let again: Value = app.client().delete(&url).header("authorization", ADMIN).send().await.unwrap().json().await.unwrap();
        assert_eq!(again["customers"], json!([]));
        assert!(again["note"].as_str().unwrap().starts_with("found nothing to forget"), "{again}");
    }

    async fn a_digest_window_is_claimed_once_whoever_tries_with_every_event_in_it(store) {
        let (hook, founders) = (Receiver::start(Answer::new(200, "")).await, Receiver::start(Answer::new(200, "")).await);
        let cfg = history_config(
            &hook,
            &founders,
            "[digests.daily]\nschedule = \"0 9 * * *\"\ntimezone = \"Europe/Lisbon\"\nwhen = { outcome = [\"saved\", \"canceled\"] }\nto = [\"founders\"]\ntemplate = \"digest.json.hbs\"\n",
        );
        cfg.write_template(
            "digest.json.hbs",
            r#"{"digest": "{{digest}}", "total": {{total}}, "outcomes": {{{json outcomes}}}, "revenue": {{{json revenue}}}, "start": "{{window.start}}", "end": "{{window.end}}", "quotes": [{{#each feedback}}{{#unless @first}}, {{/unless}}{{{json customer_id}}}{{/each}}], "more": {{more}}}"#,
        );
        let app = spawn_app(cfg, &store).await;
        for body in [
            event_of("canceled.json", "c1", "d1"),
            event_of("canceled-annual-enterprise.json", "c2", "d2"),
            event_of("saved-switch-plan.json", "c3", "d3"),
            event_of("aborted.json", "c4", "d4"),
        ] {
            assert_eq!(app.post_event(body).await.status(), 200);
        }
        app.wait_settled(Duration::from_secs(10)).await;
        let escalations = founders.count();
        // A day later, by the store's clock: six replicas or restarts try at once.
        let loaded = std::sync::Arc::new(LoadedConfig::load(&app.config_path()).unwrap());
        let later = app.store.now().await.unwrap() + chrono::Duration::hours(24);
        let mut tries = Vec::new();
        for _ in 0..6 {
            let (store, loaded) = (app.store.clone(), loaded.clone());
            tries.push(tokio::spawn(async move {
                let digest = loaded.digest("daily").unwrap();
                let mut queued = 0;
                // Each keeps stepping until told to wait.
                while raaft_relay::digest_scheduler::advance(store.as_ref(), &loaded, digest, later).await.unwrap().is_none() {
                    queued += 1;
                }
                queued
            }));
        }
        for t in tries {
            t.await.unwrap();
        }
        let windows = query_number(&app.location, "SELECT COUNT(*) FROM digest_windows WHERE event_id IS NOT NULL").await.unwrap();
        assert_eq!(windows, 1, "one digest queued for the window");
        let got = founders.wait_for(escalations + 1, Duration::from_secs(10)).await;
        app.wait_settled(Duration::from_secs(10)).await;
        assert_eq!(founders.count(), escalations + 1, "sent once");
        let digest: Value = serde_json::from_slice(&got.last().unwrap().body).unwrap();
        assert_eq!(digest["digest"], "daily");
        assert_eq!(digest["total"], 3, "the aborted flow is not counted by `when`: {digest}");
        assert_eq!(digest["outcomes"], json!({"aborted": 0, "canceled": 2, "error": 0, "saved": 1}));
        assert_eq!(digest["revenue"], json!([{"currency": "USD", "lost": 149, "saved": 8}]));
        // The window ends at 09:00 in Lisbon, within a day of the events.
        let end = chrono::DateTime::parse_from_rfc3339(digest["end"].as_str().unwrap()).unwrap();
        assert!(end.with_timezone(&chrono_tz::Europe::Lisbon).format("%H:%M").to_string() == "09:00", "{digest}");
        // The preview of that window shows the same figures and sends nothing.
        let at = (later).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let preview: Value = app
            .client()
            .get(format!("{}/admin/digests/daily/preview", app.address))
            .query(&[("at", at.as_str())])
            .header("authorization", ADMIN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(preview["context"]["total"], 3, "{preview}");
        assert!(preview["destinations"]["founders"]["payload"].as_str().unwrap().contains("\"total\": 3"), "{preview}");
        assert_eq!(founders.count(), escalations + 1);
        // The digest is an ordinary delivery: listed, and replayed as it was.
        let digests = app.store.list(&raaft_relay::store::ListFilter { destination: Some("founders".into()), limit: 0, ..Default::default() }).await.unwrap();
        let d = digests.iter().find(|d| d.routes == ["digest:daily"]).expect("the digest is listed");
        app.store.replay(std::slice::from_ref(&d.id)).await.unwrap();
        let again = founders.wait_for(escalations + 2, Duration::from_secs(10)).await;
        assert_eq!(again.last().unwrap().body, got.last().unwrap().body);
        assert_eq!((digest["quotes"].clone(), digest["more"].clone()), (json!(["c2", "c1", "c3"]), json!(0)));

        // Forgetting a customer takes their quote out of the stored digest:
        // its figures, its payload (a replay sends it without), its attempts.
        let url = format!("{}/admin/customers/c2", app.address);
        let gone: Value = app.client().delete(url).header("authorization", ADMIN).send().await.unwrap().json().await.unwrap();
        assert_eq!(gone["forgotten"]["digests"], 1, "{gone}");
        let shown = app.store.show(&d.id).await.unwrap().unwrap();
        assert!(shown.attempt_log.iter().all(|a| a.payload.is_none() && a.response.is_none()), "{shown:?}");
        let kept: Vec<&str> = shown.event["feedback"].as_array().unwrap().iter().map(|q| q["customer_id"].as_str().unwrap()).collect();
        assert_eq!(kept, ["c1", "c3"], "{}", shown.event);
        app.store.replay(std::slice::from_ref(&d.id)).await.unwrap();
        let last = founders.wait_for(escalations + 3, Duration::from_secs(10)).await;
        let rewritten: Value = serde_json::from_slice(&last.last().unwrap().body).unwrap();
        assert_eq!((rewritten["quotes"].clone(), rewritten["more"].clone()), (json!(["c1", "c3"]), json!(1)));
        assert_eq!(rewritten["total"], 3, "the figures stay: only the quote goes");
    }
}

/// Runs the relay's command line on `config`; returns its standard output.
fn cli(config: &std::path::Path, args: &[&str]) -> String {
    let out = relay_command().args(["--config", config.to_str().unwrap()]).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{args:?} failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

on_both_stores! {
    async fn history_forget_and_digest_preview_from_the_command_line(store) {
        let (hook, founders) = (Receiver::start(Answer::new(200, "")).await, Receiver::start(Answer::new(200, "")).await);
        let cfg = history_config(
            &hook,
            &founders,
            "[digests.daily]\nschedule = \"0 9 * * *\"\nto = [\"hook\"]\ntemplate = \"digest.hbs\"\n",
        );
        cfg.write_template("digest.hbs", "{{total}} flows, {{outcomes.saved}} saved, save rate {{percent save_rate}}");
        let app = spawn_app(cfg, &store).await;
        for body in [event_of("saved-discount.json", "cus_A", "c1"), event_of("canceled.json", "cus_A", "c2")] {
            assert_eq!(app.post_event(body).await.status(), 200);
            app.wait_settled(Duration::from_secs(10)).await;
        }
        let config = app.config_path();
        let shown = cli(&config, &["history", "cus_A"]);
        assert!(shown.contains("customer \"cus_A\": 2 flow(s), newest first"), "{shown}");
        let lines: Vec<&str> = shown.lines().skip(1).collect();
        assert!(lines[0].contains("canceled") && lines[0].contains("$49.00/month"), "{shown}");
        assert!(lines[1].contains("saved") && lines[1].contains("accepted 30% off for 3 months"), "{shown}");
        let later = (app.store.now().await.unwrap() + chrono::Duration::hours(24)).to_rfc3339();
        let sent_before = hook.count();
        let preview = cli(&config, &["digest", "preview", "daily", "--at", &later]);
        assert!(preview.contains("(2 events; nothing is sent)"), "{preview}");
        assert!(preview.contains("2 flows, 1 saved, save rate 50%"), "{preview}");
        assert_eq!(hook.count(), sent_before);
        // What the relay knew at receipt, beside the event.
        let listed = deliveries_cli(&config, &["list"]);
        let newest = listed.split_whitespace().next().unwrap();
        let shown = deliveries_cli(&config, &["show", newest]);
        assert!(shown.contains("mrr and history at receipt:") && shown.contains("\"nth\": 2"), "{shown}");
        let forgot = cli(&config, &["forget", "cus_A"]);
        assert!(forgot.contains("forgot customer \"cus_A\": 2 flow(s), 2 event(s), 2 deliveries, 2 attempt(s)"), "{forgot}");
        assert!(cli(&config, &["history", "cus_A"]).starts_with("no flows for customer \"cus_A\""));
        let nothing = cli(&config, &["forget", "Nobody@Example.com"]);
        assert_eq!(nothing.trim(), "found nothing to forget for \"Nobody@Example.com\": no event, flow or digest of the relay names it");
    }
}

/// Where the store still holds `text`: for SQLite, which of its files
/// (the database, its log and its shared memory) hold the bytes anywhere,
/// live or deleted; for PostgreSQL, which tables have a row that holds it.
async fn store_mentions(location: &raaft_relay::config::StoreLocation, text: &str) -> Vec<String> {
    use raaft_relay::config::StoreLocation;
    match location {
        StoreLocation::Sqlite(path) => ["", "-wal", "-shm"]
            .into_iter()
            .map(|suffix| format!("{}{suffix}", path.display()))
            .filter(|file| {
                let bytes = std::fs::read(file).unwrap_or_default();
                bytes.windows(text.len()).any(|w| w.eq_ignore_ascii_case(text.as_bytes()))
            })
            .collect(),
        StoreLocation::Postgres(_) => {
            let mut found = Vec::new();
            // (table, column, whether it holds bytes)
            for (table, column, bytes) in [
                ("events", "body", true),
                ("events", "customer", true),
                ("events", "facts", false),
                ("attempts", "payload", true),
                ("attempts", "response", true),
                ("deliveries", "payload", false),
                ("flows", "customer", true),
                ("customer_histories", "customer", true),
            ] {
                let value = if bytes { format!("encode({column}, 'escape')") } else { column.to_owned() };
                let sql = format!("SELECT COUNT(*) FROM {table} WHERE strpos(lower({value}), lower('{text}')) > 0");
                if query_number(location, &sql).await.unwrap_or(0) > 0 {
                    found.push(format!("{table}.{column}"));
                }
            }
            found
        }
    }
}

/// Records one flow of `customer` through the store, as ingest does.
async fn remember(
    store: &dyn raaft_relay::store::Store,
    customer: &str,
    key: &str,
    outcome: &str,
    offer: Option<&str>,
) {
    use raaft_relay::history::Flow;
    let flow = Flow {
        event: String::new(),
        at: chrono::Utc::now(),
        outcome: Some(outcome.into()),
        plan: Some("Pro".into()),
        monthly: Some(49.0),
        currency: Some("USD".into()),
        motivator: None,
        offer: offer.map(str::to_owned),
    };
    let event = raaft_relay::store::NewEvent {
        dedup_key: key.into(),
        body: json!({"flowId": key}).to_string(),
        outcome: Some(outcome.into()),
        customer: Some(customer.into()),
        facts: None,
        flow: Some(raaft_relay::store::NewFlow::of(&flow)),
    };
    store.enqueue(event, Vec::new()).await.unwrap();
}

on_both_stores! {
    async fn a_customers_counts_are_one_row_whatever_the_number_of_flows_and_follow_retention(store) {
        let dir = tempfile::tempdir().unwrap();
        let location = store.fresh_location(dir.path()).await;
        let store = raaft_relay::store::open(&location, Duration::from_secs(3600), raaft_relay::store::Access::Serve).await.unwrap();
        remember(store.as_ref(), "cus_A", "k0", "saved", Some("30% off")).await;
        remember(store.as_ref(), "cus_A", "k1", "saved", None).await;
        for i in 2..25 {
            remember(store.as_ref(), "cus_A", &format!("k{i}"), if i % 2 == 0 { "canceled" } else { "aborted" }, None).await;
        }
        remember(store.as_ref(), "cus_B", "b0", "canceled", None).await;
        let a = store.history("cus_A", 20).await.unwrap();
        assert_eq!((a.flows, a.saved, a.canceled, a.recent.len()), (25, 2, 12, 20));
        assert_eq!(a.last_offer.as_ref().and_then(|f| f.offer.as_deref()), Some("30% off"));
        assert!(a.last_save.is_some() && a.last_save.as_ref().unwrap().offer.is_none(), "the latest save had no offer");
        assert!(a.recent.windows(2).all(|w| w[0].at >= w[1].at), "newest first");
        assert_eq!(store.history("nobody", 20).await.unwrap(), raaft_relay::history::EarlierFlows::default());
        // The two saves were long ago: retention takes them and the counts follow.
        execute(&location, "UPDATE flows SET received_at = received_at - 864000000 WHERE event_id IN (SELECT id FROM events WHERE dedup_key IN ('k0', 'k1')); \
                                UPDATE customer_histories SET first_seen = first_seen - 864000000 WHERE customer = (SELECT customer FROM flows WHERE event_id = (SELECT id FROM events WHERE dedup_key = 'k0'))").await;
        let day = Duration::from_secs(24 * 3600);
        store.prune(&raaft_relay::store::Retention { deliveries: day * 30, dedup_window: day, history: day, sessions: day }).await.unwrap();
        let a = store.history("cus_A", 100).await.unwrap();
        assert_eq!((a.flows, a.saved, a.canceled, a.recent.len()), (23, 0, 12, 23));
        assert_eq!((a.last_save, a.last_offer), (None, None));
        assert_eq!(store.history("cus_B", 20).await.unwrap().flows, 1);
        // Every flow gone: so is the customer's row.
        execute(&location, "UPDATE flows SET received_at = received_at - 864000000; UPDATE customer_histories SET first_seen = first_seen - 864000000").await;
        store.prune(&raaft_relay::store::Retention { deliveries: day * 30, dedup_window: day, history: day, sessions: day }).await.unwrap();
        assert_eq!(query_number(&location, "SELECT COUNT(*) FROM customer_histories").await, Some(0));
        assert_eq!(store.history("cus_A", 20).await.unwrap().flows, 0);
    }
}

on_both_stores! {
    async fn flows_of_one_customer_written_in_one_batch_are_all_counted(store) {
        let dir = tempfile::tempdir().unwrap();
        let location = store.fresh_location(dir.path()).await;
        let store = raaft_relay::store::open(&location, Duration::from_secs(3600), raaft_relay::store::Access::Serve).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..40 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let outcome = if i % 4 == 0 { "saved" } else { "canceled" };
                remember(store.as_ref(), "cus_A", &format!("k{i}"), outcome, (i % 4 == 0).then_some("30% off")).await;
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let a = store.history("cus_A", 100).await.unwrap();
        assert_eq!((a.flows, a.saved, a.canceled, a.recent.len()), (40, 10, 30, 40));
        assert_eq!(a.last_offer.and_then(|f| f.offer).as_deref(), Some("30% off"));
    }
}

on_both_stores! {
    async fn a_relay_back_after_the_catch_up_allowance_skips_the_old_windows_and_sends_the_last(store) {
        let (hook, founders) = (Receiver::start(Answer::new(200, "")).await, Receiver::start(Answer::new(200, "")).await);
        let cfg = history_config(
            &hook,
            &founders,
            "[history]\ncatch_up = \"24h\"\n[digests.daily]\nschedule = \"0 9 * * *\"\nto = [\"founders\"]\ntemplate = \"digest.json.hbs\"\nempty = \"send\"\n",
        );
        cfg.write_template("digest.json.hbs", r#"{"total": {{total}}, "start": "{{window.start}}", "end": "{{window.end}}"}"#);
        let app = spawn_app(cfg, &store).await;
        let loaded = std::sync::Arc::new(LoadedConfig::load(&app.config_path()).unwrap());
        let digest = loaded.digest("daily").unwrap();
        // The relay comes back three days and a half after its last window
        // (by an injected clock): the days past the allowance are skipped
        // in one claim, and the last day is sent.
        // On start, the last day's window (empty, sent all the same).
        founders.wait_for(1, Duration::from_secs(10)).await;
        let last = app.store.last_digest_window("daily").await.unwrap().expect("the first run claimed a window");
        let back = last.end + chrono::Duration::hours(84);
        let step = |now| raaft_relay::digest_scheduler::advance(app.store.as_ref(), &loaded, digest, now);
        assert_eq!(step(back).await.unwrap(), None, "a skip first");
        let skipped = app.store.last_digest_window("daily").await.unwrap().unwrap();
        assert_eq!((skipped.start, skipped.end, skipped.event_id.is_none()), (last.end, last.end + chrono::Duration::days(2), true));
        assert_eq!(step(back).await.unwrap(), None, "then the send");
        let sent = app.store.last_digest_window("daily").await.unwrap().unwrap();
        assert_eq!((sent.start, sent.end), (skipped.end, skipped.end + chrono::Duration::days(1)));
        assert!(sent.event_id.is_some());
        assert!(step(back).await.unwrap().is_some(), "then nothing until the next time");
        let got = founders.wait_for(2, Duration::from_secs(10)).await;
        let body: Value = got.last().unwrap().json();
        assert_eq!(body["end"], sent.end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    }
}
