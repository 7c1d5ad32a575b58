//! One lockspace on one node in normal operation: application calls on process
//! copies, lookups, the directory share, and the master side driving the engine.
//! Recovery is in `recovery.rs`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::error::{DlmError, EAGAIN, ENOENT, FlagError};
use crate::flags::{LockFlags, validate_conversion, validate_lock_flags, validate_unlock_flags};
use crate::lock::{LockId, Owner};
use crate::lockspace::{LockRequest, Lockspace, UnlockRequest};
use crate::lvb::{LvbTransfer, lvb_transfer};
use crate::output::{Completion, Output as EngineOutput, SbFlags, Status};
use crate::resource::ResourceName;

use super::directory::directory_node;
use super::node::{DlmConfig, Output};
use super::process::{ExtraOp, LocalLock, LocalLockView, MainOp};
use super::wire::{LockspaceId, Msg, NodeId, OpKind, RecoveredLock, encode};

/// Where a lockspace is in its life on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Locking runs.
    Running,
    /// Stopped: waiting until every failed node is fenced.
    AwaitFence,
    /// Round 1 sent: waiting for every member's mastered names.
    Names,
    /// Round 2 sent: waiting for every member's locks for the new masters.
    Locks,
}

/// A lockspace on this node.
#[derive(Debug)]
pub(crate) struct LsState {
    pub(crate) id: LockspaceId,
    pub(crate) me: NodeId,
    pub(crate) epoch: u64,
    /// Members, ascending.
    pub(crate) members: Vec<NodeId>,
    pub(crate) phase: Phase,
    pub(crate) max_parked: usize,
    pub(crate) max_held: usize,
    pub(crate) max_early: usize,
    // ----- master side
    pub(crate) engine: Lockspace,
    /// Resources this node is master of (recorded as such in the directory).
    pub(crate) mastered: BTreeSet<Vec<u8>>,
    /// Engine lock → (holder node, holder's process-copy id), and back.
    pub(crate) holders: BTreeMap<LockId, (NodeId, u32)>,
    pub(crate) by_holder: BTreeMap<(NodeId, u32), LockId>,
    /// Forgotten resources whose `Remove` waits for the end of recovery.
    pub(crate) pending_removes: Vec<Vec<u8>>,
    // ----- directory side
    /// For names whose directory node is this node: their master.
    pub(crate) directory: BTreeMap<Vec<u8>, NodeId>,
    // ----- requester side
    /// Cached masters of names this node looked up.
    pub(crate) masters: BTreeMap<Vec<u8>, NodeId>,
    /// Lookups outstanding (one per name).
    pub(crate) lookups: BTreeSet<Vec<u8>>,
    pub(crate) locks: BTreeMap<u32, LocalLock>,
    pub(crate) next_local: u32,
    // ----- recovery
    /// Nodes departed since the last completed recovery (their locks are purged).
    pub(crate) lost: BTreeSet<NodeId>,
    /// Failed nodes not reported fenced yet.
    pub(crate) awaiting_fence: BTreeSet<NodeId>,
    pub(crate) names_from: BTreeMap<NodeId, Vec<Vec<u8>>>,
    pub(crate) locks_from: BTreeMap<NodeId, Vec<RecoveredLock>>,
    /// Every surviving master's names (round 1), name → master.
    pub(crate) all_masters: BTreeMap<Vec<u8>, NodeId>,
    /// Requests from other nodes received while stopped, replayed at resume.
    pub(crate) held: VecDeque<(NodeId, Msg)>,
    /// Recovery messages of an epoch this node has not reached yet.
    pub(crate) future: Vec<(NodeId, Msg)>,
}

