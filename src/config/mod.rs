//! The relay's configuration: the TOML file users write, loaded with
//! environment and secret-file interpolation and checked all at once, so
//! every mistake is reported with its file, line and key at start-up
//! instead of at 3 a.m. when the first event arrives.

mod interpolate;
mod spans;
mod start_only;
mod store;

pub use interpolate::{interpolate, InterpolateError};
pub use spans::KeyLines;
pub use start_only::{keep_start_only, START_ONLY};
pub use store::StoreLocation;

use crate::problems::{Problem, Problems};
use crate::rules::Condition;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the relay listens and what it accepts.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: String,
    /// Raaft events are a few kilobytes; the cap keeps a hostile client
    /// from making the relay buffer megabytes.
    pub max_body_bytes: u64,
    /// Whether `/metrics` is served.
    pub metrics: bool,
    /// How long a client has to send a request's headers (and how long an
    /// idle connection stays open).
    pub header_timeout: Duration,
    /// How long a client has to send a request's body once its headers
    /// are in.
    pub body_timeout: Duration,
    /// How many connections are served at once; more wait to be accepted.
    pub max_connections: usize,
    /// How many requests with a missing or wrong token one client address
    /// may make before it gets 429 (`None`: no limit).
    pub auth_failures: Option<Rate>,
    /// Reverse proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// TLS termination: the PEM certificate chain and private key.
    pub tls: Option<TlsFiles>,
}

/// Where the TLS certificate chain and key are (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// At most `count` messages per `per`, evenly spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

impl Rate {
    /// Parses "N/DURATION" ("1/s", "5/2s", "30/min"), or "none".
    pub fn parse(s: &str) -> Result<Option<Rate>, String> {
        let s = s.trim();
        if s == "none" || s == "unlimited" {
            return Ok(None);
        }
        let bad = || format!("invalid rate \"{s}\" (write e.g. \"1/s\", \"5/2s\", \"30/min\" or \"none\")");
        let (count, per) = s.split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let per = per.trim();
        let per = if per.starts_with(|c: char| c.is_ascii_digit()) { per.to_owned() } else { format!("1{per}") };
        let per = humantime::parse_duration(&per).map_err(|_| bad())?;
        if count == 0 || per.is_zero() {
            return Err(bad());
        }
        Ok(Some(Rate { count, per }))
    }

    /// The time between two messages.
    pub fn interval(&self) -> Duration {
        self.per / self.count
    }
}

/// Where the relay reports on itself.
#[derive(Debug, Clone)]
pub struct AlertsConfig {
    /// The destination that receives notices.
    pub destination: String,
    /// A destination whose oldest pending delivery is older than this gets
    /// a notice.
    pub backlog_after: Duration,
}

/// Where deliveries are kept.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Which engine, and where.
    pub location: StoreLocation,
    /// Delivered deliveries, their attempts and events are pruned after this.
    pub retention: Duration,
}

/// How failed deliveries are retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub attempt_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(600),
            attempt_timeout: Duration::from_secs(10),
        }
    }
}

/// The kinds of destination the relay can deliver to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestinationKind {
    Slack,
    Discord,
    Email,
    Webhook,
    Console,
}

impl DestinationKind {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "slack" => Self::Slack,
            "discord" => Self::Discord,
            "email" => Self::Email,
            "webhook" => Self::Webhook,
            "console" => Self::Console,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Slack => "slack",
            Self::Discord => "discord",
            Self::Email => "email",
            Self::Webhook => "webhook",
            Self::Console => "console",
        }
    }

    /// Keys a destination of this kind may carry besides `kind`.
    fn allowed_keys(self) -> &'static [&'static str] {
        match self {
            Self::Slack => &["url", "template", "rate_limit"],
            Self::Discord => &["url", "template", "username", "avatar_url", "rate_limit"],
            Self::Email => &["url", "template", "html_template", "subject", "from", "to", "rate_limit"],
            Self::Webhook => &["url", "template", "headers", "rate_limit"],
            Self::Console => &["template", "rate_limit"],
        }
    }
}

