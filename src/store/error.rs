//! Why the store could not do what was asked.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot take or give work right now (unreachable, disk
    /// full, a write refused). Ingest answers 503 so Raaft retries.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Another `serve` holds the SQLite file.
    #[error(
        "the store \"{}\" is in use by another raaft-relay serve (one serve per SQLite file; \
         several relays need PostgreSQL)",
        .0.display()
    )]
    InUse(PathBuf),
    /// A store command (or `serve` beside older replicas) found a schema
    /// older than this release's: only `migrate` (or `serve`) changes it.
    #[error(
        "the store is at version {version}, this release needs version {latest}: run `raaft-relay migrate` \
         (stop every replica first on PostgreSQL)"
    )]
    Outdated { version: usize, latest: usize },
    /// The schema is newer than this release knows.
    #[error(
        "the store is at version {version}, newer than this release knows ({latest}): use the release that \
         upgraded it, or a newer one"
    )]
    Newer { version: usize, latest: usize },
    /// `serve` on PostgreSQL found an older schema while other clients of
    /// the database, replicas of an older release by all signs, are
    /// connected.
    #[error(
        "the store is at version {version}, this release needs version {latest}, and {connections} other \
         connection(s) to the database look like raaft-relay replicas of an older release: stop every replica, \
         then run `raaft-relay migrate` (or start this one again)"
    )]
    OlderReplicas { version: usize, latest: usize, connections: usize },
    /// A store command found a database without the relay's tables.
    #[error("the store has no raaft-relay tables yet: start `serve` on it, or run `raaft-relay migrate`")]
    Empty,
    /// A store command named an SQLite file that does not exist.
    #[error("there is no store at \"{}\" yet (`serve` creates it): is `[store] url` the one `serve` uses?", .0.display())]
    Missing(PathBuf),
}
