//! The application's wiring: `Application::build` opens the store, binds
//! the listeners and returns something with `port()` and
//! `run_until_stopped()`, which runs the dispatcher, the reload watcher and
//! the maintenance tasks beside the HTTP side; `main` and the tests call
//! the same function.

use crate::auth::AuthGuard;
use crate::delivery::{Dispatcher, Services, DEFAULT_MAX_IN_FLIGHT};
use crate::loaded_config::LoadedConfig;
use crate::metrics::Metrics;
use crate::routes::{admin_listener_routes, public_routes};
use crate::state::AppState;
use crate::store::{Access, Store, StoreError};
use arc_swap::ArcSwap;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::{watch, Notify};
use tracing::{info, warn};

/// A built relay, bound and ready to run.
pub struct Application {
    /// The bound servers (the operators' one when `[admin] listen` is
    /// set); they stop when `stop` turns true.
    servers: Vec<std::pin::Pin<Box<dyn Future<Output = ()> + Send>>>,
    stop: watch::Sender<bool>,
    port: u16,
    admin_port: Option<u16>,
    state: AppState,
    max_in_flight: usize,
    /// SIGHUP, registered before the port is announced: a signal sent as
    /// soon as the relay listens must reload it, not end it.
    hangup: crate::reload::Hangup,
    /// The watch on the config's files, started before the port is
    /// announced too.
    files: crate::reload::FileWatch,
}

impl Application {
    /// Opens the store of the loaded configuration (for `serve`: an SQLite
    /// file is this process's alone) and binds `server.listen` (and
    /// `[admin] listen`).
    pub async fn build(loaded: LoadedConfig) -> anyhow::Result<Self> {
        let config = &loaded.config;
        let store = crate::store::open(&config.store.location, config.dedup_window, Access::Serve).await.map_err(
            |e| match e {
                StoreError::InUse(_) => anyhow::Error::new(e),
                e => anyhow::Error::new(e).context(format!("cannot open the store at \"{}\"", config.store.location)),
            },
        )?;
        Self::build_with_store(loaded, store).await
    }

    pub async fn build_with_store(loaded: LoadedConfig, store: Arc<dyn Store>) -> anyhow::Result<Self> {
        let log_key: Arc<[u8]> = store.secret(crate::redact::LOG_KEY).await?.into();
        let listener = bind(&loaded.config.server.listen).await?;
        let admin_listener = match &loaded.config.admin_listen {
            Some(listen) => Some(bind(listen).await?),
            None => None,
        };
        let metrics = Arc::new(Metrics::new());
        let services = Arc::new(Services::new(store.clone(), metrics.clone()));
        let server = &loaded.config.server;
        let auth =
            Arc::new(ArcSwap::from_pointee(AuthGuard::new(server.auth_failures, server.trusted_proxies.clone())));
        let admin_auth = Arc::new(ArcSwap::from_pointee(AuthGuard::new(
            loaded.config.admin_auth_failures,
            server.trusted_proxies.clone(),
        )));
        let tls = match &server.tls {
            Some(files) => Some(Arc::new(ArcSwap::from_pointee(crate::tls::acceptor(&files.cert, &files.key)?))),
            None => None,
        };
        let state = AppState {
            loaded: Arc::new(ArcSwap::from_pointee(loaded)),
            wake: Arc::new(Notify::new()),
            store,
            services,
            auth,
            admin_auth,
            tls,
            reloading: Default::default(),
            last_reload: Default::default(),
            bodies: Default::default(),
            log_key,
        };
        let limits = limits_for(&state);
        let (stop, stopped) = watch::channel(false);
        let stopped = move || {
            let mut stopped = stopped.clone();
            async move { drop(stopped.wait_for(|s| *s).await) }
        };
        let port = listener.local_addr()?.port();
        let operators_here = admin_listener.is_none();
        let mut servers =
            vec![crate::http::server::serve(listener, public_routes(state.clone(), operators_here), limits, stopped())];
        let mut admin_port = None;
        if let Some(listener) = admin_listener {
            admin_port = Some(listener.local_addr()?.port());
            // Plain HTTP on an address of the operators' choosing (keep it
            // private): no TLS, the same connection limits.
            let limits = crate::http::server::Limits { tls: None, ..limits_for(&state) };
            servers.push(crate::http::server::serve(listener, admin_listener_routes(state.clone()), limits, stopped()));
        }
        let hangup = crate::reload::Hangup::register();
        let files = crate::reload::FileWatch::start(&state.loaded.load(), state.metrics().clone());
        Ok(Application { servers, stop, port, admin_port, state, max_in_flight: DEFAULT_MAX_IN_FLIGHT, hangup, files })
    }

