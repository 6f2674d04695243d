//! The read side both engines share: the statements behind what operators
//! read (deliveries listed and shown, events listed and shown, each
//! destination's health), written once in a [`Dialect`], and their rows
//! read through [`Columns`]. The engines only run them; their write paths
//! stay their own, each built for its engine's strengths.

use super::dialect::{Arg, Columns, Dialect, Statement};
use super::inspect::{EventDetail, EventFilter, EventSummary, HealthFigures};
use super::{policy, AttemptView, DeliveryDetail, DeliverySummary, ListFilter, Status};
use serde_json::Value;

/// What [`summary`] reads, after the deliveries `d` and their events `e`.
const SUMMARY_COLUMNS: &str = "d.id, d.event_id, d.created_at, d.updated_at, d.destination, d.routes, \
     e.outcome, e.customer, d.status, d.attempts, d.next_attempt_at, d.last_error";

/// One line of a list of deliveries, from [`SUMMARY_COLUMNS`].
pub fn summary<R: Columns>(row: &R) -> Result<DeliverySummary, R::Error> {
    Ok(DeliverySummary {
        id: row.text(0)?,
        event_id: row.text(1)?,
        created_at: row.time(2)?,
        updated_at: row.time(3)?,
        destination: row.text(4)?,
        routes: policy::split_routes(&row.text(5)?),
        outcome: row.optional_text(6)?,
        customer: row.optional_text(7)?,
        status: Status::parse(&row.text(8)?).unwrap_or(Status::Pending),
        attempts: row.int(9)?.try_into().unwrap_or(u32::MAX),
        next_attempt_at: row.time(10)?,
        last_error: row.optional_text(11)?,
    })
}

/// Deliveries by `filter`, newest first. Only the filters given are in the
/// statement, so each can use its index: the id (a ULID) for the order and
/// the page, status for a status, flows' customer index for a customer,
/// the event's id for an event.
pub fn list(dialect: Dialect, filter: &ListFilter) -> Statement {
    let mut q = Statement::new(
        dialect,
        format!("SELECT {SUMMARY_COLUMNS} FROM deliveries d JOIN events e ON e.id = d.event_id WHERE 1 = 1"),
    );
    if let Some(status) = filter.status {
        q.push(" AND d.status = {}", Arg::Text(status.as_str().to_owned()));
    }
    if let Some(destination) = &filter.destination {
        q.push(" AND d.destination = {}", Arg::Text(destination.clone()));
    }
    if let Some(since) = filter.since {
        let clause = format!(" AND d.created_at >= {} - {{}}", dialect.now());
        q.push(&clause, Arg::Int(policy::millis(since)));
    }
    if let Some(outcome) = &filter.outcome {
        q.push(" AND e.outcome = {}", Arg::Kept(outcome.clone()));
    }
    if let Some(customer) = &filter.customer {
        q.push(" AND d.event_id IN (SELECT event_id FROM flows WHERE customer = {})", Arg::Kept(customer.clone()));
    }
    if let Some(route) = &filter.route {
        let clause = format!(" AND {}(',' || d.routes || ',', ',' || {{}} || ',') > 0", dialect.position());
        q.push(&clause, Arg::Text(route.clone()));
    }
    if let Some(event) = &filter.event_id {
        q.push(" AND d.event_id = {}", Arg::Text(event.to_ascii_lowercase()));
    }
    if let Some(before) = &filter.before {
        q.push(" AND d.id < {}", Arg::Text(before.to_ascii_lowercase()));
    }
    q.push(" ORDER BY d.id DESC LIMIT {}", Arg::Int(limit(filter.limit)));
    q
}

fn limit(limit: usize) -> i64 {
    if limit == 0 {
        i64::MAX
    } else {
        limit as i64
    }
}

/// One delivery with its event's body and facts ([`summary`], then the
/// body at 12 and the facts at 13).
pub fn show(dialect: Dialect, id: &str) -> Statement {
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS}, e.body, e.facts FROM deliveries d JOIN events e ON e.id = d.event_id WHERE d.id = "
    );
    let mut q = Statement::new(dialect, sql);
    q.push("{}", Arg::Text(id.to_ascii_lowercase()));
    q
}

