//! Shared test machinery: the real relay on port 0 with a fresh store,
//! HTTP receivers that answer like Slack and Discord from a script, and a
//! real SMTP server.

use bytes::Bytes;
use raaft_relay::config::StoreLocation;
use raaft_relay::store::{
    AttemptRecord, DeliveryDetail, DeliverySummary, DestinationStats, Digests, Enqueued, History, Inspect, Job,
    ListFilter, NewDelivery, NewEvent, NextStep, Queue, Recorded, Replayed, Status, Store, StoreError,
};
use raaft_relay::{Application, LoadedConfig};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tempfile::TempDir;
use warp::http::HeaderMap;
use warp::Filter;

pub const TOKEN: &str = "test-token-7f3a";

/// What a command printed: its standard output, then its standard error.
pub fn said(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// What a command printed, once it is known to have succeeded (`what`
/// names it in the failure).
pub fn succeeded(out: Output, what: &str) -> String {
    let text = said(&out);
    assert!(out.status.success(), "{what} failed:\n{text}");
    text
}

/// The `[store] url` that points a config at `location`.
pub fn store_url(location: &StoreLocation) -> String {
    match location {
        StoreLocation::Sqlite(path) => format!("sqlite://{}", path.display()),
        StoreLocation::Postgres(url) => url.clone(),
    }
}

/// Waits until `cond` holds, polling, and panics with `what` after the
/// deadline.
pub async fn wait_until(deadline: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The repository's own files.
pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// A sample event exactly as shipped.
pub fn sample_exact(name: &str) -> String {
    std::fs::read_to_string(repo_path(&format!("config/events/{name}"))).unwrap()
}

/// A sample event made unique (its own `flowId`), so posting it again is a
/// new event rather than a retry of the same one.
pub fn sample(name: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let mut event: serde_json::Value = serde_json::from_str(&sample_exact(name)).unwrap();
    let n = N.fetch_add(1, Ordering::Relaxed);
    event["flowId"] = serde_json::json!(format!("flow-{}-{n}", std::process::id()));
    event.to_string()
}

/// Which store a test runs against.
#[derive(Debug, Clone)]
pub enum TestStore {
    Sqlite,
    /// A server URL; every app gets a database of its own on it.
    Postgres(String),
}

/// Runs each test once on SQLite and once on PostgreSQL (when
/// `RAAFT_RELAY_TEST_POSTGRES` holds a server URL; otherwise that variant
/// is reported as ignored, with the reason).
#[macro_export]
macro_rules! on_both_stores {
    ($(async fn $name:ident($store:ident) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                async fn run($store: $crate::helpers::TestStore) $body

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    run($crate::helpers::TestStore::Sqlite).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(not(postgres_tests), ignore = "set RAAFT_RELAY_TEST_POSTGRES to a PostgreSQL URL to run it")]
                async fn postgres() {
                    run($crate::helpers::TestStore::postgres()).await
                }
            }
        )*
    };
}

impl TestStore {
    /// The server named by `RAAFT_RELAY_TEST_POSTGRES`. PostgreSQL tests
    /// are ignored when it was not set at build time (see build.rs), so a
    /// test that runs without it fails instead of passing unrun.
    pub fn postgres() -> TestStore {
        let url = std::env::var("RAAFT_RELAY_TEST_POSTGRES").unwrap_or_default();
        assert!(!url.trim().is_empty(), "set RAAFT_RELAY_TEST_POSTGRES to a PostgreSQL URL to run this test");
        TestStore::Postgres(url)
    }

    /// A new, empty store.
    pub async fn fresh_location(&self, dir: &Path) -> StoreLocation {
        StoreLocation::parse(&self.fresh_url(dir).await, dir).unwrap()
    }

    /// A store URL for a new, empty store.
    pub async fn fresh_url(&self, dir: &Path) -> String {
        match self {
            TestStore::Sqlite => format!("sqlite://{}", dir.join(format!("relay-{}.db", ulid::Ulid::new())).display()),
            TestStore::Postgres(server) => fresh_postgres(server).await,
        }
    }
}

