//! The work queue: every application queued at most once, commits' applications
//! first, and requeues after a delay.

use super::*;

impl Inner {
    pub(super) fn enqueue(&self, name: &str) {
        if self
            .queued
            .lock()
            .expect("queue lock is never poisoned")
            .insert(name.to_string())
        {
            let _ = self.queue.send(name.to_string());
        }
    }

    /// Queues an application ahead of the ordinary queue. It may also be in
    /// that queue; the second reconcile finds nothing new and costs little.
    pub(super) fn enqueue_urgent(&self, name: &str) {
        self.queued
            .lock()
            .expect("queue lock is never poisoned")
            .insert(name.to_string());
        let _ = self.urgent.send(name.to_string());
    }

    /// Queues an application again after `delay`, through the delay queue
    /// (no task sleeps per request; the earliest request per application
    /// wins).
    pub(super) fn enqueue_after(&self, name: &str, delay: Duration) {
        self.delays.schedule(name, self.clock.now() + delay);
    }

    /// Queues an application again after a transient error, backing off by
    /// `delay` with ±20% jitter so that many applications failing at once
    /// (a Git host or the API server down) do not come back at once.
    pub(super) fn enqueue_after_jittered(&self, name: &str, delay: Duration) {
        let jitter = rand::rng().random_range(0.8..1.2);
        self.enqueue_after(name, delay.mul_f64(jitter));
    }
}
