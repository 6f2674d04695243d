//! What operators read from the store beside the queue itself: events
//! listed and shown, activity over a period and each destination's health
//! (the console's pages). Every read here follows an index: ids are ULIDs
//! that sort by creation time, so "the newest" and the next page are
//! ranges of a primary key; counts over a period read covering indexes
//! (events by receipt time and outcome, deliveries by status and change,
//! attempts by destination and time).

use super::Status;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;

/// Which events to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub outcome: Option<String>,
    /// A customer's history key.
    pub customer: Option<String>,
    /// `raaft` or `digest`.
    pub source: Option<String>,
    /// Only events older than this id (the next page).
    pub before: Option<String>,
    pub limit: usize,
}

/// One event, as listed.
#[derive(Debug, Clone, Serialize)]
pub struct EventSummary {
    pub id: String,
    pub received_at: DateTime<Utc>,
    pub outcome: Option<String>,
    pub customer: Option<String>,
    /// `raaft` for Raaft's events, `digest` for the digests the relay made.
    pub source: String,
    /// Deliveries made for it (0: no route matched).
    pub deliveries: u64,
}

/// One event with its body and facts.
#[derive(Debug, Clone, Serialize)]
pub struct EventDetail {
    #[serde(flatten)]
    pub summary: EventSummary,
    /// The event as received, with the relay's facts (`mrr`, `history`)
    /// beside its fields.
    pub event: Value,
}

/// Events and deliveries within a period.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Activity {
    /// Raaft's events by outcome (each of [`OUTCOMES`], then "other").
    pub events: Vec<(String, u64)>,
    /// Deliveries whose status last changed in the period, by status
    /// (delivered, went dead, queued or retried), from the status index.
    pub deliveries: Vec<(Status, u64)>,
}

impl Activity {
    pub fn events_total(&self) -> u64 {
        self.events.iter().map(|(_, n)| n).sum()
    }

    pub fn deliveries_with(&self, status: Status) -> u64 {
        self.deliveries.iter().filter(|(s, _)| *s == status).map(|(_, n)| n).sum()
    }
}

/// Raaft's outcomes, as the overview counts them.
pub const OUTCOMES: [&str; 4] = ["canceled", "saved", "aborted", "error"];

/// Counts the deliveries in the status bound to `param` whose status
/// changed within each of `periods`, in one pass over the status index.
pub fn deliveries_by_period_sql(periods: &[Duration], now: &str, param: &str, bytes: bool) -> String {
    let cast = if bytes { "::BIGINT" } else { "" };
    let sums: Vec<String> = periods
        .iter()
        .map(|p| format!("SUM(CASE WHEN updated_at >= {now} - {} THEN 1 ELSE 0 END){cast}", p.as_millis()))
        .collect();
    let longest = periods.iter().max().copied().unwrap_or_default().as_millis();
    format!("SELECT {} FROM deliveries WHERE status = {param} AND updated_at >= {now} - {longest}", sums.join(", "))
}

/// What the two statements above read, as one [`Activity`] per period:
/// `events` holds five counts per period ([`OUTCOMES`], then any other), `deliveries` one per period for
/// each status.
pub fn activities(periods: usize, events: &[i64], deliveries: &[(Status, Vec<i64>)]) -> Vec<Activity> {
    (0..periods)
        .map(|i| Activity {
            events: OUTCOMES
                .iter()
                .copied()
                .chain(["other"])
                .zip(events.iter().skip(i * 5))
                .map(|(o, n)| (o.to_owned(), (*n).max(0) as u64))
                .collect(),
            deliveries: deliveries.iter().map(|(s, n)| (*s, n.get(i).copied().unwrap_or(0).max(0) as u64)).collect(),
        })
        .collect()
}

/// A destination's attempts over the last day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DestinationHealth {
    pub destination: String,
    pub attempts_1h: u64,
    pub delivered_1h: u64,
    pub attempts_24h: u64,
    pub delivered_24h: u64,
    pub last_success: Option<DateTime<Utc>>,
    pub last_failure: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// Failed attempts since the last success (within the day).
    pub consecutive_failures: u64,
}

/// The period [`DestinationHealth`] covers.
pub const HEALTH_PERIOD: Duration = Duration::from_secs(24 * 3600);

/// The period's bounds at `now`: (a day ago, an hour ago), in ms.
pub fn health_bounds(now: DateTime<Utc>) -> (i64, i64) {
    let ms = now.timestamp_millis();
    (ms - HEALTH_PERIOD.as_millis() as i64, ms - 3_600_000)
}

/// A destination's health from its figures over the period: (attempts,
/// delivered, attempts in the last hour, delivered in the last hour, last
/// success and last failure in ms), the last failure's error and the
/// failures since the last success.
pub fn health(
    destination: &str,
    figures: (i64, i64, i64, i64, Option<i64>, Option<i64>),
    last_error: Option<String>,
    consecutive_failures: i64,
) -> DestinationHealth {
    let (attempts, delivered, attempts_1h, delivered_1h, success, failure) = figures;
    let count = |n: i64| n.max(0) as u64;
    let time = |ms: Option<i64>| ms.and_then(DateTime::from_timestamp_millis);
    DestinationHealth {
        destination: destination.to_owned(),
        attempts_1h: count(attempts_1h),
        delivered_1h: count(delivered_1h),
        attempts_24h: count(attempts),
        delivered_24h: count(delivered),
        last_success: time(success),
        last_failure: time(failure),
        last_error,
        consecutive_failures: count(consecutive_failures),
    }
}
