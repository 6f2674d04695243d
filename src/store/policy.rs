//! What both engines do the same way, as plain functions: how writes are
//! gathered into batches, which copy of an event a batch keeps, what an
//! attempt's outcome does to its delivery, and what is recorded of an
//! attempt whose full record cannot be stored.

use super::{AttemptRecord, DestinationStats, NextStep, Status};
use std::collections::HashSet;
use std::time::Duration;

/// How many writes one transaction takes at most: enough that a burst of
/// events costs a few commits, few enough that one transaction stays short.
pub const MAX_BATCH: usize = 512;

/// The writes of one batch: `first`, then whatever `next` has ready, up to
/// [`MAX_BATCH`]. Nothing waits for more: a lone write is committed at
/// once, and writes arriving during a commit make the next batch.
pub fn gather<T>(first: T, mut next: impl FnMut() -> Option<T>) -> Vec<T> {
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        match next() {
            Some(write) => batch.push(write),
            None => break,
        }
    }
    batch
}

/// For each key, whether it is the first with that key in the batch: Raaft
/// retrying at once sends one event twice, and only the first copy may be
/// recorded.
pub fn first_of_each_key<'a>(keys: impl IntoIterator<Item = &'a str>) -> Vec<bool> {
    let mut seen = HashSet::new();
    keys.into_iter().map(|key| seen.insert(key)).collect()
}

/// An upper bound on the ids of the flows a history `retention` prunes:
/// flows are found by their id (a ULID, which sorts by the relay's clock)
/// within a day past the cutoff, then chosen by their receipt time (the
/// store's clock).
pub fn flow_id_bound(retention: Duration) -> String {
    let cutoff = std::time::SystemTime::now()
        .checked_sub(retention)
        .and_then(|t| t.checked_add(Duration::from_secs(24 * 3600)))
        .unwrap_or(std::time::UNIX_EPOCH);
    let ms = cutoff.duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
    ulid::Ulid::from_parts(ms, 0).to_string().to_ascii_lowercase()
}

/// The idempotency key of a digest's event: one per digest and window.
pub fn digest_key(digest: &str, start: chrono::DateTime<chrono::Utc>) -> String {
    format!("digest/{digest}/{}", start.timestamp_millis())
}

/// A stored event (its body as received) with the facts stored beside it,
/// as rules and templates read it ([`crate::history::with_facts`]).
pub fn event_with_facts(body: &[u8], facts: Option<&str>) -> serde_json::Value {
    let event = serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
    let facts = facts.and_then(|f| serde_json::from_str(f).ok());
    crate::history::with_facts(event, facts.as_ref())
}

/// The facts of a stored event, as `deliveries show` prints them.
pub fn stored_facts(body: &[u8], facts: Option<&str>) -> serde_json::Value {
    let merged = event_with_facts(body, facts);
    serde_json::json!({
        "mrr": merged.get("mrr").cloned().unwrap_or_default(),
        "history": merged.get("history").cloned().unwrap_or_default(),
    })
}

/// What an attempt leaves its delivery in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AfterAttempt<'a> {
    pub status: Status,
    /// When the next attempt is due, counted from when the record is
    /// written (by the store's clock); `None` for a delivery that is done.
    pub retry_in: Option<Duration>,
    /// What `deliveries list` shows as the last error.
    pub last_error: Option<&'a str>,
}

/// What an attempt that ended in `state` does to its delivery.
pub fn after_attempt<'a>(state: &'a NextStep, attempt: &'a AttemptRecord) -> AfterAttempt<'a> {
    match state {
        NextStep::Delivered => AfterAttempt { status: Status::Delivered, retry_in: None, last_error: None },
        NextStep::RetryIn(delay) => {
            AfterAttempt { status: Status::Pending, retry_in: Some(*delay), last_error: attempt.error.as_deref() }
        }
        NextStep::Dead { reason } => {
            AfterAttempt { status: Status::Dead, retry_in: None, last_error: Some(reason.as_str()) }
        }
    }
}

