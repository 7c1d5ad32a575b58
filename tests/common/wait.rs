//! The one deadline of the tests: poll a condition, or pump events, until it
//! holds; fail with a message naming what was awaited (and, where the caller
//! can tell, the state it was in) when the time is up. Never a bare sleep
//! standing in for synchronisation.

use std::time::{Duration, Instant};

/// Between two looks at a polled condition.
const POLL: Duration = Duration::from_millis(2);

/// A time limit for awaiting one named thing.
pub struct Deadline {
    what: String,
    start: Instant,
    limit: Duration,
}

impl Deadline {
    /// `limit` from now, for awaiting `what`.
    pub fn after(what: impl Into<String>, limit: Duration) -> Deadline {
        Deadline {
            what: what.into(),
            start: Instant::now(),
            limit,
        }
    }

    /// Time left (zero once passed).
    pub fn remaining(&self) -> Duration {
        self.limit.saturating_sub(self.start.elapsed())
    }

    /// Time since the deadline was set.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Fails the test once the deadline has passed, naming what was awaited and
    /// the state `context` describes (called only then).
    #[track_caller]
    pub fn check(&self, context: impl FnOnce() -> String) {
        if self.start.elapsed() >= self.limit {
            let context = context();
            let sep = if context.is_empty() { "" } else { "; " };
            panic!(
                "timed out after {:?} waiting for {}{sep}{context}",
                self.limit, self.what
            );
        }
    }
}

/// Polls `cond` until it holds; fails the test after `limit`, naming `what`.
/// Returns how long it took.
#[track_caller]
pub fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let deadline = Deadline::after(what, limit);
    while !cond() {
        deadline.check(String::new);
        std::thread::sleep(POLL.min(deadline.remaining()));
    }
    deadline.elapsed()
}
