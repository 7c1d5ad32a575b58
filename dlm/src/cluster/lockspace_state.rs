//! One lockspace on one node: its state, application calls on process copies,
//! sending calls to masters, routing messages, and the directory share. The master
//! side is in `master.rs`, the holder side in `holder.rs`, recovery in
//! `recovery.rs`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::error::{DlmError, EAGAIN, FlagError};
use crate::flags::{LockFlags, validate_conversion, validate_lock_flags, validate_unlock_flags};
use crate::id_map::IdMap;
use crate::lock::{LockId, Owner};
use crate::lockspace::{LockRequest, Lockspace, UnlockRequest};
use crate::output::{Completion, SbFlags, Status};
use crate::resource::ResourceName;

use super::directory::directory_node;
use super::master::MainRequest;
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
    pub(crate) holders: IdMap<LockId, (NodeId, u32)>,
    pub(crate) by_holder: IdMap<(NodeId, u32), LockId>,
    /// Forgotten resources whose `Remove` waits for the end of recovery.
    pub(crate) pending_removes: Vec<Vec<u8>>,
    // ----- directory side
    /// For names whose directory node is this node: their master.
    pub(crate) directory: BTreeMap<Vec<u8>, NodeId>,
    // ----- requester side
    /// Cached masters of names this node looked up.
    pub(crate) masters: BTreeMap<Vec<u8>, NodeId>,
    /// Lookups outstanding (one per name), each with the local locks whose calls
    /// wait for its reply (a listed lock may be gone or sent since: checked then).
    pub(crate) lookups: BTreeMap<Vec<u8>, Vec<u32>>,
    /// Iterated in id order where order shows (views, recovery messages).
    pub(crate) locks: IdMap<u32, LocalLock>,
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
            holders: IdMap::default(),
            by_holder: IdMap::default(),
            pending_removes: Vec::new(),
            directory: BTreeMap::new(),
            masters: BTreeMap::new(),
            lookups: BTreeMap::new(),
            locks: IdMap::default(),
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
        let mut views: Vec<LocalLockView> = self.locks.iter().map(|(id, l)| l.view(*id)).collect();
        views.sort_unstable_by_key(|v| v.id);
        views
    }

    // ----- application calls --------------------------------------------------

    /// Calls waiting to be sent. While the lockspace runs, a call waits only for
    /// the lookup of its name (`dispatch` sends every other call at once), and
    /// is listed with it: counting the lists keeps an application call free of a
    /// scan of every lock this node holds (the count may include calls sent or
    /// gone since — a conservative bound; checked in debug builds). While it
    /// recovers, the scan.
    fn parked(&self) -> usize {
        if self.phase == Phase::Running {
            let listed: usize = self.lookups.values().map(Vec::len).sum();
            debug_assert!(self.locks.values().filter(|l| l.has_unsent()).count() <= listed);
            return listed;
        }
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
                self.start_lookup(name, local, out);
                return;
            };
            if master == self.me
                && let MainOp::Request { mode, flags, lvb } = op
                && let Ok(name) = ResourceName::new(&lock.name)
            {
                // Mastered here: the master's work directly, on a copy of the
                // name kept inline (what the message would carry).
                let request = MainRequest {
                    pid: lock.owner.pid,
                    mode: *mode,
                    flags: *flags,
                    bast: lock.bast,
                    lvb: lvb.clone(),
                };
                self.mark_sent(local, master);
                self.master_request(self.me, local, name.as_bytes(), request, out);
                return self.dispatch_extra(local, out);
            }
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
            self.mark_sent(local, master);
            self.send_op(master, msg, out);
        }
        self.dispatch_extra(local, out);
    }

    /// Lock `local`'s main call goes to `master`.
    fn mark_sent(&mut self, local: u32, master: NodeId) {
        if let Some(lock) = self.locks.get_mut(&local) {
            lock.master = Some(master);
            if let Some((_, sent)) = &mut lock.main {
                *sent = true;
            }
        }
    }

    /// The second half of [`Self::dispatch`]: a cancel or forced unlock once
    /// the main call is on its way.
    fn dispatch_extra(&mut self, local: u32, out: &mut VecDeque<Output>) {
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

    /// Asks the directory for `name`'s master, unless a lookup is on its way;
    /// either way lock `local`'s call waits for the reply.
    fn start_lookup(&mut self, name: Vec<u8>, local: u32, out: &mut VecDeque<Output>) {
        if let Some(waiting) = self.lookups.get_mut(&name) {
            waiting.push(local);
            return;
        }
        let Some(dir) = directory_node(&self.members, &name) else {
            return;
        };
        self.lookups.insert(name.clone(), vec![local]);
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
        if epoch != self.epoch || self.phase != Phase::Running {
            return;
        }
        let Some(mut waiting) = self.lookups.remove(&name) else {
            return;
        };
        // In id order, as the locks were made (a lock listed twice goes once).
        waiting.sort_unstable();
        waiting.dedup();
        if master == 0 {
            // The directory node could not take the lookup: refuse the waiting calls.
            for id in waiting {
                let refuse = self.locks.get(&id).is_some_and(|l| {
                    l.name == name && matches!(l.main, Some((MainOp::Request { .. }, false)))
                });
                if !refuse {
                    continue;
                }
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
        for id in waiting {
            if self
                .locks
                .get(&id)
                .is_some_and(|l| l.name == name && l.has_unsent())
            {
                self.dispatch(id, out);
            }
        }
    }
}
