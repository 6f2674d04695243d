//! Routing: which destinations an event goes to. Every route whose
//! condition holds fires, in file order, until one with `stop = true`
//! matches; a destination reached through several routes gets the event
//! once. Pure: no I/O.

use crate::config::RouteConfig;
use crate::rules::{EvalContext, Verdict};
use serde_json::Value;

/// One destination an event must be delivered to, and the routes that
/// sent it there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub destination: String,
    pub routes: Vec<String>,
}

/// What happened to one route for one event, for `render`.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteReport {
    pub route: String,
    pub verdict: Verdict,
    /// True when an earlier route with `stop = true` ended evaluation.
    pub skipped: bool,
}

/// The routes of a config, ready to evaluate.
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<RouteConfig>,
    /// The top-level fields the CEL conditions read: all an event's
    /// evaluation converts.
    variables: std::sync::Arc<[String]>,
}

impl Router {
    pub fn new(routes: Vec<RouteConfig>) -> Self {
        let mut variables: Vec<String> = routes.iter().flat_map(|r| r.when.cel_variables().iter().cloned()).collect();
        variables.sort();
        variables.dedup();
        Router { routes, variables: variables.into() }
    }

    /// The destinations `event` goes to, in the order first reached.
    pub fn route(&self, event: &Value) -> Vec<Target> {
        self.route_with_matches(event).0
    }

    /// As [`Router::route`], with the names of the routes that matched.
    pub fn route_with_matches(&self, event: &Value) -> (Vec<Target>, Vec<&str>) {
        let mut ctx = EvalContext::reading(self.variables.clone());
        let mut targets: Vec<Target> = Vec::new();
        let mut matched = Vec::new();
        for route in &self.routes {
            if !route.when.matches(event, &mut ctx) {
                continue;
            }
            matched.push(route.name.as_str());
            add_targets(&mut targets, route);
            if route.stop {
                break;
            }
        }
        (targets, matched)
    }

    /// As [`Router::route`], with a report for every route.
    pub fn explain(&self, event: &Value) -> (Vec<Target>, Vec<RouteReport>) {
        let mut ctx = EvalContext::reading(self.variables.clone());
        let mut targets = Vec::new();
        let mut reports = Vec::new();
        let mut stopped = false;
        for route in &self.routes {
            if stopped {
                reports.push(RouteReport { route: route.name.clone(), verdict: Verdict::Matched, skipped: true });
                continue;
            }
            let verdict = route.when.explain(event, &mut ctx);
            if verdict == Verdict::Matched {
                add_targets(&mut targets, route);
                stopped = route.stop;
            }
            reports.push(RouteReport { route: route.name.clone(), verdict, skipped: false });
        }
        (targets, reports)
    }
}

fn add_targets(targets: &mut Vec<Target>, route: &RouteConfig) {
    for dest in &route.to {
        match targets.iter_mut().find(|t| &t.destination == dest) {
            Some(t) => {
                if !t.routes.contains(&route.name) {
                    t.routes.push(route.name.clone())
                }
            }
            None => targets.push(Target { destination: dest.clone(), routes: vec![route.name.clone()] }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Condition;
    use serde_json::json;

    fn route(name: &str, when: &str, to: &[&str], stop: bool) -> RouteConfig {
        RouteConfig {
            name: name.into(),
            when: if when.is_empty() { Condition::Always } else { Condition::cel(when).unwrap() },
            to: to.iter().map(|s| s.to_string()).collect(),
            stop,
            line: None,
        }
    }

    fn dests(targets: &[Target]) -> Vec<&str> {
        targets.iter().map(|t| t.destination.as_str()).collect()
    }

    #[test]
    fn every_matching_route_fires_in_order_and_destinations_are_deduplicated() {
        let router = Router::new(vec![
            route("cancellations", "outcome == 'canceled'", &["churn"], false),
            route("big", "outcome == 'canceled' && subscription.plan.amount >= 100", &["founders", "churn"], false),
            route("saved", "outcome == 'saved'", &["wins"], false),
            route("everything", "", &["archive"], false),
        ]);
        let e = json!({"outcome": "canceled", "subscription": {"plan": {"amount": 1200}}});
        let targets = router.route(&e);
        assert_eq!(dests(&targets), vec!["churn", "founders", "archive"]);
        assert_eq!(targets[0].routes, vec!["cancellations", "big"]);
        let small = json!({"outcome": "canceled", "subscription": {"plan": {"amount": 10}}});
        assert_eq!(dests(&router.route(&small)), vec!["churn", "archive"]);
    }

    #[test]
    fn stop_ends_evaluation_only_when_its_route_matches() {
        let router = Router::new(vec![
            route("test-accounts", "customer.email.endsWith('@example.test')", &["devnull"], true),
            route("saved", "outcome == 'saved'", &["wins"], true),
            route("all", "", &["archive"], false),
        ]);
        let test_account = json!({"outcome": "saved", "customer": {"email": "a@example.test"}});
        assert_eq!(dests(&router.route(&test_account)), vec!["devnull"]);
        assert_eq!(dests(&router.route(&json!({"outcome": "saved"}))), vec!["wins"]);
        assert_eq!(dests(&router.route(&json!({"outcome": "aborted"}))), vec!["archive"]);
    }

    #[test]
    fn unmatched_events_route_nowhere() {
        let router = Router::new(vec![route("saved", "outcome == 'saved'", &["wins"], false)]);
        assert!(router.route(&json!({"outcome": "error"})).is_empty());
        assert!(router.route(&json!({})).is_empty());
    }

    #[test]
    fn conditions_see_every_field_they_name_and_only_those_are_converted() {
        let router = Router::new(vec![
            route("offer-seen", "path.exists(p, p.stepType == 'offer') && event.outcome == 'canceled'", &["a"], false),
            route("has-email", "has(customer.email) && history.nth >= 2", &["b"], false),
            route("table", "", &["c"], false),
        ]);
        // A comprehension's own name (`p`) is listed too; no field has it.
        assert_eq!(&*router.variables, ["customer", "event", "history", "p", "path"].map(String::from).as_slice());
        let e = json!({"outcome": "canceled", "path": [{"stepType": "offer"}], "customer": {"email": "a@b.c"}, "history": {"nth": 2}});
        assert_eq!(dests(&router.route(&e)), vec!["a", "b", "c"]);
        let (_, reports) = router.explain(&json!({"outcome": "saved", "path": []}));
        assert!(matches!(&reports[0].verdict, Verdict::NotMatched { .. }));
    }

    #[test]
    fn explain_reports_every_route() {
        let router = Router::new(vec![
            route("saved", "outcome == 'saved'", &["wins"], true),
            route("all", "", &["archive"], false),
        ]);
        let (targets, reports) = router.explain(&json!({"outcome": "saved"}));
        assert_eq!(dests(&targets), vec!["wins"]);
        assert_eq!(reports.len(), 2);
        assert!(reports[1].skipped);
        let (_, reports) = router.explain(&json!({"outcome": "canceled"}));
        assert!(matches!(&reports[0].verdict, Verdict::NotMatched { saw, .. } if saw == "outcome = \"canceled\""));
    }
}
