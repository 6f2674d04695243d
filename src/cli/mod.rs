//! The command line: `serve`, `check`, `render`, `send-test` and `post`, the
//! operators' `deliveries` ([`deliveries`]), `history` and `forget`
//! ([`customers`]) and `digest` ([`digests`]), each working from the same
//! config file.

mod customers;
mod deliveries;
mod digests;
mod post;

use crate::check::check_with_warnings;
use crate::event::Event;
use crate::loaded_config::LoadedConfig;
use crate::routing::RouteReport;
use crate::rules::Verdict;
use crate::store::{Access, Status, Store};
use crate::telemetry::LogFormat;
use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `raaft-relay --version`: the release and the commit it was built from.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("RAAFT_RELAY_COMMIT"), ")");

#[derive(Debug, Parser)]
#[command(
    name = "raaft-relay",
    version = VERSION,
    about = "Turns Raaft cancellation-flow webhooks into Slack, Discord and e-mail notifications"
)]
pub struct Cli {
    /// The config file [default: config/relay.toml, or
    /// /etc/raaft-relay/relay.toml where that is and the other is not].
    #[arg(long, global = true, env = "RAAFT_RELAY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Variables for `${VAR}` in the config, in the format of systemd's
    /// `EnvironmentFile=` (`KEY=VALUE` lines): read again at every reload,
    /// and over the process environment [default: /etc/raaft-relay/env
    /// when the config is the installed one and the file is there].
    #[arg(long, global = true, env = "RAAFT_RELAY_ENV_FILE")]
    pub env_file: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "pretty")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Receive Raaft webhooks and deliver notifications.
    Serve,
    /// Check the config and render every template against the sample events.
    Check,
    /// Show how an event is routed and the exact payloads; sends nothing.
    Render {
        /// A Raaft event as JSON.
        #[arg(long)]
        event: PathBuf,
        /// Only this destination (shown even when no route reaches it).
        #[arg(long)]
        destination: Option<String>,
    },
    /// Send one real message to a destination.
    SendTest {
        #[arg(long)]
        destination: String,
        /// A Raaft event as JSON (default: the first sample event a route to
        /// the destination matches, else a sample cancellation).
        #[arg(long)]
        event: Option<PathBuf>,
    },
    /// Post event files to the running relay as Raaft would (with the
    /// config's token), saying what it answered for each.
    Post {
        /// Raaft events as JSON, e.g. config/events/*.json.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Post each as a new event (`createdAt` set to now): the relay
        /// takes an event it has seen within `dedup_window` for a retry.
        #[arg(long)]
        fresh: bool,
        /// Where to post (default: /webhooks/raaft on `server.listen`).
        #[arg(long)]
        url: Option<String>,
    },
    /// Inspect and replay deliveries in the store a running relay uses.
    #[command(subcommand)]
    Deliveries(DeliveriesCommand),
    /// Print a customer's flows (customer id, or e-mail address).
    History {
        customer: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Erase everything the relay holds about a customer (history, events,
    /// rendered payloads, attempts), for erasure requests.
    Forget { customer: String },
    /// Preview or send a digest.
    #[command(subcommand)]
    Digest(DigestCommand),
    /// Bring the store to this release's schema (stop `serve` first; on
    /// PostgreSQL, every replica).
    Migrate,
    /// Move the store elsewhere.
    #[command(subcommand)]
    Store(StoreCommandLine),
    /// Ask the running relay's /healthz (for a container's health check,
    /// which has no shell or curl); exits 0 when it answers 200.
    Probe {
        /// The URL to ask (default: /healthz on `server.listen`).
        #[arg(long)]
        url: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum StoreCommandLine {
    /// Copy the config's SQLite store into a PostgreSQL database (stop
    /// `serve` first): pending, delivered and dead deliveries with their
    /// attempts, events, histories and digest windows, under the same ids.
    /// Safe to run again: nothing is copied twice.
    Copy {
        /// The PostgreSQL database, e.g. postgres://relay:PASSWORD@db:5432/relay.
        #[arg(long)]
        to: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum DigestCommand {
    /// Print the digest of the last complete window before --at, rendered
    /// for each destination; sends nothing.
    Preview {
        name: String,
        /// RFC 3339 time (default now).
        #[arg(long)]
        at: Option<String>,
    },
    /// Queue the digest of the last complete window now (once per window).
    Send { name: String },
}

#[derive(Debug, Subcommand)]
pub enum DeliveriesCommand {
    /// One line per delivery, newest first.
    List {
        #[arg(long, value_enum)]
        status: Option<Status>,
        #[arg(long)]
        destination: Option<String>,
        /// Only deliveries created within this long, e.g. "1h".
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// The event, the last payload and every attempt of one delivery.
    Show { id: String },
    /// Queue deliveries for a new attempt now, rendered with the current templates.
    Replay {
        /// Delivery ids.
        #[arg(required_unless_present = "dead", conflicts_with = "dead")]
        ids: Vec<String>,
        /// Every dead delivery.
        #[arg(long)]
        dead: bool,
        /// With --dead: only this destination's.
        #[arg(long, requires = "dead")]
        destination: Option<String>,
    },
    /// Delete dead deliveries.
    Purge {
        /// Dead deliveries are the only ones kept past retention.
        #[arg(long, required = true)]
        dead: bool,
        /// Only those last attempted longer ago than this, e.g. "30d".
        #[arg(long)]
        older_than: String,
    },
}

/// The config file when `--config` is not given: `config/relay.toml` (a
/// clone), else the one the package and the image install.
pub fn default_config() -> PathBuf {
    let here = PathBuf::from("config/relay.toml");
    let installed = PathBuf::from(INSTALLED_CONFIG);
    if !here.exists() && installed.exists() {
        installed
    } else {
        here
    }
}

/// The env file of an installed relay (the one the package's unit gives
/// `serve` through `EnvironmentFile=`), so that every command sees the
/// variables `serve` sees: used when the config is the installed one and
/// the file can be read (a file only root reads leaves `serve` with what
/// systemd gave it at start).
fn default_env_file(config: &Path) -> Option<PathBuf> {
    let installed = Path::new(INSTALLED_ENV_FILE);
    (config == Path::new(INSTALLED_CONFIG) && std::fs::File::open(installed).is_ok()).then(|| installed.to_path_buf())
}

/// Where the package and the image install the config.
const INSTALLED_CONFIG: &str = "/etc/raaft-relay/relay.toml";
/// Where the package's unit reads the secrets from.
const INSTALLED_ENV_FILE: &str = "/etc/raaft-relay/env";

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> ExitCode {
    let config = cli.config.clone().unwrap_or_else(default_config);
    if let Some(file) = cli.env_file.clone().or_else(|| default_env_file(&config)) {
        crate::config::use_env_file(file);
    }
    let result = match &cli.command {
        Command::Serve => serve(&config).await,
        Command::Check => run_check(&config),
        Command::Render { event, destination } => render(&config, event, destination.as_deref()),
        Command::SendTest { destination, event } => send_test(&config, destination, event.as_deref()).await,
        Command::Post { files, fresh, url } => {
            post::run(&config, post::PostRequest { files, fresh: *fresh, url: url.as_deref() }).await
        }
        Command::Deliveries(command) => deliveries::run(&config, command).await,
        Command::History { customer, json } => customers::history(&config, customer, *json).await,
        Command::Forget { customer } => customers::forget(&config, customer).await,
        Command::Digest(command) => digests::run(&config, command).await,
        Command::Migrate => migrate(&config).await,
        Command::Store(StoreCommandLine::Copy { to }) => copy_store(&config, to).await,
        Command::Probe { url } => probe(&config, url.as_deref()).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(path: &Path) -> anyhow::Result<LoadedConfig> {
    LoadedConfig::load(path).map_err(|problems| anyhow::anyhow!("invalid configuration:\n{problems}"))
}

async fn serve(path: &Path) -> anyhow::Result<ExitCode> {
    let loaded = load(path)?;
    let destinations = loaded.destinations().count();
    let routes = loaded.config.routes.len();
    let tls = loaded.config.server.tls.is_some();
    let store = loaded.config.store.location.to_string();
    let config = loaded.config.clone();
    let app = crate::Application::build(loaded).await?;
    let console = config.console_url(Some((app.port(), app.admin_port()))).unwrap_or_else(|| "off".into());
    // Registered before the port is announced, like SIGHUP: a SIGTERM sent
    // right after must drain, not kill.
    let shutdown = shutdown_signal();
    tracing::info!(
        port = app.port(),
        admin_port = app.admin_port(),
        tls,
        destinations,
        routes,
        config = %path.display(),
        %store,
        %console,
        "raaft-relay listening"
    );
    app.run_until_stopped(shutdown).await?;
    tracing::info!("raaft-relay stopped");
    Ok(ExitCode::SUCCESS)
}

/// Completes on SIGINT or SIGTERM.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    // SIGTERM (what service managers send) is caught from the moment this
    // returns, before the future is first polled; Ctrl-C from the first poll.
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let ctrl_c = tokio::signal::ctrl_c();
    async move {
        #[cfg(unix)]
        let term = async {
            match term.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {}
            _ = term => {}
        }
        tracing::info!("shutting down");
    }
}

async fn migrate(path: &Path) -> anyhow::Result<ExitCode> {
    let (config, _) =
        crate::config::Config::load_for_store(path).map_err(|p| anyhow::anyhow!("invalid configuration:\n{p}"))?;
    let location = &config.store.location;
    let migrated =
        crate::store::migrate(location).await.with_context(|| format!("cannot migrate the store at \"{location}\""))?;
    match migrated.from {
        0 => println!("created the store at \"{location}\" (version {})", migrated.to),
        from if from == migrated.to => println!("the store at \"{location}\" is at version {from} already"),
        from => println!("migrated the store at \"{location}\" from version {from} to {}", migrated.to),
    }
    Ok(ExitCode::SUCCESS)
}

async fn probe(path: &Path, url: Option<&str>) -> anyhow::Result<ExitCode> {
    let url = match url {
        Some(url) => url.to_owned(),
        None => {
            let (config, _) = crate::config::Config::load_for_store(path)
                .map_err(|p| anyhow::anyhow!("invalid configuration:\n{p}"))?;
            let scheme = if config.server.tls.is_some() { "https" } else { "http" };
            format!("{scheme}://{}/healthz", local_address(&config.server.listen))
        }
    };
    // The relay's own address: its certificate need not name it.
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .danger_accept_invalid_certs(true)
        .build()?;
    match client.get(&url).send().await {
        Ok(r) if r.status() == reqwest::StatusCode::OK => Ok(ExitCode::SUCCESS),
        Ok(r) => {
            eprintln!("{url} answered {}", r.status());
            Ok(ExitCode::FAILURE)
        }
        Err(e) => {
            eprintln!("{url} did not answer: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Where to reach a listener bound to `listen` from the same machine
/// (`0.0.0.0:8080` is reached at `127.0.0.1:8080`).
fn local_address(listen: &str) -> String {
    match listen.rsplit_once(':') {
        Some(("0.0.0.0" | "", port)) => format!("127.0.0.1:{port}"),
        Some(("[::]", port)) => format!("[::1]:{port}"),
        _ => listen.to_owned(),
    }
}

async fn copy_store(path: &Path, to: &str) -> anyhow::Result<ExitCode> {
    let (config, _) =
        crate::config::Config::load_for_store(path).map_err(|p| anyhow::anyhow!("invalid configuration:\n{p}"))?;
    let crate::config::StoreLocation::Sqlite(from) = &config.store.location else {
        bail!("the config's store is \"{}\", not an SQLite file: there is nothing to copy", config.store.location);
    };
    let target =
        crate::config::StoreLocation::parse(to, Path::new(".")).map_err(anyhow::Error::msg).and_then(|t| match t {
            crate::config::StoreLocation::Postgres(_) => Ok(t),
            _ => bail!("--to is a PostgreSQL url (postgres://...), not \"{to}\""),
        })?;
    let copied = crate::store::copy::copy(from, to)
        .await
        .with_context(|| format!("cannot copy \"{}\" to \"{target}\"", from.display()))?;
    let mut statuses: Vec<String> = copied.deliveries.iter().map(|(s, n)| format!("{n} {s}")).collect();
    statuses.sort();
    let deliveries: u64 = copied.deliveries.values().sum();
    println!(
        "copied \"{}\" to \"{target}\": {} event(s), {deliveries} deliveries ({}), {} attempt(s), {} flow(s) of {} customer(s), {} digest window(s)",
        from.display(),
        copied.events,
        if statuses.is_empty() { "none".to_owned() } else { statuses.join(", ") },
        copied.attempts,
        copied.flows,
        copied.customers,
        copied.digest_windows
    );
    if copied.duplicates > 0 {
        println!(
            "{} event(s) left out: the database holds their idempotency key under another event already",
            copied.duplicates
        );
    }
    println!("now point [store] url at it and start serve");
    Ok(ExitCode::SUCCESS)
}

fn run_check(path: &Path) -> anyhow::Result<ExitCode> {
    match check_with_warnings(path) {
        Ok((report, problems)) if !problems.is_empty() => {
            for w in &report.warnings {
                println!("warning: {w}");
            }
            eprintln!("{problems}");
            eprintln!("{}: {} problem(s) found", path.display(), problems.len());
            Ok(ExitCode::FAILURE)
        }
        Ok((report, _)) => {
            for w in &report.warnings {
                println!("warning: {w}");
            }
            println!(
                "{}: ok ({} destinations, {} routes, {} sample renders)",
                path.display(),
                report.destinations,
                report.routes,
                report.renders
            );
            println!("store: {}", report.store);
            println!("console: {}", report.console.as_deref().unwrap_or("off (no [admin] tokens)"));
            Ok(ExitCode::SUCCESS)
        }
        Err(problems) => {
            eprintln!("{problems}");
            eprintln!("{}: {} problem(s) found", path.display(), problems.len());
            Ok(ExitCode::FAILURE)
        }
    }
}

fn read_event(path: &Path) -> anyhow::Result<Event> {
    let body = std::fs::read(path).with_context(|| format!("cannot read event file \"{}\"", path.display()))?;
    Event::parse(&body).with_context(|| format!("event file \"{}\"", path.display()))
}

fn render(config: &Path, event_path: &Path, only: Option<&str>) -> anyhow::Result<ExitCode> {
    let loaded = load(config)?;
    let event = read_event(event_path)?;
    let outcome = event.outcome().to_owned();
    let facts = crate::history::first_flow_facts(&event.raw, chrono::Utc::now());
    let event = crate::history::with_facts(std::sync::Arc::unwrap_or_clone(event.raw), Some(&facts));
    let (targets, reports) = loaded.router.explain(&event);
    let mut out = std::io::stdout().lock();
    writeln!(out, "event: outcome {outcome}")?;
    writeln!(out, "mrr: {}", facts["mrr"])?;
    writeln!(out, "history: as of a first flow (render does not read the store)")?;
    for report in &reports {
        writeln!(out, "{}", describe_route(report, &loaded))?;
    }
    if targets.is_empty() {
        writeln!(out, "no route matched: the relay answers 200 and sends nothing")?;
    }
    let chosen: Vec<(String, Vec<String>)> = match only {
        Some(name) => {
            if loaded.destination(name).is_none() {
                bail!("unknown destination \"{name}\"");
            }
            let routes = targets.iter().find(|t| t.destination == name).map(|t| t.routes.clone()).unwrap_or_default();
            vec![(name.to_owned(), routes)]
        }
        None => targets.into_iter().map(|t| (t.destination, t.routes)).collect(),
    };
    let mut failed = false;
    for (name, routes) in chosen {
        let dest = loaded.destination(&name).expect("routes name configured destinations");
        let via =
            if routes.is_empty() { "no route reaches it".to_owned() } else { format!("via {}", routes.join(", ")) };
        writeln!(out, "\n== destination \"{name}\" ({}, {via})", dest.kind.as_str())?;
        match dest.payload(&event) {
            Ok(payload) => writeln!(out, "{}", payload.display())?,
            Err(e) => {
                writeln!(out, "cannot render: {e}")?;
                failed = true;
            }
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn describe_route(report: &RouteReport, loaded: &LoadedConfig) -> String {
    let to = loaded.config.routes.iter().find(|r| r.name == report.route).map(|r| r.to.join(", ")).unwrap_or_default();
    if report.skipped {
        return format!("route \"{}\": skipped (an earlier matching route has stop = true)", report.route);
    }
    match &report.verdict {
        Verdict::Matched => format!("route \"{}\": matched → {to}", report.route),
        Verdict::NotMatched { condition, saw } => {
            format!("route \"{}\": not matched: `{condition}` did not hold (saw {saw})", report.route)
        }
    }
}

async fn send_test(config: &Path, name: &str, event_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let loaded = std::sync::Arc::new(load(config)?);
    if loaded.destination(name).is_none() {
        bail!("unknown destination \"{name}\"");
    }
    let raw = match event_path {
        Some(p) => {
            println!("sending {}", p.display());
            std::sync::Arc::unwrap_or_clone(read_event(p)?.raw)
        }
        None => {
            let sample = crate::samples::for_destination(&loaded.router, name);
            println!("sending {}", sample.describe(name));
            sample.event
        }
    };
    let Some(report) = crate::delivery::send_test(&loaded, name, raw).await else {
        bail!("unknown destination \"{name}\"");
    };
    let report = report.map_err(|e| anyhow::anyhow!("cannot render: {e}"))?;
    let status = report.status.map(|s| format!(" ({s})")).unwrap_or_default();
    let response = report.response.as_deref().map(|r| format!(": {}", one_line(r))).unwrap_or_default();
    match &report.outcome {
        crate::retry::Outcome::Delivered => {
            println!("delivered to \"{name}\"{status} in {} ms", report.latency.as_millis());
            Ok(ExitCode::SUCCESS)
        }
        crate::retry::Outcome::Retry { reason, .. } => {
            eprintln!("not delivered to \"{name}\" (transient, the relay would retry){status}: {reason}{response}");
            Ok(ExitCode::FAILURE)
        }
        crate::retry::Outcome::Permanent { reason } => {
            eprintln!("not delivered to \"{name}\" (permanent){status}: {reason}{response}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// What a store command (`deliveries`, `history`, `forget`, `digest`)
/// works with: the config as far as it loads without the destinations'
/// secrets, and the store, opened without touching its schema.
pub(crate) struct StoreCommand {
    pub loaded: std::sync::Arc<LoadedConfig>,
    /// What could not be loaded, for a command that needs it to name.
    pub set_aside: crate::problems::Problems,
    pub store: std::sync::Arc<dyn Store>,
}

impl StoreCommand {
    pub async fn open(path: &Path) -> anyhow::Result<StoreCommand> {
        let (loaded, set_aside) = LoadedConfig::load_for_store(path)
            .map_err(|problems| anyhow::anyhow!("invalid configuration:\n{problems}"))?;
        let config = &loaded.config;
        let store = crate::store::open(&config.store.location, config.dedup_window, Access::Tool)
            .await
            .with_context(|| format!("cannot open the store at \"{}\"", config.store.location))?;
        Ok(StoreCommand { loaded: std::sync::Arc::new(loaded), set_aside, store })
    }

    /// Fails, naming what is wrong with it, when the digest `name` is
    /// configured but could not be loaded.
    pub fn digest_loads(&self, name: &str) -> anyhow::Result<()> {
        if self.loaded.digest(name).is_some() || !self.loaded.config.digests.contains_key(name) {
            return Ok(());
        }
        let mut problems = self.set_aside.clone();
        problems.sort();
        bail!("digest \"{name}\" cannot be loaded:\n{problems}")
    }
}

/// Stored text on one line of a listing: control characters and bytes
/// that are not UTF-8 shown as escapes, cut to 120 characters.
fn one_line(s: &[u8]) -> String {
    crate::text::truncate_chars(&crate::text::single_line(&crate::text::shown(s)), 120)
}

/// Stored text as it is, but for control characters (a NUL, an escape
/// sequence) and bytes that are not UTF-8, shown as escapes.
fn shown(s: &str) -> String {
    crate::text::shown(s.as_bytes())
}