/// Creates a database of its own on `server` and returns its URL. Test
/// databases of earlier runs are dropped the first time.
async fn fresh_postgres(server: &str) -> String {
    use sqlx::Connection;
    static CLEANED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    let mut conn = sqlx::PgConnection::connect(server).await.expect("RAAFT_RELAY_TEST_POSTGRES must be reachable");
    let prefix = format!("raaft_relay_test_{}_", std::process::id());
    CLEANED
        .get_or_init(|| async {
            let old: Vec<(String,)> =
                sqlx::query_as("SELECT datname FROM pg_database WHERE datname LIKE 'raaft_relay_test_%'")
                    .fetch_all(&mut conn)
                    .await
                    .unwrap_or_default();
            for (name,) in old {
                if !name.starts_with(&prefix) {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\"")).execute(&mut conn).await;
                }
            }
        })
        .await;
    let name = format!("{prefix}{}", ulid::Ulid::new().to_string().to_ascii_lowercase());
    sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut conn).await.unwrap();
    let mut url = url::Url::parse(server).unwrap();
    url.set_path(&format!("/{name}"));
    url.to_string()
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// What a store holds, counted straight from its tables: the relay's own
/// store has no counting of its own (nothing there is for tests only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub pending: u64,
    /// Pending deliveries currently claimed by a worker.
    pub in_flight: u64,
    pub delivered: u64,
    pub dead: u64,
    pub attempts: u64,
    pub events: u64,
}

const COUNTS: &str = "SELECT \
    (SELECT COUNT(*) FROM deliveries WHERE status = 'pending'), \
    (SELECT COUNT(*) FROM deliveries WHERE status = 'pending' AND lease_owner IS NOT NULL), \
    (SELECT COUNT(*) FROM deliveries WHERE status = 'delivered'), \
    (SELECT COUNT(*) FROM deliveries WHERE status = 'dead'), \
    (SELECT COUNT(*) FROM attempts), \
    (SELECT COUNT(*) FROM events)";

/// Counts what the store at `location` holds.
pub async fn count(location: &StoreLocation) -> StoreStats {
    let n: [i64; 6] = match location {
        StoreLocation::Sqlite(path) => {
            let path = path.clone();
            tokio::task::spawn_blocking(move || {
                let conn = rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                    .expect("the SQLite store opens");
                conn.busy_timeout(Duration::from_secs(10)).unwrap();
                conn.query_row(COUNTS, [], |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?]))
                    .expect("the SQLite store answers")
            })
            .await
            .unwrap()
        }
        StoreLocation::Postgres(url) => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(url).await.expect("the PostgreSQL store answers");
            let row: (i64, i64, i64, i64, i64, i64) = sqlx::query_as(COUNTS).fetch_one(&mut conn).await.unwrap();
            [row.0, row.1, row.2, row.3, row.4, row.5]
        }
    };
    let [pending, in_flight, delivered, dead, attempts, events] = n.map(|v| v as u64);
    StoreStats { pending, in_flight, delivered, dead, attempts, events }
}

