//! The recovery benchmark's commands (`dlm-bench --recovery`): one watched
//! lockspace, many locks taken at once (`dlm-bulk`), locks asked without waiting
//! (`dlm-ask`), and the lockspace's notices as lines, stamped by the relay thread
//! as it receives them:
//!
//! ```text
//! dlm_notice kind=members epoch=E members=1,2 failed=3   a view: recovery starts
//! dlm_notice kind=await node=N                           recovery waits for N's fencing
//! dlm_notice kind=fence_recorded node=N at=MONO_NS       the fence decision: N fenced
//! dlm_notice kind=fenced node=N at=MONO_NS               the DLM's gate opened for N
//! dlm_notice kind=recovered epoch=E                      the lockspace runs again
//! dlm_notice kind=granted tag=T lock=ID mode=M           a dlm-ask lock was granted
//! dlm_notice kind=completion tag=T lock=ID status=S      any other outcome of one
//! dlm_notice kind=bast tag=T lock=ID mode=M              a dlm-ask lock blocks someone
//! ```
//!
//! `at=` is when the node's thread learned it (before it routed any completion
//! that follows from it), on the machine's monotonic clock.

use super::emit::{Emitter, ids, mono_ns};
use crossbeam_channel::{Receiver, RecvTimeoutError, unbounded};
use phalanx::dlm::{LockFlags, Mode, Status};
use phalanx::node::{Dlm, DlmCallError, DlmNotice, LockCall, Lockspace, Notify, parse_mode};
use phalanx::stack::DlmServiceError;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Most `dlm-bulk` locks in flight at once: well below the DLM service's send
/// queue (`max_sends`, 4096) and the core's parked-call bound (`max_parked`), so
/// a bulk load is not refused for backpressure.
const BULK_WINDOW: usize = 512;

/// Longest a `dlm-bulk` waits for the next completion.
const BULK_STALL: Duration = Duration::from_secs(60);

/// The watched lockspace and its relay thread.
pub struct Watch {
    ls: Lockspace,
    /// `dlm-ask` locks: id → tag. Held while a lock is asked, so the relay thread
    /// cannot see its grant before its tag.
    tags: Arc<Mutex<HashMap<u32, String>>>,
    stop: Arc<AtomicBool>,
    relay: Option<JoinHandle<()>>,
}

fn mode_of(name: &str) -> Result<Mode, String> {
    parse_mode(name).ok_or_else(|| format!("bad mode {name}"))
}

impl Watch {
    /// Joins `lockspace` and starts relaying its notices.
    pub fn start(dlm: &Dlm, out: Emitter, lockspace: &str) -> Result<Watch, String> {
        let ls = dlm.lockspace(lockspace).map_err(|e| e.to_string())?;
        let tags: Arc<Mutex<HashMap<u32, String>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let relay = {
            let (rx, tags, stop) = (ls.notices().clone(), tags.clone(), stop.clone());
            std::thread::Builder::new()
                .name("dlm-watch".into())
                .spawn(move || relay(&rx, &out, &tags, &stop))
                .map_err(|e| e.to_string())?
        };
        Ok(Watch {
            ls,
            tags,
            stop,
            relay: Some(relay),
        })
    }

    /// Asks for a lock without waiting; its id.
    pub fn ask(&self, tag: &str, resource: &str, mode: &str) -> Result<u32, String> {
        let mode = mode_of(mode)?;
        let mut tags = self.tags.lock().unwrap_or_else(|e| e.into_inner());
        let id = self
            .ls
            .lock(resource.as_bytes(), mode, LockFlags::EMPTY, None)
            .map_err(|e| e.to_string())?;
        tags.insert(id.get(), tag.to_string());
        Ok(id.get())
    }

