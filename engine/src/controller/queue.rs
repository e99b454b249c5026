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

    pub(super) fn enqueue_after(self: &Arc<Self>, name: &str, delay: Duration) {
        let weak = Arc::downgrade(self);
        let name = name.to_string();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if let Some(inner) = weak.upgrade() {
                inner.enqueue(&name);
            }
        });
    }
}