/// The record kept of an attempt whose full record (payload, reply, error
/// text) cannot be stored: what happened, and why the rest is missing. It
/// holds nothing from outside, so it can always be written, and the
/// attempt still counts.
pub fn reduced(attempt: &AttemptRecord, why: &str) -> AttemptRecord {
    let what = match (&attempt.error, attempt.status) {
        (Some(_), Some(status)) => format!("failed with status {status}"),
        (Some(_), None) => "failed".to_owned(),
        (None, _) => "succeeded".to_owned(),
    };
    let why: String = why.chars().filter(|c| !c.is_control()).take(300).collect();
    AttemptRecord {
        at: attempt.at,
        status: attempt.status,
        latency: attempt.latency,
        response: None,
        error: Some(format!("the attempt {what}; its full record could not be stored: {why}")),
        payload: None,
    }
}

/// The state to record with a [`reduced`] attempt: the same, with the
/// reduced error as the reason a dead delivery shows.
pub fn reduced_state(state: &NextStep, reduced: &AttemptRecord) -> NextStep {
    match state {
        NextStep::Dead { .. } => NextStep::Dead { reason: reduced.error.clone().unwrap_or_default() },
        other => other.clone(),
    }
}

/// A duration in whole milliseconds, as the stores keep times.
pub fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A delivery's routes as one column: names cannot hold a comma (the
/// config refuses them).
pub fn join_routes(routes: &[String]) -> String {
    routes.join(",")
}