impl LsState {
    pub(crate) fn new(id: LockspaceId, me: NodeId, engine: Lockspace, config: &DlmConfig) -> Self {
        LsState {
            id,
            me,
            epoch: 0,
            members: Vec::new(),
            phase: Phase::AwaitFence,
            max_parked: config.max_parked,
            max_held: config.max_held,
            max_early: config.max_early,
            engine,
            mastered: BTreeSet::new(),
            holders: BTreeMap::new(),
            by_holder: BTreeMap::new(),
            pending_removes: Vec::new(),
            directory: BTreeMap::new(),
            masters: BTreeMap::new(),
            lookups: BTreeSet::new(),
            locks: BTreeMap::new(),
            next_local: 1,
            lost: BTreeSet::new(),
            awaiting_fence: BTreeSet::new(),
            names_from: BTreeMap::new(),
            locks_from: BTreeMap::new(),
            all_masters: BTreeMap::new(),
            held: VecDeque::new(),
            future: Vec::new(),
        }
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    pub(crate) fn engine(&self) -> &Lockspace {
        &self.engine
    }

    pub(crate) fn is_recovering(&self) -> bool {
        self.phase != Phase::Running
    }

    pub(crate) fn member_list(&self) -> &[NodeId] {
        &self.members
    }

    /// Granted master copies here: (resource, holder node, holder's lock id, mode).
    pub(crate) fn master_copies(&self) -> Vec<(Vec<u8>, NodeId, u32, crate::Mode)> {
        let mut copies = Vec::new();
        for view in self.engine.resources() {
            for lock in view.granted.iter().chain(&view.converting) {
                let (Some(mode), Some(&(node, local))) = (lock.granted, self.holders.get(&lock.id))
                else {
                    continue;
                };
                copies.push((view.name.as_bytes().to_vec(), node, local, mode));
            }
        }
        copies
    }

    pub(crate) fn local_views(&self) -> Vec<LocalLockView> {
        self.locks.iter().map(|(id, l)| l.view(*id)).collect()
    }

    // ----- application calls --------------------------------------------------

    fn parked(&self) -> usize {
        self.locks.values().filter(|l| l.has_unsent()).count()
    }

    fn check_lvb(&self, flags: LockFlags, lvb: Option<&[u8]>) -> Result<(), DlmError> {
        let expected = self.engine.config().lvb_len;
        match lvb {
            None if flags.contains(LockFlags::VALBLK) => Err(FlagError::ValblkWithoutLvb.into()),
            Some(v) if v.len() != expected => Err(DlmError::LvbLength {
                expected,
                got: v.len(),
            }),
            _ => Ok(()),
        }
    }

    fn owned(&mut self, owner: Owner, id: LockId) -> Result<&mut LocalLock, DlmError> {
        let lock = self.locks.get_mut(&id.0).ok_or(DlmError::NoSuchLock(id))?;
        if lock.owner != owner {
            return Err(DlmError::NotOwner(id));
        }
        Ok(lock)
    }

    pub(crate) fn app_lock(
        &mut self,
        req: LockRequest,
        out: &mut VecDeque<Output>,
    ) -> Result<LockId, DlmError> {
        validate_lock_flags(req.flags, req.mode)?;
        self.check_lvb(req.flags, req.lvb.as_deref())?;
        if self.parked() >= self.max_parked {
            return Err(DlmError::TryAgain);
        }
        let lvb = req.lvb.map(|b| b.into_vec());
        if req.flags.contains(LockFlags::CONVERT) {
            let id = req.lock.ok_or(FlagError::ConvertWithoutLockId)?;
            let lock = self.owned(req.owner, id)?;
            let (None, None, Some(held)) = (&lock.main, &lock.extra, lock.granted) else {
                return Err(DlmError::Busy(id));
            };
            validate_conversion(req.flags, held, req.mode)?;
            lock.bast = req.bast;
            lock.main = Some((
                MainOp::Convert {
                    mode: req.mode,
                    flags: req.flags,
                    lvb,
                },
                false,
            ));
            self.dispatch(id.0, out);
            return Ok(id);
        }
        ResourceName::new(&req.name)?;
        let local = self.allocate_local();
        self.locks.insert(
            local,
            LocalLock {
                owner: req.owner,
                name: req.name,
                granted: None,
                main: Some((
                    MainOp::Request {
                        mode: req.mode,
                        flags: req.flags,
                        lvb: lvb.clone(),
                    },
                    false,
                )),
                extra: None,
                master: None,
                persistent: req.flags.contains(LockFlags::PERSISTENT),
                bast: req.bast,
                lvb,
                lvb_valid: true,
                remaster: false,
            },
        );
        self.dispatch(local, out);
        Ok(LockId(local))
    }

    fn allocate_local(&mut self) -> u32 {
        loop {
            let id = self.next_local;
            self.next_local = self.next_local.wrapping_add(1).max(1);
            if !self.locks.contains_key(&id) {
                return id;
            }
        }
    }

    pub(crate) fn app_unlock(
        &mut self,
        req: UnlockRequest,
        out: &mut VecDeque<Output>,
    ) -> Result<(), DlmError> {
        validate_unlock_flags(req.flags)?;
        self.check_lvb(req.flags, req.lvb.as_deref())?;
        if self.parked() >= self.max_parked {
            return Err(DlmError::TryAgain);
        }
        let lvb = req.lvb.map(|b| b.into_vec());
        let id = req.lock;
        let lock = self.owned(req.owner, id)?;
        if lock.extra.is_some() {
            return Err(DlmError::Busy(id));
        }
        let cancel = req.flags.contains(LockFlags::CANCEL);
        let force = req.flags.contains(LockFlags::FORCEUNLOCK);
        match (&lock.main, cancel) {
            (Some((MainOp::Request { .. } | MainOp::Convert { .. }, sent)), true) => {
                if !*sent {
                    // Never left this node: cancel it here.
                    self.cancel_locally(id.0, false, out);
                    return Ok(());
                }
                lock.extra = Some((ExtraOp::Cancel, false));
            }
            (_, true) => return Err(DlmError::Busy(id)),
            (None, false) if lock.granted.is_some() => {
                lock.main = Some((
                    MainOp::Unlock {
                        flags: req.flags,
                        lvb,
                    },
                    false,
                ));
            }
            (Some((MainOp::Request { .. } | MainOp::Convert { .. }, sent)), false) if force => {
                if !*sent {
                    if lock.granted.is_some() {
                        lock.main = Some((
                            MainOp::Unlock {
                                flags: req.flags,
                                lvb,
                            },
                            false,
                        ));
                    } else {
                        self.finish_locally(id.0, Status::Unlocked, SbFlags::default(), out);
                        return Ok(());
                    }
                } else {
                    lock.extra = Some((
                        ExtraOp::ForceUnlock {
                            flags: req.flags,
                            lvb,
                        },
                        false,
                    ));
                }
            }
            _ => return Err(DlmError::Busy(id)),
        }
        self.dispatch(id.0, out);
        Ok(())
    }

    /// Cancels the call in progress without the master: a new lock goes, a
    /// conversion leaves the lock at its granted mode (`demoted`: recovery lowered
    /// that mode on the way).
    pub(crate) fn cancel_locally(&mut self, local: u32, demoted: bool, out: &mut VecDeque<Output>) {
        let Some(lock) = self.locks.get_mut(&local) else {
            return;
        };
        lock.main = None;
        lock.extra = None;
        let sb = SbFlags {
            demoted,
            ..SbFlags::default()
        };
        if lock.granted.is_none() {
            self.finish_locally(local, Status::Cancelled, sb, out);
            return;
        }
        let completion = Completion {
            lock: LockId(local),
            owner: lock.owner,
            status: Status::Cancelled,
            flags: sb,
            granted: lock.granted,
            lvb: None,
        };
        out.push_back(Output::Completion {
            lockspace: self.id,
            completion,
        });
    }

    /// Removes a lock and reports `status` (Unlocked or Cancelled) for it.
    pub(crate) fn finish_locally(
        &mut self,
        local: u32,
        status: Status,
        flags: SbFlags,
        out: &mut VecDeque<Output>,
    ) {
        if let Some(lock) = self.locks.remove(&local) {
            out.push_back(Output::Completion {
                lockspace: self.id,
                completion: Completion {
                    lock: LockId(local),
                    owner: lock.owner,
                    status,
                    flags,
                    granted: None,
                    lvb: None,
                },
            });
        }
    }

    // ----- sending calls to masters --------------------------------------------

    /// Sends what lock `local` has waiting, if the lockspace runs and the master is
    /// known; otherwise starts a lookup or leaves it parked.
    pub(crate) fn dispatch(&mut self, local: u32, out: &mut VecDeque<Output>) {
        if self.phase != Phase::Running {
            return;
        }
        let Some(lock) = self.locks.get(&local) else {
            return;
        };
        if let Some((op, false)) = &lock.main {
            let master = match op {
                MainOp::Request { .. } => self.masters.get(&lock.name).copied(),
                _ => lock.master,
            };
            let Some(master) = master else {
                let name = lock.name.clone();
                self.start_lookup(name, out);
                return;
            };
            let msg = match op.clone() {
                MainOp::Request { mode, flags, lvb } => Msg::Request {
                    lockspace: self.id,
                    local,
                    pid: lock.owner.pid,
                    name: lock.name.clone(),
                    mode,
                    flags,
                    bast: lock.bast,
                    lvb,
                },
                MainOp::Convert { mode, flags, lvb } => Msg::Convert {
                    lockspace: self.id,
                    epoch: self.epoch,
                    local,
                    mode,
                    flags,
                    bast: lock.bast,
                    lvb,
                },
                MainOp::Unlock { flags, lvb } => Msg::Unlock {
                    lockspace: self.id,
                    epoch: self.epoch,
                    local,
                    flags,
                    lvb,
                },
            };
            if let Some(lock) = self.locks.get_mut(&local) {
                lock.master = Some(master);
                if let Some((_, sent)) = &mut lock.main {
                    *sent = true;
                }
            }
            self.send_op(master, msg, out);
        }
        let Some(lock) = self.locks.get(&local) else {
            return;
        };
        if matches!(lock.main, Some((_, false))) {
            return;
        }
        if let (Some((extra, false)), Some(master)) = (&lock.extra, lock.master) {
            let msg = match extra.clone() {
                ExtraOp::Cancel => Msg::Unlock {
                    lockspace: self.id,
                    epoch: self.epoch,
                    local,
                    flags: LockFlags::CANCEL,
                    lvb: None,
                },
                ExtraOp::ForceUnlock { flags, lvb } => Msg::Unlock {
                    lockspace: self.id,
                    epoch: self.epoch,
                    local,
                    flags,
                    lvb,
                },
            };
            if let Some(lock) = self.locks.get_mut(&local) {
                if let Some((_, sent)) = &mut lock.extra {
                    *sent = true;
                }
            }
            self.send_op(master, msg, out);
        }
    }

    /// A call for a master: run it here when this node is the master (no message).
    fn send_op(&mut self, master: NodeId, msg: Msg, out: &mut VecDeque<Output>) {
        if master == self.me {
            self.master_op(self.me, msg, out);
        } else {
            out.push_back(Output::Send {
                to: master,
                bytes: encode(&msg),
            });
        }
    }

    pub(crate) fn send(&self, to: NodeId, msg: &Msg, out: &mut VecDeque<Output>) {
        out.push_back(Output::Send {
            to,
            bytes: encode(msg),
        });
    }

    fn start_lookup(&mut self, name: Vec<u8>, out: &mut VecDeque<Output>) {
        if self.lookups.contains(&name) {
            return;
        }
        let Some(dir) = directory_node(&self.members, &name) else {
            return;
        };
        self.lookups.insert(name.clone());
        let msg = Msg::Lookup {
            lockspace: self.id,
            epoch: self.epoch,
            name,
        };
        if dir == self.me {
            self.dir_lookup(self.me, msg, out);
        } else {
            self.send(dir, &msg, out);
        }
    }

    /// Sends every parked call (after a lookup, or at the end of recovery).
    pub(crate) fn dispatch_all(&mut self, out: &mut VecDeque<Output>) {
        let ids: Vec<u32> = self
            .locks
            .iter()
            .filter(|(_, l)| l.has_unsent())
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.dispatch(id, out);
        }
    }

