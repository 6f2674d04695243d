//! `digest preview NAME [--at TIME]` and `digest send NAME`.

use super::DigestCommand;
use crate::store::DigestClaim;
use anyhow::Context;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

pub(super) async fn run(config: &Path, command: &DigestCommand) -> anyhow::Result<ExitCode> {
    let super::StoreCommand { loaded, store, .. } = {
        let opened = super::StoreCommand::open(config).await?;
        let (DigestCommand::Preview { name, .. } | DigestCommand::Send { name }) = command;
        opened.digest_loads(name)?;
        opened
    };
    let mut out = std::io::stdout().lock();
    match command {
        DigestCommand::Preview { name, at } => {
            let at = match at {
                Some(t) => chrono::DateTime::parse_from_rfc3339(t)
                    .with_context(|| format!("--at \"{t}\" is not an RFC 3339 time (e.g. 2026-12-01T09:00:00Z)"))?
                    .with_timezone(&chrono::Utc),
                None => store.now().await?,
            };
            let preview = crate::digest_scheduler::preview(&loaded, store.as_ref(), name, at).await?;
            writeln!(
                out,
                "digest \"{name}\": window {} to {} ({} events; nothing is sent)",
                preview.window.start.to_rfc3339(),
                preview.window.end.to_rfc3339(),
                preview.context["total"]
            )?;
            let mut failed = false;
            for (dest, payload) in &preview.payloads {
                writeln!(out, "\n== destination \"{dest}\"")?;
                match payload {
                    Ok(p) => writeln!(out, "{}", p.display())?,
                    Err(e) => {
                        failed = true;
                        writeln!(out, "cannot render: {e}")?;
                    }
                }
            }
            Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
        }
        DigestCommand::Send { name } => {
            let (window, claim) = crate::digest_scheduler::send_now(&loaded, store.as_ref(), name).await?;
            let span = format!("{} to {}", window.start.to_rfc3339(), window.end.to_rfc3339());
            match claim {
                DigestClaim::Queued { deliveries, .. } => {
                    writeln!(out, "queued digest \"{name}\" of {span}: {}", deliveries.join(", "))?;
                    Ok(ExitCode::SUCCESS)
                }
                DigestClaim::Taken(w) => {
                    let how = match w.event_id {
                        Some(id) => format!("sent already (event {id}; `deliveries list` shows its deliveries, `deliveries replay` sends one again)"),
                        None => "skipped already".into(),
                    };
                    writeln!(out, "digest \"{name}\" of {span} was {how}")?;
                    Ok(ExitCode::FAILURE)
                }
                DigestClaim::Skipped => Ok(ExitCode::SUCCESS),
            }
        }
    }
}
