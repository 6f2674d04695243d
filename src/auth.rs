//! Who is calling, and how often they got the token wrong. Requests with a
//! missing or wrong token are counted per client address (governor, GCRA):
//! past `[server] auth_failures` they are answered 429 with Retry-After
//! until the allowance refills, so tokens cannot be guessed at line rate.
//! Requests with a valid token are never counted nor slowed. Behind a
//! reverse proxy the client is read from `X-Forwarded-For`, but only when
//! the peer is one of `[server] trusted_proxies`: anyone else could write
//! that header.

use crate::config::Rate;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

pub struct AuthGuard {
    failures: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// At most one log line a minute per limited address: a guesser must
    /// not flood the logs either.
    reports: DefaultKeyedRateLimiter<IpAddr>,
    trusted: Vec<IpNet>,
}

impl AuthGuard {
    pub fn new(allowance: Option<Rate>, trusted: Vec<IpNet>) -> AuthGuard {
        let failures = allowance.map(|rate| {
            let burst = NonZeroU32::new(rate.count).unwrap_or(NonZeroU32::MIN);
            let quota = Quota::with_period(rate.interval()).unwrap_or(Quota::per_second(burst)).allow_burst(burst);
            RateLimiter::keyed(quota)
        });
        AuthGuard { failures, reports: RateLimiter::keyed(Quota::per_minute(NonZeroU32::MIN)), trusted }
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

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// Counts a failed authentication from `client`. `Err` holds how long
    /// until the next one is allowed, when it is over the allowance.
    pub fn failed(&self, client: IpAddr) -> Result<(), Duration> {
        let Some(limiter) = &self.failures else { return Ok(()) };
        limiter.check_key(&client).map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Whether a refusal of `client` should be logged now.
    pub fn should_report(&self, client: IpAddr) -> bool {
        self.reports.check_key(&client).is_ok()
    }

    /// Forgets addresses whose allowance is full again (run now and then,
    /// so a scan from many addresses does not grow memory for good).
    pub fn forget_recovered(&self) {
        if let Some(limiter) = &self.failures {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        self.reports.retain_recent();
        self.reports.shrink_to_fit();
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
        let wait = guard.failed(ip("192.0.2.1")).unwrap_err();
        assert!(wait > Duration::from_secs(15) && wait <= Duration::from_secs(20), "{wait:?}");
        assert!(guard.failed(ip("192.0.2.2")).is_ok(), "another address has its own allowance");
        let unlimited = AuthGuard::new(None, Vec::new());
        assert!((0..100).all(|_| unlimited.failed(ip("192.0.2.1")).is_ok()));
    }
}
