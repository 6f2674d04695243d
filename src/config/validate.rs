//! From the raw file to a [`Config`]: defaults filled in, every value
//! parsed and every cross-reference checked (routes name destinations,
//! destinations have what their kind needs), each problem with its key and
//! line, all reported at once.

use super::public_url::PublicUrl;
use super::raw::*;
use super::spans::KeyLines;
use super::store::StoreLocation;
use super::types::*;
use super::values::{check_name, condition, parse_duration, template_fits};
use crate::problems::{Problem, Problems};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the store goes when `[store] url` is not set: the state folder
/// systemd gives the service (`StateDirectory=`, the first when it names
/// several), else `data/relay.db` beside the config's folder.
fn default_store_url(env: &dyn Fn(&str) -> Option<String>) -> String {
    match env("STATE_DIRECTORY").as_deref().and_then(|dirs| dirs.split(':').next()).filter(|d| !d.is_empty()) {
        Some(dir) => format!("sqlite://{}", Path::new(dir).join("relay.db").display()),
        None => "sqlite://../data/relay.db".to_owned(),
    }
}

/// Where each section's problems go: with the file, and the key's line.
struct Report<'a> {
    path: &'a Path,
    lines: &'a KeyLines,
    problems: &'a mut Problems,
}

impl Report<'_> {
    fn push(&mut self, key: &str, message: String) {
        self.problems.push(Problem::new(self.path, message).at_line(self.lines.line_of(key)).with_key(key));
    }

    /// The duration at `key`, or `default` (also when it does not parse).
    fn duration(&mut self, key: &str, raw: &Option<String>, default: Duration) -> Duration {
        match raw {
            None => default,
            Some(s) => parse_duration(s).unwrap_or_else(|e| {
                self.push(key, e);
                default
            }),
        }
    }

    /// The rate at `key` ("none": no limit), or `default`.
    fn rate(&mut self, key: &str, raw: &Option<String>, default: Rate) -> Option<Rate> {
        match raw {
            None => Some(default),
            Some(text) => Rate::parse(text).unwrap_or_else(|e| {
                self.push(key, e);
                None
            }),
        }
    }

    /// A problem at `key` for each of `tokens` that is blank.
    fn blank_tokens(&mut self, key: &str, tokens: &[String]) {
        for (i, token) in tokens.iter().enumerate() {
            if token.trim().is_empty() {
                self.push(&format!("{key}[{i}]"), "token is empty".into());
            }
        }
    }
}

/// The config of `raw`, section by section; every problem goes to
/// `problems`.
pub(super) fn build(
    path: &Path,
    base_dir: &Path,
    raw: RawConfig,
    lines: &KeyLines,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
) -> Config {
    let mut report = Report { path, lines, problems };
    let templates_dir = base_dir.join(raw.templates_dir.as_deref().unwrap_or("../templates"));
    if !templates_dir.is_dir() {
        report.push("templates_dir", format!("templates directory \"{}\" does not exist", templates_dir.display()));
    }
    if raw.raaft.tokens.is_empty() {
        report.push("raaft.tokens", "at least one token is required (tokens = [\"${RAAFT_TOKEN}\"])".into());
    }
    report.blank_tokens("raaft.tokens", &raw.raaft.tokens);
    let server = server(&mut report, &raw.server, base_dir);
    let dedup_window = report.duration("raaft.dedup_window", &raw.raaft.dedup_window, Duration::from_secs(24 * 3600));
    let store = store(&mut report, &raw.store, base_dir, env);
    let (admin_auth_failures, admin_session) = admin(&mut report, &raw.admin);
    let retry = retry(&mut report, &raw.retry);
    // A destination that is declared but wrong is reported as such: the
    // routes and digests naming it are not wrong too.
    let declared: BTreeMap<String, Option<DestinationKind>> = raw
        .destinations
        .iter()
        .map(|(name, d)| (name.clone(), d.kind.as_deref().and_then(DestinationKind::parse)))
        .collect();
    let destinations = destinations(&mut report, raw.destinations, base_dir);
    let alerts = raw.alerts.map(|a| {
        if !declared.contains_key(&a.destination) {
            report.push("alerts.destination", format!("unknown destination \"{}\"", a.destination));
        }
        let backlog_after = report.duration("alerts.backlog_after", &a.backlog_after, Duration::from_secs(600));
        AlertsConfig { destination: a.destination, backlog_after }
    });
    let routes = routes(&mut report, raw.routes, &declared);
    let defaults = HistoryConfig::default();
    let history = HistoryConfig {
        retention: report.duration("history.retention", &raw.history.retention, defaults.retention),
        catch_up: report.duration("history.catch_up", &raw.history.catch_up, defaults.catch_up),
    };
    let digests = digests(&mut report, raw.digests, &declared);
    Config {
        path: path.to_path_buf(),
        templates_dir,
        server,
        tokens: raw.raaft.tokens,
        dedup_window,
        store,
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
        unresolved: Vec::new(),
    }
}

