//! `[store] url`: which engine keeps the queue and where. A relative SQLite
//! path is relative to the config file's folder, so the relay finds its
//! store wherever it is started from.

use std::fmt;
use std::path::{Component, Path, PathBuf};

/// Where the delivery store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// An SQLite file, by absolute path (one `serve` per file).
    Sqlite(PathBuf),
    /// A PostgreSQL database, by connection URL (several replicas).
    Postgres(String),
}

impl StoreLocation {
    /// Reads a store URL from the config: `sqlite://PATH` (`sqlite:PATH`
    /// too) or `postgres://...`.
    pub fn parse(url: &str, config_dir: &Path) -> Result<StoreLocation, String> {
        if let Some(rest) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            let (path, query) = rest.split_once('?').map_or((rest, None), |(p, q)| (p, Some(q)));
            if path.is_empty() || path == ":memory:" {
                return Err(format!("store url \"{url}\" names no file"));
            }
            // Earlier releases passed the URL to a driver that took
            // `mode=rwc` (create if missing), which is what the relay does.
            for option in query.unwrap_or("").split('&').filter(|o| !o.is_empty()) {
                if option != "mode=rwc" {
                    return Err(format!(
                        "store url \"{url}\": unsupported option \"{option}\" (an SQLite store url is just its file's path)"
                    ));
                }
            }
            let full = if Path::new(path).is_absolute() { PathBuf::from(path) } else { config_dir.join(path) };
            let full = std::env::current_dir().unwrap_or_default().join(full);
            return Ok(StoreLocation::Sqlite(normalize(&full)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            url.parse::<sqlx::postgres::PgConnectOptions>()
                .map_err(|e| format!("invalid PostgreSQL url \"{}\": {e}", crate::redact::url(url)))?;
            return Ok(StoreLocation::Postgres(url.to_owned()));
        }
        Err(format!(
            "store url must start with sqlite:// or postgres://, not \"{}\"",
            url.split("://").next().unwrap_or(url)
        ))
    }
}

/// Without the password: for logs and error messages.
impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            StoreLocation::Postgres(url) => {
                // Everything that helps find the server (user, host,
                // port), but the password.
                let shown = url::Url::parse(url)
                    .map(|mut u| {
                        if u.password().is_some() {
                            let _ = u.set_password(Some("***"));
                        }
                        // The query may say where the server is (`host`,
                        // `port`): kept, with any password in it masked.
                        let query: Vec<(String, String)> = u
                            .query_pairs()
                            .map(|(k, v)| {
                                let secret = k.contains("password");
                                (k.into_owned(), if secret { "***".to_owned() } else { v.into_owned() })
                            })
                            .collect();
                        u.set_query(None);
                        if !query.is_empty() {
                            u.query_pairs_mut().extend_pairs(query);
                        }
                        u.to_string()
                    })
                    .unwrap_or_else(|_| "postgres://(invalid url)".into());
                f.write_str(&shown)
            }
        }
    }
}

/// `path` with `.` and `..` resolved without touching the file system (the
/// folder may not exist yet).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths_resolve_against_the_config_folder() {
        let dir = Path::new("/etc/raaft");
        let sqlite = |p: &str| StoreLocation::Sqlite(PathBuf::from(p));
        assert_eq!(StoreLocation::parse("sqlite://../data/relay.db", dir).unwrap(), sqlite("/etc/data/relay.db"));
        assert_eq!(StoreLocation::parse("sqlite:///var/lib/relay.db", dir).unwrap(), sqlite("/var/lib/relay.db"));
        assert_eq!(StoreLocation::parse("sqlite:relay.db", dir).unwrap(), sqlite("/etc/raaft/relay.db"));
        // What earlier releases accepted keeps working.
        assert_eq!(
            StoreLocation::parse("sqlite:///var/lib/relay.db?mode=rwc", dir).unwrap(),
            sqlite("/var/lib/relay.db")
        );
        // A relative config folder (the default `config/relay.toml`).
        let cwd = std::env::current_dir().unwrap();
        let relative = StoreLocation::parse("sqlite://../data/relay.db", Path::new("config")).unwrap();
        assert_eq!(relative, StoreLocation::Sqlite(normalize(&cwd.join("data/relay.db"))));
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        let dir = Path::new("/etc/raaft");
        assert!(StoreLocation::parse("mysql://x", dir).unwrap_err().contains("\"mysql\""));
        assert!(StoreLocation::parse("sqlite://", dir).unwrap_err().contains("names no file"));
        let option = StoreLocation::parse("sqlite://relay.db?cache=shared", dir).unwrap_err();
        assert!(option.contains("unsupported option \"cache=shared\""), "{option}");
        let pg = StoreLocation::parse("postgres://u:secret@db:notaport/relay", dir).unwrap_err();
        assert!(pg.contains("invalid PostgreSQL url") && !pg.contains("secret"), "{pg}");
    }

    #[test]
    fn postgres_urls_are_shown_without_their_password() {
        let pg = StoreLocation::parse("postgres://relay:s3cret@db:5432/relay", Path::new("/")).unwrap();
        assert_eq!(pg, StoreLocation::Postgres("postgres://relay:s3cret@db:5432/relay".into()));
        assert_eq!(pg.to_string(), "postgres://relay:***@db:5432/relay");
        let local = StoreLocation::parse("postgres://postgres@127.0.0.1:5433/test?sslmode=disable", Path::new("/"));
        assert_eq!(local.unwrap().to_string(), "postgres://postgres@127.0.0.1:5433/test?sslmode=disable");
        // Where the server is, said in the query, stays; a password there does not.
        let query = StoreLocation::parse("postgres:///ncux?host=127.0.0.1&port=5999&password=s3cret", Path::new("/"));
        assert_eq!(query.unwrap().to_string(), "postgres:///ncux?host=127.0.0.1&port=5999&password=***");
    }
}
