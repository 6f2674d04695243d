//! The HTTP side: `Application::build` binds, wires the store and the
//! dispatcher and returns something with `port()` and
//! `run_until_stopped()`; `main` and the tests call the same function.

use crate::alerts::Alerts;
use crate::auth::AuthGuard;
use crate::delivery::{Dispatcher, Services, DEFAULT_MAX_IN_FLIGHT};
use crate::event::Event;
use crate::metrics::Metrics;
use crate::pacing::Pacer;
use crate::runtime::Runtime;
use crate::server::ClientAddr;
use crate::store::{Access, Enqueued, NewDelivery, NewEvent, Store, StoreError};
use arc_swap::ArcSwap;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde_json::json;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use subtle::ConstantTimeEq;
use tokio::sync::{watch, Notify};
use tracing::{info, warn, Instrument};
use warp::http::StatusCode;
use warp::{Buf, Filter, Rejection, Reply};

/// What every request handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The running set; hot reload swaps it whole.
    pub runtime: Arc<ArcSwap<Runtime>>,
    pub wake: Arc<Notify>,
    /// The store, metrics, pacer and alerts, shared with the dispatcher.
    pub services: Arc<Services>,
    /// Failed authentications per client, for `x-raaft-token`; replaced
    /// when a reload changes its settings.
    pub auth: Arc<ArcSwap<AuthGuard>>,
    /// Failed authentications per client, for admin bearer tokens.
    pub admin_auth: Arc<ArcSwap<AuthGuard>>,
    /// The TLS certificate served, when the relay terminates TLS; a reload
    /// re-reads the files.
    pub tls: Option<Arc<ArcSwap<tokio_rustls::TlsAcceptor>>>,
}

impl AppState {
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.services.store
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.services.metrics
    }

    /// Compares `presented` with every configured token in constant time,
    /// without stopping at the first match.
    fn token_ok(&self, presented: &[u8]) -> bool {
        let runtime = self.runtime.load();
        let mut ok = subtle::Choice::from(0);
        for token in &runtime.config.tokens {
            ok |= token.as_bytes().ct_eq(presented);
        }
        bool::from(ok)
    }
}

/// A built relay, bound and ready to run.
pub struct Application {
    /// The bound server; it stops when `stop` fires.
    server: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
    stop: tokio::sync::oneshot::Sender<()>,
    port: u16,
    state: AppState,
    max_in_flight: usize,
    /// SIGHUP, registered before the port is announced: a signal sent as
    /// soon as the relay listens must reload it, not end it.
    hangup: crate::reload::Hangup,
}

impl Application {
    /// Opens the store of the runtime's config (for `serve`: an SQLite
    /// file is this process's alone) and binds `server.listen`.
    pub async fn build(runtime: Runtime) -> anyhow::Result<Self> {
        let config = &runtime.config;
        let store = crate::store::open(&config.store.location, config.dedup_window, Access::Serve).await.map_err(
            |e| match e {
                StoreError::InUse(_) => anyhow::Error::new(e),
                e => anyhow::Error::new(e).context(format!("cannot open the store at \"{}\"", config.store.location)),
            },
        )?;
        Self::build_with_store(runtime, store).await
    }

