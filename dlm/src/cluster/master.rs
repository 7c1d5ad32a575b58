//! The master side of a lockspace: calls from holders run on the engine, its
//! outputs go back to the holders as ASTs and BASTs, idle resources are forgotten
//! and their directory nodes told.

use std::collections::VecDeque;

use crate::error::{DlmError, ENOENT};
use crate::flags::LockFlags;
use crate::lock::{LockId, Owner};
use crate::lockspace::{LockRequest, UnlockRequest};
use crate::output::Output as EngineOutput;

use super::directory::directory_node;
use super::lockspace_state::{LsState, Phase};
use super::node::Output;
use super::wire::{Msg, NodeId, OpKind};

/// What a new lock asks of its master (a `Request` message's call fields).
pub(crate) struct MainRequest {
    pub(crate) pid: u32,
    pub(crate) mode: crate::Mode,
    pub(crate) flags: LockFlags,
    pub(crate) bast: bool,
    pub(crate) lvb: Option<Vec<u8>>,
}

impl LsState {
    /// A call from a holder (`from`, possibly this node) on a resource this node
    /// should master.
    pub(crate) fn master_op(&mut self, from: NodeId, msg: Msg, out: &mut VecDeque<Output>) {
        match msg {
            Msg::Request {
                local,
                pid,
                name,
                mode,
                flags,
                bast,
                lvb,
                ..
            } => {
                let request = MainRequest {
                    pid,
                    mode,
                    flags,
                    bast,
                    lvb,
                };
                self.master_request(from, local, &name, request, out)
            }
            Msg::Convert {
                local,
                mode,
                flags,
                bast,
                lvb,
                ..
            } => {
                let Some((id, owner)) = self.holder_lock(from, local) else {
                    self.refuse(
                        from,
                        local,
                        OpKind::Convert,
                        &DlmError::NoSuchLock(LockId(local)),
                        out,
                    );
                    return;
                };
                let req = LockRequest {
                    owner,
                    name: Vec::new(),
                    mode,
                    flags,
                    lock: Some(id),
                    lvb: lvb.map(Vec::into_boxed_slice),
                    bast,
                };
                match self.engine.lock(req) {
                    Ok(_) => self.drain_engine(out),
                    Err(e) => self.refuse(from, local, OpKind::Convert, &e, out),
                }
            }
            Msg::Unlock {
                local, flags, lvb, ..
            } => {
                let op = if flags.contains(LockFlags::CANCEL) {
                    OpKind::Cancel
                } else {
                    OpKind::Unlock
                };
                // The holder map names the lock; `unlock_held` does not read
                // the request's owner (the lock's is the engine's own record).
                let Some(&id) = self.by_holder.get(&(from, local)) else {
                    self.refuse(from, local, op, &DlmError::NoSuchLock(LockId(local)), out);
                    return;
                };
                let req = UnlockRequest {
                    owner: Owner::new(from, 0),
                    lock: id,
                    flags,
                    lvb: lvb.map(Vec::into_boxed_slice),
                };
                match self.engine.unlock_held(req) {
                    Ok(()) => self.drain_engine(out),
                    Err(e) => self.refuse(from, local, op, &e, out),
                }
            }
            _ => {}
        }
    }

    /// A new lock for `name` from holder `(from, local)`: the `Request`
    /// message's work, which a lock of this node mastered here is given
    /// directly (no copy of the name, no message).
    pub(crate) fn master_request(
        &mut self,
        from: NodeId,
        local: u32,
        name: &[u8],
        request: MainRequest,
        out: &mut VecDeque<Output>,
    ) {
        let lockspace = self.id;
        if !self.mastered.contains(name) {
            self.reply(from, Msg::NotMaster { lockspace, local }, out);
            return;
        }
        if self.by_holder.contains_key(&(from, local)) {
            return; // a duplicate of a lock already here
        }
        let req = LockRequest {
            owner: Owner::new(from, request.pid),
            name: Vec::new(),
            mode: request.mode,
            flags: request.flags,
            lock: None,
            lvb: request.lvb.map(Vec::into_boxed_slice),
            bast: request.bast,
        };
        match self.engine.lock_named(req, name) {
            Ok(id) => {
                self.holders.insert(id, (from, local));
                self.by_holder.insert((from, local), id);
                self.drain_engine(out);
            }
            Err(e) => self.refuse(from, local, OpKind::Request, &e, out),
        }
    }

    pub(crate) fn holder_lock(&self, from: NodeId, local: u32) -> Option<(LockId, Owner)> {
        let id = *self.by_holder.get(&(from, local))?;
        let info = self.engine.lock_info(id)?;
        Some((id, info.owner))
    }