/// One place messages go, as configured.
#[derive(Debug, Clone)]
pub struct DestinationConfig {
    pub name: String,
    pub kind: DestinationKind,
    pub url: Option<String>,
    /// Path under `templates_dir`.
    pub template: String,
    pub html_template: Option<String>,
    pub subject: Option<String>,
    pub from: Option<String>,
    pub to: Vec<String>,
    pub username: Option<String>,
    pub avatar_url: Option<String>,
    pub headers: BTreeMap<String, String>,
    /// Pacing; defaults by kind (Slack 1/s, Discord 5/2s, others none).
    pub rate_limit: Option<Rate>,
    /// The line of `[destinations.NAME]`, for error messages.
    pub line: Option<usize>,
}

/// One routing rule.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    pub name: String,
    pub when: Condition,
    pub to: Vec<String>,
    pub stop: bool,
    pub line: Option<usize>,
}

/// A loaded, interpolated and validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The config file itself.
    pub path: PathBuf,
    pub templates_dir: PathBuf,
    pub server: ServerConfig,
    pub tokens: Vec<String>,
    /// How long an idempotency key makes a redelivered event a duplicate.
    pub dedup_window: Duration,
    pub store: StoreConfig,
    /// Bearer tokens of the admin API; none configured turns it off.
    pub admin_tokens: Vec<String>,
    /// Where the admin API and `/metrics` are served instead of the main
    /// listener (`[admin] listen`); `None`: on the main listener.
    pub admin_listen: Option<String>,
    /// Whether `/metrics` needs an admin token.
    pub metrics_auth: bool,
    /// How many requests with a missing or wrong admin token one client
    /// may make before it gets 429 (`None`: no limit).
    pub admin_auth_failures: Option<Rate>,
    pub alerts: Option<AlertsConfig>,
    pub retry: RetryPolicy,
    pub destinations: BTreeMap<String, DestinationConfig>,
    pub routes: Vec<RouteConfig>,
    /// Files read through `${file:PATH}`.
    pub files_read: Vec<PathBuf>,
}

#[derive(Deserialize, Default)]
struct RawConfig {
    templates_dir: Option<String>,
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    raaft: RawRaaft,
    #[serde(default)]
    retry: RawRetry,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    admin: RawAdmin,
    alerts: Option<RawAlerts>,
    #[serde(default)]
    destinations: BTreeMap<String, RawDestination>,
    #[serde(default)]
    routes: Vec<RawRoute>,
}

#[derive(Deserialize, Default)]
struct RawServer {
    listen: Option<String>,
    max_body_bytes: Option<u64>,
    metrics: Option<bool>,
    header_timeout: Option<String>,
    body_timeout: Option<String>,
    max_connections: Option<usize>,
    auth_failures: Option<String>,
    #[serde(default)]
    trusted_proxies: Vec<String>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
}

#[derive(Deserialize, Default)]
struct RawRaaft {
    #[serde(default)]
    tokens: Vec<String>,
    dedup_window: Option<String>,
}

#[derive(Deserialize, Default)]
struct RawStore {
    url: Option<String>,
    retention: Option<String>,
}

#[derive(Deserialize, Default)]
struct RawAdmin {
    #[serde(default)]
    tokens: Vec<String>,
    #[serde(default)]
    metrics_auth: bool,
    auth_failures: Option<String>,
    listen: Option<String>,
}

#[derive(Deserialize)]
struct RawAlerts {
    destination: String,
    backlog_after: Option<String>,
}

#[derive(Deserialize, Default)]
struct RawRetry {
    max_attempts: Option<u32>,
    initial_backoff: Option<String>,
    max_backoff: Option<String>,
    attempt_timeout: Option<String>,
}

#[derive(Deserialize, Default)]
struct RawDestination {
    kind: Option<String>,
    url: Option<String>,
    template: Option<String>,
    html_template: Option<String>,
    subject: Option<String>,
    from: Option<String>,
    to: Option<Vec<String>>,
    username: Option<String>,
    avatar_url: Option<String>,
    headers: Option<BTreeMap<String, String>>,
    rate_limit: Option<String>,
}

impl RawDestination {
    fn present_keys(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        let pairs: [(&'static str, bool); 10] = [
            ("rate_limit", self.rate_limit.is_some()),
            ("url", self.url.is_some()),
            ("template", self.template.is_some()),
            ("html_template", self.html_template.is_some()),
            ("subject", self.subject.is_some()),
            ("from", self.from.is_some()),
            ("to", self.to.is_some()),
            ("username", self.username.is_some()),
            ("avatar_url", self.avatar_url.is_some()),
            ("headers", self.headers.is_some()),
        ];
        for (key, present) in pairs {
            if present {
                keys.push(key);
            }
        }
        keys
    }
}

#[derive(Deserialize)]
struct RawRoute {
    name: Option<String>,
    when: Option<toml::Value>,
    #[serde(default)]
    to: Vec<String>,
    #[serde(default)]
    stop: bool,
}

impl Config {
    /// Reads, interpolates from the process environment and validates the
    /// config file at `path`.
    pub fn load(path: &Path) -> Result<Config, Problems> {
        Self::load_with_env(path, &|name| std::env::var(name).ok())
    }

