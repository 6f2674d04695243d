//! Monthly recurring revenue: what one event's subscription is worth per
//! month, computed once at receipt from the plan Raaft sends, and never
//! guessed. A missing or negative amount, a missing or unknown interval or
//! a bad interval count gives no MRR at all (null in rules and templates),
//! never zero.

use serde_json::{json, Value};

/// What an event's subscription is worth per month.
#[derive(Debug, Clone, PartialEq)]
pub struct Mrr {
    /// The current plan's amount normalised to a month.
    pub monthly: f64,
    /// The plan's currency as an upper-case code, when Raaft gives one.
    pub currency: Option<String>,
    /// For a saved outcome: the monthly value of the plan the customer
    /// stays on (the accepted plan of a plan change, else the current one).
    /// `None` for other outcomes, and when the accepted plan's value is
    /// unknown or in another currency.
    pub retained: Option<f64>,
}

impl Mrr {
    /// The MRR of `event`, or `None` when its plan does not say.
    pub fn of(event: &Value) -> Option<Mrr> {
        let subscription = event.get("subscription")?;
        let plan = subscription.get("plan")?;
        let monthly = plan_monthly(plan)?;
        let currency = currency_of(plan).or_else(|| currency_of(subscription));
        let retained = match event.get("outcome").and_then(Value::as_str) {
            Some("saved") => retained(event, monthly, currency.as_deref()),
            _ => None,
        };
        Some(Mrr { monthly, currency, retained })
    }

    /// The value rules and templates read as `mrr`.
    pub fn to_value(mrr: Option<&Mrr>) -> Value {
        match mrr {
            None => Value::Null,
            Some(m) => json!({
                "monthly": amount_value(m.monthly),
                "currency": m.currency,
                "retained": m.retained.map(amount_value),
            }),
        }
    }

    /// Reads back what [`Mrr::to_value`] wrote.
    pub fn from_value(value: &Value) -> Option<Mrr> {
        Some(Mrr {
            monthly: value.get("monthly")?.as_f64()?,
            currency: value.get("currency").and_then(Value::as_str).map(str::to_owned),
            retained: value.get("retained").and_then(Value::as_f64),
        })
    }
}

/// The value of the plan a saved customer stays on.
fn retained(event: &Value, current: f64, currency: Option<&str>) -> Option<f64> {
    let accepted = event.get("responseAccepted").filter(|a| a.is_object());
    let changed_plan = accepted
        .filter(|a| a.get("type").and_then(Value::as_str) == Some("change-plans"))
        .and_then(|a| a.get("plan"))
        .filter(|p| p.is_object());
    match changed_plan {
        None => Some(current),
        Some(plan) => {
            let value = plan_monthly(plan)?;
            // An amount in another currency is not added to this one's.
            match (currency_of(plan), currency) {
                (Some(new), Some(old)) if new != old => None,
                _ => Some(value),
            }
        }
    }
}

/// A plan's amount per month: `amount` per `interval_count` `interval`s.
pub fn plan_monthly(plan: &Value) -> Option<f64> {
    let amount = plan.get("amount")?.as_f64().filter(|a| a.is_finite() && *a >= 0.0)?;
    let months = interval_months(plan.get("interval")?.as_str()?)?;
    let count = match plan.get("interval_count").or_else(|| plan.get("intervalCount")) {
        None | Some(Value::Null) => 1.0,
        Some(n) => n.as_f64().filter(|c| c.is_finite() && *c >= 1.0 && c.fract() == 0.0)?,
    };
    Some(round_cents(amount / (months * count)))
}

/// How many months one interval lasts: day, week, month and year, singular
/// or plural, any case ("daily" and the like are read too).
pub fn interval_months(interval: &str) -> Option<f64> {
    Some(match interval.trim().to_ascii_lowercase().as_str() {
        "day" | "days" | "daily" => 12.0 / 365.0,
        "week" | "weeks" | "weekly" => 12.0 / 52.0,
        "month" | "months" | "monthly" => 1.0,
        "year" | "years" | "yearly" | "annual" | "annually" => 12.0,
        _ => return None,
    })
}

fn currency_of(v: &Value) -> Option<String> {
    let code = v.get("currency")?.as_str()?.trim();
    (!code.is_empty()).then(|| code.to_ascii_uppercase())
}

