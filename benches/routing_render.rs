//! Ingest, routing and rendering cost per event: parsing the body, a table
//! rule, a CEL rule, a text template and a JSON template, on the documented
//! Raaft example, with the allocator the binary uses; and what the
//! customer's history adds: working out `mrr` and `history` from 20
//! earlier flows, and routing and rendering with them.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use raaft_relay::config::RouteConfig;
use raaft_relay::event::Event;
use raaft_relay::history::{self, mrr::Mrr, EarlierFlows, Flow, History};
use raaft_relay::render::EventContext;
use raaft_relay::routing::Router;
use raaft_relay::rules::Condition;
use raaft_relay::LoadedConfig;
use std::path::Path;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn router(when: Condition) -> Router {
    Router::new(vec![RouteConfig { name: "saves".into(), when, to: vec!["out".into()], stop: false, line: None }])
}

fn loaded(dir: &Path) -> LoadedConfig {
    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    let config = format!(
        "templates_dir = \"{}\"\n[raaft]\ntokens = [\"t\"]\n[store]\nurl = \"sqlite://{}/bench.db\"\n\
         [destinations.text]\nkind = \"slack\"\nurl = \"https://hooks.slack.com/services/x\"\ntemplate = \"slack/saved.hbs\"\n\
         [destinations.json]\nkind = \"slack\"\nurl = \"https://hooks.slack.com/services/x\"\ntemplate = \"slack/canceled.json.hbs\"\n\
         [[routes]]\nname = \"all\"\nto = [\"text\", \"json\"]\n",
        templates.display(),
        dir.display()
    );
    let path = dir.join("relay.toml");
    std::fs::write(&path, config).unwrap();
    LoadedConfig::load(&path).unwrap()
}

fn benches(c: &mut Criterion) {
    let body = include_bytes!("../config/events/saved-switch-plan.json");
    let event: serde_json::Value = serde_json::from_slice(body).unwrap();
    let table: toml::Table = toml::from_str("outcome = \"saved\"").unwrap();
    let by_table = router(Condition::table(&table).unwrap());
    let by_cel = router(Condition::cel(r#"outcome == "saved" && subscription.plan.amount >= 5"#).unwrap());
    assert_eq!(by_table.route(&event).len(), 1);
    assert_eq!(by_cel.route(&event).len(), 1);
    let dir = tempfile::tempdir().unwrap();
    let loaded = loaded(dir.path());
    let text = loaded.destination("text").unwrap();
    let json = loaded.destination("json").unwrap();

    c.bench_function("parse_event", |b| b.iter(|| Event::parse(black_box(body)).unwrap()));
    c.bench_function("route_table", |b| b.iter(|| by_table.route(black_box(&event))));
    c.bench_function("route_cel", |b| b.iter(|| by_cel.route(black_box(&event))));
    // As an attempt renders: from the event it read, made into a context once.
    let context = EventContext::new(event.clone());
    c.bench_function("render_text", |b| b.iter(|| text.payload_in(black_box(&context)).unwrap()));
    c.bench_function("render_json", |b| b.iter(|| json.payload_in(black_box(&context)).unwrap()));

    // History: what ingest works out per event from the flows the store read.
    let now = chrono::Utc::now();
    let earlier: Vec<Flow> = (0..20)
        .map(|i| {
            let at = now - chrono::Duration::days(i + 1);
            let mrr = Mrr::of(&event);
            Flow { event: format!("e{i}"), ..Flow::of("", &event, mrr.as_ref(), at) }
        })
        .collect();
    let earlier = EarlierFlows::from_flows(earlier);
    c.bench_function("history_facts", |b| {
        b.iter(|| {
            let mrr = Mrr::of(black_box(&event));
            let history = History { now, earlier: black_box(&earlier).clone() };
            history::facts(mrr.as_ref(), Some(&history))
        })
    });
    let facts = history::facts(Mrr::of(&event).as_ref(), Some(&History { now, earlier }));
    let with_history = history::with_facts(event.clone(), Some(&facts));
    let by_history = router(Condition::cel(r#"history.nth >= 3 && mrr.monthly >= 5"#).unwrap());
    assert_eq!(by_history.route(&with_history).len(), 1);
    c.bench_function("route_cel_history", |b| b.iter(|| by_history.route(black_box(&with_history))));
    let context = EventContext::new(with_history.clone());
    c.bench_function("render_json_history", |b| b.iter(|| json.payload_in(black_box(&context)).unwrap()));
}

criterion_group!(routing_render, benches);
criterion_main!(routing_render);