    /// The port of the operators' listener, when `[admin] listen` is set.
    pub fn admin_port(&self) -> Option<u16> {
        self.admin_port
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
            loaded: self.state.loaded.clone(),
            wake: self.state.wake.clone(),
            max_in_flight: self.max_in_flight,
        };
        let dispatcher = tokio::spawn(dispatcher.run(stop_rx.clone()));
        let maintenance = tokio::spawn(maintain(self.state.clone(), stop_rx.clone()));
        let gauges = tokio::spawn(refresh_gauges(self.state.clone(), stop_rx.clone()));
        let digests = tokio::spawn(crate::digest_scheduler::run(
            self.state.loaded.clone(),
            self.state.store().clone(),
            self.state.wake.clone(),
            stop_rx.clone(),
        ));
        let reloads = tokio::spawn(crate::reload::watch(self.state.clone(), self.hangup, self.files, stop_rx));
        let stop = self.stop;
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop.send(true);
        });
        futures_util::future::join_all(self.servers).await;
        info!("stopped accepting events");
        let _ = stop_tx.send(true);
        dispatcher.await?;
        maintenance.await?;
        gauges.await?;
        digests.await?;
        reloads.await?;
        Ok(())
    }
}

/// Resolves and binds `listen`.
async fn bind(listen: &str) -> anyhow::Result<tokio::net::TcpListener> {
    use anyhow::Context;
    let addr = tokio::net::lookup_host(listen)
        .await
        .with_context(|| format!("cannot resolve listen address \"{listen}\""))?
        .next()
        .with_context(|| format!("listen address \"{listen}\" resolves to nothing"))?;
    tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on \"{listen}\""))
}

/// The connection limits of `[server]`, with the TLS certificate served.
fn limits_for(state: &AppState) -> crate::http::server::Limits {
    let server = &state.loaded.load().config.server;
    crate::http::server::Limits {
        header_timeout: server.header_timeout,
        max_connections: server.max_connections,
        tls: state.tls.clone(),
    }
}

/// How often the store's gauges (queue depth, oldest pending, dead) are
/// read for `/metrics`.
pub const GAUGE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// Keeps the metrics' store gauges fresh, so that a scrape never touches
/// the store (nor the pool that claims use), however often it comes.
async fn refresh_gauges(state: AppState, mut stop: watch::Receiver<bool>) {
    loop {
        let destinations: Vec<String> = state.loaded.load().destinations().map(|d| d.name.clone()).collect();
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
        let loaded = state.loaded.load_full();
        if last_prune.is_none_or(|at| at.elapsed() >= PRUNE_INTERVAL) {
            last_prune = Some(std::time::Instant::now());
            state.auth.load().forget_recovered();
            state.admin_auth.load().forget_recovered();
            let retention = crate::store::Retention {
                deliveries: loaded.config.store.retention,
                dedup_window: loaded.config.dedup_window,
                history: loaded.config.history.retention,
                sessions: loaded.config.admin_session,
            };
            match state.store().prune(&retention).await {
                Ok(0) => {}
                Ok(n) => info!(pruned = n, "pruned delivered deliveries past retention"),
                Err(e) => warn!(error = %e, "cannot prune the store"),
            }
        }
        let tick = match &loaded.config.alerts {
            Some(alerts) => {
                state.services.alerts.check_backlog(loaded.clone(), state.store().as_ref()).await;
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
