//! `history CUSTOMER` and `forget CUSTOMER`.

use super::{shown, StoreCommand};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

pub(super) async fn history(config: &Path, customer: &str, json: bool) -> anyhow::Result<ExitCode> {
    let StoreCommand { loaded, store, .. } = StoreCommand::open(config).await?;
    let (key, flows) = crate::store::customer_history(store.as_ref(), customer).await?;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&crate::http::customers::history_json(&key, &flows))?)?;
        return Ok(ExitCode::SUCCESS);
    }
    if flows.is_empty() {
        writeln!(
            out,
            "no flows for customer \"{}\" in the last {}",
            shown(&key),
            crate::text::duration(loaded.config.history.retention)
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out, "customer \"{}\": {} flow(s), newest first", shown(&key), flows.len())?;
    for f in &flows {
        let value = match (f.monthly, &f.currency) {
            (Some(m), c) => crate::render::helpers::money(m, c.as_deref().unwrap_or("")) + "/month",
            (None, _) => "-".into(),
        };
        writeln!(
            out,
            "{}  {:<9} {:<20} {:>14}  {:<28} {}",
            f.at.format("%Y-%m-%d %H:%M"),
            f.outcome.as_deref().map(shown).unwrap_or_else(|| "-".into()),
            f.plan.as_deref().map(shown).unwrap_or_else(|| "-".into()),
            value,
            f.motivator.as_deref().map(shown).unwrap_or_else(|| "-".into()),
            f.offer.as_deref().map(|o| format!("accepted {}", shown(o))).unwrap_or_default(),
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn forget(config: &Path, customer: &str) -> anyhow::Result<ExitCode> {
    let StoreCommand { loaded, store, .. } = StoreCommand::open(config).await?;
    let erasure = crate::forget::forget(&loaded, store.as_ref(), customer).await?;
    let mut out = std::io::stdout().lock();
    if erasure.customers.is_empty() {
        writeln!(
            out,
            "found nothing to forget for \"{}\": no event, flow or digest of the relay names it",
            shown(customer.trim())
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    for e in &erasure.customers {
        let gone = &e.forgotten;
        writeln!(
            out,
            "forgot customer \"{}\": {} flow(s), {} event(s), {} deliveries, {} attempt(s); {} digest(s) written again without their quotes",
            shown(&e.customer),
            gone.flows,
            gone.events,
            gone.deliveries,
            gone.attempts,
            gone.digests
        )?;
    }
    if let Some(why) = &erasure.unscrubbed {
        eprintln!(
            "warning: erased, but the store's files may still hold the erased text until it is checkpointed: {why}"
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
