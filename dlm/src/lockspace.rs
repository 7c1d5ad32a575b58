//! A lockspace: resources by name, lock ids, owners, bounds and the output queue.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, VecDeque};

use crate::error::{ConfigError, DlmError, FlagError};
use crate::flags::{LockFlags, validate_lock_flags, validate_unlock_flags};
use crate::id_map::IdMap;
use crate::lock::{Lock, LockId, LockInfo, LockState, Owner};
use crate::lvb::{DEFAULT_LVB_LEN, MAX_LVB_LEN};
use crate::mode::Mode;
use crate::output::Output;
use crate::resource::{Resource, ResourceName, ResourceView};

/// The largest `max_locks` accepted (lock ids are 32-bit).
pub const MAX_LOCKS: usize = 1 << 30;

/// Bounds and the value-block length of a lockspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockspaceConfig {
    /// Value-block length in bytes: a multiple of 8 in `8..=256` (default 32, the
    /// libdlm userspace size).
    pub lvb_len: usize,
    /// Most locks one resource may hold (granted, converting and waiting).
    pub max_locks_per_resource: usize,
    /// Most locks in the lockspace.
    pub max_locks: usize,
    /// Most resources in the lockspace.
    pub max_resources: usize,
    /// Most idle resources kept with their value blocks ("tossed"); 0 forgets a
    /// resource as soon as it holds no lock.
    pub max_tossed: usize,
    /// Most outputs queued and not yet polled. Must cover one call on a full resource:
    /// at least [`LockspaceConfig::outputs_needed`].
    pub max_outputs: usize,
}

impl Default for LockspaceConfig {
    fn default() -> Self {
        LockspaceConfig {
            lvb_len: DEFAULT_LVB_LEN,
            max_locks_per_resource: 1024,
            max_locks: 1 << 20,
            max_resources: 1 << 20,
            max_tossed: 1024,
            max_outputs: 8192,
        }
    }
}

impl LockspaceConfig {
    /// The most outputs one call on a resource with `locks` locks (the request's own
    /// included) can produce: a completion per lock, at most three BASTs per lock (an
    /// ordinary one, a NODLCKWT self-BAST, a NOQUEUEBAST one — each for a higher mode
    /// than the last, as BASTs only go out after every grant of the call), and the
    /// idle and dropped notices.
    pub fn outputs_needed(locks: usize) -> usize {
        locks.saturating_mul(4).saturating_add(3)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.lvb_len < 8 || self.lvb_len > MAX_LVB_LEN || self.lvb_len % 8 != 0 {
            return Err(ConfigError::LvbLength(self.lvb_len));
        }
        for (value, name) in [
            (self.max_locks_per_resource, "max_locks_per_resource"),
            (self.max_locks, "max_locks"),
            (self.max_resources, "max_resources"),
        ] {
            if value == 0 {
                return Err(ConfigError::ZeroLimit(name));
            }
        }
        // Lock ids are 32-bit and never 0: keep the table well below that.
        if self.max_locks > MAX_LOCKS {
            return Err(ConfigError::LimitTooLarge("max_locks"));
        }
        let needed = Self::outputs_needed(self.max_locks_per_resource);
        if self.max_outputs < needed {
            return Err(ConfigError::OutputsTooSmall {
                got: self.max_outputs,
                needed,
            });
        }
        Ok(())
    }
}

/// A lock or convert call (libdlm `dlm_ls_lock`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRequest {
    /// Who asks (and receives the ASTs).
    pub owner: Owner,
    /// The resource (ignored for a conversion, as in libdlm).
    pub name: Vec<u8>,
    /// The mode asked for.
    pub mode: Mode,
    /// `LKF_*` flags.
    pub flags: LockFlags,
    /// The lock to convert (`sb_lkid`); required with CONVERT.
    pub lock: Option<LockId>,
    /// The caller's value-block buffer; required with VALBLK. Its content is what a W
    /// transfer writes.
    pub lvb: Option<Box<[u8]>>,
    /// Whether the caller has a blocking-AST routine (given again on each convert
    /// call, as libdlm's `bastaddr` is).
    pub bast: bool,
}

