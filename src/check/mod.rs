//! `check`: load everything, then render every destination against every
//! sample event, so template mistakes surface before an event does; read
//! the routes and templates against the fields events have
//! ([`fields`], [`routes`]), so that what would silently never match or
//! never fill is said; and warn about settings that look unintended.

mod fields;
mod routes;

use crate::loaded_config::LoadedConfig;
use crate::problems::{Problem, Problems};
use crate::render::Template;
use fields::KnownFields;
use std::collections::BTreeMap;
use std::path::Path;

/// What a successful check covered.
#[derive(Debug)]
pub struct CheckReport {
    pub destinations: usize,
    pub routes: usize,
    pub renders: usize,
    /// Things that work but look unintended.
    pub warnings: Vec<String>,
    /// Where the store is (without a password).
    pub store: String,
    /// Where the console answers, when it is on.
    pub console: Option<String>,
}

/// Checks the config at `path`: what the check covered, or every problem.
pub fn check(path: &Path) -> Result<CheckReport, Problems> {
    let loaded = LoadedConfig::load(path)?;
    check_loaded(&loaded)
}

/// As [`check`], keeping the warnings when problems are found too: the
/// problems that stop the config from loading, or what the check covered
/// and the problems it found.
pub fn check_with_warnings(path: &Path) -> Result<(CheckReport, Problems), Problems> {
    let loaded = LoadedConfig::load(path)?;
    Ok(check_all(&loaded))
}

/// Checks a loaded config: `Ok` when nothing is wrong.
pub fn check_loaded(loaded: &LoadedConfig) -> Result<CheckReport, Problems> {
    let (report, problems) = check_all(loaded);
    problems.into_result(report)
}

/// Tokens shorter than this can be guessed within the failed-attempt
/// allowance over months; `openssl rand -hex 32` makes a good one.
pub const MIN_TOKEN_CHARS: usize = 16;

/// A warning per token too short to resist guessing (never the token).
fn short_tokens(config: &crate::config::Config) -> Vec<String> {
    let tokens = config.tokens.iter().map(|t| ("raaft.tokens", t));
    let admin = config.admin_tokens.iter().map(|t| ("admin.tokens", t));
    let mut index = std::collections::HashMap::<&str, usize>::new();
    tokens
        .chain(admin)
        .filter_map(|(key, token)| {
            let i = index.entry(key).or_default();
            *i += 1;
            let chars = token.chars().count();
            (chars < MIN_TOKEN_CHARS).then(|| {
                format!(
                    "{key}[{}] is {chars} characters long: use at least {MIN_TOKEN_CHARS} (e.g. `openssl rand -hex 32`)",
                    *i - 1
                )
            })
        })
        .collect()
}

/// A warning when `/metrics` is on where a scraper without an admin token
/// (as earlier releases served it) gets nothing: on the listener Raaft
/// reaches it answers only requests with an admin token.
fn unscraped_metrics(config: &crate::config::Config) -> Option<String> {
    if !config.server.metrics || config.admin_listen.is_some() || config.metrics_auth {
        return None;
    }
    Some(if config.admin_tokens.is_empty() {
        "server.metrics: /metrics is not served: on server.listen it answers only requests with an admin token, and \
         [admin] tokens is empty; set [admin] listen (a private address) to serve it there, or [server] metrics = false"
            .into()
    } else {
        "server.metrics: /metrics on server.listen answers only requests with an admin token (Authorization: Bearer ...); \
         set [admin] listen (a private address) to scrape it without one, or [admin] metrics_auth = true"
            .into()
    })
}

/// A warning per digest whose window and the one before it (for
/// comparisons), plus the catch-up allowance, outlast `[store] retention`:
/// its events would be pruned before it is sent.
fn short_retention(loaded: &LoadedConfig) -> Vec<String> {
    let config = &loaded.config;
    let now = chrono::Utc::now();
    loaded
        .digests()
        .filter_map(|d| {
            let window = d.config.schedule.last_complete(now)?;
            let needed = (window.end - window.start).to_std().ok()? * 2 + config.history.catch_up;
            (needed > config.store.retention).then(|| {
                format!(
                    "digest \"{}\" needs events from the last {} but store.retention is {}: raise store.retention",
                    d.config.name,
                    crate::text::duration(needed),
                    crate::text::duration(config.store.retention)
                )
            })
        })
        .collect()
}

