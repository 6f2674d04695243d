//! `raaft-relay store copy --to postgres://…`: moves an SQLite store into
//! PostgreSQL when one machine is no longer enough, with the relay stopped.
//! Everything the relay keeps goes (events, their idempotency keys, every
//! delivery with its attempts, flows and customers' histories, digest
//! windows, the secrets that sign console sessions and hash logged
//! customers), under the same ids. Each row is inserted only where its key
//! is not there yet, so a copy run twice copies nothing the second time,
//! and an event whose idempotency key the database already holds under
//! another event (Raaft retried it to a relay already on PostgreSQL) is
//! left out with its deliveries: it is never delivered twice.

use super::sqlite;
use super::StoreError;
use sqlx::postgres::PgPool;
use sqlx::Row;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// What a copy inserted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Copied {
    pub events: u64,
    /// Deliveries inserted, by status.
    pub deliveries: HashMap<String, u64>,
    pub attempts: u64,
    pub flows: u64,
    /// Customers whose history was inserted or added to.
    pub customers: u64,
    pub digest_windows: u64,
    /// Events left out: the target holds their idempotency key under
    /// another event.
    pub duplicates: u64,
}

/// How a column is stored on PostgreSQL.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Text,
    Bytes,
    Int,
    Bool,
}

use Kind::{Bool, Bytes, Int, Text};

/// A table to copy: its columns (the same names on both engines) and the
/// key a row already there is recognised by.
struct Table {
    name: &'static str,
    columns: &'static [(&'static str, Kind)],
    key: &'static str,
    /// What the insert returns of each row it inserted.
    returning: &'static str,
}

const DEDUP: Table = Table {
    name: "dedup",
    columns: &[("dedup_key", Text), ("event_id", Text), ("received_at", Int)],
    key: "dedup_key",
    returning: "dedup_key",
};
const EVENTS: Table = Table {
    name: "events",
    columns: &[
        ("id", Text),
        ("dedup_key", Text),
        ("received_at", Int),
        ("outcome", Bytes),
        ("customer", Bytes),
        ("body", Bytes),
        ("facts", Text),
        ("source", Text),
    ],
    key: "id",
    returning: "id",
};
/// Without their leases: the relay that held them is stopped.
const DELIVERIES: Table = Table {
    name: "deliveries",
    columns: &[
        ("id", Text),
        ("event_id", Text),
        ("destination", Text),
        ("routes", Text),
        ("status", Text),
        ("attempts", Int),
        ("next_attempt_at", Int),
        ("last_error", Bytes),
        ("created_at", Int),
        ("updated_at", Int),
        ("replay_requested", Bool),
        ("payload", Text),
    ],
    key: "id",
    returning: "status",
};
const ATTEMPTS: Table = Table {
    name: "attempts",
    columns: &[
        ("id", Text),
        ("delivery_id", Text),
        ("number", Int),
        ("at", Int),
        ("status_code", Int),
        ("latency_ms", Int),
        ("response", Bytes),
        ("error", Bytes),
        ("payload", Bytes),
        ("destination", Text),
        ("delivered", Int),
    ],
    key: "id",
    returning: "id",
};
const FLOWS: Table = Table {
    name: "flows",
    columns: &[
        ("event_id", Text),
        ("customer", Bytes),
        ("received_at", Int),
        ("saved", Int),
        ("canceled", Int),
        ("offered", Int),
        ("record", Text),
    ],
    key: "event_id",
    returning: "customer, received_at, saved, canceled, offered, record",
};
const HISTORIES: Table = Table {
    name: "customer_histories",
    columns: &[
        ("customer", Bytes),
        ("flows", Int),
        ("saved", Int),
        ("canceled", Int),
        ("first_seen", Int),
        ("last_save_at", Int),
        ("last_save", Text),
        ("last_offer_at", Int),
        ("last_offer", Text),
    ],
    key: "customer",
    returning: "customer",
};
const DIGEST_WINDOWS: Table = Table {
    name: "digest_windows",
    columns: &[("digest", Text), ("window_start", Int), ("window_end", Int), ("event_id", Text), ("claimed_at", Int)],
    key: "digest, window_start",
    returning: "digest",
};
const SECRETS: Table = Table {
    name: "secrets",
    columns: &[("name", Text), ("value", Bytes), ("created_at", Int)],
    key: "name",
    returning: "name",
};
const REVOKED_SESSIONS: Table =
    Table { name: "revoked_sessions", columns: &[("id", Text), ("issued_at", Int)], key: "id", returning: "id" };

