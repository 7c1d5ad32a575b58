//! The Stack's DLM service: `phalanx-dlm`'s [`DlmNode`] wired to CPG and fencing.
//!
//! - **Membership.** Each lockspace is a CPG group `dlm:<name>` joined by a member
//!   id reserved for the service ([`DLM_CPG_LOCAL`]). Every group view becomes an
//!   [`Input::Members`](phalanx_dlm::cluster::Input::Members) whose epoch is the
//!   view's place in the total order (see [`ViewClock`]); members that left with
//!   `NODEDOWN` or `PROCDOWN` are *failed* until the fence decision reports them
//!   fenced since their loss, a `LEAVE` is clean.
//! - **Fencing.** Failed nodes are handed to the core in every later view until
//!   [`FenceDecision::is_fenced_since_lost`](phalanx_fence::core::FenceDecision)
//!   holds; then the core gets `Fenced` and its recovery may release their locks.
//!   Without a fencing service nothing can be waited for and a failed node counts
//!   as fenced at once (a cluster without fencing has no protection against a
//!   node that is only partitioned away — documented, as in Linux with
//!   `enable_fencing=0`).
//! - **Messages.** The core's point-to-point messages travel as CPG messages to the
//!   lockspace's group, agreed order, with the destination node in front; every
//!   member but the destination drops them. The links carry datagrams without
//!   retransmission or order, while the core needs per-pair FIFO delivery without
//!   loss; totem's agreed order gives that (and more: a message is ordered with the
//!   group views, as in virtual synchrony), at the cost of one token rotation per
//!   hop and of the message reaching every member of the group.
//! - **Backpressure.** The core's sends wait in a bounded queue for room in CPG;
//!   while it is full, application calls are refused with `TryAgain`.

use super::{InputError, Output, Stack, StackEvent};
use phalanx_cpg::{CpgEvent, GroupChange, Guarantee, Reason};
use phalanx_dlm::cluster::{self, DlmConfig, DlmNode, LockspaceId};
use phalanx_dlm::{Completion, DlmError, LockId, LockRequest, Mode, Owner, UnlockRequest};
use phalanx_totem::{NodeId, Time};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use thiserror::Error;

/// The CPG member id the DLM service joins its groups with (applications cannot
/// use it: CPG requests naming it are refused with `Exist`).
pub const DLM_CPG_LOCAL: u32 = u32::MAX;

/// The prefix of a lockspace's CPG group name.
pub const DLM_GROUP_PREFIX: &[u8] = b"dlm:";

/// Longest lockspace name (as libdlm).
pub const MAX_LOCKSPACE_NAME: usize = 64;

/// What the DLM service starts from (see [`StackConfig::dlm`](super::StackConfig::dlm)).
#[derive(Clone, Debug)]
pub struct DlmSetup {
    /// The core's bounds and every lockspace's engine configuration (the same on
    /// every node).
    pub node: DlmConfig,
    /// Most core messages waiting for room in CPG; beyond it application calls
    /// are refused with `TryAgain`.
    pub max_sends: usize,
    /// How often idle resources are forgotten (the toss timer).
    pub toss_interval: std::time::Duration,
}

impl Default for DlmSetup {
    fn default() -> Self {
        DlmSetup {
            node: DlmConfig::default(),
            max_sends: 4096,
            toss_interval: std::time::Duration::from_secs(10),
        }
    }
}

/// An application's DLM request.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DlmRequest {
    /// Join (create or open) a lockspace: answered by [`DlmEvent::Joined`].
    Join {
        /// Its name (1..=64 bytes).
        name: Vec<u8>,
    },
    /// Leave a lockspace (refused while this node holds locks in it): answered by
    /// [`DlmEvent::Left`].
    Leave {
        /// Its name.
        name: Vec<u8>,
    },
    /// A lock or conversion (`dlm_ls_lock`).
    Lock {
        /// The lockspace.
        lockspace: Vec<u8>,
        /// The call.
        request: LockRequest,
    },
    /// An unlock or cancel (`dlm_ls_unlock`).
    Unlock {
        /// The lockspace.
        lockspace: Vec<u8>,
        /// The call.
        request: UnlockRequest,
    },
}

