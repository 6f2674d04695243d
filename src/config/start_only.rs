//! Settings read once, at start: what the listener, the connection limits
//! and the store are built from. A reload that changes one keeps the
//! running value and names the key, so the relay never says "reloaded"
//! while silently running something else. Everything not listed here
//! (routes, destinations, templates, tokens, retries, the auth allowances,
//! trusted proxies, the TLS certificate and key files) applies on reload.

use super::types::Config;

/// Every start-only key, as docs/operations.md (Reloading) lists them.
pub const START_ONLY: &[&str] = &[
    "server.listen",
    "server.header_timeout",
    "server.max_connections",
    "server.tls_cert and server.tls_key (turning TLS on or off; a renewed certificate applies on reload)",
    "raaft.dedup_window",
    "store.url",
    "admin.listen",
];

/// Puts the running value of every start-only setting back into `new`,
/// and returns the keys whose configured value differed.
pub fn keep_start_only(new: &mut Config, running: &Config) -> Vec<&'static str> {
    let mut kept = Vec::new();
    macro_rules! keep {
        ($key:expr, $($field:tt)+) => {
            if new.$($field)+ != running.$($field)+ {
                kept.push($key);
                new.$($field)+ = running.$($field)+.clone();
            }
        };
    }
    keep!("server.listen", server.listen);
    keep!("server.header_timeout", server.header_timeout);
    keep!("server.max_connections", server.max_connections);
    if new.server.tls.is_some() != running.server.tls.is_some() {
        kept.push(if running.server.tls.is_some() { "server.tls_cert (removed)" } else { "server.tls_cert (added)" });
        new.server.tls = running.server.tls.clone();
    }
    keep!("raaft.dedup_window", dedup_window);
    keep!("store.url", store.location);
    keep!("admin.listen", admin_listen);
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::time::Duration;

    fn config(extra: &str) -> Config {
        let text = format!("[raaft]\ntokens = [\"t\"]\n{extra}");
        Config::parse(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config/relay.toml"), &text, &|_| None)
            .expect("a valid config")
    }

    #[test]
    fn start_only_settings_keep_their_running_values_and_are_named() {
        let running = config("[server]\nlisten = \"127.0.0.1:8080\"\nauth_failures = \"5/min\"\n");
        let mut new = config(
            "[server]\nlisten = \"0.0.0.0:9000\"\nmax_connections = 10\nauth_failures = \"9/min\"\n\
             [store]\nurl = \"sqlite://elsewhere.db\"\n",
        );
        let kept = keep_start_only(&mut new, &running);
        assert_eq!(kept, ["server.listen", "server.max_connections", "store.url"]);
        assert_eq!(new.server.listen, "127.0.0.1:8080");
        assert_eq!(new.server.max_connections, running.server.max_connections);
        assert_eq!(new.store.location, running.store.location);
        // What applies on reload is left as configured.
        assert_eq!(new.server.auth_failures.map(|r| r.count), Some(9));
        let mut same = config("[server]\nlisten = \"127.0.0.1:8080\"\nheader_timeout = \"10s\"\n");
        assert!(keep_start_only(&mut same, &running).is_empty());
        assert_eq!(same.server.header_timeout, Duration::from_secs(10));
    }
}