    pub async fn build_with_store(runtime: Runtime, store: Arc<dyn Store>) -> anyhow::Result<Self> {
        use anyhow::Context;
        let listen = runtime.config.server.listen.clone();
        let addr = tokio::net::lookup_host(&listen)
            .await
            .with_context(|| format!("cannot resolve listen address \"{listen}\""))?
            .next()
            .with_context(|| format!("listen address \"{listen}\" resolves to nothing"))?;
        let metrics = Arc::new(Metrics::new());
        let services = Arc::new(Services {
            store,
            metrics: metrics.clone(),
            pacer: Arc::new(Pacer::default()),
            alerts: Arc::new(Alerts::new(metrics.clone())),
        });
        let server = &runtime.config.server;
        let auth =
            Arc::new(ArcSwap::from_pointee(AuthGuard::new(server.auth_failures, server.trusted_proxies.clone())));
        let admin_auth = Arc::new(ArcSwap::from_pointee(AuthGuard::new(
            runtime.config.admin_auth_failures,
            server.trusted_proxies.clone(),
        )));
        let tls = match &server.tls {
            Some(files) => Some(Arc::new(ArcSwap::from_pointee(crate::tls::acceptor(&files.cert, &files.key)?))),
            None => None,
        };
        let limits = crate::server::Limits {
            header_timeout: server.header_timeout,
            max_connections: server.max_connections,
            tls: tls.clone(),
        };
        let state = AppState {
            runtime: Arc::new(ArcSwap::from_pointee(runtime)),
            wake: Arc::new(Notify::new()),
            services,
            auth,
            admin_auth,
            tls,
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let listener =
            tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on \"{listen}\""))?;
        let port = listener.local_addr()?.port();
        let server = crate::server::serve(listener, routes(state.clone()), limits, async move {
            let _ = stopped.await;
        });
        let hangup = crate::reload::Hangup::register();
        Ok(Application { server, stop, port, state, max_in_flight: DEFAULT_MAX_IN_FLIGHT, hangup })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes: stops accepting, lets deliveries
    /// under way finish, then returns.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let dispatcher = Dispatcher {
            services: self.state.services.clone(),
            runtime: self.state.runtime.clone(),
            wake: self.state.wake.clone(),
            max_in_flight: self.max_in_flight,
        };
        let dispatcher = tokio::spawn(dispatcher.run(stop_rx.clone()));
        let maintenance = tokio::spawn(maintain(self.state.clone(), stop_rx.clone()));
        let gauges = tokio::spawn(refresh_gauges(self.state.clone(), stop_rx.clone()));
        let reloads = tokio::spawn(crate::reload::watch(self.state.clone(), self.hangup, stop_rx));
        let stop = self.stop;
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop.send(());
        });
        self.server.await;
        info!("stopped accepting events");
        let _ = stop_tx.send(true);
        dispatcher.await?;
        maintenance.await?;
        gauges.await?;
        reloads.await?;
        Ok(())
    }
}

/// How often the store's gauges (queue depth, oldest pending, dead) are
/// read for `/metrics`.
pub const GAUGE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// Keeps the metrics' store gauges fresh, so that a scrape never touches
/// the store (nor the pool that claims use), however often it comes.
async fn refresh_gauges(state: AppState, mut stop: watch::Receiver<bool>) {
    loop {
        let destinations: Vec<String> = state.runtime.load().destinations().map(|d| d.name.clone()).collect();
        state.metrics().refresh_store_gauges(state.store().as_ref(), &destinations).await;
        tokio::select! {
            _ = tokio::time::sleep(GAUGE_INTERVAL) => {}
            _ = stop.changed() => return,
        }
    }
}

