//! Erasure requests: everything the relay holds about one customer goes
//! (flows, events, their deliveries and attempts), and the digests that
//! quote the customer are written again without the quote.

use crate::loaded_config::LoadedConfig;
use crate::store::{Forgotten, Store, StoreError};

/// Forgets the customer an operator named (by id, or by e-mail address in
/// any case), under each key the relay may keep it.
pub async fn forget(loaded: &LoadedConfig, store: &dyn Store, typed: &str) -> Result<Forgotten, StoreError> {
    let mut all = Forgotten::default();
    for key in crate::store::typed_keys(typed) {
        let gone = store.forget(&key).await?;
        all.flows += gone.flows;
        all.events += gone.events;
        all.deliveries += gone.deliveries;
        all.attempts += gone.attempts;
        all.digests += crate::digest::forget_customer(loaded, store, &key).await?;
    }
    Ok(all)
}
