//! One resource (the kernel's "rsb") on its master: the grant, convert and wait
//! queues, the grant rules of §3.5, conversion deadlock, blocking ASTs and the value
//! block.
//!
//! Every operation ends the same way: re-scan the queues until nothing more can be
//! granted ([`Resource::grant_pending`]), then tell the holders that block someone
//! ([`Resource::send_basts`]). So after any call the queues are at a fixpoint — no
//! grantable request is left waiting — which is the "no lost wake-up" property the
//! tests check after every random step.

use crate::id_map::IdMap;
use std::collections::VecDeque;

use crate::error::DlmError;
use crate::flags::{LockFlags, validate_conversion};
use crate::lock::{Lock, LockId, LockInfo, LockState, Owner};
use crate::lvb::{LvbTransfer, ResourceLvb, lvb_transfer};
use crate::mode::Mode;
use crate::output::{Completion, Output, SbFlags, Status};

/// The longest resource name (bytes; any bytes allowed).
pub const MAX_RESOURCE_NAME: usize = 64;

/// A resource name: up to 64 arbitrary bytes.
///
/// Kept inline (no heap allocation): the engine clones names into its maps and
/// outputs on every call, and a boxed name cost an allocation per clone — the
/// largest share of an uncontended lock+unlock pair. Ordered, compared and hashed
/// as its bytes (the same order as `&[u8]`).
///
/// ```
/// use phalanx_dlm::ResourceName;
/// assert!(ResourceName::new(b"inode:42").is_ok());
/// assert!(ResourceName::new(&[0u8; 65]).is_err());
/// assert!(ResourceName::new(b"a").unwrap() < ResourceName::new(b"ab").unwrap());
/// ```
#[derive(Clone)]
pub struct ResourceName {
    len: u8,
    bytes: [u8; MAX_RESOURCE_NAME],
}

impl ResourceName {
    /// Checks the length limit (`EINVAL` beyond 64 bytes).
    pub fn new(bytes: &[u8]) -> Result<ResourceName, DlmError> {
        if bytes.len() > MAX_RESOURCE_NAME {
            return Err(DlmError::NameTooLong(bytes.len()));
        }
        let mut name = ResourceName {
            len: bytes.len() as u8,
            bytes: [0; MAX_RESOURCE_NAME],
        };
        name.bytes[..bytes.len()].copy_from_slice(bytes);
        Ok(name)
    }

    /// The name's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl PartialEq for ResourceName {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for ResourceName {}

impl PartialOrd for ResourceName {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ResourceName {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl std::hash::Hash for ResourceName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl std::fmt::Debug for ResourceName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "\"{}\"", self.as_bytes().escape_ascii())
    }
}

/// Where the master copy of a resource lives. This engine is the master side; the
/// distributed layer will add directory lookups (§3.4) and keep process copies for
/// resources mastered elsewhere. Today every resource is [`Mastery::Local`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mastery {
    /// This node masters the resource: its queues here are authoritative.
    Local,
    /// Another node masters it (future: requests are forwarded there).
    Remote {
        /// The master's node id.
        node: u32,
    },
    /// A directory lookup is outstanding (future: requests wait on the lookup list).
    Unknown,
}

/// A read-only view of a resource's queues, in queue order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceView {
    /// The name.
    pub name: ResourceName,
    /// Who masters it.
    pub mastery: Mastery,
    /// Grant queue (locks holding a mode with nothing pending).
    pub granted: Vec<LockInfo>,
    /// Convert queue (locks holding a mode and waiting for another), head first.
    pub converting: Vec<LockInfo>,
    /// Wait queue (new requests), head first.
    pub waiting: Vec<LockInfo>,
    /// The value block.
    pub lvb: ResourceLvb,
}

/// What happened to a freshly evaluated request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Evaluation {
    /// Grant now, in this mode (the alternate one if `altmode`).
    Grant { mode: Mode, altmode: bool },
    /// Cannot be granted now.
    Blocked,
}