/// A warning per field `templates` read that no sample has, once per
/// template and field, with the nearest known one.
fn unknown_fields<'a>(templates: impl Iterator<Item = &'a Template>, known: &KnownFields, whose: &str) -> Vec<String> {
    let mut warnings = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for template in templates {
        for field in template.fields() {
            let dotted = field.dotted();
            if known.has(&dotted) || !seen.insert((template.name.clone(), dotted.clone())) {
                continue;
            }
            let at = field.line.map(|l| format!(":{l}")).unwrap_or_default();
            let hint = known.nearest(&dotted).map(|n| format!(" (did you mean {n}?)")).unwrap_or_default();
            warnings.push(format!(
                "{}{at}: {whose}: {{{{{}}}}} is not a field of any sample event: it renders empty{hint}",
                template.file.display(),
                field.written
            ));
        }
    }
    warnings
}

/// The file of the template named `name` among `templates` (an inline
/// template's is the config file).
fn template_file<'a>(
    mut templates: impl Iterator<Item = &'a crate::render::Template>,
    name: &str,
    loaded: &LoadedConfig,
) -> std::path::PathBuf {
    templates.find(|t| t.name == name).map(|t| t.file.clone()).unwrap_or_else(|| loaded.config.path.clone())
}

/// One render failure and the sample events it happened on.
struct Failure {
    file: std::path::PathBuf,
    samples: Vec<&'static str>,
}

/// Renders every digest for each of its destinations against a sample
/// window; how many rendered. Its templates' unknown fields are warnings.
fn digest_renders(loaded: &LoadedConfig, problems: &mut Problems, warnings: &mut Vec<String>) -> usize {
    let mut renders = 0;
    for digest in loaded.digests() {
        let context = crate::digest::sample_context(&digest.config.name);
        for (dest, payload) in digest.payloads(|n| loaded.destination(n), &context) {
            match payload {
                Ok(_) => renders += 1,
                Err(e) => {
                    problems.push(Problem::new(
                        template_file(digest.templates(), &e.template, loaded),
                        format!(
                            "digest \"{}\" for destination \"{dest}\", sample window: {}",
                            digest.config.name, e.reason
                        ),
                    ));
                }
            }
        }
        let known = KnownFields::of(&[context]);
        warnings.extend(unknown_fields(digest.templates(), &known, &format!("digest \"{}\"", digest.config.name)));
    }
    renders
}

/// Renders each destination against every sample (a customer's first
/// flow); how many rendered. A failure found on several samples is one
/// problem, with their count.
fn destination_renders(loaded: &LoadedConfig, problems: &mut Problems) -> usize {
    let mut renders = 0;
    let first_flows = crate::samples::first_flows();
    for dest in loaded.destinations() {
        let mut failures: BTreeMap<String, Failure> = BTreeMap::new();
        for (sample, event) in &first_flows {
            match dest.payload(event) {
                Ok(_) => renders += 1,
                Err(e) => {
                    let file = template_file(dest.templates(), &e.template, loaded);
                    failures
                        .entry(e.reason.clone())
                        .or_insert(Failure { file, samples: Vec::new() })
                        .samples
                        .push(sample);
                    // Past its budget on one sample, it would be on the
                    // next: one such problem says it, a second costs time.
                    if e.over_budget {
                        break;
                    }
                }
            }
        }
        for (reason, failure) in failures {
            let on = match failure.samples.as_slice() {
                [one] => format!("sample event {one}"),
                all if all.len() == first_flows.len() => format!("every sample event ({})", all.len()),
                some => format!("{} sample events ({})", some.len(), some.join(", ")),
            };
            problems.push(Problem::new(failure.file, format!("destination \"{}\", {on}: {reason}", dest.name)));
        }
    }
    renders
}

/// What the check covered, with its warnings, and the problems found.
pub fn check_all(loaded: &LoadedConfig) -> (CheckReport, Problems) {
    let mut problems = Problems::default();
    let mut warnings = Vec::new();
    let samples = fields::samples_with_facts();
    let mut renders = destination_renders(loaded, &mut problems);
    let known = KnownFields::of_events();
    for dest in loaded.destinations() {
        warnings.extend(unknown_fields(dest.templates(), &known, &format!("destination \"{}\"", dest.name)));
    }
    routes::check_routes(loaded, &known, &samples, &mut problems, &mut warnings);
    renders += digest_renders(loaded, &mut problems, &mut warnings);
    warnings.extend(
        loaded
            .destinations()
            .filter(|d| !loaded.config.routes.iter().any(|r| r.to.contains(&d.name)))
            .filter(|d| !loaded.config.digests.values().any(|g| g.to.contains(&d.name)))
            .map(|d| format!("destination \"{}\" is not used by any route or digest", d.name)),
    );
    warnings.extend(short_tokens(&loaded.config));
    warnings.extend(unscraped_metrics(&loaded.config));
    warnings.extend(short_retention(loaded));
    let report = CheckReport {
        destinations: loaded.destinations().count(),
        routes: loaded.config.routes.len(),
        renders,
        warnings,
        store: loaded.config.store.location.to_string(),
        console: loaded.config.console_url(None),
    };
    (report, problems)
}