    // ----- messages ---------------------------------------------------------------

    pub(crate) fn message(&mut self, from: NodeId, msg: Msg, out: &mut VecDeque<Output>) {
        match msg {
            Msg::RecoverNames { .. } | Msg::RecoverLocks { .. } => {
                self.recovery_message(from, msg, out)
            }
            _ if !self.members.contains(&from) => {}
            Msg::Lookup { .. }
            | Msg::Remove { .. }
            | Msg::Request { .. }
            | Msg::Convert { .. }
            | Msg::Unlock { .. }
                if self.phase != Phase::Running =>
            {
                self.hold(from, msg, out)
            }
            Msg::Lookup { .. } => self.dir_lookup(from, msg, out),
            Msg::Remove { epoch, name, .. } => {
                if epoch == self.epoch && self.directory.get(&name) == Some(&from) {
                    self.directory.remove(&name);
                }
            }
            Msg::Request { .. } | Msg::Convert { .. } | Msg::Unlock { .. } => {
                self.master_op(from, msg, out)
            }
            Msg::LookupReply {
                epoch,
                name,
                master,
                ..
            } => self.lookup_reply(epoch, name, master, out),
            Msg::Ast {
                local,
                status,
                sb_flags,
                granted,
                lvb,
                ..
            } => {
                let sb = SbFlags {
                    demoted: sb_flags & 1 != 0,
                    valnotvalid: sb_flags & 2 != 0,
                    altmode: sb_flags & 4 != 0,
                };
                self.apply_ast(from, local, status, sb, granted, lvb, out);
            }
            Msg::Bast { local, mode, .. } => self.apply_bast(from, local, mode, out),
            Msg::Refused {
                local, op, errno, ..
            } => self.apply_refused(from, local, op, errno, out),
            Msg::NotMaster { local, .. } => self.not_master(from, local, out),
        }
    }

