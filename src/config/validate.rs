//! From the raw file to a [`Config`]: defaults filled in, every value
//! parsed and every cross-reference checked (routes name destinations,
//! destinations have what their kind needs), each problem with its key and
//! line, all reported at once.

use super::raw::*;
use super::*;
use crate::problems::{Problem, Problems};
use crate::rules::Condition;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

/// Parses "500ms", "10s", "5m", "14d".
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("invalid duration \"{s}\": {e} (write e.g. \"500ms\", \"10s\", \"5m\")"))
}

/// Where the store goes when `[store] url` is not set: the state folder
/// systemd gives the service (`StateDirectory=`, the first when it names
/// several), else `data/relay.db` beside the config's folder.
fn default_store_url(env: &dyn Fn(&str) -> Option<String>) -> String {
    match env("STATE_DIRECTORY").as_deref().and_then(|dirs| dirs.split(':').next()).filter(|d| !d.is_empty()) {
        Some(dir) => format!("sqlite://{}", Path::new(dir).join("relay.db").display()),
        None => "sqlite://../data/relay.db".to_owned(),
    }
}

pub(super) fn build(
    path: &Path,
    base_dir: &Path,
    raw: RawConfig,
    lines: &KeyLines,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
) -> Config {
    let problem = |key: &str, message: String| Problem::new(path, message).at_line(lines.line_of(key)).with_key(key);

    let templates_dir = base_dir.join(raw.templates_dir.as_deref().unwrap_or("../templates"));
    if !templates_dir.is_dir() {
        problems.push(problem(
            "templates_dir",
            format!("templates directory \"{}\" does not exist", templates_dir.display()),
        ));
    }

    let listen = raw.server.listen.unwrap_or_else(|| "127.0.0.1:8080".to_owned());

    if raw.raaft.tokens.is_empty() {
        problems.push(problem("raaft.tokens", "at least one token is required (tokens = [\"${RAAFT_TOKEN}\"])".into()));
    }
    for (i, token) in raw.raaft.tokens.iter().enumerate() {
        if token.trim().is_empty() {
            problems.push(problem(&format!("raaft.tokens[{i}]"), "token is empty".into()));
        }
    }

    let duration = |key: &str, raw: &Option<String>, default: Duration, problems: &mut Problems| match raw {
        None => default,
        Some(s) => parse_duration(s).unwrap_or_else(|e| {
            problems.push(problem(key, e));
            default
        }),
    };
    let server = ServerConfig {
        listen,
        max_body_bytes: raw.server.max_body_bytes.unwrap_or(256 * 1024),
        metrics: raw.server.metrics.unwrap_or(true),
        header_timeout: duration(
            "server.header_timeout",
            &raw.server.header_timeout,
            Duration::from_secs(10),
            problems,
        ),
        body_timeout: duration("server.body_timeout", &raw.server.body_timeout, Duration::from_secs(30), problems),
        max_connections: raw.server.max_connections.unwrap_or(1024),
        auth_failures: match &raw.server.auth_failures {
            None => Some(Rate { count: 20, per: Duration::from_secs(60) }),
            Some(text) => Rate::parse(text).unwrap_or_else(|e| {
                problems.push(problem("server.auth_failures", e));
                None
            }),
        },
        trusted_proxies: raw
            .server
            .trusted_proxies
            .iter()
            .enumerate()
            .filter_map(|(i, text)| {
                let parsed =
                    text.parse::<ipnet::IpNet>().or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
                parsed
                    .map_err(|_| {
                        problems.push(problem(
                            &format!("server.trusted_proxies[{i}]"),
                            format!("\"{text}\" is not an IP address or network (e.g. \"10.0.0.1\", \"10.0.0.0/8\")"),
                        ))
                    })
                    .ok()
            })
            .collect(),
        tls: match (&raw.server.tls_cert, &raw.server.tls_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => {
                let files = TlsFiles { cert: base_dir.join(cert), key: base_dir.join(key) };
                // Checked here, so that `check` and a reload report a bad
                // pair with its key and line.
                match crate::tls::acceptor(&files.cert, &files.key) {
                    Ok(_) => Some(files),
                    Err(e) => {
                        let key = match e {
                            crate::tls::TlsError::Key { .. } => "server.tls_key",
                            _ => "server.tls_cert",
                        };
                        problems.push(problem(key, e.to_string()));
                        None
                    }
                }
            }
            (Some(_), None) => {
                problems.push(problem("server.tls_cert", "needs server.tls_key as well".into()));
                None
            }
            (None, Some(_)) => {
                problems.push(problem("server.tls_key", "needs server.tls_cert as well".into()));
                None
            }
        },
        public_url: raw
            .server
            .public_url
            .as_deref()
            .and_then(|text| PublicUrl::parse(text).map_err(|e| problems.push(problem("server.public_url", e))).ok()),
    };
    if server.max_body_bytes == 0 {
        problems.push(problem("server.max_body_bytes", "must be greater than 0".into()));
    }
    for (key, value) in [("server.header_timeout", server.header_timeout), ("server.body_timeout", server.body_timeout)]
    {
        if value.is_zero() {
            problems.push(problem(key, "must be longer than 0s".into()));
        }
    }
    if server.max_connections == 0 {
        problems.push(problem("server.max_connections", "must be greater than 0".into()));
    }
    let dedup_window =
        duration("raaft.dedup_window", &raw.raaft.dedup_window, Duration::from_secs(24 * 3600), problems);
    let retention = duration("store.retention", &raw.store.retention, Duration::from_secs(14 * 24 * 3600), problems);
    let store_url = raw.store.url.clone().unwrap_or_else(|| default_store_url(env));
    let store_url = store_url.as_str();
    let location = StoreLocation::parse(store_url, base_dir).unwrap_or_else(|e| {
        problems.push(problem("store.url", e));
        StoreLocation::Sqlite(PathBuf::new())
    });
    let admin_auth_failures = match &raw.admin.auth_failures {
        None => Some(Rate { count: 10, per: Duration::from_secs(60) }),
        Some(text) => Rate::parse(text).unwrap_or_else(|e| {
            problems.push(problem("admin.auth_failures", e));
            None
        }),
    };
    let admin_session = duration("admin.session", &raw.admin.session, Duration::from_secs(12 * 3600), problems);
    if admin_session.is_zero() {
        problems.push(problem("admin.session", "a session must last longer than 0s".into()));
    }
    if raw.admin.edit_templates && raw.admin.tokens.is_empty() {
        problems.push(problem(
            "admin.edit_templates",
            "needs at least one admin token (the console signs in with one)".into(),
        ));
    }
    if raw.admin.metrics_auth && raw.admin.tokens.is_empty() {
        problems.push(problem("admin.metrics_auth", "needs at least one admin token".into()));
    }
    for (i, token) in raw.admin.tokens.iter().enumerate() {
        if token.trim().is_empty() {
            problems.push(problem(&format!("admin.tokens[{i}]"), "token is empty".into()));
        }
    }

    let mut retry = RetryPolicy::default();
    if let Some(n) = raw.retry.max_attempts {
        if n == 0 {
            problems.push(problem("retry.max_attempts", "must be at least 1".into()));
        }
        retry.max_attempts = n.max(1);
    }
    let durations = [
        ("retry.initial_backoff", &raw.retry.initial_backoff, &mut retry.initial_backoff),
        ("retry.max_backoff", &raw.retry.max_backoff, &mut retry.max_backoff),
        ("retry.attempt_timeout", &raw.retry.attempt_timeout, &mut retry.attempt_timeout),
    ];
    for (key, raw, slot) in durations {
        if let Some(s) = raw {
            match parse_duration(s) {
                Ok(d) => *slot = d,
                Err(e) => problems.push(problem(key, e)),
            }
        }
    }
    if retry.attempt_timeout.is_zero() {
        problems.push(problem("retry.attempt_timeout", "must be greater than 0".into()));
    }

    let mut destinations = BTreeMap::new();
    for (name, d) in raw.destinations {
        let key = format!("destinations.{name}");
        if let Err(e) = check_name(&name) {
            problems.push(problem(&key, format!("destination name {e}")));
        }
        if let Some(dest) = build_destination(&name, d, &key, base_dir, &problem, problems) {
            destinations.insert(name, DestinationConfig { line: lines.line_of(&key), ..dest });
        }
    }

    let alerts = raw.alerts.map(|a| {
        if !destinations.contains_key(&a.destination) {
            problems.push(problem("alerts.destination", format!("unknown destination \"{}\"", a.destination)));
        }
        let backlog_after = duration("alerts.backlog_after", &a.backlog_after, Duration::from_secs(600), problems);
        AlertsConfig { destination: a.destination, backlog_after }
    });

    let mut routes = Vec::new();
    let mut names = BTreeSet::new();
    for (i, r) in raw.routes.into_iter().enumerate() {
        let key = format!("routes[{i}]");
        let name = r.name.unwrap_or_else(|| format!("route-{}", i + 1));
        if !names.insert(name.clone()) {
            problems.push(problem(&format!("{key}.name"), format!("route \"{name}\" is defined twice")));
        }
        if let Err(e) = check_name(&name) {
            problems.push(problem(&format!("{key}.name"), format!("route name {e}")));
        }
        if r.to.is_empty() {
            problems.push(problem(&format!("{key}.to"), format!("route \"{name}\": `to` names no destination")));
        }
        for (j, dest) in r.to.iter().enumerate() {
            if !destinations.contains_key(dest) {
                problems.push(problem(
                    &format!("{key}.to[{j}]"),
                    format!("route \"{name}\": unknown destination \"{dest}\""),
                ));
            }
        }
        match condition(r.when.as_ref()) {
            Ok(when) => routes.push(RouteConfig { name, when, to: r.to, stop: r.stop, line: lines.line_of(&key) }),
            Err(e) => problems.push(problem(&format!("{key}.when"), format!("route \"{name}\": {e}"))),
        }
    }

    let history = HistoryConfig {
        retention: duration("history.retention", &raw.history.retention, HistoryConfig::default().retention, problems),
        catch_up: duration("history.catch_up", &raw.history.catch_up, HistoryConfig::default().catch_up, problems),
    };
    let mut digests = BTreeMap::new();
    for (name, d) in raw.digests {
        let key = format!("digests.{name}");
        if let Err(e) = check_name(&name) {
            problems.push(problem(&key, format!("digest name {e}")));
        }
        let mut problem_at = |field: &str, message: String| {
            let field_key = format!("{key}.{field}");
            let line = lines.line_of(&field_key).or_else(|| lines.line_of(&key));
            problems.push(Problem::new(path, message).at_line(line).with_key(field_key));
        };
        if let Some(digest) = super::digests::build(&name, d, &destinations, &mut problem_at) {
            digests.insert(name, DigestConfig { line: lines.line_of(&key), ..digest });
        }
    }

    Config {
        path: path.to_path_buf(),
        templates_dir,
        server,
        tokens: raw.raaft.tokens,
        dedup_window,
        store: StoreConfig { location, retention },
        admin_tokens: raw.admin.tokens,
        admin_listen: raw.admin.listen,
        metrics_auth: raw.admin.metrics_auth,
        admin_auth_failures,
        admin_session,
        edit_templates: raw.admin.edit_templates,
        alerts,
        retry,
        destinations,
        routes,
        history,
        digests,
        files_read: Vec::new(),
    }
}