    /// As [`Config::load`], with variables looked up through `env`.
    pub fn load_with_env(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, Problems> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Problems::one(Problem::new(path, format!("cannot read config file: {e}"))))?;
        Self::parse(path, &text, env)
    }

    /// Parses config `text` as if it had been read from `path`.
    pub fn parse(path: &Path, text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, Problems> {
        match Self::parse_partial(path, text, env) {
            (Some(config), problems) => problems.into_result(config),
            (None, problems) => Err(problems),
        }
    }

    /// Reads and interpolates the file at `path`, keeping what is valid:
    /// the config (when its structure could be read) and every problem, so
    /// later stages can report theirs too.
    pub fn load_partial(path: &Path) -> (Option<Config>, Problems) {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse_partial(path, &text, &|name| std::env::var(name).ok()),
            Err(e) => (None, Problems::one(Problem::new(path, format!("cannot read config file: {e}")))),
        }
    }

    fn parse_partial(path: &Path, text: &str, env: &dyn Fn(&str) -> Option<String>) -> (Option<Config>, Problems) {
        let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let base_dir = if base_dir.as_os_str().is_empty() { PathBuf::from(".") } else { base_dir };
        let mut value: toml::Value = match text.parse::<toml::Table>() {
            Ok(table) => toml::Value::Table(table),
            Err(e) => {
                let line = e.span().map(|s| 1 + text[..s.start].matches('\n').count());
                let message = e.message().trim().to_owned();
                return (None, Problems::one(Problem::new(path, format!("invalid TOML: {message}")).at_line(line)));
            }
        };
        let lines = KeyLines::parse(text);
        let mut problems = Problems::default();

        interpolate_value(&mut value, "", &base_dir, env, path, &lines, &mut problems);

        let mut unknown = Vec::new();
        let mut track = serde_path_to_error::Track::new();
        let raw: Result<RawConfig, _> = {
            let de = serde_path_to_error::Deserializer::new(value, &mut track);
            serde_ignored::deserialize(de, |p| unknown.push(p.to_string()))
        };
        for key in unknown {
            problems.push(Problem::new(path, "unknown key".to_owned()).at_line(lines.line_of(&key)).with_key(key));
        }
        let raw = match raw {
            Ok(raw) => raw,
            Err(e) => {
                let key = track.path().to_string();
                let message = e.to_string();
                problems.push(Problem::new(path, message).at_line(lines.line_of(&key)).with_key(key));
                return (None, problems);
            }
        };

        let mut config = build(path, &base_dir, raw, &lines, &mut problems);
        config.files_read = interpolate::file_references(text, &base_dir);
        (Some(config), problems)
    }
}

fn interpolate_value(
    value: &mut toml::Value,
    key: &str,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    file: &Path,
    lines: &KeyLines,
    problems: &mut Problems,
) {
    match value {
        toml::Value::String(s) => match interpolate(s, base_dir, env) {
            Ok(new) => *s = new,
            Err(e) => problems.push(Problem::new(file, e.to_string()).at_line(lines.line_of(key)).with_key(key)),
        },
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let key = format!("{key}[{i}]");
                interpolate_value(item, &key, base_dir, env, file, lines, problems);
            }
        }
        toml::Value::Table(table) => {
            for (k, item) in table.iter_mut() {
                let key = if key.is_empty() { k.clone() } else { format!("{key}.{k}") };
                interpolate_value(item, &key, base_dir, env, file, lines, problems);
            }
        }
        _ => {}
    }
}

/// Parses "500ms", "10s", "5m", "14d".
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("invalid duration \"{s}\": {e} (write e.g. \"500ms\", \"10s\", \"5m\")"))
}