    pub(crate) fn reply(&mut self, to: NodeId, msg: Msg, out: &mut VecDeque<Output>) {
        if to == self.me {
            self.message(to, msg, out);
        } else {
            self.send(to, &msg, out);
        }
    }

    pub(crate) fn refuse(
        &mut self,
        to: NodeId,
        local: u32,
        op: OpKind,
        e: &DlmError,
        out: &mut VecDeque<Output>,
    ) {
        let errno = if matches!(e, DlmError::NoSuchLock(_)) {
            ENOENT
        } else {
            e.errno()
        };
        let msg = Msg::Refused {
            lockspace: self.id,
            local,
            op,
            errno,
        };
        self.reply(to, msg, out);
    }

    /// Routes the engine's outputs: ASTs to their holders (messages for remote
    /// ones), forgotten resources to the directory.
    pub(crate) fn drain_engine(&mut self, out: &mut VecDeque<Output>) {
        while let Some(output) = self.engine.poll_output() {
            match output {
                EngineOutput::Completion(c) => {
                    let Some(&(node, local)) = self.holders.get(&c.lock) else {
                        continue;
                    };
                    if c.granted.is_none() && self.engine.lock_info(c.lock).is_none() {
                        self.holders.remove(&c.lock);
                        self.by_holder.remove(&(node, local));
                    }
                    let lvb = c.lvb.map(|b| b.into_vec());
                    if node == self.me {
                        // What the `Ast` message to this node would do.
                        if self.members.contains(&node) {
                            self.apply_ast(node, local, c.status, c.flags, c.granted, lvb, out);
                        }
                        continue;
                    }
                    let msg = Msg::Ast {
                        lockspace: self.id,
                        local,
                        status: c.status,
                        sb_flags: c.flags.bits() as u8,
                        granted: c.granted,
                        lvb,
                    };
                    self.send(node, &msg, out);
                }
                EngineOutput::Blocking { lock, mode, .. } => {
                    let Some(&(node, local)) = self.holders.get(&lock) else {
                        continue;
                    };
                    let msg = Msg::Bast {
                        lockspace: self.id,
                        local,
                        mode,
                    };
                    self.reply(node, msg, out);
                }
                EngineOutput::ResourceIdle(_) => {}
                EngineOutput::ResourceDropped(name) => {
                    self.forget_resource(name.as_bytes().to_vec(), out)
                }
            }
        }
    }

    /// This node stops mastering `name`; its directory node is told (after
    /// recovery, if recovering: the directory is being rebuilt).
    pub(crate) fn forget_resource(&mut self, name: Vec<u8>, out: &mut VecDeque<Output>) {
        if !self.mastered.remove(&name) {
            return;
        }
        out.push_back(Output::Forgotten {
            lockspace: self.id,
            name: name.clone(),
        });
        self.masters.remove(&name);
        if self.lookups.contains_key(&name) {
            // This node's own lookup is on its way and the directory still names this
            // node: its reply makes this node master again. A Remove now would reach
            // the directory after the lookup and drop the entry it answered with.
            return;
        }
        if self.phase != Phase::Running {
            self.pending_removes.push(name);
            return;
        }
        self.send_remove(name, out);
    }

    pub(crate) fn send_remove(&mut self, name: Vec<u8>, out: &mut VecDeque<Output>) {
        let Some(dir) = directory_node(&self.members, &name) else {
            return;
        };
        if dir == self.me {
            if self.directory.get(&name) == Some(&self.me) {
                self.directory.remove(&name);
            }
        } else {
            let msg = Msg::Remove {
                lockspace: self.id,
                epoch: self.epoch,
                name,
            };
            self.send(dir, &msg, out);
        }
    }

    /// The toss timer: forget idle resources (and masterships never used).
    pub(crate) fn toss_idle(&mut self, out: &mut VecDeque<Output>) {
        if self.phase != Phase::Running {
            return;
        }
        let idle: Vec<Vec<u8>> = self
            .engine
            .idle_resources()
            .map(|n| n.as_bytes().to_vec())
            .collect();
        // Not while this node's own lookup of the name is on its way: the directory
        // would answer it before the Remove and then drop the entry it answered with.
        let idle: Vec<Vec<u8>> = idle
            .into_iter()
            .filter(|n| !self.lookups.contains_key(n))
            .collect();
        for name in idle {
            self.engine.drop_idle(&name);
            self.forget_resource(name, out);
        }
        let unused: Vec<Vec<u8>> = self
            .mastered
            .iter()
            .filter(|n| !self.lookups.contains_key(*n))
            .filter(|n| self.engine.resource(n).is_none())
            .filter(|n| !self.locks.values().any(|l| &l.name == *n && l.has_unsent()))
            .cloned()
            .collect();
        for name in unused {
            self.forget_resource(name, out);
        }
    }
}
