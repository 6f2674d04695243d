//! Console sessions: a cookie signed (HMAC-SHA256) with a random secret
//! the relay keeps in its store ([`SECRET`]), so every replica accepts it,
//! and nothing in a cookie lets anyone test guesses of a token offline. A
//! cookie carries its session's random id, when it was issued, and which
//! admin token signed in (a key id: an HMAC of the token under the secret).
//! It is valid while that token is listed in `[admin] tokens`, for
//! `[admin] session` after its issue (as configured now: shortening it
//! shortens sessions already issued), and until signed out: sign-out
//! records the session's id as revoked in the store (until it would have
//! ended under the setting of the day), which ends every copy of the
//! cookie. Each session carries its
//! own CSRF token (derived from its id), which every state-changing form
//! sends back.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// The cookie's name.
pub const COOKIE: &str = "raaft_console";

/// The name of the store's secret that signs sessions.
pub use crate::auth::CONSOLE_SESSION_SECRET as SECRET;

/// How far ahead of this relay's clock another replica's may be and its
/// sessions still count.
const CLOCK_SKEW: i64 = 60;

/// A signed-in operator's session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Its random id, which sign-out revokes.
    pub id: String,
    /// When it was signed in.
    pub issued: DateTime<Utc>,
    pub expires: DateTime<Utc>,
    /// What every state-changing form must send back.
    pub csrf: String,
}

fn mac(secret: &[u8], message: &str) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
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

/// Which token signed in, as the cookie names it.
fn key_id(secret: &[u8], token: &str) -> String {
    hex(&mac(secret, &format!("token.{token}")).finalize().into_bytes())[..16].to_owned()
}

fn csrf_of(secret: &[u8], id: &str) -> String {
    hex(&mac(secret, &format!("csrf.{id}")).finalize().into_bytes())[..32].to_owned()
}

fn expiry(issued: DateTime<Utc>, lasts: std::time::Duration) -> DateTime<Utc> {
    issued + chrono::Duration::from_std(lasts).unwrap_or(chrono::Duration::hours(12))
}

/// A new session for one who signed in with `token` at `now`, lasting
/// `lasts`: the cookie's value and the session.
pub fn start(secret: &[u8], token: &str, now: DateTime<Utc>, lasts: std::time::Duration) -> (String, Session) {
    let id = hex(&rand::random::<[u8; 16]>());
    let issued = DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now);
    let message = format!("v2.{}.{id}.{}", issued.timestamp(), key_id(secret, token));
    let signature = hex(&mac(secret, &message).finalize().into_bytes());
    let csrf = csrf_of(secret, &id);
    (format!("{message}.{signature}"), Session { id, issued, expires: expiry(issued, lasts), csrf })
}

/// The session a cookie's value stands for: signed with `secret`, made
/// with one of `tokens`, issued less than `lasts` before `now`. Whether it
/// was signed out is the store's to say.
pub fn verify(
    value: &str,
    secret: &[u8],
    tokens: &[String],
    lasts: std::time::Duration,
    now: DateTime<Utc>,
) -> Option<Session> {
    let (message, signature) = value.rsplit_once('.')?;
    mac(secret, message).verify_slice(&unhex(signature)?).ok()?;
    let mut parts = message.split('.');
    let (Some("v2"), Some(issued), Some(id), Some(kid), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let issued = DateTime::from_timestamp(issued.parse().ok()?, 0)?;
    let expires = expiry(issued, lasts);
    if expires <= now || issued > now + chrono::Duration::seconds(CLOCK_SKEW) {
        return None;
    }
    let mut listed = subtle::Choice::from(0);
    for token in tokens {
        listed |= key_id(secret, token).as_bytes().ct_eq(kid.as_bytes());
    }
    if !bool::from(listed) {
        return None;
    }
    Some(Session { id: id.to_owned(), issued, expires, csrf: csrf_of(secret, id) })
}

/// Whether `presented` is the session's CSRF token (constant time).
pub fn csrf_ok(session: &Session, presented: &str) -> bool {
    bool::from(session.csrf.as_bytes().ct_eq(presented.as_bytes()))
}

/// The `Set-Cookie` value that keeps `value` for `lasts` on `path` (the
/// console's folder; `Secure` when the browser reached the relay over
/// https).
pub fn set_cookie(value: &str, lasts: std::time::Duration, path: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={value}; Path={path}; HttpOnly; SameSite=Strict; Max-Age={}{secure}", lasts.as_secs())
}

/// The `Set-Cookie` value that signs out.
pub fn clear_cookie(path: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}=; Path={path}; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
}

