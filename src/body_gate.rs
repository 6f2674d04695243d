//! How many request bodies each client is sending at once: a client gets
//! a share of the connection cap ([`BodyGate::per_client`]) for bodies
//! under way, so one that announces bodies and never sends them cannot
//! hold every connection (see [`crate::http::body`]).

use crate::auth::ClientKey;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How many bodies are under way, per client.
#[derive(Debug, Default)]
pub struct BodyGate {
    reading: Mutex<HashMap<ClientKey, usize>>,
}

/// A body under way: counted against its client until dropped.
pub struct Reading {
    gate: Arc<BodyGate>,
    client: ClientKey,
}

impl Drop for Reading {
    fn drop(&mut self) {
        let mut reading = self.gate.reading.lock().expect("not poisoned");
        if let Some(n) = reading.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                reading.remove(&self.client);
            }
        }
    }
}

impl BodyGate {
    /// A client's share of `max_connections`: a quarter, and at least 2.
    pub fn per_client(max_connections: usize) -> usize {
        (max_connections / 4).max(2)
    }

    /// Counts a body of `client` as under way, unless it has `limit`
    /// under way already.
    pub fn enter(self: &Arc<Self>, client: ClientKey, limit: usize) -> Option<Reading> {
        let mut reading = self.reading.lock().expect("not poisoned");
        let n = reading.entry(client).or_insert(0);
        if *n >= limit {
            return None;
        }
        *n += 1;
        Some(Reading { gate: self.clone(), client })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_share_and_no_more_until_one_ends() {
        let gate = Arc::new(BodyGate::default());
        let a = ClientKey::of("203.0.113.9".parse().unwrap());
        let b = ClientKey::of("198.51.100.1".parse().unwrap());
        assert_eq!(BodyGate::per_client(8), 2);
        assert_eq!(BodyGate::per_client(1024), 256);
        let first = gate.enter(a, 2).unwrap();
        let _second = gate.enter(a, 2).unwrap();
        assert!(gate.enter(a, 2).is_none());
        assert!(gate.enter(b, 2).is_some(), "another client has its own share");
        drop(first);
        assert!(gate.enter(a, 2).is_some());
    }
}