/// The master copy of one resource.
#[derive(Debug, Clone)]
pub(crate) struct Resource {
    name: ResourceName,
    mastery: Mastery,
    /// Every lock on the resource by id. A hash map: the lock path inserts
    /// and removes one per call, and a B-tree allocated and freed a leaf each
    /// time the map went between empty and one entry. Where its order would
    /// show (BASTs, purges, orphan adoption) the code goes by id order.
    locks: IdMap<LockId, Lock>,
    grant: Vec<LockId>,
    convert: VecDeque<LockId>,
    wait: VecDeque<LockId>,
    lvb: ResourceLvb,
}

impl Resource {
    pub(crate) fn new(name: ResourceName, lvb_len: usize) -> Resource {
        Resource {
            name,
            mastery: Mastery::Local,
            locks: IdMap::default(),
            grant: Vec::new(),
            convert: VecDeque::new(),
            wait: VecDeque::new(),
            lvb: ResourceLvb::new(lvb_len),
        }
    }

    pub(crate) fn lock_count(&self) -> usize {
        self.locks.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.locks.is_empty()
    }

    pub(crate) fn lock(&self, id: LockId) -> Option<&Lock> {
        self.locks.get(&id)
    }

    pub(crate) fn locks(&self) -> impl Iterator<Item = &Lock> {
        self.locks.values()
    }

    /// Recovery: puts a lock the old master had granted straight on the grant queue.
    pub(crate) fn insert_granted(&mut self, lock: Lock) {
        self.grant.push(lock.id);
        self.locks.insert(lock.id, lock);
    }

    pub(crate) fn lvb_mut(&mut self) -> &mut ResourceLvb {
        &mut self.lvb
    }

    pub(crate) fn view(&self) -> ResourceView {
        let infos = |ids: &mut dyn Iterator<Item = &LockId>| {
            ids.filter_map(|id| self.locks.get(id).map(Lock::info))
                .collect()
        };
        ResourceView {
            name: self.name.clone(),
            mastery: self.mastery,
            granted: infos(&mut self.grant.iter()),
            converting: infos(&mut self.convert.iter()),
            waiting: infos(&mut self.wait.iter()),
            lvb: self.lvb.clone(),
        }
    }

    // ----- requests -------------------------------------------------------------

    /// A new lock request (already validated). The lock ends granted, queued, or — if
    /// NOQUEUE refused it — gone (the caller checks with [`Resource::lock`]).
    pub(crate) fn request(&mut self, lock: Lock, out: &mut VecDeque<Output>) {
        let id = lock.id;
        let flags = lock.flags;
        let Some(mode) = lock.requested else { return };
        self.locks.insert(id, lock);
        let mut refused = None;
        match self.evaluate(id, mode, true) {
            Evaluation::Grant { mode, altmode } => self.grant(id, mode, altmode, out),
            Evaluation::Blocked if flags.contains(LockFlags::NOQUEUE) => {
                if let Some(lock) = self.locks.remove(&id) {
                    self.complete(&lock, Status::WouldBlock, SbFlags::default(), None, out);
                }
                if flags.contains(LockFlags::NOQUEUEBAST) {
                    refused = Some((id, mode));
                }
            }
            Evaluation::Blocked => {
                if flags.contains(LockFlags::HEADQUE) {
                    self.wait.push_front(id);
                } else {
                    self.wait.push_back(id);
                }
            }
        }
        self.settle(refused, out);
    }

