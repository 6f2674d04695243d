//! A [`Queue`] in memory, on tokio's clock, for unit tests of the
//! dispatcher: it keeps the engines' rules (an attempt counts when
//! claimed, a claim is due again when its lease runs out, a record under a
//! lost lease changes nothing, a postponed claim gives its attempt back)
//! and can be told to refuse records, as a failing store does.

use super::{
    new_id, AttemptRecord, DeliveryId, Enqueued, Job, NewDelivery, NewEvent, NextStep, Queue, Recorded, Status,
    StoreError,
};
use async_trait::async_trait;
use serde_json::Value;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// One delivery as the memory queue keeps it.
#[derive(Debug, Clone)]
pub struct Kept {
    pub id: DeliveryId,
    pub event_id: String,
    pub dedup_key: String,
    pub event: Arc<Value>,
    pub destination: String,
    pub routes: Vec<String>,
    pub payload: Option<String>,
    pub status: Status,
    /// Attempts counted (claims, less the ones postponed).
    pub attempts: u32,
    /// When it is due (for a claimed delivery: when its lease runs out).
    pub due: Instant,
    /// The claim it is under.
    pub lease: Option<String>,
    /// Every attempt recorded, with the time it was recorded at.
    pub log: Vec<(Instant, AttemptRecord)>,
    pub last_error: Option<String>,
}

impl Kept {
    /// `delivery` of the event `event_id`, just queued: due now.
    fn new(event_id: String, dedup_key: String, event: Arc<Value>, delivery: NewDelivery) -> Kept {
        Kept {
            id: new_id(),
            event_id,
            dedup_key,
            event,
            destination: delivery.destination,
            routes: delivery.routes,
            payload: delivery.payload,
            status: Status::Pending,
            attempts: 0,
            due: Instant::now(),
            lease: None,
            log: Vec::new(),
            last_error: None,
        }
    }
}

#[derive(Default)]
struct Contents {
    deliveries: Vec<Kept>,
    keys: HashSet<String>,
    refuse_records: usize,
}

#[derive(Default)]
pub struct MemoryQueue {
    kept: Mutex<Contents>,
}

impl MemoryQueue {
    /// A delivery of `event` to `destination`, due now; its id.
    pub fn add(&self, destination: &str, event: Value) -> DeliveryId {
        let delivery = NewDelivery::rendered_later(destination.to_owned(), vec!["test".into()]);
        let kept = Kept::new(new_id(), new_id(), Arc::new(event), delivery);
        let id = kept.id.clone();
        self.kept.lock().unwrap().deliveries.push(kept);
        id
    }

    /// The delivery `id` as kept now.
    pub fn get(&self, id: &str) -> Kept {
        self.kept.lock().unwrap().deliveries.iter().find(|d| d.id == id).cloned().expect("a kept delivery")
    }

    /// The next `n` records are refused, as by a store that cannot write.
    pub fn refuse_records(&self, n: usize) {
        self.kept.lock().unwrap().refuse_records = n;
    }
}

#[async_trait]
impl Queue for MemoryQueue {
    async fn enqueue(&self, event: NewEvent, deliveries: Vec<NewDelivery>) -> Result<Enqueued, StoreError> {
        let mut kept = self.kept.lock().unwrap();
        if !kept.keys.insert(event.dedup_key.clone()) {
            return Ok(Enqueued::Duplicate);
        }
        let event_id = new_id();
        let body: Arc<Value> = Arc::new(serde_json::from_str(&event.body).unwrap_or(Value::Null));
        let mut ids = Vec::new();
        for d in deliveries {
            let delivery = Kept::new(event_id.clone(), event.dedup_key.clone(), body.clone(), d);
            ids.push(delivery.id.clone());
            kept.deliveries.push(delivery);
        }
        Ok(Enqueued::Accepted { event_id, deliveries: ids })
    }

    async fn claim_due(&self, limit: usize, lease: Duration) -> Result<Vec<Job>, StoreError> {
        let now = Instant::now();
        let mut kept = self.kept.lock().unwrap();
        let mut due: Vec<&mut Kept> =
            kept.deliveries.iter_mut().filter(|d| d.status == Status::Pending && d.due <= now).collect();
        due.sort_by_key(|d| d.due);
        let owner = new_id();
        Ok(due
            .into_iter()
            .take(limit)
            .map(|d| {
                d.attempts += 1;
                d.due = now + lease;
                d.lease = Some(owner.clone());
                Job {
                    id: d.id.clone(),
                    event_id: d.event_id.clone(),
                    dedup_key: d.dedup_key.clone(),
                    event: d.event.clone(),
                    destination: d.destination.clone(),
                    routes: d.routes.clone(),
                    attempt: d.attempts,
                    lease: owner.clone(),
                    payload: d.payload.clone(),
                }
            })
            .collect())
    }

    async fn next_due(&self) -> Result<Option<Duration>, StoreError> {
        let now = Instant::now();
        let kept = self.kept.lock().unwrap();
        let earliest = kept.deliveries.iter().filter(|d| d.status == Status::Pending).map(|d| d.due).min();
        Ok(earliest.map(|due| due.saturating_duration_since(now)))
    }

    async fn finish_attempt(&self, job: &Job, attempt: AttemptRecord, step: NextStep) -> Result<Recorded, StoreError> {
        let now = Instant::now();
        let mut kept = self.kept.lock().unwrap();
        if kept.refuse_records > 0 {
            kept.refuse_records -= 1;
            return Err(StoreError::Unavailable("refused on purpose".into()));
        }
        let d = kept.deliveries.iter_mut().find(|d| d.id == job.id).expect("a kept delivery");
        d.log.push((now, attempt.clone()));
        if d.lease.as_deref() != Some(job.lease.as_str()) {
            return Ok(Recorded::LeaseLost);
        }
        d.lease = None;
        d.last_error = attempt.error;
        match step {
            NextStep::Delivered => d.status = Status::Delivered,
            NextStep::RetryIn(delay) => d.due = now + delay,
            NextStep::Dead { reason } => {
                d.status = Status::Dead;
                d.last_error = Some(reason);
            }
        }
        Ok(Recorded::Done)
    }

    async fn extend_lease(&self, job: &Job, lease: Duration) -> Result<bool, StoreError> {
        let mut kept = self.kept.lock().unwrap();
        let d = kept.deliveries.iter_mut().find(|d| d.id == job.id).expect("a kept delivery");
        if d.lease.as_deref() != Some(job.lease.as_str()) {
            return Ok(false);
        }
        d.due = Instant::now() + lease;
        Ok(true)
    }

    async fn postpone(&self, job: &Job, delay: Duration) -> Result<(), StoreError> {
        let mut kept = self.kept.lock().unwrap();
        let d = kept.deliveries.iter_mut().find(|d| d.id == job.id).expect("a kept delivery");
        if d.lease.as_deref() == Some(job.lease.as_str()) {
            d.attempts -= 1;
            d.lease = None;
            d.due = Instant::now() + delay;
        }
        Ok(())
    }
}
