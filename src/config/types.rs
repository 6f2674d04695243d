//! The configuration as the relay uses it: validated, with durations,
//! rates, addresses and conditions parsed.

use super::store::StoreLocation;
use crate::rules::Condition;
use std::collections::BTreeMap;
use std::path::PathBuf;
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
    /// How the relay is reached through a reverse proxy.
    pub public_url: Option<super::public_url::PublicUrl>,
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

/// How long customers' flows are remembered, and how late a digest may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryConfig {
    /// Flows older than this are forgotten (default 400 days).
    pub retention: Duration,
    /// A digest window that ended longer ago than this when the relay gets
    /// to it (it was down) is skipped with a log line (default 24 h).
    pub catch_up: Duration,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig { retention: Duration::from_secs(400 * 24 * 3600), catch_up: Duration::from_secs(24 * 3600) }
    }
}

/// What a digest does when its window had no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenEmpty {
    Skip,
    Send,
}

/// A summary sent on a schedule (`[digests.NAME]`).
#[derive(Debug, Clone)]
pub struct DigestConfig {
    pub name: String,
    pub schedule: crate::schedule::Schedule,
    /// Which events it counts (default every event).
    pub when: Condition,
    pub to: Vec<String>,
    /// Paths under `templates_dir`, by destination.
    pub template: DigestTemplates,
    /// For e-mail destinations: the HTML part and the subject.
    pub html_template: Option<String>,
    pub subject: Option<String>,
    pub empty: WhenEmpty,
    pub line: Option<usize>,
}

/// A digest's body templates: one for every destination, or one per
/// destination name or kind (`{ slack = "slack/digest.json.hbs", email =
/// "email/digest.hbs" }`; a name wins over a kind).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DigestTemplates {
    One(String),
    Each(BTreeMap<String, String>),
}

impl DigestTemplates {
    /// The template for the destination `name` of `kind`.
    pub fn for_destination(&self, name: &str, kind: DestinationKind) -> Option<&str> {
        match self {
            DigestTemplates::One(t) => Some(t),
            DigestTemplates::Each(by) => by.get(name).or_else(|| by.get(kind.as_str())).map(String::as_str),
        }
    }

    /// Every template named.
    pub fn all(&self) -> Vec<&str> {
        match self {
            DigestTemplates::One(t) => vec![t.as_str()],
            DigestTemplates::Each(by) => by.values().map(String::as_str).collect(),
        }
    }
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
    pub(super) fn parse(s: &str) -> Option<Self> {
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

    /// An address of this kind that reaches nobody: what a store command
    /// loads a destination with when its url's variable is not set (it
    /// renders, it never sends).
    pub fn stand_in_url(self) -> &'static str {
        match self {
            Self::Email => "smtp://unset.invalid",
            _ => "https://unset.invalid/",
        }
    }

    /// Keys a destination of this kind may carry besides `kind`.
    pub(super) fn allowed_keys(self) -> &'static [&'static str] {
        match self {
            Self::Slack => &["url", "template", "rate_limit", "ca_file"],
            Self::Discord => &["url", "template", "username", "avatar_url", "rate_limit", "ca_file"],
            Self::Email => &["url", "template", "html_template", "subject", "from", "to", "rate_limit", "ca_file"],
            Self::Webhook => &["url", "template", "headers", "rate_limit", "ca_file"],
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
    /// Certificate authorities (PEM) trusted for this destination besides
    /// the system's, relative to the config file.
    pub ca_file: Option<PathBuf>,
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
    /// How long a console sign-in lasts (`[admin] session`).
    pub admin_session: Duration,
    /// Whether the console's template playground may save to the files
    /// (`[admin] edit_templates`).
    pub edit_templates: bool,
    pub alerts: Option<AlertsConfig>,
    pub retry: RetryPolicy,
    pub destinations: BTreeMap<String, DestinationConfig>,
    pub routes: Vec<RouteConfig>,
    pub history: HistoryConfig,
    pub digests: BTreeMap<String, DigestConfig>,
    /// Files read through `${file:PATH}`.
    pub files_read: Vec<PathBuf>,
    /// Keys whose `${...}` could not be interpolated (reported once, as
    /// such: what they hold as written is not another problem).
    pub unresolved: Vec<String>,
}

impl Config {
    /// Where the console answers, for the start log and `check`: under
    /// `[server] public_url` when it is set, else on the listener that
    /// serves it (`ports`: the main and admin listeners' bound ports, when
    /// known). `None` without admin tokens (no console).
    pub fn console_url(&self, ports: Option<(u16, Option<u16>)>) -> Option<String> {
        if self.admin_tokens.is_empty() {
            return None;
        }
        if let Some(public) = &self.server.public_url {
            return Some(format!("{public}/console/"));
        }
        let (listen, port, tls) = match &self.admin_listen {
            Some(listen) => (listen, ports.and_then(|(_, admin)| admin), false),
            None => (&self.server.listen, ports.map(|(main, _)| main), self.server.tls.is_some()),
        };
        let address = match (listen.rsplit_once(':'), port) {
            (Some((host, _)), Some(port)) => format!("{host}:{port}"),
            _ => listen.clone(),
        };
        Some(format!("{}://{address}/console/", if tls { "https" } else { "http" }))
    }
}
