//! The controller's clock, behind a trait so that what depends on time (the
//! automated-sync policy's backoffs, requeues) can be driven from tests.

use std::time::Instant;

/// Where the controller reads the time.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Instant;
}

/// The system's monotonic clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}
