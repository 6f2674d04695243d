//! `deliveries list|show|replay|purge`: the store a running relay uses,
//! from beside it.

use super::{one_line, shown, DeliveriesCommand, StoreCommand};
use crate::store::{Inspect, ListFilter, Status};
use anyhow::bail;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

pub(super) async fn run(config: &Path, command: &DeliveriesCommand) -> anyhow::Result<ExitCode> {
    let StoreCommand { store, .. } = StoreCommand::open(config).await?;
    let mut out = std::io::stdout().lock();
    match command {
        DeliveriesCommand::List { status, destination, since, limit } => {
            let since = since.as_deref().map(crate::config::parse_duration).transpose().map_err(anyhow::Error::msg)?;
            let filter = ListFilter {
                status: *status,
                destination: destination.clone(),
                since,
                limit: *limit,
                ..Default::default()
            };
            list(&mut out, store.as_ref(), &filter).await?;
        }
        DeliveriesCommand::Show { id } => show(&mut out, store.as_ref(), id).await?,
        DeliveriesCommand::Replay { ids, dead, destination } => {
            if *dead {
                let n = store.replay_dead(destination.as_deref()).await?;
                writeln!(out, "replayed {n} dead deliveries")?;
            } else {
                replay(&mut out, store.as_ref(), ids).await?;
            }
        }
        DeliveriesCommand::Purge { dead: _, older_than } => {
            let older_than = crate::config::parse_duration(older_than).map_err(anyhow::Error::msg)?;
            let n = store.purge_dead(older_than).await?;
            writeln!(out, "purged {n} dead deliveries")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `deliveries list`: one line per delivery.
async fn list(out: &mut impl Write, store: &dyn Inspect, filter: &ListFilter) -> anyhow::Result<()> {
    let rows = store.list(filter).await?;
    if rows.is_empty() {
        writeln!(out, "no deliveries")?;
    }
    for d in rows {
        writeln!(
            out,
            "{}  {}  {:<14} {:<16} {:<16} {:<9} {:>2}  {}",
            d.id,
            d.created_at.format("%Y-%m-%d %H:%M:%S"),
            d.destination,
            d.routes.join(","),
            d.customer.as_deref().map(shown).unwrap_or_else(|| "-".into()),
            d.status.as_str(),
            d.attempts,
            d.last_error.as_deref().map(|e| one_line(e.as_bytes())).unwrap_or_default(),
        )?;
    }
    Ok(())
}

/// `deliveries show`: the delivery, its attempts, its event and facts, and
/// the payload last sent.
async fn show(out: &mut impl Write, store: &dyn Inspect, id: &str) -> anyhow::Result<()> {
    let Some(d) = store.show(id).await? else {
        bail!("no delivery \"{id}\"");
    };
    let s = &d.summary;
    writeln!(out, "delivery     {}", s.id)?;
    writeln!(out, "status       {} after {} attempt(s)", s.status.as_str(), s.attempts)?;
    writeln!(out, "destination  {} (routes: {})", s.destination, s.routes.join(", "))?;
    writeln!(
        out,
        "event        {} ({}, customer {})",
        s.event_id,
        s.outcome.as_deref().map(shown).unwrap_or_else(|| "-".into()),
        s.customer.as_deref().map(shown).unwrap_or_else(|| "-".into())
    )?;
    writeln!(out, "created      {}", s.created_at.to_rfc3339())?;
    if s.status == Status::Pending {
        writeln!(out, "next attempt {}", s.next_attempt_at.to_rfc3339())?;
    }
    if let Some(e) = &s.last_error {
        writeln!(out, "last error   {}", shown(e))?;
    }
    writeln!(out, "\nattempts:")?;
    for a in &d.attempt_log {
        let status = a.status_code.map(|c| c.to_string()).unwrap_or_else(|| "-".into());
        let what = a.error.as_deref().map(str::as_bytes).or(a.response.as_deref()).map(one_line).unwrap_or_default();
        writeln!(
            out,
            "  #{:<2} {}  status {:<4} {:>6} ms  {}",
            a.number,
            a.at.to_rfc3339(),
            status,
            a.latency_ms,
            what
        )?;
    }
    writeln!(out, "\nevent:\n{}", serde_json::to_string_pretty(&d.event)?)?;
    writeln!(out, "\nmrr and history at receipt:\n{}", serde_json::to_string_pretty(&d.facts)?)?;
    if let Some(p) = &d.last_payload {
        writeln!(out, "\npayload of the last attempt:\n{}", shown(p))?;
    }
    Ok(())
}

/// `deliveries replay ID...`: each one named, and an error naming those
/// that do not exist.
async fn replay(out: &mut impl Write, store: &dyn Inspect, ids: &[String]) -> anyhow::Result<()> {
    let replayed = store.replay(ids).await?;
    for r in &replayed {
        if r.after_attempt_under_way {
            writeln!(out, "replayed {} (after the attempt under way, which is not interrupted)", r.id)?;
        } else {
            writeln!(out, "replayed {}", r.id)?;
        }
    }
    let missing: Vec<&String> =
        ids.iter().filter(|id| !replayed.iter().any(|r| r.id == id.to_ascii_lowercase())).collect();
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(|m| format!("\"{m}\"")).collect();
        bail!("no delivery {}", list.join(", "));
    }
    Ok(())
}
