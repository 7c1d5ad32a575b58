//! "Who fences" after a membership loss (§2.6 of the fencing reference), reduced to
//! what a cluster stack without a scheduler needs:
//!
//! * A node that leaves the membership while expected up (it did not announce a
//!   clean leave) becomes **unclean**. It stays unclean until it is fenced
//!   (**fenced**) or rejoins (state cleared).
//! * Only a **quorate** partition requests fencing of unclean nodes (unless
//!   `no-quorum-policy=ignore`); an inquorate partition never does. Fencing asked
//!   for by a client (an administrator, the DLM) goes straight to the fencer and is
//!   not gated by quorum: this module only learns its results.
//! * One member requests: the **coordinator**, the lowest node id of the
//!   partition's membership (every member computes the same one from the agreed
//!   membership; Pacemaker uses its elected DC the same way). A new coordinator
//!   takes over the unclean nodes of one that left.
//! * Each loss is requested once; a failed attempt is requested again, at most
//!   `max_attempts` times per loss (`fencing-max-attempts`, 10).
//! * [`FenceDecision::is_fenced_since_lost`] answers services above (DLM, CIB):
//!   they wait for *fenced*, never for merely *gone*.
//! * **A rejoin does not fence.** The state above forgets a loss when the node
//!   rejoins (nobody requests its fencing any more), but a service that recorded
//!   the failure of one incarnation (the DLM: its locks stay on the masters)
//!   still needs a fencing that came after that failure: a restarted process on
//!   a live host, or the same process after a merge, is no proof that the old
//!   one's writes are gone. [`FenceDecision::incarnation`] numbers the joins this
//!   decision saw of each node (1, 2, ...); a counted fencing (the rules of the
//!   next point: it names an incarnation we know, or we saw it start while that
//!   incarnation was there) covers the incarnation it names *and every earlier
//!   one* — the host was power-cycled after that incarnation joined, so after
//!   every earlier one had been running. [`FenceDecision::is_fenced_since`]
//!   answers "fenced since the failure of incarnation `i`" and survives rejoins
//!   (`dlm_controld`'s rule: fence time ≥ failure time).
//! * **A result fences one incarnation.** Every node remembers the ring in which
//!   it last saw each node join ([`FenceDecision::joined_ring`]); every fencing
//!   request carries the requester's view of it, and a success counts only for
//!   the same incarnation ([`FenceDecision::fenced`]). A reboot that completed
//!   before the target rebooted and rejoined says nothing about that later
//!   membership, so its late result must not mark the next loss fenced. All
//!   members see a join in the same agreed configuration, so they judge a result
//!   alike. A node that joined after the target did saw a later ring; for it, an
//!   operation also counts when it saw the operation's start delivered while the
//!   incarnation it knows was already there ([`FenceDecision::operation_started`],
//!   [`FenceDecision::operation_fenced`]): agreed order puts a start sent before
//!   a configuration change before that change everywhere. Otherwise it waits for
//!   another fencing rather than trust one that may predate the incarnation.
//! * **Watchdog fencing** (`fencing-watchdog-timeout` > 0,
//!   [`DecisionConfig::watchdog_timeout_ms`]): a lost node that no device can
//!   fence ([`DecisionConfig::watchdog_only`]) is not requested from the fencer;
//!   every member of a partition that may fence assumes it fenced itself (its
//!   watchdog fired) once the timeout has passed since the partition could first
//!   fence it — the timeout restarts if the partition loses quorum meanwhile. Time
//!   comes in through [`FenceDecision::advance`]; the next such moment is
//!   [`FenceDecision::poll_timeout`].
//!
//! * **Startup fencing** (`startup-fencing`, on by default,
//!   [`DecisionConfig::startup_fencing`]): a configured node this decision has
//!   never seen as a member may be running without us — it never joined, so
//!   nothing says it is not using shared resources. Once the partition may
//!   fence and [`DecisionConfig::startup_deadtime_ms`] (Pacemaker's
//!   `dc-deadtime`, 20 s) has passed since the decision started (the first
//!   [`FenceDecision::advance`]), every configured node still never seen becomes
//!   unclean (loss 1) and is fenced like a lost node. Decided once per
//!   decision; a node that joins before then is never touched.
//! * **Pending nodes** (`node-pending-timeout`, off by default,
//!   [`DecisionConfig::node_pending_timeout_ms`]): a member whose services never
//!   came up — it is in the membership but never reported
//!   [`online`](FenceDecision::online) — is fenced once it has been pending that
//!   long (only the coordinator of a partition that may fence asks, once per
//!   incarnation, again after a failure). Its loss then needs no more fencing.
//!
//! The inputs are plain node ids and a quorate flag, so this module does not depend
//! on the quorum core's types; [`FenceDecision::handle_quorum_event`] adapts a
//! votequorum event for convenience. Targets in the fencer are node names: the
//! composition maps ids to names (and results back).

use super::delay::{NodePriority, priority_fencing_delay_secs};
use super::history::OpId;
use super::timeout::RequestedDelay;
use crate::Action;
use phalanx_quorum::{Event, NodeId, NodeState};
use phalanx_totem::{RingId, Time};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// `no-quorum-policy` (only `ignore` changes who may fence).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoQuorumPolicy {
    /// Stop resources (default).
    Stop,
    /// Freeze.
    Freeze,
    /// Carry on as if quorate — including fencing lost nodes.
    Ignore,
    /// Demote.
    Demote,
    /// Fence the partition's own nodes (not modelled here).
    Fence,
}