/// The session cookie's value in a `Cookie` header.
pub fn from_cookie_header(header: &str) -> Option<&str> {
    header.split(';').filter_map(|c| c.trim().split_once('=')).find(|(name, _)| *name == COOKIE).map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const SECRET: &[u8] = b"a random secret of the store, 32b";

    fn tokens(list: &[&str]) -> Vec<String> {
        list.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn a_session_verifies_until_it_expires_and_only_while_its_token_is_listed() {
        let now = Utc::now();
        let hour = Duration::from_secs(3600);
        let (cookie, session) = start(SECRET, "admin-1", now, hour);
        assert_eq!(verify(&cookie, SECRET, &tokens(&["other", "admin-1"]), hour, now), Some(session.clone()));
        assert_eq!(verify(&cookie, SECRET, &tokens(&["other"]), hour, now), None, "a removed token ends its sessions");
        assert_eq!(verify(&cookie, SECRET, &tokens(&["admin-1"]), hour, now + chrono::Duration::seconds(3601)), None);
        let (other, other_session) = start(SECRET, "admin-1", now, hour);
        assert_ne!(other, cookie, "every sign-in makes a new session");
        assert_ne!((other_session.id, other_session.csrf), (session.id, session.csrf));
    }

    #[test]
    fn a_shorter_session_setting_shortens_cookies_already_issued() {
        let now = Utc::now();
        let (cookie, _) = start(SECRET, "admin-1", now, Duration::from_secs(12 * 3600));
        let later = now + chrono::Duration::minutes(20);
        let admin = tokens(&["admin-1"]);
        assert!(verify(&cookie, SECRET, &admin, Duration::from_secs(12 * 3600), later).is_some());
        assert!(verify(&cookie, SECRET, &admin, Duration::from_secs(15 * 60), later).is_none());
    }

    #[test]
    fn a_cookie_says_nothing_of_the_token_without_the_secret() {
        let now = Utc::now();
        let (cookie, _) = start(SECRET, "admin-1", now, Duration::from_secs(60));
        assert!(!cookie.contains("admin-1"));
        // Guessing the token is no help: the signature needs the secret.
        for guess in ["admin-1", "admin-2"] {
            let (forged, _) = start(guess.as_bytes(), guess, now, Duration::from_secs(60));
            assert_eq!(verify(&forged, SECRET, &tokens(&["admin-1"]), Duration::from_secs(60), now), None);
        }
        // A new secret (a token removed) ends every session.
        assert_eq!(verify(&cookie, b"the next secret", &tokens(&["admin-1"]), Duration::from_secs(60), now), None);
    }

    #[test]
    fn a_tampered_cookie_is_refused() {
        let now = Utc::now();
        let (cookie, _) = start(SECRET, "admin-1", now, Duration::from_secs(60));
        let admin = tokens(&["admin-1"]);
        let earlier = cookie.replacen(&format!("v2.{}", now.timestamp()), &format!("v2.{}", now.timestamp() + 3000), 1);
        assert_eq!(verify(&earlier, SECRET, &admin, Duration::from_secs(60), now), None);
        assert_eq!(verify("v2.1.2.3.4", SECRET, &admin, Duration::from_secs(60), now), None);
        assert_eq!(verify("v1.99999999999.abc.def", SECRET, &admin, Duration::from_secs(60), now), None);
        assert_eq!(verify("", SECRET, &admin, Duration::from_secs(60), now), None);
    }

    #[test]
    fn csrf_is_checked_and_origins_must_be_this_one() {
        let (_, session) = start(SECRET, "t", Utc::now(), Duration::from_secs(60));
        assert!(csrf_ok(&session, &session.csrf.clone()));
        assert!(!csrf_ok(&session, "nope"));
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_scoped() {
        let set = set_cookie("v", Duration::from_secs(43200), "/console", true);
        assert_eq!(set, "raaft_console=v; Path=/console; HttpOnly; SameSite=Strict; Max-Age=43200; Secure");
        let under = clear_cookie("/raaft/console", false);
        assert_eq!(under, "raaft_console=; Path=/raaft/console; HttpOnly; SameSite=Strict; Max-Age=0");
        assert_eq!(from_cookie_header("a=b; raaft_console=xyz; c=d"), Some("xyz"));
    }
}
