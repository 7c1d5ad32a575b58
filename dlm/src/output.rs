//! What the engine asks its driver to deliver: completion ASTs, blocking ASTs, and
//! resources that became idle.

use crate::error::{EAGAIN, EDEADLK};
use crate::lock::{LockId, Owner};
use crate::mode::Mode;
use crate::resource::ResourceName;

/// libdlm `DLM_ECANCEL` (AST status `-0x10001`).
pub const DLM_ECANCEL: i32 = 0x10001;
/// libdlm `DLM_EUNLOCK` (AST status `-0x10002`).
pub const DLM_EUNLOCK: i32 = 0x10002;

/// The outcome carried by a completion AST (`sb_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The request or conversion was granted (status 0).
    Granted,
    /// NOQUEUE and not grantable now (`EAGAIN`); a conversion keeps its granted mode.
    WouldBlock,
    /// The conversion would deadlock and was cancelled (`EDEADLK`); the lock keeps its
    /// granted mode.
    Deadlock,
    /// A waiting request or conversion was cancelled (`-DLM_ECANCEL`).
    Cancelled,
    /// The lock was released (`-DLM_EUNLOCK`).
    Unlocked,
}

impl Status {
    /// The libdlm `sb_status` value.
    pub fn code(self) -> i32 {
        match self {
            Status::Granted => 0,
            Status::WouldBlock => EAGAIN,
            Status::Deadlock => EDEADLK,
            Status::Cancelled => -DLM_ECANCEL,
            Status::Unlocked => -DLM_EUNLOCK,
        }
    }
}

/// Status-block flags (`sb_flags`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SbFlags {
    /// `SBF_DEMOTED`: CONVDEADLK demoted the granted mode to NL on the way.
    pub demoted: bool,
    /// `SBF_VALNOTVALID`: the resource value block is not valid.
    pub valnotvalid: bool,
    /// `SBF_ALTMODE`: the alternate mode (ALTPR/ALTCW) was granted.
    pub altmode: bool,
}

impl SbFlags {
    /// The libdlm bits (`DEMOTED` 0x1, `VALNOTVALID` 0x2, `ALTMODE` 0x4).
    pub fn bits(self) -> u32 {
        u32::from(self.demoted)
            | (u32::from(self.valnotvalid) << 1)
            | (u32::from(self.altmode) << 2)
    }
}

/// A completion AST: a request, conversion, cancel or unlock finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// The lock.
    pub lock: LockId,
    /// Whose AST routine runs.
    pub owner: Owner,
    /// The outcome.
    pub status: Status,
    /// Status-block flags.
    pub flags: SbFlags,
    /// The mode the lock holds now (`None` once unlocked or for a refused new lock).
    pub granted: Option<Mode>,
    /// The resource's value block, when the grant read it (VALBLK, R transfer).
    pub lvb: Option<Box<[u8]>>,
}

/// What a lockspace asks its driver to deliver, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A completion AST for the lock's owner.
    Completion(Completion),
    /// A blocking AST: `lock` blocks a request for `mode`; its owner should release or
    /// down-convert it.
    Blocking {
        /// The blocking lock.
        lock: LockId,
        /// Its owner.
        owner: Owner,
        /// The blocked mode (the highest such mode not yet announced).
        mode: Mode,
    },
    /// The resource holds no lock any more. It is kept idle ("tossed") with its value
    /// block, and revived by the next request on its name — the seam where the
    /// distributed layer will start its toss timer.
    ResourceIdle(ResourceName),
    /// An idle resource was forgotten, with its value block (the toss cache was
    /// full; the oldest idle resource goes). The distributed layer will tell the
    /// directory (`remove`) here.
    ResourceDropped(ResourceName),
}