/// How often old deliveries and idempotency keys are pruned.
const PRUNE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// Prunes the store at start and then every [`PRUNE_INTERVAL`], and checks
/// for old backlogs often enough to notice one within a quarter of
/// `backlog_after`.
async fn maintain(state: AppState, mut stop: watch::Receiver<bool>) {
    let mut last_prune: Option<std::time::Instant> = None;
    loop {
        let runtime = state.runtime.load_full();
        if last_prune.is_none_or(|at| at.elapsed() >= PRUNE_INTERVAL) {
            last_prune = Some(std::time::Instant::now());
            state.auth.load().forget_recovered();
            state.admin_auth.load().forget_recovered();
            match state.store().prune(runtime.config.store.retention, runtime.config.dedup_window).await {
                Ok(0) => {}
                Ok(n) => info!(pruned = n, "pruned delivered deliveries past retention"),
                Err(e) => warn!(error = %e, "cannot prune the store"),
            }
        }
        let tick = match &runtime.config.alerts {
            Some(alerts) => {
                state.services.alerts.check_backlog(runtime.clone(), state.store().as_ref()).await;
                (alerts.backlog_after / 4).clamp(std::time::Duration::from_millis(250), PRUNE_INTERVAL)
            }
            None => PRUNE_INTERVAL,
        };
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Every endpoint, with rejections turned into JSON errors.
pub fn routes(state: AppState) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let ingest = warp::path!("webhooks" / "raaft")
        .and(warp::post())
        .and(authorized(state.clone()))
        .and(body_limited(state.clone()))
        .and_then(ingest);
    let healthz = warp::path!("healthz").and(warp::get()).map(|| warp::reply::json(&json!({"status": "ok"})));
    let readyz = warp::path!("readyz").and(warp::get()).and(with_state(state.clone())).and_then(readyz);
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(crate::admin::credentials())
        .and_then(metrics);
    ingest.or(healthz).or(readyz).or(metrics).or(crate::admin::routes(state)).recover(handle_rejection)
}

fn with_state(state: AppState) -> impl Filter<Extract = (AppState,), Error = Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// 200 while the config is loaded and the store answers; 503 with the
/// reason otherwise.
async fn readyz(state: AppState) -> Result<warp::reply::Response, Rejection> {
    match state.store().ping().await {
        Ok(()) => Ok(warp::reply::json(&json!({"status": "ready"})).into_response()),
        Err(e) => Ok(warp::reply::with_status(
            warp::reply::json(&json!({"status": "unavailable", "reason": e.to_string()})),
            StatusCode::SERVICE_UNAVAILABLE,
        )
        .into_response()),
    }
}

async fn metrics(
    state: AppState,
    authorization: Option<String>,
    peer: Option<ClientAddr>,
    forwarded_for: Option<String>,
) -> Result<warp::reply::Response, Rejection> {
    let runtime = state.runtime.load_full();
    if !runtime.config.server.metrics {
        return Err(warp::reject::not_found());
    }
    if runtime.config.metrics_auth {
        crate::admin::check_bearer(&state, authorization.as_deref(), peer, forwarded_for.as_deref())?;
    }
    let text = state.metrics().render();
    Ok(warp::http::Response::builder()
        .header("content-type", "text/plain; version=0.0.4")
        .body(text.into())
        .unwrap_or_default())
}

/// Every refusal the HTTP side can answer with.
#[derive(Debug)]
pub(crate) enum ApiError {
    Unauthorized,
    TooLarge(u64),
    BadRequest(String),
    Unavailable(String),
    NotFound(String),
    BodyTimeout(std::time::Duration),
    TooManyFailures(std::time::Duration),
    UnsupportedEncoding(String),
}

impl warp::reject::Reject for ApiError {}

/// Lets the request through only with a valid `x-raaft-token`; the body is
/// not read otherwise. A client past its allowance of failures is answered
/// 429 before its token is looked at; failures count against it.
fn authorized(state: AppState) -> impl Filter<Extract = (AppState,), Error = Rejection> + Clone {
    warp::header::optional::<String>("x-raaft-token")
        .or(warp::any().map(|| None))
        .unify()
        .and(warp::ext::optional::<ClientAddr>())
        .and(warp::header::optional::<String>("x-forwarded-for").or(warp::any().map(|| None)).unify())
        .and_then(move |token: Option<String>, peer: Option<ClientAddr>, forwarded_for: Option<String>| {
            let state = state.clone();
            async move {
                let guard = state.auth.load();
                let client = guard.client(peer.map(|a| a.0.ip()), forwarded_for.as_deref());
                let limited = |wait| {
                    state.metrics().events.with_label_values(&["unknown", "limited"]).inc();
                    if client.is_some_and(|ip| guard.should_report(ip)) {
                        let shown = client.map(crate::auth::ClientKey::of);
                        warn!(client = %shown.map(|k| k.to_string()).unwrap_or_default(), "too many failed authentications; answering 429 for a while");
                    }
                    warp::reject::custom(ApiError::TooManyFailures(wait))
                };
                if let Some(wait) = client.and_then(|ip| guard.blocked(ip).err()) {
                    return Err(limited(wait));
                }
                match token {
                    Some(t) if state.token_ok(t.as_bytes()) => Ok(state.clone()),
                    presented => {
                        if let Some(wait) = client.and_then(|ip| guard.failed(ip).err()) {
                            return Err(limited(wait));
                        }
                        state.metrics().events.with_label_values(&["unknown", "unauthorized"]).inc();
                        let why = if presented.is_some() { "wrong token" } else { "missing token" };
                        let shown = client.map(|ip| ip.to_string()).unwrap_or_else(|| "unknown".into());
                        warn!(client = %shown, reason = why, "rejected webhook: {why}");
                        Err(warp::reject::custom(ApiError::Unauthorized))
                    }
                }
            }
        })
}

/// Reads the body up to `limit` bytes; larger bodies are refused with 413
/// without buffering them, whether or not they declare a length. A `gzip`
/// or `deflate` body is decoded, with the limit applied to the decoded
/// bytes too; any other `Content-Encoding` gets 415.
fn body_limited(state: AppState) -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and(warp::header::optional::<String>("content-encoding"))
        .and(warp::body::stream())
        .and_then(move |declared: Option<u64>, encoding: Option<String>, stream| {
            let server = &state.runtime.load().config.server;
            let (limit, deadline) = (server.max_body_bytes, server.body_timeout);
            async move {
                let coding = crate::encoding::ContentCoding::parse(encoding.as_deref())
                    .map_err(|e| warp::reject::custom(ApiError::UnsupportedEncoding(e.to_string())))?;
                // A client that stops sending gets an answer and a closed
                // connection, not a worker held forever.
                let body = tokio::time::timeout(deadline, read_limited(declared, stream, limit))
                    .await
                    .unwrap_or(Err(warp::reject::custom(ApiError::BodyTimeout(deadline))))?;
                coding.decode(body, limit).map_err(|e| match e {
                    crate::encoding::DecodeError::TooLarge => warp::reject::custom(ApiError::TooLarge(limit)),
                    e => warp::reject::custom(ApiError::BadRequest(e.to_string())),
                })
            }
        })
}

