//! What operators read in the PostgreSQL store: deliveries and events
//! listed by filters, newest first by id, activity and destinations'
//! health; and deliveries discarded.

use super::*;
use crate::store::inspect::{self, health, health_bounds};

/// Deliveries by `filter`, newest first: only the filters given are in
/// the statement (see the SQLite store: the same indexes answer).
pub(super) async fn list(pool: &PgPool, filter: &ListFilter) -> Result<Vec<DeliverySummary>, sqlx::Error> {
    let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(format!(
        "SELECT {SUMMARY_COLUMNS} FROM deliveries d JOIN events e ON e.id = d.event_id WHERE true"
    ));
    if let Some(status) = filter.status {
        q.push(" AND d.status = ").push_bind(status.as_str());
    }
    if let Some(destination) = &filter.destination {
        q.push(" AND d.destination = ").push_bind(destination.clone());
    }
    if let Some(since) = filter.since {
        q.push(concat!(" AND d.created_at >= ", now!(), " - ")).push_bind(millis(since));
    }
    if let Some(outcome) = &filter.outcome {
        q.push(" AND e.outcome = ").push_bind(outcome.as_bytes().to_vec());
    }
    if let Some(customer) = &filter.customer {
        q.push(" AND d.event_id IN (SELECT event_id FROM flows WHERE customer = ")
            .push_bind(customer.as_bytes().to_vec())
            .push(")");
    }
    if let Some(route) = &filter.route {
        q.push(" AND strpos(',' || d.routes || ',', ',' || ").push_bind(route.clone()).push(" || ',') > 0");
    }
    if let Some(event) = &filter.event_id {
        q.push(" AND d.event_id = ").push_bind(event.to_ascii_lowercase());
    }
    if let Some(before) = &filter.before {
        q.push(" AND d.id < ").push_bind(before.to_ascii_lowercase());
    }
    q.push(" ORDER BY d.id DESC LIMIT ").push_bind(if filter.limit == 0 { i64::MAX } else { filter.limit as i64 });
    let rows = q.build().fetch_all(pool).await?;
    rows.iter().map(summary).collect()
}

pub(super) async fn discard(pool: &PgPool, ids: &[String], reason: &str) -> Result<Vec<DeliveryId>, sqlx::Error> {
    let ids: Vec<String> = ids.iter().map(|id| id.to_ascii_lowercase()).collect();
    sqlx::query_scalar(concat!(
        "UPDATE deliveries SET status = 'dead', last_error = $2, lease_owner = NULL, lease_until = NULL, \
         replay_requested = false, updated_at = ",
        now!(),
        " WHERE id = ANY($1) AND status = 'pending' RETURNING id"
    ))
    .bind(&ids)
    .bind(reason.as_bytes())
    .fetch_all(pool)
    .await
}

pub(super) async fn activity(pool: &PgPool, periods: &[Duration]) -> Result<Vec<Activity>, sqlx::Error> {
    let n = periods.len();
    let counts = |row: &PgRow, n: usize| {
        (0..n).map(|i| row.try_get::<Option<i64>, _>(i).map(Option::unwrap_or_default)).collect::<Result<Vec<_>, _>>()
    };
    let row = sqlx::query(&events_by_outcome_sql(periods, now!())).fetch_one(pool).await?;
    let events = counts(&row, n * 5)?;
    let sql = inspect::deliveries_by_period_sql(periods, now!(), "$1", true);
    let mut deliveries = Vec::new();
    for status in [Status::Delivered, Status::Pending, Status::Dead] {
        let row = sqlx::query(&sql).bind(status.as_str()).fetch_one(pool).await?;
        deliveries.push((status, counts(&row, n)?));
    }
    Ok(inspect::activities(n, &events, &deliveries))
}

/// Counts events per outcome ([`inspect::OUTCOMES`], then any other) within each
/// of `periods`, in one pass over the covering index of events' receipt
/// time and outcome (no grouping; digests have no outcome). `now` is the
/// database's clock in SQL.
fn events_by_outcome_sql(periods: &[Duration], now: &str) -> String {
    let literal = |o: &str| format!("'{o}'::bytea");
    let known = inspect::OUTCOMES.map(literal).join(", ");
    let cast = "::BIGINT";
    let mut sums = Vec::new();
    for period in periods {
        let since = format!("received_at >= {now} - {}", period.as_millis());
        for o in inspect::OUTCOMES {
            sums.push(format!("SUM(CASE WHEN {since} AND outcome = {} THEN 1 ELSE 0 END){cast}", literal(o)));
        }
        sums.push(format!("SUM(CASE WHEN {since} AND outcome NOT IN ({known}) THEN 1 ELSE 0 END){cast}"));
    }
    let longest = periods.iter().max().copied().unwrap_or_default().as_millis();
    format!("SELECT {} FROM events WHERE received_at >= {now} - {longest}", sums.join(", "))
}