fn build(path: &Path, base_dir: &Path, raw: RawConfig, lines: &KeyLines, problems: &mut Problems) -> Config {
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
    let store_url = raw.store.url.as_deref().unwrap_or("sqlite://../data/relay.db");
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
        if let Some(dest) = build_destination(&name, d, &key, &problem, problems) {
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
        let when = match &r.when {
            None => Ok(Condition::Always),
            Some(toml::Value::String(expr)) => Condition::cel(expr),
            Some(toml::Value::Table(table)) => Condition::table(table),
            Some(other) => Err(format!(
                "`when` must be a table of field = value or a CEL expression string, not {}",
                other.type_str()
            )),
        };
        match when {
            Ok(when) => routes.push(RouteConfig { name, when, to: r.to, stop: r.stop, line: lines.line_of(&key) }),
            Err(e) => problems.push(problem(&format!("{key}.when"), format!("route \"{name}\": {e}"))),
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
        alerts,
        retry,
        destinations,
        routes,
        files_read: Vec::new(),
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
        line: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_limits_have_defaults_and_refuse_zero() {
        let config = parse(MINIMAL).unwrap();
        assert_eq!(config.server.header_timeout, Duration::from_secs(10));
        assert_eq!(config.server.body_timeout, Duration::from_secs(30));
        assert_eq!(config.server.max_connections, 1024);
        assert_eq!(config.server.auth_failures, Some(Rate { count: 20, per: Duration::from_secs(60) }));
        assert!(config.server.trusted_proxies.is_empty());
        let text =
            format!("{MINIMAL}[server]\ntrusted_proxies = [\"10.0.0.1\", \"fd00::/8\"]\nauth_failures = \"none\"\n");
        let config = parse(&text).unwrap();
        assert_eq!(config.server.trusted_proxies.len(), 2);
        assert_eq!(config.server.auth_failures, None);
        let text = format!(
            "{MINIMAL}[server]\nheader_timeout = \"0s\"\nbody_timeout = \"soon\"\nmax_connections = 0\n\
             auth_failures = \"often\"\ntrusted_proxies = [\"proxy.local\"]\n"
        );
        let problems = parse(&text).unwrap_err().to_string();
        for key in [
            "server.header_timeout",
            "server.body_timeout",
            "server.max_connections",
            "server.auth_failures",
            "server.trusted_proxies[0]",
            "\"proxy.local\"",
        ] {
            assert!(problems.contains(key), "{key} missing from:\n{problems}");
        }
        assert!(problems.contains("\"soon\""), "{problems}");
    }

    fn parse(text: &str) -> Result<Config, Problems> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("templates")).unwrap();
        let path = dir.path().join("relay.toml");
        let env = |name: &str| match name {
            "RAAFT_TOKEN" => Some("tok".to_owned()),
            _ => None,
        };
        let text = format!("templates_dir = \"templates\"\n{text}");
        Config::parse(&path, &text, &env)
    }

    const MINIMAL: &str = "[raaft]\ntokens = [\"${RAAFT_TOKEN}\"]\n[destinations.out]\nkind = \"console\"\ntemplate = \"x.hbs\"\n[[routes]]\nname = \"all\"\nto = [\"out\"]\n";

    #[test]
    fn minimal_config_loads_with_defaults() {
        let config = parse(MINIMAL).unwrap();
        assert_eq!(config.tokens, vec!["tok"]);
        assert_eq!(config.server.listen, "127.0.0.1:8080");
        assert_eq!(config.server.max_body_bytes, 262_144);
        assert_eq!(config.retry, RetryPolicy::default());
        assert_eq!(config.dedup_window, Duration::from_secs(86_400));
        assert_eq!(config.store.retention, Duration::from_secs(14 * 86_400));
        let StoreLocation::Sqlite(store) = &config.store.location else { panic!("{:?}", config.store.location) };
        assert!(store.is_absolute() && store.ends_with("data/relay.db"), "{}", store.display());
        assert!(config.admin_tokens.is_empty());
        assert_eq!(config.routes[0].to, vec!["out"]);
    }

    #[test]
    fn names_that_the_store_could_not_keep_apart_are_refused() {
        let text = MINIMAL
            .replace("[destinations.out]", "[destinations.\"o\\u0000ut\"]")
            .replace("\"out\"]", "\"o\\u0000ut\"]");
        let problems = parse(&text).unwrap_err().to_string();
        assert!(problems.contains("destination name \"o\\0ut\" contains '\\0'"), "{problems}");
        let problems = parse(&MINIMAL.replace("name = \"all\"", "name = \"a,b\"")).unwrap_err().to_string();
        assert!(problems.contains("`routes[0].name`: route name \"a,b\" contains ','"), "{problems}");
    }

    #[test]
    fn rates_parse() {
        assert_eq!(Rate::parse("1/s").unwrap(), Some(Rate { count: 1, per: Duration::from_secs(1) }));
        assert_eq!(Rate::parse("5/2s").unwrap(), Some(Rate { count: 5, per: Duration::from_secs(2) }));
        assert_eq!(Rate::parse("30/min").unwrap(), Some(Rate { count: 30, per: Duration::from_secs(60) }));
        assert_eq!(Rate::parse("none").unwrap(), None);
        assert_eq!(Rate::parse("5/2s").unwrap().unwrap().interval(), Duration::from_millis(400));
        for bad in ["", "5", "0/s", "x/s", "5/soon", "5/0s"] {
            assert!(Rate::parse(bad).is_err(), "{bad}");
        }
        let text = format!("{MINIMAL}[destinations.s]\nkind = \"slack\"\nurl = \"https://hooks.slack.com/services/x\"\ntemplate = \"s.hbs\"\n[destinations.d]\nkind = \"discord\"\nurl = \"https://discord.com/api/webhooks/1/x\"\ntemplate = \"d.hbs\"\nrate_limit = \"2/s\"\n");
        let config = parse(&text).unwrap();
        assert_eq!(config.destinations["s"].rate_limit, Some(Rate { count: 1, per: Duration::from_secs(1) }));
        assert_eq!(config.destinations["d"].rate_limit, Some(Rate { count: 2, per: Duration::from_secs(1) }));
        assert_eq!(config.destinations["out"].rate_limit, None);
    }

    #[test]
    fn durations_parse() {
        let text = format!("{MINIMAL}[retry]\ninitial_backoff = \"500ms\"\nmax_backoff = \"5m\"\nattempt_timeout = \"10s\"\nmax_attempts = 3\n");
        let config = parse(&text).unwrap();
        assert_eq!(config.retry.initial_backoff, Duration::from_millis(500));
        assert_eq!(config.retry.max_backoff, Duration::from_secs(300));
        assert_eq!(config.retry.max_attempts, 3);
    }

    #[test]
    fn missing_variable_names_variable_key_and_line() {
        let text = format!(
            "{MINIMAL}[destinations.churn]\nkind = \"slack\"\nurl = \"${{SLACK_CHURN_URL}}\"\ntemplate = \"s.hbs\"\n"
        );
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("SLACK_CHURN_URL"), "{err}");
        assert!(err.contains("destinations.churn.url"), "{err}");
        assert!(err.contains("relay.toml:12:"), "{err}");
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let text = format!("{MINIMAL}[server]\nlisten = \"127.0.0.1:0\"\nmax_body = 5\n");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("server.max_body"), "{err}");
        assert!(err.contains("unknown key"), "{err}");
        assert!(err.contains("relay.toml:12:"), "{err}");
    }

    #[test]
    fn settings_of_another_kind_are_rejected() {
        let text = format!("{MINIMAL}[destinations.s]\nkind = \"slack\"\nurl = \"https://hooks.slack.com/services/x\"\ntemplate = \"s.hbs\"\nusername = \"bot\"\n");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("destinations.s.username"), "{err}");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = "[raaft]\ntokens = []\n[retry]\nmax_backoff = \"soon\"\n[[routes]]\nname = \"r\"\nto = [\"nowhere\"]\nwhen = 'outcome == '\n";
        let err = parse(text).unwrap_err();
        let all = err.to_string();
        assert!(err.len() >= 4, "{all}");
        assert!(all.contains("raaft.tokens"), "{all}");
        assert!(all.contains("invalid duration \"soon\""), "{all}");
        assert!(all.contains("unknown destination \"nowhere\""), "{all}");
        assert!(all.contains("route \"r\""), "{all}");
    }

    #[test]
    fn toml_syntax_errors_carry_the_line() {
        let err = parse("[raaft\ntokens = 1\n").unwrap_err().to_string();
        assert!(err.contains("relay.toml:2:"), "{err}");
    }

    #[test]
    fn type_errors_name_the_key() {
        let err = parse("[server]\nmax_body_bytes = \"big\"\n").unwrap_err().to_string();
        assert!(err.contains("server.max_body_bytes"), "{err}");
    }
}
