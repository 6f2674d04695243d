//! What a digest says about a window: counts by outcome, the save rate,
//! revenue saved and lost per currency, motivators and offers against the
//! window before, and the feedback worth reading. Pure: the events come
//! in, the template context comes out.

use crate::history::mrr::{amount_value, round_cents, Mrr};
use crate::schedule::Window;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// How many feedback quotes a digest carries.
pub const QUOTES: usize = 5;

/// The outcomes a digest counts, in the order it shows them.
pub const OUTCOMES: [&str; 4] = ["canceled", "saved", "aborted", "error"];

/// The figures of one window's events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    pub outcomes: BTreeMap<&'static str, u64>,
    pub total: u64,
    /// Per currency (`None`: a plan without one): (saved, lost).
    pub revenue: BTreeMap<Option<String>, (f64, f64)>,
    pub motivators: BTreeMap<String, u64>,
    pub offers: BTreeMap<String, u64>,
}

impl Figures {
    pub fn of<'a>(events: impl IntoIterator<Item = &'a Value>) -> Figures {
        let mut f = Figures::default();
        for name in OUTCOMES {
            f.outcomes.insert(name, 0);
        }
        for event in events {
            f.total += 1;
            let outcome = event.get("outcome").and_then(Value::as_str);
            if let Some(slot) = OUTCOMES.iter().find(|o| Some(**o) == outcome) {
                *f.outcomes.entry(slot).or_default() += 1;
            }
            let mrr = event.get("mrr").and_then(Mrr::from_value);
            if let Some(m) = &mrr {
                let (saved, lost) = match outcome {
                    Some("saved") => (m.retained, None),
                    Some("canceled") => (None, Some(m.monthly)),
                    _ => (None, None),
                };
                if saved.is_some() || lost.is_some() {
                    let entry = f.revenue.entry(m.currency.clone()).or_default();
                    entry.0 = round_cents(entry.0 + saved.unwrap_or(0.0));
                    entry.1 = round_cents(entry.1 + lost.unwrap_or(0.0));
                }
            }
            if let Some(m) = text(event, &["motivator"]) {
                *f.motivators.entry(m.to_owned()).or_default() += 1;
            }
            if outcome == Some("saved") {
                if let Some(o) = text(event, &["responseAccepted", "name"]) {
                    *f.offers.entry(o.to_owned()).or_default() += 1;
                }
            }
        }
        f
    }

    /// saved ÷ (saved + canceled), `None` when both are 0.
    pub fn save_rate(&self) -> Option<f64> {
        let saved = self.outcomes.get("saved").copied().unwrap_or(0);
        let canceled = self.outcomes.get("canceled").copied().unwrap_or(0);
        (saved + canceled > 0).then(|| saved as f64 / (saved + canceled) as f64)
    }

    fn summary(&self, window: Window) -> Value {
        let revenue: Vec<Value> = self
            .revenue
            .iter()
            .map(|(currency, (saved, lost))| {
                json!({"currency": currency, "saved": amount_value(*saved), "lost": amount_value(*lost)})
            })
            .collect();
        json!({
            "window": window_value(window),
            "outcomes": self.outcomes,
            "total": self.total,
            "save_rate": self.save_rate().map(|r| amount_value((r * 10_000.0).round() / 10_000.0)),
            "revenue": revenue,
        })
    }
}

fn text<'a>(event: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(event, |v, k| v.get(k)).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
}

fn window_value(w: Window) -> Value {
    let rfc = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    json!({"start": rfc(w.start), "end": rfc(w.end)})
}

/// Names by count, most frequent first (then by name), with the count of
/// the window before.
fn ranked(now: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>) -> Vec<Value> {
    let mut names: Vec<(&String, u64)> = now.iter().map(|(n, c)| (n, *c)).collect();
    names.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    names
        .into_iter()
        .map(|(name, count)| json!({"name": name, "count": count, "previous": before.get(name).copied().unwrap_or(0)}))
        .collect()
}

/// The quotes a digest carries: events with feedback, largest monthly
/// value first (unknown last), then in the order received.
fn quotes<'a>(events: &[&'a Value]) -> Vec<&'a Value> {
    let mut with_feedback: Vec<(usize, &Value)> =
        events.iter().copied().enumerate().filter(|(_, e)| text(e, &["feedback"]).is_some()).collect();
    let monthly = |e: &Value| e.get("mrr").and_then(Mrr::from_value).map(|m| m.monthly);
    with_feedback.sort_by(|(i, a), (j, b)| {
        monthly(b).partial_cmp(&monthly(a)).unwrap_or(std::cmp::Ordering::Equal).then(i.cmp(j))
    });
    with_feedback.into_iter().take(QUOTES).map(|(_, e)| e).collect()
}