    fn hold(&mut self, from: NodeId, msg: Msg, out: &mut VecDeque<Output>) {
        if self.held.len() < self.max_held {
            self.held.push_back((from, msg));
            return;
        }
        // Full: refuse rather than grow (bounded queues); the caller sees EAGAIN.
        let lockspace = self.id;
        let reply = match msg {
            Msg::Lookup { epoch, name, .. } => Some(Msg::LookupReply {
                lockspace,
                epoch,
                name,
                master: 0,
            }),
            Msg::Request { local, .. } => Some(Msg::Refused {
                lockspace,
                local,
                op: OpKind::Request,
                errno: EAGAIN,
            }),
            Msg::Convert { local, .. } => Some(Msg::Refused {
                lockspace,
                local,
                op: OpKind::Convert,
                errno: EAGAIN,
            }),
            Msg::Unlock { local, flags, .. } => Some(Msg::Refused {
                lockspace,
                local,
                op: if flags.contains(LockFlags::CANCEL) {
                    OpKind::Cancel
                } else {
                    OpKind::Unlock
                },
                errno: EAGAIN,
            }),
            _ => None,
        };
        if let Some(reply) = reply {
            self.send(from, &reply, out);
        }
    }

    /// Replays what was held during recovery.
    pub(crate) fn replay_held(&mut self, out: &mut VecDeque<Output>) {
        let held = std::mem::take(&mut self.held);
        for (from, msg) in held {
            if self.phase != Phase::Running {
                self.held.push_back((from, msg));
                continue;
            }
            self.message(from, msg, out);
        }
    }