/// One stored value, as SQLite holds it.
#[derive(Debug, Clone)]
enum Cell {
    Null,
    Int(i64),
    Data(Vec<u8>),
}

type Rows = Vec<Vec<Cell>>;

/// How many rows go in one insert.
const BATCH: usize = 500;

/// Copies the SQLite store at `from` into the PostgreSQL database at `to`
/// (created or brought to this release's schema first).
pub async fn copy(from: &Path, to: &str) -> Result<Copied, StoreError> {
    super::postgres::migrate(to).await?;
    let pool = super::postgres::connect(to, 2).await?;
    let (tx, mut batches) = tokio::sync::mpsc::channel::<Result<(&'static str, Rows), StoreError>>(4);
    let from = from.to_path_buf();
    let reader = tokio::task::spawn_blocking(move || {
        let (conn, _source) = match sqlite::copy_source(&from) {
            Ok(opened) => opened,
            Err(e) => return drop(tx.blocking_send(Err(e))),
        };
        // In this order, so that what a row refers to is decided first.
        for table in
            [&DEDUP, &EVENTS, &DELIVERIES, &ATTEMPTS, &FLOWS, &HISTORIES, &DIGEST_WINDOWS, &SECRETS, &REVOKED_SESSIONS]
        {
            if let Err(e) = read_table(&conn, table, |rows| tx.blocking_send(Ok((table.name, rows))).is_ok()) {
                let _ = tx.blocking_send(Err(StoreError::Unavailable(format!("cannot read {}: {e}", table.name))));
                return;
            }
        }
    });
    let mut writer = Writer {
        pool: &pool,
        copied: Copied::default(),
        left_out_events: HashSet::new(),
        left_out_deliveries: HashSet::new(),
        new_flows: HashMap::new(),
    };
    while let Some(batch) = batches.recv().await {
        let (table, rows) = batch?;
        writer.write(table, rows).await.map_err(|e| StoreError::Unavailable(format!("cannot copy {table}: {e}")))?;
    }
    reader.await.map_err(|e| StoreError::Unavailable(format!("the copy stopped: {e}")))?;
    pool.close().await;
    Ok(writer.copied)
}

/// Reads `table` in batches, handing each to `each` until it says stop.
fn read_table(conn: &rusqlite::Connection, table: &Table, mut each: impl FnMut(Rows) -> bool) -> rusqlite::Result<()> {
    let columns: Vec<&str> = table.columns.iter().map(|(name, _)| *name).collect();
    let sql = format!("SELECT {} FROM {} ORDER BY rowid", columns.join(", "), table.name);
    let mut statement = conn.prepare(&sql)?;
    let mut rows = statement.query([])?;
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(row) = rows.next()? {
        let mut cells = Vec::with_capacity(columns.len());
        for i in 0..columns.len() {
            cells.push(match row.get_ref(i)? {
                rusqlite::types::ValueRef::Null => Cell::Null,
                rusqlite::types::ValueRef::Integer(n) => Cell::Int(n),
                rusqlite::types::ValueRef::Real(f) => Cell::Int(f as i64),
                rusqlite::types::ValueRef::Text(b) | rusqlite::types::ValueRef::Blob(b) => Cell::Data(b.to_vec()),
            });
        }
        batch.push(cells);
        if batch.len() == BATCH && !each(std::mem::take(&mut batch)) {
            return Ok(());
        }
    }
    if !batch.is_empty() {
        each(batch);
    }
    Ok(())
}

/// The PostgreSQL side: inserts what is not there, and remembers what was
/// left out so that what refers to it is left out too.
struct Writer<'a> {
    pool: &'a PgPool,
    copied: Copied,
    /// Events left out, and their deliveries.
    left_out_events: HashSet<String>,
    left_out_deliveries: HashSet<String>,
    /// Flows inserted, per customer: added to a history already there.
    new_flows: HashMap<Vec<u8>, Vec<NewFlow>>,
}

