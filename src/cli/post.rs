//! `post FILE...`: sends event files to the running relay as Raaft would
//! (with the config's token), and says what the relay answered for each.
//! `--fresh` makes each a new event: the relay takes a repeat of an event
//! it has seen within `dedup_window` for a retry, and sends nothing again.

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// What `post` was asked.
pub(super) struct PostRequest<'a> {
    pub files: &'a [PathBuf],
    pub fresh: bool,
    pub url: Option<&'a str>,
}

pub(super) async fn run(config: &Path, request: PostRequest<'_>) -> anyhow::Result<ExitCode> {
    let (config, _) =
        crate::config::Config::load_for_store(config).map_err(|p| anyhow::anyhow!("invalid configuration:\n{p}"))?;
    let token = config.tokens.first().context("the config lists no [raaft] tokens")?;
    let url = match request.url {
        Some(url) => url.to_owned(),
        None => {
            let scheme = if config.server.tls.is_some() { "https" } else { "http" };
            format!("{scheme}://{}/webhooks/raaft", super::local_address(&config.server.listen))
        }
    };
    // The relay's own address: its certificate need not name it.
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .danger_accept_invalid_certs(request.url.is_none())
        .build()?;
    let mut fresh = Fresh::default();
    let mut failed = false;
    for file in request.files {
        let shown = file.display();
        let body = std::fs::read(file).with_context(|| format!("cannot read event file \"{shown}\""))?;
        let body =
            if request.fresh { fresh.apply(&body).with_context(|| format!("event file \"{shown}\""))? } else { body };
        let sent = client
            .post(&url)
            .header("content-type", "application/json")
            .header("x-raaft-token", token)
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                println!("{shown}: not sent: {url} did not answer: {:#}", anyhow::Error::new(e));
                failed = true;
                continue;
            }
        };
        let status = response.status();
        let answer = response.text().await.unwrap_or_default();
        let line = describe(status.as_u16(), &answer, request.fresh);
        failed |= !status.is_success();
        println!("{shown}: {line}");
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// What the relay's answer means, on one line.
fn describe(status: u16, answer: &str, fresh: bool) -> String {
    let parsed: serde_json::Value = serde_json::from_str(answer).unwrap_or_default();
    let deliveries = parsed["deliveries"].as_u64().unwrap_or(0);
    match (status, parsed["status"].as_str()) {
        (200, Some("accepted")) if deliveries == 0 => {
            "accepted: no route matched it, nothing will be sent (`raaft-relay render --event FILE` says why)".into()
        }
        (200, Some("accepted")) if deliveries == 1 => "accepted: 1 delivery queued".into(),
        (200, Some("accepted")) => format!("accepted: {deliveries} deliveries queued"),
        (200, Some("duplicate")) if fresh => "duplicate: the relay has this event already".into(),
        (200, Some("duplicate")) => {
            "duplicate: the relay received this event before and sends nothing again (post it with --fresh to send it as a new event)"
                .into()
        }
        (status, _) => {
            let reason = parsed["error"].as_str().map(str::to_owned).unwrap_or_else(|| answer.trim().to_owned());
            format!("refused ({status}): {reason}")
        }
    }
}

/// Makes events new: `createdAt` set to now (a millisecond later than the
/// last one made, so that files posted together stay distinct).
#[derive(Default)]
struct Fresh {
    last: Option<chrono::DateTime<chrono::Utc>>,
}

impl Fresh {
    fn apply(&mut self, body: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut event: serde_json::Value = serde_json::from_slice(body).context("not JSON")?;
        let object = event.as_object_mut().context("not a JSON object")?;
        // As sent: to the millisecond.
        let mut now =
            chrono::DateTime::from_timestamp_millis(chrono::Utc::now().timestamp_millis()).unwrap_or_default();
        if let Some(last) = self.last.filter(|l| *l >= now) {
            now = last + chrono::Duration::milliseconds(1);
        }
        self.last = Some(now);
        object.insert("createdAt".into(), now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true).into());
        Ok(serde_json::to_vec(&event)?)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fresh_events_differ_even_when_made_in_the_same_millisecond() {
        let mut fresh = super::Fresh::default();
        let event = br#"{"outcome":"canceled","createdAt":"2024-10-07T08:10:07.558Z"}"#;
        let a: serde_json::Value = serde_json::from_slice(&fresh.apply(event).unwrap()).unwrap();
        let b: serde_json::Value = serde_json::from_slice(&fresh.apply(event).unwrap()).unwrap();
        assert_ne!(a["createdAt"], b["createdAt"]);
        assert_ne!(a["createdAt"], "2024-10-07T08:10:07.558Z");
        assert!(super::Fresh::default().apply(b"[1]").is_err());
    }
}