/// The decision's configuration.
#[derive(Debug, Clone)]
pub struct DecisionConfig {
    /// This node.
    pub local: NodeId,
    /// The configured cluster nodes (for the priority-fencing-delay counts).
    pub nodes: BTreeSet<NodeId>,
    /// `no-quorum-policy`.
    pub no_quorum_policy: NoQuorumPolicy,
    /// `fencing-enabled`: without it, lost nodes are assumed down and nothing is
    /// requested (they count as fenced).
    pub fencing_enabled: bool,
    /// `fencing-action` (reboot or off).
    pub fencing_action: Action,
    /// `fencing-max-attempts` per loss.
    pub max_attempts: u32,
    /// `priority-fencing-delay` in milliseconds (0: off).
    pub priority_fencing_delay_ms: u64,
    /// Node priorities (total resource priority, as the scheduler would sum them).
    pub priorities: BTreeMap<NodeId, i64>,
    /// `fencing-watchdog-timeout` in milliseconds (0: off): lost nodes in
    /// [`watchdog_only`](Self::watchdog_only) are assumed self-fenced this long
    /// after the partition could fence them. Only sound when every node runs a
    /// watchdog it stops feeding without quorum, with a shorter timeout.
    pub watchdog_timeout_ms: u64,
    /// Nodes no configured device can fence (watchdog fencing applies to them).
    pub watchdog_only: BTreeSet<NodeId>,
    /// `startup-fencing`: fence configured nodes never seen as members once the
    /// partition may fence and the dead time has passed (default true).
    pub startup_fencing: bool,
    /// `dc-deadtime` in milliseconds: how long after starting the decision waits
    /// for configured nodes to show up before startup fencing (default 20 000).
    pub startup_deadtime_ms: u64,
    /// `node-pending-timeout` in milliseconds (0: off, the default): fence a
    /// member that has not come [`online`](FenceDecision::online) this long after
    /// joining.
    pub node_pending_timeout_ms: u64,
}

/// The nodes (of `names`, id → node name) that none of `devices` can fence,
/// judged from configuration alone: a device with a static host list (or map)
/// fences the nodes it names; any other host check (dynamic list, status,
/// none) may fence anyone. Watchdog fencing applies to these nodes.
///
/// ```
/// use phalanx_fence::core::{AgentCapabilities, Device, watchdog_only_nodes};
/// use std::collections::BTreeMap;
///
/// let params = BTreeMap::from([("pcmk_host_list".to_string(), "n1".to_string())]);
/// let d = Device::new("pdu", "fence_apc", params, AgentCapabilities::power_switch(), 0).unwrap();
/// let names = BTreeMap::from([(1, "n1".to_string()), (2, "n2".to_string())]);
/// assert_eq!(watchdog_only_nodes([&d], &names), [2].into());
/// ```
pub fn watchdog_only_nodes<'a>(
    devices: impl IntoIterator<Item = &'a super::device::Device> + Clone,
    names: &BTreeMap<NodeId, String>,
) -> BTreeSet<NodeId> {
    names
        .iter()
        .filter(|(_, name)| {
            !devices
                .clone()
                .into_iter()
                .any(|d| match d.host_check(false) {
                    super::device::HostCheck::StaticList => d.statically_lists(name),
                    _ => true,
                })
        })
        .map(|(id, _)| *id)
        .collect()
}

/// `dc-deadtime`'s default (Pacemaker: 20 s).
pub const DEFAULT_STARTUP_DEADTIME_MS: u64 = 20_000;

impl DecisionConfig {
    /// Defaults: policy stop, fencing enabled, reboot, 10 attempts, no priority delay.
    pub fn new(local: NodeId, nodes: impl IntoIterator<Item = NodeId>) -> Self {
        DecisionConfig {
            local,
            nodes: nodes.into_iter().collect(),
            no_quorum_policy: NoQuorumPolicy::Stop,
            fencing_enabled: true,
            fencing_action: Action::Reboot,
            max_attempts: 10,
            priority_fencing_delay_ms: 0,
            priorities: BTreeMap::new(),
            watchdog_timeout_ms: 0,
            watchdog_only: BTreeSet::new(),
            startup_fencing: true,
            startup_deadtime_ms: DEFAULT_STARTUP_DEADTIME_MS,
            node_pending_timeout_ms: 0,
        }
    }
}

/// A node's state as the decision sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeFenceState {
    /// In our membership.
    Member,
    /// Not a member and not owed fencing (never seen, or left cleanly).
    Down,
    /// Left while expected up; not fenced yet. `loss` counts its losses.
    Unclean {
        /// Which loss.
        loss: u64,
    },
    /// Fenced since loss `loss`.
    Fenced {
        /// Which loss.
        loss: u64,
    },
}

/// What the decision asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecisionOutput {
    /// Ask the fencer to fence `node`.
    Fence {
        /// The node.
        node: NodeId,
        /// `fencing-action`.
        action: Action,
        /// Which loss this is for.
        loss: u64,
        /// The priority fencing delay as the requested delay (`Some(0)` when the
        /// option is on but does not apply to this node).
        delay: RequestedDelay,
    },
    /// `node` is now fenced (services waiting on it may recover).
    NodeFenced {
        /// The node.
        node: NodeId,
        /// Which loss.
        loss: u64,
    },
}

#[derive(Debug, Clone, Copy)]
struct NodeRec {
    state: NodeFenceState,
    losses: u64,
    leaving: bool,
    requested: bool,
    attempts: u32,
    fenced_while_member: bool,
    /// When the node is assumed self-fenced (watchdog fencing), once counting.
    assume_at: Option<Time>,
    /// The ring in which we last saw it join (kept after its loss: the
    /// incarnation a fencing must be about).
    joined: Option<RingId>,
    /// The first ring of this incarnation's process, as it said itself
    /// ([`FenceDecision::announced_first_ring`]): the same process, named
    /// as every peer names it, however late each saw it join.
    declared: Option<RingId>,
    /// Unclean because never seen (startup fencing): no incarnation is known,
    /// so any success against it counts.
    never_seen: bool,
    /// This incarnation reported its services up.
    online: bool,
    /// Since when this member is pending (joined, not online yet).
    pending_since: Option<Time>,
    /// A fencing of this pending member was asked for and has not failed.
    pending_requested: bool,
    /// Never seen, but a fencing of it succeeded (reported to us): it is down
    /// as far as startup fencing goes (Pacemaker records it in `node_state`).
    fenced_unseen: bool,
    /// This incarnation announced that its host's previous process ended
    /// unclean ([`FenceDecision::announced_unclean`]): in doubt, and owed a
    /// fencing, while it is a member.
    unclean_start: bool,
}