/// Amounts are kept to the cent, so sums and comparisons in rules
/// (`mrr.monthly >= 100` for a 1 200 a year plan) come out as written.
pub fn round_cents(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// An amount as JSON: a whole number as an integer (so CEL compares it
/// with an integer literal), else a float.
pub fn amount_value(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        Value::from(x as i64)
    } else {
        serde_json::Number::from_f64(x).map(Value::Number).unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(outcome: &str, plan: Value) -> Value {
        json!({"outcome": outcome, "subscription": {"currency": "usd", "plan": plan}})
    }

    fn monthly(plan: Value) -> Option<f64> {
        Mrr::of(&event("canceled", plan)).map(|m| m.monthly)
    }

    #[test]
    fn every_interval_singular_and_plural_is_normalised_to_a_month() {
        let cases = [
            ("month", 10.0, None, Some(10.0)),
            ("months", 10.0, None, Some(10.0)),
            ("Month", 10.0, None, Some(10.0)),
            ("year", 1200.0, None, Some(100.0)),
            ("years", 120.0, None, Some(10.0)),
            ("week", 12.0, None, Some(52.0)),
            ("weeks", 3.0, None, Some(13.0)),
            ("day", 1.0, None, Some(30.42)),
            ("days", 2.0, None, Some(60.83)),
            ("month", 30.0, Some(json!(3)), Some(10.0)),
            ("year", 2400.0, Some(json!(2)), Some(100.0)),
            ("week", 24.0, Some(json!(2)), Some(52.0)),
            ("month", 0.0, None, Some(0.0)),
            ("fortnight", 10.0, None, None),
            ("", 10.0, None, None),
            ("month", 10.0, Some(json!(0)), None),
            ("month", 10.0, Some(json!(-1)), None),
            ("month", 10.0, Some(json!(1.5)), None),
            ("month", 10.0, Some(json!("3")), None),
            ("month", -5.0, None, None),
        ];
        for (interval, amount, count, expected) in cases {
            let mut plan = json!({"amount": amount, "interval": interval});
            if let Some(c) = &count {
                plan["interval_count"] = c.clone();
            }
            assert_eq!(monthly(plan), expected, "{amount} per {count:?} {interval}");
        }
        assert_eq!(monthly(json!({"amount": 90, "interval": "month", "intervalCount": 3})), Some(30.0));
    }

    #[test]
    fn a_missing_amount_or_interval_is_null_never_zero() {
        assert_eq!(monthly(json!({"interval": "month"})), None);
        assert_eq!(monthly(json!({"amount": 10})), None);
        assert_eq!(monthly(json!({"amount": "10", "interval": "month"})), None);
        assert_eq!(monthly(json!({"amount": null, "interval": "month"})), None);
        assert_eq!(Mrr::of(&json!({"outcome": "canceled"})), None);
        assert_eq!(Mrr::of(&json!({"subscription": {"plan": []}})), None);
        assert_eq!(Mrr::to_value(None), Value::Null);
    }

    #[test]
    fn currency_comes_from_the_plan_else_the_subscription() {
        let m = Mrr::of(&event("canceled", json!({"amount": 10, "interval": "month", "currency": "eur"}))).unwrap();
        assert_eq!(m.currency.as_deref(), Some("EUR"));
        let m = Mrr::of(&event("canceled", json!({"amount": 10, "interval": "month"}))).unwrap();
        assert_eq!(m.currency.as_deref(), Some("USD"));
        let m = Mrr::of(&json!({"subscription": {"plan": {"amount": 10, "interval": "month"}}})).unwrap();
        assert_eq!(m.currency, None);
    }

    #[test]
    fn retained_is_the_plan_the_saved_customer_stays_on() {
        let switch: Value = serde_json::from_str(include_str!("../../config/events/saved-switch-plan.json")).unwrap();
        let m = Mrr::of(&switch).unwrap();
        assert_eq!((m.monthly, m.retained), (10.0, Some(8.0)));
        let discount: Value = serde_json::from_str(include_str!("../../config/events/saved-discount.json")).unwrap();
        assert_eq!(Mrr::of(&discount).unwrap().retained, Some(10.0));
        let canceled: Value = serde_json::from_str(include_str!("../../config/events/canceled.json")).unwrap();
        assert_eq!(Mrr::of(&canceled).unwrap().retained, None);
        // An accepted plan in another currency, or of unknown value.
        let mut other = switch.clone();
        other["responseAccepted"]["plan"]["currency"] = json!("EUR");
        assert_eq!(Mrr::of(&other).unwrap().retained, None);
        let mut unknown = switch.clone();
        unknown["responseAccepted"]["plan"]["interval"] = json!("lifetime");
        assert_eq!(Mrr::of(&unknown).unwrap().retained, None);
        let mut annual = switch;
        annual["responseAccepted"]["plan"] = json!({"amount": 96, "interval": "years", "currency": "usd"});
        assert_eq!(Mrr::of(&annual).unwrap().retained, Some(8.0));
    }

    #[test]
    fn the_annual_sample_counts_by_its_monthly_value() {
        let annual: Value =
            serde_json::from_str(include_str!("../../config/events/canceled-annual-enterprise.json")).unwrap();
        let value = Mrr::to_value(Mrr::of(&annual).as_ref());
        assert_eq!(value, json!({"monthly": 100, "currency": "USD", "retained": null}));
        assert!(value["monthly"].is_i64());
        assert_eq!(Mrr::from_value(&value), Mrr::of(&annual));
    }
}
