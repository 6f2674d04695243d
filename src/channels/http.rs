//! What the HTTP channels share: posting with a timeout, reading a bounded
//! excerpt of the answer, and keeping webhook secrets out of messages.

use super::AttemptReport;
use crate::retry::{classify_status, parse_retry_after, Outcome};
use std::time::{Duration, Instant, SystemTime};

/// How much of a receiver's answer is kept with an attempt, in bytes.
pub const RESPONSE_EXCERPT: usize = 4096;

/// A receiver's answer.
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<Duration>,
    /// `X-RateLimit-Reset-After` when `X-RateLimit-Remaining` is 0
    /// (Discord says so before it answers 429).
    pub exhausted_for: Option<Duration>,
    /// The start of the body, as the bytes received.
    pub body: bytes::Bytes,
}

impl Answer {
    /// The body as text, for classifying it (invalid sequences replaced).
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }
}

/// Sends `request` and reads the answer; a transport failure is a
/// transient outcome whose reason carries no URL.
pub async fn exchange(request: reqwest::RequestBuilder, timeout: Duration) -> Result<Answer, Outcome> {
    let response = request.timeout(timeout).send().await.map_err(transport_error)?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()));
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let exhausted_for = (header("x-ratelimit-remaining") == Some("0"))
        .then(|| header("x-ratelimit-reset-after").and_then(|v| v.parse::<f64>().ok()))
        .flatten()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(3600.0)));
    let bytes = response.bytes().await.map_err(transport_error)?;
    let body = bytes.slice(..bytes.len().min(64 * 1024));
    Ok(Answer { status, retry_after, exhausted_for, body })
}

fn transport_error(e: reqwest::Error) -> Outcome {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let e = e.without_url();
    let detail = std::error::Error::source(&e).map(|s| format!(": {s}")).unwrap_or_default();
    Outcome::Retry { after: None, reason: format!("{kind}{detail}") }
}

/// The report for a generic HTTP receiver.
pub fn report(result: Result<Answer, Outcome>, started: Instant) -> AttemptReport {
    match result {
        Ok(answer) => {
            let outcome = classify_status(answer.status, answer.retry_after, &answer.text());
            let mut report = AttemptReport::new(outcome, Some(answer.status), excerpt(&answer.body), started);
            report.pause = pause_for(&answer, answer.retry_after);
            report
        }
        Err(outcome) => AttemptReport::new(outcome, None, None, started),
    }
}

/// How long the whole destination should wait after `answer`: a 429's
/// Retry-After (one second when it gives none), or the time until its
/// rate-limit window resets when it has no requests left.
pub fn pause_for(answer: &Answer, retry_after: Option<Duration>) -> Option<Duration> {
    if answer.status == 429 {
        return Some(retry_after.unwrap_or(Duration::from_secs(1)));
    }
    answer.exhausted_for
}

/// The start of an answer, as received (NUL and invalid sequences
/// included: the store keeps bytes), without surrounding whitespace.
pub fn excerpt(body: &[u8]) -> Option<Vec<u8>> {
    let body = body.trim_ascii();
    (!body.is_empty()).then(|| body[..body.len().min(RESPONSE_EXCERPT)].to_vec())
}

/// A URL reduced to scheme, host and port: webhook paths (Slack's
/// `/services/...`, Discord's `/api/webhooks/{id}/{token}`) and userinfo
/// are secrets.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("");
            match u.port() {
                Some(port) => format!("{}://{host}:{port}", u.scheme()),
                None => format!("{}://{host}", u.scheme()),
            }
        }
        Err(_) => "(invalid url)".to_owned(),
    }
}

/// Parses a destination URL, which must be http or https.
pub fn parse_http_url(url: &str) -> Result<url::Url, (&'static str, String)> {
    let parsed = url::Url::parse(url).map_err(|e| ("url", format!("invalid url \"{}\": {e}", redact_url(url))))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(("url", format!("url must be http or https, not \"{}\"", parsed.scheme())));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_keeps_only_scheme_host_and_port() {
        assert_eq!(redact_url("https://hooks.slack.com/services/T0/B0/secret"), "https://hooks.slack.com");
        assert_eq!(redact_url("https://discord.com/api/webhooks/123/tok"), "https://discord.com");
        assert_eq!(redact_url("smtp://user:pw@smtp.example.com:587?tls=required"), "smtp://smtp.example.com:587");
        assert_eq!(redact_url("not a url"), "(invalid url)");
    }
}
