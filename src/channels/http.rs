//! What the HTTP channels share: posting with a timeout, reading a bounded
//! excerpt of the answer, and keeping webhook secrets out of messages.

use super::AttemptReport;
use crate::retry::{classify_status, parse_retry_after, Outcome};
use std::time::{Duration, Instant, SystemTime};

/// How much of a receiver's answer is kept.
pub const RESPONSE_EXCERPT: usize = 1024;

/// A receiver's answer.
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub body: String,
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
    let bytes = response.bytes().await.map_err(transport_error)?;
    let end = bytes.len().min(64 * 1024);
    let body = String::from_utf8_lossy(&bytes[..end]).into_owned();
    Ok(Answer { status, retry_after, body })
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
            let outcome = classify_status(answer.status, answer.retry_after, &answer.body);
            AttemptReport::new(outcome, Some(answer.status), excerpt(&answer.body), started)
        }
        Err(outcome) => AttemptReport::new(outcome, None, None, started),
    }
}

pub fn excerpt(body: &str) -> Option<String> {
    let body = body.trim();
    (!body.is_empty()).then(|| crate::text::truncate_chars(body, RESPONSE_EXCERPT))
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
