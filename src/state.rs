//! What every request handler, the reload task and the maintenance tasks
//! share: the loaded configuration (swapped whole by a reload), the store
//! and its neighbours, the auth guards and the TLS certificate.

use crate::auth::AuthGuard;
use crate::delivery::Services;
use crate::loaded_config::LoadedConfig;
use crate::metrics::Metrics;
use crate::store::Store;
use arc_swap::ArcSwap;
use std::sync::Arc;
use tokio::sync::Notify;

/// What every request handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The running set; hot reload swaps it whole.
    pub loaded: Arc<ArcSwap<LoadedConfig>>,
    pub wake: Arc<Notify>,
    /// The store, with all its sides.
    pub store: Arc<dyn Store>,
    /// The queue, metrics, pacer and alerts, shared with the dispatcher.
    pub services: Arc<Services>,
    /// Failed authentications per client, for `x-raaft-token`; replaced
    /// when a reload changes its settings.
    pub auth: Arc<ArcSwap<AuthGuard>>,
    /// Failed authentications per client, for admin bearer tokens.
    pub admin_auth: Arc<ArcSwap<AuthGuard>>,
    /// The TLS certificate served, when the relay terminates TLS; a reload
    /// re-reads the files.
    pub tls: Option<Arc<ArcSwap<tokio_rustls::TlsAcceptor>>>,
    /// Held while a reload loads and swaps: one at a time.
    pub reloading: Arc<std::sync::Mutex<()>>,
    /// The last reload tried, and how it went (the console shows it).
    pub last_reload: Arc<std::sync::Mutex<Option<ReloadRecord>>>,
    /// Request bodies under way, per client.
    pub bodies: Arc<crate::body_gate::BodyGate>,
    /// The store's key for naming customers known by an e-mail address in
    /// logs ([`crate::redact`]).
    pub log_key: Arc<[u8]>,
}

impl AppState {
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.services.metrics
    }
}

/// A reload tried ([`crate::reload`]): when, why, and the problems that
/// kept the running set.
#[derive(Debug, Clone)]
pub struct ReloadRecord {
    pub at: chrono::DateTime<chrono::Utc>,
    pub trigger: String,
    /// Empty when the new set runs.
    pub problems: Vec<String>,
}