    /// A conversion of a granted lock. Checks everything before changing anything.
    /// Like libdlm's `dlm_lock`, each convert call says again whether the caller has a
    /// BAST routine (`wants_bast`).
    pub(crate) fn convert(
        &mut self,
        id: LockId,
        mode: Mode,
        flags: LockFlags,
        lvb: Option<Box<[u8]>>,
        wants_bast: bool,
        out: &mut VecDeque<Output>,
    ) -> Result<(), DlmError> {
        let lock = self.locks.get_mut(&id).ok_or(DlmError::NoSuchLock(id))?;
        // Converting a lock that waits or already converts is EBUSY (§3.3 CONVERT).
        let (LockState::Granted, Some(held)) = (lock.state, lock.granted) else {
            return Err(DlmError::Busy(id));
        };
        validate_conversion(flags, held, mode)?;
        lock.requested = Some(mode);
        lock.flags = flags;
        lock.wants_bast = wants_bast;
        if lvb.is_some() {
            lock.lvb = lvb;
        }

        // A down (or same-mode) conversion only gives rights away: nobody can be hurt
        // by granting it in place, and queueing it could only make it look like a
        // deadlock with the converters it already blocks (see docs/dlm.md).
        if held.conversion_to(mode).is_release() {
            self.grant(id, mode, false, out);
            self.settle(None, out);
            return Ok(());
        }
        if self.can_grant(id, mode, true) {
            self.grant(id, mode, false, out);
            self.settle(None, out);
            return Ok(());
        }
        if !flags.contains(LockFlags::NOQUEUE) && self.in_conversion_deadlock(id) {
            if flags.contains(LockFlags::NODLCKWT) {
                // Excluded from deadlock handling: queue it; settling tells its own
                // owner (a BAST at its requested mode) if it is still deadlocked then.
                self.enqueue_conversion(id, flags);
                self.settle(None, out);
                return Ok(());
            }
            if flags.contains(LockFlags::CONVDEADLK) {
                self.demote(id);
                // The demotion may free the converters this lock blocked.
                self.grant_pending(out);
            } else {
                if let Some(lock) = self.locks.get_mut(&id) {
                    lock.requested = None;
                }
                if let Some(lock) = self.locks.get(&id) {
                    self.complete(lock, Status::Deadlock, SbFlags::default(), None, out);
                }
                self.settle(None, out);
                return Ok(());
            }
        }
        let mut refused = None;
        match self.evaluate(id, mode, true) {
            Evaluation::Grant { mode, altmode } => self.grant(id, mode, altmode, out),
            Evaluation::Blocked if flags.contains(LockFlags::NOQUEUE) => {
                if let Some(lock) = self.locks.get_mut(&id) {
                    lock.requested = None;
                }
                if let Some(lock) = self.locks.get(&id) {
                    self.complete(lock, Status::WouldBlock, SbFlags::default(), None, out);
                }
                if flags.contains(LockFlags::NOQUEUEBAST) {
                    refused = Some((id, mode));
                }
            }
            Evaluation::Blocked => self.enqueue_conversion(id, flags),
        }
        self.settle(refused, out);
        Ok(())
    }

    /// Cancels a waiting request (the lock goes away) or a conversion (the lock keeps
    /// its granted mode). A lock with nothing pending is EBUSY.
    pub(crate) fn cancel(
        &mut self,
        id: LockId,
        out: &mut VecDeque<Output>,
    ) -> Result<(), DlmError> {
        let lock = self.locks.get(&id).ok_or(DlmError::NoSuchLock(id))?;
        match lock.state {
            LockState::Granted => return Err(DlmError::Busy(id)),
            LockState::Waiting => {
                self.remove_from_queues(id);
                if let Some(lock) = self.locks.remove(&id) {
                    self.complete(&lock, Status::Cancelled, SbFlags::default(), None, out);
                }
            }
            LockState::Converting => {
                self.remove_from_queues(id);
                self.grant.push(id);
                if let Some(lock) = self.locks.get_mut(&id) {
                    lock.state = LockState::Granted;
                    lock.requested = None;
                    let flags = SbFlags {
                        demoted: std::mem::take(&mut lock.demoted),
                        ..SbFlags::default()
                    };
                    let lock = lock.clone();
                    self.complete(&lock, Status::Cancelled, flags, None, out);
                }
            }
        }
        self.settle(None, out);
        Ok(())
    }

    /// Releases a lock. Without FORCEUNLOCK only a granted lock with nothing pending
    /// can be unlocked (EBUSY otherwise).
    pub(crate) fn unlock(
        &mut self,
        id: LockId,
        flags: LockFlags,
        lvb: Option<&[u8]>,
        out: &mut VecDeque<Output>,
    ) -> Result<(), DlmError> {
        let lock = self.locks.get(&id).ok_or(DlmError::NoSuchLock(id))?;
        if lock.state != LockState::Granted && !flags.contains(LockFlags::FORCEUNLOCK) {
            return Err(DlmError::Busy(id));
        }
        self.release_lvb(lock.granted, flags, lvb);
        self.remove_from_queues(id);
        if let Some(lock) = self.locks.remove(&id) {
            self.complete(&lock, Status::Unlocked, SbFlags::default(), None, out);
        }
        self.settle(None, out);
        Ok(())
    }

