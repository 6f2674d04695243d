//! E-mail over SMTP with lettre: `smtp://` plain (local relays only),
//! `smtp://...?tls=required` STARTTLS, `smtps://` implicit TLS. Text body,
//! optional HTML alternative, a Message-ID, header values without CR/LF.
//! SMTP 4yz replies and connection trouble are transient, 5yz permanent.

use super::{AttemptReport, EmailPayload, Payload, Rendered};
use crate::config::DestinationConfig;
use crate::retry::Outcome;
use crate::text::{single_line, truncate_chars};
use lettre::message::{header::ContentType, Mailbox, MultiPart};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::{Duration, Instant};

/// The subject when the config gives none.
pub const DEFAULT_SUBJECT: &str = "Raaft: {{outcome}} {{customer.name}}";
/// Long subjects are folded by mail clients anyway; keep them readable.
const SUBJECT_MAX: usize = 200;

pub struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    /// The SMTP server's host, for failure reasons.
    host: String,
}

type BuildError = (&'static str, String);

impl Email {
    /// `ca` (PEM) is trusted besides the system's authorities.
    pub fn new(url: &str, cfg: &DestinationConfig, timeout: Duration, ca: Option<&[u8]>) -> Result<Self, BuildError> {
        let redacted = crate::redact::url(url);
        let parsed = url::Url::parse(url).map_err(|e| ("url", format!("invalid url \"{redacted}\": {e}")))?;
        let tls_required = parsed.query_pairs().any(|(k, v)| k == "tls" && v == "required");
        match parsed.scheme() {
            "smtps" => {}
            "smtp" => {
                let loopback = matches!(parsed.host_str(), Some("localhost" | "127.0.0.1" | "[::1]" | "::1"));
                if !tls_required && parsed.password().is_some() && !loopback {
                    return Err((
                        "url",
                        format!("\"{redacted}\" would send the password unencrypted: add ?tls=required (STARTTLS) or use smtps://"),
                    ));
                }
            }
            other => return Err(("url", format!("url must be smtp:// or smtps://, not \"{other}\"://"))),
        }
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| ("url", format!("invalid smtp url \"{redacted}\": {e}")))?
            .timeout(Some(timeout));
        if let Some(pem) = ca {
            let host = parsed.host_str().unwrap_or_default().trim_matches(['[', ']']).to_owned();
            let certificate =
                Certificate::from_pem(pem).map_err(|e| ("ca_file", format!("not a PEM certificate: {e}")))?;
            let parameters = TlsParameters::builder(host)
                .add_root_certificate(certificate)
                .build_rustls()
                .map_err(|e| ("ca_file", format!("cannot use the certificate: {e}")))?;
            builder = match (parsed.scheme(), tls_required) {
                ("smtps", _) => builder.tls(Tls::Wrapper(parameters)),
                (_, true) => builder.tls(Tls::Required(parameters)),
                _ => builder.tls(Tls::Opportunistic(parameters)),
            };
        }
        let transport = builder.build();
        let host = parsed.host_str().unwrap_or("the relay").to_owned();
        let from_raw = cfg.from.as_deref().unwrap_or_default();
        let from = from_raw.parse::<Mailbox>().map_err(|e| ("from", format!("invalid address \"{from_raw}\": {e}")))?;
        let to = cfg
            .to
            .iter()
            .map(|a| a.parse::<Mailbox>().map_err(|e| ("to", format!("invalid address \"{a}\": {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Email { transport, from, to, host })
    }

    pub async fn send(&self, mail: &EmailPayload, timeout: Duration) -> AttemptReport {
        let started = Instant::now();
        let message = match self.message(mail) {
            Ok(m) => m,
            Err(e) => {
                let outcome = Outcome::Permanent { reason: format!("cannot build the e-mail: {e}") };
                return AttemptReport::new(outcome, None, None, started);
            }
        };
        match tokio::time::timeout(timeout, self.transport.send(message)).await {
            Ok(Ok(response)) => {
                let code = response.code().to_string().parse().ok();
                let text = response.message().collect::<Vec<_>>().join(" ");
                AttemptReport::new(Outcome::Delivered, code, super::http::excerpt(text.as_bytes()), started)
            }
            Ok(Err(e)) => {
                let code = e.status().and_then(|c| c.to_string().parse().ok());
                let certificate = super::http::certificate_problem(&e);
                let reason = match &certificate {
                    Some(problem) => format!("smtp: {}", super::http::certificate_reason(&self.host, problem)),
                    None => format!("smtp: {e}"),
                };
                let outcome = if e.is_permanent() || certificate.is_some() {
                    Outcome::Permanent { reason: reason.clone() }
                } else {
                    Outcome::Retry { after: None, reason: reason.clone() }
                };
                AttemptReport::new(outcome, code, Some(reason.into_bytes()), started)
            }
            Err(_) => {
                let outcome = Outcome::Retry { after: None, reason: format!("smtp: timed out after {timeout:?}") };
                AttemptReport::new(outcome, None, None, started)
            }
        }
    }

    fn message(&self, mail: &EmailPayload) -> Result<Message, lettre::error::Error> {
        let mut builder = Message::builder().from(self.from.clone()).subject(mail.subject.clone()).message_id(None);
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        match &mail.html {
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(mail.text.clone(), html.clone())),
            None => builder.header(ContentType::TEXT_PLAIN).body(mail.text.clone()),
        }
    }
}

/// Builds the e-mail from rendered templates. Pure.
pub fn payload(rendered: Rendered) -> Payload {
    let subject = single_line(rendered.subject.as_deref().unwrap_or("Raaft event"));
    let subject = truncate_chars(subject.trim(), SUBJECT_MAX);
    let subject = if subject.is_empty() { "Raaft event".to_owned() } else { subject };
    let text = if rendered.body.trim().is_empty() { super::empty_fallback("email") } else { rendered.body };
    Payload::Email(EmailPayload { subject, text, html: rendered.html })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_never_carry_line_breaks() {
        let rendered = Rendered {
            body: "b".into(),
            json: false,
            html: None,
            subject: Some("Ana\r\nBcc: evil@example.com canceled".into()),
        };
        let Payload::Email(mail) = payload(rendered) else { panic!() };
        assert_eq!(mail.subject, "Ana Bcc: evil@example.com canceled");
    }
}
