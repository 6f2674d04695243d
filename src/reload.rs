//! Hot reload: on SIGHUP, and when a file of the running set changes (the
//! config file, the templates and partials it uses, the files it reads
//! through `${file:}`, the TLS certificate and key), the relay loads and
//! checks the new config and templates (everything `check` does). Only a
//! set that passes replaces the running one, in one swap; a broken edit
//! leaves the old set running. Other files in those folders (a log, the
//! store, an editor's swap file) are ignored, so they cannot cause reloads.
//!
//! Edits come in bursts (an editor writes, renames, touches): a reload
//! waits for [`QUIET`], but never longer than [`CEILING`] after the first
//! change of a burst, so a file that keeps changing cannot hold reloads off.
//! SIGHUP is served at once, whatever the watcher is doing.

use crate::auth::AuthGuard;
use crate::check::check_loaded;
use crate::loaded_config::LoadedConfig;
use crate::metrics::Metrics;
use crate::state::{AppState, ReloadRecord};
use arc_swap::ArcSwap;
use notify::event::ModifyKind;
use notify::{EventKind, RecursiveMode, Watcher};
use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{error, info, warn};

/// How long the running set's files must be quiet before a reload.
pub const QUIET: Duration = Duration::from_millis(200);
/// A burst of changes reloads at most this long after its first change.
pub const CEILING: Duration = Duration::from_millis(800);

/// Loads and checks the config at the running set's path and swaps it in,
/// on a blocking thread (reading files, compiling templates and rendering
/// every sample must not hold an async worker), one reload at a time (a
/// reload that read older files cannot finish after one that read newer
/// ones). `Err` with the problems that kept the running set.
pub async fn reload(state: &AppState, why: &str) -> Result<(), Vec<String>> {
    let before = state.loaded.load().config.admin_tokens.clone();
    let (for_reload, why) = (state.clone(), why.to_owned());
    let reloaded = tokio::task::spawn_blocking(move || {
        let _one_at_a_time = for_reload.reloading.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        reload_here(&for_reload, &why)
    })
    .await
    .unwrap_or_else(|e| {
        error!(error = %e, "configuration reload failed; the running configuration stays");
        Err(vec![format!("the reload failed: {e}")])
    });
    let after = &state.loaded.load().config.admin_tokens;
    if reloaded.is_ok() && before.iter().any(|t| !after.contains(t)) {
        // Sessions made with a removed token end with it (each cookie names
        // its token); a new secret ends every other session too, on every
        // replica (each replica that reloads the change renews it).
        match state.store().renew_secret(crate::auth::CONSOLE_SESSION_SECRET).await {
            Ok(()) => info!("an admin token was removed: console sessions signed again from now"),
            Err(e) => warn!(error = %e, "cannot renew the console sessions' secret"),
        }
    }
    reloaded
}

