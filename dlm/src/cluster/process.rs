//! Process copies: this node's own locks, wherever they are mastered.

use crate::flags::LockFlags;
use crate::lock::Owner;
use crate::mode::Mode;

use super::wire::NodeId;

/// The main call in progress on a lock (at most one at a time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MainOp {
    Request {
        mode: Mode,
        flags: LockFlags,
        lvb: Option<Vec<u8>>,
    },
    Convert {
        mode: Mode,
        flags: LockFlags,
        lvb: Option<Vec<u8>>,
    },
    Unlock {
        flags: LockFlags,
        lvb: Option<Vec<u8>>,
    },
}

/// A call made while the main one is in progress: a cancel, or a forced unlock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ExtraOp {
    Cancel,
    ForceUnlock {
        flags: LockFlags,
        lvb: Option<Vec<u8>>,
    },
}

/// One of this node's locks.
#[derive(Debug, Clone)]
pub(crate) struct LocalLock {
    pub(crate) owner: Owner,
    pub(crate) name: Vec<u8>,
    /// The mode held, as the master last reported it (or as recovery resolved it).
    pub(crate) granted: Option<Mode>,
    /// The call in progress and whether it has been sent to the master.
    pub(crate) main: Option<(MainOp, bool)>,
    pub(crate) extra: Option<(ExtraOp, bool)>,
    /// The master holding the master copy (`None` until the first request is sent,
    /// or while recovery re-masters it).
    pub(crate) master: Option<NodeId>,
    pub(crate) persistent: bool,
    pub(crate) bast: bool,
    /// The value block last read or written through the master, and its validity:
    /// what this lock offers a new master in recovery (§3.6).
    pub(crate) lvb: Option<Vec<u8>>,
    pub(crate) lvb_valid: bool,
    /// Its master left: it is reported to the new master in recovery.
    pub(crate) remaster: bool,
}

/// What kind of call is in progress on a lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingKind {
    /// A new lock waits to be granted.
    Request,
    /// A conversion is in progress.
    Convert,
    /// An unlock is in progress.
    Unlock,
}

/// A read-only view of one of this node's locks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalLockView {
    /// The application's lock id on this node.
    pub id: u32,
    /// Owner.
    pub owner: Owner,
    /// Resource.
    pub name: Vec<u8>,
    /// Mode held as last reported by the master.
    pub granted: Option<Mode>,
    /// The main call in progress and its mode (for a request or conversion).
    pub pending: Option<(PendingKind, Option<Mode>)>,
    /// The flags of the call in progress.
    pub pending_flags: LockFlags,
    /// A cancel is in progress too.
    pub cancelling: bool,
    /// A forced unlock is in progress too.
    pub force_unlocking: bool,
    /// The node holding the master copy.
    pub master: Option<NodeId>,
}

impl LocalLock {
    pub(crate) fn view(&self, id: u32) -> LocalLockView {
        let pending = self.main.as_ref().map(|(op, _)| match op {
            MainOp::Request { mode, .. } => (PendingKind::Request, Some(*mode)),
            MainOp::Convert { mode, .. } => (PendingKind::Convert, Some(*mode)),
            MainOp::Unlock { .. } => (PendingKind::Unlock, None),
        });
        LocalLockView {
            id,
            owner: self.owner,
            name: self.name.clone(),
            granted: self.granted,
            pending,
            pending_flags: match &self.main {
                Some((MainOp::Request { flags, .. } | MainOp::Convert { flags, .. }, _))
                | Some((MainOp::Unlock { flags, .. }, _)) => *flags,
                None => LockFlags::EMPTY,
            },
            cancelling: matches!(self.extra, Some((ExtraOp::Cancel, _))),
            force_unlocking: matches!(self.extra, Some((ExtraOp::ForceUnlock { .. }, _))),
            master: self.master,
        }
    }

    /// Whether something waits to be sent to the master.
    pub(crate) fn has_unsent(&self) -> bool {
        matches!(self.main, Some((_, false))) || matches!(self.extra, Some((_, false)))
    }
}

impl LocalLockView {
    /// The mode the application may rely on now: the granted mode, except that an
    /// unlock or a down-conversion gives rights away from the moment it is asked
    /// for, and a PR↔CW conversion in progress may rely only on CR (the master may
    /// grant the new mode, and others a mode compatible with it, before the
    /// completion arrives), and a conversion asked with CONVDEADLK may rely only on
    /// NL (the master may demote it to NL and report that only with the completion).
    pub fn relied_mode(&self) -> Option<Mode> {
        let held = self.granted?;
        if self.force_unlocking {
            return None;
        }
        match self.pending {
            Some((PendingKind::Unlock, _)) => None,
            Some((PendingKind::Convert, _))
                if self.pending_flags.contains(LockFlags::CONVDEADLK) =>
            {
                Some(Mode::Nl)
            }
            Some((PendingKind::Convert, Some(to))) => match held.conversion_to(to) {
                crate::Conversion::Down | crate::Conversion::Same => Some(to),
                crate::Conversion::Middle => Some(Mode::Cr),
                crate::Conversion::Up => Some(held),
            },
            _ => Some(held),
        }
    }
}