/// The attempts of the delivery `id`, in order ([`attempt`]).
pub fn attempts(dialect: Dialect, id: &str) -> Statement {
    let mut q = Statement::new(
        dialect,
        "SELECT number, at, status_code, latency_ms, response, error, payload FROM attempts WHERE delivery_id = ",
    );
    q.push("{} ORDER BY at, id", Arg::Text(id.to_owned()));
    q
}

/// One attempt, from [`attempts`].
pub fn attempt<R: Columns>(row: &R) -> Result<AttemptView, R::Error> {
    Ok(AttemptView {
        number: row.int(0)?.try_into().unwrap_or(0),
        at: row.time(1)?,
        status_code: row.optional_int(2)?.and_then(|c| u16::try_from(c).ok()),
        latency_ms: row.int(3)?.max(0) as u64,
        response: row.optional_bytes(4)?,
        error: row.optional_text(5)?,
        payload: row.optional_text(6)?,
    })
}

/// `detail` with its attempts, the payload of the last one beside them.
/// Attempts are numbered in the order made, across replays (a replay
/// starts the count that decides retries again, not the delivery's
/// story), and the summary counts them all.
pub fn with_attempts(mut detail: DeliveryDetail, mut attempt_log: Vec<AttemptView>) -> DeliveryDetail {
    for (i, attempt) in attempt_log.iter_mut().enumerate() {
        attempt.number = u32::try_from(i + 1).unwrap_or(u32::MAX);
    }
    let made = u32::try_from(attempt_log.len()).unwrap_or(u32::MAX);
    detail.summary.attempts = detail.summary.attempts.max(made);
    DeliveryDetail { last_payload: attempt_log.iter().rev().find_map(|a| a.payload.clone()), attempt_log, ..detail }
}

/// A delivery from a row of [`show`], its attempts still to add
/// ([`with_attempts`]).
pub fn detail<R: Columns>(row: &R) -> Result<DeliveryDetail, R::Error> {
    let body = row.optional_bytes(12)?.unwrap_or_default();
    let facts = row.optional_text(13)?;
    Ok(DeliveryDetail {
        summary: summary(row)?,
        event: serde_json::from_slice(&body).unwrap_or(Value::Null),
        facts: policy::stored_facts(&body, facts.as_deref()),
        last_payload: None,
        attempt_log: Vec::new(),
    })
}

/// What [`event_summary`] reads, of the events `e`.
const EVENT_COLUMNS: &str = "e.id, e.received_at, e.outcome, e.customer, e.source, \
     (SELECT COUNT(*) FROM deliveries d WHERE d.event_id = e.id)";

/// One line of a list of events, from [`EVENT_COLUMNS`].
pub fn event_summary<R: Columns>(row: &R) -> Result<EventSummary, R::Error> {
    Ok(EventSummary {
        id: row.text(0)?,
        received_at: row.time(1)?,
        outcome: row.optional_text(2)?,
        customer: row.optional_text(3)?,
        source: row.text(4)?,
        deliveries: row.int(5)?.max(0) as u64,
    })
}

/// Events by `filter`, newest first, each filter by its index.
pub fn list_events(dialect: Dialect, filter: &EventFilter) -> Statement {
    let mut q = Statement::new(dialect, format!("SELECT {EVENT_COLUMNS} FROM events e WHERE 1 = 1"));
    if let Some(outcome) = &filter.outcome {
        q.push(" AND e.outcome = {}", Arg::Kept(outcome.clone()));
    }
    if let Some(customer) = &filter.customer {
        q.push(" AND e.id IN (SELECT event_id FROM flows WHERE customer = {})", Arg::Kept(customer.clone()));
    }
    if let Some(source) = &filter.source {
        q.push(" AND e.source = {}", Arg::Text(source.clone()));
    }
    if let Some(before) = &filter.before {
        q.push(" AND e.id < {}", Arg::Text(before.to_ascii_lowercase()));
    }
    q.push(" ORDER BY e.id DESC LIMIT {}", Arg::Int(limit(filter.limit)));
    q
}

