//! The loaded configuration (the "running set"): a validated config with
//! its routes and compiled destinations. Built whole or not at all, so the
//! relay only ever runs a set that passed every check; a reload swaps one
//! for another.

use crate::channels::Destination;
use crate::config::Config;
use crate::digest::Digest;
use crate::problems::Problems;
use crate::render::TemplateFiles;
use crate::routing::Router;
use std::collections::BTreeMap;
use std::path::Path;

pub struct LoadedConfig {
    pub config: Config,
    pub router: Router,
    destinations: BTreeMap<String, Destination>,
    digests: BTreeMap<String, Digest>,
}

impl std::fmt::Debug for LoadedConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedConfig").field("config", &self.config.path).finish()
    }
}

impl LoadedConfig {
    /// Loads the config at `path` and everything it names, reporting
    /// every problem of the config and its templates at once.
    pub fn load(path: &Path) -> Result<LoadedConfig, Problems> {
        let (config, problems) = Config::load_partial(path);
        match config {
            Some(config) => {
                let templates = TemplateFiles::new(&config.templates_dir);
                Self::build(config, templates, problems)
            }
            None => Err(problems),
        }
    }

    /// [`LoadedConfig::load`] with the template file `rel` (a path under
    /// `templates_dir`) holding `source`, without writing it: the set a
    /// save would make, checked before the save.
    pub fn load_with_edit(path: &Path, rel: &str, source: &str) -> Result<LoadedConfig, Problems> {
        let (config, problems) = Config::load_partial(path);
        match config {
            Some(config) => {
                let templates = TemplateFiles::new(&config.templates_dir).with_edit(rel, source);
                Self::build(config, templates, problems)
            }
            None => Err(problems),
        }
    }

    /// What the store commands load ([`Config::load_for_store`]): every
    /// destination and digest that builds; the problems of the rest are
    /// returned beside it, for a command that needs one of them to name.
    pub fn load_for_store(path: &Path) -> Result<(LoadedConfig, Problems), Problems> {
        let (config, mut set_aside) = Config::load_for_store(path)?;
        let templates = TemplateFiles::new(&config.templates_dir);
        let (loaded, problems) = Self::build_what_builds(config, &templates);
        set_aside.extend(problems);
        Ok((loaded, set_aside))
    }

    /// Compiles the destinations of an already loaded config.
    pub fn from_config(config: Config) -> Result<LoadedConfig, Problems> {
        let templates = TemplateFiles::new(&config.templates_dir);
        Self::build(config, templates, Problems::default())
    }

    fn build(config: Config, templates: TemplateFiles, mut problems: Problems) -> Result<LoadedConfig, Problems> {
        let (loaded, more) = Self::build_what_builds(config, &templates);
        problems.extend(more);
        problems.sort();
        problems.into_result(loaded)
    }

    /// Every destination and digest that builds, and the problems of the
    /// others.
    fn build_what_builds(config: Config, templates: &TemplateFiles) -> (LoadedConfig, Problems) {
        let mut problems = Problems::default();
        crate::tls::install_crypto_provider();
        let http = crate::channels::http_client();
        let mut destinations = BTreeMap::new();
        for (name, cfg) in &config.destinations {
            match Destination::build(cfg, &config.path, templates, &config.retry, &http) {
                Ok(d) => {
                    destinations.insert(name.clone(), d);
                }
                Err(p) => problems.extend(
                    p.into_iter()
                        .filter(|p| !p.key.as_deref().is_some_and(|k| crate::config::covers(&config.unresolved, k)))
                        .collect(),
                ),
            }
        }
        let mut digests = BTreeMap::new();
        for (name, cfg) in &config.digests {
            match Digest::build(cfg, &config.path, templates, |d| destinations.get(d)) {
                Ok(d) => {
                    digests.insert(name.clone(), d);
                }
                Err(p) => problems.extend(p),
            }
        }
        let router = Router::new(config.routes.clone());
        (LoadedConfig { config, router, destinations, digests }, problems)
    }

    pub fn destination(&self, name: &str) -> Option<&Destination> {
        self.destinations.get(name)
    }

    pub fn destinations(&self) -> impl Iterator<Item = &Destination> {
        self.destinations.values()
    }

    pub fn digest(&self, name: &str) -> Option<&Digest> {
        self.digests.get(name)
    }

    pub fn digests(&self) -> impl Iterator<Item = &Digest> {
        self.digests.values()
    }
}
