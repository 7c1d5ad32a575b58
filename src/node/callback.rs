//! Callbacks on threads of their own, stopped by a guard: what
//! [`Cpg::member_with_callback`](super::Cpg::member_with_callback) and
//! [`Quorum::on_change`](super::Quorum::on_change) return.

use crossbeam_channel::{Receiver, Sender, bounded, select};
use std::borrow::Borrow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// Owns a callback thread: dropping it (or [`CallbackGuard::stop`]) stops the
/// thread and waits for it to end, so that once the drop returns the callback is
/// never called again and whatever it captured has been dropped.
///
/// The thread also ends by itself when its event stream ends (the node stopped,
/// the member went down); the guard then only reaps it.
///
/// Dropping the guard from inside its own callback is allowed: the thread cannot
/// wait for itself, so it ends as soon as that call of the callback returns. A
/// drop from another thread while the callback runs waits for that call to
/// return: a callback that blocks forever blocks the drop.
#[must_use = "dropping the guard at once stops the callback"]
pub struct CallbackGuard {
    /// Checked before every call: an event taken after the stop is not handed on.
    stopped: Arc<AtomicBool>,
    /// Dropped to wake the thread out of its wait for the next event.
    wake: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for CallbackGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackGuard")
            .field("finished", &self.is_finished())
            .finish()
    }
}

impl CallbackGuard {
    /// Calls `callback` with every event of `events`, in order, on a new thread
    /// named `name`, until the guard is dropped or the stream ends. `events` is
    /// anything that lends a receiver, so a subscription that must stay alive
    /// while it is read moves into the thread with it.
    pub(crate) fn spawn<T, R>(
        name: String,
        events: R,
        mut callback: impl FnMut(T) + Send + 'static,
    ) -> std::io::Result<CallbackGuard>
    where
        T: Send + 'static,
        R: Borrow<Receiver<T>> + Send + 'static,
    {
        let stopped = Arc::new(AtomicBool::new(false));
        let (wake, woken) = bounded::<()>(0);
        let stop_seen = stopped.clone();
        let thread = std::thread::Builder::new().name(name).spawn(move || {
            let events: &Receiver<T> = events.borrow();
            loop {
                select! {
                    // Nothing is ever sent: the guard drops its end to stop us.
                    recv(woken) -> _ => return,
                    recv(events) -> ev => match ev {
                        // `select!` picks at random among ready operations: the
                        // flag keeps an event that raced the stop from the callback.
                        Ok(ev) if !stop_seen.load(Ordering::Acquire) => callback(ev),
                        _ => return,
                    },
                }
            }
        })?;
        Ok(CallbackGuard {
            stopped,
            wake: Some(wake),
            thread: Some(thread),
        })
    }

    /// Stops the callback and waits for its thread to end (the same as dropping
    /// the guard).
    pub fn stop(self) {}

    /// Whether the callback thread has ended (its event stream ended, or the
    /// callback panicked).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }
}