impl LockRequest {
    /// A new lock on `name` in `mode`, with a BAST routine and no flags.
    pub fn new(owner: Owner, name: impl Into<Vec<u8>>, mode: Mode) -> LockRequest {
        LockRequest {
            owner,
            name: name.into(),
            mode,
            flags: LockFlags::EMPTY,
            lock: None,
            lvb: None,
            bast: true,
        }
    }

    /// A conversion of `lock` to `mode` (CONVERT is set).
    pub fn convert(owner: Owner, lock: LockId, mode: Mode) -> LockRequest {
        LockRequest {
            owner,
            name: Vec::new(),
            mode,
            flags: LockFlags::CONVERT,
            lock: Some(lock),
            lvb: None,
            bast: true,
        }
    }

    /// Adds flags.
    pub fn with_flags(mut self, flags: LockFlags) -> LockRequest {
        self.flags |= flags;
        self
    }

    /// Sets VALBLK and the caller's value-block buffer.
    pub fn with_lvb(mut self, lvb: &[u8]) -> LockRequest {
        self.flags |= LockFlags::VALBLK;
        self.lvb = Some(lvb.into());
        self
    }

    /// No blocking-AST routine: the lock never receives BASTs.
    pub fn without_bast(mut self) -> LockRequest {
        self.bast = false;
        self
    }
}

/// An unlock or cancel call (libdlm `dlm_ls_unlock`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnlockRequest {
    /// Who asks; must own the lock.
    pub owner: Owner,
    /// The lock.
    pub lock: LockId,
    /// CANCEL, VALBLK, IVVALBLK, FORCEUNLOCK (others are ignored).
    pub flags: LockFlags,
    /// The value to write with VALBLK when releasing from PW/EX.
    pub lvb: Option<Box<[u8]>>,
}

impl UnlockRequest {
    /// A plain unlock.
    pub fn new(owner: Owner, lock: LockId) -> UnlockRequest {
        UnlockRequest {
            owner,
            lock,
            flags: LockFlags::EMPTY,
            lvb: None,
        }
    }

    /// A cancel of a waiting request or conversion.
    pub fn cancel(owner: Owner, lock: LockId) -> UnlockRequest {
        UnlockRequest::new(owner, lock).with_flags(LockFlags::CANCEL)
    }

    /// Adds flags.
    pub fn with_flags(mut self, flags: LockFlags) -> UnlockRequest {
        self.flags |= flags;
        self
    }

    /// Sets VALBLK and the value to write.
    pub fn with_lvb(mut self, lvb: &[u8]) -> UnlockRequest {
        self.flags |= LockFlags::VALBLK;
        self.lvb = Some(lvb.into());
        self
    }
}

/// Every input of a lockspace (one input type, as the Stack wants).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Lock or convert.
    Lock(LockRequest),
    /// Unlock or cancel.
    Unlock(UnlockRequest),
    /// A process exited.
    PurgeOwner(Owner),
    /// Release orphans of a node (`pid: None` = all of them).
    PurgeOrphans {
        /// The node.
        node: u32,
        /// One process, or all.
        pid: Option<u32>,
    },
}

/// The immediate answer to a [`Request`] (what happens later comes as outputs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// The lock id of a lock or convert call (libdlm fills `sb_lkid`).
    Lock(LockId),
    /// An unlock or cancel was accepted; its completion is queued.
    Unlocked,
    /// A purge ran.
    Purged(PurgeReport),
}

/// What a purge did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PurgeReport {
    /// Locks released.
    pub released: usize,
    /// Locks kept as orphans.
    pub orphaned: usize,
    /// `false` when the output queue filled up first: drain it and purge again.
    pub complete: bool,
}