    /// The owner process died: its locks go, except PERSISTENT ones, which stay
    /// granted as orphans (a pending request of theirs is dropped — nobody is left to
    /// hear its completion). Returns the ids removed and how many were orphaned.
    pub(crate) fn purge_owner(
        &mut self,
        owner: Owner,
        out: &mut VecDeque<Output>,
    ) -> (Vec<LockId>, usize) {
        let mut ids: Vec<LockId> = self
            .locks
            .values()
            .filter(|l| l.owner == owner && !l.orphan)
            .map(|l| l.id)
            .collect();
        ids.sort_unstable();
        let mut removed = Vec::new();
        let mut orphaned = 0;
        for id in ids {
            let Some(lock) = self.locks.get(&id) else {
                continue;
            };
            if lock.persistent && lock.granted.is_some() {
                if lock.state == LockState::Converting {
                    self.remove_from_queues(id);
                    self.grant.push(id);
                }
                if let Some(lock) = self.locks.get_mut(&id) {
                    lock.state = LockState::Granted;
                    lock.requested = None;
                    lock.demoted = false;
                    lock.orphan = true;
                    lock.wants_bast = false;
                }
                orphaned += 1;
            } else {
                self.remove_from_queues(id);
                self.locks.remove(&id);
                removed.push(id);
            }
        }
        self.settle(None, out);
        (removed, orphaned)
    }

    /// Releases orphans of `node` (of one `pid`, or all with `None`), as
    /// `dlm_ls_purge(ls, nodeid, pid)` does.
    pub(crate) fn purge_orphans(
        &mut self,
        node: u32,
        pid: Option<u32>,
        out: &mut VecDeque<Output>,
    ) -> Vec<LockId> {
        let mut ids: Vec<LockId> = self
            .locks
            .values()
            .filter(|l| l.orphan && l.owner.node == node && pid.is_none_or(|p| l.owner.pid == p))
            .map(|l| l.id)
            .collect();
        ids.sort_unstable();
        for &id in &ids {
            self.remove_from_queues(id);
            self.locks.remove(&id);
        }
        if !ids.is_empty() {
            self.settle(None, out);
        }
        ids
    }

    /// ORPHAN: hands the lowest-id orphan granted in `mode` to `owner`.
    pub(crate) fn adopt_orphan(
        &mut self,
        owner: Owner,
        mode: Mode,
        wants_bast: bool,
        out: &mut VecDeque<Output>,
    ) -> Option<LockId> {
        let id = self
            .locks
            .values()
            .filter(|l| l.orphan && l.granted == Some(mode))
            .map(|l| l.id)
            .min()?;
        let lock = self.locks.get_mut(&id)?;
        lock.orphan = false;
        lock.owner = owner;
        lock.wants_bast = wants_bast;
        lock.highbast = None;
        let lock = lock.clone();
        self.complete(&lock, Status::Granted, SbFlags::default(), None, out);
        self.settle(None, out);
        Some(lock.id)
    }

    // ----- the grant rules ------------------------------------------------------

    /// §3.5 for one lock and one mode. `now` = the request is being made (the lock is
    /// on no queue yet); otherwise it is being re-scanned from its queue.
    fn can_grant(&self, id: LockId, mode: Mode, now: bool) -> bool {
        let Some(lock) = self.locks.get(&id) else {
            return false;
        };
        let conv = lock.granted.is_some();
        let flags = lock.flags;
        // 1. EXPEDITE (validated: a new NL request only).
        if !conv && flags.contains(LockFlags::EXPEDITE) {
            return true;
        }
        // 2. Conflicts with a mode held by any other lock. Converting locks still hold
        //    their granted mode, so they count here too.
        if self.blocked_by_holders(id, mode) {
            return false;
        }
        // 3. Conflicts with the requested mode of a conversion queued ahead of it.
        if self.blocked_by_converters_ahead(id, mode) {
            return false;
        }
        // 4. (RECOVER_GRANT: the recovery layer will re-grant conversions here.)
        // 5./6. A conversion being made now bypasses the queue, unless QUECVT asks to
        //    wait behind earlier conversions.
        if now && conv {
            return !flags.contains(LockFlags::QUECVT) || self.convert.is_empty();
        }
        // 7. NOORDER ignores grant order.
        if flags.contains(LockFlags::NOORDER) {
            return true;
        }
        // 8. A queued conversion at the head of the convert queue.
        if conv {
            return self.convert.front() == Some(&id);
        }
        // 9. A new request now: nothing may be queued at all.
        if now {
            return self.convert.is_empty() && self.wait.is_empty();
        }
        // 10. A queued request at the head of the wait queue, no conversion queued.
        self.convert.is_empty() && self.wait.front() == Some(&id)
    }

