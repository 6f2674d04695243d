//! The HTTP edge: accepts connections and serves the relay's routes on
//! them, with the limits a server on the public internet needs. A client
//! gets `header_timeout` to send a request's headers (then the connection
//! is closed; an idle keep-alive connection is closed after the same time).
//! At most `max_connections` connections are open at once: at the cap, a
//! new connection takes the place of the connection idle the longest, so
//! thousands of idle sockets cannot lock out a client with a request to
//! make; a connection just accepted is left [`FRESH`] to send its request
//! first. When every connection has a request under way, new ones wait in
//! the kernel's backlog. The body's own deadline, and each client's share
//! of bodies under way, are enforced where bodies are read
//! ([`super::body`]).

use futures_util::future::BoxFuture;
use hyper::server::conn::Http;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch, Notify};
use tracing::{debug, warn};
use warp::{Filter, Reply};

/// The address of the peer a request came from, as the routes see it
/// (`warp::ext::optional::<ClientAddr>()`).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// The edge's limits, from `[server]`.
#[derive(Clone)]
pub struct Limits {
    pub header_timeout: Duration,
    pub max_connections: usize,
    /// Set when the relay terminates TLS itself; a reload swaps in a
    /// renewed certificate, which new connections use.
    pub tls: Option<std::sync::Arc<arc_swap::ArcSwap<tokio_rustls::TlsAcceptor>>>,
}

/// How long shutdown waits for requests under way before closing their
/// connections.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

/// How long a connection is left to send its first request before it may
/// be closed to make room: the connection just accepted is never the one
/// evicted for the next.
const FRESH: Duration = Duration::from_millis(250);

/// An open connection: how many of its requests are under way, when it
/// last did anything (accepted, a request began or ended, in milliseconds
/// on the server's clock), and how to close it.
struct Open {
    busy: Arc<AtomicUsize>,
    active: Arc<AtomicU64>,
    evict: oneshot::Sender<()>,
}

/// The open connections, by id (ids only grow).
struct Connections {
    open: Mutex<BTreeMap<u64, Open>>,
    next_id: AtomicU64,
    /// Signalled whenever a connection ends.
    ended: Notify,
    /// What [`Open::active`] counts from.
    started: std::time::Instant,
}

/// A connection just accepted and counted among the open ones.
struct Accepted {
    id: u64,
    stream: TcpStream,
    remote: SocketAddr,
    /// Its requests under way, and when it last did anything.
    busy: Arc<AtomicUsize>,
    active: Arc<AtomicU64>,
    /// Fires when it is closed to make room.
    evicted: oneshot::Receiver<()>,
}

/// What every connection of a listener shares.
struct Shared {
    http: Http,
    connections: Connections,
    header_timeout: Duration,
}

impl Connections {
    fn new() -> Connections {
        Connections {
            open: Mutex::default(),
            next_id: AtomicU64::new(0),
            ended: Notify::new(),
            started: std::time::Instant::now(),
        }
    }