/// The template context of a digest for `window`, from the events it
/// counts and those the window before counted.
pub fn context(
    name: &str,
    timezone: &str,
    window: Window,
    previous: Window,
    events: &[&Value],
    before: &[&Value],
) -> Value {
    let now = Figures::of(events.iter().copied());
    let then = Figures::of(before.iter().copied());
    let quoted = quotes(events);
    let feedback: Vec<Value> = quoted
        .iter()
        .map(|e| {
            let mrr = e.get("mrr").and_then(Mrr::from_value);
            json!({
                "text": text(e, &["feedback"]),
                "customer": text(e, &["customer", "name"]).or_else(|| text(e, &["customer", "email"])),
                "customer_id": crate::history::customer_key(e),
                "email": text(e, &["customer", "email"]).or_else(|| text(e, &["subscription", "customer", "email"])),
                "outcome": text(e, &["outcome"]),
                "plan": text(e, &["subscription", "plan", "name"]),
                "monthly": mrr.as_ref().map(|m| amount_value(m.monthly)),
                "currency": mrr.and_then(|m| m.currency),
            })
        })
        .collect();
    let mut context = now.summary(window);
    let map = context.as_object_mut().expect("a summary is an object");
    map.insert("digest".into(), json!(name));
    map.insert("timezone".into(), json!(timezone));
    map.insert("previous".into(), then.summary(previous));
    map.insert("motivators".into(), json!(ranked(&now.motivators, &then.motivators)));
    map.insert("offers".into(), json!(ranked(&now.offers, &then.offers)));
    map.insert("more".into(), json!(now.total - quoted.len() as u64));
    map.insert("feedback".into(), json!(feedback));
    context
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn event(outcome: &str, amount: f64, interval: &str, currency: &str, motivator: &str, feedback: &str) -> Value {
        let mut e = json!({
            "outcome": outcome,
            "customer": {"name": format!("{outcome}-{amount}")},
            "subscription": {"plan": {"amount": amount, "interval": interval, "currency": currency, "name": "Pro"}},
            "motivator": motivator,
            "feedback": feedback,
        });
        if outcome == "saved" {
            e["responseAccepted"] = json!({"name": "30% off", "type": "discount"});
        }
        let mrr = Mrr::of(&e);
        crate::history::with_facts(e, Some(&crate::history::facts(mrr.as_ref(), None)))
    }

    fn window(day: u32) -> Window {
        Window {
            start: chrono::Utc.with_ymd_and_hms(2026, 7, day, 9, 0, 0).unwrap(),
            end: chrono::Utc.with_ymd_and_hms(2026, 7, day + 1, 9, 0, 0).unwrap(),
        }
    }

    /// A window worked out by hand: 3 canceled (USD 49/month, USD 1 200/year,
    /// EUR 20/month), 2 saved (USD 10/month twice), 1 aborted, 1 error,
    /// one without a plan.
    #[test]
    fn figures_match_a_hand_computed_window() {
        let events = [
            event("canceled", 49.0, "month", "usd", "Too expensive", "Too pricey for us"),
            event("canceled", 1200.0, "year", "usd", "Missing features", "No HubSpot integration"),
            event("canceled", 20.0, "month", "eur", "Too expensive", ""),
            event("saved", 10.0, "month", "usd", "Too expensive", "Fine, I'll stay"),
            event("saved", 10.0, "month", "usd", "Missing features", ""),
            event("aborted", 10.0, "month", "usd", "", "Just looking"),
            event("error", 10.0, "month", "usd", "", ""),
            json!({"outcome": "canceled", "mrr": null, "feedback": "no plan at all"}),
        ];
        let before = [
            event("canceled", 49.0, "month", "usd", "Too expensive", ""),
            event("saved", 5.0, "week", "usd", "Bugs", ""),
        ];
        let refs: Vec<&Value> = events.iter().collect();
        let before_refs: Vec<&Value> = before.iter().collect();
        let c = context("daily", "UTC", window(15), window(14), &refs, &before_refs);
        assert_eq!(c["window"], json!({"start": "2026-07-15T09:00:00Z", "end": "2026-07-16T09:00:00Z"}));
        assert_eq!(c["outcomes"], json!({"aborted": 1, "canceled": 4, "error": 1, "saved": 2}));
        assert_eq!(c["total"], 8);
        // 2 saved of 6 saved or canceled.
        assert_eq!(c["save_rate"], json!(0.3333));
        // USD lost: 49 + 100; saved: 10 + 10. EUR lost 20. Never added together.
        assert_eq!(
            c["revenue"],
            json!([{"currency": "EUR", "saved": 0, "lost": 20}, {"currency": "USD", "saved": 20, "lost": 149}])
        );
        assert_eq!(
            c["motivators"],
            json!([
                {"name": "Too expensive", "count": 3, "previous": 1},
                {"name": "Missing features", "count": 2, "previous": 0}
            ])
        );
        assert_eq!(c["offers"], json!([{"name": "30% off", "count": 2, "previous": 1}]));
        // Largest monthly value first; unknown last; blank feedback skipped.
        let quoted: Vec<&str> = c["feedback"].as_array().unwrap().iter().map(|q| q["text"].as_str().unwrap()).collect();
        assert_eq!(
            quoted,
            ["No HubSpot integration", "Too pricey for us", "Fine, I'll stay", "Just looking", "no plan at all"]
        );
        assert_eq!(c["feedback"][0]["customer"], "canceled-1200");
        assert_eq!(c["feedback"][0]["monthly"], 100);
        assert_eq!(c["feedback"][0]["outcome"], "canceled");
        assert_eq!(c["more"], 3);
        assert_eq!(c["previous"]["total"], 2);
        assert_eq!(c["previous"]["save_rate"], json!(0.5));
        // 5 a week is 21.67 a month: saved by the discount.
        assert_eq!(c["previous"]["revenue"], json!([{"currency": "USD", "saved": 21.67, "lost": 49}]));
        assert_eq!(c["previous"]["window"]["start"], "2026-07-14T09:00:00Z");
    }

    #[test]
    fn an_empty_window_has_no_save_rate() {
        let c = context("daily", "UTC", window(15), window(14), &[], &[]);
        assert_eq!(c["total"], 0);
        assert_eq!(c["save_rate"], Value::Null);
        assert_eq!(c["revenue"], json!([]));
        assert_eq!(c["outcomes"]["canceled"], 0);
        assert_eq!(c["more"], 0);
    }
}
