//! The delay queue: applications to compare again at a later instant. One
//! entry per application (the earliest wins), so a burst of requeues costs
//! one wake-up, and no task sleeps per request.
//!
//! [`Delays`] is the pure core (no clock, no I/O); [`DelayQueue`] drives it
//! from one task that sleeps until the next deadline.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::Notify;

/// Deadlines by application; the earliest per application counts.
#[derive(Debug, Default)]
pub(super) struct Delays {
    /// (deadline, name); entries whose deadline is no longer the one in
    /// `due` are stale and skipped.
    heap: BinaryHeap<Reverse<(Instant, String)>>,
    /// The deadline of each scheduled application.
    due: HashMap<String, Instant>,
}

impl Delays {
    /// Schedules `name` at `at`, unless it is already due earlier. Returns
    /// whether the queue's next deadline moved earlier.
    pub(super) fn schedule(&mut self, name: &str, at: Instant) -> bool {
        if self.due.get(name).is_some_and(|current| *current <= at) {
            return false;
        }
        let earlier = self.next_deadline().is_none_or(|next| at < next);
        self.due.insert(name.to_string(), at);
        self.heap.push(Reverse((at, name.to_string())));
        earlier
    }

    /// The earliest deadline, if any.
    pub(super) fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, name))) = self.heap.peek() {
            if self.due.get(name) == Some(at) {
                return Some(*at);
            }
            self.heap.pop();
        }
        None
    }

    /// Removes and returns every application due at `now`, earliest first.
    pub(super) fn pop_due(&mut self, now: Instant) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(at) = self.next_deadline() {
            if at > now {
                break;
            }
            if let Some(Reverse((_, name))) = self.heap.pop() {
                self.due.remove(&name);
                out.push(name);
            }
        }
        out
    }

    /// How many applications are scheduled.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.due.len()
    }
}

/// [`Delays`] with one task that hands due applications to `ready`.
#[derive(Clone, Debug, Default)]
pub(super) struct DelayQueue {
    delays: Arc<Mutex<Delays>>,
    wake: Arc<Notify>,
}

impl DelayQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Delays> {
        self.delays
            .lock()
            .expect("delay queue lock is never poisoned")
    }

    /// Schedules `name` at `at` (the earliest request per name wins).
    pub(super) fn schedule(&self, name: &str, at: Instant) {
        if self.lock().schedule(name, at) {
            self.wake.notify_one();
        }
    }

    /// Runs until `cancel` fires, calling `ready` with each application when
    /// it is due.
    pub(super) async fn run(
        self,
        cancel: tokio_util::sync::CancellationToken,
        ready: impl Fn(&str),
    ) {
        loop {
            let (due, next) = {
                let mut delays = self.lock();
                let due = delays.pop_due(Instant::now());
                (due, delays.next_deadline())
            };
            for name in &due {
                ready(name);
            }
            let sleep = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = cancel.cancelled() => return,
                () = self.wake.notified() => {}
                () = sleep => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_earliest_request_per_application_wins() {
        let t0 = Instant::now();
        let mut delays = Delays::default();
        assert!(delays.schedule("a", t0 + Duration::from_secs(10)));
        assert!(
            !delays.schedule("a", t0 + Duration::from_secs(20)),
            "later than the one already there"
        );
        assert!(delays.schedule("a", t0 + Duration::from_secs(5)));
        assert_eq!(delays.len(), 1);
        assert_eq!(delays.next_deadline(), Some(t0 + Duration::from_secs(5)));
        assert!(delays.pop_due(t0 + Duration::from_secs(4)).is_empty());
        assert_eq!(delays.pop_due(t0 + Duration::from_secs(5)), ["a"]);
        assert!(
            delays.pop_due(t0 + Duration::from_secs(60)).is_empty(),
            "the superseded deadlines are gone too"
        );
        assert_eq!(delays.next_deadline(), None);
    }

    #[test]
    fn due_applications_come_out_in_deadline_order() {
        let t0 = Instant::now();
        let mut delays = Delays::default();
        delays.schedule("late", t0 + Duration::from_secs(3));
        assert!(delays.schedule("early", t0 + Duration::from_secs(1)));
        assert!(!delays.schedule("middle", t0 + Duration::from_secs(2)));
        assert_eq!(
            delays.pop_due(t0 + Duration::from_secs(2)),
            ["early", "middle"]
        );
        assert_eq!(delays.len(), 1);
        assert_eq!(delays.pop_due(t0 + Duration::from_secs(3)), ["late"]);
    }

    #[tokio::test]
    async fn the_queue_hands_out_an_application_when_it_is_due() {
        let queue = DelayQueue::default();
        let cancel = tokio_util::sync::CancellationToken::new();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(queue.clone().run(cancel.clone(), move |name| {
            let _ = tx.send(name.to_string());
        }));
        let start = Instant::now();
        queue.schedule("slow", start + Duration::from_millis(200));
        queue.schedule("fast", start + Duration::from_millis(20));
        assert_eq!(rx.recv().await.as_deref(), Some("fast"));
        assert_eq!(rx.recv().await.as_deref(), Some("slow"));
        cancel.cancel();
    }
}