const EVENT_COLUMNS: &str = "e.id, e.received_at, e.outcome, e.customer, e.source, \
     (SELECT COUNT(*) FROM deliveries d WHERE d.event_id = e.id) AS deliveries";

fn event_summary(row: &PgRow) -> Result<EventSummary, sqlx::Error> {
    Ok(EventSummary {
        id: row.try_get("id")?,
        received_at: time(row.try_get("received_at")?),
        outcome: text(row.try_get("outcome")?),
        customer: text(row.try_get("customer")?),
        source: row.try_get("source")?,
        deliveries: row.try_get::<i64, _>("deliveries")?.max(0) as u64,
    })
}

pub(super) async fn list_events(pool: &PgPool, filter: &EventFilter) -> Result<Vec<EventSummary>, sqlx::Error> {
    let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(format!("SELECT {EVENT_COLUMNS} FROM events e WHERE true"));
    if let Some(outcome) = &filter.outcome {
        q.push(" AND e.outcome = ").push_bind(outcome.as_bytes().to_vec());
    }
    if let Some(customer) = &filter.customer {
        q.push(" AND e.id IN (SELECT event_id FROM flows WHERE customer = ")
            .push_bind(customer.as_bytes().to_vec())
            .push(")");
    }
    if let Some(source) = &filter.source {
        q.push(" AND e.source = ").push_bind(source.clone());
    }
    if let Some(before) = &filter.before {
        q.push(" AND e.id < ").push_bind(before.to_ascii_lowercase());
    }
    q.push(" ORDER BY e.id DESC LIMIT ").push_bind(if filter.limit == 0 { i64::MAX } else { filter.limit as i64 });
    let rows = q.build().fetch_all(pool).await?;
    rows.iter().map(event_summary).collect()
}

pub(super) async fn event(pool: &PgPool, id: &str) -> Result<Option<EventDetail>, sqlx::Error> {
    let sql = format!("SELECT {EVENT_COLUMNS}, e.body, e.facts FROM events e WHERE e.id = $1");
    let Some(row) = sqlx::query(&sql).bind(id.to_ascii_lowercase()).fetch_optional(pool).await? else {
        return Ok(None);
    };
    let body: Vec<u8> = row.try_get("body")?;
    let facts: Option<String> = row.try_get("facts")?;
    Ok(Some(EventDetail { summary: event_summary(&row)?, event: policy::event_with_facts(&body, facts.as_deref()) }))
}

pub(super) async fn destination_health(
    pool: &PgPool,
    destinations: &[String],
) -> Result<Vec<DestinationHealth>, sqlx::Error> {
    let (day, hour) = health_bounds(chrono::Utc::now());
    let mut out = Vec::new();
    for destination in destinations {
        let figures: (i64, i64, i64, i64, Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(delivered), 0)::BIGINT, \
             COALESCE(SUM(CASE WHEN at >= $3 THEN 1 ELSE 0 END), 0)::BIGINT, \
             COALESCE(SUM(CASE WHEN at >= $3 THEN delivered ELSE 0 END), 0)::BIGINT, \
             MAX(CASE WHEN delivered = 1 THEN at END), MAX(CASE WHEN delivered = 0 THEN at END) \
             FROM attempts WHERE destination = $1 AND at >= $2",
        )
        .bind(destination)
        .bind(day)
        .bind(hour)
        .fetch_one(pool)
        .await?;
        let last_error = match figures.5 {
            Some(at) => sqlx::query_scalar::<_, Option<Vec<u8>>>(
                "SELECT error FROM attempts WHERE destination = $1 AND at = $2 AND delivered = 0 LIMIT 1",
            )
            .bind(destination)
            .bind(at)
            .fetch_optional(pool)
            .await?
            .flatten()
            .and_then(|e| text(Some(e))),
            None => None,
        };
        let failing: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM attempts WHERE destination = $1 AND at > $2 AND delivered = 0")
                .bind(destination)
                .bind(figures.4.unwrap_or(day - 1).max(day - 1))
                .fetch_one(pool)
                .await?;
        out.push(health(destination, figures, last_error, failing));
    }
    Ok(out)
}