    // ----- directory side -------------------------------------------------------

    fn dir_lookup(&mut self, from: NodeId, msg: Msg, out: &mut VecDeque<Output>) {
        let Msg::Lookup { epoch, name, .. } = msg else {
            return;
        };
        // A lookup of another epoch was made against another directory; its sender
        // forgot it when it entered recovery and will ask again.
        if epoch != self.epoch || directory_node(&self.members, &name) != Some(self.me) {
            return;
        }
        let master = *self.directory.entry(name.clone()).or_insert(from);
        if from == self.me {
            self.lookup_reply(epoch, name, master, out);
        } else {
            let reply = Msg::LookupReply {
                lockspace: self.id,
                epoch,
                name,
                master,
            };
            self.send(from, &reply, out);
        }
    }

    fn lookup_reply(
        &mut self,
        epoch: u64,
        name: Vec<u8>,
        master: NodeId,
        out: &mut VecDeque<Output>,
    ) {
        if epoch != self.epoch || self.phase != Phase::Running || !self.lookups.remove(&name) {
            return;
        }
        if master == 0 {
            // The directory node could not take the lookup: refuse the waiting calls.
            let waiting: Vec<u32> = self
                .locks
                .iter()
                .filter(|(_, l)| {
                    l.name == name && matches!(l.main, Some((MainOp::Request { .. }, false)))
                })
                .map(|(id, _)| *id)
                .collect();
            for id in waiting {
                if let Some(lock) = self.locks.remove(&id) {
                    out.push_back(Output::Refused {
                        lockspace: self.id,
                        lock: LockId(id),
                        owner: lock.owner,
                        errno: EAGAIN,
                    });
                }
            }
            return;
        }
        if master == self.me {
            self.mastered.insert(name.clone());
        }
        self.masters.insert(name.clone(), master);
        let waiting: Vec<u32> = self
            .locks
            .iter()
            .filter(|(_, l)| l.name == name && l.has_unsent())
            .map(|(id, _)| *id)
            .collect();
        for id in waiting {
            self.dispatch(id, out);
        }
    }

