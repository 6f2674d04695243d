//! Console sessions: a signed cookie, no server-side state. The signing
//! key is derived from the admin token signed in with, so every replica
//! accepts the session, and removing a token from `[admin] tokens` ends
//! every session made with it. Each session carries its own CSRF token
//! (derived from the session's random id), which every state-changing form
//! sends back.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// The cookie's name.
pub const COOKIE: &str = "raaft_console";

/// A signed-in operator's session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub expires: DateTime<Utc>,
    /// What every state-changing form must send back.
    pub csrf: String,
}

fn key(token: &str) -> Vec<u8> {
    Sha256::new().chain_update(b"raaft-relay console session v1\0").chain_update(token.as_bytes()).finalize().to_vec()
}

fn mac(token: &str, message: &str) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(&key(token)).expect("HMAC takes any key length");
    mac.update(message.as_bytes());
    mac
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

fn csrf_of(token: &str, id: &str) -> String {
    hex(&mac(token, &format!("csrf.{id}")).finalize().into_bytes())[..32].to_owned()
}

/// A new session for one who signed in with `token`, lasting `lasts`:
/// the cookie's value and the session.
pub fn start(token: &str, now: DateTime<Utc>, lasts: std::time::Duration) -> (String, Session) {
    let id = hex(&rand::random::<[u8; 16]>());
    let expires = now + chrono::Duration::from_std(lasts).unwrap_or(chrono::Duration::hours(12));
    let expires = DateTime::from_timestamp(expires.timestamp(), 0).unwrap_or(expires);
    let message = format!("v1.{}.{id}", expires.timestamp());
    let signature = hex(&mac(token, &message).finalize().into_bytes());
    (format!("{message}.{signature}"), Session { expires, csrf: csrf_of(token, &id) })
}

/// The session a cookie's value stands for, if it was signed with one of
/// `tokens` and has not expired at `now`.
pub fn verify(value: &str, tokens: &[String], now: DateTime<Utc>) -> Option<Session> {
    let (message, signature) = value.rsplit_once('.')?;
    let mut parts = message.split('.');
    let (Some("v1"), Some(expires), Some(id), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    let expires = DateTime::from_timestamp(expires.parse().ok()?, 0)?;
    if expires <= now {
        return None;
    }
    let signature = unhex(signature)?;
    let token = tokens.iter().find(|t| mac(t, message).verify_slice(&signature).is_ok())?;
    Some(Session { expires, csrf: csrf_of(token, id) })
}

/// Whether `presented` is the session's CSRF token (constant time).
pub fn csrf_ok(session: &Session, presented: &str) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(session.csrf.as_bytes().ct_eq(presented.as_bytes()))
}

/// The `Set-Cookie` value that keeps `value` for `lasts` (`Secure` when
/// the console is served over TLS).
pub fn set_cookie(value: &str, lasts: std::time::Duration, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{secure}", lasts.as_secs())
}

/// The `Set-Cookie` value that signs out.
pub fn clear_cookie(secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
}

/// The session cookie's value in a `Cookie` header.
pub fn from_cookie_header(header: &str) -> Option<&str> {
    header.split(';').filter_map(|c| c.trim().split_once('=')).find(|(name, _)| *name == COOKIE).map(|(_, v)| v)
}

/// Whether a state-changing request comes from the console's own pages:
/// a browser's `Sec-Fetch-Site` and `Origin`, when sent, must name this
/// origin (`host` is the request's `Host`).
pub fn same_origin(origin: Option<&str>, fetch_site: Option<&str>, host: Option<&str>) -> bool {
    if fetch_site.is_some_and(|s| s != "same-origin" && s != "none") {
        return false;
    }
    match (origin, host) {
        (None, _) => true,
        (Some(origin), Some(host)) => {
            let origin = origin.trim_end_matches('/');
            origin == format!("http://{host}") || origin == format!("https://{host}")
        }
        (Some(_), None) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn tokens(list: &[&str]) -> Vec<String> {
        list.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn a_session_verifies_until_it_expires_and_only_with_its_token() {
        let now = Utc::now();
        let (cookie, session) = start("admin-1", now, Duration::from_secs(3600));
        assert_eq!(verify(&cookie, &tokens(&["other", "admin-1"]), now), Some(session.clone()));
        assert_eq!(verify(&cookie, &tokens(&["other"]), now), None, "a removed token ends its sessions");
        assert_eq!(verify(&cookie, &tokens(&["admin-1"]), now + chrono::Duration::seconds(3601)), None);
        let (other, other_session) = start("admin-1", now, Duration::from_secs(3600));
        assert_ne!(other, cookie, "every sign-in makes a new session");
        assert_ne!(other_session.csrf, session.csrf);
    }

    #[test]
    fn a_tampered_cookie_is_refused() {
        let now = Utc::now();
        let (cookie, _) = start("admin-1", now, Duration::from_secs(60));
        let later =
            cookie.replacen(&format!("v1.{}", (now + chrono::Duration::seconds(60)).timestamp()), "v1.99999999999", 1);
        assert_eq!(verify(&later, &tokens(&["admin-1"]), now), None);
        assert_eq!(verify("v1.1.2", &tokens(&["admin-1"]), now), None);
        assert_eq!(verify("", &tokens(&["admin-1"]), now), None);
    }

    #[test]
    fn csrf_is_checked_and_origins_must_be_this_one() {
        let (_, session) = start("t", Utc::now(), Duration::from_secs(60));
        assert!(csrf_ok(&session, &session.csrf.clone()));
        assert!(!csrf_ok(&session, "nope"));
        assert!(same_origin(Some("http://127.0.0.1:9090"), Some("same-origin"), Some("127.0.0.1:9090")));
        assert!(!same_origin(Some("http://evil.test"), None, Some("127.0.0.1:9090")));
        assert!(!same_origin(None, Some("cross-site"), Some("127.0.0.1:9090")));
        assert!(same_origin(None, None, Some("127.0.0.1:9090")), "a client that is not a browser sends neither");
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_scoped() {
        let set = set_cookie("v", Duration::from_secs(43200), true);
        assert_eq!(set, "raaft_console=v; Path=/console; HttpOnly; SameSite=Strict; Max-Age=43200; Secure");
        assert_eq!(from_cookie_header("a=b; raaft_console=xyz; c=d"), Some("xyz"));
    }
}
