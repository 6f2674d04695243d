//! What operators read in the SQLite store: deliveries and events listed
//! by filters, newest first by id, activity and destinations' health; and
//! deliveries discarded.

use super::*;
use crate::store::inspect::{self, health, health_bounds};

/// Deliveries by `filter`, newest first. Only the filters given are in
/// the statement, so each can use its index: the id (a ULID) for the order
/// and the page, status for a status, flows' customer index for a
/// customer, the event's id for an event.
pub(super) fn list(conn: &Connection, filter: &ListFilter) -> rusqlite::Result<Vec<DeliverySummary>> {
    use rusqlite::types::Value as Arg;
    let mut sql = format!("SELECT {SUMMARY_COLUMNS} FROM deliveries d JOIN events e ON e.id = d.event_id WHERE 1 = 1");
    let mut args: Vec<Arg> = Vec::new();
    let mut and = |clause: &str, arg: Arg| {
        sql.push_str(clause);
        args.push(arg);
    };
    if let Some(status) = filter.status {
        and(" AND d.status = ?", status.as_str().to_owned().into());
    }
    if let Some(destination) = &filter.destination {
        and(" AND d.destination = ?", destination.clone().into());
    }
    if let Some(since) = filter.since {
        and(concat!(" AND d.created_at >= ", now!(), " - ?"), millis(since).into());
    }
    if let Some(outcome) = &filter.outcome {
        and(" AND e.outcome = ?", outcome.clone().into());
    }
    if let Some(customer) = &filter.customer {
        and(" AND d.event_id IN (SELECT event_id FROM flows WHERE customer = ?)", customer.clone().into());
    }
    if let Some(route) = &filter.route {
        and(" AND instr(',' || d.routes || ',', ',' || ? || ',') > 0", route.clone().into());
    }
    if let Some(event) = &filter.event_id {
        and(" AND d.event_id = ?", event.to_ascii_lowercase().into());
    }
    if let Some(before) = &filter.before {
        and(" AND d.id < ?", before.to_ascii_lowercase().into());
    }
    let limit = if filter.limit == 0 { i64::MAX } else { filter.limit as i64 };
    and(" ORDER BY d.id DESC LIMIT ?", limit.into());
    conn.prepare_cached(&sql)?.query_map(rusqlite::params_from_iter(args), summary)?.collect()
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

const EVENT_COLUMNS: &str = "e.id, e.received_at, e.outcome, e.customer, e.source, \
     (SELECT COUNT(*) FROM deliveries d WHERE d.event_id = e.id)";

fn event_summary(row: &Row<'_>) -> rusqlite::Result<EventSummary> {
    Ok(EventSummary {
        id: row.get(0)?,
        received_at: time(row.get(1)?),
        outcome: optional_text(row, 2)?,
        customer: optional_text(row, 3)?,
        source: text(row, 4)?,
        deliveries: row.get::<_, i64>(5)?.max(0) as u64,
    })
}

pub(super) fn list_events(conn: &Connection, filter: &EventFilter) -> rusqlite::Result<Vec<EventSummary>> {
    use rusqlite::types::Value as Arg;
    let mut sql = format!("SELECT {EVENT_COLUMNS} FROM events e WHERE 1 = 1");
    let mut args: Vec<Arg> = Vec::new();
    let mut and = |clause: &str, arg: Arg| {
        sql.push_str(clause);
        args.push(arg);
    };
    if let Some(outcome) = &filter.outcome {
        and(" AND e.outcome = ?", outcome.clone().into());
    }
    if let Some(customer) = &filter.customer {
        and(" AND e.id IN (SELECT event_id FROM flows WHERE customer = ?)", customer.clone().into());
    }
    if let Some(source) = &filter.source {
        and(" AND e.source = ?", source.clone().into());
    }
    if let Some(before) = &filter.before {
        and(" AND e.id < ?", before.to_ascii_lowercase().into());
    }
    let limit = if filter.limit == 0 { i64::MAX } else { filter.limit as i64 };
    and(" ORDER BY e.id DESC LIMIT ?", limit.into());
    conn.prepare_cached(&sql)?.query_map(rusqlite::params_from_iter(args), event_summary)?.collect()
}

pub(super) fn event(conn: &Connection, id: &str) -> rusqlite::Result<Option<EventDetail>> {
    let sql = format!("SELECT {EVENT_COLUMNS}, e.body, e.facts FROM events e WHERE e.id = ?1");
    conn.prepare_cached(&sql)?
        .query_row(params![id], |row| {
            Ok(EventDetail {
                summary: event_summary(row)?,
                event: policy::event_with_facts(text(row, 6)?.as_bytes(), optional_text(row, 7)?.as_deref()),
            })
        })
        .optional()
}

pub(super) fn destination_health(
    conn: &Connection,
    destinations: &[String],
) -> rusqlite::Result<Vec<DestinationHealth>> {
    let (day, hour) = health_bounds(chrono::Utc::now());
    let mut out = Vec::new();
    for destination in destinations {
        let figures = conn
            .prepare_cached(
                "SELECT COUNT(*), COALESCE(SUM(delivered), 0), COALESCE(SUM(CASE WHEN at >= ?3 THEN 1 ELSE 0 END), 0), \
                 COALESCE(SUM(CASE WHEN at >= ?3 THEN delivered ELSE 0 END), 0), \
                 MAX(CASE WHEN delivered = 1 THEN at END), MAX(CASE WHEN delivered = 0 THEN at END) \
                 FROM attempts WHERE destination = ?1 AND at >= ?2",
            )?
            .query_row(params![destination, day, hour], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
            })?;
        let (success, failure): (Option<i64>, Option<i64>) = (figures.4, figures.5);
        let last_error = match failure {
            Some(at) => conn
                .prepare_cached(
                    "SELECT error FROM attempts WHERE destination = ?1 AND at = ?2 AND delivered = 0 LIMIT 1",
                )?
                .query_row(params![destination, at], |r| optional_text(r, 0))
                .optional()?
                .flatten(),
            None => None,
        };
        let failing: i64 = conn
            .prepare_cached("SELECT COUNT(*) FROM attempts WHERE destination = ?1 AND at > ?2 AND delivered = 0")?
            .query_row(params![destination, success.unwrap_or(day - 1).max(day - 1)], |r| r.get(0))?;
        out.push(health(destination, figures, last_error, failing));
    }
    Ok(out)
}
