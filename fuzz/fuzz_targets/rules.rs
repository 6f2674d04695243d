//! The rule evaluator: the first line is a CEL condition, the rest an
//! event. Compiling any expression and evaluating it (and the table rules)
//! against any event answers, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use raaft_relay::config::RouteConfig;
use raaft_relay::event::Event;
use raaft_relay::routing::Router;
use raaft_relay::rules::Condition;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (source, body) = text.split_once('\n').unwrap_or((text, "{}"));
    let Ok(event) = Event::parse(body.as_bytes()) else { return };
    let table: toml::Table =
        toml::from_str("outcome = \"canceled\"\n\"subscription.plan.interval\" = \"month\"").unwrap();
    let mut routes = vec![RouteConfig {
        name: "table".into(),
        when: Condition::table(&table).unwrap(),
        to: vec!["out".into()],
        stop: false,
        line: None,
    }];
    if let Ok(when) = Condition::cel(source) {
        routes.push(RouteConfig { name: "cel".into(), when, to: vec!["out".into()], stop: false, line: None });
    }
    let router = Router::new(routes);
    let _ = router.route(&event.raw);
    let _ = router.explain(&event.raw);
});