    // ----- master side ------------------------------------------------------------

    /// A call from a holder (`from`, possibly this node) on a resource this node
    /// should master.
    pub(crate) fn master_op(&mut self, from: NodeId, msg: Msg, out: &mut VecDeque<Output>) {
        let lockspace = self.id;
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
                if !self.mastered.contains(&name) {
                    self.reply(from, Msg::NotMaster { lockspace, local }, out);
                    return;
                }
                if self.by_holder.contains_key(&(from, local)) {
                    return; // a duplicate of a lock already here
                }
                let req = LockRequest {
                    owner: Owner::new(from, pid),
                    name,
                    mode,
                    flags,
                    lock: None,
                    lvb: lvb.map(Vec::into_boxed_slice),
                    bast,
                };
                match self.engine.lock(req) {
                    Ok(id) => {
                        self.holders.insert(id, (from, local));
                        self.by_holder.insert((from, local), id);
                        self.drain_engine(out);
                    }
                    Err(e) => self.refuse(from, local, OpKind::Request, &e, out),
                }
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
                let Some((id, owner)) = self.holder_lock(from, local) else {
                    self.refuse(from, local, op, &DlmError::NoSuchLock(LockId(local)), out);
                    return;
                };
                let req = UnlockRequest {
                    owner,
                    lock: id,
                    flags,
                    lvb: lvb.map(Vec::into_boxed_slice),
                };
                match self.engine.unlock(req) {
                    Ok(()) => self.drain_engine(out),
                    Err(e) => self.refuse(from, local, op, &e, out),
                }
            }
            _ => {}
        }
    }

    fn holder_lock(&self, from: NodeId, local: u32) -> Option<(LockId, Owner)> {
        let id = *self.by_holder.get(&(from, local))?;
        let info = self.engine.lock_info(id)?;
        Some((id, info.owner))
    }

    fn reply(&mut self, to: NodeId, msg: Msg, out: &mut VecDeque<Output>) {
        if to == self.me {
            self.message(to, msg, out);
        } else {
            self.send(to, &msg, out);
        }
    }

    fn refuse(
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
                    let msg = Msg::Ast {
                        lockspace: self.id,
                        local,
                        status: c.status,
                        sb_flags: c.flags.bits() as u8,
                        granted: c.granted,
                        lvb: c.lvb.map(|b| b.into_vec()),
                    };
                    self.reply(node, msg, out);
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
    fn forget_resource(&mut self, name: Vec<u8>, out: &mut VecDeque<Output>) {
        if !self.mastered.remove(&name) {
            return;
        }
        out.push_back(Output::Forgotten {
            lockspace: self.id,
            name: name.clone(),
        });
        self.masters.remove(&name);
        if self.lookups.contains(&name) {
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
            .filter(|n| !self.lookups.contains(n))
            .collect();
        for name in idle {
            self.engine.drop_idle(&name);
            self.forget_resource(name, out);
        }
        let unused: Vec<Vec<u8>> = self
            .mastered
            .iter()
            .filter(|n| !self.lookups.contains(*n))
            .filter(|n| self.engine.resource(n).is_none())
            .filter(|n| !self.locks.values().any(|l| &l.name == *n && l.has_unsent()))
            .cloned()
            .collect();
        for name in unused {
            self.forget_resource(name, out);
        }
    }

    // ----- holder side --------------------------------------------------------------

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

    fn apply_bast(
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

    fn apply_refused(
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
    fn not_master(&mut self, from: NodeId, local: u32, out: &mut VecDeque<Output>) {
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