struct NewFlow {
    received_at: i64,
    saved: bool,
    canceled: bool,
    offered: bool,
    record: String,
}

impl<'a> Writer<'a> {
    async fn write(&mut self, table: &'static str, mut rows: Rows) -> Result<(), sqlx::Error> {
        let pool = self.pool;
        match table {
            "dedup" => self.dedup(rows).await?,
            "events" => {
                rows.retain(|r| !self.left_out_events.contains(&text(&r[0]).unwrap_or_default()));
                self.copied.events += insert(pool, &EVENTS, &rows).await?.len() as u64;
            }
            "deliveries" => {
                rows.retain(|r| {
                    let keep = !self.left_out_events.contains(&text(&r[1]).unwrap_or_default());
                    if !keep {
                        self.left_out_deliveries.insert(text(&r[0]).unwrap_or_default());
                    }
                    keep
                });
                for row in insert(pool, &DELIVERIES, &rows).await? {
                    *self.copied.deliveries.entry(row.try_get::<String, _>(0)?).or_insert(0) += 1;
                }
            }
            "attempts" => {
                rows.retain(|r| !self.left_out_deliveries.contains(&text(&r[1]).unwrap_or_default()));
                self.copied.attempts += insert(pool, &ATTEMPTS, &rows).await?.len() as u64;
            }
            "flows" => self.flows(rows).await?,
            "customer_histories" => self.histories(rows).await?,
            "digest_windows" => self.copied.digest_windows += insert(pool, &DIGEST_WINDOWS, &rows).await?.len() as u64,
            "secrets" => drop(insert(pool, &SECRETS, &rows).await?),
            "revoked_sessions" => drop(insert(pool, &REVOKED_SESSIONS, &rows).await?),
            other => unreachable!("no table {other} to copy"),
        }
        Ok(())
    }

    /// Idempotency keys. A key held under another event: that event is
    /// Raaft's retry of one the database has already, and is left out.
    async fn dedup(&mut self, mut rows: Rows) -> Result<(), sqlx::Error> {
        let pool = self.pool;
        let keys: Vec<String> = rows.iter().map(|r| text(&r[0]).unwrap_or_default()).collect();
        let held: HashMap<String, String> =
            sqlx::query_as("SELECT dedup_key, event_id FROM dedup WHERE dedup_key = ANY($1)")
                .bind(&keys)
                .fetch_all(pool)
                .await?
                .into_iter()
                .collect();
        rows.retain(|r| {
            let (key, event) = (text(&r[0]).unwrap_or_default(), text(&r[1]).unwrap_or_default());
            match held.get(&key) {
                Some(other) if *other != event => {
                    if self.left_out_events.insert(event) {
                        self.copied.duplicates += 1;
                    }
                    false
                }
                _ => true,
            }
        });
        insert(pool, &DEDUP, &rows).await?;
        Ok(())
    }

    /// Flows, noted per customer for their histories.
    async fn flows(&mut self, mut rows: Rows) -> Result<(), sqlx::Error> {
        let pool = self.pool;
        rows.retain(|r| !self.left_out_events.contains(&text(&r[0]).unwrap_or_default()));
        for row in insert(pool, &FLOWS, &rows).await? {
            let customer: Vec<u8> = row.try_get(0)?;
            self.new_flows.entry(customer).or_default().push(NewFlow {
                received_at: row.try_get(1)?,
                saved: row.try_get::<i64, _>(2)? != 0,
                canceled: row.try_get::<i64, _>(3)? != 0,
                offered: row.try_get::<i64, _>(4)? != 0,
                record: row.try_get(5)?,
            });
            self.copied.flows += 1;
        }
        Ok(())
    }

    /// Customers' histories: inserted whole, or, for a customer the
    /// database knows already, added the flows this copy added, once.
    async fn histories(&mut self, rows: Rows) -> Result<(), sqlx::Error> {
        let pool = self.pool;
        let inserted = insert(pool, &HISTORIES, &rows).await?;
        self.copied.customers += inserted.len() as u64;
        for row in inserted {
            // A history inserted whole counts its flows already.
            self.new_flows.remove(&row.try_get::<Vec<u8>, _>(0)?);
        }
        // A customer the database knows already: its history
        // takes the flows this copy added, once.
        let present: HashSet<Vec<u8>> = rows.iter().filter_map(|r| bytes(&r[0])).collect();
        for customer in present {
            if let Some(flows) = self.new_flows.remove(&customer) {
                add_flows(pool, &customer, &flows).await?;
                self.copied.customers += 1;
            }
        }
        Ok(())
    }
}