pub fn split_routes(column: &str) -> Vec<String> {
    column.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// Rows of (destination, status, count, age of the oldest in ms), one
/// entry per destination.
pub fn per_destination(rows: Vec<(String, String, i64, i64)>) -> Vec<DestinationStats> {
    let mut out: Vec<DestinationStats> = Vec::new();
    for (destination, status, n, oldest_ms) in rows {
        let entry = match out.iter().position(|s| s.destination == destination) {
            Some(i) => &mut out[i],
            None => {
                out.push(DestinationStats { destination, ..Default::default() });
                out.last_mut().expect("just pushed")
            }
        };
        let n = n.max(0) as u64;
        match Status::parse(&status) {
            Some(Status::Pending) => {
                entry.pending = n;
                entry.oldest_pending_age = Duration::from_millis(oldest_ms.max(0) as u64);
            }
            Some(Status::Dead) => entry.dead = n,
            _ => {}
        }
    }
    out
}

/// Recounts the customers whose first flow kept is older than the history
/// retention (`?1` / `$1`, in milliseconds), over the flows that stay:
/// run before those flows are deleted. One statement per engine, as their
/// clocks are written differently.
macro_rules! recount_histories {
    ($now:expr, $p:expr) => {
        concat!(
            "UPDATE customer_histories SET \
             flows = (SELECT COUNT(*) FROM flows f WHERE f.customer = customer_histories.customer AND f.received_at >= ",
            $now, " - ", $p, "), \
             saved = (SELECT COALESCE(SUM(f.saved), 0) FROM flows f WHERE f.customer = customer_histories.customer \
               AND f.received_at >= ", $now, " - ", $p, "), \
             canceled = (SELECT COALESCE(SUM(f.canceled), 0) FROM flows f WHERE f.customer = customer_histories.customer \
               AND f.received_at >= ", $now, " - ", $p, "), \
             first_seen = COALESCE((SELECT MIN(f.received_at) FROM flows f WHERE f.customer = customer_histories.customer \
               AND f.received_at >= ", $now, " - ", $p, "), first_seen), \
             last_save_at = (SELECT f.received_at FROM flows f WHERE f.customer = customer_histories.customer AND f.saved = 1 \
               AND f.received_at >= ", $now, " - ", $p, " ORDER BY f.received_at DESC LIMIT 1), \
             last_save = (SELECT f.record FROM flows f WHERE f.customer = customer_histories.customer AND f.saved = 1 \
               AND f.received_at >= ", $now, " - ", $p, " ORDER BY f.received_at DESC LIMIT 1), \
             last_offer_at = (SELECT f.received_at FROM flows f WHERE f.customer = customer_histories.customer AND f.offered = 1 \
               AND f.received_at >= ", $now, " - ", $p, " ORDER BY f.received_at DESC LIMIT 1), \
             last_offer = (SELECT f.record FROM flows f WHERE f.customer = customer_histories.customer AND f.offered = 1 \
               AND f.received_at >= ", $now, " - ", $p, " ORDER BY f.received_at DESC LIMIT 1) \
             WHERE first_seen < ", $now, " - ", $p
        )
    };
}

pub const RECOUNT_HISTORIES_SQLITE: &str = recount_histories!("CAST(unixepoch('subsec') * 1000 AS INTEGER)", "?1");
pub const RECOUNT_HISTORIES_POSTGRES: &str = recount_histories!("(EXTRACT(EPOCH FROM now()) * 1000)::BIGINT", "$1");

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn attempt(status: Option<u16>, error: Option<&str>) -> AttemptRecord {
        AttemptRecord {
            at: Utc::now(),
            status,
            latency: Duration::from_millis(12),
            response: Some(b"busy\0".to_vec()),
            error: error.map(str::to_owned),
            payload: Some("a\0b".into()),
        }
    }

    #[test]
    fn a_batch_takes_what_is_ready_up_to_the_limit() {
        let mut ready = 1..;
        assert_eq!(gather(0, || ready.next()).len(), MAX_BATCH);
        let mut none = std::iter::empty::<u32>();
        assert_eq!(gather(7, || none.next()), vec![7]);
        let mut three = [1, 2, 3].into_iter();
        assert_eq!(gather(0, || three.next()), vec![0, 1, 2, 3]);
    }

    #[test]
    fn the_first_copy_of_an_event_in_a_batch_wins() {
        assert_eq!(first_of_each_key(["a", "b", "a", "c", "b"]), vec![true, true, false, true, false]);
        assert!(first_of_each_key([]).is_empty());
    }

    #[test]
    fn an_attempt_outcome_decides_the_delivery_state() {
        let failed = attempt(Some(500), Some("HTTP 500"));
        let retry = NextStep::RetryIn(Duration::from_secs(3));
        assert_eq!(
            after_attempt(&retry, &failed),
            AfterAttempt {
                status: Status::Pending,
                retry_in: Some(Duration::from_secs(3)),
                last_error: Some("HTTP 500")
            }
        );
        let dead = NextStep::Dead { reason: "HTTP 404: gone".into() };
        assert_eq!(
            after_attempt(&dead, &failed),
            AfterAttempt { status: Status::Dead, retry_in: None, last_error: Some("HTTP 404: gone") }
        );
        let ok = attempt(Some(200), None);
        assert_eq!(
            after_attempt(&NextStep::Delivered, &ok),
            AfterAttempt { status: Status::Delivered, retry_in: None, last_error: None }
        );
    }

    #[test]
    fn a_reduced_record_keeps_the_outcome_and_nothing_from_outside() {
        let failed = attempt(Some(500), Some("HTTP 500: \0"));
        let reduced = reduced(&failed, "invalid byte sequence\0 for encoding \"UTF8\"");
        assert_eq!((reduced.status, reduced.latency, reduced.at), (Some(500), failed.latency, failed.at));
        assert_eq!((&reduced.response, &reduced.payload), (&None, &None));
        let error = reduced.error.clone().unwrap();
        assert_eq!(
            error,
            "the attempt failed with status 500; its full record could not be stored: invalid byte sequence for encoding \"UTF8\""
        );
        let dead = reduced_state(&NextStep::Dead { reason: "HTTP 500: \0".into() }, &reduced);
        assert_eq!(dead, NextStep::Dead { reason: error });
        let ok = super::reduced(&attempt(Some(200), None), "too big");
        assert!(ok.error.unwrap().starts_with("the attempt succeeded;"));
        assert_eq!(reduced_state(&NextStep::Delivered, &ok_record()), NextStep::Delivered);
    }

    fn ok_record() -> AttemptRecord {
        attempt(Some(200), None)
    }

    #[test]
    fn queue_figures_are_gathered_per_destination() {
        let rows = vec![
            ("churn".to_owned(), "pending".to_owned(), 3, 1500),
            ("wins".to_owned(), "dead".to_owned(), 1, 90_000),
            ("churn".to_owned(), "dead".to_owned(), 2, 5),
            ("wins".to_owned(), "pending".to_owned(), 1, -20),
        ];
        let stats = per_destination(rows);
        assert_eq!(stats.len(), 2);
        assert_eq!((stats[0].pending, stats[0].dead, stats[0].oldest_pending_age), (3, 2, Duration::from_millis(1500)));
        // A clock that stepped back never makes an age negative.
        assert_eq!((stats[1].pending, stats[1].dead, stats[1].oldest_pending_age), (1, 1, Duration::ZERO));
    }

    #[test]
    fn routes_round_trip_through_one_column() {
        let routes = vec!["cancellations".to_owned(), "big-accounts".to_owned()];
        assert_eq!(split_routes(&join_routes(&routes)), routes);
        assert!(split_routes("").is_empty());
    }
}