/// What the DLM service tells the handles.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DlmEvent {
    /// This node is a member of the lockspace (its first view).
    Joined {
        /// The lockspace.
        lockspace: Arc<[u8]>,
    },
    /// This node left the lockspace.
    Left {
        /// The lockspace.
        lockspace: Arc<[u8]>,
    },
    /// A completion AST (`completion.lock` is the id the lock call returned).
    Completion {
        /// The lockspace.
        lockspace: Arc<[u8]>,
        /// The AST.
        completion: Completion,
    },
    /// A blocking AST.
    Blocking {
        /// The lockspace.
        lockspace: Arc<[u8]>,
        /// The lock.
        lock: LockId,
        /// Its owner.
        owner: Owner,
        /// The mode someone is blocked on.
        mode: Mode,
    },
    /// The master refused a call this node had accepted (errno).
    Refused {
        /// The lockspace.
        lockspace: Arc<[u8]>,
        /// The lock.
        lock: LockId,
        /// Its owner.
        owner: Owner,
        /// errno.
        errno: i32,
    },
    /// Recovery waits until `node` is fenced.
    AwaitFencing {
        /// The failed node.
        node: NodeId,
    },
    /// The fence decision reports `node` fenced; recovery may release its locks.
    Fenced {
        /// The node.
        node: NodeId,
    },
    /// The lockspace's membership changed (epoch `epoch`): recovery starts.
    Members {
        /// The lockspace.
        lockspace: Arc<[u8]>,
        /// The view's epoch.
        epoch: u64,
        /// Members after the change.
        members: Vec<NodeId>,
        /// Failed members not yet fenced.
        failed: Vec<NodeId>,
    },
    /// The lockspace finished recovery for `epoch`.
    Recovered {
        /// The lockspace.
        lockspace: Arc<[u8]>,
        /// The epoch.
        epoch: u64,
    },
}

/// Why the DLM service refused a request; nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DlmServiceError {
    /// The Stack does not run the DLM service.
    #[error("the DLM service is not configured")]
    NotConfigured,
    /// The lockspace name is empty or longer than 64 bytes.
    #[error("lockspace name must be 1..=64 bytes, got {0}")]
    NameTooLong(usize),
    /// Already a member (or joining, or leaving).
    #[error("lockspace already joined or being joined/left")]
    Exist,
    /// Not a member of this lockspace (or its join is not complete yet).
    #[error("not a member of this lockspace")]
    NotJoined,
    /// Another joined lockspace has the same 32-bit id (hash of the name).
    #[error("lockspace id collides with a joined lockspace")]
    IdCollision,
    /// This node still holds locks in the lockspace (unlock them first).
    #[error("locks are still held in this lockspace")]
    Busy,
    /// Queues are full (backpressure); retry once messages have moved.
    #[error("queues full, try again")]
    TryAgain,
    /// The lock manager refused the call.
    #[error(transparent)]
    Lock(#[from] DlmError),
    /// CPG refused the group request.
    #[error(transparent)]
    Cpg(#[from] phalanx_cpg::CpgError),
}

/// Counters of the DLM service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DlmServiceStats {
    /// Core messages sent through CPG.
    pub sent: u64,
    /// Core messages delivered to this node.
    pub received: u64,
    /// Core messages that could not be sent (group left meanwhile) — dropped.
    pub send_dropped: u64,
    /// Group messages for this node that were malformed (dropped).
    pub malformed: u64,
}

/// Numbers group views in the total order, the same on every node that installs
/// them: `(ring sequence, CPG control messages delivered in the ring, index of the
/// view for this group within that delivery)`. A view is installed either when a
/// JOIN/LEAVE/PROCDOWN control message is applied or when a ring's state exchange
/// completes (itself on the delivery of a control message, the last JOINLIST), so
/// every member of a ring installs it at the same count. Ring sequences increase
/// across rings, so epochs increase on every node.
#[derive(Debug, Default)]
pub(super) struct ViewClock {
    ring_seq: u64,
    controls: u64,
    /// Views per group at the current count.
    index: BTreeMap<LockspaceId, u64>,
}

