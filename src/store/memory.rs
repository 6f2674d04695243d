//! An in-process queue: fast, and gone with the process. Used by tests and
//! as the reference behaviour for the durable stores.

use super::*;
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

/// Counts of deliveries by state, for tests and diagnostics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryStats {
    pub pending: usize,
    pub in_flight: usize,
    pub delivered: usize,
    pub dead: usize,
    pub attempts: usize,
}

struct Entry {
    job: Job,
    due: DateTime<Utc>,
}

#[derive(Default)]
struct Inner {
    next_id: DeliveryId,
    pending: HashMap<DeliveryId, Entry>,
    due: BTreeSet<(DateTime<Utc>, DeliveryId)>,
    in_flight: HashMap<DeliveryId, Entry>,
    delivered: usize,
    dead: Vec<(DeliveryId, String, String)>,
    attempts: usize,
}

#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn stats(&self) -> MemoryStats {
        let inner = self.inner.lock().expect("memory store lock");
        MemoryStats {
            pending: inner.pending.len(),
            in_flight: inner.in_flight.len(),
            delivered: inner.delivered,
            dead: inner.dead.len(),
            attempts: inner.attempts,
        }
    }

    /// Dead deliveries: (id, destination, reason).
    pub fn dead(&self) -> Vec<(DeliveryId, String, String)> {
        self.inner.lock().expect("memory store lock").dead.clone()
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn enqueue(&self, event: NewEvent, deliveries: Vec<NewDelivery>) -> Result<Enqueued, StoreError> {
        let mut inner = self.inner.lock().expect("memory store lock");
        let mut ids = Vec::with_capacity(deliveries.len());
        for d in deliveries {
            inner.next_id += 1;
            let id = inner.next_id;
            let job = Job {
                id,
                event_key: event.key.clone(),
                event: event.raw.clone(),
                destination: d.destination,
                routes: d.routes,
                attempts: 0,
            };
            inner.due.insert((event.received_at, id));
            inner.pending.insert(id, Entry { job, due: event.received_at });
            ids.push(id);
        }
        Ok(Enqueued::Accepted { deliveries: ids })
    }

    async fn claim_due(&self, limit: usize) -> Result<Vec<Job>, StoreError> {
        let now = Utc::now();
        let mut inner = self.inner.lock().expect("memory store lock");
        let ready: Vec<(DateTime<Utc>, DeliveryId)> =
            inner.due.iter().take_while(|(due, _)| *due <= now).take(limit).copied().collect();
        let mut jobs = Vec::with_capacity(ready.len());
        for key in ready {
            inner.due.remove(&key);
            if let Some(entry) = inner.pending.remove(&key.1) {
                jobs.push(entry.job.clone());
                inner.in_flight.insert(key.1, entry);
            }
        }
        Ok(jobs)
    }

    async fn finish_attempt(&self, job: &Job, _attempt: AttemptRecord, state: JobState) -> Result<(), StoreError> {
        let mut inner = self.inner.lock().expect("memory store lock");
        inner.attempts += 1;
        let Some(mut entry) = inner.in_flight.remove(&job.id) else {
            return Err(StoreError(format!("delivery {} is not claimed", job.id)));
        };
        entry.job.attempts = job.attempts + 1;
        match state {
            JobState::Delivered => inner.delivered += 1,
            JobState::Dead { reason } => inner.dead.push((job.id, job.destination.clone(), reason)),
            JobState::RetryAt(due) => {
                entry.due = due;
                inner.due.insert((due, job.id));
                inner.pending.insert(job.id, entry);
            }
        }
        Ok(())
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let inner = self.inner.lock().expect("memory store lock");
        Ok(inner.due.iter().next().map(|(due, _)| *due))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(at: DateTime<Utc>) -> NewEvent {
        NewEvent {
            key: "k".into(),
            raw: Arc::new(serde_json::json!({})),
            outcome: None,
            customer: None,
            received_at: at,
        }
    }

    fn attempt() -> AttemptRecord {
        AttemptRecord {
            at: Utc::now(),
            status: None,
            latency: Duration::ZERO,
            response: None,
            error: None,
            payload: None,
        }
    }

    #[tokio::test]
    async fn claimed_jobs_are_not_handed_out_twice_and_retries_come_back_when_due() {
        let store = MemoryStore::new();
        let now = Utc::now();
        let deliveries = vec![
            NewDelivery { destination: "a".into(), routes: vec!["r".into()] },
            NewDelivery { destination: "b".into(), routes: vec!["r".into()] },
        ];
        store.enqueue(event(now), deliveries).await.unwrap();
        let jobs = store.claim_due(10).await.unwrap();
        assert_eq!(jobs.len(), 2);
        assert!(store.claim_due(10).await.unwrap().is_empty());
        let later = now + chrono::Duration::hours(1);
        store.finish_attempt(&jobs[0], attempt(), JobState::RetryAt(later)).await.unwrap();
        store.finish_attempt(&jobs[1], attempt(), JobState::Delivered).await.unwrap();
        assert!(store.claim_due(10).await.unwrap().is_empty());
        assert_eq!(store.next_due().await.unwrap(), Some(later));
        let stats = store.stats();
        assert_eq!((stats.pending, stats.delivered, stats.attempts), (1, 1, 2));
        assert!(store.finish_attempt(&jobs[1], attempt(), JobState::Delivered).await.is_err());
    }
}