    /// The requested mode, else the ALTPR/ALTCW alternate, if grantable.
    fn evaluate(&self, id: LockId, mode: Mode, now: bool) -> Evaluation {
        if self.can_grant(id, mode, now) {
            return Evaluation::Grant {
                mode,
                altmode: false,
            };
        }
        let alternate = self
            .locks
            .get(&id)
            .and_then(|l| l.flags.alternate_mode(mode));
        match alternate {
            Some(alt) if self.can_grant(id, alt, now) => Evaluation::Grant {
                mode: alt,
                altmode: true,
            },
            _ => Evaluation::Blocked,
        }
    }

    fn blocked_by_holders(&self, id: LockId, mode: Mode) -> bool {
        self.locks
            .values()
            .any(|l| l.id != id && l.granted.is_some_and(|held| !held.is_compatible(mode)))
    }

    /// Rule 3, read as "queued ahead of it": for a request made now (on no queue)
    /// every queued conversion is ahead. Taken literally ("any converting lock") two
    /// queued conversions with incompatible requested modes would block each other
    /// forever even after every holder left (see docs/dlm.md).
    fn blocked_by_converters_ahead(&self, id: LockId, mode: Mode) -> bool {
        for other in &self.convert {
            if *other == id {
                return false;
            }
            let requested = self.locks.get(other).and_then(|l| l.requested);
            if requested.is_some_and(|r| !r.is_compatible(mode)) {
                return true;
            }
        }
        false
    }

    /// §3.5 conversion deadlock: this lock's granted mode blocks the requested mode of
    /// a conversion queued before it, or it and a later one block each other.
    fn in_conversion_deadlock(&self, id: LockId) -> bool {
        let Some(me) = self.locks.get(&id) else {
            return false;
        };
        let (Some(held), Some(wanted)) = (me.granted, me.requested) else {
            return false;
        };
        let mut ahead = true;
        for other in &self.convert {
            if *other == id {
                ahead = false;
                continue;
            }
            let Some(o) = self.locks.get(other) else {
                continue;
            };
            let (Some(o_held), Some(o_wanted)) = (o.granted, o.requested) else {
                continue;
            };
            let i_block_it = !held.is_compatible(o_wanted);
            let it_blocks_me = !o_held.is_compatible(wanted);
            if i_block_it && (ahead || it_blocks_me) {
                return true;
            }
        }
        false
    }

    // ----- state changes --------------------------------------------------------

    /// The end of every operation: re-scan, then the BASTs, computed from the settled
    /// queues — after every grant of the call, so no BAST is made stale by a grant
    /// later in the same call. `refused` is a NOQUEUE request refused with
    /// NOQUEUEBAST: its blockers hear about it too.
    fn settle(&mut self, refused: Option<(LockId, Mode)>, out: &mut VecDeque<Output>) {
        // With both queues empty nothing can be granted and nobody is blocked:
        // the three scans would find nothing (the uncontended case).
        if !(self.convert.is_empty() && self.wait.is_empty()) {
            self.grant_pending(out);
            self.send_basts(out);
            self.bast_deadlocked_nodlckwt(out);
        }
        if let Some((id, mode)) = refused {
            self.bast_blockers_of(id, mode, out);
        }
    }

