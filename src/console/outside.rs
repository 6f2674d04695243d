//! How a console request is seen from the browser's side: the origin the
//! browser addressed, whether it came over https, and the path the console
//! is mounted under. `[server] public_url` says so; without it, a request
//! from a trusted proxy (`[server] trusted_proxies`) is judged by its
//! `X-Forwarded-Host` and `X-Forwarded-Proto`, any other by its own `Host`
//! and the listener.

use crate::config::Config;
use crate::http::server::ClientAddr;
use crate::state::AppState;
use warp::{Filter, Rejection};

/// A request as the browser sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outside {
    /// The origins a state-changing form may come from.
    origins: Vec<String>,
    /// The browser reached the relay over https (the cookie is `Secure`).
    pub secure: bool,
    /// Where the console is, as the browser addresses it: `/console/`, or
    /// `/raaft/console/` under a `public_url` with that path.
    pub base: String,
}

/// The console's address as the browser sees it: under `public_url`'s
/// path when set.
pub fn base(config: &Config) -> String {
    let mount = config.server.public_url.as_ref().map(|u| u.path()).unwrap_or("");
    format!("{mount}/console/")
}

/// What the request's own headers say (`forwarded_*` only count when the
/// peer is a trusted proxy).
#[derive(Debug, Default)]
pub struct Seen<'a> {
    pub host: Option<&'a str>,
    pub forwarded_host: Option<&'a str>,
    pub forwarded_proto: Option<&'a str>,
    pub from_trusted_proxy: bool,
    /// The listener serves TLS.
    pub tls: bool,
}

impl Outside {
    pub fn of(config: &Config, seen: Seen<'_>) -> Outside {
        fn first(header: Option<&str>) -> Option<&str> {
            header.and_then(|h| h.split(',').next()).map(str::trim)
        }
        let (host, https) = match seen.from_trusted_proxy {
            true => (
                first(seen.forwarded_host).or(seen.host),
                first(seen.forwarded_proto).map_or(seen.tls, |p| p.eq_ignore_ascii_case("https")),
            ),
            false => (seen.host, seen.tls),
        };
        let mut origins = Vec::new();
        if let Some(public) = &config.server.public_url {
            origins.push(public.origin().to_owned());
        }
        // The address the browser used, over either scheme: a page of
        // another site cannot claim it.
        if let Some(host) = host.filter(|h| !h.is_empty()) {
            origins.push(format!("http://{host}"));
            origins.push(format!("https://{host}"));
        }
        let secure = config.server.public_url.as_ref().map_or(https, |u| u.https());
        Outside { origins, secure, base: base(config) }
    }

    /// Whether a state-changing request comes from the console's own
    /// pages: a browser's `Sec-Fetch-Site` and `Origin`, when sent, must
    /// name one of its origins.
    pub fn accepts(&self, origin: Option<&str>, fetch_site: Option<&str>) -> bool {
        if fetch_site.is_some_and(|s| s != "same-origin" && s != "none") {
            return false;
        }
        match origin {
            None => true,
            Some(origin) => {
                let origin = origin.trim_end_matches('/');
                self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin))
            }
        }
    }

    /// The session cookie's `Path`: the console's folder.
    pub fn cookie_path(&self) -> &str {
        self.base.trim_end_matches('/')
    }

    /// `rel` (a console page: `deliveries?status=dead`, `./`) as the
    /// browser addresses it, for a redirect.
    pub fn url(&self, rel: &str) -> String {
        format!("{}{}", self.base, rel.trim_start_matches("./"))
    }
}

/// The request as the browser sent it (`tls`: the listener serves TLS).
pub fn outside(state: AppState, tls: bool) -> impl Filter<Extract = (Outside,), Error = Rejection> + Clone {
    warp::header::optional::<String>("host")
        .and(warp::header::optional::<String>("x-forwarded-host"))
        .and(warp::header::optional::<String>("x-forwarded-proto"))
        .and(warp::ext::optional::<ClientAddr>())
        .map(move |host: Option<String>, fhost: Option<String>, fproto: Option<String>, peer: Option<ClientAddr>| {
            let from_trusted_proxy = peer.is_some_and(|p| state.admin_auth.load().trusts(p.0.ip()));
            let seen = Seen {
                host: host.as_deref(),
                forwarded_host: fhost.as_deref(),
                forwarded_proto: fproto.as_deref(),
                from_trusted_proxy,
                tls,
            };
            Outside::of(&state.loaded.load().config, seen)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(public_url: Option<&str>) -> Config {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("templates")).unwrap();
        let public = public_url.map(|u| format!("public_url = \"{u}\"\n")).unwrap_or_default();
        let text = format!(
            "templates_dir = \"templates\"\n[server]\n{public}[raaft]\ntokens = [\"t\"]\n\
             [destinations.out]\nkind = \"console\"\ntemplate = \"x.hbs\"\n[[routes]]\nname = \"all\"\nto = [\"out\"]\n"
        );
        Config::parse(&dir.path().join("relay.toml"), &text, &|_| None).unwrap()
    }

    #[test]
    fn a_form_from_another_site_is_refused() {
        let outside = Outside::of(&config(None), Seen { host: Some("127.0.0.1:9090"), ..Default::default() });
        assert!(outside.accepts(Some("http://127.0.0.1:9090"), Some("same-origin")));
        assert!(outside.accepts(None, None), "not a browser: the CSRF token decides");
        assert!(!outside.accepts(Some("https://evil.example"), None));
        assert!(!outside.accepts(None, Some("cross-site")));
        assert!(!outside.accepts(Some("null"), None));
        assert!(!outside.secure);
        assert_eq!((outside.base.as_str(), outside.cookie_path()), ("/console/", "/console"));
    }

    #[test]
    fn behind_a_proxy_the_public_url_says_how_the_browser_sees_it() {
        // nginx's defaults: Host is the upstream's address, nothing forwarded.
        let config = config(Some("https://relay.example.com/raaft"));
        let outside = Outside::of(&config, Seen { host: Some("127.0.0.1:8080"), ..Default::default() });
        assert!(outside.accepts(Some("https://relay.example.com"), Some("same-origin")));
        assert!(!outside.accepts(Some("https://relay.example.com.evil.example"), None));
        assert!(outside.secure);
        assert_eq!((outside.base.as_str(), outside.cookie_path()), ("/raaft/console/", "/raaft/console"));
        assert_eq!(outside.url("./"), "/raaft/console/");
        assert_eq!(outside.url("deliveries?status=dead"), "/raaft/console/deliveries?status=dead");
    }

    #[test]
    fn forwarded_headers_count_only_from_a_trusted_proxy() {
        let config = config(None);
        let forwarded = |trusted| Seen {
            host: Some("127.0.0.1:8080"),
            forwarded_host: Some("relay.example.com"),
            forwarded_proto: Some("https"),
            from_trusted_proxy: trusted,
            tls: false,
        };
        let trusted = Outside::of(&config, forwarded(true));
        assert!(trusted.accepts(Some("https://relay.example.com"), None) && trusted.secure);
        let untrusted = Outside::of(&config, forwarded(false));
        assert!(!untrusted.accepts(Some("https://relay.example.com"), None) && !untrusted.secure);
    }
}
