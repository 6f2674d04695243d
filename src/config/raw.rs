//! The config file as serde reads it: every key optional or defaulted,
//! strings where the relay wants durations, rates or addresses, so that
//! [`validate`](super::validate) can report each bad value with its key
//! and line instead of stopping at the first.

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize, Default)]
pub(super) struct RawConfig {
    pub(super) templates_dir: Option<String>,
    #[serde(default)]
    pub(super) server: RawServer,
    #[serde(default)]
    pub(super) raaft: RawRaaft,
    #[serde(default)]
    pub(super) retry: RawRetry,
    #[serde(default)]
    pub(super) store: RawStore,
    #[serde(default)]
    pub(super) admin: RawAdmin,
    pub(super) alerts: Option<RawAlerts>,
    #[serde(default)]
    pub(super) history: RawHistory,
    #[serde(default)]
    pub(super) digests: BTreeMap<String, RawDigest>,
    #[serde(default)]
    pub(super) destinations: BTreeMap<String, RawDestination>,
    #[serde(default)]
    pub(super) routes: Vec<RawRoute>,
}

#[derive(Deserialize, Default)]
pub(super) struct RawServer {
    pub(super) listen: Option<String>,
    pub(super) max_body_bytes: Option<u64>,
    pub(super) metrics: Option<bool>,
    pub(super) header_timeout: Option<String>,
    pub(super) body_timeout: Option<String>,
    pub(super) max_connections: Option<usize>,
    pub(super) auth_failures: Option<String>,
    #[serde(default)]
    pub(super) trusted_proxies: Vec<String>,
    pub(super) tls_cert: Option<String>,
    pub(super) tls_key: Option<String>,
    pub(super) public_url: Option<String>,
}

#[derive(Deserialize, Default)]
pub(super) struct RawRaaft {
    #[serde(default)]
    pub(super) tokens: Vec<String>,
    pub(super) dedup_window: Option<String>,
}

#[derive(Deserialize, Default)]
pub(super) struct RawStore {
    pub(super) url: Option<String>,
    pub(super) retention: Option<String>,
}

#[derive(Deserialize, Default)]
pub(super) struct RawAdmin {
    #[serde(default)]
    pub(super) tokens: Vec<String>,
    #[serde(default)]
    pub(super) metrics_auth: bool,
    pub(super) auth_failures: Option<String>,
    pub(super) listen: Option<String>,
    pub(super) session: Option<String>,
    #[serde(default)]
    pub(super) edit_templates: bool,
}

#[derive(Deserialize, Default)]
pub(super) struct RawHistory {
    pub(super) retention: Option<String>,
    pub(super) catch_up: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct RawDigest {
    pub(super) schedule: Option<String>,
    pub(super) timezone: Option<String>,
    pub(super) when: Option<toml::Value>,
    #[serde(default)]
    pub(super) to: Vec<String>,
    pub(super) template: Option<RawDigestTemplate>,
    pub(super) html_template: Option<String>,
    pub(super) subject: Option<String>,
    pub(super) empty: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct RawAlerts {
    pub(super) destination: String,
    pub(super) backlog_after: Option<String>,
}

#[derive(Deserialize, Default)]
pub(super) struct RawRetry {
    pub(super) max_attempts: Option<u32>,
    pub(super) initial_backoff: Option<String>,
    pub(super) max_backoff: Option<String>,
    pub(super) attempt_timeout: Option<String>,
}

#[derive(Deserialize, Default)]
pub(super) struct RawDestination {
    pub(super) kind: Option<String>,
    pub(super) url: Option<String>,
    pub(super) template: Option<String>,
    pub(super) html_template: Option<String>,
    pub(super) subject: Option<String>,
    pub(super) from: Option<String>,
    pub(super) to: Option<Vec<String>>,
    pub(super) username: Option<String>,
    pub(super) avatar_url: Option<String>,
    pub(super) headers: Option<BTreeMap<String, String>>,
    pub(super) rate_limit: Option<String>,
    pub(super) ca_file: Option<String>,
}

impl RawDestination {
    pub(super) fn present_keys(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        let pairs: [(&'static str, bool); 11] = [
            ("rate_limit", self.rate_limit.is_some()),
            ("url", self.url.is_some()),
            ("template", self.template.is_some()),
            ("html_template", self.html_template.is_some()),
            ("subject", self.subject.is_some()),
            ("from", self.from.is_some()),
            ("to", self.to.is_some()),
            ("username", self.username.is_some()),
            ("avatar_url", self.avatar_url.is_some()),
            ("headers", self.headers.is_some()),
            ("ca_file", self.ca_file.is_some()),
        ];
        for (key, present) in pairs {
            if present {
                keys.push(key);
            }
        }
        keys
    }
}

#[derive(Deserialize)]
pub(super) struct RawRoute {
    pub(super) name: Option<String>,
    pub(super) when: Option<toml::Value>,
    #[serde(default)]
    pub(super) to: Vec<String>,
    #[serde(default)]
    pub(super) stop: bool,
}

/// A digest's `template`: one for every destination, or a table of them
/// by destination name or kind.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawDigestTemplate {
    One(String),
    Each(BTreeMap<String, String>),
}
