//! The relay's configuration: the TOML file users write, loaded with
//! environment and secret-file interpolation and checked all at once, so
//! every mistake is reported with its file, line and key at start-up
//! instead of at 3 a.m. when the first event arrives.

mod digests;
mod environment;
mod interpolate;
mod public_url;
mod raw;
mod spans;
mod start_only;
mod store;
mod types;
mod validate;
mod values;

pub use environment::{env_file, read_env_file, use_env_file, Environment};
pub use interpolate::{interpolate, InterpolateError};
pub use public_url::PublicUrl;
pub use spans::KeyLines;
pub use start_only::{keep_start_only, START_ONLY};
pub use store::StoreLocation;
pub use types::*;
pub use values::parse_duration;

use crate::problems::{Problem, Problems};
use std::path::{Path, PathBuf};

impl Config {
    /// Reads, interpolates (from the env file and the process environment:
    /// [`Environment`]) and validates the config file at `path`.
    pub fn load(path: &Path) -> Result<Config, Problems> {
        let env = Environment::current().map_err(Problems::one)?;
        Self::load_with_env(path, &|name| env.get(name))
    }

    /// As [`Config::load`], with variables looked up through `env`.
    pub fn load_with_env(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, Problems> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Problems::one(Problem::new(path, format!("cannot read config file: {e}"))))?;
        Self::parse(path, &text, env)
    }

    /// Parses config `text` as if it had been read from `path`.
    pub fn parse(path: &Path, text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, Problems> {
        match Self::parse_partial(path, text, env, Scope::Everything) {
            (Some(config), problems) => problems.into_result(config),
            (None, problems) => Err(problems),
        }
    }

    /// Reads and interpolates the file at `path`, keeping what is valid:
    /// the config (when its structure could be read) and every problem, so
    /// later stages can report theirs too.
    pub fn load_partial(path: &Path) -> (Option<Config>, Problems) {
        let env = match Environment::current() {
            Ok(env) => env,
            Err(problem) => return (None, Problems::one(problem)),
        };
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse_partial(path, &text, &|name| env.get(name), Scope::Everything),
            Err(e) => (None, Problems::one(Problem::new(path, format!("cannot read config file: {e}")))),
        }
    }

    /// What the store commands (`deliveries`, `history`, `forget`,
    /// `digest`) read of the file at `path`: `[store]` must be right; a
    /// variable or secret file the rest names may be missing (the
    /// destinations' secrets are for sending, which these commands never
    /// do: such a destination gets a stand-in address) and a problem
    /// elsewhere is left for `check` and `serve` to report. Returns the
    /// config and the problems set aside.
    pub fn load_for_store(path: &Path) -> Result<(Config, Problems), Problems> {
        let env = Environment::current().map_err(Problems::one)?;
        Self::load_for_store_with_env(path, &|name| env.get(name))
    }

    /// As [`Config::load_for_store`], with variables looked up through `env`.
    pub fn load_for_store_with_env(
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(Config, Problems), Problems> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Problems::one(Problem::new(path, format!("cannot read config file: {e}"))))?;
        let (config, problems) = Self::parse_partial(path, &text, env, Scope::Store);
        let (needed, set_aside): (Vec<Problem>, Vec<Problem>) = problems
            .into_iter()
            .partition(|p| p.key.as_deref().is_none_or(|k| k == "store" || k.starts_with("store.")));
        match config {
            Some(config) if needed.is_empty() => Ok((config, set_aside.into_iter().collect())),
            _ => Err(needed.into_iter().chain(set_aside).collect()),
        }
    }

    fn parse_partial(
        path: &Path,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
        scope: Scope,
    ) -> (Option<Config>, Problems) {
        let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let base_dir = if base_dir.as_os_str().is_empty() { PathBuf::from(".") } else { base_dir };
        let mut value: toml::Value = match text.parse::<toml::Table>() {
            Ok(table) => toml::Value::Table(table),
            Err(e) => {
                let line = e.span().map(|s| 1 + text[..s.start].matches('\n').count());
                let message = e.message().trim().to_owned();
                return (None, Problems::one(Problem::new(path, format!("invalid TOML: {message}")).at_line(line)));
            }
        };
        let lines = KeyLines::parse(text);
        let mut problems = Problems::default();

        let mut unset = Vec::new();
        interpolate_value(
            &mut value,
            "",
            &base_dir,
            env,
            &mut |key, problem| {
                unset.push(key.to_owned());
                match scope {
                    Scope::Store if key != "store" && !key.starts_with("store.") => {}
                    _ => problems.push(problem.at_line(lines.line_of(key)).with_key(key)),
                }
            },
            path,
        );

        let mut unknown = Vec::new();
        let mut track = serde_path_to_error::Track::new();
        let raw: Result<raw::RawConfig, _> = {
            let de = serde_path_to_error::Deserializer::new(value, &mut track);
            serde_ignored::deserialize(de, |p| unknown.push(p.to_string()))
        };
        for key in unknown {
            problems.push(Problem::new(path, "unknown key".to_owned()).at_line(lines.line_of(&key)).with_key(key));
        }
        let raw = match raw {
            Ok(raw) => raw,
            Err(e) => {
                let key = track.path().to_string();
                let message = e.to_string();
                problems.push(Problem::new(path, message).at_line(lines.line_of(&key)).with_key(key));
                return (None, problems);
            }
        };

        // A value that could not be interpolated was reported: what is
        // wrong with it as written (`${X}` is no URL) is not another problem.
        let mut later = Problems::default();
        let mut config = validate::build(path, &base_dir, raw, &lines, env, &mut later);
        problems.extend(later.into_iter().filter(|p| !p.key.as_deref().is_some_and(|k| covers(&unset, k))).collect());
        config.unresolved = unset.clone();
        config.files_read = interpolate::file_references(text, &base_dir);
        // A reload follows a change of the env file too.
        config.files_read.extend(env_file().map(Path::to_path_buf));
        for destination in config.destinations.values_mut() {
            if unset.contains(&format!("destinations.{}.url", destination.name)) {
                destination.url = Some(destination.kind.stand_in_url().to_owned());
            }
        }
        (Some(config), problems)
    }
}

