//! Who is calling, and how often they got the token wrong. Requests with a
//! missing or wrong token are counted per client (governor, GCRA): an IPv4
//! address, or an IPv6 /64 (one host is handed a whole /64, so counting its
//! addresses one by one would give it endless fresh allowances). A client
//! past its allowance (`[server] auth_failures`, `[admin] auth_failures`)
//! is answered 429 with Retry-After *before* its token is looked at, until
//! the allowance refills: a guess then costs the same whether it is right
//! or wrong, and guesses cannot go on at line rate. A right token from
//! that address waits too; Raaft retries what is not answered 200. Behind
//! a reverse proxy the client is read from `X-Forwarded-For`, but only
//! when the peer is one of `[server] trusted_proxies`: anyone else could
//! write that header.
//!
//! Every door checks tokens through [`AuthGuard::verify`]: ingest
//! (`x-raaft-token`), the admin API and `/metrics` (a bearer token) and
//! the console's sign-in form (an admin token), with the same rule for
//! counting, refusing and logging.

use crate::config::Rate;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;
use tracing::warn;

/// The name of the store's secret that signs console sessions; a new one
/// is made when an admin token is removed.
pub const CONSOLE_SESSION_SECRET: &str = "console-session";

/// Whom failures are counted against: an IPv4 address or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    pub fn of(ip: IpAddr) -> ClientKey {
        match ip {
            IpAddr::V4(_) => ClientKey(ip),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                    ClientKey(IpAddr::V6(Ipv6Addr::from(prefix)))
                }
            },
        }
    }
}

impl std::fmt::Display for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// Which token a request presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Raaft's shared token, in `x-raaft-token` (`[raaft] tokens`).
    RaaftToken,
    /// An admin token (`[admin] tokens`): a bearer token, or the
    /// console's sign-in form.
    AdminToken,
}

/// Why a request's token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Missing or wrong (401).
    Unauthorized(Scheme),
    /// The client is past its allowance (429): how long until it may try
    /// again.
    TooManyFailures(Duration),
}

/// Whether `presented` is one of `tokens`, compared in constant time with
/// every one of them (no early stop at the first match).
pub fn token_matches(tokens: &[String], presented: &[u8]) -> bool {
    let mut ok = subtle::Choice::from(0);
    for token in tokens {
        ok |= token.as_bytes().ct_eq(presented);
    }
    bool::from(ok) && !tokens.is_empty()
}

pub struct AuthGuard {
    allowance: Option<Rate>,
    failures: Option<DefaultKeyedRateLimiter<ClientKey>>,
    /// Clients past their allowance, and until when.
    blocked: Mutex<HashMap<ClientKey, Instant>>,
    /// At most one log line a minute per client: a guesser must not flood
    /// the logs either.
    reports: DefaultKeyedRateLimiter<ClientKey>,
    trusted: Vec<IpNet>,
}

impl AuthGuard {
    pub fn new(allowance: Option<Rate>, trusted: Vec<IpNet>) -> AuthGuard {
        let failures = allowance.map(|rate| {
            let burst = NonZeroU32::new(rate.count).unwrap_or(NonZeroU32::MIN);
            let quota = Quota::with_period(rate.interval()).unwrap_or(Quota::per_second(burst)).allow_burst(burst);
            RateLimiter::keyed(quota)
        });
        AuthGuard {
            allowance,
            failures,
            blocked: Mutex::new(HashMap::new()),
            reports: RateLimiter::keyed(Quota::per_minute(NonZeroU32::MIN)),
            trusted,
        }
    }

    /// Whether this guard was built from these settings (a reload keeps
    /// the counts when they stay the same).
    pub fn has_settings(&self, allowance: Option<Rate>, trusted: &[IpNet]) -> bool {
        self.allowance == allowance && self.trusted == trusted
    }

