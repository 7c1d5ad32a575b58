//! `dlm-hammer`: worker threads that take, convert and release locks at random,
//! reporting what they may rely on as controller lines:
//!
//! ```text
//! dlm_grant res=NAME lock=ID mode=M     after the grant's completion arrived
//! dlm_release res=NAME lock=ID          before the unlock or down-conversion is asked
//! dlm_error op=OP reason=TEXT           a call failed unexpectedly
//! dlm_fenced node=N at=MONO_NS          when the node's thread learned N fenced
//!                                       (the fence decision's notice)
//! ```
//!
//! So, on one host's monotonic clock, a lock is held in mode M at most from its
//! `dlm_grant` line to its `dlm_release` line; a test checks that no two
//! incompatible such intervals of any processes overlap on a resource.
//!
//! A worker never waits while it holds more than one lock (further locks and
//! conversions are asked with NOQUEUE then), so workers cannot deadlock across
//! resources; a conversion deadlock on one resource is the lock manager's to
//! break (EDEADLK).

use super::emit::Emitter;
use phalanx::dlm::{LockFlags, LockId, Mode};
use phalanx::node::{Dlm, DlmCallError, Lockspace};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;

/// Most locks a worker holds at once.
const MAX_HELD: usize = 3;

/// Running workers.
pub struct Hammer {
    stop: Arc<AtomicBool>,
    notices: Option<JoinHandle<()>>,
    ops: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
}

struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn mode(&mut self) -> Mode {
        // EX and PR most often: they conflict the most.
        const MODES: [i32; 8] = [0, 1, 2, 3, 4, 5, 5, 3];
        Mode::try_from(MODES[self.below(8) as usize]).unwrap_or(Mode::Ex)
    }
}

struct Held {
    id: LockId,
    res: String,
    mode: Mode,
}

struct Worker {
    ls: Lockspace,
    out: Emitter,
    rng: SplitMix,
    resources: u32,
    held: Vec<Held>,
}

impl Worker {
    fn grant(&mut self, id: LockId, res: String, mode: Mode) {
        self.out.emit(
            "dlm_grant",
            &format!("res={res} lock={} mode={}", id.get(), mode.name()),
        );
        self.held.push(Held { id, res, mode });
    }

    fn release_line(&self, h: &Held) {
        self.out
            .emit("dlm_release", &format!("res={} lock={}", h.res, h.id.get()));
    }

    fn error(&self, op: &str, e: &DlmCallError) {
        self.out.emit(
            "dlm_error",
            &format!(
                "op={op} reason={}",
                super::emit::pct(e.to_string().as_bytes())
            ),
        );
    }

    fn lock(&mut self) {
        let res = format!("r{}", self.rng.below(u64::from(self.resources)));
        if self.held.iter().any(|h| h.res == res) {
            return;
        }
        let mode = self.rng.mode();
        let flags = if self.held.is_empty() {
            LockFlags::EMPTY
        } else {
            LockFlags::NOQUEUE
        };
        match self.ls.lock_wait(res.as_bytes(), mode, flags, None) {
            Ok(g) => self.grant(g.id, res, mode),
            Err(DlmCallError::WouldBlock) => {}
            Err(e) => self.error("lock", &e),
        }
    }

    fn unlock(&mut self, i: usize) {
        let h = self.held.swap_remove(i);
        self.release_line(&h);
        if let Err(e) = self.ls.unlock_wait(h.id, LockFlags::EMPTY, None) {
            self.error("unlock", &e);
        }
    }

    fn convert(&mut self, i: usize) {
        let to = self.rng.mode();
        let from = self.held[i].mode;
        if to == from {
            return;
        }
        // PR and CW are incompatible although CW < PR: no middle conversions.
        let middle = matches!((from, to), (Mode::Pr, Mode::Cw) | (Mode::Cw, Mode::Pr));
        if middle {
            return;
        }
        let up = to.value() > from.value();
        let id = self.held[i].id;
        if up {
            let flags = if self.held.len() > 1 {
                LockFlags::NOQUEUE
            } else {
                LockFlags::EMPTY
            };
            match self.ls.convert_wait(id, to, flags, None) {
                Ok(_) => {
                    // The new mode covers the old one: a new interval from now.
                    let h = self.held.swap_remove(i);
                    self.release_line(&h);
                    self.grant(id, h.res, to);
                }
                Err(DlmCallError::WouldBlock | DlmCallError::Deadlock) => {}
                Err(e) => self.error("convert", &e),
            }
        } else {
            // From the moment it asks, the holder relies on the lower mode only.
            let h = self.held.swap_remove(i);
            self.release_line(&h);
            self.grant(id, h.res, to);
            if let Err(e) = self.ls.convert_wait(id, to, LockFlags::EMPTY, None) {
                self.error("convert", &e);
            }
        }
    }