/// [`reload`] on the calling thread.
fn reload_here(state: &AppState, why: &str) -> Result<(), Vec<String>> {
    let problems = try_reload(state, why);
    let record = ReloadRecord { at: chrono::Utc::now(), trigger: why.to_owned(), problems: problems.clone() };
    *state.last_reload.lock().expect("not poisoned") = Some(record);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// [`reload`], returning the problems that kept the running set.
fn try_reload(state: &AppState, why: &str) -> Vec<String> {
    let current = state.loaded.load_full();
    let path = current.config.path.clone();
    let loaded = LoadedConfig::load(&path).and_then(|loaded| check_loaded(&loaded).map(|_| loaded));
    let mut loaded = match loaded {
        Ok(loaded) => loaded,
        Err(problems) => {
            state.metrics().reloads.with_label_values(&["error"]).inc();
            for p in problems.iter() {
                error!(problem = %p, "configuration reload failed; the running configuration stays");
            }
            return problems.iter().map(ToString::to_string).collect();
        }
    };
    for key in crate::config::keep_start_only(&mut loaded.config, &current.config) {
        warn!(key, "a start-only setting changed: restart the relay to apply it; the running value stays");
    }
    // A renewed certificate is served from the next connection on; a
    // broken pair keeps the running set, certificate included.
    let renewed = match (&state.tls, &loaded.config.server.tls) {
        (Some(_), Some(files)) => match crate::tls::acceptor(&files.cert, &files.key) {
            Ok(acceptor) => Some(acceptor),
            Err(e) => {
                state.metrics().reloads.with_label_values(&["error"]).inc();
                error!(error = %e, "configuration reload failed; the running configuration and certificate stay");
                return vec![e.to_string()];
            }
        },
        _ => None,
    };
    if let (Some(slot), Some(acceptor)) = (&state.tls, renewed) {
        slot.store(Arc::new(acceptor));
    }
    let new = &loaded.config;
    if !state.auth.load().has_settings(new.server.auth_failures, &new.server.trusted_proxies) {
        state.auth.store(Arc::new(AuthGuard::new(new.server.auth_failures, new.server.trusted_proxies.clone())));
    }
    if !state.admin_auth.load().has_settings(new.admin_auth_failures, &new.server.trusted_proxies) {
        state.admin_auth.store(Arc::new(AuthGuard::new(new.admin_auth_failures, new.server.trusted_proxies.clone())));
    }
    state.loaded.store(Arc::new(loaded));
    state.metrics().reloads.with_label_values(&["success"]).inc();
    info!(trigger = why, config = %path.display(), "configuration reloaded");
    Vec::new()
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

/// The files whose changes make a reload, by their path under the
/// canonical form of their folder (as the watcher names them).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct WatchSet {
    files: HashSet<PathBuf>,
    /// Every `*.hbs` in these folders counts (partials are found by
    /// listing their folder).
    partial_dirs: HashSet<PathBuf>,
}

impl WatchSet {
    /// The running set's files: the config, its templates and partials,
    /// `${file:}` files, and the TLS certificate and key.
    pub fn of(loaded: &LoadedConfig) -> WatchSet {
        let config = &loaded.config;
        let mut files: Vec<PathBuf> = vec![config.path.clone()];
        files.extend(loaded.destinations().flat_map(|d| d.templates()).map(|t| t.file.clone()));
        files.extend(loaded.digests().flat_map(|d| d.templates()).map(|t| t.file.clone()));
        files.extend(config.files_read.iter().cloned());
        if let Some(tls) = &config.server.tls {
            files.extend([tls.cert.clone(), tls.key.clone()]);
        }
        WatchSet {
            files: files.iter().map(|f| in_canonical_dir(f)).collect(),
            partial_dirs: [canonical(&config.templates_dir.join("partials"))].into_iter().collect(),
        }
    }

    /// Whether a change to `path` is a change to the running set.
    pub fn covers(&self, path: &Path) -> bool {
        self.files.contains(path)
            || (path.extension().is_some_and(|e| e == "hbs")
                && path.parent().is_some_and(|dir| self.partial_dirs.contains(dir)))
    }

    /// The folders to watch (not recursively).
    fn dirs(&self) -> BTreeSet<PathBuf> {
        self.files
            .iter()
            .filter_map(|f| f.parent().map(Path::to_path_buf))
            .chain(self.partial_dirs.iter().cloned())
            .collect()
    }
}

fn canonical(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
}

/// `path` with its folder made canonical (the file itself may be missing,
/// or a symlink an editor or a secret manager replaces).
fn in_canonical_dir(path: &Path) -> PathBuf {
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) if !dir.as_os_str().is_empty() => canonical(dir).join(name),
        (_, Some(name)) => canonical(Path::new(".")).join(name),
        _ => path.to_path_buf(),
    }
}

/// Only writes, creations, renames and removals count: reading the files
/// (as every reload does) or their access times must not cause a reload.
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) => true,
        _ => false,
    }
}

/// The watch on the running set's files. Started before the relay says it
/// listens, like [`Hangup`]: an edit made as soon as it listens must not
/// be missed.
pub struct FileWatch {
    watcher: Option<notify::RecommendedWatcher>,
    watched: BTreeSet<PathBuf>,
    set: Arc<ArcSwap<WatchSet>>,
    changed: mpsc::Receiver<()>,
}

