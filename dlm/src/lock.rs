//! Locks (the kernel's "lkb"): identity, owner and per-lock grant state.

use crate::flags::LockFlags;
use crate::mode::Mode;

/// A lock's id within its lockspace (libdlm `sb_lkid`); never 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LockId(pub(crate) u32);

impl LockId {
    /// The numeric id.
    pub fn get(self) -> u32 {
        self.0
    }

    /// A lock id from its number (as [`LockId::get`] returned it), e.g. when a
    /// driver keeps ids as integers.
    pub fn from_raw(id: u32) -> LockId {
        LockId(id)
    }
}

impl std::fmt::Display for LockId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// Who holds a lock: a process on a node, as `dlm_ls_purge(ls, nodeid, pid)` names it.
/// The distributed layer will route completions and BASTs to `node`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Owner {
    /// Cluster node id of the process.
    pub node: u32,
    /// Process (or client handle) id on that node.
    pub pid: u32,
}

impl Owner {
    /// An owner.
    pub fn new(node: u32, pid: u32) -> Owner {
        Owner { node, pid }
    }
}

/// Which queue of its resource a lock is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockState {
    /// A new request not granted yet (wait queue).
    Waiting,
    /// Holds its granted mode, nothing pending (grant queue).
    Granted,
    /// Holds its granted mode and waits for a conversion (convert queue).
    Converting,
}

/// A read-only view of a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockInfo {
    /// The lock.
    pub id: LockId,
    /// Its owner.
    pub owner: Owner,
    /// Its queue.
    pub state: LockState,
    /// The mode it holds (`None` = IV: a request never granted).
    pub granted: Option<Mode>,
    /// The mode it waits for, if waiting or converting.
    pub requested: Option<Mode>,
    /// Whether its owner died and it is held as an orphan (PERSISTENT).
    pub orphan: bool,
}

/// The engine's record of one lock on one resource.
#[derive(Debug, Clone)]
pub(crate) struct Lock {
    pub(crate) id: LockId,
    pub(crate) owner: Owner,
    pub(crate) state: LockState,
    pub(crate) granted: Option<Mode>,
    pub(crate) requested: Option<Mode>,
    /// Flags of the request in progress (or of the last one once granted).
    pub(crate) flags: LockFlags,
    /// PERSISTENT as given on the first request: decides orphaning on owner exit.
    pub(crate) persistent: bool,
    /// The caller's value-block buffer as last passed in (written to the resource on
    /// a W transfer).
    pub(crate) lvb: Option<Box<[u8]>>,
    /// Whether the owner registered a blocking-AST routine.
    pub(crate) wants_bast: bool,
    /// The highest mode a BAST was sent for since the last grant (`highbast`).
    pub(crate) highbast: Option<Mode>,
    /// CONVDEADLK demoted the granted mode to NL; reported with the next completion.
    pub(crate) demoted: bool,
    /// The owner is gone and the lock is kept as an orphan.
    pub(crate) orphan: bool,
}

impl Lock {
    pub(crate) fn info(&self) -> LockInfo {
        LockInfo {
            id: self.id,
            owner: self.owner,
            state: self.state,
            granted: self.granted,
            requested: self.requested,
            orphan: self.orphan,
        }
    }
}
