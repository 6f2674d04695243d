//! What the relay remembers of each customer: one compact [`Flow`] per
//! event received (routed or not), kept for `[history] retention`, and
//! what rules and templates read of it beside the event's own fields:
//! `mrr` ([`mrr`]) and `history` ([`History`]), both computed once, at
//! receipt, and stored with the event so that a retry or a replay renders
//! the same message. Pure: the store keeps the flows.

pub mod mrr;

use chrono::{DateTime, Datelike, Utc};
use mrr::Mrr;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// How many earlier flows `history.previous` lists.
pub const PREVIOUS_SHOWN: usize = 20;

/// Whose history an event belongs to: `customer.id`, else
/// `subscription.customer.id`, else the lower-cased `customer.email`.
/// `None` when the event names none of them (it has no history).
pub fn customer_key(event: &Value) -> Option<String> {
    let text = |path: &[&str]| {
        path.iter().try_fold(event, |v, k| v.get(k)).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
    };
    text(&["customer", "id"])
        .or_else(|| text(&["subscription", "customer", "id"]))
        .map(str::to_owned)
        .or_else(|| text(&["customer", "email"]).map(str::to_lowercase))
}

/// One cancellation flow of a customer, as the history keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flow {
    /// The event it was read from (set from the store's record).
    #[serde(skip)]
    pub event: String,
    /// When the relay received it (set from the store's record).
    #[serde(skip, default = "epoch")]
    pub at: DateTime<Utc>,
    pub outcome: Option<String>,
    pub plan: Option<String>,
    pub monthly: Option<f64>,
    pub currency: Option<String>,
    pub motivator: Option<String>,
    /// The offer accepted (`responseAccepted.name`), for saved outcomes.
    pub offer: Option<String>,
}

fn epoch() -> DateTime<Utc> {
    DateTime::UNIX_EPOCH
}

impl Flow {
    /// The flow `event` records, received at `at`.
    pub fn of(event_id: &str, event: &Value, mrr: Option<&Mrr>, at: DateTime<Utc>) -> Flow {
        let text =
            |path: &[&str]| path.iter().try_fold(event, |v, k| v.get(k)).and_then(Value::as_str).map(str::to_owned);
        let outcome = text(&["outcome"]);
        Flow {
            event: event_id.to_owned(),
            at,
            offer: text(&["responseAccepted", "name"]).filter(|_| outcome.as_deref() == Some("saved")),
            outcome,
            plan: text(&["subscription", "plan", "name"]),
            monthly: mrr.map(|m| m.monthly),
            currency: mrr.and_then(|m| m.currency.clone()),
            motivator: text(&["motivator"]),
        }
    }

    /// The stored form (everything but the event and the time, which the
    /// store keeps in columns of their own).
    pub fn record(&self) -> String {
        serde_json::to_string(self).expect("a flow serializes")
    }

    pub fn saved(&self) -> bool {
        self.outcome.as_deref() == Some("saved")
    }

    pub fn canceled(&self) -> bool {
        self.outcome.as_deref() == Some("canceled")
    }

    /// Reads a stored record back; a record that cannot be read keeps its
    /// time and loses its details.
    pub fn from_record(record: &str, at: DateTime<Utc>) -> Flow {
        let mut flow: Flow = serde_json::from_str(record).unwrap_or(Flow {
            event: String::new(),
            at,
            outcome: None,
            plan: None,
            monthly: None,
            currency: None,
            motivator: None,
            offer: None,
        });
        flow.at = at;
        flow
    }

    fn shown(&self) -> Value {
        json!({
            "at": self.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "outcome": self.outcome,
            "offer": self.offer,
            "plan": self.plan,
            "motivator": self.motivator,
            "monthly": self.monthly.map(mrr::amount_value),
            "currency": self.currency,
        })
    }
}

/// What the store keeps of a customer's earlier flows: counts over all of
/// them, read from one row whatever their number, and the newest few.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EarlierFlows {
    pub flows: u64,
    pub saved: u64,
    pub canceled: u64,
    /// The customer's first flow kept.
    pub first_seen: Option<DateTime<Utc>>,
    /// The latest flow that ended saved, and the latest with an offer
    /// accepted.
    pub last_save: Option<Flow>,
    pub last_offer: Option<Flow>,
    /// The newest flows, newest first (as many as were asked for).
    pub recent: Vec<Flow>,
}

impl EarlierFlows {
    /// The counts of `all` of a customer's flows, newest first.
    pub fn from_flows(all: Vec<Flow>) -> EarlierFlows {
        let is = |f: &Flow, outcome: &str| f.outcome.as_deref() == Some(outcome);
        EarlierFlows {
            flows: all.len() as u64,
            saved: all.iter().filter(|f| is(f, "saved")).count() as u64,
            canceled: all.iter().filter(|f| is(f, "canceled")).count() as u64,
            first_seen: all.last().map(|f| f.at),
            last_save: all.iter().find(|f| is(f, "saved")).cloned(),
            last_offer: all.iter().find(|f| f.offer.is_some()).cloned(),
            recent: all,
        }
    }
}

