//! `bounce-ast`: EX bounced between the nodes by AST callbacks alone. Each
//! node keeps one request for the resource: the grant's callback (on the
//! node's own thread) checks exclusion and unlocks; the unlock's callback asks
//! again, queueing behind the other nodes' requests. Counts hand-overs (grants
//! to another node than the previous grant's) and re-grants to the same node.

use phalanx::dlm::{LockFlags, Mode, Status};
use phalanx::node::{DlmNotice, LockCall, Lockspace, Notify};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// What every node's callbacks share.
#[derive(Default)]
struct Shared {
    /// The node granted last (0: none yet).
    last: AtomicU32,
    hand_overs: AtomicU64,
    same_node: AtomicU64,
    /// Set between a grant's callback and its unlock: two at once panics.
    held: AtomicBool,
    stop: AtomicBool,
    /// Calls a callback could not make (printed; the run is then void).
    errors: AtomicU64,
}

/// One node's request loop.
struct Bouncer {
    node: u32,
    ls: Lockspace,
    shared: Arc<Shared>,
    notify: OnceLock<Notify>,
    /// The node's last unlock completed after the stop.
    done: AtomicBool,
}

impl Bouncer {
    fn lock(&self) {
        let mut call = LockCall::new(&b"hot-ast"[..], Mode::Ex);
        call.notify = self.notify.get().cloned();
        call.bast = false;
        if self.ls.lock_with(call).is_err() {
            self.shared.errors.fetch_add(1, SeqCst);
            self.done.store(true, SeqCst);
        }
    }

    fn on_notice(&self, n: DlmNotice) {
        let DlmNotice::Completion(c) = n else { return };
        match c.status {
            Status::Granted => {
                assert!(!self.shared.held.swap(true, SeqCst), "two EX holders");
                if self.shared.last.swap(self.node, SeqCst) == self.node {
                    self.shared.same_node.fetch_add(1, SeqCst);
                } else {
                    self.shared.hand_overs.fetch_add(1, SeqCst);
                }
                self.shared.held.store(false, SeqCst);
                if self.ls.unlock(c.lock, LockFlags::EMPTY, None).is_err() {
                    self.shared.errors.fetch_add(1, SeqCst);
                }
            }
            Status::Unlocked if self.shared.stop.load(SeqCst) => self.done.store(true, SeqCst),
            Status::Unlocked => self.lock(),
            _ => {
                self.shared.errors.fetch_add(1, SeqCst);
                self.done.store(true, SeqCst);
            }
        }
    }
}

pub fn run(spaces: &[Lockspace], secs: u64) {
    let shared = Arc::new(Shared::default());
    let bouncers: Vec<Arc<Bouncer>> = spaces
        .iter()
        .enumerate()
        .map(|(i, ls)| {
            let b = Arc::new(Bouncer {
                node: i as u32 + 1,
                ls: ls.clone(),
                shared: shared.clone(),
                notify: OnceLock::new(),
                done: AtomicBool::new(false),
            });
            // Weak: the callback lives in the node's route table.
            let weak = Arc::downgrade(&b);
            let _ = b.notify.set(Notify::Callback(Arc::new(move |n| {
                if let Some(b) = weak.upgrade() {
                    b.on_notice(n);
                }
            })));
            b
        })
        .collect();
    for b in &bouncers {
        b.lock();
    }
    // From the first grant (which includes the lookup that makes the master).
    while shared.last.load(SeqCst) == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let (t0, h0, s0) = (
        Instant::now(),
        shared.hand_overs.load(SeqCst),
        shared.same_node.load(SeqCst),
    );
    std::thread::sleep(Duration::from_secs(secs));
    let (elapsed, h1, s1) = (
        t0.elapsed(),
        shared.hand_overs.load(SeqCst),
        shared.same_node.load(SeqCst),
    );
    shared.stop.store(true, SeqCst);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !bouncers.iter().all(|b| b.done.load(SeqCst)) {
        assert!(Instant::now() < deadline, "the bounce did not stop");
        std::thread::sleep(Duration::from_millis(1));
    }
    println!(
        "bounce EX between 3 nodes by AST callbacks on the nodes' threads: {:.0} hand-overs/s \
         between nodes (re-grants to the previous holder's node {:.0}/s, callback errors {})",
        (h1 - h0) as f64 / elapsed.as_secs_f64(),
        (s1 - s0) as f64 / elapsed.as_secs_f64(),
        shared.errors.load(SeqCst)
    );
}