/// `[server]`.
fn server(report: &mut Report<'_>, raw: &RawServer, base_dir: &Path) -> ServerConfig {
    let server = ServerConfig {
        listen: raw.listen.clone().unwrap_or_else(|| "127.0.0.1:8080".to_owned()),
        max_body_bytes: raw.max_body_bytes.unwrap_or(256 * 1024),
        metrics: raw.metrics.unwrap_or(true),
        header_timeout: report.duration("server.header_timeout", &raw.header_timeout, Duration::from_secs(10)),
        body_timeout: report.duration("server.body_timeout", &raw.body_timeout, Duration::from_secs(30)),
        max_connections: raw.max_connections.unwrap_or(1024),
        auth_failures: report.rate(
            "server.auth_failures",
            &raw.auth_failures,
            Rate { count: 20, per: Duration::from_secs(60) },
        ),
        trusted_proxies: trusted_proxies(report, &raw.trusted_proxies),
        tls: tls(report, &raw.tls_cert, &raw.tls_key, base_dir),
        public_url: raw
            .public_url
            .as_deref()
            .and_then(|text| PublicUrl::parse(text).map_err(|e| report.push("server.public_url", e)).ok()),
    };
    listen_address(report, "server.listen", &server.listen);
    if server.max_body_bytes == 0 {
        report.push("server.max_body_bytes", "must be greater than 0".into());
    }
    for (key, value) in [("server.header_timeout", server.header_timeout), ("server.body_timeout", server.body_timeout)]
    {
        if value.is_zero() {
            report.push(key, "must be longer than 0s".into());
        }
    }
    if server.max_connections == 0 {
        report.push("server.max_connections", "must be greater than 0".into());
    }
    server
}

/// An address to listen on: `host:port` (`127.0.0.1:8080`,
/// `[::]:8080`, `localhost:8080`), the port a number. A host name is
/// resolved when `serve` binds it.
fn listen_address(report: &mut Report<'_>, key: &str, listen: &str) {
    if listen.parse::<std::net::SocketAddr>().is_ok() {
        return;
    }
    let well_formed = listen
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.trim().is_empty() && !host.contains(' ') && port.parse::<u16>().is_ok());
    if well_formed {
        return;
    }
    let port = listen.trim().trim_start_matches(':');
    let example = if !port.is_empty() && port.parse::<u16>().is_ok() {
        format!("\"127.0.0.1:{port}\" (this machine only) or \"0.0.0.0:{port}\" (every interface)")
    } else {
        "\"127.0.0.1:8080\" (this machine only) or \"0.0.0.0:8080\" (every interface)".to_owned()
    };
    report.push(key, format!("\"{listen}\" is not an address to listen on: write host:port, e.g. {example}"));
}

/// `server.trusted_proxies`: addresses and networks.
fn trusted_proxies(report: &mut Report<'_>, raw: &[String]) -> Vec<ipnet::IpNet> {
    raw.iter()
        .enumerate()
        .filter_map(|(i, text)| {
            let parsed =
                text.parse::<ipnet::IpNet>().or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
            parsed
                .map_err(|_| {
                    report.push(
                        &format!("server.trusted_proxies[{i}]"),
                        format!("\"{text}\" is not an IP address or network (e.g. \"10.0.0.1\", \"10.0.0.0/8\")"),
                    )
                })
                .ok()
        })
        .collect()
}

/// `server.tls_cert` and `server.tls_key`: both or neither, and a pair
/// that loads (checked here, so that `check` and a reload report a bad
/// pair with its key and line).
fn tls(report: &mut Report<'_>, cert: &Option<String>, key: &Option<String>, base_dir: &Path) -> Option<TlsFiles> {
    match (cert, key) {
        (None, None) => None,
        (Some(cert), Some(key)) => {
            let files = TlsFiles { cert: base_dir.join(cert), key: base_dir.join(key) };
            match crate::tls::acceptor(&files.cert, &files.key) {
                Ok(_) => Some(files),
                Err(e) => {
                    let key = match e {
                        crate::tls::TlsError::Key { .. } => "server.tls_key",
                        _ => "server.tls_cert",
                    };
                    report.push(key, e.to_string());
                    None
                }
            }
        }
        (Some(_), None) => {
            report.push("server.tls_cert", "needs server.tls_key as well".into());
            None
        }
        (None, Some(_)) => {
            report.push("server.tls_key", "needs server.tls_cert as well".into());
            None
        }
    }
}