/// A route's or a digest's `when`: absent (always), a table of
/// `field = value`, or a CEL expression.
pub(super) fn condition(when: Option<&toml::Value>) -> Result<Condition, String> {
    match when {
        None => Ok(Condition::Always),
        Some(toml::Value::String(expr)) => Condition::cel(expr),
        Some(toml::Value::Table(table)) => Condition::table(table),
        Some(other) => {
            Err(format!("`when` must be a table of field = value or a CEL expression string, not {}", other.type_str()))
        }
    }
}

/// Destination and route names appear in logs, metric labels and the
/// store (a delivery lists its routes separated by commas).
fn check_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err(format!("\"{name}\" is blank"));
    }
    if let Some(c) = name.chars().find(|c| c.is_control() || *c == ',') {
        return Err(format!("\"{}\" contains {c:?}, which a name may not", name.escape_debug()));
    }
    Ok(())
}

fn build_destination(
    name: &str,
    d: RawDestination,
    key: &str,
    base_dir: &Path,
    problem: &dyn Fn(&str, String) -> Problem,
    problems: &mut Problems,
) -> Option<DestinationConfig> {
    let Some(kind_str) = d.kind.as_deref() else {
        problems.push(problem(
            key,
            format!("destination \"{name}\": missing `kind` (slack, discord, email, webhook or console)"),
        ));
        return None;
    };
    let Some(kind) = DestinationKind::parse(kind_str) else {
        problems.push(problem(
            &format!("{key}.kind"),
            format!("destination \"{name}\": unknown kind \"{kind_str}\" (slack, discord, email, webhook or console)"),
        ));
        return None;
    };
    let mut ok = true;
    for k in d.present_keys() {
        if !kind.allowed_keys().contains(&k) {
            problems.push(problem(
                &format!("{key}.{k}"),
                format!("destination \"{name}\": `{k}` is not a setting of {} destinations", kind.as_str()),
            ));
            ok = false;
        }
    }
    let Some(template) = d.template.clone() else {
        problems.push(problem(key, format!("destination \"{name}\": missing `template`")));
        return None;
    };
    if kind != DestinationKind::Console && d.url.as_deref().is_none_or(|u| u.trim().is_empty()) {
        problems.push(problem(&format!("{key}.url"), format!("destination \"{name}\": missing `url`")));
        ok = false;
    }
    if kind == DestinationKind::Email {
        if d.from.is_none() {
            problems.push(problem(key, format!("destination \"{name}\": missing `from`")));
            ok = false;
        }
        if d.to.as_ref().is_none_or(Vec::is_empty) {
            problems.push(problem(&format!("{key}.to"), format!("destination \"{name}\": `to` lists no address")));
            ok = false;
        }
        if template.ends_with(".json.hbs") {
            problems.push(problem(
                &format!("{key}.template"),
                format!("destination \"{name}\": an e-mail body template cannot be a .json.hbs template"),
            ));
            ok = false;
        }
    }
    let default_rate = match kind {
        DestinationKind::Slack => Some(Rate { count: 1, per: Duration::from_secs(1) }),
        DestinationKind::Discord => Some(Rate { count: 5, per: Duration::from_secs(2) }),
        _ => None,
    };
    let rate_limit = match d.rate_limit.as_deref().map(Rate::parse) {
        None => default_rate,
        Some(Ok(rate)) => rate,
        Some(Err(e)) => {
            problems.push(problem(&format!("{key}.rate_limit"), format!("destination \"{name}\": {e}")));
            ok = false;
            None
        }
    };
    ok.then(|| DestinationConfig {
        name: name.to_owned(),
        kind,
        url: d.url.map(|u| u.trim().to_owned()),
        template,
        html_template: d.html_template,
        subject: d.subject,
        from: d.from,
        to: d.to.unwrap_or_default(),
        username: d.username,
        avatar_url: d.avatar_url,
        headers: d.headers.unwrap_or_default(),
        rate_limit,
        ca_file: d.ca_file.map(|path| base_dir.join(path.trim())),
        line: None,
    })
}
