//! Template helpers: money, monthly, interval, date, html_to_text,
//! truncate, default, json and percent.
//! Comparisons (`eq`, `ne`, `gt`, `gte`, `lt`, `lte`, `and`, `or`, `not`,
//! `len`) are Handlebars built-ins. Every helper is total: a missing or
//! odd argument gives an empty or unchanged value, never an error, because
//! a message with a blank beats no message.

use handlebars::{Context, Handlebars, Helper, HelperDef, RenderContext, RenderError, ScopedJson};
use serde_json::Value;

/// Registers every relay helper on `registry`.
/// The helpers templates can call: the relay's own and Handlebars'
/// built-in ones.
pub const NAMES: [&str; 25] = [
    "money",
    "monthly",
    "interval",
    "date",
    "html_to_text",
    "truncate",
    "default",
    "json",
    "percent",
    "if",
    "unless",
    "each",
    "with",
    "lookup",
    "log",
    "eq",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "and",
    "or",
    "not",
    "len",
];

pub fn register(registry: &mut Handlebars<'static>) {
    registry.register_helper("money", Box::new(ValueHelper(money_helper)));
    registry.register_helper("monthly", Box::new(ValueHelper(monthly_helper)));
    registry.register_helper("interval", Box::new(ValueHelper(interval_helper)));
    registry.register_helper("date", Box::new(ValueHelper(date_helper)));
    registry.register_helper("html_to_text", Box::new(ValueHelper(html_to_text_helper)));
    registry.register_helper("truncate", Box::new(ValueHelper(truncate_helper)));
    registry.register_helper("default", Box::new(ValueHelper(default_helper)));
    registry.register_helper("json", Box::new(ValueHelper(json_helper)));
    registry.register_helper("percent", Box::new(ValueHelper(percent_helper)));
}

/// A fraction as a whole percentage: `{{percent 0.3333}}` is "33%".
fn percent_helper(args: &[&Value]) -> Value {
    match as_number(arg(args, 0)) {
        Some(x) if x.is_finite() => Value::String(format!("{}%", (x * 100.0).round() as i64)),
        _ => Value::String(String::new()),
    }
}

/// A helper that maps its arguments to a value, so it works both as
/// `{{money amount currency}}` and as a sub-expression.
struct ValueHelper(fn(&[&Value]) -> Value);

impl HelperDef for ValueHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        // A helper may be costly (`json` of the whole event): each call
        // counts against the render's time, whether it writes or not.
        super::budget::check().map_err(|why| handlebars::RenderErrorReason::NestedError(Box::new(why)))?;
        let args: Vec<&Value> = h.params().iter().map(|p| p.value()).collect();
        Ok(ScopedJson::Derived((self.0)(&args)))
    }
}

fn arg<'a>(args: &[&'a Value], i: usize) -> &'a Value {
    args.get(i).copied().unwrap_or(&Value::Null)
}

fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        other => Some(other.to_string()),
    }
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn money_helper(args: &[&Value]) -> Value {
    let Some(amount) = as_number(arg(args, 0)) else {
        return Value::String(String::new());
    };
    let currency = arg(args, 1).as_str().unwrap_or("");
    Value::String(money(amount, currency))
}

/// Formats an amount in its currency: `money(10.0, "USD")` is "$10.00".
///
/// Raaft's amounts look like plain numbers in the plan's currency, not
/// cents (its documented example is a 10 USD plan with `amount: 10`); this
/// is the one place to change should that turn out otherwise.
pub fn money(amount: f64, currency: &str) -> String {
    let code = currency.trim().to_ascii_uppercase();
    let parsed = iso_currency::Currency::from_code(&code);
    let decimals = parsed.and_then(|c| c.exponent()).unwrap_or(2) as usize;
    let digits = group_thousands(&format!("{:.*}", decimals, amount.abs()));
    let sign = if amount < 0.0 && amount.abs() >= 0.5 * 10f64.powi(-(decimals as i32)) { "-" } else { "" };
    match parsed {
        Some(c) => {
            let symbol = c.symbol().symbol;
            // Francs are written with their code, not the rare "₣".
            if symbol.chars().all(|ch| ch.is_ascii_alphabetic()) || symbol.is_empty() || symbol == "₣" {
                format!("{sign}{digits} {code}")
            } else {
                format!("{sign}{symbol}{digits}")
            }
        }
        None if code.is_empty() => format!("{sign}{digits}"),
        None => format!("{sign}{digits} {code}"),
    }
}