/// `[store]`: where (by default, systemd's state folder or beside the
/// config) and how long delivered events are kept.
fn store(
    report: &mut Report<'_>,
    raw: &RawStore,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> StoreConfig {
    let retention = report.duration("store.retention", &raw.retention, Duration::from_secs(14 * 24 * 3600));
    let url = raw.url.clone().unwrap_or_else(|| default_store_url(env));
    let location = StoreLocation::parse(&url, base_dir).unwrap_or_else(|e| {
        report.push("store.url", e);
        StoreLocation::Sqlite(PathBuf::new())
    });
    StoreConfig { location, retention }
}

/// `[admin]`: its allowance of failed sign-ins and how long a console
/// session lasts; what needs a token has one.
fn admin(report: &mut Report<'_>, raw: &RawAdmin) -> (Option<Rate>, Duration) {
    let auth_failures =
        report.rate("admin.auth_failures", &raw.auth_failures, Rate { count: 10, per: Duration::from_secs(60) });
    let session = report.duration("admin.session", &raw.session, Duration::from_secs(12 * 3600));
    if session.is_zero() {
        report.push("admin.session", "a session must last longer than 0s".into());
    }
    if raw.edit_templates && raw.tokens.is_empty() {
        report.push("admin.edit_templates", "needs at least one admin token (the console signs in with one)".into());
    }
    if raw.metrics_auth && raw.tokens.is_empty() {
        report.push("admin.metrics_auth", "needs at least one admin token".into());
    }
    report.blank_tokens("admin.tokens", &raw.tokens);
    if let Some(listen) = &raw.listen {
        listen_address(report, "admin.listen", listen);
    }
    (auth_failures, session)
}

/// `[retry]`.
fn retry(report: &mut Report<'_>, raw: &RawRetry) -> RetryPolicy {
    let mut retry = RetryPolicy::default();
    if let Some(n) = raw.max_attempts {
        if n == 0 {
            report.push("retry.max_attempts", "must be at least 1".into());
        }
        retry.max_attempts = n.max(1);
    }
    retry.initial_backoff = report.duration("retry.initial_backoff", &raw.initial_backoff, retry.initial_backoff);
    retry.max_backoff = report.duration("retry.max_backoff", &raw.max_backoff, retry.max_backoff);
    retry.attempt_timeout = report.duration("retry.attempt_timeout", &raw.attempt_timeout, retry.attempt_timeout);
    if retry.attempt_timeout.is_zero() {
        report.push("retry.attempt_timeout", "must be greater than 0".into());
    }
    retry
}

/// `[destinations.*]`, each named as a name may be.
fn destinations(
    report: &mut Report<'_>,
    raw: BTreeMap<String, RawDestination>,
    base_dir: &Path,
) -> BTreeMap<String, DestinationConfig> {
    let mut destinations = BTreeMap::new();
    for (name, d) in raw {
        let key = format!("destinations.{name}");
        if let Err(e) = check_name(&name) {
            report.push(&key, format!("destination name {e}"));
        }
        if let Some(dest) = build_destination(report, &name, d, &key, base_dir) {
            destinations.insert(name, DestinationConfig { line: report.lines.line_of(&key), ..dest });
        }
    }
    destinations
}

/// `[[routes]]`: named once each, to destinations that exist, with a
/// condition that compiles.
fn routes(
    report: &mut Report<'_>,
    raw: Vec<RawRoute>,
    destinations: &BTreeMap<String, Option<DestinationKind>>,
) -> Vec<RouteConfig> {
    let mut routes = Vec::new();
    let mut names = BTreeSet::new();
    for (i, r) in raw.into_iter().enumerate() {
        let key = format!("routes[{i}]");
        let name = r.name.unwrap_or_else(|| format!("route-{}", i + 1));
        if !names.insert(name.clone()) {
            report.push(&format!("{key}.name"), format!("route \"{name}\" is defined twice"));
        }
        if let Err(e) = check_name(&name) {
            report.push(&format!("{key}.name"), format!("route name {e}"));
        }
        if r.to.is_empty() {
            report.push(&format!("{key}.to"), format!("route \"{name}\": `to` names no destination"));
        }
        for (j, dest) in r.to.iter().enumerate() {
            if !destinations.contains_key(dest) {
                report.push(&format!("{key}.to[{j}]"), format!("route \"{name}\": unknown destination \"{dest}\""));
            }
        }
        match condition(r.when.as_ref()) {
            Ok(when) => {
                routes.push(RouteConfig { name, when, to: r.to, stop: r.stop, line: report.lines.line_of(&key) })
            }
            Err(e) => report.push(&format!("{key}.when"), format!("route \"{name}\": {e}")),
        }
    }
    routes
}

/// `[digests.*]` ([`super::digests::build`]), each problem at its field's
/// line (or the digest's).
fn digests(
    report: &mut Report<'_>,
    raw: BTreeMap<String, RawDigest>,
    destinations: &BTreeMap<String, Option<DestinationKind>>,
) -> BTreeMap<String, DigestConfig> {
    let mut digests = BTreeMap::new();
    for (name, d) in raw {
        let key = format!("digests.{name}");
        if let Err(e) = check_name(&name) {
            report.push(&key, format!("digest name {e}"));
        }
        let (path, lines) = (report.path, report.lines);
        let problems = &mut *report.problems;
        let mut problem_at = |field: &str, message: String| {
            let field_key = format!("{key}.{field}");
            let line = lines.line_of(&field_key).or_else(|| lines.line_of(&key));
            problems.push(Problem::new(path, message).at_line(line).with_key(field_key));
        };
        if let Some(digest) = super::digests::build(&name, d, destinations, &mut problem_at) {
            digests.insert(name, DigestConfig { line: lines.line_of(&key), ..digest });
        }
    }
    digests
}

/// One destination: a kind it names, only that kind's settings, what the
/// kind needs, and its rate (Slack and Discord are paced by default).
fn build_destination(
    report: &mut Report<'_>,
    name: &str,
    d: RawDestination,
    key: &str,
    base_dir: &Path,
) -> Option<DestinationConfig> {
    let (kind, settings_ok) = kind_of(report, name, &d, key)?;
    let Some(template) = d.template.clone() else {
        report.push(key, format!("destination \"{name}\": missing `template`"));
        return None;
    };
    let mut ok = needs_met(report, name, &d, kind, key) && settings_ok;
    let default_rate = match kind {
        DestinationKind::Slack => Some(Rate { count: 1, per: Duration::from_secs(1) }),
        DestinationKind::Discord => Some(Rate { count: 5, per: Duration::from_secs(2) }),
        _ => None,
    };
    let rate_limit = match d.rate_limit.as_deref().map(Rate::parse) {
        None => default_rate,
        Some(Ok(rate)) => rate,
        Some(Err(e)) => {
            report.push(&format!("{key}.rate_limit"), format!("destination \"{name}\": {e}"));
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

/// The destination's kind, if it names one it knows, and whether it has
/// only that kind's settings.
fn kind_of(report: &mut Report<'_>, name: &str, d: &RawDestination, key: &str) -> Option<(DestinationKind, bool)> {
    let Some(kind_str) = d.kind.as_deref() else {
        let message = format!("destination \"{name}\": missing `kind` (slack, discord, email, webhook or console)");
        report.push(key, message);
        return None;
    };
    let Some(kind) = DestinationKind::parse(kind_str) else {
        report.push(
            &format!("{key}.kind"),
            format!("destination \"{name}\": unknown kind \"{kind_str}\" (slack, discord, email, webhook or console)"),
        );
        return None;
    };
    let mut ok = true;
    for k in d.present_keys() {
        if !kind.allowed_keys().contains(&k) {
            report.push(
                &format!("{key}.{k}"),
                format!("destination \"{name}\": `{k}` is not a setting of {} destinations", kind.as_str()),
            );
            ok = false;
        }
    }
    Some((kind, ok))
}

/// Whether the destination has what its kind needs: a `url` (all but the
/// console), and for e-mail a sender, recipients and a body template that
/// is not JSON.
fn needs_met(report: &mut Report<'_>, name: &str, d: &RawDestination, kind: DestinationKind, key: &str) -> bool {
    let mut ok = true;
    let mut missing = |report: &mut Report<'_>, key: &str, message: String| {
        report.push(key, format!("destination \"{name}\": {message}"));
        ok = false;
    };
    if kind != DestinationKind::Console && d.url.as_deref().is_none_or(|u| u.trim().is_empty()) {
        missing(report, &format!("{key}.url"), "missing `url`".into());
    }
    if kind == DestinationKind::Email {
        if d.from.is_none() {
            missing(report, key, "missing `from`".into());
        }
        if d.to.as_ref().is_none_or(Vec::is_empty) {
            missing(report, &format!("{key}.to"), "`to` lists no address".into());
        }
    }
    if let Some(Err(e)) = d.template.as_deref().map(|t| template_fits(kind, t)) {
        missing(report, &format!("{key}.template"), e);
    }
    ok
}
