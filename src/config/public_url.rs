//! `[server] public_url`: how people and Raaft reach the relay when a
//! reverse proxy stands in front of it (`https://relay.example.com/raaft`).
//! The console's links, redirects and cookie follow its path, its origin
//! is the one the console's forms come from, and cookies are `Secure` when
//! it is https.

use std::fmt;

/// The relay's address as the outside sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    /// `scheme://host[:port]`, as a browser's `Origin` header says it.
    origin: String,
    /// The path the proxy mounts the relay under: empty, or `/raaft`
    /// (no trailing slash).
    path: String,
    https: bool,
}

impl PublicUrl {
    pub fn parse(text: &str) -> Result<PublicUrl, String> {
        let url = url::Url::parse(text.trim()).map_err(|e| format!("invalid url \"{text}\": {e}"))?;
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            other => return Err(format!("\"{text}\": the scheme is http or https, not \"{other}\"")),
        };
        if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
            return Err(format!("\"{text}\": give only the scheme, host, port and path (no query, fragment or user)"));
        }
        if url.host_str().is_none() {
            return Err(format!("\"{text}\" names no host"));
        }
        Ok(PublicUrl {
            origin: url.origin().ascii_serialization(),
            path: url.path().trim_end_matches('/').to_owned(),
            https,
        })
    }

    /// `https://relay.example.com` (no path, no trailing slash).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// `/raaft`, or empty when the relay is at the root.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn https(&self) -> bool {
        self.https
    }
}

impl fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.origin, self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_origin_and_the_mount_path() {
        let url = PublicUrl::parse("https://relay.example.com/raaft/").unwrap();
        assert_eq!((url.origin(), url.path(), url.https()), ("https://relay.example.com", "/raaft", true));
        assert_eq!(url.to_string(), "https://relay.example.com/raaft");
        let url = PublicUrl::parse("http://127.0.0.1:8443").unwrap();
        assert_eq!((url.origin(), url.path(), url.https()), ("http://127.0.0.1:8443", "", false));
        // The default port is not part of a browser's Origin.
        assert_eq!(PublicUrl::parse("https://r.example:443/").unwrap().origin(), "https://r.example");
    }

    #[test]
    fn refuses_what_is_not_an_address() {
        for (bad, says) in [
            ("relay.example.com", "invalid url"),
            ("ftp://relay.example.com", "not \"ftp\""),
            ("https://relay.example.com/?a=1", "no query"),
            ("https://user@relay.example.com/", "no query, fragment or user"),
        ] {
            let e = PublicUrl::parse(bad).unwrap_err();
            assert!(e.contains(says) && e.contains(bad.split('?').next().unwrap()), "{bad}: {e}");
        }
    }
}
