//! What the two engines spell differently, so that SQL that is the same
//! up to that is written once ([`super::read`], [`super::upkeep`]): the
//! placeholders, the clock, a substring search, integer sums; statements
//! built with their arguments; and rows read by column index through
//! [`Columns`], whichever driver holds them.

use chrono::{DateTime, Utc};

/// How an engine spells what differs between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The store's clock in milliseconds since the epoch, as SQL.
    pub fn now(self) -> &'static str {
        match self {
            Dialect::Sqlite => "CAST(unixepoch('subsec') * 1000 AS INTEGER)",
            Dialect::Postgres => "(EXTRACT(EPOCH FROM now()) * 1000)::BIGINT",
        }
    }

    /// The `n`th parameter (from 1).
    pub fn parameter(self, n: usize) -> String {
        match self {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => format!("${n}"),
        }
    }

    /// What makes a sum of integers an integer again (PostgreSQL sums
    /// them into numerics).
    pub fn integer_sum(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => "::BIGINT",
        }
    }

    /// Where a text is found in another, 0 when it is not.
    pub fn position(self) -> &'static str {
        match self {
            Dialect::Sqlite => "instr",
            Dialect::Postgres => "strpos",
        }
    }
}

/// An argument of a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    Text(String),
    Int(i64),
    /// A text the PostgreSQL store keeps as bytes (an event's outcome and
    /// customer, as Raaft sent them); SQLite keeps it as text.
    Kept(String),
}

/// A statement and its arguments.
#[derive(Debug, Clone)]
pub struct Statement {
    pub sql: String,
    pub args: Vec<Arg>,
    dialect: Dialect,
}

impl Statement {
    pub fn new(dialect: Dialect, sql: impl Into<String>) -> Statement {
        Statement { sql: sql.into(), args: Vec::new(), dialect }
    }

    /// Appends `clause`, its `{}` (if any) made the placeholder of `arg`.
    pub fn push(&mut self, clause: &str, arg: Arg) -> &mut Statement {
        self.args.push(arg);
        let parameter = self.dialect.parameter(self.args.len());
        self.sql.push_str(&clause.replacen("{}", &parameter, 1));
        self
    }
}

/// A row as the shared readers read it: by column index, whichever
/// driver holds it. Texts read bytes too (columns a PostgreSQL store keeps
/// as bytes, values an earlier release stored the other way), invalid
/// sequences replaced.
pub trait Columns {
    type Error;
    fn int(&self, i: usize) -> Result<i64, Self::Error>;
    fn optional_int(&self, i: usize) -> Result<Option<i64>, Self::Error>;
    fn optional_bytes(&self, i: usize) -> Result<Option<Vec<u8>>, Self::Error>;

    fn optional_text(&self, i: usize) -> Result<Option<String>, Self::Error> {
        Ok(self.optional_bytes(i)?.map(lossy))
    }

    fn text(&self, i: usize) -> Result<String, Self::Error> {
        Ok(self.optional_text(i)?.unwrap_or_default())
    }

    fn time(&self, i: usize) -> Result<DateTime<Utc>, Self::Error> {
        Ok(time(self.int(i)?))
    }
}

/// Bytes as text, invalid sequences replaced.
pub fn lossy(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// A time the store keeps in milliseconds since the epoch.
pub fn time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}
