//! What operators read in the SQLite store, through the shared statements
//! ([`crate::store::read`]); activity, counted here from one pass over
//! its index; and deliveries discarded.

use super::*;
use crate::store::dialect::Columns;
use crate::store::inspect::{self, health, health_bounds};

pub(super) fn list(conn: &Connection, filter: &ListFilter) -> rusqlite::Result<Vec<DeliverySummary>> {
    rows(conn, &read::list(DIALECT, filter), |row| read::summary(row))
}

pub(super) fn discard(tx: &Transaction<'_>, ids: &[String], reason: &str) -> rusqlite::Result<Vec<DeliveryId>> {
    let mut update = tx.prepare_cached(concat!(
        "UPDATE deliveries SET status = 'dead', last_error = ?2, lease_owner = NULL, lease_until = NULL, \
         replay_requested = 0, updated_at = ",
        now!(),
        " WHERE id = ?1 AND status = 'pending' RETURNING id"
    ))?;
    let mut discarded = Vec::new();
    for id in ids {
        if let Some(id) = update.query_row(params![id.to_ascii_lowercase(), reason], |row| row.get(0)).optional()? {
            discarded.push(id);
        }
    }
    Ok(discarded)
}

pub(super) fn activity(conn: &Connection, periods: &[Duration]) -> rusqlite::Result<Vec<Activity>> {
    let n = periods.len();
    // One pass over the covering index, counted here: SQLite steps through
    // a hundred thousand index entries in a few milliseconds, but spends
    // ten times that on expressions evaluated per row.
    let now: i64 = conn.query_row(concat!("SELECT ", now!()), [], |row| row.get(0))?;
    let since: Vec<i64> = periods.iter().map(|p| now - millis(*p)).collect();
    let mut events = vec![0i64; n * 5];
    let mut rows =
        conn.prepare_cached("SELECT received_at, outcome FROM events WHERE received_at >= ?1 AND outcome IS NOT NULL")?;
    let mut rows = rows.query(params![since.iter().min().copied().unwrap_or(now)])?;
    while let Some(row) = rows.next()? {
        let at: i64 = row.get(0)?;
        let outcome = match row.get_ref(1)? {
            ValueRef::Text(b) | ValueRef::Blob(b) => b,
            _ => continue,
        };
        let column = inspect::OUTCOMES.iter().position(|o| o.as_bytes() == outcome).unwrap_or(4);
        for (i, from) in since.iter().enumerate() {
            if at >= *from {
                events[i * 5 + column] += 1;
            }
        }
    }
    let sql = inspect::deliveries_by_period_sql(periods, now!(), "?1", false);
    let mut deliveries = Vec::new();
    for status in [Status::Delivered, Status::Pending, Status::Dead] {
        let counts: Vec<i64> = conn
            .prepare_cached(&sql)?
            .query_row(params![status.as_str()], |row| {
                (0..n).map(|i| row.get::<_, Option<i64>>(i)).collect::<Result<Vec<_>, _>>()
            })?
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect();
        deliveries.push((status, counts));
    }
    Ok(inspect::activities(n, &events, &deliveries))
}

pub(super) fn list_events(conn: &Connection, filter: &EventFilter) -> rusqlite::Result<Vec<EventSummary>> {
    rows(conn, &read::list_events(DIALECT, filter), |row| read::event_summary(row))
}

pub(super) fn event(conn: &Connection, id: &str) -> rusqlite::Result<Option<EventDetail>> {
    Ok(rows(conn, &read::event(DIALECT, id), |row| read::event_detail(row))?.pop())
}

pub(super) fn destination_health(
    conn: &Connection,
    destinations: &[String],
) -> rusqlite::Result<Vec<DestinationHealth>> {
    let (day, hour) = health_bounds(chrono::Utc::now());
    let mut out = Vec::new();
    for destination in destinations {
        let figures = rows(conn, &read::health_figures(DIALECT, destination, day, hour), |row| read::health_row(row))?
            .pop()
            .unwrap_or_default();
        let last_error = match figures.5 {
            Some(at) => {
                rows(conn, &read::failure_at(DIALECT, destination, at), |row| row.optional_text(0))?.pop().flatten()
            }
            None => None,
        };
        let since = figures.4.unwrap_or(day - 1).max(day - 1);
        let failing = rows(conn, &read::failing_since(DIALECT, destination, since), |row| row.int(0))?;
        out.push(health(destination, figures, last_error, failing.first().copied().unwrap_or_default()));
    }
    Ok(out)
}
