//! Erasure requests: everything the relay holds about one customer goes
//! (flows, events, their deliveries and attempts: the payloads sent and
//! the receivers' answers), and the digests that quote the customer are
//! written again without the quote. A customer is named by id, or by an
//! e-mail address: then every id that address appears under is erased.
//! Once done, the store's files hold none of it ([`History::scrub`](crate::store::History::scrub)).

use crate::channels::Payload;
use crate::loaded_config::LoadedConfig;
use crate::store::{Forgotten, Store, StoreError};
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;

/// What was erased under one customer id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForgottenCustomer {
    /// The id (or, for a customer known by its address alone, the
    /// lower-cased address) the relay keeps the customer under.
    pub customer: String,
    #[serde(flatten)]
    pub forgotten: Forgotten,
}

/// What an erasure request erased.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Erasure {
    /// Per customer id, what was erased under it; empty when the relay
    /// held nothing about the customer.
    pub customers: Vec<ForgottenCustomer>,
    /// Why the store's files may still hold erased text, when making it
    /// unreadable failed (everything was erased all the same).
    pub unscrubbed: Option<String>,
}

/// Forgets the customer an operator named (by id, or by e-mail address in
/// any case): every id the address appears under, and the events that
/// name it under no id (reported under the address).
pub async fn forget(loaded: &Arc<LoadedConfig>, store: &dyn Store, typed: &str) -> Result<Erasure, StoreError> {
    let mut keys = crate::store::typed_keys(typed);
    let mut unkeyed = Vec::new();
    if typed.contains('@') {
        let found = store.events_with_email(typed).await?;
        keys.extend(found.customers);
        unkeyed = found.events;
    }
    keys.sort();
    keys.dedup();
    let mut erased = Vec::new();
    for key in keys {
        let mut forgotten = store.forget(&key).await?;
        forgotten.digests = forget_in_digests(loaded, store, &key).await?;
        if forgotten != Forgotten::default() {
            erased.push(ForgottenCustomer { customer: key, forgotten });
        }
    }
    if !unkeyed.is_empty() {
        let gone = store.forget_events(&unkeyed).await?;
        let address = typed.trim().to_lowercase();
        match erased.iter_mut().find(|e| e.customer == address) {
            Some(e) => e.forgotten = sum([&e.forgotten, &gone]),
            None => {
                erased.push(ForgottenCustomer { customer: address, forgotten: gone });
                erased.sort_by(|a, b| a.customer.cmp(&b.customer));
            }
        }
    }
    let unscrubbed = match erased.is_empty() {
        true => None,
        false => store.scrub().await.err().map(|e| e.to_string()),
    };
    Ok(Erasure { customers: erased, unscrubbed })
}

/// The sum of what was erased.
pub fn total(erasure: &Erasure) -> Forgotten {
    sum(erasure.customers.iter().map(|e| &e.forgotten))
}

fn sum<'a>(all: impl IntoIterator<Item = &'a Forgotten>) -> Forgotten {
    let mut total = Forgotten::default();
    for f in all {
        total.flows += f.flows;
        total.events += f.events;
        total.deliveries += f.deliveries;
        total.attempts += f.attempts;
        total.digests += f.digests;
    }
    total
}

/// Takes `customer`'s quotes out of every digest still stored (its figures,
/// the payloads of its deliveries, rendered again without them, and what
/// its attempts recorded), for `forget`. Returns how many digests changed.
async fn forget_in_digests(loaded: &Arc<LoadedConfig>, store: &dyn Store, customer: &str) -> Result<u64, StoreError> {
    let mut changed = 0;
    for stored in store.digests_quoting(customer).await? {
        let mut figures = stored.figures;
        if let Some(quotes) = figures.get_mut("feedback").and_then(Value::as_array_mut) {
            let before = quotes.len();
            quotes.retain(|q| !crate::store::quote_of(q, customer));
            let removed = (before - quotes.len()) as u64;
            figures["more"] = serde_json::json!(figures["more"].as_u64().unwrap_or(0) + removed);
        }
        // Without templates to write it again with (the digest is no
        // longer configured), what was rendered goes, and a replay says
        // why it cannot send.
        let (for_render, digest, context) = (loaded.clone(), stored.digest.clone(), figures.clone());
        let rendered = crate::render::off_workers(move || {
            for_render
                .digest(&digest)
                .map(|d| d.stored_payloads(|n| for_render.destination(n), &context))
                .unwrap_or_default()
        })
        .await;
        let why = match &rendered {
            Ok(_) => "it is no longer configured".to_owned(),
            Err(e) => format!("it could not be rendered again: {e}"),
        };
        let payloads = rendered.unwrap_or_default();
        let otherwise = Payload::stored_failure(&format!(
            "digest \"{}\" was written again to forget a customer, and {why}",
            stored.digest
        ));
        let rewrite = crate::store::DigestRewrite {
            event_id: stored.event_id,
            figures: figures.to_string(),
            payloads,
            otherwise,
        };
        store.rewrite_digest(rewrite).await?;
        changed += 1;
    }
    Ok(changed)
}