/// One event with its body and facts ([`event_detail`]).
pub fn event(dialect: Dialect, id: &str) -> Statement {
    let mut q = Statement::new(dialect, format!("SELECT {EVENT_COLUMNS}, e.body, e.facts FROM events e WHERE e.id = "));
    q.push("{}", Arg::Text(id.to_ascii_lowercase()));
    q
}

/// An event from a row of [`event`], with the relay's facts beside its
/// fields.
pub fn event_detail<R: Columns>(row: &R) -> Result<EventDetail, R::Error> {
    let body = row.optional_bytes(6)?.unwrap_or_default();
    Ok(EventDetail {
        summary: event_summary(row)?,
        event: policy::event_with_facts(&body, row.optional_text(7)?.as_deref()),
    })
}

/// A destination's attempts since `day` (and since `hour`): how many,
/// how many delivered, the same since `hour`, the last success and the
/// last failure ([`crate::store::inspect::health`] reads them).
pub fn health_figures(dialect: Dialect, destination: &str, day: i64, hour: i64) -> Statement {
    let (d, h) = (dialect.parameter(2), dialect.parameter(3));
    let cast = dialect.integer_sum();
    let mut q = Statement::new(
        dialect,
        format!(
            "SELECT COUNT(*), COALESCE(SUM(delivered), 0){cast}, \
             COALESCE(SUM(CASE WHEN at >= {h} THEN 1 ELSE 0 END), 0){cast}, \
             COALESCE(SUM(CASE WHEN at >= {h} THEN delivered ELSE 0 END), 0){cast}, \
             MAX(CASE WHEN delivered = 1 THEN at END), MAX(CASE WHEN delivered = 0 THEN at END) \
             FROM attempts WHERE at >= {d} AND destination = "
        ),
    );
    q.push("{}", Arg::Text(destination.to_owned()));
    q.args.extend([Arg::Int(day), Arg::Int(hour)]);
    q
}

/// The figures of [`health_figures`].
pub fn health_row<R: Columns>(row: &R) -> Result<HealthFigures, R::Error> {
    Ok((row.int(0)?, row.int(1)?, row.int(2)?, row.int(3)?, row.optional_int(4)?, row.optional_int(5)?))
}

/// The error of the destination's failure at `at`.
pub fn failure_at(dialect: Dialect, destination: &str, at: i64) -> Statement {
    let mut q = Statement::new(dialect, "SELECT error FROM attempts WHERE destination = ");
    q.push("{}", Arg::Text(destination.to_owned())).push(" AND at = {} AND delivered = 0 LIMIT 1", Arg::Int(at));
    q
}

/// How many attempts to the destination failed after `since`.
pub fn failing_since(dialect: Dialect, destination: &str, since: i64) -> Statement {
    let mut q = Statement::new(dialect, "SELECT COUNT(*) FROM attempts WHERE destination = ");
    q.push("{}", Arg::Text(destination.to_owned())).push(" AND at > {} AND delivered = 0", Arg::Int(since));
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_follow_the_dialect_and_only_the_filters_given() {
        let filter =
            ListFilter { status: Some(Status::Dead), route: Some("vip".into()), limit: 5, ..Default::default() };
        let sqlite = list(Dialect::Sqlite, &filter);
        assert!(sqlite.sql.ends_with(
            "WHERE 1 = 1 AND d.status = ?1 AND instr(',' || d.routes || ',', ',' || ?2 || ',') > 0 \
             ORDER BY d.id DESC LIMIT ?3"
        ));
        let postgres = list(Dialect::Postgres, &filter);
        assert!(postgres.sql.ends_with(
            "WHERE 1 = 1 AND d.status = $1 AND strpos(',' || d.routes || ',', ',' || $2 || ',') > 0 \
             ORDER BY d.id DESC LIMIT $3"
        ));
        assert_eq!(sqlite.args, [Arg::Text("dead".into()), Arg::Text("vip".into()), Arg::Int(5)]);
        assert_eq!(sqlite.args, postgres.args);
    }
}
