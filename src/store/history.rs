//! Customers' histories as the store keeps them (counts in one row per
//! customer, flows newest first), and erasure: everything kept about a
//! customer, found by id or by e-mail address, goes.

use super::error::StoreError;
use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;

/// History and erasure.
#[async_trait]
pub trait History: Send + Sync + 'static {
    /// What is kept of the customer's flows: counts over all of them (read
    /// from one row, whatever their number) and the `recent` newest, newest
    /// first.
    async fn history(&self, customer: &str, recent: usize) -> Result<crate::history::EarlierFlows, StoreError>;

    /// Erases everything kept about a customer: flows, events, their
    /// deliveries (rendered payloads included) and attempts.
    async fn forget(&self, customer: &str) -> Result<Forgotten, StoreError>;

    /// The events that name the e-mail address `email` in
    /// `customer.email` or `subscription.customer.email`, in any case: the
    /// customer ids (history keys) they are kept under, and those kept
    /// under none. Reads every event: erasure is rare.
    async fn events_with_email(&self, email: &str) -> Result<EmailMatches, StoreError>;

    /// Erases the events `ids` (kept under no customer), their deliveries
    /// and attempts.
    async fn forget_events(&self, ids: &[String]) -> Result<Forgotten, StoreError>;

    /// Makes what was erased unreadable from the store's files: SQLite
    /// overwrites deleted content as it deletes it, and here moves its log
    /// into the database and empties the log. PostgreSQL keeps deleted rows
    /// in its files until VACUUM: nothing to do here.
    async fn scrub(&self) -> Result<(), StoreError>;
}

/// What [`History::events_with_email`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmailMatches {
    /// The customer ids the address appears under, sorted.
    pub customers: Vec<String>,
    /// Events that name the address but no customer id, sorted.
    pub events: Vec<String>,
}

/// What [`History::forget`] erased.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Forgotten {
    pub flows: u64,
    pub events: u64,
    pub deliveries: u64,
    pub attempts: u64,
    /// Digests written again without the customer's quotes.
    pub digests: u64,
}

/// Whether the event `body` names the e-mail address `email` (in any case)
/// as its customer's, or its subscription's customer's.
pub fn names_email(body: &[u8], email: &str) -> bool {
    let Ok(event) = serde_json::from_slice::<Value>(body) else { return false };
    let wanted = email.trim().to_lowercase();
    let named = [&event["customer"]["email"], &event["subscription"]["customer"]["email"]]
        .into_iter()
        .filter_map(Value::as_str)
        .any(|e| e.trim().to_lowercase() == wanted);
    named
}

/// The history key of what an operator typed: as typed, or lower-cased for
/// an e-mail address (the relay keys customers known only by their
/// address that way).
pub fn typed_keys(typed: &str) -> Vec<String> {
    let typed = typed.trim().to_owned();
    let lower = typed.to_lowercase();
    if lower != typed && typed.contains('@') {
        vec![typed, lower]
    } else {
        vec![typed]
    }
}

/// The flows of the customer an operator named (by id, or by e-mail
/// address in any case), newest first, with the key they are kept under.
pub async fn customer_history(
    store: &dyn History,
    typed: &str,
) -> Result<(String, Vec<crate::history::Flow>), StoreError> {
    let keys = typed_keys(typed);
    for key in &keys {
        let flows = store.history(key, usize::MAX).await?.recent;
        if !flows.is_empty() {
            return Ok((key.clone(), flows));
        }
    }
    Ok((keys[0].clone(), Vec::new()))
}
