//! The retry policy as data and pure functions: what an attempt's outcome
//! means, how long to wait before the next one, and when to give up.

use crate::config::RetryPolicy;
use std::time::{Duration, SystemTime};

/// What one delivery attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Worth trying again: a timeout, a connection error, 408, 425, 429,
    /// 5xx, an SMTP 4yz. `after` is the receiver's own Retry-After.
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// Trying again cannot help: other 4xx, an SMTP 5yz, a broken template.
    Permanent {
        reason: String,
    },
}

/// What happens to a delivery after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextStep {
    Delivered,
    RetryIn(Duration),
    Dead { reason: String },
}

/// HTTP statuses worth retrying (RFC 9110, and what Slack and Discord
/// document as transient).
pub fn is_transient_status(status: u16) -> bool {
    matches!(status, 408 | 425 | 429) || (500..=599).contains(&status)
}

/// Classifies an HTTP answer. `retry_after` is honoured on 429 and 503.
pub fn classify_status(status: u16, retry_after: Option<Duration>, body: &str) -> Outcome {
    let body = body.trim();
    let reason = if body.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {}", crate::text::truncate_chars(body, 300))
    };
    match status {
        200..=299 => Outcome::Delivered,
        429 | 503 => Outcome::Retry { after: retry_after, reason },
        s if is_transient_status(s) => Outcome::Retry { after: None, reason },
        _ => Outcome::Permanent { reason },
    }
}

/// How long a destination may be paused at a receiver's request: what it
/// asked for, up to `max_backoff`.
pub fn capped_pause(policy: &RetryPolicy, asked: Duration) -> Duration {
    asked.min(policy.max_backoff)
}

/// Parses a `Retry-After` value: delta-seconds (fractions accepted, as
/// Discord sends them) or an HTTP date.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Full-jitter exponential backoff: a uniform pick in
/// `[0, min(max_backoff, initial_backoff * 2^(failures-1))]`. Full jitter
/// spreads retries from many relays hitting one recovering receiver
/// ("Exponential Backoff And Jitter", AWS Architecture Blog).
pub fn backoff(policy: &RetryPolicy, failures: u32, unit: f64) -> Duration {
    let exp = failures.saturating_sub(1).min(32);
    let ceiling =
        policy.initial_backoff.checked_mul(1u32 << exp.min(31)).unwrap_or(policy.max_backoff).min(policy.max_backoff);
    ceiling.mul_f64(unit.clamp(0.0, 1.0))
}

/// Decides what follows an attempt, given how many attempts have now been
/// made. `unit` is a uniform random number in [0, 1] for the jitter.
pub fn next_step(policy: &RetryPolicy, outcome: &Outcome, attempts: u32, unit: f64) -> NextStep {
    match outcome {
        Outcome::Delivered => NextStep::Delivered,
        Outcome::Permanent { reason } => NextStep::Dead { reason: reason.clone() },
        Outcome::Retry { reason, .. } if attempts >= policy.max_attempts => {
            NextStep::Dead { reason: format!("gave up after {attempts} attempts: {reason}") }
        }
        // A receiver's own wait is honoured up to `max_backoff`, never
        // longer: a `Retry-After` in 9999 must not park a delivery for good.
        Outcome::Retry { after: Some(after), .. } => NextStep::RetryIn((*after).min(policy.max_backoff)),
        Outcome::Retry { after: None, .. } => NextStep::RetryIn(backoff(policy, attempts, unit)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(10),
        }
    }

    #[test]
    fn classification_table() {
        let cases: &[(u16, &str, &str)] = &[
            (200, "ok", "delivered"),
            (204, "", "delivered"),
            (400, "invalid_payload", "permanent"),
            (401, "", "permanent"),
            (403, "action_prohibited", "permanent"),
            (404, "channel_not_found", "permanent"),
            (410, "channel_is_archived", "permanent"),
            (408, "", "retry"),
            (425, "", "retry"),
            (429, "", "retry"),
            (500, "rollup_error", "retry"),
            (502, "", "retry"),
            (503, "", "retry"),
            (504, "", "retry"),
        ];
        for (status, body, want) in cases {
            let got = match classify_status(*status, None, body) {
                Outcome::Delivered => "delivered",
                Outcome::Retry { .. } => "retry",
                Outcome::Permanent { .. } => "permanent",
            };
            assert_eq!(got, *want, "status {status}");
        }
        match classify_status(404, None, "channel_not_found") {
            Outcome::Permanent { reason } => assert_eq!(reason, "HTTP 404: channel_not_found"),
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn retry_after_is_kept_only_where_it_means_something() {
        let after = Some(Duration::from_secs(3));
        assert_eq!(classify_status(429, after, ""), Outcome::Retry { after, reason: "HTTP 429".into() });
        assert_eq!(classify_status(503, after, ""), Outcome::Retry { after, reason: "HTTP 503".into() });
        assert_eq!(classify_status(500, after, ""), Outcome::Retry { after: None, reason: "HTTP 500".into() });
    }

    #[test]
    fn retry_after_parses_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("5", now), Some(Duration::from_secs(5)));
        assert_eq!(parse_retry_after(" 1.5 ", now), Some(Duration::from_millis(1500)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(120));
        assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(120)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(120));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }

    #[test]
    fn backoff_grows_exponentially_with_full_jitter_and_a_cap() {
        let p = policy();
        assert_eq!(backoff(&p, 1, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(&p, 2, 1.0), Duration::from_secs(2));
        assert_eq!(backoff(&p, 3, 1.0), Duration::from_secs(4));
        assert_eq!(backoff(&p, 5, 1.0), Duration::from_secs(10));
        assert_eq!(backoff(&p, 60, 1.0), Duration::from_secs(10));
        assert_eq!(backoff(&p, 3, 0.0), Duration::ZERO);
        assert_eq!(backoff(&p, 3, 0.5), Duration::from_secs(2));
    }

    #[test]
    fn next_step_gives_up_after_max_attempts_and_on_permanent_errors() {
        let p = policy();
        let retry = Outcome::Retry { after: None, reason: "HTTP 500".into() };
        assert_eq!(next_step(&p, &retry, 1, 1.0), NextStep::RetryIn(Duration::from_secs(1)));
        assert!(matches!(next_step(&p, &retry, 5, 1.0), NextStep::Dead { reason } if reason.contains("5 attempts")));
        let after = Outcome::Retry { after: Some(Duration::from_secs(30)), reason: "HTTP 429".into() };
        // Honoured up to max_backoff (10 s here), never longer.
        assert_eq!(next_step(&p, &after, 2, 1.0), NextStep::RetryIn(Duration::from_secs(10)));
        let short = Outcome::Retry { after: Some(Duration::from_secs(3)), reason: "HTTP 429".into() };
        assert_eq!(next_step(&p, &short, 2, 1.0), NextStep::RetryIn(Duration::from_secs(3)));
        let far = parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", SystemTime::now()).unwrap();
        let far = Outcome::Retry { after: Some(far), reason: "HTTP 429".into() };
        assert_eq!(next_step(&p, &far, 2, 1.0), NextStep::RetryIn(Duration::from_secs(10)));
        assert_eq!(capped_pause(&p, Duration::from_secs(86_400)), Duration::from_secs(10));
        let perm = Outcome::Permanent { reason: "HTTP 404: channel_not_found".into() };
        assert_eq!(next_step(&p, &perm, 1, 1.0), NextStep::Dead { reason: "HTTP 404: channel_not_found".into() });
        assert_eq!(next_step(&p, &Outcome::Delivered, 1, 1.0), NextStep::Delivered);
    }
}