/// Whether `key` is one of `unresolved`, or inside or around one
/// (`destinations.x.to` and `destinations.x.to[0]`).
pub fn covers(unresolved: &[String], key: &str) -> bool {
    unresolved.iter().any(|u| u == key || u.starts_with(&format!("{key}[")) || key.starts_with(&format!("{u}.")))
}

/// What a command needs of the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Every value (`serve`, `check`, `render`, `send-test`).
    Everything,
    /// `[store]`, and the rest as far as it can be read.
    Store,
}

/// Interpolates every string in `value`; a string that cannot be is left
/// as written and `failed` hears of it, with its key.
fn interpolate_value(
    value: &mut toml::Value,
    key: &str,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    failed: &mut dyn FnMut(&str, Problem),
    file: &Path,
) {
    match value {
        toml::Value::String(s) => match interpolate(s, base_dir, env) {
            Ok(new) => *s = new,
            Err(e) => failed(key, Problem::new(file, e.to_string())),
        },
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let key = format!("{key}[{i}]");
                interpolate_value(item, &key, base_dir, env, failed, file);
            }
        }
        toml::Value::Table(table) => {
            for (k, item) in table.iter_mut() {
                let key = if key.is_empty() { k.clone() } else { format!("{key}.{k}") };
                interpolate_value(item, &key, base_dir, env, failed, file);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn server_limits_have_defaults_and_refuse_zero() {
        let config = parse(MINIMAL).unwrap();
        assert_eq!(config.server.header_timeout, Duration::from_secs(10));
        assert_eq!(config.server.body_timeout, Duration::from_secs(30));
        assert_eq!(config.server.max_connections, 1024);
        assert_eq!(config.server.auth_failures, Some(Rate { count: 20, per: Duration::from_secs(60) }));
        assert!(config.server.trusted_proxies.is_empty());
        let text =
            format!("{MINIMAL}[server]\ntrusted_proxies = [\"10.0.0.1\", \"fd00::/8\"]\nauth_failures = \"none\"\n");
        let config = parse(&text).unwrap();
        assert_eq!(config.server.trusted_proxies.len(), 2);
        assert_eq!(config.server.auth_failures, None);
        let text = format!(
            "{MINIMAL}[server]\nheader_timeout = \"0s\"\nbody_timeout = \"soon\"\nmax_connections = 0\n\
             auth_failures = \"often\"\ntrusted_proxies = [\"proxy.local\"]\n"
        );
        let problems = parse(&text).unwrap_err().to_string();
        for key in [
            "server.header_timeout",
            "server.body_timeout",
            "server.max_connections",
            "server.auth_failures",
            "server.trusted_proxies[0]",
            "\"proxy.local\"",
        ] {
            assert!(problems.contains(key), "{key} missing from:\n{problems}");
        }
        assert!(problems.contains("\"soon\""), "{problems}");
    }

    fn parse(text: &str) -> Result<Config, Problems> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("templates")).unwrap();
        let path = dir.path().join("relay.toml");
        let env = |name: &str| match name {
            "RAAFT_TOKEN" => Some("tok".to_owned()),
            _ => None,
        };
        let text = format!("templates_dir = \"templates\"\n{text}");
        Config::parse(&path, &text, &env)
    }

    const MINIMAL: &str = "[raaft]\ntokens = [\"${RAAFT_TOKEN}\"]\n[destinations.out]\nkind = \"console\"\ntemplate = \"x.hbs\"\n[[routes]]\nname = \"all\"\nto = [\"out\"]\n";

    #[test]
    fn minimal_config_loads_with_defaults() {
        let config = parse(MINIMAL).unwrap();
        assert_eq!(config.tokens, vec!["tok"]);
        assert_eq!(config.server.listen, "127.0.0.1:8080");
        assert_eq!(config.server.max_body_bytes, 262_144);
        assert_eq!(config.retry, RetryPolicy::default());
        assert_eq!(config.dedup_window, Duration::from_secs(86_400));
        assert_eq!(config.store.retention, Duration::from_secs(14 * 86_400));
        let StoreLocation::Sqlite(store) = &config.store.location else { panic!("{:?}", config.store.location) };
        assert!(store.is_absolute() && store.ends_with("data/relay.db"), "{}", store.display());
        assert!(config.admin_tokens.is_empty());
        assert_eq!(config.routes[0].to, vec!["out"]);
    }

    #[test]
    fn without_a_store_url_the_store_goes_to_the_state_folder_systemd_gives() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("templates")).unwrap();
        let path = dir.path().join("relay.toml");
        let text = format!("templates_dir = \"templates\"\n{MINIMAL}");
        let env = |name: &str| match name {
            "RAAFT_TOKEN" => Some("tok".to_owned()),
            "STATE_DIRECTORY" => Some("/var/lib/raaft-relay:/var/lib/other".to_owned()),
            _ => None,
        };
        let config = Config::parse(&path, &text, &env).unwrap();
        assert_eq!(config.store.location, StoreLocation::Sqlite("/var/lib/raaft-relay/relay.db".into()));
        // A url in the file wins.
        let text = format!("{text}[store]\nurl = \"sqlite:///srv/relay.db\"\n");
        let config = Config::parse(&path, &text, &env).unwrap();
        assert_eq!(config.store.location, StoreLocation::Sqlite("/srv/relay.db".into()));
    }

    #[test]
    fn names_that_the_store_could_not_keep_apart_are_refused() {
        let text = MINIMAL
            .replace("[destinations.out]", "[destinations.\"o\\u0000ut\"]")
            .replace("\"out\"]", "\"o\\u0000ut\"]");
        let problems = parse(&text).unwrap_err().to_string();
        assert!(problems.contains("destination name \"o\\0ut\" contains '\\0'"), "{problems}");
        let problems = parse(&MINIMAL.replace("name = \"all\"", "name = \"a,b\"")).unwrap_err().to_string();
        assert!(problems.contains("`routes[0].name`: route name \"a,b\" contains ','"), "{problems}");
    }

    #[test]
    fn digests_and_history_load_with_defaults_and_every_mistake_is_named() {
        let good = format!(
            "{MINIMAL}[digests.daily]\nschedule = \"0 9 * * *\"\ntimezone = \"Europe/Lisbon\"\nwhen = {{ outcome = [\"saved\", \"canceled\"] }}\nto = [\"out\"]\ntemplate = \"d.hbs\"\n"
        );
        let config = parse(&good).unwrap();
        assert_eq!(config.history, HistoryConfig::default());
        assert_eq!(config.history.retention, Duration::from_secs(400 * 86_400));
        let daily = &config.digests["daily"];
        assert_eq!((daily.schedule.source(), daily.schedule.timezone().name()), ("0 9 * * *", "Europe/Lisbon"));
        assert_eq!(daily.empty, WhenEmpty::Skip);
        let bad = format!(
            "{MINIMAL}[history]\nretention = \"a while\"\n[digests.daily]\nschedule = \"0 9 * *\"\ntimezone = \"Mars/Olympus\"\nto = [\"nowhere\"]\ntemplate = \"d.hbs\"\nempty = \"never\"\n[digests.weekly]\ntimezone = \"UTC\"\nto = [\"out\"]\n"
        );
        let problems = parse(&bad).unwrap_err().to_string();
        for expected in [
            "`history.retention`: invalid duration \"a while\"",
            "`digests.daily.schedule`: digest \"daily\": invalid schedule \"0 9 * *\": expected 5 fields",
            "`digests.daily.to[0]`: digest \"daily\": unknown destination \"nowhere\"",
            "`digests.daily.empty`: digest \"daily\": `empty` is \"skip\" or \"send\", not \"never\"",
            "`digests.weekly.schedule`: digest \"weekly\": `schedule` is required",
            "`digests.weekly.template`: digest \"weekly\": `template` is required",
        ] {
            assert!(problems.contains(expected), "missing {expected:?} in:\n{problems}");
        }
        // Each names its line.
        let line = bad.lines().position(|l| l.starts_with("schedule = \"0 9 * *\"")).unwrap() + 2;
        let at = format!("relay.toml:{line}:");
        assert!(problems.lines().any(|l| l.contains(&at) && l.contains("digests.daily.schedule")), "{at}\n{problems}");
        let zone = format!("{MINIMAL}[digests.daily]\nschedule = \"0 9 * * *\"\ntimezone = \"Mars/Olympus\"\nto = [\"out\"]\ntemplate = \"d.hbs\"\n");
        let problems = parse(&zone).unwrap_err().to_string();
        assert!(
            problems.contains("`digests.daily.timezone`: digest \"daily\": unknown time zone \"Mars/Olympus\""),
            "{problems}"
        );
    }

    #[test]
    fn rates_parse() {
        assert_eq!(Rate::parse("1/s").unwrap(), Some(Rate { count: 1, per: Duration::from_secs(1) }));
        assert_eq!(Rate::parse("5/2s").unwrap(), Some(Rate { count: 5, per: Duration::from_secs(2) }));
        assert_eq!(Rate::parse("30/min").unwrap(), Some(Rate { count: 30, per: Duration::from_secs(60) }));
        assert_eq!(Rate::parse("none").unwrap(), None);
        assert_eq!(Rate::parse("5/2s").unwrap().unwrap().interval(), Duration::from_millis(400));
        for bad in ["", "5", "0/s", "x/s", "5/soon", "5/0s"] {
            assert!(Rate::parse(bad).is_err(), "{bad}");
        }
        let text = format!("{MINIMAL}[destinations.s]\nkind = \"slack\"\nurl = \"https://hooks.slack.com/services/x\"\ntemplate = \"s.hbs\"\n[destinations.d]\nkind = \"discord\"\nurl = \"https://discord.com/api/webhooks/1/x\"\ntemplate = \"d.hbs\"\nrate_limit = \"2/s\"\n");
        let config = parse(&text).unwrap();
        assert_eq!(config.destinations["s"].rate_limit, Some(Rate { count: 1, per: Duration::from_secs(1) }));
        assert_eq!(config.destinations["d"].rate_limit, Some(Rate { count: 2, per: Duration::from_secs(1) }));
        assert_eq!(config.destinations["out"].rate_limit, None);
    }

    #[test]
    fn durations_parse() {
        let text = format!("{MINIMAL}[retry]\ninitial_backoff = \"500ms\"\nmax_backoff = \"5m\"\nattempt_timeout = \"10s\"\nmax_attempts = 3\n");
        let config = parse(&text).unwrap();
        assert_eq!(config.retry.initial_backoff, Duration::from_millis(500));
        assert_eq!(config.retry.max_backoff, Duration::from_secs(300));
        assert_eq!(config.retry.max_attempts, 3);
    }

    #[test]
    fn missing_variable_names_variable_key_and_line() {
        let text = format!(
            "{MINIMAL}[destinations.churn]\nkind = \"slack\"\nurl = \"${{SLACK_CHURN_URL}}\"\ntemplate = \"s.hbs\"\n"
        );
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("SLACK_CHURN_URL"), "{err}");
        assert!(err.contains("destinations.churn.url"), "{err}");
        assert!(err.contains("relay.toml:12:"), "{err}");
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let text = format!("{MINIMAL}[server]\nlisten = \"127.0.0.1:0\"\nmax_body = 5\n");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("server.max_body"), "{err}");
        assert!(err.contains("unknown key"), "{err}");
        assert!(err.contains("relay.toml:12:"), "{err}");
    }

    #[test]
    fn settings_of_another_kind_are_rejected() {
        let text = format!("{MINIMAL}[destinations.s]\nkind = \"slack\"\nurl = \"https://hooks.slack.com/services/x\"\ntemplate = \"s.hbs\"\nusername = \"bot\"\n");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("destinations.s.username"), "{err}");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = "[raaft]\ntokens = []\n[retry]\nmax_backoff = \"soon\"\n[[routes]]\nname = \"r\"\nto = [\"nowhere\"]\nwhen = 'outcome == '\n";
        let err = parse(text).unwrap_err();
        let all = err.to_string();
        assert!(err.len() >= 4, "{all}");
        assert!(all.contains("raaft.tokens"), "{all}");
        assert!(all.contains("invalid duration \"soon\""), "{all}");
        assert!(all.contains("unknown destination \"nowhere\""), "{all}");
        assert!(all.contains("route \"r\""), "{all}");
    }

    #[test]
    fn toml_syntax_errors_carry_the_line() {
        let err = parse("[raaft\ntokens = 1\n").unwrap_err().to_string();
        assert!(err.contains("relay.toml:2:"), "{err}");
    }

    #[test]
    fn type_errors_name_the_key() {
        let err = parse("[server]\nmax_body_bytes = \"big\"\n").unwrap_err().to_string();
        assert!(err.contains("server.max_body_bytes"), "{err}");
    }
}