impl ViewClock {
    fn new_ring(&mut self, seq: u64) {
        self.ring_seq = seq;
        self.controls = 0;
        self.index.clear();
    }

    fn control_delivered(&mut self) {
        self.controls += 1;
        self.index.clear();
    }

    fn next(&mut self, ls: LockspaceId) -> u64 {
        let i = self.index.entry(ls).or_insert(0);
        let epoch = (self.ring_seq << 40) | ((self.controls & 0xFFFF_FFFF) << 8) | (*i & 0xFF);
        *i += 1;
        epoch
    }
}

/// One lockspace as the service knows it.
#[derive(Debug)]
struct LsEntry {
    name: Arc<[u8]>,
    group: Vec<u8>,
    /// This node's member is in the group view.
    member: bool,
    /// Nodes that left the group by failure and are not known fenced yet.
    failed: BTreeSet<NodeId>,
}

#[derive(Debug)]
pub(super) struct DlmService {
    node: DlmNode,
    setup: DlmSetup,
    lockspaces: BTreeMap<LockspaceId, LsEntry>,
    ids: BTreeMap<Arc<[u8]>, LockspaceId>,
    /// (lockspace, encoded payload: destination then the core's bytes).
    sends: VecDeque<(LockspaceId, Vec<u8>)>,
    clock: ViewClock,
    toss_at: Option<Time>,
    stats: DlmServiceStats,
}

/// The 32-bit id of a lockspace name (the same on every node).
pub fn lockspace_id(name: &[u8]) -> LockspaceId {
    let h = cluster::fnv1a64(name);
    (h ^ (h >> 32)) as u32
}

impl DlmService {
    pub(super) fn new(me: NodeId, setup: DlmSetup) -> Result<Self, phalanx_dlm::ConfigError> {
        Ok(DlmService {
            node: DlmNode::new(me, setup.node.clone())?,
            setup,
            lockspaces: BTreeMap::new(),
            ids: BTreeMap::new(),
            sends: VecDeque::new(),
            clock: ViewClock::default(),
            toss_at: None,
            stats: DlmServiceStats::default(),
        })
    }

    fn joined_id(&self, name: &[u8]) -> Result<LockspaceId, DlmServiceError> {
        match self.ids.get(name) {
            Some(&id) if self.lockspaces.get(&id).is_some_and(|e| e.member) => Ok(id),
            _ => Err(DlmServiceError::NotJoined),
        }
    }

    fn check_room(&self) -> Result<(), DlmServiceError> {
        if self.sends.len() >= self.setup.max_sends {
            return Err(DlmServiceError::TryAgain);
        }
        Ok(())
    }
}

impl Stack {
    /// The DLM core, if the Stack runs the service (queries: locks, masters).
    pub fn dlm(&self) -> Option<&DlmNode> {
        self.dlm.as_ref().map(|d| &d.node)
    }

