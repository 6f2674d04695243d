//! What operators read in the PostgreSQL store, through the shared
//! statements ([`crate::store::read`]); activity, counted in SQL in one
//! pass over its index; and deliveries discarded.

use super::*;
use crate::store::dialect::Columns;
use crate::store::inspect::{self, health, health_bounds};

pub(super) async fn list(pool: &PgPool, filter: &ListFilter) -> Result<Vec<DeliverySummary>, sqlx::Error> {
    rows(pool, &read::list(DIALECT, filter)).await?.iter().map(read::summary).collect()
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

pub(super) async fn list_events(pool: &PgPool, filter: &EventFilter) -> Result<Vec<EventSummary>, sqlx::Error> {
    rows(pool, &read::list_events(DIALECT, filter)).await?.iter().map(read::event_summary).collect()
}

pub(super) async fn event(pool: &PgPool, id: &str) -> Result<Option<EventDetail>, sqlx::Error> {
    rows(pool, &read::event(DIALECT, id)).await?.first().map(read::event_detail).transpose()
}

pub(super) async fn destination_health(
    pool: &PgPool,
    destinations: &[String],
) -> Result<Vec<DestinationHealth>, sqlx::Error> {
    let (day, hour) = health_bounds(chrono::Utc::now());
    let mut out = Vec::new();
    for destination in destinations {
        let figures = rows(pool, &read::health_figures(DIALECT, destination, day, hour)).await?;
        let figures = figures.first().map(read::health_row).transpose()?.unwrap_or_default();
        let last_error = match figures.5 {
            Some(at) => {
                let found = rows(pool, &read::failure_at(DIALECT, destination, at)).await?;
                found.first().map(|row| row.optional_text(0)).transpose()?.flatten()
            }
            None => None,
        };
        let since = figures.4.unwrap_or(day - 1).max(day - 1);
        let failing = rows(pool, &read::failing_since(DIALECT, destination, since)).await?;
        let failing = failing.first().map(|row| row.int(0)).transpose()?.unwrap_or_default();
        out.push(health(destination, figures, last_error, failing));
    }
    Ok(out)
}