/// A customer's history as of one event's receipt.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    /// This event's receipt.
    pub now: DateTime<Utc>,
    /// The customer's flows before this one.
    pub earlier: EarlierFlows,
}

impl History {
    /// This customer's Nth flow, this one included.
    pub fn nth(&self) -> u64 {
        self.earlier.flows + 1
    }

    fn first_seen(&self) -> DateTime<Utc> {
        self.earlier.first_seen.unwrap_or(self.now)
    }

    /// One line for people: "3rd cancellation attempt in 12 months; saved
    /// in March 2026 with 30% off".
    pub fn summary(&self) -> String {
        let nth = self.nth();
        if nth == 1 {
            return "First cancellation attempt".into();
        }
        let days = (self.now - self.first_seen()).num_days();
        let span = match days {
            ..1 => "today".to_owned(),
            1 => "in 1 day".to_owned(),
            2..=44 => format!("in {days} days"),
            _ => format!("in {} months", ((days as f64) / 30.44).round() as i64),
        };
        let mut line = format!("{} cancellation attempt {span}", ordinal(nth));
        if let Some(save) = &self.earlier.last_save {
            let month = if save.at.year() == self.now.year() {
                save.at.format("%B").to_string()
            } else {
                save.at.format("%B %Y").to_string()
            };
            match &save.offer {
                Some(offer) => line.push_str(&format!("; saved in {month} with {offer}")),
                None => line.push_str(&format!("; saved in {month}")),
            }
        }
        line
    }

    /// The value rules and templates read as `history`.
    pub fn to_value(&self) -> Value {
        let previous: Vec<Value> = self.earlier.recent.iter().take(PREVIOUS_SHOWN).map(Flow::shown).collect();
        let last_offer = self
            .earlier
            .last_offer
            .as_ref()
            .map(|f| json!({"at": f.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true), "offer": f.offer}));
        json!({
            "nth": self.nth(),
            "first": self.nth() == 1,
            "first_seen": self.first_seen().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "previous": previous,
            "last": previous.first().cloned().unwrap_or(Value::Null),
            "saved_before": self.earlier.saved,
            "canceled_before": self.earlier.canceled,
            "last_offer": last_offer.unwrap_or(Value::Null),
            "summary": self.summary(),
        })
    }
}

/// "1st", "2nd", "3rd", "11th", "22nd".
pub fn ordinal(n: u64) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// What the relay adds to an event for rules and templates, as stored with
/// it: `{"mrr": ..., "history": ...}`.
pub fn facts(mrr: Option<&Mrr>, history: Option<&History>) -> Value {
    json!({
        "mrr": Mrr::to_value(mrr),
        "history": history.map(History::to_value).unwrap_or(Value::Null),
    })
}

/// The names the relay's facts take beside the event's own fields; a field
/// Raaft sends under one of these names is shadowed in rules and templates
/// (the stored event keeps it).
pub const FACT_NAMES: [&str; 2] = ["mrr", "history"];

/// `event` with the relay's facts beside its own fields. Facts stored with
/// the event are used as they are; an event stored before the relay kept
/// facts gets its `mrr` computed now and a null `history`.
pub fn with_facts(mut event: Value, stored: Option<&Value>) -> Value {
    let computed;
    let facts = match stored {
        Some(f) if f.is_object() => f,
        _ => {
            computed = facts(Mrr::of(&event).as_ref(), None);
            &computed
        }
    };
    if let Value::Object(map) = &mut event {
        for name in FACT_NAMES {
            map.insert(name.to_owned(), facts.get(name).cloned().unwrap_or(Value::Null));
        }
    }
    event
}