    /// The lockspaces this node is a member of: (name, id).
    pub fn dlm_lockspaces(&self) -> Vec<(Arc<[u8]>, LockspaceId)> {
        self.dlm
            .as_ref()
            .map(|d| {
                d.lockspaces
                    .iter()
                    .filter(|(_, e)| e.member)
                    .map(|(id, e)| (e.name.clone(), *id))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Counters of the DLM service.
    pub fn dlm_stats(&self) -> DlmServiceStats {
        self.dlm
            .as_ref()
            .map(|d| d.stats.clone())
            .unwrap_or_default()
    }

    /// A DLM request; `Ok(Some(id))` for an accepted lock call (the id names the
    /// lock in its completion and in later calls). The run-loop contract is that
    /// of [`Stack::handle_input`]: poll the outputs afterwards.
    pub fn dlm_request(&mut self, now: Time, r: DlmRequest) -> Result<Option<LockId>, InputError> {
        if let Some(r) = &self.stopped {
            return Err(InputError::Stopped(r.clone()));
        }
        self.now = now;
        let result = self.on_dlm_request(r);
        self.pump();
        result.map_err(InputError::Dlm)
    }

    pub(super) fn on_dlm_request(
        &mut self,
        r: DlmRequest,
    ) -> Result<Option<LockId>, DlmServiceError> {
        let Some(d) = self.dlm.as_mut() else {
            return Err(DlmServiceError::NotConfigured);
        };
        match r {
            DlmRequest::Join { name } => {
                if name.is_empty() || name.len() > MAX_LOCKSPACE_NAME {
                    return Err(DlmServiceError::NameTooLong(name.len()));
                }
                if d.ids.contains_key(&name[..]) {
                    return Err(DlmServiceError::Exist);
                }
                let id = lockspace_id(&name);
                if d.lockspaces.contains_key(&id) {
                    return Err(DlmServiceError::IdCollision);
                }
                let mut group = DLM_GROUP_PREFIX.to_vec();
                group.extend_from_slice(&name);
                self.cpg.join(DLM_CPG_LOCAL, &group)?;
                let name: Arc<[u8]> = name.into();
                d.ids.insert(name.clone(), id);
                d.lockspaces.insert(
                    id,
                    LsEntry {
                        name,
                        group,
                        member: false,
                        failed: BTreeSet::new(),
                    },
                );
                if d.toss_at.is_none() {
                    d.toss_at = Some(self.now + d.setup.toss_interval);
                }
                Ok(None)
            }
            DlmRequest::Leave { name } => {
                let id = d.joined_id(&name)?;
                if !d.node.locks(id).is_empty() {
                    return Err(DlmServiceError::Busy);
                }
                let group = d.lockspaces[&id].group.clone();
                self.cpg.leave(DLM_CPG_LOCAL, &group)?;
                Ok(None)
            }
            DlmRequest::Lock { lockspace, request } => {
                let id = d.joined_id(&lockspace)?;
                d.check_room()?;
                Ok(Some(d.node.lock(id, request)?))
            }
            DlmRequest::Unlock { lockspace, request } => {
                let id = d.joined_id(&lockspace)?;
                d.check_room()?;
                d.node.unlock(id, request)?;
                Ok(None)
            }
        }
    }

    /// A CPG delivery is about to be routed: control messages advance the view
    /// clock (mcasts do not).
    pub(super) fn dlm_note_cpg_delivery(&mut self, data: &[u8]) {
        if let Some(d) = self.dlm.as_mut()
            && phalanx_cpg::wire::mcast_group(Some(super::ServiceId::Cpg as u8), data).is_none()
        {
            d.clock.control_delivered();
        }
    }

    /// A regular configuration: a new ring for the view clock.
    pub(super) fn dlm_new_ring(&mut self, seq: u64) {
        if let Some(d) = self.dlm.as_mut() {
            d.clock.new_ring(seq);
        }
    }

    /// Takes the service's share of a CPG event; returns what is left for the
    /// application's members (`None`: nothing).
    pub(super) fn dlm_filter_cpg(&mut self, ev: CpgEvent) -> Option<CpgEvent> {
        let Some(d) = self.dlm.as_mut() else {
            return Some(ev);
        };
        let group = match &ev {
            CpgEvent::Change(c) => c.group.as_bytes(),
            CpgEvent::Deliver(m) => m.group.as_bytes(),
            _ => return Some(ev),
        };
        let Some(name) = group.strip_prefix(DLM_GROUP_PREFIX) else {
            return Some(ev);
        };
        let id = lockspace_id(name);
        if d.lockspaces.get(&id).is_none_or(|e| &e.name[..] != name) {
            return Some(ev);
        }
        match ev {
            CpgEvent::Change(c) => {
                if !c.recipients.contains(&DLM_CPG_LOCAL) {
                    // A view this node's service is not in yet (someone else's
                    // join before ours): for nobody here unless an application
                    // member shares the group.
                    return (!c.recipients.is_empty()).then_some(CpgEvent::Change(c));
                }
                self.dlm_view(id, &c);
                let rest: Arc<[u32]> = c
                    .recipients
                    .iter()
                    .copied()
                    .filter(|l| *l != DLM_CPG_LOCAL)
                    .collect();
                (!rest.is_empty()).then(|| {
                    let mut c = c;
                    c.recipients = rest;
                    CpgEvent::Change(c)
                })
            }
            CpgEvent::Deliver(mut m) => {
                if !m.recipients.contains(&DLM_CPG_LOCAL) {
                    return (!m.recipients.is_empty()).then_some(CpgEvent::Deliver(m));
                }
                if m.sender.local == DLM_CPG_LOCAL {
                    let me = self.totem.node_id();
                    match m.data.get(..4) {
                        Some(to) => {
                            let to = u32::from_be_bytes([to[0], to[1], to[2], to[3]]);
                            if to == me {
                                d.stats.received += 1;
                                let _ = d.node.handle_input(cluster::Input::Message {
                                    from: m.sender.node,
                                    bytes: m.data[4..].to_vec(),
                                });
                            }
                        }
                        None => d.stats.malformed += 1,
                    }
                }
                let rest: Arc<[u32]> = m
                    .recipients
                    .iter()
                    .copied()
                    .filter(|l| *l != DLM_CPG_LOCAL)
                    .collect();
                (!rest.is_empty()).then(|| {
                    m.recipients = rest;
                    CpgEvent::Deliver(m)
                })
            }
            other => Some(other),
        }
    }

    /// A view of a lockspace's group: the core's `Members`.
    fn dlm_view(&mut self, id: LockspaceId, c: &GroupChange) {
        let me = self.totem.node_id();
        let fenced_now = |n: NodeId, s: &Stack| {
            s.fence.as_ref().is_none_or(|_| {
                s.fence_decision()
                    .is_some_and(|f| f.is_fenced_since_lost(n))
            })
        };
        let newly_failed: Vec<NodeId> = c
            .left
            .iter()
            .filter(|l| {
                l.member.local == DLM_CPG_LOCAL
                    && matches!(l.reason, Reason::NodeDown | Reason::ProcDown)
            })
            .map(|l| l.member.node)
            .filter(|n| *n != me)
            .collect();
        let newly_failed: Vec<NodeId> = newly_failed
            .into_iter()
            .filter(|n| !fenced_now(*n, self))
            .collect();
        let Some(d) = self.dlm.as_mut() else { return };
        let epoch = d.clock.next(id);
        let members: Vec<NodeId> = c
            .members
            .iter()
            .filter(|m| m.local == DLM_CPG_LOCAL)
            .map(|m| m.node)
            .collect();
        let Some(e) = d.lockspaces.get_mut(&id) else {
            return;
        };
        e.failed.extend(newly_failed);
        let failed: Vec<NodeId> = e.failed.iter().copied().collect();
        let name = e.name.clone();
        let was_member = e.member;
        e.member = members.contains(&me);
        let is_member = e.member;
        let _ = d.node.handle_input(cluster::Input::Members {
            lockspace: id,
            epoch,
            members: members.clone(),
            failed: failed.clone(),
        });
        let mut events = Vec::new();
        if is_member && !was_member {
            events.push(DlmEvent::Joined {
                lockspace: name.clone(),
            });
        }
        events.push(DlmEvent::Members {
            lockspace: name.clone(),
            epoch,
            members,
            failed,
        });
        if was_member && !is_member {
            d.lockspaces.remove(&id);
            d.ids.remove(&name);
            events.push(DlmEvent::Left { lockspace: name });
        }
        for ev in events {
            self.emit(Output::Event(StackEvent::Dlm(ev)));
        }
    }

    /// Feeds `Fenced` for failed nodes the decision now reports fenced, then moves
    /// the core's outputs out.
    pub(super) fn drain_dlm(&mut self) {
        let Some(d) = self.dlm.as_ref() else { return };
        let waiting: BTreeSet<NodeId> = d
            .lockspaces
            .values()
            .flat_map(|e| e.failed.iter().copied())
            .collect();
        let fenced: Vec<NodeId> = waiting
            .into_iter()
            .filter(|n| {
                self.fence.is_none()
                    || self
                        .fence_decision()
                        .is_some_and(|f| f.is_fenced_since_lost(*n))
            })
            .collect();
        let me = self.totem.node_id();
        let Some(d) = self.dlm.as_mut() else { return };
        let mut events = Vec::new();
        for n in fenced {
            for e in d.lockspaces.values_mut() {
                e.failed.remove(&n);
            }
            let _ = d.node.handle_input(cluster::Input::Fenced { node: n });
            events.push(DlmEvent::Fenced { node: n });
        }
        while let Some(o) = d.node.poll_output() {
            let name = |d: &DlmService, ls: LockspaceId| -> Arc<[u8]> {
                d.lockspaces
                    .get(&ls)
                    .map_or_else(|| Arc::from(&b""[..]), |e| e.name.clone())
            };
            match o {
                cluster::Output::Send { to, bytes } if to == me => {
                    let _ = d
                        .node
                        .handle_input(cluster::Input::Message { from: me, bytes });
                }
                cluster::Output::Send { to, bytes } => {
                    // The wire format puts the lockspace id at bytes 2..6.
                    let Some(ls) = bytes.get(2..6) else { continue };
                    let ls = u32::from_be_bytes([ls[0], ls[1], ls[2], ls[3]]);
                    let mut payload = Vec::with_capacity(4 + bytes.len());
                    payload.extend_from_slice(&to.to_be_bytes());
                    payload.extend_from_slice(&bytes);
                    d.sends.push_back((ls, payload));
                }
                cluster::Output::Completion {
                    lockspace,
                    completion,
                } => events.push(DlmEvent::Completion {
                    lockspace: name(d, lockspace),
                    completion,
                }),
                cluster::Output::Blocking {
                    lockspace,
                    lock,
                    owner,
                    mode,
                } => events.push(DlmEvent::Blocking {
                    lockspace: name(d, lockspace),
                    lock,
                    owner,
                    mode,
                }),
                cluster::Output::Refused {
                    lockspace,
                    lock,
                    owner,
                    errno,
                } => events.push(DlmEvent::Refused {
                    lockspace: name(d, lockspace),
                    lock,
                    owner,
                    errno,
                }),
                cluster::Output::AwaitFencing { node } => {
                    events.push(DlmEvent::AwaitFencing { node })
                }
                cluster::Output::Recovered { lockspace, epoch } => {
                    events.push(DlmEvent::Recovered {
                        lockspace: name(d, lockspace),
                        epoch,
                    })
                }
                _ => {}
            }
        }
        for ev in events {
            self.emit(Output::Event(StackEvent::Dlm(ev)));
        }
    }

    /// Moves the core's messages into CPG while it has room; true if any moved.
    pub(super) fn pump_dlm_sends(&mut self) -> bool {
        let Some(d) = self.dlm.as_mut() else {
            return false;
        };
        let mut any = false;
        while let Some((ls, payload)) = d.sends.front() {
            let Some(e) = d.lockspaces.get(ls) else {
                d.stats.send_dropped += 1;
                d.sends.pop_front();
                continue;
            };
            match self
                .cpg
                .mcast(DLM_CPG_LOCAL, &e.group, Guarantee::Agreed, payload)
            {
                Ok(()) => {
                    d.stats.sent += 1;
                    any = true;
                }
                Err(phalanx_cpg::CpgError::TryAgain) => break,
                // Left the group meanwhile: nobody there expects it.
                Err(_) => d.stats.send_dropped += 1,
            }
            d.sends.pop_front();
        }
        any
    }

    pub(super) fn dlm_deadline(&self) -> Option<Time> {
        self.dlm.as_ref().and_then(|d| d.toss_at)
    }

    pub(super) fn dlm_timeout(&mut self, now: Time) {
        let Some(d) = self.dlm.as_mut() else { return };
        if d.toss_at.is_none_or(|t| t > now) {
            return;
        }
        let ids: Vec<LockspaceId> = d
            .lockspaces
            .iter()
            .filter(|(_, e)| e.member)
            .map(|(id, _)| *id)
            .collect();
        for lockspace in ids {
            let _ = d.node.handle_input(cluster::Input::TossIdle { lockspace });
        }
        d.toss_at = (!d.lockspaces.is_empty()).then(|| now + d.setup.toss_interval);
    }

    pub(super) fn dlm_is_quiescent(&self) -> bool {
        self.dlm.as_ref().is_none_or(|d| d.sends.is_empty())
    }
}