impl FileWatch {
    /// Starts watching the folders of `loaded`'s files; `metrics` counts
    /// the events seen, as changes or ignored.
    pub fn start(loaded: &LoadedConfig, metrics: Arc<Metrics>) -> FileWatch {
        let (changed_tx, changed) = mpsc::channel::<()>(1);
        let set = Arc::new(ArcSwap::from_pointee(WatchSet::of(loaded)));
        let handler_set = set.clone();
        let handler = move |result: notify::Result<notify::Event>| {
            let Ok(event) = result else { return };
            let set = handler_set.load();
            let changed = is_change(&event.kind).then(|| event.paths.iter().find(|p| set.covers(p))).flatten();
            let result = if changed.is_some() { "change" } else { "ignored" };
            metrics.config_file_events.with_label_values(&[result]).inc();
            if let Some(file) = changed {
                tracing::debug!(file = %file.display(), "a file of the running configuration changed");
                let _ = changed_tx.try_send(());
            }
        };
        let watcher = match notify::recommended_watcher(handler) {
            Ok(w) => Some(w),
            Err(e) => {
                warn!(error = %e, "cannot watch files for changes; reload with SIGHUP");
                None
            }
        };
        let mut watch = FileWatch { watcher, watched: BTreeSet::new(), set, changed };
        watch.watch_dirs();
        watch
    }

    /// Watches the folders of the current set that are not watched yet.
    fn watch_dirs(&mut self) {
        let Some(w) = self.watcher.as_mut() else { return };
        for dir in self.set.load().dirs() {
            if self.watched.contains(&dir) || !dir.is_dir() {
                continue;
            }
            match w.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.watched.insert(dir);
                }
                Err(e) => warn!(error = %e, dir = %dir.display(), "cannot watch folder for changes"),
            }
        }
    }

    /// Follows a reload: the new set's files, and their folders watched.
    fn follow(&mut self, loaded: &LoadedConfig) {
        let new = WatchSet::of(loaded);
        if **self.set.load() != new {
            self.set.store(Arc::new(new));
            self.watch_dirs();
        }
    }
}

/// Reloads on SIGHUP and on changes to the running set's files until
/// `stop` turns true.
pub async fn watch(state: AppState, mut hangup: Hangup, mut files: FileWatch, mut stop: watch::Receiver<bool>) {
    // The first and the latest change of the burst not reloaded yet.
    let mut burst: Option<(Instant, Instant)> = None;
    loop {
        let due = burst.map(|(first, last)| (last + QUIET).min(first + CEILING));
        let reloaded = tokio::select! {
            _ = hangup.recv() => {
                burst = None;
                reload(&state, "SIGHUP").await.is_ok()
            }
            Some(()) = files.changed.recv() => {
                let now = Instant::now();
                burst = Some(burst.map_or((now, now), |(first, _)| (first, now)));
                false
            }
            _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                burst = None;
                reload(&state, "file change").await.is_ok()
            }
            _ = stop.changed() => break,
        };
        if reloaded {
            files.follow(&state.loaded.load());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_running_sets_files_count() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("templates/partials")).unwrap();
        let set = WatchSet {
            files: [root.join("relay.toml"), root.join("templates/slack/a.hbs")].into_iter().collect(),
            partial_dirs: [root.join("templates/partials")].into_iter().collect(),
        };
        assert!(set.covers(&root.join("relay.toml")));
        assert!(set.covers(&root.join("templates/slack/a.hbs")));
        assert!(set.covers(&root.join("templates/partials/new.hbs")));
        assert!(!set.covers(&root.join("relay.log")));
        assert!(!set.covers(&root.join("relay.db-wal")));
        assert!(!set.covers(&root.join(".relay.toml.swp")));
        assert!(!set.covers(&root.join("templates/slack/unused.hbs")));
        assert!(!set.covers(&root.join("templates/partials/notes.txt")));
        assert_eq!(
            set.dirs(),
            [root.clone(), root.join("templates/partials"), root.join("templates/slack")].into_iter().collect()
        );
    }

    #[test]
    fn metadata_changes_and_reads_are_not_changes() {
        use notify::event::{AccessKind, CreateKind, DataChange, MetadataKind};
        assert!(is_change(&EventKind::Modify(ModifyKind::Data(DataChange::Any))));
        assert!(is_change(&EventKind::Create(CreateKind::File)));
        assert!(!is_change(&EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime))));
        assert!(!is_change(&EventKind::Access(AccessKind::Read)));
    }
}
