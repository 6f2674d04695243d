//! What operators read from the store beside the queue itself: events
//! listed and shown, activity over a period and each destination's health
//! (the console's pages). Every read here follows an index: ids are ULIDs
//! that sort by creation time, so "the newest" and the next page are
//! ranges of a primary key; counts over a period read covering indexes
//! (events by receipt time and outcome, deliveries by status and change,
//! attempts by destination and time).

use super::error::StoreError;
use super::ids::DeliveryId;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};
use serde_json::Value;
use std::time::Duration;

/// What operators read and do beside the queue: the CLI's, the admin
/// API's and the console's.
#[async_trait]
pub trait Inspect: Send + Sync + 'static {
    /// Pending and dead deliveries per destination.
    async fn destination_stats(&self) -> Result<Vec<DestinationStats>, StoreError>;

    async fn list(&self, filter: &ListFilter) -> Result<Vec<DeliverySummary>, StoreError>;

    async fn show(&self, id: &str) -> Result<Option<DeliveryDetail>, StoreError>;

    /// Requeues the given deliveries with a fresh attempt budget, at once,
    /// or after the attempt under way; returns the ones that exist.
    async fn replay(&self, ids: &[String]) -> Result<Vec<Replayed>, StoreError>;

    /// Requeues every dead delivery (of one destination); returns how many.
    async fn replay_dead(&self, destination: Option<&str>) -> Result<u64, StoreError>;

    /// Deletes dead deliveries last updated longer ago than `older_than`.
    async fn purge_dead(&self, older_than: Duration) -> Result<u64, StoreError>;

    /// Marks pending deliveries dead with `reason`, so they are not tried
    /// again (an attempt under way finishes, and is recorded without
    /// changing that); returns the ones it changed.
    async fn discard(&self, ids: &[String], reason: &str) -> Result<Vec<DeliveryId>, StoreError>;

    /// Raaft's events received, and deliveries whose status last changed,
    /// within each of the last `periods` (one pass over the longest).
    async fn activity(&self, periods: &[Duration]) -> Result<Vec<Activity>, StoreError>;

    /// Events, newest first.
    async fn list_events(&self, filter: &EventFilter) -> Result<Vec<EventSummary>, StoreError>;

    async fn event(&self, id: &str) -> Result<Option<EventDetail>, StoreError>;

    /// The attempts of each of `destinations` over
    /// [`HEALTH_PERIOD`], read from one index per destination.
    async fn destination_health(&self, destinations: &[String]) -> Result<Vec<DestinationHealth>, StoreError>;
}

/// What a replay did to one delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replayed {
    pub id: DeliveryId,
    /// An attempt was under way: the replay waits for it to finish instead
    /// of sending the message a second time beside it.
    pub after_attempt_under_way: bool,
}

/// A delivery's status as stored and listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Delivered,
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Delivered => "delivered",
            Status::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "pending" => Some(Status::Pending),
            "delivered" => Some(Status::Delivered),
            "dead" => Some(Status::Dead),
            _ => None,
        }
    }
}

/// Which deliveries to list.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<Status>,
    pub destination: Option<String>,
    /// Only deliveries created within this long.
    pub since: Option<Duration>,
    /// At most this many; 0 for all.
    pub limit: usize,
    /// Only deliveries of events with this outcome.
    pub outcome: Option<String>,
    /// Only deliveries of this customer's flows (a history key).
    pub customer: Option<String>,
    /// Only deliveries a route of this name asked for.
    pub route: Option<String>,
    /// Only deliveries of this event.
    pub event_id: Option<String>,
    /// Only deliveries older than this id (the next page).
    pub before: Option<String>,
}

/// One line of `deliveries list`.
#[derive(Debug, Clone, Serialize)]
pub struct DeliverySummary {
    pub id: DeliveryId,
    pub event_id: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub destination: String,
    pub routes: Vec<String>,
    pub outcome: Option<String>,
    pub customer: Option<String>,
    pub status: Status,
    /// Attempts made (the one under way included) since creation or the
    /// last replay.
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
}

/// One attempt, as shown.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptView {
    pub number: u32,
    pub at: DateTime<Utc>,
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    /// The receiver's bytes; JSON shows them as text (invalid sequences
    /// replaced), `deliveries show` with escapes.
    #[serde(serialize_with = "bytes_as_text")]
    pub response: Option<Vec<u8>>,
    pub error: Option<String>,
    #[serde(skip)]
    pub payload: Option<String>,
}

fn bytes_as_text<S: Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    bytes.as_deref().map(String::from_utf8_lossy).serialize(s)
}

/// Everything about one delivery, for `deliveries show`.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryDetail {
    #[serde(flatten)]
    pub summary: DeliverySummary,
    pub event: Value,
    /// What the relay computed at the event's receipt (`mrr`, `history`).
    pub facts: Value,
    /// The rendered payload of the last attempt.
    pub last_payload: Option<String>,
    pub attempt_log: Vec<AttemptView>,
}

/// What waits in the store for one destination.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DestinationStats {
    pub destination: String,
    pub pending: u64,
    /// Zero when nothing is pending.
    pub oldest_pending_age: Duration,
    pub dead: u64,
}

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

/// A destination's attempts over [`HEALTH_PERIOD`]: how many, how many
/// delivered, the same over the last hour, and the times (ms) of the last
/// success and the last failure.
pub type HealthFigures = (i64, i64, i64, i64, Option<i64>, Option<i64>);

/// A destination's health from its figures over the period: (attempts,
/// delivered, attempts in the last hour, delivered in the last hour, last
/// success and last failure in ms), the last failure's error and the
/// failures since the last success.
pub fn health(
    destination: &str,
    figures: HealthFigures,
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