/// A lockspace on its master: resources, locks and the queue of outputs.
///
/// ```
/// use phalanx_dlm::*;
///
/// let mut ls = Lockspace::new(LockspaceConfig::default()).unwrap();
/// let (a, b) = (Owner::new(1, 100), Owner::new(1, 200));
/// let la = ls.lock(LockRequest::new(a, "res", Mode::Ex)).unwrap();
/// let lb = ls.lock(LockRequest::new(b, "res", Mode::Pr)).unwrap();
/// // a is granted at once; b waits and a is asked (BAST) to release for PR.
/// let outs: Vec<Output> = std::iter::from_fn(|| ls.poll_output()).collect();
/// assert!(matches!(&outs[0], Output::Completion(c) if c.lock == la && c.status == Status::Granted));
/// assert!(matches!(&outs[1], Output::Blocking { lock, mode: Mode::Pr, .. } if *lock == la));
/// // a down-converts to CR: b (PR) is compatible with CR and is granted.
/// ls.lock(LockRequest::convert(a, la, Mode::Cr)).unwrap();
/// let granted: Vec<LockId> = std::iter::from_fn(|| ls.poll_output())
///     .filter_map(|o| match o {
///         Output::Completion(c) if c.status == Status::Granted => Some(c.lock),
///         _ => None,
///     })
///     .collect();
/// assert_eq!(granted, vec![la, lb]);
/// ```
#[derive(Debug, Clone)]
pub struct Lockspace {
    config: LockspaceConfig,
    /// Every resource: those holding locks and the idle ones (no locks) kept for
    /// their value blocks ("tossed"). An idle resource stays where it is (no
    /// move between maps when a lock comes and goes); it is idle exactly when it
    /// is empty, and then it is listed in `toss_order`, oldest first.
    resources: BTreeMap<ResourceName, Resource>,
    toss_order: VecDeque<ResourceName>,
    index: IdMap<LockId, ResourceName>,
    next_id: u32,
    outputs: VecDeque<Output>,
}