fn group_thousands(number: &str) -> String {
    let (int, frac) = match number.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (number, None),
    };
    let mut out = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if let Some(frac) = frac {
        out.push('.');
        out.push_str(frac);
    }
    out
}

fn monthly_helper(args: &[&Value]) -> Value {
    let Some(amount) = as_number(arg(args, 0)) else {
        return Value::Null;
    };
    let interval = arg(args, 1).as_str().unwrap_or("month");
    match monthly(amount, interval) {
        Some(m) => serde_json::Number::from_f64(m).map(Value::Number).unwrap_or(Value::Null),
        None => Value::Null,
    }
}

/// An amount per `interval` as an amount per month: what a cancellation
/// costs each month. The intervals `mrr` knows, plus "quarter"; no
/// interval reads as a month here (`mrr` itself is null then).
pub fn monthly(amount: f64, interval: &str) -> Option<f64> {
    let interval = interval.trim().to_ascii_lowercase();
    let months = match interval.as_str() {
        "" => 1.0,
        "quarter" | "quarters" | "quarterly" => 3.0,
        other => crate::history::mrr::interval_months(other)?,
    };
    Some(amount / months)
}

fn interval_helper(args: &[&Value]) -> Value {
    Value::String(as_text(arg(args, 0)).map(|i| interval(&i)).unwrap_or_default())
}

/// A billing interval as one word: Raaft writes both "month" and "months".
pub fn interval(raw: &str) -> String {
    let lower = raw.trim().to_ascii_lowercase();
    match lower.as_str() {
        "months" | "monthly" => "month".into(),
        "years" | "yearly" | "annual" | "annually" => "year".into(),
        "weeks" | "weekly" => "week".into(),
        "days" | "daily" => "day".into(),
        _ => lower,
    }
}

fn date_helper(args: &[&Value]) -> Value {
    let Some(input) = as_text(arg(args, 0)) else {
        return Value::String(String::new());
    };
    let format = arg(args, 1).as_str().unwrap_or("%b %-d, %Y %H:%M UTC");
    Value::String(date(&input, format))
}

/// Formats an ISO 8601 time in UTC with a strftime `format`; anything that
/// is not such a time comes back unchanged.
pub fn date(input: &str, format: &str) -> String {
    use std::fmt::Write;
    let Ok(time) = chrono::DateTime::parse_from_rfc3339(input.trim()) else {
        return input.to_owned();
    };
    let mut out = String::new();
    // An invalid format string makes chrono's Display fail.
    match write!(out, "{}", time.with_timezone(&chrono::Utc).format(format)) {
        Ok(()) => out,
        Err(_) => input.to_owned(),
    }
}

fn html_to_text_helper(args: &[&Value]) -> Value {
    Value::String(as_text(arg(args, 0)).map(|h| html_to_text(&h)).unwrap_or_default())
}

/// Plain text from an HTML fragment (Raaft's plan `bodyText`): tags
/// dropped, entities decoded, blank lines collapsed.
pub fn html_to_text(html: &str) -> String {
    let text = html2text::config::plain_no_decorate()
        .string_from_read(html.as_bytes(), 10_000)
        .unwrap_or_else(|_| html.to_owned());
    // Headings come back as "## Title"; a notification wants the words.
    let lines: Vec<&str> = text.lines().map(|l| l.trim_start_matches('#').trim()).filter(|l| !l.is_empty()).collect();
    lines.join("\n").replace('\u{a0}', " ")
}

fn truncate_helper(args: &[&Value]) -> Value {
    let text = as_text(arg(args, 0)).unwrap_or_default();
    match as_number(arg(args, 1)) {
        Some(n) if n >= 0.0 => Value::String(crate::text::truncate_chars(&text, n as usize)),
        _ => Value::String(text),
    }
}

fn default_helper(args: &[&Value]) -> Value {
    let value = arg(args, 0);
    let empty = match value {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    };
    if empty {
        arg(args, 1).clone()
    } else {
        value.clone()
    }
}

