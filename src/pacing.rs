//! Per-destination pacing: each destination has its own rate limiter
//! (governor), so a burst arrives spaced out instead of bounced with 429s,
//! and a destination that answered 429 (or said it has no requests left)
//! is paused as a whole. Other destinations never wait for a paced one.

//!
//! Time is tokio's ([`TokioClock`] for the limiter, `tokio::time` for
//! pauses and waits), so the tests run it paused and assert exact spacing.

use crate::config::Rate;
use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::{Quota, RateLimiter};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// governor's clock on tokio's time (paused in tests, the monotonic clock
/// otherwise).
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    type Instant = std::time::Instant;

    fn now(&self) -> Self::Instant {
        Instant::now().into_std()
    }
}

type Limiter = RateLimiter<
    governor::state::NotKeyed,
    governor::state::InMemoryState,
    TokioClock,
    NoOpMiddleware<std::time::Instant>,
>;

/// One destination's pace.
pub struct Pace {
    rate: Option<Rate>,
    limiter: Option<Limiter>,
    state: Mutex<PaceState>,
}

#[derive(Default)]
struct PaceState {
    paused_until: Option<Instant>,
    /// The latest slot handed to a postponed delivery, so postponed
    /// deliveries come back one slot apart instead of all at once.
    reserved_until: Option<Instant>,
}

/// What a delivery should do about its destination's pace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// Send now.
    Go,
    /// Come back after this long.
    Later(Duration),
}

impl Pace {
    fn new(rate: Option<Rate>) -> Pace {
        let limiter = rate.and_then(|r| {
            // Evenly spaced, no burst: `count` per `per` in any window.
            Quota::with_period(r.interval())
                .map(|q| RateLimiter::direct_with_clock(q.allow_burst(NonZeroU32::MIN), TokioClock))
        });
        Pace { rate, limiter, state: Mutex::new(PaceState::default()) }
    }

    /// Waits up to `max_wait` for this destination's turn.
    pub async fn turn(&self, max_wait: Duration) -> Turn {
        let deadline = Instant::now() + max_wait;
        loop {
            let paused = self.state.lock().expect("pace lock").paused_until.filter(|p| *p > Instant::now());
            if let Some(until) = paused {
                let wait = until - Instant::now();
                if Instant::now() + wait > deadline {
                    return Turn::Later(self.reserve(until));
                }
                tokio::time::sleep(wait).await;
                continue;
            }
            let Some(limiter) = &self.limiter else { return Turn::Go };
            match limiter.check() {
                Ok(()) => return Turn::Go,
                Err(not_until) => {
                    let wait = not_until.wait_time_from(TokioClock.now());
                    if Instant::now() + wait > deadline {
                        return Turn::Later(self.reserve(Instant::now() + wait));
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// The next free slot from `earliest` on, for a postponed delivery.
    fn reserve(&self, earliest: Instant) -> Duration {
        let interval = self.rate.map(|r| r.interval()).unwrap_or(Duration::from_millis(100));
        let mut state = self.state.lock().expect("pace lock");
        let slot = match state.reserved_until {
            Some(r) if r >= earliest => r + interval,
            _ => earliest,
        };
        state.reserved_until = Some(slot);
        slot.saturating_duration_since(Instant::now())
    }

    /// How long the destination stays paused (a receiver asked for a
    /// break), if it is.
    pub fn paused_for(&self) -> Option<Duration> {
        let paused = self.state.lock().expect("pace lock").paused_until;
        paused.and_then(|p| p.checked_duration_since(Instant::now())).filter(|d| !d.is_zero())
    }

    /// Pauses the whole destination for `for_`.
    pub fn pause(&self, for_: Duration) {
        let until = Instant::now() + for_;
        let mut state = self.state.lock().expect("pace lock");
        if state.paused_until.is_none_or(|p| p < until) {
            state.paused_until = Some(until);
        }
    }
}

/// Every destination's pace, kept across config reloads while a
/// destination's rate stays the same.
#[derive(Default)]
pub struct Pacer {
    paces: Mutex<HashMap<String, Arc<Pace>>>,
}

impl Pacer {
    /// How long `name` stays paused, if it is.
    pub fn paused_for(&self, name: &str) -> Option<Duration> {
        self.paces.lock().expect("pacer lock").get(name).and_then(|p| p.paused_for())
    }

    pub fn for_destination(&self, name: &str, rate: Option<Rate>) -> Arc<Pace> {
        let mut paces = self.paces.lock().expect("pacer lock");
        match paces.get(name) {
            Some(p) if p.rate == rate => p.clone(),
            _ => {
                let pace = Arc::new(Pace::new(rate));
                paces.insert(name.to_owned(), pace.clone());
                pace
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(count: u32, ms: u64) -> Option<Rate> {
        Some(Rate { count, per: Duration::from_millis(ms) })
    }

    #[tokio::test(start_paused = true)]
    async fn sends_are_spaced_by_the_rate() {
        let pace = Pace::new(rate(2, 200));
        let start = Instant::now();
        let mut at = Vec::new();
        for _ in 0..4 {
            assert_eq!(pace.turn(Duration::from_secs(5)).await, Turn::Go);
            at.push(start.elapsed());
        }
        // One per 100 ms, the first at once.
        let ms: Vec<u128> = at.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [0, 100, 200, 300]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_turn_too_far_away_is_a_later_slot_and_slots_do_not_collide() {
        let pace = Pace::new(rate(1, 1000));
        assert_eq!(pace.turn(Duration::ZERO).await, Turn::Go);
        assert_eq!(pace.turn(Duration::ZERO).await, Turn::Later(Duration::from_secs(1)));
        // The next postponed delivery gets the slot after, not the same one.
        assert_eq!(pace.turn(Duration::ZERO).await, Turn::Later(Duration::from_secs(2)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_the_destination_and_unlimited_ones_go_at_once() {
        let pace = Pace::new(None);
        assert_eq!(pace.turn(Duration::ZERO).await, Turn::Go);
        pace.pause(Duration::from_secs(5));
        assert_eq!(pace.turn(Duration::from_millis(10)).await, Turn::Later(Duration::from_secs(5)));
        let short = Pace::new(None);
        short.pause(Duration::from_millis(100));
        let start = Instant::now();
        assert_eq!(short.turn(Duration::from_secs(1)).await, Turn::Go);
        assert_eq!(start.elapsed(), Duration::from_millis(100));
        // A shorter pause never cuts a longer one short.
        short.pause(Duration::from_secs(3));
        short.pause(Duration::from_secs(1));
        assert_eq!(short.turn(Duration::ZERO).await, Turn::Later(Duration::from_secs(3)));
    }

    #[test]
    fn paces_survive_reloads_with_the_same_rate() {
        let pacer = Pacer::default();
        let a = pacer.for_destination("churn", rate(1, 1000));
        let b = pacer.for_destination("churn", rate(1, 1000));
        assert!(Arc::ptr_eq(&a, &b));
        let c = pacer.for_destination("churn", rate(2, 1000));
        assert!(!Arc::ptr_eq(&a, &c));
    }
}
