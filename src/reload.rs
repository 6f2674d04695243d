//! Hot reload: on SIGHUP, and when a file under the config's folder or the
//! templates folder changes, the relay loads and checks the new config and
//! templates (everything `check` does). Only a set that passes replaces the
//! running one, in one swap; a broken edit leaves the old set running.

use crate::check::check_runtime;
use crate::config::StoreLocation;
use crate::runtime::Runtime;
use crate::startup::AppState;
use notify::{EventKind, RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

/// Edits arrive in bursts (an editor writes, renames, touches); wait for
/// quiet before reloading.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// Loads and checks the config at the running set's path and swaps it in.
/// Returns whether the new set is running.
pub fn reload(state: &AppState, why: &str) -> bool {
    let current = state.runtime.load_full();
    let path = current.config.path.clone();
    let loaded = Runtime::load(&path).and_then(|runtime| check_runtime(&runtime).map(|_| runtime));
    match loaded {
        Ok(mut runtime) => {
            // The listener and the store are set up once; changing them
            // needs a restart, and applying half of it would mislead.
            if runtime.config.server.listen != current.config.server.listen {
                warn!(
                    running = %current.config.server.listen,
                    configured = %runtime.config.server.listen,
                    "server.listen changed: restart the relay to apply it"
                );
                runtime.config.server.listen = current.config.server.listen.clone();
            }
            if runtime.config.store.location != current.config.store.location {
                warn!("store.url changed: restart the relay to apply it");
                runtime.config.store.location = current.config.store.location.clone();
            }
            state.runtime.store(std::sync::Arc::new(runtime));
            state.metrics().reloads.with_label_values(&["success"]).inc();
            info!(trigger = why, config = %path.display(), "configuration reloaded");
            true
        }
        Err(problems) => {
            state.metrics().reloads.with_label_values(&["error"]).inc();
            for p in problems.iter() {
                error!(problem = %p, "configuration reload failed; the running configuration stays");
            }
            false
        }
    }
}

/// The SIGHUP listener. Until it exists the signal's default action ends
/// the process, so it is registered before the relay says it listens.
pub struct Hangup {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Hangup {
    /// Starts catching SIGHUP (needs a tokio runtime).
    pub fn register() -> Hangup {
        #[cfg(unix)]
        {
            let signal = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
            if let Err(e) = &signal {
                warn!(error = %e, "cannot catch SIGHUP; reload through file changes");
            }
            Hangup { signal: signal.ok() }
        }
        #[cfg(not(unix))]
        Hangup {}
    }

    /// Resolves at the next SIGHUP (never, where there is none).
    async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some(s) = self.signal.as_mut() {
            s.recv().await;
            return;
        }
        std::future::pending::<()>().await
    }
}

/// Reloads on SIGHUP and on file changes until `stop` turns true.
pub async fn watch(state: AppState, mut hangup: Hangup, mut stop: watch::Receiver<bool>) {
    let (changed_tx, mut changed) = mpsc::channel::<()>(1);
    let runtime = state.runtime.load_full();
    let ignored = store_files(&runtime.config.store.location);
    // Only writes, creations, renames and removals count: reading the
    // files (as every reload does) must not trigger another reload.
    let handler = move |result: notify::Result<notify::Event>| {
        let Ok(event) = result else { return };
        if !matches!(event.kind, EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)) {
            return;
        }
        let relevant: Vec<&Path> =
            event.paths.iter().map(PathBuf::as_path).filter(|p| !ignored.iter().any(|i| p == i)).collect();
        if !relevant.is_empty() {
            tracing::debug!(files = ?relevant, "files changed");
            let _ = changed_tx.try_send(());
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => Some(w),
        Err(e) => {
            warn!(error = %e, "cannot watch files for changes; reload with SIGHUP");
            None
        }
    };
    if let Some(w) = watcher.as_mut() {
        let config_dir = runtime.config.path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
        // Watched as canonical paths, so that events name files as
        // `store_files` does.
        for dir in [config_dir, runtime.config.templates_dir.clone()] {
            let dir = dir.canonicalize().unwrap_or(dir);
            if let Err(e) = w.watch(&dir, RecursiveMode::Recursive) {
                warn!(error = %e, dir = %dir.display(), "cannot watch folder for changes");
            }
        }
    }
    loop {
        tokio::select! {
            _ = hangup.recv() => { reload(&state, "SIGHUP"); }
            Some(()) = changed.recv() => {
                // Edits come in bursts (write, rename, touch): wait for quiet.
                while tokio::time::timeout(DEBOUNCE, changed.recv()).await.is_ok_and(|m| m.is_some()) {}
                reload(&state, "file change");
            }
            _ = stop.changed() => break,
        }
    }
    drop(watcher);
}

/// The SQLite files of a store, by canonical path: their writes (every
/// commit, when the store sits beside the config) are not config changes.
fn store_files(location: &StoreLocation) -> Vec<PathBuf> {
    let StoreLocation::Sqlite(path) = location else { return Vec::new() };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let dir = path.parent().map(|d| d.canonicalize().unwrap_or_else(|_| d.to_path_buf())).unwrap_or_default();
    ["", "-wal", "-shm", "-journal"].iter().map(|suffix| dir.join(format!("{name}{suffix}"))).collect()
}
