//! A small harness over a real `Lockspace`: make calls, collect what comes out.
#![allow(dead_code)]

pub mod rng;

use phalanx_dlm::*;

/// The owner `pid` on node 1.
pub fn owner(pid: u32) -> Owner {
    Owner::new(1, pid)
}

/// A lockspace plus the outputs drained from it so far.
pub struct Harness {
    pub ls: Lockspace,
}

impl Harness {
    pub fn new() -> Harness {
        Harness::with_config(LockspaceConfig::default())
    }

    pub fn with_config(config: LockspaceConfig) -> Harness {
        Harness {
            ls: Lockspace::new(config).expect("valid config"),
        }
    }

    /// A new lock on `res`; the call must be accepted.
    pub fn lock(&mut self, who: u32, res: &str, mode: Mode) -> LockId {
        self.lock_with(who, res, mode, LockFlags::EMPTY)
    }

    pub fn lock_with(&mut self, who: u32, res: &str, mode: Mode, flags: LockFlags) -> LockId {
        self.ls
            .lock(LockRequest::new(owner(who), res, mode).with_flags(flags))
            .expect("lock call accepted")
    }

    /// Converts; the call must be accepted.
    pub fn convert(&mut self, who: u32, id: LockId, mode: Mode) {
        self.convert_with(who, id, mode, LockFlags::EMPTY);
    }

    pub fn convert_with(&mut self, who: u32, id: LockId, mode: Mode, flags: LockFlags) {
        self.ls
            .lock(LockRequest::convert(owner(who), id, mode).with_flags(flags))
            .expect("convert call accepted");
    }

    pub fn unlock(&mut self, who: u32, id: LockId) {
        self.ls
            .unlock(UnlockRequest::new(owner(who), id))
            .expect("unlock call accepted");
    }

    pub fn cancel(&mut self, who: u32, id: LockId) {
        self.ls
            .unlock(UnlockRequest::cancel(owner(who), id))
            .expect("cancel call accepted");
    }

    /// Everything queued since the last drain, in order.
    pub fn drain(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.ls.poll_output()).collect()
    }

    /// The lock's (state, granted, requested).
    pub fn state(&self, id: LockId) -> (LockState, Option<Mode>, Option<Mode>) {
        let info = self.ls.lock_info(id).expect("lock exists");
        (info.state, info.granted, info.requested)
    }

    pub fn is_granted(&self, id: LockId, mode: Mode) -> bool {
        self.state(id) == (LockState::Granted, Some(mode), None)
    }

    pub fn is_waiting(&self, id: LockId) -> bool {
        self.state(id).0 == LockState::Waiting
    }

    pub fn is_converting(&self, id: LockId) -> bool {
        self.state(id).0 == LockState::Converting
    }
}

/// The completions in `outs`, as (lock, status, granted mode).
pub fn completions(outs: &[Output]) -> Vec<(LockId, Status, Option<Mode>)> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Completion(c) => Some((c.lock, c.status, c.granted)),
            _ => None,
        })
        .collect()
}

/// The full completion for `id` in `outs` (exactly one expected).
pub fn completion_of(outs: &[Output], id: LockId) -> Completion {
    let found: Vec<&Completion> = outs
        .iter()
        .filter_map(|o| match o {
            Output::Completion(c) if c.lock == id => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(found.len(), 1, "one completion for {id} in {outs:?}");
    found[0].clone()
}

/// The blocking ASTs in `outs`, as (lock, mode).
pub fn basts(outs: &[Output]) -> Vec<(LockId, Mode)> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Blocking { lock, mode, .. } => Some((*lock, *mode)),
            _ => None,
        })
        .collect()
}
