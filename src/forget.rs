//! Erasure requests: everything the relay holds about one customer goes
//! (flows, events, their deliveries and attempts: the payloads sent and
//! the receivers' answers), and the digests that quote the customer are
//! written again without the quote. A customer is named by id, or by an
//! e-mail address: then every id that address appears under is erased.
//! Once done, the store's files hold none of it ([`Store::scrub`]).

use crate::loaded_config::LoadedConfig;
use crate::store::{Forgotten, Store, StoreError};
use serde::Serialize;
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
        forgotten.digests = crate::digest::forget_customer(loaded, store, &key).await?;
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
