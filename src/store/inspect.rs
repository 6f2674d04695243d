//! What operators read from the store beside the queue itself: events
//! listed and shown, activity over a period and each destination's health
//! (the console's pages). Every read here follows an index: ids are ULIDs
//! that sort by creation time, so "the newest" and "since" are ranges of a
//! primary key.

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
    /// Raaft's events by outcome ("" when it had none).
    pub events: Vec<(String, u64)>,
    /// Deliveries created in the period, by their status now.
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

/// The smallest id made at or after `at`: ids are ULIDs, so the records
/// made since `at` are those whose id is at least this.
pub fn first_id_at(at: DateTime<Utc>) -> String {
    let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    ulid::Ulid::from_parts(ms, 0).to_string().to_ascii_lowercase()
}

/// Folds rows of (destination, at in ms, delivered, error), newest first,
/// into each destination's health as of `now`.
pub fn health_of(rows: Vec<(String, i64, bool, Option<String>)>, now: DateTime<Utc>) -> Vec<DestinationHealth> {
    let hour_ago = now.timestamp_millis() - 3_600_000;
    let mut out: Vec<DestinationHealth> = Vec::new();
    for (destination, at, delivered, error) in rows {
        let i = match out.iter().position(|h| h.destination == destination) {
            Some(i) => i,
            None => {
                out.push(DestinationHealth { destination, ..Default::default() });
                out.len() - 1
            }
        };
        let h = &mut out[i];
        let when = DateTime::from_timestamp_millis(at).unwrap_or_default();
        h.attempts_24h += 1;
        h.delivered_24h += u64::from(delivered);
        if at >= hour_ago {
            h.attempts_1h += 1;
            h.delivered_1h += u64::from(delivered);
        }
        if delivered {
            h.last_success.get_or_insert(when);
        } else {
            if h.last_failure.is_none() {
                h.last_failure = Some(when);
                h.last_error = error;
            }
            if h.last_success.is_none() {
                h.consecutive_failures += 1;
            }
        }
    }
    out.sort_by(|a, b| a.destination.cmp(&b.destination));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_counts_the_hour_the_day_and_failures_since_the_last_success() {
        let now = DateTime::from_timestamp_millis(10_000_000).unwrap();
        let ms = now.timestamp_millis();
        let rows = vec![
            ("slack".to_owned(), ms - 1_000, false, Some("500 from receiver".to_owned())),
            ("slack".to_owned(), ms - 2_000, false, Some("timeout".to_owned())),
            ("slack".to_owned(), ms - 3_000, true, None),
            ("slack".to_owned(), ms - 4_000_000, true, None),
            ("discord".to_owned(), ms - 5_000, true, None),
        ];
        let health = health_of(rows, now);
        assert_eq!(health[0].destination, "discord");
        let slack = &health[1];
        assert_eq!((slack.attempts_1h, slack.delivered_1h, slack.attempts_24h, slack.delivered_24h), (3, 1, 4, 2));
        assert_eq!(slack.consecutive_failures, 2);
        assert_eq!(slack.last_error.as_deref(), Some("500 from receiver"));
        assert_eq!(slack.last_success, DateTime::from_timestamp_millis(ms - 3_000));
    }

    #[test]
    fn ids_made_since_a_time_sort_after_its_first_id() {
        let at = DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
        let made = ulid::Ulid::from_parts(1_700_000_000_001, 5).to_string().to_ascii_lowercase();
        let before = ulid::Ulid::from_parts(1_699_999_999_999, u128::MAX >> 48).to_string().to_ascii_lowercase();
        assert!(made >= first_id_at(at));
        assert!(before < first_id_at(at));
    }
}