    /// The client's address: the peer's, or, when the peer is a trusted
    /// proxy, the right-most address in `X-Forwarded-For` that is not one
    /// (proxies append what they saw, so everything left of it is the
    /// client's own claim).
    pub fn client(&self, peer: Option<IpAddr>, forwarded_for: Option<&str>) -> Option<IpAddr> {
        let peer = peer?;
        if !self.is_trusted(peer) {
            return Some(peer);
        }
        let Some(header) = forwarded_for else { return Some(peer) };
        let mut client = peer;
        for hop in header.rsplit(',').map(str::trim) {
            match hop.parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip;
                    if !self.is_trusted(ip) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        Some(client)
    }

    /// Whether `peer` is one of the trusted proxies.
    pub fn trusts(&self, peer: IpAddr) -> bool {
        self.is_trusted(peer)
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// Checks the token a request from `client` presents (`None`: none)
    /// against `tokens`. A client past its allowance is refused before
    /// the token is looked at; a missing or wrong token counts against
    /// it. A refusal is logged at most once a minute per client (an IPv4
    /// address or an IPv6 /64), saying which token and why.
    pub fn verify(
        &self,
        scheme: Scheme,
        client: Option<IpAddr>,
        presented: Option<&[u8]>,
        tokens: &[String],
    ) -> Result<(), Refused> {
        if let Some(wait) = client.and_then(|ip| self.blocked(ip).err()) {
            self.report(client, scheme, "past the allowance of failed authentications; answering 429 for a while");
            return Err(Refused::TooManyFailures(wait));
        }
        if presented.is_some_and(|token| token_matches(tokens, token)) {
            return Ok(());
        }
        self.report(client, scheme, if presented.is_some() { "wrong token" } else { "missing token" });
        match client.and_then(|ip| self.failed(ip).err()) {
            Some(wait) => Err(Refused::TooManyFailures(wait)),
            None => Err(Refused::Unauthorized(scheme)),
        }
    }

    /// Logs a refusal of `client`, unless one was logged within the minute.
    fn report(&self, client: Option<IpAddr>, scheme: Scheme, why: &str) {
        if !client.is_none_or(|ip| self.should_report(ip)) {
            return;
        }
        let shown = client.map(|ip| ClientKey::of(ip).to_string()).unwrap_or_else(|| "unknown".into());
        match scheme {
            Scheme::RaaftToken => {
                warn!(client = %shown, reason = why, "rejected webhook: {why} (logged once a minute per client)")
            }
            Scheme::AdminToken => {
                warn!(client = %shown, reason = why, "rejected admin request: {why} (logged once a minute per client)")
            }
        }
    }

    /// `Err` with how long until `client` may try again, while it is past
    /// its allowance. Asked before the token is compared.
    pub fn blocked(&self, client: IpAddr) -> Result<(), Duration> {
        let key = ClientKey::of(client);
        let mut blocked = self.blocked.lock().expect("auth lock");
        match blocked.get(&key) {
            Some(until) if *until > Instant::now() => Err(*until - Instant::now()),
            Some(_) => {
                blocked.remove(&key);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Counts a failed authentication from `client`. `Err` holds how long
    /// until the next attempt is allowed when this one is past the
    /// allowance: the client is then blocked until that time, whatever
    /// token it presents.
    fn failed(&self, client: IpAddr) -> Result<(), Duration> {
        let Some(limiter) = &self.failures else { return Ok(()) };
        let key = ClientKey::of(client);
        limiter.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now()).max(Duration::from_millis(1));
            self.blocked.lock().expect("auth lock").insert(key, Instant::now() + wait);
            wait
        })
    }

    /// Whether a refusal of `client` should be logged now.
    fn should_report(&self, client: IpAddr) -> bool {
        self.reports.check_key(&ClientKey::of(client)).is_ok()
    }

    /// Forgets clients whose allowance is full again (run now and then,
    /// so a scan from many addresses does not grow memory for good).
    pub fn forget_recovered(&self) {
        if let Some(limiter) = &self.failures {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        self.reports.retain_recent();
        self.reports.shrink_to_fit();
        let now = Instant::now();
        self.blocked.lock().expect("auth lock").retain(|_, until| *until > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let guard = AuthGuard::new(None, vec!["10.0.0.0/8".parse().unwrap()]);
        // An untrusted peer cannot claim another address.
        assert_eq!(guard.client(Some(ip("203.0.113.9")), Some("1.2.3.4")), Some(ip("203.0.113.9")));
        // Behind the proxy: the right-most address the proxy did not add itself.
        assert_eq!(guard.client(Some(ip("10.0.0.2")), Some("6.6.6.6, 198.51.100.7")), Some(ip("198.51.100.7")));
        assert_eq!(guard.client(Some(ip("10.0.0.2")), Some("198.51.100.7, 10.0.0.3")), Some(ip("198.51.100.7")));
        assert_eq!(guard.client(Some(ip("10.0.0.2")), None), Some(ip("10.0.0.2")));
        assert_eq!(guard.client(Some(ip("10.0.0.2")), Some("garbage")), Some(ip("10.0.0.2")));
    }

    #[test]
    fn failures_are_limited_per_address() {
        let guard = AuthGuard::new(Some(Rate { count: 3, per: Duration::from_secs(60) }), Vec::new());
        for _ in 0..3 {
            assert!(guard.failed(ip("192.0.2.1")).is_ok());
        }
        assert!(guard.blocked(ip("192.0.2.1")).is_ok(), "within the allowance");
        let wait = guard.failed(ip("192.0.2.1")).unwrap_err();
        assert!(wait > Duration::from_secs(15) && wait <= Duration::from_secs(20), "{wait:?}");
        let blocked = guard.blocked(ip("192.0.2.1")).unwrap_err();
        assert!(blocked <= wait && blocked > Duration::from_secs(15), "{blocked:?}");
        assert!(guard.failed(ip("192.0.2.2")).is_ok(), "another address has its own allowance");
        assert!(guard.blocked(ip("192.0.2.2")).is_ok());
        let unlimited = AuthGuard::new(None, Vec::new());
        assert!(unlimited.blocked(ip("192.0.2.1")).is_ok());
        assert!((0..100).all(|_| unlimited.failed(ip("192.0.2.1")).is_ok()));
    }

    #[test]
    fn ipv6_is_counted_per_64_and_mapped_ipv4_as_ipv4() {
        let guard = AuthGuard::new(Some(Rate { count: 2, per: Duration::from_secs(60) }), Vec::new());
        assert!(guard.failed(ip("2001:db8:1:2::1")).is_ok());
        assert!(guard.failed(ip("2001:db8:1:2:ffff::9")).is_ok());
        assert!(guard.failed(ip("2001:db8:1:2:dead:beef:0:1")).is_err(), "a new address in the same /64");
        assert!(guard.blocked(ip("2001:db8:1:2::77")).is_err());
        assert!(guard.blocked(ip("2001:db8:1:3::1")).is_ok(), "the next /64 is someone else");
        assert_eq!(ClientKey::of(ip("::ffff:192.0.2.7")), ClientKey::of(ip("192.0.2.7")));
        assert_eq!(ClientKey::of(ip("2001:db8:1:2::1")).to_string(), "2001:db8:1:2::/64");
    }
}
