//! What the HTTP channels share: posting with a timeout, reading a bounded
//! excerpt of the answer as it streams in, refusing redirects, and keeping
//! webhook secrets out of messages.

use super::AttemptReport;
use crate::retry::{classify_status, parse_retry_after, Outcome};
use std::time::{Duration, Instant, SystemTime};

/// How much of a receiver's answer is kept with an attempt, in bytes.
pub const RESPONSE_EXCERPT: usize = 4096;
/// How much of a receiver's answer is read at most, in bytes: enough for
/// any platform's error document; the rest is never held in memory.
pub const RESPONSE_READ_MAX: usize = 64 * 1024;

/// A receiver's answer.
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<Duration>,
    /// `X-RateLimit-Reset-After` when `X-RateLimit-Remaining` is 0
    /// (Discord says so before it answers 429).
    pub exhausted_for: Option<Duration>,
    /// The `Location` of a redirect, as sent.
    pub location: Option<String>,
    /// The start of the body (at most [`RESPONSE_READ_MAX`] bytes), as the
    /// bytes received.
    pub body: bytes::Bytes,
}

impl Answer {
    /// The body as text, for classifying it (invalid sequences replaced).
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }
}

/// The HTTP client the channels share: rustls trusting the system's
/// certificate authorities (as curl and Go services do) and the web's
/// (for a machine without a CA bundle), plus `extra` (a destination's
/// `ca_file`, PEM); a recognisable agent; no redirects (a 3xx is
/// reported, not followed to another host with the message and its
/// headers).
pub fn client(extra: Option<&[u8]>) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("raaft-relay/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none());
    if let Some(pem) = extra {
        let certificates =
            reqwest::Certificate::from_pem_bundle(pem).map_err(|e| format!("not PEM certificates: {e}"))?;
        if certificates.is_empty() {
            return Err("no CERTIFICATE block in the file".into());
        }
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder.build().map_err(|e| e.to_string())
}

/// Sends `request` and reads the answer; a transport failure is a
/// transient outcome whose reason carries no URL, except a certificate
/// the relay does not accept, which no retry can fix.
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
    let location = header("location").map(str::to_owned);
    let body = read_bounded(response, RESPONSE_READ_MAX).await.map_err(transport_error)?;
    Ok(Answer { status, retry_after, exhausted_for, location, body })
}

/// Reads the body chunk by chunk and stops at `max` bytes: a receiver
/// answering megabytes costs the relay `max` at most (the connection is
/// dropped with the rest unread).
async fn read_bounded(mut response: reqwest::Response, max: usize) -> Result<bytes::Bytes, reqwest::Error> {
    let mut body = bytes::BytesMut::new();
    while body.len() < max {
        match response.chunk().await? {
            Some(chunk) => body.extend_from_slice(&chunk[..chunk.len().min(max - body.len())]),
            None => break,
        }
    }
    Ok(body.freeze())
}

/// What an answer means, with `retry_after` as the channel reads it. A
/// redirect is not followed (it would carry the message and its headers to
/// another host): it fails for good, naming where it pointed.
pub fn classify(answer: &Answer, retry_after: Option<Duration>) -> Outcome {
    if (300..=399).contains(&answer.status) {
        let to = answer.location.as_deref().map(|l| crate::text::truncate_chars(l, 300)).unwrap_or_default();
        return Outcome::Permanent {
            reason: format!(
                "HTTP {} redirect to \"{to}\": redirects are not followed; configure the final URL",
                answer.status
            ),
        };
    }
    classify_status(answer.status, retry_after, &answer.text())
}

fn transport_error(e: reqwest::Error) -> Outcome {
    if let Some(problem) = certificate_problem(&e) {
        let host = e.url().and_then(|u| u.host_str()).unwrap_or("the receiver").to_owned();
        return Outcome::Permanent { reason: certificate_reason(&host, &problem) };
    }
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

/// Why a TLS peer's certificate was refused, when that is what `error`
/// (anywhere in its chain of causes) comes to.
pub fn certificate_problem(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause = Some(error);
    while let Some(e) = cause {
        // An I/O error's `source` skips the error it wraps (and that one
        // may be an I/O error again): look inside.
        let mut inner: &(dyn std::error::Error + 'static) = e;
        loop {
            if let Some(rustls::Error::InvalidCertificate(why)) = inner.downcast_ref::<rustls::Error>() {
                return Some(describe_certificate_error(why));
            }
            match inner.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
                Some(wrapped) => inner = wrapped,
                None => break,
            }
        }
        cause = e.source();
    }
    None
}

fn describe_certificate_error(why: &rustls::CertificateError) -> String {
    use rustls::CertificateError as E;
    match why {
        E::UnknownIssuer => "unknown issuer".into(),
        E::Expired | E::ExpiredContext { .. } => "expired".into(),
        E::NotValidYet | E::NotValidYetContext { .. } => "not valid yet".into(),
        E::NotValidForName | E::NotValidForNameContext { .. } => "wrong name".into(),
        E::Revoked => "revoked".into(),
        E::BadSignature => "bad signature".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// The reason given for a refused certificate of `host`.
pub fn certificate_reason(host: &str, problem: &str) -> String {
    format!(
        "certificate of \"{host}\" not accepted: {problem} (trust its authority in the system store or with ca_file)"
    )
}

/// The report for a generic HTTP receiver.
pub fn report(result: Result<Answer, Outcome>, started: Instant) -> AttemptReport {
    match result {
        Ok(answer) => {
            let outcome = classify(&answer, answer.retry_after);
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

/// Parses a destination URL, which must be http or https.
pub fn parse_http_url(url: &str) -> Result<url::Url, (&'static str, String)> {
    let parsed =
        url::Url::parse(url).map_err(|e| ("url", format!("invalid url \"{}\": {e}", crate::redact::url(url))))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(("url", format!("url must be http or https, not \"{}\"", parsed.scheme())));
    }
    Ok(parsed)
}