impl Lockspace {
    /// An empty lockspace.
    pub fn new(config: LockspaceConfig) -> Result<Lockspace, ConfigError> {
        config.validate()?;
        Ok(Lockspace {
            config,
            resources: BTreeMap::new(),
            toss_order: VecDeque::new(),
            index: IdMap::default(),
            next_id: 1,
            outputs: VecDeque::new(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &LockspaceConfig {
        &self.config
    }

    /// Dispatches any input.
    pub fn handle_request(&mut self, request: Request) -> Result<Response, DlmError> {
        match request {
            Request::Lock(req) => self.lock(req).map(Response::Lock),
            Request::Unlock(req) => self.unlock(req).map(|()| Response::Unlocked),
            Request::PurgeOwner(owner) => Ok(Response::Purged(self.purge_owner(owner))),
            Request::PurgeOrphans { node, pid } => {
                Ok(Response::Purged(self.purge_orphans(node, pid)))
            }
        }
    }

    /// The next output, oldest first.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Outputs queued and not yet polled.
    pub fn pending_outputs(&self) -> usize {
        self.outputs.len()
    }

    /// A new lock, a conversion (CONVERT) or an orphan adoption (ORPHAN).
    pub fn lock(&mut self, mut req: LockRequest) -> Result<LockId, DlmError> {
        let name = std::mem::take(&mut req.name);
        self.lock_named(req, &name)
    }

    /// [`Self::lock`] with the resource's name beside the request (whose own
    /// `name` is not read): a caller that keeps the name need not give a copy.
    pub(crate) fn lock_named(&mut self, req: LockRequest, name: &[u8]) -> Result<LockId, DlmError> {
        validate_lock_flags(req.flags, req.mode)?;
        self.check_lvb(req.flags, req.lvb.as_deref())?;
        if req.flags.contains(LockFlags::CONVERT) {
            return self.convert(req);
        }
        let name = ResourceName::new(name)?;
        if req.flags.contains(LockFlags::ORPHAN) {
            return self.adopt(req, name);
        }
        // One search of the resource map on the hot path: the entry serves the
        // checks, the revival of an idle resource and the request (the fields
        // used meanwhile are disjoint from `resources`).
        let active_count = self.resources.len() - self.toss_order.len();
        let entry = self.resources.entry(name.clone());
        let on_resource = match &entry {
            Entry::Occupied(e) => e.get().lock_count(),
            Entry::Vacant(_) => 0,
        };
        // A new resource or an idle one becomes active.
        let activates = on_resource == 0;
        if on_resource >= self.config.max_locks_per_resource {
            return Err(DlmError::TooManyLocks("max_locks_per_resource"));
        }
        if self.index.len() >= self.config.max_locks {
            return Err(DlmError::TooManyLocks("max_locks"));
        }
        if activates && active_count >= self.config.max_resources {
            return Err(DlmError::TooManyLocks("max_resources"));
        }
        if self.outputs.len() + LockspaceConfig::outputs_needed(on_resource + 1)
            > self.config.max_outputs
        {
            return Err(DlmError::TryAgain);
        }

        let id = next_free_id(&mut self.next_id, &self.index);
        let lock = Lock {
            id,
            owner: req.owner,
            state: LockState::Waiting,
            granted: None,
            requested: Some(req.mode),
            flags: req.flags,
            persistent: req.flags.contains(LockFlags::PERSISTENT),
            lvb: req.lvb,
            wants_bast: req.bast,
            highbast: None,
            demoted: false,
            orphan: false,
        };
        let resource = match entry {
            Entry::Occupied(e) => {
                if activates {
                    remove_from_toss_order(&mut self.toss_order, &name);
                }
                e.into_mut()
            }
            Entry::Vacant(v) => v.insert(Resource::new(name.clone(), self.config.lvb_len)),
        };
        resource.request(lock, &mut self.outputs);
        let kept = resource.lock(id).is_some();
        let empty = resource.is_empty();
        if kept {
            self.index.insert(id, name.clone());
        }
        if empty {
            self.now_idle(&name);
        }
        Ok(id)
    }

    /// An unlock, or a cancel with CANCEL.
    pub fn unlock(&mut self, req: UnlockRequest) -> Result<(), DlmError> {
        self.unlock_checked(Some(req.owner), req)
    }

    /// [`Self::unlock`] for the cluster's master side, whose holder maps name
    /// the lock and so its owner: `req.owner` is not read (an orphan is still
    /// refused).
    pub(crate) fn unlock_held(&mut self, req: UnlockRequest) -> Result<(), DlmError> {
        self.unlock_checked(None, req)
    }

    /// An unlock or cancel, refused unless the lock's owner is `owner` (when
    /// given).
    fn unlock_checked(&mut self, owner: Option<Owner>, req: UnlockRequest) -> Result<(), DlmError> {
        validate_unlock_flags(req.flags)?;
        self.check_lvb(req.flags, req.lvb.as_deref())?;
        // The owner check of `owned_resource`, on the one search of the resource.
        let name = self
            .index
            .get(&req.lock)
            .ok_or(DlmError::NoSuchLock(req.lock))?
            .clone();
        let Some(resource) = self.resources.get_mut(&name) else {
            return Err(DlmError::NoSuchLock(req.lock));
        };
        let lock = resource
            .lock(req.lock)
            .ok_or(DlmError::NoSuchLock(req.lock))?;
        if owner.is_some_and(|o| o != lock.owner) || lock.orphan {
            return Err(DlmError::NotOwner(req.lock));
        }
        let needed = LockspaceConfig::outputs_needed(resource.lock_count());
        if self.outputs.len() + needed > self.config.max_outputs {
            return Err(DlmError::TryAgain);
        }
        if req.flags.contains(LockFlags::CANCEL) {
            resource.cancel(req.lock, &mut self.outputs)?;
        } else {
            resource.unlock(req.lock, req.flags, req.lvb.as_deref(), &mut self.outputs)?;
        }
        let gone = resource.lock(req.lock).is_none();
        let empty = resource.is_empty();
        if gone {
            self.index.remove(&req.lock);
        }
        if empty {
            self.now_idle(&name);
        }
        Ok(())
    }

    /// A process exited: release its locks, keep its PERSISTENT ones as orphans.
    /// Resources are handled in name order; if the output queue cannot take the worst
    /// case of the next resource, it stops with `complete: false` — drain and call
    /// again (what was done stays done).
    pub fn purge_owner(&mut self, owner: Owner) -> PurgeReport {
        let names: Vec<ResourceName> = self
            .resources
            .iter()
            .filter(|(_, r)| r.locks().any(|l| l.owner == owner && !l.orphan))
            .map(|(n, _)| n.clone())
            .collect();
        let mut report = PurgeReport::default();
        for name in names {
            let Some(resource) = self.resources.get_mut(&name) else {
                continue;
            };
            let needed = LockspaceConfig::outputs_needed(resource.lock_count());
            if self.outputs.len() + needed > self.config.max_outputs {
                return report;
            }
            let (removed, orphaned) = resource.purge_owner(owner, &mut self.outputs);
            for id in &removed {
                self.index.remove(id);
            }
            report.released += removed.len();
            report.orphaned += orphaned;
            self.drop_if_idle(&name);
        }
        report.complete = true;
        report
    }

    /// Releases the orphans of `node` (one `pid`, or all with `None`) —
    /// `dlm_ls_purge`. Bounded like [`Lockspace::purge_owner`].
    pub fn purge_orphans(&mut self, node: u32, pid: Option<u32>) -> PurgeReport {
        let names: Vec<ResourceName> = self
            .resources
            .iter()
            .filter(|(_, r)| r.locks().any(|l| l.orphan && l.owner.node == node))
            .map(|(n, _)| n.clone())
            .collect();
        let mut report = PurgeReport::default();
        for name in names {
            let Some(resource) = self.resources.get_mut(&name) else {
                continue;
            };
            let needed = LockspaceConfig::outputs_needed(resource.lock_count());
            if self.outputs.len() + needed > self.config.max_outputs {
                return report;
            }
            let removed = resource.purge_orphans(node, pid, &mut self.outputs);
            for id in &removed {
                self.index.remove(id);
            }
            report.released += removed.len();
            self.drop_if_idle(&name);
        }
        report.complete = true;
        report
    }

    /// Marks a resource's value block invalid (the recovery rule for a lost PW/EX
    /// holder). Returns whether the resource exists (active or idle).
    pub fn invalidate_lvb(&mut self, name: &[u8]) -> bool {
        let Ok(name) = ResourceName::new(name) else {
            return false;
        };
        match self.resources.get_mut(&name) {
            Some(resource) => {
                resource.lvb_mut().invalidate();
                true
            }
            None => false,
        }
    }

    /// Recovery (§3.7): installs a lock a surviving holder reports as granted in
    /// `mode` on a resource this node now masters. No grant rule is evaluated — the
    /// recovered locks were compatible on the old master — and no output is queued.
    /// The caller rebuilds the value block with [`Lockspace::recover_lvb`].
    pub fn recover_granted(
        &mut self,
        owner: Owner,
        name: &[u8],
        mode: Mode,
        persistent: bool,
        bast: bool,
    ) -> Result<LockId, DlmError> {
        let name = ResourceName::new(name)?;
        if self.index.len() >= self.config.max_locks {
            return Err(DlmError::TooManyLocks("max_locks"));
        }
        let on_resource = self.resources.get(&name).map_or(0, Resource::lock_count);
        if on_resource >= self.config.max_locks_per_resource {
            return Err(DlmError::TooManyLocks("max_locks_per_resource"));
        }
        let id = self.allocate_id();
        let lock = Lock {
            id,
            owner,
            state: LockState::Granted,
            granted: Some(mode),
            requested: None,
            flags: if persistent {
                LockFlags::PERSISTENT
            } else {
                LockFlags::EMPTY
            },
            persistent,
            lvb: None,
            wants_bast: bast,
            highbast: None,
            demoted: false,
            orphan: false,
        };
        if on_resource == 0 && self.resources.contains_key(&name) {
            // An idle resource becomes active again.
            self.forget_toss_order(&name);
        }
        let lvb_len = self.config.lvb_len;
        self.resources
            .entry(name.clone())
            .or_insert_with(|| Resource::new(name.clone(), lvb_len))
            .insert_granted(lock);
        self.index.insert(id, name);
        Ok(id)
    }

    /// Recovery (§3.6): sets a re-mastered resource's value block from the best
    /// recovered copy (`value`, valid or not), or marks it not valid when no copy
    /// survived. Returns whether the resource exists.
    pub fn recover_lvb(&mut self, name: &[u8], value: Option<&[u8]>, valid: bool) -> bool {
        let Ok(name) = ResourceName::new(name) else {
            return false;
        };
        let Some(resource) = self.resources.get_mut(&name) else {
            return false;
        };
        resource.lvb_mut().restore(value, valid);
        true
    }

    /// A lock's current state.
    pub fn lock_info(&self, id: LockId) -> Option<LockInfo> {
        let name = self.index.get(&id)?;
        self.resources.get(name)?.lock(id).map(Lock::info)
    }

    /// The resource a lock is on.
    pub fn resource_of(&self, id: LockId) -> Option<&ResourceName> {
        self.index.get(&id)
    }

    /// A resource's queues, if it exists (an idle one has empty queues).
    pub fn resource(&self, name: &[u8]) -> Option<ResourceView> {
        let name = ResourceName::new(name).ok()?;
        self.resources.get(&name).map(Resource::view)
    }

    /// Whether `name` is idle: no locks, kept for its value block.
    pub fn is_idle(&self, name: &[u8]) -> bool {
        ResourceName::new(name)
            .is_ok_and(|n| self.resources.get(&n).is_some_and(Resource::is_empty))
    }

    /// Forgets an idle resource and its value block (the driver's toss timer
    /// expired). Returns whether it was idle. Pushes no output: the caller knows.
    pub fn drop_idle(&mut self, name: &[u8]) -> bool {
        let Ok(name) = ResourceName::new(name) else {
            return false;
        };
        let Entry::Occupied(e) = self.resources.entry(name.clone()) else {
            return false;
        };
        if !e.get().is_empty() {
            return false;
        }
        e.remove();
        self.forget_toss_order(&name);
        true
    }

    /// Every resource holding locks, in name order.
    pub fn resources(&self) -> impl Iterator<Item = ResourceView> + '_ {
        self.resources
            .values()
            .filter(|r| !r.is_empty())
            .map(Resource::view)
    }

    /// Idle resources kept for their value blocks, oldest first.
    pub fn idle_resources(&self) -> impl Iterator<Item = &ResourceName> + '_ {
        self.toss_order.iter()
    }

    /// Locks in the lockspace.
    pub fn lock_count(&self) -> usize {
        self.index.len()
    }

    /// Resources holding at least one lock.
    pub fn resource_count(&self) -> usize {
        self.resources.len() - self.toss_order.len()
    }

    /// Idle resources kept for their value blocks.
    pub fn idle_count(&self) -> usize {
        self.toss_order.len()
    }

    // ----- helpers --------------------------------------------------------------

    fn convert(&mut self, req: LockRequest) -> Result<LockId, DlmError> {
        let id = req.lock.ok_or(FlagError::ConvertWithoutLockId)?;
        let name = self.owned_resource(req.owner, id)?;
        let Some(resource) = self.resources.get_mut(&name) else {
            return Err(DlmError::NoSuchLock(id));
        };
        let needed = LockspaceConfig::outputs_needed(resource.lock_count());
        if self.outputs.len() + needed > self.config.max_outputs {
            return Err(DlmError::TryAgain);
        }
        resource.convert(
            id,
            req.mode,
            req.flags,
            req.lvb,
            req.bast,
            &mut self.outputs,
        )?;
        Ok(id)
    }

    fn adopt(&mut self, req: LockRequest, name: ResourceName) -> Result<LockId, DlmError> {
        // An idle resource holds no orphan either.
        let Some(resource) = self.resources.get_mut(&name).filter(|r| !r.is_empty()) else {
            return Err(DlmError::NoOrphan);
        };
        let needed = LockspaceConfig::outputs_needed(resource.lock_count());
        if self.outputs.len() + needed > self.config.max_outputs {
            return Err(DlmError::TryAgain);
        }
        resource
            .adopt_orphan(req.owner, req.mode, req.bast, &mut self.outputs)
            .ok_or(DlmError::NoOrphan)
    }

    fn owned_resource(&self, owner: Owner, id: LockId) -> Result<ResourceName, DlmError> {
        let name = self.index.get(&id).ok_or(DlmError::NoSuchLock(id))?;
        let lock = self
            .resources
            .get(name)
            .and_then(|r| r.lock(id))
            .ok_or(DlmError::NoSuchLock(id))?;
        if lock.owner != owner || lock.orphan {
            return Err(DlmError::NotOwner(id));
        }
        Ok(name.clone())
    }

    fn check_lvb(&self, flags: LockFlags, lvb: Option<&[u8]>) -> Result<(), DlmError> {
        match lvb {
            None if flags.contains(LockFlags::VALBLK) => Err(FlagError::ValblkWithoutLvb.into()),
            Some(v) if v.len() != self.config.lvb_len => Err(DlmError::LvbLength {
                expected: self.config.lvb_len,
                got: v.len(),
            }),
            _ => Ok(()),
        }
    }

    /// The next free id. `max_locks` keeps the table far below 2^32 entries, so the
    /// search ends within `index.len() + 1` steps.
    fn allocate_id(&mut self) -> LockId {
        next_free_id(&mut self.next_id, &self.index)
    }

    /// Takes `name` out of the toss order.
    fn forget_toss_order(&mut self, name: &ResourceName) {
        remove_from_toss_order(&mut self.toss_order, name);
    }

    /// Moves a resource that holds no lock to the toss cache (evicting the oldest
    /// idle one when full), or forgets it at once when the cache is disabled.
    fn drop_if_idle(&mut self, name: &ResourceName) {
        // Called on a resource that held locks until now (never on one already
        // idle: it would be listed twice).
        if self.resources.get(name).is_some_and(Resource::is_empty) {
            self.now_idle(name);
        }
    }

    /// `name`'s resource, known to exist, just became empty: tossed or kept
    /// idle.
    fn now_idle(&mut self, name: &ResourceName) {
        debug_assert!(!self.toss_order.contains(name));
        if self.config.max_tossed == 0 {
            self.resources.remove(name);
            self.outputs
                .push_back(Output::ResourceDropped(name.clone()));
            return;
        }
        if self.toss_order.len() >= self.config.max_tossed {
            if let Some(oldest) = self.toss_order.pop_front() {
                self.resources.remove(&oldest);
                self.outputs.push_back(Output::ResourceDropped(oldest));
            }
        }
        self.toss_order.push_back(name.clone());
        self.outputs.push_back(Output::ResourceIdle(name.clone()));
    }
}

/// The next free lock id from `next`. `max_locks` keeps the table far below 2^32
/// entries, so the search ends within `index.len() + 1` steps.
fn next_free_id(next: &mut u32, index: &IdMap<LockId, ResourceName>) -> LockId {
    loop {
        let id = LockId(*next);
        *next = next.wrapping_add(1).max(1);
        if !index.contains_key(&id) {
            return id;
        }
    }
}

/// Takes `name` out of the toss order. The newest idle resource is the one most
/// often revived (a lock taken again on the resource just released), and is at
/// the back: no scan then.
fn remove_from_toss_order(order: &mut VecDeque<ResourceName>, name: &ResourceName) {
    if order.back() == Some(name) {
        order.pop_back();
    } else {
        order.retain(|n| n != name);
    }
}