    /// Takes `count` locks on `prefix{from..from+count}` with at most
    /// [`BULK_WINDOW`] in flight; answers with the count and the time taken.
    pub fn bulk(&self, prefix: &str, from: u64, count: u64, mode: &str) -> Result<String, String> {
        let mode = mode_of(mode)?;
        let t0 = Instant::now();
        // The bulk locks' own channel: their completions do not flood the relay.
        let (tx, rx) = unbounded();
        let mut next = from;
        let end = from + count;
        let mut in_flight = 0usize;
        let mut granted = 0u64;
        let mut retries = 0u64;
        while granted < count {
            while next < end && in_flight < BULK_WINDOW {
                let mut call = LockCall::new(format!("{prefix}{next}"), mode);
                call.bast = false;
                call.notify = Some(Notify::Channel(tx.clone()));
                match self.ls.lock_with(call) {
                    Ok(_) => {
                        next += 1;
                        in_flight += 1;
                    }
                    // Backpressure: wait for a completion below, then ask again.
                    Err(DlmCallError::Lockspace(DlmServiceError::TryAgain))
                    | Err(DlmCallError::Lock(phalanx::dlm::DlmError::TryAgain))
                        if in_flight > 0 =>
                    {
                        retries += 1;
                        break;
                    }
                    Err(e) => return Err(format!("lock {prefix}{next}: {e}")),
                }
            }
            granted += wait_granted(&rx)?;
            in_flight -= 1;
        }
        Ok(format!(
            "granted={granted} ms={} retries={retries}",
            t0.elapsed().as_millis()
        ))
    }

    /// Stops the relay (the locks stay until the node stops).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.relay.take() {
            let _ = t.join();
        }
    }
}

/// Waits for one bulk completion: 1 if it is a grant, an error otherwise.
fn wait_granted(rx: &Receiver<DlmNotice>) -> Result<u64, String> {
    loop {
        match rx.recv_timeout(BULK_STALL) {
            Ok(DlmNotice::Completion(c)) if c.status == Status::Granted => return Ok(1),
            Ok(DlmNotice::Completion(c)) => {
                return Err(format!("lock {} completed {:?}", c.lock.get(), c.status));
            }
            Ok(DlmNotice::Refused { lock, errno }) => {
                return Err(format!("lock {} refused errno {errno}", lock.get()));
            }
            Ok(_) => {}
            Err(RecvTimeoutError::Timeout) => return Err("no completion for a minute".into()),
            Err(RecvTimeoutError::Disconnected) => return Err("the node stopped".into()),
        }
    }
}

/// `Instant` as the machine's monotonic nanoseconds (`Instant` is
/// CLOCK_MONOTONIC on Linux; the offset is taken now).
fn mono_of(at: Instant) -> u64 {
    mono_ns().saturating_sub(at.elapsed().as_nanos() as u64)
}

fn relay(
    rx: &Receiver<DlmNotice>,
    out: &Emitter,
    tags: &Mutex<HashMap<u32, String>>,
    stop: &AtomicBool,
) {
    let tag_of = |id: u32| -> String {
        tags.lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
            .unwrap_or_else(|| "-".into())
    };
    // A bounded wait so that `stop` is seen; a notice wakes it at once.
    while !stop.load(Ordering::SeqCst) {
        let n = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(n) => n,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let line = match n {
            DlmNotice::Members {
                epoch,
                members,
                failed,
            } => format!(
                "kind=members epoch={epoch} members={} failed={}",
                ids(&members),
                ids(&failed)
            ),
            DlmNotice::AwaitFencing { node } => format!("kind=await node={node}"),
            DlmNotice::FenceRecorded { node, at } => {
                format!("kind=fence_recorded node={node} at={}", mono_of(at))
            }
            DlmNotice::Fenced { node, at } => {
                format!("kind=fenced node={node} at={}", mono_of(at))
            }
            DlmNotice::Recovered { epoch } => format!("kind=recovered epoch={epoch}"),
            DlmNotice::Completion(c) if c.status == Status::Granted => format!(
                "kind=granted tag={} lock={} mode={}",
                tag_of(c.lock.get()),
                c.lock.get(),
                c.granted.map_or("-", Mode::name)
            ),
            DlmNotice::Completion(c) => format!(
                "kind=completion tag={} lock={} status={:?}",
                tag_of(c.lock.get()),
                c.lock.get(),
                c.status
            ),
            DlmNotice::Blocking { lock, mode } => format!(
                "kind=bast tag={} lock={} mode={}",
                tag_of(lock.get()),
                lock.get(),
                mode.name()
            ),
            DlmNotice::Refused { lock, errno } => format!(
                "kind=refused tag={} lock={} errno={errno}",
                tag_of(lock.get()),
                lock.get()
            ),
            _ => continue,
        };
        out.emit("dlm_notice", &line);
    }
}