impl NodeRec {
    /// Does `ring` name this incarnation: the ring in which we saw it join,
    /// or its process's own first ring?
    fn names(&self, ring: Option<RingId>) -> bool {
        ring.is_some() && (ring == self.joined || ring == self.declared)
    }

    fn new(state: NodeFenceState) -> Self {
        NodeRec {
            state,
            losses: 0,
            leaving: false,
            requested: false,
            attempts: 0,
            fenced_while_member: false,
            assume_at: None,
            joined: None,
            declared: None,
            never_seen: false,
            online: false,
            pending_since: None,
            pending_requested: false,
            fenced_unseen: false,
            unclean_start: false,
        }
    }
}

/// The "who fences" state machine.
#[derive(Debug, Clone)]
pub struct FenceDecision {
    cfg: DecisionConfig,
    nodes: BTreeMap<NodeId, NodeRec>,
    members: BTreeSet<NodeId>,
    quorate: bool,
    out: VecDeque<DecisionOutput>,
    /// The latest time given to [`FenceDecision::advance`].
    now: Time,
    /// Numbers the changes given without a ring ([`FenceDecision::membership`]).
    unnumbered: u64,
    /// Operations whose start was delivered to us → (target, the ring in which
    /// we knew it joined at that moment). At most [`MAX_STARTED`]; forgetting one
    /// only makes its result count less often.
    started: BTreeMap<OpId, (NodeId, Option<RingId>)>,
    /// When the decision started (its first [`FenceDecision::advance`]).
    since: Option<Time>,
    /// Startup fencing has been decided.
    startup_done: bool,
    /// Per node: its incarnations and the highest one a fencing covers. Never
    /// reset by a rejoin (see [`FenceDecision::is_fenced_since`]).
    logs: BTreeMap<NodeId, FenceLog>,
}

/// Joins remembered per node for matching a fencing's `target_joined` to an
/// incarnation; an older one is forgotten (a result naming it then covers less).
pub const MAX_KNOWN_INCARNATIONS: usize = 16;

/// A node's incarnations as this decision saw them, and its fencings.
#[derive(Debug, Clone, Default)]
struct FenceLog {
    /// How many times we saw the node join (0: never).
    incarnation: u64,
    /// The rings of its latest joins → incarnation, oldest first.
    rings: VecDeque<(RingId, u64)>,
    /// The highest incarnation a counted fencing covers (it covers every
    /// earlier one too); `Some(0)`: a fencing of the node before we ever saw it.
    fenced_through: Option<u64>,
}

impl FenceLog {
    fn incarnation_of(&self, ring: RingId) -> Option<u64> {
        self.rings.iter().find(|(r, _)| *r == ring).map(|(_, i)| *i)
    }

    fn cover(&mut self, incarnation: u64) {
        self.fenced_through = self.fenced_through.max(Some(incarnation));
    }
}

/// Operation starts remembered for [`FenceDecision::operation_fenced`].
pub const MAX_STARTED: usize = 1024;

impl FenceDecision {
    /// Starts with only the local node a member, inquorate.
    pub fn new(cfg: DecisionConfig) -> Self {
        let mut nodes: BTreeMap<NodeId, NodeRec> = cfg
            .nodes
            .iter()
            .map(|n| (*n, NodeRec::new(NodeFenceState::Down)))
            .collect();
        nodes.insert(cfg.local, NodeRec::new(NodeFenceState::Member));
        FenceDecision {
            members: BTreeSet::from([cfg.local]),
            cfg,
            nodes,
            quorate: false,
            out: VecDeque::new(),
            now: Time::ZERO,
            unnumbered: 0,
            started: BTreeMap::new(),
            since: None,
            startup_done: false,
            logs: BTreeMap::new(),
        }
    }

    /// A new membership and quorum state without a ring identity: each call is a
    /// ring of its own, numbered by the count of such calls (so decisions given the
    /// same sequence of changes agree on them). For a decision driven by hand or in
    /// tests; a cluster node uses [`configuration`](Self::configuration) with the
    /// ring ids its peers share.
    pub fn membership(&mut self, members: &BTreeSet<NodeId>, quorate: bool) {
        self.unnumbered += 1;
        let ring = RingId {
            seq: self.unnumbered,
            rep: 0,
        };
        self.configuration(ring, members, quorate);
    }

    /// The membership and quorum state of ring `ring` (after every configuration
    /// change).
    pub fn configuration(&mut self, ring: RingId, members: &BTreeSet<NodeId>, quorate: bool) {
        let mut members = members.clone();
        members.insert(self.cfg.local);
        for n in &members {
            let rec = self
                .nodes
                .entry(*n)
                .or_insert_with(|| NodeRec::new(NodeFenceState::Down));
            if rec.state != NodeFenceState::Member {
                // Rejoin clears any loss state: a new incarnation, joined in `ring`.
                let losses = rec.losses;
                *rec = NodeRec::new(NodeFenceState::Member);
                rec.losses = losses;
                rec.joined = Some(ring);
                rec.pending_since = Some(self.now);
                // ... but not what its fencings cover (the log).
                let log = self.logs.entry(*n).or_default();
                log.incarnation += 1;
                let incarnation = log.incarnation;
                if log.rings.len() >= MAX_KNOWN_INCARNATIONS {
                    log.rings.pop_front();
                }
                log.rings.push_back((ring, incarnation));
            }
        }
        for n in self.members.difference(&members) {
            let Some(rec) = self.nodes.get_mut(n) else {
                continue;
            };
            if rec.state != NodeFenceState::Member {
                continue;
            }
            rec.losses += 1;
            let loss = rec.losses;
            rec.requested = false;
            rec.attempts = 0;
            rec.assume_at = None;
            rec.state = if rec.leaving {
                NodeFenceState::Down
            } else if rec.fenced_while_member || !self.cfg.fencing_enabled {
                self.out
                    .push_back(DecisionOutput::NodeFenced { node: *n, loss });
                NodeFenceState::Fenced { loss }
            } else {
                NodeFenceState::Unclean { loss }
            };
            rec.leaving = false;
            rec.fenced_while_member = false;
            rec.pending_since = None;
            rec.pending_requested = false;
        }
        self.members = members;
        self.quorate = quorate;
        self.evaluate();
    }