fn json_helper(args: &[&Value]) -> Value {
    Value::String(arg(args, 0).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn money_uses_symbols_and_exponents() {
        assert_eq!(money(10.0, "USD"), "$10.00");
        assert_eq!(money(8.0, "EUR"), "€8.00");
        assert_eq!(money(8.0, "eur"), "€8.00");
        assert_eq!(money(1200.0, "USD"), "$1,200.00");
        assert_eq!(money(1234567.5, "GBP"), "£1,234,567.50");
        assert_eq!(money(1200.0, "JPY"), "¥1,200");
        assert_eq!(money(9.99, "XYZ"), "9.99 XYZ");
        assert_eq!(money(5.0, ""), "5.00");
        assert_eq!(money(-5.0, "USD"), "-$5.00");
        assert_eq!(money(49.0, "CHF"), "49.00 CHF");
    }

    #[test]
    fn money_helper_is_total() {
        assert_eq!(money_helper(&[&json!(10), &json!("USD")]), json!("$10.00"));
        assert_eq!(money_helper(&[&json!("12.5"), &json!("USD")]), json!("$12.50"));
        assert_eq!(money_helper(&[&Value::Null, &json!("USD")]), json!(""));
        assert_eq!(money_helper(&[]), json!(""));
        assert_eq!(money_helper(&[&json!({"a": 1})]), json!(""));
    }

    #[test]
    fn monthly_normalises_intervals() {
        assert_eq!(monthly(1200.0, "year"), Some(100.0));
        assert_eq!(monthly(10.0, "months"), Some(10.0));
        assert_eq!(monthly(10.0, "fortnight"), None);
        assert_eq!(monthly_helper(&[&json!(1200), &json!("year")]), json!(100.0));
        assert_eq!(monthly_helper(&[&Value::Null, &json!("year")]), Value::Null);
        assert_eq!(money_helper(&[&monthly_helper(&[&json!(1200), &json!("year")]), &json!("USD")]), json!("$100.00"));
    }

    #[test]
    fn intervals_read_as_one_word() {
        assert_eq!(interval("months"), "month");
        assert_eq!(interval("Month"), "month");
        assert_eq!(interval("annual"), "year");
        assert_eq!(interval("quarter"), "quarter");
        assert_eq!(interval_helper(&[&Value::Null]), json!(""));
    }

    #[test]
    fn date_formats_iso_times() {
        assert_eq!(date("2024-10-07T08:10:07.558Z", "%b %-d, %Y %H:%M UTC"), "Oct 7, 2024 08:10 UTC");
        assert_eq!(date("2024-10-07T08:10:07.558Z", "%Y-%m-%d"), "2024-10-07");
        assert_eq!(date("2024-10-07T10:10:07+02:00", "%H:%M"), "08:10");
        assert_eq!(date("yesterday", "%Y"), "yesterday");
        assert_eq!(date("2024-10-07T08:10:07Z", "%Q"), "2024-10-07T08:10:07Z");
        assert_eq!(date_helper(&[&Value::Null]), json!(""));
    }

    #[test]
    fn html_to_text_reads_plan_descriptions() {
        let body = "<h6>Basic</h6><h6><br></h6><p><b>10 </b>active users</p><p><b>8</b>&nbsp;flows</p>";
        assert_eq!(html_to_text(body), "Basic\n10 active users\n8 flows");
        assert_eq!(html_to_text("plain & simple"), "plain & simple");
        assert_eq!(html_to_text_helper(&[&Value::Null]), json!(""));
    }

    #[test]
    fn truncate_and_default() {
        assert_eq!(truncate_helper(&[&json!("héllo wörld"), &json!(5)]), json!("héll…"));
        assert_eq!(truncate_helper(&[&json!("short"), &json!(50)]), json!("short"));
        assert_eq!(truncate_helper(&[&json!("no limit")]), json!("no limit"));
        assert_eq!(default_helper(&[&Value::Null, &json!("n/a")]), json!("n/a"));
        assert_eq!(default_helper(&[&json!(""), &json!("n/a")]), json!("n/a"));
        assert_eq!(default_helper(&[&json!("x"), &json!("n/a")]), json!("x"));
        assert_eq!(default_helper(&[&json!(0), &json!("n/a")]), json!(0));
    }
}