/// The facts of an event as it would be received now by a customer with
/// no earlier flow (for `check`, `render` and samples).
pub fn first_flow_facts(event: &Value, now: DateTime<Utc>) -> Value {
    let mrr = Mrr::of(event);
    let history = customer_key(event).map(|_| History { now, earlier: EarlierFlows::default() });
    facts(mrr.as_ref(), history.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap()
    }

    fn flow(outcome: &str, offer: Option<&str>, when: DateTime<Utc>) -> Flow {
        Flow {
            event: "e".into(),
            at: when,
            outcome: Some(outcome.into()),
            plan: Some("Pro".into()),
            monthly: Some(49.0),
            currency: Some("USD".into()),
            motivator: None,
            offer: offer.map(str::to_owned),
        }
    }

    #[test]
    fn the_customer_is_the_id_else_the_subscription_customer_else_the_email() {
        assert_eq!(customer_key(&json!({"customer": {"id": "c1", "email": "A@B.C"}})).as_deref(), Some("c1"));
        let sub = json!({"customer": {"email": "A@B.C"}, "subscription": {"customer": {"id": "c2"}}});
        assert_eq!(customer_key(&sub).as_deref(), Some("c2"));
        assert_eq!(
            customer_key(&json!({"customer": {"email": "Ana@Example.COM"}})).as_deref(),
            Some("ana@example.com")
        );
        assert_eq!(customer_key(&json!({"customer": {"id": "", "email": " "}})), None);
        assert_eq!(customer_key(&json!({"customer": {"id": 5}})), None);
        assert_eq!(customer_key(&json!({})), None);
    }

    #[test]
    fn history_counts_earlier_flows_and_reads_like_a_sentence() {
        let now = at(2026, 11, 20);
        let history = History {
            now,
            earlier: EarlierFlows::from_flows(vec![
                flow("saved", Some("30% off"), at(2026, 3, 10)),
                flow("canceled", None, at(2025, 12, 1)),
            ]),
        };
        let v = history.to_value();
        assert_eq!(v["nth"], 3);
        assert_eq!(v["first"], false);
        assert_eq!(v["saved_before"], 1);
        assert_eq!(v["canceled_before"], 1);
        assert_eq!(v["first_seen"], "2025-12-01T12:00:00Z");
        assert_eq!(v["previous"][0]["outcome"], "saved");
        assert_eq!(v["previous"][0]["offer"], "30% off");
        assert_eq!(v["previous"][0]["at"], "2026-03-10T12:00:00Z");
        assert_eq!(v["last"], v["previous"][0]);
        assert_eq!(v["last_offer"]["offer"], "30% off");
        assert_eq!(v["summary"], "3rd cancellation attempt in 12 months; saved in March with 30% off");
        let first = History { now, earlier: EarlierFlows::default() };
        assert_eq!(first.to_value()["nth"], 1);
        assert_eq!(first.to_value()["last"], Value::Null);
        assert_eq!(first.summary(), "First cancellation attempt");
        let last_year = History { now, earlier: EarlierFlows::from_flows(vec![flow("saved", None, at(2025, 11, 30))]) };
        assert_eq!(last_year.summary(), "2nd cancellation attempt in 12 months; saved in November 2025");
        let soon = History { now, earlier: EarlierFlows::from_flows(vec![flow("aborted", None, at(2026, 11, 17))]) };
        assert_eq!(soon.summary(), "2nd cancellation attempt in 3 days");
    }

    #[test]
    fn previous_lists_at_most_twenty_but_nth_counts_all() {
        let now = at(2026, 11, 20);
        let earlier: Vec<Flow> = (0..25).map(|i| flow("aborted", None, now - chrono::Duration::days(i + 1))).collect();
        let v = History { now, earlier: EarlierFlows::from_flows(earlier) }.to_value();
        assert_eq!(v["nth"], 26);
        assert_eq!(v["previous"].as_array().unwrap().len(), PREVIOUS_SHOWN);
    }

    #[test]
    fn ordinals() {
        let cases = [(1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"), (11, "11th"), (12, "12th"), (13, "13th")];
        for (n, s) in cases.into_iter().chain([(21, "21st"), (22, "22nd"), (101, "101st"), (111, "111th")]) {
            assert_eq!(ordinal(n), s);
        }
    }

    #[test]
    fn facts_sit_beside_the_event_and_shadow_fields_of_the_same_name() {
        let event = json!({"outcome": "canceled", "mrr": "raaft's own", "subscription": {"plan": {"amount": 10, "interval": "month"}}});
        let stored =
            facts(Mrr::of(&event).as_ref(), Some(&History { now: at(2026, 1, 1), earlier: EarlierFlows::default() }));
        let merged = with_facts(event.clone(), Some(&stored));
        assert_eq!(merged["mrr"]["monthly"], 10);
        assert_eq!(merged["history"]["nth"], 1);
        assert_eq!(merged["outcome"], "canceled");
        // Stored before facts were kept: mrr computed, no history.
        let legacy = with_facts(event, None);
        assert_eq!(legacy["mrr"]["monthly"], 10);
        assert_eq!(legacy["history"], Value::Null);
    }

    #[test]
    fn a_flow_round_trips_through_its_record() {
        let event: Value = serde_json::from_str(include_str!("../../config/events/saved-discount.json")).unwrap();
        let mrr = Mrr::of(&event);
        let f = Flow::of("ev1", &event, mrr.as_ref(), at(2026, 3, 10));
        assert_eq!(f.offer.as_deref(), Some("30% off for 3 months"));
        assert_eq!(f.plan.as_deref(), Some("current-plan-name"));
        assert_eq!(f.motivator.as_deref(), Some("Too expensive"));
        assert_eq!(Flow { event: "ev1".into(), ..Flow::from_record(&f.record(), f.at) }, f);
        assert_eq!(Flow::from_record("not json", f.at).at, f.at);
    }
}