    /// `node` announced a clean leave (its next loss is not unclean).
    pub fn leaving(&mut self, node: NodeId) {
        if let Some(rec) = self.nodes.get_mut(&node)
            && rec.state == NodeFenceState::Member
        {
            rec.leaving = true;
        }
    }

    /// Some fencing of `node` succeeded (from any origin: our request, a peer's,
    /// an administrator's, a manual confirmation): feed every
    /// [`FenceEvent::Fenced`](super::FenceEvent::Fenced) with the entry's
    /// `target_joined`, the requester's view of when `node` last joined. It counts
    /// only if that is the incarnation we know (see the module docs): a lost node
    /// becomes fenced; a member is fenced when it goes.
    pub fn fenced(&mut self, node: NodeId, target_joined: Option<RingId>) {
        self.cover(node, target_joined);
        let Some(rec) = self.nodes.get_mut(&node) else {
            return;
        };
        if rec.state == NodeFenceState::Down && rec.joined.is_none() && target_joined.is_none() {
            // Someone fenced a node nobody in its partition had seen (their
            // startup fencing): ours need not shoot it again.
            rec.fenced_unseen = true;
            self.logs.entry(node).or_default().cover(0);
            return;
        }
        // A node never seen has no incarnation to name: any success counts.
        let about_known = target_joined.is_some() || rec.never_seen;
        // `None == None` is the never-seen case above.
        if !about_known || (target_joined != rec.joined && !rec.names(target_joined)) {
            return;
        }
        if rec.never_seen {
            let log = self.logs.entry(node).or_default();
            let current = log.incarnation;
            log.cover(current);
        }
        match rec.state {
            NodeFenceState::Unclean { loss } => {
                rec.state = NodeFenceState::Fenced { loss };
                rec.requested = false;
                rec.assume_at = None;
                self.out
                    .push_back(DecisionOutput::NodeFenced { node, loss });
            }
            NodeFenceState::Member => rec.fenced_while_member = true,
            _ => {}
        }
    }