/// Waits until the store's counts satisfy `done`, for at most `deadline`.
pub async fn wait_for_counts(
    location: &StoreLocation,
    deadline: Duration,
    what: &str,
    done: impl Fn(&StoreStats) -> bool,
) -> StoreStats {
    let start = Instant::now();
    loop {
        let stats = count(location).await;
        if done(&stats) {
            return stats;
        }
        assert!(start.elapsed() < deadline, "timed out waiting for {what}: {stats:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The first column of the first row `sql` returns from the store at
/// `location`, as a number.
pub async fn query_number(location: &StoreLocation, sql: &str) -> Option<i64> {
    match location {
        StoreLocation::Sqlite(path) => {
            let (path, sql) = (path.clone(), sql.to_owned());
            tokio::task::spawn_blocking(move || {
                let conn =
                    rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
                conn.busy_timeout(Duration::from_secs(10)).unwrap();
                conn.query_row(&sql, [], |r| r.get(0)).unwrap_or_else(|e| panic!("{sql}: {e}"))
            })
            .await
            .unwrap()
        }
        StoreLocation::Postgres(url) => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
        }
    }
}

/// Runs SQL on the store at `location` as its operator could (to break
/// it on purpose in a test).
pub async fn execute(location: &StoreLocation, sql: &str) {
    match location {
        StoreLocation::Sqlite(path) => {
            let (path, sql) = (path.clone(), sql.to_owned());
            tokio::task::spawn_blocking(move || {
                let conn = rusqlite::Connection::open(&path).unwrap();
                conn.busy_timeout(Duration::from_secs(10)).unwrap();
                conn.execute_batch(&sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
            })
            .await
            .unwrap()
        }
        StoreLocation::Postgres(url) => {
            use sqlx::{Connection, Executor};
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            conn.execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }
}

/// The store line every test config starts with.
const OWN_STORE: &str = "url = \"sqlite://data/relay.db\"";

/// A config folder of its own: `relay.toml` plus a copy of the shipped
/// templates that a test may add to.
pub struct ConfigDir {
    pub dir: TempDir,
}

impl ConfigDir {
    /// `body` is appended to a header with the test token, port 0 and
    /// millisecond retries (four attempts, so backoff stays under 100 ms;
    /// `max_backoff` leaves room for a receiver's Retry-After of seconds).
    pub fn new(body: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&repo_path("templates"), &dir.path().join("templates"));
        let text = format!(
            "templates_dir = \"templates\"\n[server]\nlisten = \"127.0.0.1:0\"\n[raaft]\ntokens = [\"{TOKEN}\", \"second-token\"]\n{body}"
        );
        let text = if body.contains("[retry]") {
            text
        } else {
            format!("{text}\n[retry]\nmax_attempts = 4\ninitial_backoff = \"10ms\"\nmax_backoff = \"5s\"\nattempt_timeout = \"2s\"\n")
        };
        // A store of its own, inside the folder: the default
        // (`../data/relay.db`) would be shared by every test.
        let text = format!("{text}\n[store]\n{OWN_STORE}\n");
        std::fs::write(dir.path().join("relay.toml"), text).unwrap();
        ConfigDir { dir }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("relay.toml")
    }

    /// Points the config at `url` for its store.
    pub fn set_store(&self, url: &str) {
        let text = std::fs::read_to_string(self.path()).unwrap();
        assert!(text.contains(OWN_STORE), "the store was set already");
        std::fs::write(self.path(), text.replace(OWN_STORE, &format!("url = \"{url}\""))).unwrap();
    }

    pub fn write_template(&self, rel: &str, source: &str) {
        let path = self.dir.path().join("templates").join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, source).unwrap();
    }
}

/// The relay, running.
pub struct TestApp {
    pub address: String,
    /// The operators' listener, when `[admin] listen` is set.
    pub admin_address: Option<String>,
    pub store: Arc<dyn Store>,
    pub location: StoreLocation,
    pub metrics: Arc<raaft_relay::metrics::Metrics>,
    /// Keeps the config folder alive while the relay runs.
    _config: ConfigDir,
    client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Starts the relay on `config` with a new store of the given kind.
pub async fn spawn_app(config: ConfigDir, store: &TestStore) -> TestApp {
    config.set_store(&store.fresh_url(config.dir.path()).await);
    spawn_on(config).await
}

/// Starts the relay on `config` as it is (its store included).
pub async fn spawn_on(config: ConfigDir) -> TestApp {
    // Relay logs go to the test's captured output, shown when it fails.
    let _ = tracing_subscriber::fmt().with_env_filter("raaft_relay=debug").with_test_writer().try_init();
    let loaded = LoadedConfig::load(&config.path()).unwrap_or_else(|p| panic!("config does not load:\n{p}"));
    let location = loaded.config.store.location.clone();
    let app = Application::build(loaded).await.unwrap();
    let store = app.state().store().clone();
    let address = format!("http://127.0.0.1:{}", app.port());
    let admin_address = app.admin_port().map(|port| format!("http://127.0.0.1:{port}"));
    let metrics = app.state().metrics().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    TestApp {
        address,
        admin_address,
        store,
        location,
        metrics,
        _config: config,
        client: reqwest::Client::new(),
        stop: Some(stop),
        handle: Some(handle),
    }
}

impl TestApp {
    pub async fn post_event(&self, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.post_with_token(body, Some(TOKEN)).await
    }

    pub async fn post_with_token(&self, body: impl Into<reqwest::Body>, token: Option<&str>) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}/webhooks/raaft", self.address))
            .header("content-type", "application/json")
            .body(body);
        if let Some(token) = token {
            request = request.header("x-raaft-token", token);
        }
        request.send().await.expect("the relay answers")
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The relay's config file (for the `deliveries` commands).
    pub fn config_path(&self) -> PathBuf {
        self._config.path()
    }

    pub async fn stats(&self) -> StoreStats {
        count(&self.location).await
    }

    /// Waits until no delivery is pending.
    pub async fn wait_settled(&self, deadline: Duration) -> StoreStats {
        let start = Instant::now();
        loop {
            let s = self.stats().await;
            if s.pending == 0 {
                return s;
            }
            if start.elapsed() > deadline {
                panic!("timed out after {deadline:?} waiting for every delivery to finish: {s:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Why each dead delivery died.
    pub async fn dead_reasons(&self) -> Vec<String> {
        let filter = ListFilter { status: Some(Status::Dead), limit: 100, ..Default::default() };
        self.store.list(&filter).await.unwrap().into_iter().map(|d| d.last_error.unwrap_or_default()).collect()
    }

    /// Stops the relay and waits for it to finish.
    /// Stops the relay and waits for it; returns the config folder (and
    /// the SQLite store in it) for checks after the stop.
    pub async fn stop(mut self) -> ConfigDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle.await.unwrap().unwrap();
        }
        self._config
    }
}

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Answer {
    pub fn new(status: u16, body: &str) -> Self {
        Answer { status, headers: Vec::new(), body: body.into(), delay: Duration::ZERO }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// A request a receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// What the receiver answered.
    pub status: u16,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }
}

/// A real HTTP server on port 0 that records every request and answers
/// from a script, then with its default answer.
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
    /// At most this many requests per window, else 429 (like Slack).
    limit: Arc<Mutex<Option<(usize, Duration)>>>,
}

impl Receiver {
    pub async fn start(default: Answer) -> Receiver {
        Self::start_on(([127, 0, 0, 1], 0).into(), default).await
    }

    /// As [`Receiver::start`], on a given address (to bring a destination
    /// back where it was).
    pub async fn start_on(addr: SocketAddr, default: Answer) -> Receiver {
        Self::serve(addr, default, None).await
    }

    /// As [`Receiver::start`], over HTTPS with the given PEM certificate
    /// chain and key.
    pub async fn start_tls(default: Answer, cert: &str, key: &str) -> Receiver {
        Self::serve(([127, 0, 0, 1], 0).into(), default, Some((cert.to_owned(), key.to_owned()))).await
    }

    async fn serve(addr: SocketAddr, default: Answer, tls: Option<(String, String)>) -> Receiver {
        let received = Arc::new(Mutex::new(Vec::<Received>::new()));
        let script = Arc::new(Mutex::new(VecDeque::<Answer>::new()));
        let limit = Arc::new(Mutex::new(None::<(usize, Duration)>));
        let (rec, scr, lim) = (received.clone(), script.clone(), limit.clone());
        let route = warp::path::full()
            .and(warp::query::raw().or(warp::any().map(String::new)).unify())
            .and(warp::header::headers_cloned())
            .and(warp::body::bytes())
            .and_then(move |path: warp::path::FullPath, query: String, headers: HeaderMap, body: Bytes| {
                let (rec, scr, lim, default) = (rec.clone(), scr.clone(), lim.clone(), default.clone());
                async move {
                    let now = Instant::now();
                    let over_limit = lim.lock().unwrap().is_some_and(|(n, window)| {
                        rec.lock().unwrap().iter().filter(|r| now.duration_since(r.at) < window).count() >= n
                    });
                    let answer = if over_limit {
                        Answer::new(429, "rate_limited").header("retry-after", "1")
                    } else {
                        scr.lock().unwrap().pop_front().unwrap_or(default)
                    };
                    rec.lock().unwrap().push(Received {
                        status: answer.status,
                        path: path.as_str().to_owned(),
                        query,
                        headers,
                        body,
                        at: now,
                    });
                    if !answer.delay.is_zero() {
                        tokio::time::sleep(answer.delay).await;
                    }
                    let mut response = warp::http::Response::builder().status(answer.status);
                    for (k, v) in &answer.headers {
                        response = response.header(k, v);
                    }
                    Ok::<_, std::convert::Infallible>(response.body(answer.body).unwrap())
                }
            });
        let addr = match tls {
            None => {
                let (addr, server) = warp::serve(route).bind_ephemeral(addr);
                tokio::spawn(server);
                addr
            }
            Some((cert, key)) => {
                let (addr, server) = warp::serve(route).tls().cert(cert).key(key).bind_ephemeral(addr);
                tokio::spawn(server);
                addr
            }
        };
        Receiver { addr, received, script, limit }
    }

    /// Answers 429 to a request that comes when `n` requests already came
    /// within `window`.
    pub fn limit(&self, n: usize, window: Duration) -> &Self {
        *self.limit.lock().unwrap() = Some((n, window));
        self
    }

    /// Answers like a Slack incoming webhook: 200 `ok`.
    pub async fn slack() -> Receiver {
        Self::start(Answer::new(200, "ok").header("content-type", "text/plain")).await
    }

    /// Answers like a Discord webhook: 204 No Content.
    pub async fn discord() -> Receiver {
        Self::start(Answer::new(204, "")).await
    }

    pub fn then(&self, answer: Answer) -> &Self {
        self.script.lock().unwrap().push_back(answer);
        self
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The URL of an HTTPS receiver, by the name `host`.
    pub fn https_url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.addr.port())
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    pub async fn wait_for(&self, n: usize, deadline: Duration) -> Vec<Received> {
        wait_until(deadline, &format!("{n} request(s) at {}", self.addr), || self.count() >= n).await;
        self.received()
    }
}

/// A message the SMTP server accepted.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

#[derive(Clone)]
struct SmtpHandler {
    mails: Arc<Mutex<Vec<Mail>>>,
    /// Answers to RCPT TO, in order, then 250.
    script: Arc<Mutex<VecDeque<(u16, String)>>>,
    attempts: Arc<Mutex<usize>>,
    current: Option<Mail>,
}

impl mailin_embedded::Handler for SmtpHandler {
    fn mail(&mut self, _ip: std::net::IpAddr, _domain: &str, _from: &str) -> mailin_embedded::Response {
        *self.attempts.lock().unwrap() += 1;
        mailin_embedded::response::OK
    }

    fn rcpt(&mut self, _to: &str) -> mailin_embedded::Response {
        match self.script.lock().unwrap().pop_front() {
            Some((code, text)) => mailin_embedded::Response::custom(code, text),
            None => mailin_embedded::response::OK,
        }
    }

    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> mailin_embedded::Response {
        self.current = Some(Mail { from: from.into(), to: to.to_vec(), data: String::new() });
        mailin_embedded::response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if let Some(m) = &mut self.current {
            m.data.push_str(&String::from_utf8_lossy(buf));
        }
        Ok(())
    }

    fn data_end(&mut self) -> mailin_embedded::Response {
        if let Some(m) = self.current.take() {
            self.mails.lock().unwrap().push(m);
        }
        mailin_embedded::response::OK
    }
}

/// A real SMTP server (mailin-embedded) on port 0.
pub struct SmtpServer {
    pub port: u16,
    handler: SmtpHandler,
}

impl SmtpServer {
    pub fn start() -> SmtpServer {
        Self::start_with(mailin_embedded::SslConfig::None)
    }

    /// An SMTP server offering STARTTLS with the certificate and key at
    /// these paths (PEM), issued by the authority at `ca`.
    pub fn start_starttls(cert: &Path, key: &Path, ca: &Path) -> SmtpServer {
        let path = |p: &Path| p.to_str().unwrap().to_owned();
        Self::start_with(mailin_embedded::SslConfig::Trusted {
            cert_path: path(cert),
            key_path: path(key),
            chain_path: path(ca),
        })
    }

    fn start_with(ssl: mailin_embedded::SslConfig) -> SmtpServer {
        // mailin's rustls asks for the process's provider; the test build
        // has two (its dependencies enable aws-lc-rs), the relay uses ring.
        raaft_relay::tls::install_crypto_provider();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let handler =
            SmtpHandler { mails: Arc::default(), script: Arc::default(), attempts: Arc::default(), current: None };
        let mut server = mailin_embedded::Server::new(handler.clone());
        server
            .with_name("smtp.test")
            .with_ssl(ssl)
            .expect("the SMTP server takes the certificate")
            .with_tcp_listener(listener);
        std::thread::spawn(move || {
            let _ = server.serve();
        });
        SmtpServer { port, handler }
    }

    /// Answers the next RCPT TO with `code` instead of 250 (a 550 for an
    /// unknown mailbox, a 451 for greylisting).
    pub fn then(&self, code: u16, text: &str) -> &Self {
        self.handler.script.lock().unwrap().push_back((code, text.into()));
        self
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.handler.mails.lock().unwrap().clone()
    }

    /// Mail transactions started (MAIL FROM commands).
    pub fn attempts(&self) -> usize {
        *self.handler.attempts.lock().unwrap()
    }
}

/// The real `raaft-relay serve` as a child process.
pub struct RelayProcess {
    pub child: std::process::Child,
    pub port: u16,
    pub stdout: Arc<Mutex<String>>,
    pub stderr: Arc<Mutex<String>>,
    /// Standard output left unread (its pipe fills up), when asked for.
    _unread_stdout: Option<std::process::ChildStdout>,
}

/// Collects everything `from` produces, on a thread of its own.
pub fn collect_output(mut from: impl std::io::Read + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = text.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    text
}

/// The binary, run from the repository with a clean environment.
pub fn relay_command() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_raaft-relay"));
    cmd.current_dir(repo_path("")).env_remove("RAAFT_TOKEN").env_remove("RUST_LOG").env_remove("RAAFT_RELAY_CONFIG");
    cmd
}

/// The binary with its clock `offset` from the machine's ("+30s"), through
/// Debian's libfaketime. The library is preloaded into the relay itself
/// (the path the `faketime` wrapper would use), not run under the wrapper:
/// the wrapper forks, and killing it would leave the relay running.
pub fn skewed_relay_command(offset: &str) -> std::process::Command {
    let preload = std::process::Command::new("faketime")
        .args(["-f", "+0s", "sh", "-c", "printf %s \"$LD_PRELOAD\""])
        .output()
        .ok()
        .filter(|out| out.status.success() && !out.stdout.is_empty())
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned());
    let preload = preload.expect("faketime is needed (Debian: apt-get install faketime)");
    let mut cmd = relay_command();
    cmd.env("LD_PRELOAD", preload).env("FAKETIME", offset);
    cmd
}

impl RelayProcess {
    /// Starts `serve` on `config` (listening on port 0) and waits until it
    /// says which port it got.
    pub async fn start(config: &Path) -> RelayProcess {
        Self::start_with(relay_command(), config).await
    }

    /// As [`RelayProcess::start`], through `command` (the binary, or the
    /// binary under another program).
    pub async fn start_with(command: std::process::Command, config: &Path) -> RelayProcess {
        Self::launch(command, config, "json", true).await
    }

    /// As [`RelayProcess::start`], with standard output never read: once
    /// the pipe's buffer is full, every write to it blocks.
    pub async fn start_with_stdout_unread(config: &Path) -> RelayProcess {
        Self::launch(relay_command(), config, "json", false).await
    }

    /// As [`RelayProcess::start`], logging in the readable format.
    pub async fn start_pretty(config: &Path) -> RelayProcess {
        Self::launch(relay_command(), config, "pretty", true).await
    }

    async fn launch(
        mut command: std::process::Command,
        config: &Path,
        format: &str,
        read_stdout: bool,
    ) -> RelayProcess {
        let mut child = command
            .args(["--config", config.to_str().unwrap(), "--log-format", format, "serve"])
            .env_remove("NO_COLOR")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (stdout, unread) = match read_stdout {
            true => (collect_output(child.stdout.take().unwrap()), None),
            false => (Arc::default(), child.stdout.take()),
        };
        let stderr = collect_output(child.stderr.take().unwrap());
        let port_of = |logs: &str| {
            logs.lines().find_map(|line| match serde_json::from_str::<serde_json::Value>(line) {
                Ok(v) => (v["message"] == "raaft-relay listening").then(|| v["port"].as_u64()).flatten(),
                Err(_) => line
                    .contains("raaft-relay listening")
                    .then(|| line.split_once("port=")?.1.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
                    .flatten(),
            })
        };
        let logs = stderr.clone();
        wait_until(Duration::from_secs(20), "the relay to listen", || {
            port_of(&logs.lock().unwrap()).is_some()
                || !logs.lock().unwrap().is_empty() && logs.lock().unwrap().contains("error")
        })
        .await;
        let port = port_of(&stderr.lock().unwrap())
            .unwrap_or_else(|| panic!("the relay did not start:\n{}", stderr.lock().unwrap()));
        RelayProcess { child, port: port as u16, stdout, stderr, _unread_stdout: unread }
    }

    /// Everything the relay printed so far.
    pub fn logs(&self) -> String {
        format!("{}{}", self.stdout.lock().unwrap(), self.stderr.lock().unwrap())
    }

    pub async fn post(&self, body: String) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/webhooks/raaft", self.port))
            .header("x-raaft-token", TOKEN)
            .body(body)
            .send()
            .await
            .expect("the relay answers")
    }

    /// kill -9.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits for the exit.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        tokio::task::spawn_blocking(move || self.child.wait().unwrap()).await.unwrap()
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a `deliveries` command on `config` and returns its standard output.
pub fn deliveries_cli(config: &Path, args: &[&str]) -> String {
    let out = relay_command().args(["--config", config.to_str().unwrap(), "deliveries"]).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "deliveries {args:?} failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// The `flowId` of every event a receiver got, with how often.
pub fn flow_counts(received: &[Received]) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for r in received {
        let flow = r.json()["flow"].as_str().unwrap_or_default().to_owned();
        *counts.entry(flow).or_insert(0) += 1;
    }
    counts
}

/// A certificate authority made for one test, and certificates it issues.
pub struct TestCa {
    key: rcgen::KeyPair,
    certificate: rcgen::Certificate,
}

/// A certificate and its key, PEM.
pub struct Issued {
    pub cert: String,
    pub key: String,
}

impl TestCa {
    pub fn new() -> TestCa {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, "raaft-relay test CA");
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
        let certificate = params.self_signed(&key).unwrap();
        TestCa { key, certificate }
    }

    pub fn pem(&self) -> String {
        self.certificate.pem()
    }

    /// A server certificate for `names` (DNS names or IP addresses).
    pub fn issue(&self, names: &[&str]) -> Issued {
        self.issue_with(names, |_| {})
    }

    /// One that expired in 2020.
    pub fn issue_expired(&self, names: &[&str]) -> Issued {
        self.issue_with(names, |params| {
            params.not_before = rcgen::date_time_ymd(2019, 1, 1);
            params.not_after = rcgen::date_time_ymd(2020, 1, 1);
        })
    }

    fn issue_with(&self, names: &[&str], adjust: impl FnOnce(&mut rcgen::CertificateParams)) -> Issued {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, names[0]);
        adjust(&mut params);
        let cert = params.signed_by(&key, &self.certificate, &self.key).unwrap();
        Issued { cert: cert.pem(), key: key.serialize_pem() }
    }
}