    /// Now, on the clock of [`Open::active`].
    fn now(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn len(&self) -> usize {
        self.open.lock().expect("not poisoned").len()
    }

    /// Counts `stream` among the open connections.
    fn add(&self, stream: TcpStream, remote: SocketAddr) -> Accepted {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let busy = Arc::new(AtomicUsize::new(0));
        let active = Arc::new(AtomicU64::new(self.now()));
        let (evict, evicted) = oneshot::channel();
        let open = Open { busy: busy.clone(), active: active.clone(), evict };
        self.open.lock().expect("not poisoned").insert(id, open);
        Accepted { id, stream, remote, busy, active, evicted }
    }

    /// Closes the connection idle the longest, if one has been idle for
    /// [`FRESH`] at least; false when none has (all busy, or just come).
    fn evict_idle(&self) -> bool {
        let now = self.now();
        let fresh = FRESH.as_millis() as u64;
        let mut open = self.open.lock().expect("not poisoned");
        let idle = open
            .iter()
            .filter(|(_, c)| c.busy.load(Ordering::Acquire) == 0)
            .map(|(id, c)| (c.active.load(Ordering::Acquire), *id))
            .filter(|(active, _)| now.saturating_sub(*active) >= fresh)
            .min()
            .map(|(_, id)| id);
        match idle.and_then(|id| open.remove(&id)) {
            Some(conn) => {
                let _ = conn.evict.send(());
                true
            }
            None => false,
        }
    }

    fn remove(&self, id: u64) {
        self.open.lock().expect("not poisoned").remove(&id);
        self.ended.notify_waiters();
    }

    /// Waits until fewer than `max` connections are open: at the cap, the
    /// connection idle the longest goes; if every one is busy or just
    /// came, until one ends or has idled long enough.
    async fn make_room(&self, max: usize) {
        while self.len() >= max && !self.evict_idle() {
            let ended = self.ended.notified();
            tokio::select! {
                _ = ended => {}
                _ = tokio::time::sleep(FRESH / 5) => {}
            }
        }
    }

    /// Waits for every connection to end, up to `deadline`.
    async fn drain(&self, deadline: Duration) {
        let drained = tokio::time::timeout(deadline, async {
            while self.len() > 0 {
                let ended = self.ended.notified();
                tokio::select! {
                    _ = ended => {}
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            }
        });
        if drained.await.is_err() {
            warn!("shutdown deadline passed with requests under way");
        }
    }
}

/// Serves `filter` on `listener` until `shutdown` completes, then stops
/// accepting, lets requests under way finish (up to [`SHUTDOWN_DEADLINE`])
/// and returns.
pub fn serve<F>(
    listener: TcpListener,
    filter: F,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> BoxFuture<'static, ()>
where
    F: Filter + Clone + Send + Sync + 'static,
    F::Future: Send,
    <F::Future as futures_util::TryFuture>::Ok: Reply,
{
    let service = warp::service(filter);
    let mut http = Http::new();
    http.http1_only(true).http1_header_read_timeout(limits.header_timeout);
    let shared = Arc::new(Shared { http, connections: Connections::new(), header_timeout: limits.header_timeout });
    let max = limits.max_connections.max(1);
    Box::pin(async move {
        let (closing_tx, closing) = watch::channel(false);
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                _ = shared.connections.make_room(max) => tokio::select! {
                    accepted = listener.accept() => accepted,
                    _ = &mut shutdown => break,
                },
                _ = &mut shutdown => break,
            };
            let (stream, remote) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: pause instead
                    // of spinning, then go on.
                    warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let accepted = shared.connections.add(stream, remote);
            let tls = limits.tls.as_ref().map(|t| t.load_full());
            tokio::spawn(connection(accepted, service.clone(), shared.clone(), tls, closing.clone()));
        }
        drop(listener);
        let _ = closing_tx.send(true);
        shared.connections.drain(SHUTDOWN_DEADLINE).await;
    })
}

/// Serves one accepted connection on its own task, until it ends. Each
/// request carries the client's address and counts as under way while it
/// runs (a busy connection is never evicted as idle). Over TLS, the
/// handshake counts as part of the headers' time, and a connection
/// evicted meanwhile goes at once.
async fn connection<S>(
    accepted: Accepted,
    service: S,
    shared: Arc<Shared>,
    tls: Option<Arc<tokio_rustls::TlsAcceptor>>,
    closing: watch::Receiver<bool>,
) where
    S: hyper::service::Service<
            hyper::Request<hyper::Body>,
            Response = hyper::Response<hyper::Body>,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let Accepted { id, stream, remote, busy, active, mut evicted } = accepted;
    let clock = shared.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::Body>| {
        request.extensions_mut().insert(ClientAddr(remote));
        let mut service = service.clone();
        let (busy, active, clock) = (busy.clone(), active.clone(), clock.clone());
        busy.fetch_add(1, Ordering::AcqRel);
        active.store(clock.connections.now(), Ordering::Release);
        async move {
            let response = tower_call(&mut service, request).await;
            active.store(clock.connections.now(), Ordering::Release);
            busy.fetch_sub(1, Ordering::AcqRel);
            Ok::<_, Infallible>(response)
        }
    });
    let closed = |mut closing: watch::Receiver<bool>| async move { drop(closing.wait_for(|c| *c).await) };
    match tls {
        None => serve_connection(&shared.http, stream, service, remote, evicted, closed(closing)).await,
        Some(acceptor) => {
            let handshake = tokio::time::timeout(shared.header_timeout, acceptor.accept(stream));
            let shaken = tokio::select! {
                shaken = handshake => Some(shaken),
                _ = &mut evicted => None,
                _ = closed(closing.clone()) => None,
            };
            match shaken {
                Some(Ok(Ok(stream))) => {
                    serve_connection(&shared.http, stream, service, remote, evicted, closed(closing)).await
                }
                Some(Ok(Err(e))) => debug!(client = %remote, error = %e, "TLS handshake failed"),
                Some(Err(_)) => debug!(client = %remote, "TLS handshake not done in time"),
                None => {}
            }
        }
    }
    shared.connections.remove(id);
}

/// Serves one connection until it ends, is evicted (closed at once) or the
/// relay is closing (requests under way finish).
async fn serve_connection<I, S>(
    http: &Http,
    io: I,
    service: S,
    remote: SocketAddr,
    evicted: oneshot::Receiver<()>,
    closing: impl std::future::Future<Output = ()>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<
            hyper::Request<hyper::Body>,
            Response = hyper::Response<hyper::Body>,
            Error = Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    let connection = http.serve_connection(io, service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = evicted => {
            debug!(client = %remote, "idle connection closed to make room");
            Ok(())
        }
        _ = closing => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        debug!(client = %remote, error = %e, "connection closed with an error");
    }
}

/// Calls warp's service (whose error type is `Infallible`).
async fn tower_call<S>(service: &mut S, request: hyper::Request<hyper::Body>) -> hyper::Response<hyper::Body>
where
    S: hyper::service::Service<
        hyper::Request<hyper::Body>,
        Response = hyper::Response<hyper::Body>,
        Error = Infallible,
    >,
{
    match service.call(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}