    /// Grants whatever the queues allow: the convert queue in order, restarting after
    /// each grant (a grant or demotion can unblock an earlier entry), then the wait
    /// queue in order.
    pub(crate) fn grant_pending(&mut self, out: &mut VecDeque<Output>) {
        'rescan: loop {
            let queue: Vec<LockId> = self.convert.iter().copied().collect();
            for id in queue {
                let Some(mode) = self.locks.get(&id).and_then(|l| l.requested) else {
                    continue;
                };
                if let Evaluation::Grant { mode, altmode } = self.evaluate(id, mode, false) {
                    self.grant(id, mode, altmode, out);
                    continue 'rescan;
                }
                // NODLCKWT conversions are excluded from deadlock resolution (they are
                // told once the queues settle); CONVDEADLK ones are demoted here.
                let flags = self.locks.get(&id).map(|l| l.flags).unwrap_or_default();
                if !flags.contains(LockFlags::NODLCKWT)
                    && flags.contains(LockFlags::CONVDEADLK)
                    && self.in_conversion_deadlock(id)
                {
                    self.demote(id);
                    continue 'rescan;
                }
            }
            break;
        }
        let queue: Vec<LockId> = self.wait.iter().copied().collect();
        for id in queue {
            let Some(mode) = self.locks.get(&id).and_then(|l| l.requested) else {
                continue;
            };
            if let Evaluation::Grant { mode, altmode } = self.evaluate(id, mode, false) {
                self.grant(id, mode, altmode, out);
            }
        }
    }

    /// Moves `id` to the grant queue in `mode`, moves the value block as §3.6 says and
    /// queues the completion AST.
    fn grant(&mut self, id: LockId, mode: Mode, altmode: bool, out: &mut VecDeque<Output>) {
        self.remove_from_queues(id);
        let Some(lock) = self.locks.get_mut(&id) else {
            return;
        };
        let mut sb = SbFlags {
            demoted: lock.demoted,
            altmode,
            valnotvalid: false,
        };
        let mut read = None;
        if lock.flags.contains(LockFlags::VALBLK) {
            match lvb_transfer(lock.granted, mode) {
                LvbTransfer::Read => {
                    let value: Box<[u8]> = self.lvb.value().into();
                    lock.lvb = Some(value.clone());
                    read = Some(value);
                }
                LvbTransfer::Write => {
                    if lock.flags.contains(LockFlags::IVVALBLK) {
                        self.lvb.invalidate();
                    } else if let Some(value) = &lock.lvb {
                        self.lvb.write(value);
                    }
                }
                LvbTransfer::None => {}
            }
            sb.valnotvalid = !self.lvb.is_valid();
        }
        lock.granted = Some(mode);
        lock.requested = None;
        lock.state = LockState::Granted;
        lock.highbast = None;
        lock.demoted = false;
        self.grant.push(id);
        let lock = lock.clone();
        self.complete(&lock, Status::Granted, sb, read, out);
    }

    /// CONVDEADLK: the lock's granted mode drops to NL (reported as DEMOTED with the
    /// conversion's completion).
    fn demote(&mut self, id: LockId) {
        if let Some(lock) = self.locks.get_mut(&id) {
            lock.granted = Some(Mode::Nl);
            lock.demoted = true;
        }
    }

    fn enqueue_conversion(&mut self, id: LockId, flags: LockFlags) {
        self.remove_from_queues(id);
        if flags.contains(LockFlags::HEADQUE) {
            self.convert.push_front(id);
        } else {
            self.convert.push_back(id);
        }
        if let Some(lock) = self.locks.get_mut(&id) {
            lock.state = LockState::Converting;
        }
    }

    /// Release-time value-block rule (§3.6): from PW/EX, IVVALBLK invalidates,
    /// otherwise VALBLK writes the caller's value; below PW nothing happens.
    fn release_lvb(&mut self, held: Option<Mode>, flags: LockFlags, lvb: Option<&[u8]>) {
        if held.is_none_or(|m| m < Mode::Pw) {
            return;
        }
        if flags.contains(LockFlags::IVVALBLK) {
            self.lvb.invalidate();
        } else if flags.contains(LockFlags::VALBLK) {
            if let Some(value) = lvb {
                self.lvb.write(value);
            }
        }
    }

    fn remove_from_queues(&mut self, id: LockId) {
        self.grant.retain(|x| *x != id);
        self.convert.retain(|x| *x != id);
        self.wait.retain(|x| *x != id);
    }

    fn complete(
        &self,
        lock: &Lock,
        status: Status,
        flags: SbFlags,
        lvb: Option<Box<[u8]>>,
        out: &mut VecDeque<Output>,
    ) {
        if lock.orphan {
            return;
        }
        let granted = match status {
            Status::Unlocked => None,
            _ => lock.granted,
        };
        out.push_back(Output::Completion(Completion {
            lock: lock.id,
            owner: lock.owner,
            status,
            flags,
            granted,
            lvb,
        }));
    }

    // ----- blocking ASTs --------------------------------------------------------

    /// Each holder that blocks some queued request gets one BAST for the highest such
    /// blocked mode it is incompatible with, if higher than the last it was sent. Taking
    /// the highest *incompatible* mode (not just the highest) covers the reference's
    /// PR-holder/CW-request special case.
    fn send_basts(&mut self, out: &mut VecDeque<Output>) {
        let blocked: Vec<(LockId, Mode)> = self
            .convert
            .iter()
            .chain(self.wait.iter())
            .filter_map(|id| {
                self.locks
                    .get(id)
                    .and_then(|l| l.requested.map(|m| (*id, m)))
            })
            .collect();
        if blocked.is_empty() {
            return;
        }
        let mut basts: Vec<(LockId, Mode)> = self
            .locks
            .values()
            .filter(|l| l.wants_bast && !l.orphan)
            .filter_map(|lock| {
                let held = lock.granted?;
                blocked
                    .iter()
                    .filter(|(other, m)| *other != lock.id && !held.is_compatible(*m))
                    .map(|(_, m)| *m)
                    .max()
                    .map(|mode| (lock.id, mode))
            })
            .collect();
        self.bast_in_id_order(&mut basts, out);
    }

    /// Sends each `(lock, mode)` BAST, lowest lock id first.
    fn bast_in_id_order(&mut self, basts: &mut [(LockId, Mode)], out: &mut VecDeque<Output>) {
        basts.sort_unstable_by_key(|(id, _)| *id);
        for (id, mode) in basts.iter() {
            if let Some(lock) = self.locks.get_mut(id) {
                Self::bast(lock, *mode, out);
            }
        }
    }

    /// NOQUEUEBAST: the holders incompatible with a refused request hear about it.
    fn bast_blockers_of(&mut self, requester: LockId, mode: Mode, out: &mut VecDeque<Output>) {
        let mut basts: Vec<(LockId, Mode)> = self
            .locks
            .values()
            .filter(|l| l.id != requester && l.wants_bast && !l.orphan)
            .filter(|l| l.granted.is_some_and(|held| !held.is_compatible(mode)))
            .map(|l| (l.id, mode))
            .collect();
        self.bast_in_id_order(&mut basts, out);
    }

    /// NODLCKWT: a queued conversion in a conversion deadlock is told to resolve it
    /// itself (a BAST at its own requested mode).
    fn bast_deadlocked_nodlckwt(&mut self, out: &mut VecDeque<Output>) {
        let deadlocked: Vec<LockId> = self
            .convert
            .iter()
            .copied()
            .filter(|id| {
                self.locks
                    .get(id)
                    .is_some_and(|l| l.flags.contains(LockFlags::NODLCKWT))
                    && self.in_conversion_deadlock(*id)
            })
            .collect();
        for id in deadlocked {
            if let Some(lock) = self.locks.get_mut(&id) {
                if let (Some(mode), true, false) = (lock.requested, lock.wants_bast, lock.orphan) {
                    Self::bast(lock, mode, out);
                }
            }
        }
    }

    fn bast(lock: &mut Lock, mode: Mode, out: &mut VecDeque<Output>) {
        if lock.highbast.is_some_and(|h| h >= mode) {
            return;
        }
        lock.highbast = Some(mode);
        out.push_back(Output::Blocking {
            lock: lock.id,
            owner: lock.owner,
            mode,
        });
    }
}