    /// Feeds the completed fencings of a fencer's history (synchronised from
    /// peers when we joined) that name no incarnation — startup fencings of
    /// nodes nobody had seen: a node we have never seen either is then down as
    /// far as our own startup fencing goes. Other entries are ignored (they were
    /// or will be reported through [`fenced`](Self::fenced) with their
    /// incarnation). Call before [`advance`](Self::advance).
    pub fn learn_history<'a>(
        &mut self,
        entries: impl IntoIterator<Item = &'a super::history::HistoryEntry>,
        id_of: impl Fn(&str) -> Option<NodeId>,
    ) {
        for e in entries {
            if e.state == super::history::OpState::Done
                && e.target_joined.is_none()
                && matches!(e.action, Action::Off | Action::Reboot)
                && let Some(node) = id_of(&e.target)
                && let Some(rec) = self.nodes.get_mut(&node)
                && rec.state == NodeFenceState::Down
                && rec.joined.is_none()
            {
                rec.fenced_unseen = true;
            }
        }
    }

    /// The start of fencing operation `op` against `node` was delivered to us (in
    /// agreed order with configuration changes): remember which incarnation of
    /// `node` we knew then.
    pub fn operation_started(&mut self, op: OpId, node: NodeId) {
        if self.started.len() >= MAX_STARTED
            && !self.started.contains_key(&op)
            && let Some(oldest) = self.started.keys().next().copied()
        {
            self.started.remove(&oldest);
        }
        let joined = self.joined_ring(node);
        self.started.insert(op, (node, joined));
    }

    /// Operation `op` fenced `node`; `target_joined` is its requester's view of
    /// the incarnation. It counts for the incarnation we know if the requester
    /// named that one, or if we saw the operation start while that incarnation
    /// was already a member (see the module docs).
    pub fn operation_fenced(&mut self, node: NodeId, op: OpId, target_joined: Option<RingId>) {
        let seen = self
            .started
            .remove(&op)
            .filter(|(n, _)| *n == node)
            .and_then(|(_, joined)| joined);
        // Seen start while incarnation `seen` was there: the operation came
        // after that join, so it covers it (whatever it names).
        self.cover(node, seen);
        let about = if self.names_current(node, seen) {
            seen
        } else {
            target_joined
        };
        self.fenced(node, about);
    }

    /// Forgets the start of an operation that ended without fencing anyone.
    pub fn operation_ended(&mut self, op: OpId) {
        self.started.remove(&op);
    }

    /// Does `ring` name `node`'s current (or last) incarnation?
    fn names_current(&self, node: NodeId, ring: Option<RingId>) -> bool {
        self.nodes.get(&node).is_some_and(|r| r.names(ring))
    }

    /// The ring that names `node`'s incarnation — what a fencing request for
    /// `node` carries: the first ring of its process as it said itself
    /// ([`announced_first_ring`](Self::announced_first_ring)), else the ring
    /// in which we last saw it join (`None`: never a member in our view).
    pub fn joined_ring(&self, node: NodeId) -> Option<RingId> {
        self.nodes.get(&node).and_then(|r| r.declared.or(r.joined))
    }

    /// `node` (a member) said the first ring its process was a member of. A
    /// ring holds one process per node, so a fencing that names that ring is
    /// about this process, whoever asked for it: a node that saw the process
    /// join later (it joined the cluster later) counts such a result too, as
    /// well as one naming the ring in which it saw the join itself. Without
    /// it, a fencing requested by a peer that saw the process in its first ring
    /// would not count here, and a member in doubt would be fenced a second
    /// time — by then, maybe, the host's *next* process (found by
    /// `tests/dlm_cluster.rs`). True if this is news (the caller then feeds
    /// [`fenced`](Self::fenced) the completed fencings that name the ring).
    ///
    /// ```
    /// use phalanx_fence::core::{DecisionConfig, FenceDecision};
    /// use phalanx_totem::RingId;
    /// use std::collections::BTreeSet;
    ///
    /// let mut d = FenceDecision::new(DecisionConfig::new(1, [1, 2, 3]));
    /// let ring = |seq| RingId { seq, rep: 2 };
    /// // We first see node 3 in ring 8; its process began in ring 4 (with node 2).
    /// d.configuration(ring(8), &BTreeSet::from([1, 2, 3]), true);
    /// assert!(d.announced_first_ring(3, ring(4)));
    /// assert_eq!(d.joined_ring(3), Some(ring(4)));
    /// d.fenced(3, Some(ring(4))); // node 2's fencing of it, asked in ring 4
    /// assert!(d.is_fenced_member(3));
    /// ```
    pub fn announced_first_ring(&mut self, node: NodeId, ring: RingId) -> bool {
        let Some(rec) = self.nodes.get_mut(&node) else {
            return false;
        };
        if rec.state != NodeFenceState::Member || rec.declared == Some(ring) {
            return false;
        }
        rec.declared = Some(ring);
        // The ring names the process, and the process is this incarnation
        // (after a merge it was an earlier one too): a fencing naming it
        // covers this one.
        let log = self.logs.entry(node).or_default();
        let current = log.incarnation;
        let mut known = false;
        for (_, i) in log.rings.iter_mut().filter(|(r, _)| *r == ring) {
            *i = current;
            known = true;
        }
        if !known {
            if log.rings.len() >= MAX_KNOWN_INCARNATIONS {
                log.rings.pop_front();
            }
            log.rings.push_back((ring, current));
        }
        true
    }

    /// *Our* request to fence `node` for loss `loss` (as in
    /// [`DecisionOutput::Fence`]) failed (its
    /// [`FenceEvent::RequestDone`](super::FenceEvent::RequestDone) was an error, or
    /// the fencer refused it): ask again if attempts remain. Failures of other
    /// operations, or of a request made for an earlier loss, are not acted on —
    /// they say nothing about the current request, and reacting to them would put
    /// two requests for one loss in flight.
    pub fn request_failed(&mut self, node: NodeId, loss: u64) {
        let Some(rec) = self.nodes.get_mut(&node) else {
            return;
        };
        if rec.state == (NodeFenceState::Unclean { loss }) && rec.requested {
            rec.requested = false;
            self.evaluate();
        } else if rec.state == NodeFenceState::Member
            && rec.pending_requested
            && loss == rec.losses + 1
        {
            rec.pending_requested = false;
            self.evaluate();
        }
    }

    /// Adapts a votequorum event ([`Event::QuorumChanged`]; others are ignored):
    /// members are the nodes not dead; a leaving node is marked as such.
    pub fn handle_quorum_event(&mut self, event: &Event) {
        if let Event::QuorumChanged {
            quorate,
            nodes,
            ring,
        } = event
        {
            let mut members = BTreeSet::new();
            for n in nodes {
                match n.state {
                    NodeState::Member => {
                        members.insert(n.node);
                    }
                    NodeState::Leaving => {
                        members.insert(n.node);
                        self.leaving(n.node);
                    }
                    NodeState::Dead => {}
                }
            }
            self.configuration(*ring, &members, *quorate);
        }
    }

    /// The time is now `now` (earlier times are ignored): starts the watchdog
    /// countdown of losses that wait for one, and marks fenced the lost nodes whose
    /// countdown is over. Call it before a membership change, so the countdown
    /// starts at the change, and at [`poll_timeout`](Self::poll_timeout).
    pub fn advance(&mut self, now: Time) {
        self.now = self.now.max(now);
        let now = self.now;
        self.since.get_or_insert(now);
        if self.may_fence() {
            for (n, rec) in &mut self.nodes {
                if let NodeFenceState::Unclean { loss } = rec.state
                    && rec.assume_at.is_some_and(|t| t <= now)
                {
                    rec.state = NodeFenceState::Fenced { loss };
                    rec.assume_at = None;
                    // Its watchdog fired after the incarnation we knew was lost.
                    let log = self.logs.entry(*n).or_default();
                    let current = log.incarnation;
                    log.cover(current);
                    self.out
                        .push_back(DecisionOutput::NodeFenced { node: *n, loss });
                }
            }
        }
        self.evaluate();
    }

    /// The next moment the decision has something to do, if any: a lost node
    /// assumed self-fenced, the end of the startup dead time, a pending member's
    /// timeout.
    pub fn poll_timeout(&self) -> Option<Time> {
        let watchdog = self
            .nodes
            .values()
            .filter(|r| matches!(r.state, NodeFenceState::Unclean { .. }))
            .filter_map(|r| r.assume_at);
        // A startup or pending deadline already past waits for quorum or for
        // coordinatorship, which come with a configuration change, not time.
        let now = self.now;
        let pending = self.pending_deadlines().filter(move |t| *t > now);
        let startup = self
            .startup_deadline()
            .filter(|t| *t > now && self.never_seen_exist());
        watchdog.chain(pending).chain(startup).min()
    }

    /// `node`'s services are up (Pacemaker: it joined the controller group) in
    /// its current incarnation: it is no longer pending. The Stack calls this
    /// on the node's first fencer message after it joined.
    pub fn online(&mut self, node: NodeId) {
        if let Some(rec) = self.nodes.get_mut(&node)
            && rec.state == NodeFenceState::Member
        {
            rec.online = true;
            rec.pending_since = None;
        }
    }

    /// Is `node` a member whose services have not come up yet?
    pub fn is_pending(&self, node: NodeId) -> bool {
        self.nodes
            .get(&node)
            .is_some_and(|r| r.state == NodeFenceState::Member && !r.online)
    }

    /// `node` (a member, this one included) announced that its host's
    /// previous process ended, on this boot, without a clean stop while it
    /// could hold cluster resources (the Stack reads that from a marker in its
    /// state directory and says so in
    /// [`PeerMessage::Present`](super::PeerMessage::Present)). Nothing that
    /// process held was handed over — every witness of its end may be gone — so
    /// the node is [in doubt](Self::in_doubt) and owed a fencing for as long as
    /// this incarnation is a member: the lowest-id *other* member of a
    /// partition that may fence requests it. A fencing of the host is what
    /// ends the doubt (it ends this incarnation too; the next process, on a new
    /// boot, starts clean), as Pacemaker fences a node whose cluster stack died
    /// before it is trusted again.
    ///
    /// ```
    /// use phalanx_fence::core::{DecisionConfig, DecisionOutput, FenceDecision};
    /// use std::collections::BTreeSet;
    ///
    /// let mut d = FenceDecision::new(DecisionConfig::new(1, [1, 2, 3]));
    /// d.membership(&BTreeSet::from([1, 2, 3]), true);
    /// assert!(d.in_doubt().is_empty());
    /// d.announced_unclean(3); // node 3 restarted after a crash
    /// assert_eq!(d.in_doubt(), vec![3]);
    /// assert!(matches!(d.poll(), Some(DecisionOutput::Fence { node: 3, .. })));
    /// d.fenced(3, d.joined_ring(3));
    /// d.membership(&BTreeSet::from([1, 2]), true); // the fencing ended it
    /// assert!(d.in_doubt().is_empty());
    /// ```
    pub fn announced_unclean(&mut self, node: NodeId) {
        self.announced_start(node, true);
    }

    /// `node` (a member) said how its current process started: unclean as in
    /// [`announced_unclean`](Self::announced_unclean), or clean. A process says
    /// the same all its life, so a clean word after an unclean one is a newer
    /// process — one restarted faster than the membership saw it go — whose
    /// host was power-cycled since (the marker it would have inherited is of
    /// an older boot): the doubt is over.
    pub fn announced_start(&mut self, node: NodeId, unclean: bool) {
        if let Some(rec) = self.nodes.get_mut(&node)
            && rec.state == NodeFenceState::Member
            && rec.unclean_start != unclean
        {
            rec.unclean_start = unclean;
            self.evaluate();
        }
    }

    fn startup_deadline(&self) -> Option<Time> {
        if !self.cfg.startup_fencing || self.startup_done {
            return None;
        }
        let since = self.since?;
        Some(since + std::time::Duration::from_millis(self.cfg.startup_deadtime_ms))
    }

    fn never_seen_exist(&self) -> bool {
        self.cfg.nodes.iter().any(|n| self.is_never_seen(*n))
    }

    fn is_never_seen(&self, node: NodeId) -> bool {
        self.nodes.get(&node).is_none_or(|r| {
            r.state == NodeFenceState::Down
                && r.joined.is_none()
                && r.losses == 0
                && !r.fenced_unseen
        })
    }

    fn pending_deadlines(&self) -> impl Iterator<Item = Time> + '_ {
        let timeout = std::time::Duration::from_millis(self.cfg.node_pending_timeout_ms);
        self.nodes
            .iter()
            .filter(move |(n, r)| {
                self.cfg.node_pending_timeout_ms > 0
                    && **n != self.cfg.local
                    && r.state == NodeFenceState::Member
                    && !r.online
                    && !r.pending_requested
            })
            .filter_map(move |(_, r)| r.pending_since.map(|t| t + timeout))
    }

    /// Startup fencing, once the dead time is over and the partition may fence:
    /// every configured node never seen becomes unclean.
    fn startup(&mut self) {
        let Some(deadline) = self.startup_deadline() else {
            return;
        };
        if self.now < deadline || !self.may_fence() {
            return;
        }
        self.startup_done = true;
        let never: Vec<NodeId> = self
            .cfg
            .nodes
            .iter()
            .copied()
            .filter(|n| *n != self.cfg.local && self.is_never_seen(*n))
            .collect();
        for n in never {
            let rec = self
                .nodes
                .entry(n)
                .or_insert_with(|| NodeRec::new(NodeFenceState::Down));
            rec.losses += 1;
            rec.state = NodeFenceState::Unclean { loss: rec.losses };
            rec.never_seen = true;
            rec.requested = false;
            rec.attempts = 0;
        }
    }

    /// The devices changed (e.g. the CIB registered or removed one): `nodes` are
    /// now the ones no device can fence ([`watchdog_only_nodes`]). A lost node
    /// that a device can fence now is requested (its countdown stops); one that
    /// no device can fence any more starts its countdown (a request already made
    /// for it runs its course).
    pub fn set_watchdog_only(&mut self, nodes: BTreeSet<NodeId>) {
        if nodes == self.cfg.watchdog_only {
            return;
        }
        for (n, rec) in &mut self.nodes {
            if !nodes.contains(n) {
                rec.assume_at = None;
            }
        }
        self.cfg.watchdog_only = nodes;
        self.evaluate();
    }

    /// Is `node` fenced by its watchdog (assumed after the timeout) rather than by
    /// a device?
    pub fn fenced_by_watchdog(&self, node: NodeId) -> bool {
        self.cfg.watchdog_timeout_ms > 0 && self.cfg.watchdog_only.contains(&node)
    }

    /// The next request or notification.
    pub fn poll(&mut self) -> Option<DecisionOutput> {
        self.out.pop_front()
    }

    /// Is `node` fenced since it was lost? (False for members and clean leavers:
    /// services wait for *fenced*, never for *gone*.)
    pub fn is_fenced_since_lost(&self, node: NodeId) -> bool {
        matches!(self.state(node), NodeFenceState::Fenced { .. })
    }

    /// How many times this decision saw `node` join (0: never) — the number of
    /// its current (or, once lost, its last) incarnation. A service records it
    /// when the node fails, and later asks [`is_fenced_since`](Self::is_fenced_since).
    ///
    /// ```
    /// use phalanx_fence::core::{DecisionConfig, FenceDecision};
    /// use std::collections::BTreeSet;
    ///
    /// let mut d = FenceDecision::new(DecisionConfig::new(1, [1, 2, 3]));
    /// d.membership(&BTreeSet::from([1, 2, 3]), true);
    /// let failed = d.incarnation(3); // node 3 fails holding locks
    /// d.membership(&BTreeSet::from([1, 2]), true);
    /// let _ = d.poll(); // the coordinator's request to fence node 3
    /// d.membership(&BTreeSet::from([1, 2, 3]), true); // restarted before fencing
    /// assert!(!d.is_fenced_since(3, failed), "a rejoin is no fencing");
    /// d.fenced(3, d.joined_ring(3)); // a fencing of the new incarnation
    /// assert!(d.is_fenced_since(3, failed));
    /// ```
    pub fn incarnation(&self, node: NodeId) -> u64 {
        self.logs.get(&node).map_or(0, |l| l.incarnation)
    }

    /// The incarnation of `node` that was a member in ring `ring`, as this
    /// decision saw it: the latest one that joined in that ring or an earlier
    /// one (ring sequence numbers grow along one node's history). A service
    /// that saw a process of `node` in a view of ring `ring` and then saw it
    /// fail names this one, not [`incarnation`](Self::incarnation): its views
    /// can lag the membership, so by the time it sees the failure the decision
    /// may already have seen the node's next process join (a restart faster
    /// than the token timeout is a leave and a join in consecutive rings), and
    /// a failure dated to that one would wait for a fencing of the healthy
    /// successor. Without a remembered join that old (never seen, or more than
    /// [`MAX_KNOWN_INCARNATIONS`] joins ago), the current incarnation — the
    /// stricter answer.
    ///
    /// ```
    /// use phalanx_fence::core::{DecisionConfig, FenceDecision};
    /// use phalanx_totem::RingId;
    /// use std::collections::BTreeSet;
    ///
    /// let mut d = FenceDecision::new(DecisionConfig::new(1, [1, 2]));
    /// let ring = |seq| RingId { seq, rep: 1 };
    /// d.configuration(ring(4), &BTreeSet::from([1, 2]), true);
    /// d.configuration(ring(8), &BTreeSet::from([1]), true); // node 2's process dies
    /// d.configuration(ring(12), &BTreeSet::from([1, 2]), true); // ... and its next one joins
    /// assert_eq!(d.incarnation(2), 2);
    /// assert_eq!(d.incarnation_in(2, ring(4)), 1); // the one a view of ring 4 showed
    /// assert_eq!(d.incarnation_in(2, ring(12)), 2);
    /// ```
    pub fn incarnation_in(&self, node: NodeId, ring: RingId) -> u64 {
        self.logs
            .get(&node)
            .and_then(|l| l.rings.iter().rev().find(|(r, _)| r.seq <= ring.seq))
            .map_or_else(|| self.incarnation(node), |(_, i)| *i)
    }

    /// Has `node` been fenced since its incarnation `incarnation` (as
    /// [`incarnation`](Self::incarnation) numbered it) was running? True once a
    /// counted fencing names that incarnation or a later one — a power cycle
    /// after a later join is after the earlier incarnation ran. Unlike
    /// [`is_fenced_since_lost`](Self::is_fenced_since_lost) this is not reset
    /// when the node rejoins, so a service that saw the failure keeps waiting
    /// for a real fencing. Always true with fencing disabled (nothing would
    /// ever fence it).
    pub fn is_fenced_since(&self, node: NodeId, incarnation: u64) -> bool {
        !self.cfg.fencing_enabled
            || self
                .logs
                .get(&node)
                .and_then(|l| l.fenced_through)
                .is_some_and(|f| f >= incarnation)
    }

    /// Was `node`, a member, fenced in its current incarnation (a success
    /// reported while it is still in the membership)? Its loss will then be
    /// fenced at once ([`DecisionOutput::NodeFenced`]); a service that wants
    /// the node gone as well as fenced waits for that.
    pub fn is_fenced_member(&self, node: NodeId) -> bool {
        self.nodes
            .get(&node)
            .is_some_and(|r| r.state == NodeFenceState::Member && r.fenced_while_member)
    }

    /// The decision's configuration.
    pub fn config(&self) -> &DecisionConfig {
        &self.cfg
    }

    /// Records that a fencing of `node` came after the incarnation joined in
    /// `ring` (if we know that join).
    fn cover(&mut self, node: NodeId, ring: Option<RingId>) {
        if let Some(ring) = ring
            && let Some(log) = self.logs.get_mut(&node)
            && let Some(incarnation) = log.incarnation_of(ring)
        {
            log.cover(incarnation);
        }
    }

    /// A node's state (unknown nodes are down).
    pub fn state(&self, node: NodeId) -> NodeFenceState {
        self.nodes
            .get(&node)
            .map_or(NodeFenceState::Down, |r| r.state)
    }

    /// Nodes that may be running with shared state we cannot see, ascending:
    /// the unclean (lost, not fenced yet); while startup fencing is on and not
    /// yet decided, configured nodes never seen; and members that
    /// [announced an unclean start](Self::announced_unclean). (The Stack adds
    /// the members of the current ring that have not said yet how they
    /// started.) A
    /// service about to take shared state it cannot see the rest of (a DLM
    /// lockspace join) waits until this is empty, as `dlm_controld` waits while
    /// fencing is in progress: otherwise a node alone, or a partition of freshly
    /// started nodes, would grant what a partitioned node still holds.
    /// Empty when fencing is disabled: nothing would ever settle the doubt.
    pub fn in_doubt(&self) -> Vec<NodeId> {
        if !self.cfg.fencing_enabled {
            return Vec::new();
        }
        let startup_open = self.cfg.startup_fencing && !self.startup_done;
        let mut out: BTreeSet<NodeId> = self.unclean().into_iter().collect();
        // Members that announced an unclean start, until the fencing ends them.
        out.extend(
            self.nodes
                .iter()
                .filter(|(_, r)| r.state == NodeFenceState::Member && r.unclean_start)
                .map(|(n, _)| *n),
        );
        if startup_open {
            out.extend(
                self.cfg
                    .nodes
                    .iter()
                    .copied()
                    .filter(|n| *n != self.cfg.local && self.is_never_seen(*n)),
            );
        }
        out.into_iter().collect()
    }

    /// Nodes owed fencing, ascending.
    pub fn unclean(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, r)| matches!(r.state, NodeFenceState::Unclean { .. }))
            .map(|(n, _)| *n)
            .collect()
    }

    /// The member that requests fencing for the partition (lowest id).
    pub fn coordinator(&self) -> Option<NodeId> {
        self.members.first().copied()
    }

    /// May this partition request fencing of lost nodes?
    pub fn may_fence(&self) -> bool {
        self.cfg.fencing_enabled
            && (self.quorate || self.cfg.no_quorum_policy == NoQuorumPolicy::Ignore)
    }

    fn evaluate(&mut self) {
        self.startup();
        self.count_down_watchdogs();
        if !self.may_fence() {
            return;
        }
        self.request_unclean_starts();
        if self.coordinator() != Some(self.cfg.local) {
            return;
        }
        self.request_pending();
        let all: Vec<NodePriority> = self.nodes.keys().map(|n| self.priority_of(*n)).collect();
        let mut requests = Vec::new();
        for (n, rec) in &mut self.nodes {
            let by_watchdog =
                self.cfg.watchdog_timeout_ms > 0 && self.cfg.watchdog_only.contains(n);
            if let NodeFenceState::Unclean { loss } = rec.state
                && !by_watchdog
                && !rec.requested
                && rec.attempts < self.cfg.max_attempts
            {
                rec.requested = true;
                rec.attempts += 1;
                requests.push((*n, loss));
            }
        }
        for (node, loss) in requests {
            let delay = (self.cfg.priority_fencing_delay_ms > 0).then(|| {
                priority_fencing_delay_secs(
                    self.cfg.priority_fencing_delay_ms,
                    &self.priority_of(node),
                    &all,
                ) as i64
            });
            self.out.push_back(DecisionOutput::Fence {
                node,
                action: self.cfg.fencing_action,
                loss,
                delay,
            });
        }
    }

    /// Asks for fencing of members that announced an unclean start, where
    /// this node is the lowest-id member other than the one to fence (a
    /// partition that may fence only). One request in flight per incarnation
    /// (a failed one is asked again while attempts remain), as for pending
    /// members.
    fn request_unclean_starts(&mut self) {
        let local = self.cfg.local;
        let max_attempts = self.cfg.max_attempts;
        let due: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(n, r)| {
                **n != local
                    && r.state == NodeFenceState::Member
                    && r.unclean_start
                    && !r.pending_requested
                    && !r.fenced_while_member
                    && r.attempts < max_attempts
            })
            .map(|(n, _)| *n)
            .filter(|n| self.members.iter().find(|m| *m != n) == Some(&local))
            .collect();
        self.request_member_fencing(due);
    }

    /// Requests the fencing of each member of `due` (pending, or announced
    /// unclean): its next loss, one request in flight.
    fn request_member_fencing(&mut self, due: Vec<NodeId>) {
        for node in due {
            let Some(rec) = self.nodes.get_mut(&node) else {
                continue;
            };
            rec.pending_requested = true;
            rec.attempts += 1;
            let loss = rec.losses + 1;
            self.out.push_back(DecisionOutput::Fence {
                node,
                action: self.cfg.fencing_action,
                loss,
                delay: None,
            });
        }
    }

    /// Asks for fencing of members pending longer than `node-pending-timeout`
    /// (the coordinator of a partition that may fence only).
    fn request_pending(&mut self) {
        let due: Vec<NodeId> = {
            let now = self.now;
            let timeout = std::time::Duration::from_millis(self.cfg.node_pending_timeout_ms);
            self.nodes
                .iter()
                .filter(|(n, r)| {
                    self.cfg.node_pending_timeout_ms > 0
                        && **n != self.cfg.local
                        && r.state == NodeFenceState::Member
                        && !r.online
                        && !r.pending_requested
                        && !r.fenced_while_member
                        && r.attempts < self.cfg.max_attempts
                        && r.pending_since.is_some_and(|t| t + timeout <= now)
                })
                .map(|(n, _)| *n)
                .collect()
        };
        self.request_member_fencing(due);
    }

    /// Starts (may fence) or stops (may not) the countdown of each lost node that
    /// its watchdog fences. Every member counts, not only the coordinator: no
    /// request is made, each member concludes on its own.
    fn count_down_watchdogs(&mut self) {
        if self.cfg.watchdog_timeout_ms == 0 {
            return;
        }
        let may_fence = self.may_fence();
        let at = self.now + std::time::Duration::from_millis(self.cfg.watchdog_timeout_ms);
        for (n, rec) in &mut self.nodes {
            if !self.cfg.watchdog_only.contains(n)
                || !matches!(rec.state, NodeFenceState::Unclean { .. })
            {
                continue;
            }
            if !may_fence {
                rec.assume_at = None;
            } else if rec.assume_at.is_none() {
                rec.assume_at = Some(at);
            }
        }
    }

    fn priority_of(&self, node: NodeId) -> NodePriority {
        NodePriority {
            cluster_node: true,
            online: self.members.contains(&node),
            priority: self.cfg.priorities.get(&node).copied().unwrap_or(0),
        }
    }
}