impl Drop for CallbackGuard {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::Release);
        self.wake = None;
        let Some(thread) = self.thread.take() else {
            return;
        };
        // From inside the callback the thread would wait for itself; it ends
        // when the callback returns, having seen the flag.
        if thread.thread().id() != std::thread::current().id() {
            // A panic of the callback ended the thread; there is nothing to
            // hand it to here (and panicking in drop would abort).
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::{RecvTimeoutError, TryRecvError, unbounded};
    use parking_lot::Mutex;
    use std::time::Duration;

    /// Long enough for any thread on a loaded machine; only reached on failure.
    const PATIENCE: Duration = Duration::from_secs(10);

    /// A callback that forwards events to `seen`, holding `alive` until its
    /// thread ends (its receiver then reports a disconnect).
    fn forwarding(seen: Sender<u32>, alive: Sender<()>) -> impl FnMut(u32) + Send + 'static {
        move |ev| {
            let _ = &alive;
            seen.send(ev).unwrap();
        }
    }

    #[test]
    fn drop_stops_the_thread_and_no_event_follows() {
        let (events_tx, events) = unbounded::<u32>();
        let (seen_tx, seen) = unbounded();
        let (alive, thread_gone) = bounded::<()>(0);
        let guard =
            CallbackGuard::spawn("test-cb".into(), events, forwarding(seen_tx, alive)).unwrap();
        events_tx.send(1).unwrap();
        assert_eq!(seen.recv_timeout(PATIENCE), Ok(1));
        assert!(!guard.is_finished());
        assert_eq!(thread_gone.try_recv(), Err(TryRecvError::Empty), "alive");
        drop(guard);
        // Joined: the callback (and what it captured) is gone when drop returns.
        assert_eq!(thread_gone.try_recv(), Err(TryRecvError::Disconnected));
        // The thread took the stream's only receiver with it.
        assert!(events_tx.send(2).is_err(), "the stream outlived the thread");
        assert_eq!(seen.try_recv(), Err(TryRecvError::Disconnected));
    }

    #[test]
    fn the_thread_ends_with_its_stream_and_the_guard_reaps_it() {
        let (events_tx, events) = unbounded::<u32>();
        let (seen_tx, seen) = unbounded();
        let (alive, thread_gone) = bounded::<()>(0);
        let guard =
            CallbackGuard::spawn("test-cb".into(), events, forwarding(seen_tx, alive)).unwrap();
        events_tx.send(7).unwrap();
        drop(events_tx);
        assert_eq!(seen.recv_timeout(PATIENCE), Ok(7));
        assert_eq!(
            thread_gone.recv_timeout(PATIENCE),
            Err(RecvTimeoutError::Disconnected)
        );
        while !guard.is_finished() {
            std::thread::yield_now();
        }
        guard.stop();
    }

    #[test]
    fn dropping_the_guard_inside_its_callback_does_not_deadlock() {
        let (events_tx, events) = unbounded::<u32>();
        let (seen_tx, seen) = unbounded();
        let (alive, thread_gone) = bounded::<()>(0);
        let slot: Arc<Mutex<Option<CallbackGuard>>> = Arc::new(Mutex::new(None));
        let own = slot.clone();
        // Queued before the thread starts: the first call finds the guard stored.
        events_tx.send(1).unwrap();
        events_tx.send(2).unwrap();
        let mut guard_slot = slot.lock();
        *guard_slot = Some(
            CallbackGuard::spawn("test-cb".into(), events, move |ev: u32| {
                let _ = &alive;
                seen_tx.send(ev).unwrap();
                drop(own.lock().take());
            })
            .unwrap(),
        );
        assert_eq!(thread_gone.try_recv(), Err(TryRecvError::Empty), "alive");
        drop(guard_slot);
        assert_eq!(seen.recv_timeout(PATIENCE), Ok(1));
        // The thread ends after that first call: event 2 is never handed on.
        assert_eq!(
            thread_gone.recv_timeout(PATIENCE),
            Err(RecvTimeoutError::Disconnected)
        );
        // The thread is still dropping the callback's captures (`alive` goes
        // first): wait for `seen_tx` too rather than look at once.
        assert_eq!(
            seen.recv_timeout(PATIENCE),
            Err(RecvTimeoutError::Disconnected)
        );
        assert!(slot.lock().is_none());
    }

    #[test]
    fn a_drop_waits_for_a_running_callback() {
        let (events_tx, events) = unbounded::<u32>();
        let (entered_tx, entered) = bounded::<()>(1);
        let (release_tx, release) = bounded::<()>(1);
        let (done_tx, done) = unbounded();
        let guard = CallbackGuard::spawn("test-cb".into(), events, move |ev: u32| {
            entered_tx.send(()).unwrap();
            release.recv().unwrap();
            done_tx.send(ev).unwrap();
        })
        .unwrap();
        events_tx.send(5).unwrap();
        entered.recv_timeout(PATIENCE).unwrap();
        let dropper = std::thread::spawn(move || drop(guard));
        // The drop cannot return while the callback runs; let the callback finish.
        assert!(!dropper.is_finished());
        release_tx.send(()).unwrap();
        dropper.join().unwrap();
        assert_eq!(done.try_recv(), Ok(5));
        assert_eq!(done.try_recv(), Err(TryRecvError::Disconnected));
    }
}
