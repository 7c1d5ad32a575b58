//! The holder side of a lockspace: what masters answer about this node's locks
//! (completion and blocking ASTs, refusals, "not the master").

use std::collections::VecDeque;

use crate::flags::LockFlags;
use crate::lock::LockId;
use crate::lvb::{LvbTransfer, lvb_transfer};
use crate::output::{Completion, SbFlags, Status};

use super::lockspace_state::LsState;
use super::node::Output;
use super::process::{ExtraOp, MainOp};
use super::wire::{NodeId, OpKind};

impl LsState {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn apply_ast(
        &mut self,
        from: NodeId,
        local: u32,
        status: Status,
        sb: SbFlags,
        granted: Option<crate::Mode>,
        lvb: Option<Vec<u8>>,
        out: &mut VecDeque<Output>,
    ) {
        let Some(lock) = self.locks.get_mut(&local) else {
            return;
        };
        if lock.master != Some(from) {
            return; // from a master this lock has left (recovery resolved it)
        }
        let before = lock.granted;
        let main = lock.main.take();
        match status {
            Status::Cancelled => lock.extra = None,
            Status::Unlocked => {}
            Status::Granted | Status::WouldBlock | Status::Deadlock => {
                // The AST answers the main call; a cancel or forced unlock sent after
                // it is still on its way.
            }
        }
        if let (Status::Granted, Some(now)) = (status, granted) {
            if let Some(value) = &lvb {
                lock.lvb = Some(value.clone());
                lock.lvb_valid = !sb.valnotvalid;
            } else {
                // Without a read at this grant the copy could be older than the
                // block (others may have written since): it vouches for nothing any
                // more — unless this grant wrote our own buffer.
                let wrote = match &main {
                    Some((
                        MainOp::Convert {
                            flags,
                            lvb: Some(buf),
                            ..
                        },
                        _,
                    )) if flags.contains(LockFlags::VALBLK)
                        && lvb_transfer(before, now) == LvbTransfer::Write =>
                    {
                        Some((buf.clone(), !flags.contains(LockFlags::IVVALBLK)))
                    }
                    _ => None,
                };
                match wrote {
                    Some((buf, valid)) => {
                        lock.lvb = Some(buf);
                        lock.lvb_valid = valid;
                    }
                    None => lock.lvb = None,
                }
            }
        }
        lock.granted = granted;
        let owner = lock.owner;
        if granted.is_none() {
            self.locks.remove(&local);
        }
        out.push_back(Output::Completion {
            lockspace: self.id,
            completion: Completion {
                lock: LockId(local),
                owner,
                status,
                flags: sb,
                granted,
                lvb: lvb.map(Vec::into_boxed_slice),
            },
        });
    }

    pub(crate) fn apply_bast(
        &mut self,
        from: NodeId,
        local: u32,
        mode: crate::Mode,
        out: &mut VecDeque<Output>,
    ) {
        let Some(lock) = self.locks.get(&local) else {
            return;
        };
        if lock.master != Some(from) || !lock.bast {
            return;
        }
        out.push_back(Output::Blocking {
            lockspace: self.id,
            lock: LockId(local),
            owner: lock.owner,
            mode,
        });
    }

    pub(crate) fn apply_refused(
        &mut self,
        from: NodeId,
        local: u32,
        op: OpKind,
        errno: i32,
        out: &mut VecDeque<Output>,
    ) {
        let Some(lock) = self.locks.get_mut(&local) else {
            return;
        };
        if lock.master != Some(from) {
            return;
        }
        match op {
            OpKind::Request => {
                if !matches!(lock.main, Some((MainOp::Request { .. }, true))) {
                    return;
                }
                lock.main = None;
                lock.extra = None;
            }
            OpKind::Convert => {
                if !matches!(lock.main, Some((MainOp::Convert { .. }, true))) {
                    return;
                }
                lock.main = None;
            }
            OpKind::Unlock => {
                if matches!(lock.main, Some((MainOp::Unlock { .. }, true))) {
                    lock.main = None;
                } else if matches!(lock.extra, Some((ExtraOp::ForceUnlock { .. }, true))) {
                    lock.extra = None;
                } else {
                    return;
                }
            }
            OpKind::Cancel => {
                if !matches!(lock.extra, Some((ExtraOp::Cancel, true))) {
                    return;
                }
                lock.extra = None;
            }
            OpKind::Lookup => return,
        }
        let owner = lock.owner;
        if lock.granted.is_none() && lock.main.is_none() {
            self.locks.remove(&local);
        }
        out.push_back(Output::Refused {
            lockspace: self.id,
            lock: LockId(local),
            owner,
            errno,
        });
    }

    /// The node asked is not the master (it forgot the resource): look it up again.
    pub(crate) fn not_master(&mut self, from: NodeId, local: u32, out: &mut VecDeque<Output>) {
        let Some(lock) = self.locks.get_mut(&local) else {
            return;
        };
        if lock.master != Some(from) || !matches!(lock.main, Some((MainOp::Request { .. }, true))) {
            return;
        }
        if let Some((_, sent)) = &mut lock.main {
            *sent = false;
        }
        lock.master = None;
        let name = lock.name.clone();
        match lock.extra.take() {
            Some((ExtraOp::Cancel, _)) => {
                self.finish_locally(local, Status::Cancelled, SbFlags::default(), out);
                return;
            }
            Some((ExtraOp::ForceUnlock { .. }, _)) => {
                self.finish_locally(local, Status::Unlocked, SbFlags::default(), out);
                return;
            }
            None => {}
        }
        if self.masters.get(&name) == Some(&from) {
            self.masters.remove(&name);
        }
        self.dispatch(local, out);
    }
}