    fn step(&mut self) {
        let n = self.held.len();
        match self.rng.below(4) {
            _ if n == 0 => self.lock(),
            0 if n < MAX_HELD => self.lock(),
            1 => {
                let i = self.rng.below(n as u64) as usize;
                self.convert(i);
            }
            _ => {
                let i = self.rng.below(n as u64) as usize;
                self.unlock(i);
            }
        }
    }
}

impl Hammer {
    /// Joins `lockspace` and starts `threads` workers.
    pub fn start(
        dlm: Dlm,
        out: Emitter,
        lockspace: &str,
        resources: u32,
        seed: u64,
        threads: u32,
    ) -> Result<Hammer, String> {
        let ls = dlm.lockspace(lockspace).map_err(|e| e.to_string())?;
        let stop = Arc::new(AtomicBool::new(false));
        let notices = {
            let (ls, out, stop) = (ls.clone(), out.clone(), stop.clone());
            std::thread::Builder::new()
                .name("dlm-notices".into())
                .spawn(move || relay_fenced(&ls, &out, &stop))
                .map_err(|e| e.to_string())?
        };
        let ops = Arc::new(AtomicU64::new(0));
        let mut handles = Vec::new();
        for t in 0..threads {
            let mut w = Worker {
                ls: ls.clone(),
                out: out.clone(),
                rng: SplitMix(seed ^ (u64::from(t) << 32)),
                resources,
                held: Vec::new(),
            };
            let (stop, ops) = (stop.clone(), ops.clone());
            let h = std::thread::Builder::new()
                .name(format!("dlm-hammer-{t}"))
                .spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        w.step();
                        ops.fetch_add(1, Ordering::Relaxed);
                    }
                    while !w.held.is_empty() {
                        w.unlock(0);
                    }
                })
                .map_err(|e| e.to_string())?;
            handles.push(h);
        }
        Ok(Hammer {
            stop,
            notices: Some(notices),
            ops,
            threads: handles,
        })
    }

    /// Stops the workers once each has released its locks; the operations done.
    pub fn stop(self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            let _ = t.join();
        }
        if let Some(t) = self.notices {
            let _ = t.join();
        }
        self.ops.load(Ordering::Relaxed)
    }
}

/// `dlm-hold`: takes a lock and reports its grant; the lock stays.
pub fn hold(
    dlm: &Dlm,
    out: &Emitter,
    lockspace: &str,
    resource: &str,
    mode: &str,
) -> Result<Lockspace, String> {
    let mode = phalanx::node::parse_mode(mode).ok_or_else(|| format!("bad mode {mode}"))?;
    let ls = dlm.lockspace(lockspace).map_err(|e| e.to_string())?;
    let g = ls
        .lock_wait(resource.as_bytes(), mode, LockFlags::EMPTY, None)
        .map_err(|e| e.to_string())?;
    out.emit(
        "dlm_grant",
        &format!("res={resource} lock={} mode={}", g.id.get(), mode.name()),
    );
    Ok(ls)
}

/// Reports `Fenced` notices with the time the node's thread stamped on them (the
/// line itself may be written later than a grant that followed from it).
fn relay_fenced(ls: &Lockspace, out: &Emitter, stop: &AtomicBool) {
    let emit = |notice| {
        if let phalanx::node::DlmNotice::FenceRecorded { node, at } = notice {
            let at = super::emit::mono_ns().saturating_sub(at.elapsed().as_nanos() as u64);
            out.emit("dlm_fenced", &format!("node={node} at={at}"));
        }
    };
    while !stop.load(Ordering::SeqCst) {
        match ls
            .notices()
            .recv_timeout(std::time::Duration::from_millis(50))
        {
            Ok(notice) => emit(notice),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
        }
    }
    // Stopped: what arrived meanwhile is still reported — a grant that followed
    // a fencing must not be judged without the fencing's line.
    while let Ok(notice) = ls.notices().try_recv() {
        emit(notice);
    }
}
