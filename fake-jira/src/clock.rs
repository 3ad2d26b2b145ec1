//! The fake's time source for arrival times and its rate limit: the real
//! monotonic clock, or a manual one that only moves when a test moves it,
//! so that rate-limit tests count requests instead of racing the wall
//! clock on a loaded machine.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Where a fake's "now" comes from. Cheap to clone; clones share the time.
///
/// ```
/// use std::time::Duration;
/// use fake_jira::Clock;
/// let clock = Clock::manual();
/// let before = clock.now();
/// clock.advance(Duration::from_millis(600));
/// assert_eq!(clock.now() - before, Duration::from_millis(600));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Clock(Option<Arc<Mutex<Instant>>>);

impl Clock {
    /// The real monotonic clock (the default).
    pub fn system() -> Clock {
        Clock(None)
    }

    /// A clock that stands still until [`Clock::advance`] moves it.
    pub fn manual() -> Clock {
        Clock(Some(Arc::new(Mutex::new(Instant::now()))))
    }

    /// The time now.
    pub fn now(&self) -> Instant {
        match &self.0 {
            Some(t) => *t.lock().unwrap_or_else(PoisonError::into_inner),
            None => Instant::now(),
        }
    }

    /// Moves a manual clock forward; the system clock ignores it.
    pub fn advance(&self, by: Duration) {
        if let Some(t) = &self.0 {
            *t.lock().unwrap_or_else(PoisonError::into_inner) += by;
        }
    }
}