async fn read_limited<S, B>(declared: Option<u64>, stream: S, limit: u64) -> Result<Bytes, Rejection>
where
    S: futures_util::Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    if declared.is_some_and(|len| len > limit) {
        return Err(warp::reject::custom(ApiError::TooLarge(limit)));
    }
    futures_util::pin_mut!(stream);
    let mut body = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let mut chunk =
            chunk.map_err(|e| warp::reject::custom(ApiError::BadRequest(format!("cannot read body: {e}"))))?;
        if body.len() as u64 + chunk.remaining() as u64 > limit {
            return Err(warp::reject::custom(ApiError::TooLarge(limit)));
        }
        while chunk.has_remaining() {
            let bytes = chunk.chunk();
            body.extend_from_slice(bytes);
            let n = bytes.len();
            chunk.advance(n);
        }
    }
    Ok(body.freeze())
}

async fn ingest(state: AppState, body: Bytes) -> Result<warp::reply::Response, Rejection> {
    let event = Event::parse(&body).map_err(|e| {
        state.metrics().events.with_label_values(&["unknown", "invalid"]).inc();
        warp::reject::custom(ApiError::BadRequest(e.to_string()))
    })?;
    let outcome = Metrics::outcome_label(event.outcome_field());
    let metrics = state.metrics().clone();
    let count = move |result: &str| metrics.events.with_label_values(&[outcome, result]).inc();
    let key = event.idempotency_key();
    let span = tracing::info_span!(
        "event",
        event = %key,
        outcome = %event.outcome(),
        customer = %event.customer_id().unwrap_or("-")
    );
    async move {
        let runtime = state.runtime.load();
        let (targets, matched) = runtime.router.route_with_matches(&event.raw);
        let count_matches = || {
            for route in &matched {
                state.metrics().route_matches.with_label_values(&[route]).inc();
            }
        };
        if targets.is_empty() {
            count("accepted");
            state.metrics().unrouted.inc();
            info!("event matched no route");
            return Ok(accepted(0));
        }
        let deliveries: Vec<NewDelivery> =
            targets.into_iter().map(|t| NewDelivery { destination: t.destination, routes: t.routes }).collect();
        let new_event = NewEvent {
            key,
            // serde_json accepted it, so it is UTF-8.
            body: String::from_utf8_lossy(&body).into_owned(),
            outcome: event.outcome_field().map(str::to_owned),
            customer: event.customer_id().map(str::to_owned),
        };
        match state.store().enqueue(new_event, deliveries).await {
            Ok(Enqueued::Accepted { deliveries }) => {
                count("accepted");
                count_matches();
                state.wake.notify_one();
                info!(deliveries = deliveries.len(), "event accepted");
                Ok(accepted(deliveries.len()))
            }
            Ok(Enqueued::Duplicate) => {
                count("duplicate");
                info!("duplicate event ignored");
                Ok(accepted(0))
            }
            Err(e) => {
                count("unavailable");
                warn!(error = %e, "cannot store event");
                Err(warp::reject::custom(ApiError::Unavailable("store unavailable, retry later".into())))
            }
        }
    }
    .instrument(span)
    .await
}