/// A store in front of a real one, for tests: it can be switched off (the
/// calls that take or hand out work fail as a broken disk would) and it
/// counts how often the per-destination figures are read.
pub struct ProbedStore {
    inner: Arc<dyn Store>,
    pub down: std::sync::atomic::AtomicBool,
    pub stats_reads: std::sync::atomic::AtomicUsize,
}

impl ProbedStore {
    pub fn new(inner: Arc<dyn Store>) -> ProbedStore {
        ProbedStore { inner, down: Default::default(), stats_reads: Default::default() }
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable("disk I/O error".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait::async_trait]
impl Queue for ProbedStore {
    async fn enqueue(&self, e: NewEvent, d: Vec<NewDelivery>) -> Result<Enqueued, StoreError> {
        self.check()?;
        self.inner.enqueue(e, d).await
    }

    async fn claim_due(&self, limit: usize, lease: Duration) -> Result<Vec<Job>, StoreError> {
        self.check()?;
        self.inner.claim_due(limit, lease).await
    }

    async fn next_due(&self) -> Result<Option<Duration>, StoreError> {
        self.inner.next_due().await
    }

    async fn finish_attempt(&self, job: &Job, a: AttemptRecord, s: NextStep) -> Result<Recorded, StoreError> {
        self.inner.finish_attempt(job, a, s).await
    }

    async fn extend_lease(&self, job: &Job, lease: Duration) -> Result<bool, StoreError> {
        self.inner.extend_lease(job, lease).await
    }

    async fn postpone(&self, job: &Job, delay: Duration) -> Result<(), StoreError> {
        self.inner.postpone(job, delay).await
    }
}

#[async_trait::async_trait]
impl Inspect for ProbedStore {
    async fn destination_stats(&self) -> Result<Vec<DestinationStats>, StoreError> {
        self.stats_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.destination_stats().await
    }

    async fn list(&self, f: &ListFilter) -> Result<Vec<DeliverySummary>, StoreError> {
        self.inner.list(f).await
    }

    async fn show(&self, id: &str) -> Result<Option<DeliveryDetail>, StoreError> {
        self.inner.show(id).await
    }

    async fn replay(&self, ids: &[String]) -> Result<Vec<Replayed>, StoreError> {
        self.inner.replay(ids).await
    }

    async fn replay_dead(&self, d: Option<&str>) -> Result<u64, StoreError> {
        self.inner.replay_dead(d).await
    }

    async fn purge_dead(&self, o: Duration) -> Result<u64, StoreError> {
        self.inner.purge_dead(o).await
    }

    async fn discard(&self, ids: &[String], reason: &str) -> Result<Vec<String>, StoreError> {
        self.inner.discard(ids, reason).await
    }

    async fn activity(&self, p: &[Duration]) -> Result<Vec<raaft_relay::store::inspect::Activity>, StoreError> {
        self.inner.activity(p).await
    }

    async fn list_events(
        &self,
        f: &raaft_relay::store::inspect::EventFilter,
    ) -> Result<Vec<raaft_relay::store::inspect::EventSummary>, StoreError> {
        self.inner.list_events(f).await
    }

    async fn event(&self, id: &str) -> Result<Option<raaft_relay::store::inspect::EventDetail>, StoreError> {
        self.inner.event(id).await
    }

    async fn destination_health(
        &self,
        d: &[String],
    ) -> Result<Vec<raaft_relay::store::inspect::DestinationHealth>, StoreError> {
        self.inner.destination_health(d).await
    }
}

#[async_trait::async_trait]
impl History for ProbedStore {
    async fn history(&self, c: &str, recent: usize) -> Result<raaft_relay::history::EarlierFlows, StoreError> {
        self.check()?;
        self.inner.history(c, recent).await
    }

    async fn forget(&self, c: &str) -> Result<raaft_relay::store::Forgotten, StoreError> {
        self.inner.forget(c).await
    }

    async fn events_with_email(&self, e: &str) -> Result<raaft_relay::store::EmailMatches, StoreError> {
        self.inner.events_with_email(e).await
    }

    async fn forget_events(&self, ids: &[String]) -> Result<raaft_relay::store::Forgotten, StoreError> {
        self.inner.forget_events(ids).await
    }

    async fn scrub(&self) -> Result<(), StoreError> {
        self.inner.scrub().await
    }
}

#[async_trait::async_trait]
impl Digests for ProbedStore {
    async fn events_between(
        &self,
        s: chrono::DateTime<chrono::Utc>,
        e: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<raaft_relay::store::StoredEvent>, StoreError> {
        self.inner.events_between(s, e).await
    }

    async fn last_digest_window(&self, d: &str) -> Result<Option<raaft_relay::store::DigestWindow>, StoreError> {
        self.inner.last_digest_window(d).await
    }

    async fn claim_digest(
        &self,
        d: raaft_relay::store::NewDigest,
    ) -> Result<raaft_relay::store::DigestClaim, StoreError> {
        self.inner.claim_digest(d).await
    }

    async fn digests_quoting(&self, c: &str) -> Result<Vec<raaft_relay::store::StoredDigest>, StoreError> {
        self.inner.digests_quoting(c).await
    }

    async fn rewrite_digest(&self, r: raaft_relay::store::DigestRewrite) -> Result<(), StoreError> {
        self.inner.rewrite_digest(r).await
    }
}

#[async_trait::async_trait]
impl Store for ProbedStore {
    async fn now(&self) -> Result<chrono::DateTime<chrono::Utc>, StoreError> {
        self.inner.now().await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.check()?;
        self.inner.ping().await
    }

    async fn prune(&self, r: &raaft_relay::store::Retention) -> Result<u64, StoreError> {
        self.inner.prune(r).await
    }

    async fn secret(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        self.inner.secret(name).await
    }

    async fn renew_secret(&self, name: &str) -> Result<(), StoreError> {
        self.inner.renew_secret(name).await
    }

    async fn revoke_session(&self, id: &str, issued: chrono::DateTime<chrono::Utc>) -> Result<(), StoreError> {
        self.inner.revoke_session(id, issued).await
    }

    async fn session_revoked(&self, id: &str) -> Result<bool, StoreError> {
        self.inner.session_revoked(id).await
    }
}