/// Inserts `rows` into `table` where their key is not there yet; returns
/// what the insert returned of the rows it inserted.
async fn insert(pool: &PgPool, table: &Table, rows: &Rows) -> Result<Vec<sqlx::postgres::PgRow>, sqlx::Error> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<&str> = table.columns.iter().map(|(name, _)| *name).collect();
    let arrays: Vec<String> = table
        .columns
        .iter()
        .enumerate()
        .map(|(i, (_, kind))| {
            let ty = match kind {
                Text => "text",
                Bytes => "bytea",
                Int => "int8",
                Bool => "bool",
            };
            format!("${}::{ty}[]", i + 1)
        })
        .collect();
    let sql = format!(
        "INSERT INTO {} ({}) SELECT * FROM UNNEST({}) ON CONFLICT ({}) DO NOTHING RETURNING {}",
        table.name,
        names.join(", "),
        arrays.join(", "),
        table.key,
        table.returning
    );
    let mut query = sqlx::query(&sql);
    for (i, (_, kind)) in table.columns.iter().enumerate() {
        query = match kind {
            Text => query.bind(rows.iter().map(|r| text(&r[i])).collect::<Vec<Option<String>>>()),
            Bytes => query.bind(rows.iter().map(|r| bytes(&r[i])).collect::<Vec<Option<Vec<u8>>>>()),
            Int => query.bind(rows.iter().map(|r| int(&r[i])).collect::<Vec<Option<i64>>>()),
            Bool => query.bind(rows.iter().map(|r| int(&r[i]).unwrap_or(0) != 0).collect::<Vec<bool>>()),
        };
    }
    query.fetch_all(pool).await
}

/// Adds `flows` (oldest first) to the history of `customer`, as the
/// relay does when it remembers a flow.
async fn add_flows(pool: &PgPool, customer: &[u8], flows: &[NewFlow]) -> Result<(), sqlx::Error> {
    let mut flows: Vec<&NewFlow> = flows.iter().collect();
    flows.sort_by_key(|f| f.received_at);
    for f in flows {
        sqlx::query(
            "UPDATE customer_histories SET flows = flows + 1, saved = saved + $2, canceled = canceled + $3, \
             first_seen = LEAST(first_seen, $4), \
             last_save = CASE WHEN $5 AND $4 >= COALESCE(last_save_at, 0) THEN $6 ELSE last_save END, \
             last_save_at = CASE WHEN $5 AND $4 >= COALESCE(last_save_at, 0) THEN $4 ELSE last_save_at END, \
             last_offer = CASE WHEN $7 AND $4 >= COALESCE(last_offer_at, 0) THEN $6 ELSE last_offer END, \
             last_offer_at = CASE WHEN $7 AND $4 >= COALESCE(last_offer_at, 0) THEN $4 ELSE last_offer_at END \
             WHERE customer = $1",
        )
        .bind(customer)
        .bind(i64::from(f.saved))
        .bind(i64::from(f.canceled))
        .bind(f.received_at)
        .bind(f.saved)
        .bind(&f.record)
        .bind(f.offered)
        .execute(pool)
        .await?;
    }
    Ok(())
}

fn text(cell: &Cell) -> Option<String> {
    match cell {
        Cell::Null => None,
        Cell::Int(n) => Some(n.to_string()),
        Cell::Data(b) => Some(String::from_utf8_lossy(b).into_owned()),
    }
}

fn bytes(cell: &Cell) -> Option<Vec<u8>> {
    match cell {
        Cell::Null => None,
        Cell::Int(n) => Some(n.to_string().into_bytes()),
        Cell::Data(b) => Some(b.clone()),
    }
}

fn int(cell: &Cell) -> Option<i64> {
    match cell {
        Cell::Int(n) => Some(*n),
        Cell::Null => None,
        Cell::Data(b) => std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()),
    }
}