fn accepted(deliveries: usize) -> warp::reply::Response {
    warp::reply::json(&json!({"status": "accepted", "deliveries": deliveries})).into_response()
}

fn error_reply(status: StatusCode, message: &str) -> warp::reply::Response {
    warp::reply::with_status(warp::reply::json(&json!({"error": message})), status).into_response()
}

async fn handle_rejection(err: Rejection) -> Result<warp::reply::Response, Infallible> {
    let reply = if let Some(e) = err.find::<ApiError>() {
        match e {
            ApiError::Unauthorized => error_reply(StatusCode::UNAUTHORIZED, "missing or invalid x-raaft-token"),
            ApiError::TooLarge(limit) => {
                warn!(limit, "refused a request: body too large");
                error_reply(StatusCode::PAYLOAD_TOO_LARGE, &format!("body exceeds {limit} bytes"))
            }
            ApiError::BadRequest(reason) => {
                warn!(%reason, "refused a request: bad request");
                error_reply(StatusCode::BAD_REQUEST, reason)
            }
            ApiError::Unavailable(reason) => error_reply(StatusCode::SERVICE_UNAVAILABLE, reason),
            ApiError::NotFound(what) => error_reply(StatusCode::NOT_FOUND, what),
            ApiError::UnsupportedEncoding(reason) => {
                warn!(%reason, "refused a request: unsupported content encoding");
                error_reply(StatusCode::UNSUPPORTED_MEDIA_TYPE, reason)
            }
            ApiError::TooManyFailures(wait) => {
                let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                let mut reply = error_reply(
                    StatusCode::TOO_MANY_REQUESTS,
                    &format!("too many failed authentications from this address; retry in {seconds}s"),
                );
                reply.headers_mut().insert(warp::http::header::RETRY_AFTER, seconds.into());
                reply
            }
            ApiError::BodyTimeout(deadline) => {
                let message = format!("body not received within {}", humantime::format_duration(*deadline));
                warn!("refused a request: {message}");
                let mut reply = error_reply(StatusCode::REQUEST_TIMEOUT, &message);
                reply.headers_mut().insert(warp::http::header::CONNECTION, "close".parse().expect("a valid header"));
                reply
            }
        }
    } else if err.is_not_found() {
        error_reply(StatusCode::NOT_FOUND, "not found")
    } else if err.find::<warp::reject::MethodNotAllowed>().is_some() {
        error_reply(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
    } else if let Some(e) = err.find::<warp::reject::InvalidHeader>() {
        error_reply(StatusCode::BAD_REQUEST, &e.to_string())
    } else {
        warn!(rejection = ?err, "unhandled rejection");
        error_reply(StatusCode::BAD_REQUEST, "bad request")
    };
    Ok(reply)
}
