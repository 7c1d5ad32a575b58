//! The Stack's fencing service: the fencer core and the "who fences" decision of
//! `phalanx-fence`, wired to the other layers.
//!
//! - votequorum's `QuorumChanged` events feed the decision (membership + quorate);
//!   totem's regular configurations tell the fencer who its peers are;
//! - the decision's requests (only the partition's coordinator, only with quorum)
//!   and the applications' requests ([`FenceCommand`]) go to the fencer;
//! - the fencer's agent calls leave as [`Output::FenceAgent`]; the driver runs them
//!   off its thread and reports with [`Input::FenceAgentDone`](super::Input);
//! - the fencer's peer messages travel in agreed order under [`ServiceId::Fence`],
//!   so every node records every result;
//! - its events, and "node N is fenced since its loss" from the decision, surface
//!   as [`StackEvent::Fence`].

use super::fence_cib::CibFencingState;
use super::{Output, ServiceId, Stack, StackEvent};
use phalanx_fence::Action;
use phalanx_fence::core::{
    CallId, CallOutcome, DecisionConfig, DecisionOutput, Device, FenceDecision, FenceEvent,
    FenceRequest, Fencer, FencerConfig, FencerError, FencerInput, FencerOutput, LevelTarget,
    NodeFenceState, OpState, PeerMessage, UnfenceOutput, Unfencing, decode_peer_message,
    encode_peer_message, watchdog_only_nodes,
};
use phalanx_logsys::record;
use phalanx_totem::{Guarantee, NodeId, Time};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// The client name of the decision's own requests (in history and events).
pub const DECISION_CLIENT: &str = "phalanx-decision";

/// Most encoded fencer messages waiting for room in totem; beyond it the oldest is
/// dropped and counted ([`FenceServiceStats::sends_dropped`]). The fencer sends a
/// few messages per operation and operations are bounded, so this is a backstop.
const MAX_QUEUED_SENDS: usize = 1024;

/// What the fencing service is built from (see [`StackConfig::fencing`]).
///
/// [`StackConfig::fencing`]: super::StackConfig::fencing
#[derive(Clone, Debug)]
pub struct FencingSetup {
    /// The fencer's configuration (local node and name, incarnation, seed, limits).
    pub fencer: FencerConfig,
    /// Who fences: policy, fencing action, attempts, priority delay.
    pub decision: DecisionConfig,
    /// Devices, with the capabilities their agents' metadata advertise.
    pub devices: Vec<Device>,
    /// Fencing levels: (target, index, device ids).
    pub levels: Vec<(LevelTarget, u8, Vec<String>)>,
    /// Every node's name (fencing targets are names, as in Pacemaker).
    pub names: BTreeMap<NodeId, String>,
    /// This process's predecessor on this host ended, on this boot, without a
    /// clean stop while it could hold DLM locks (the node runtime reads a
    /// marker in its state directory, `docs/dlm.md`). The service then says so
    /// in every [`PeerMessage::Present`]: the cluster fences this node before
    /// anyone takes a lockspace for granted, and this process joins none.
    pub unclean_start: bool,
    /// The ring sequence survives a restart of this node's process (the
    /// node runtime keeps it in its state directory), so every ring that
    /// holds a process of this node holds no earlier one: a ring names the
    /// process. The service then says its first ring in every
    /// [`PeerMessage::Present`], and a peer counts a fencing that names that
    /// ring for this process however late it saw the process join. Without
    /// it a fresh process may form a ring with the same id as one its
    /// predecessor formed, so nothing is said (a peer then counts only
    /// fencings that name the ring in which it saw the join).
    pub ring_seq_durable: bool,
}

/// A request of an application (an administrator's tool, the DLM) to the fencer.
/// These bypass the quorum rule, as externally requested fencing does in Pacemaker.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FenceCommand {
    /// Fence a target; the answer comes as a [`FenceEvent::RequestDone`].
    Fence(FenceRequest),
    /// An administrator confirms `target` is down (manual acknowledgement).
    Confirm {
        /// Target node name.
        target: String,
        /// Client name.
        client: String,
        /// Client's call id.
        call: u64,
    },
    /// Drop completed history entries (all, or one target's).
    HistoryCleanup {
        /// Limit to this target.
        target: Option<String>,
    },
}

/// What the fencing service tells the handles.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FenceNotice {
    /// The fencer's own event: a local request finished, some operation fenced or
    /// failed to fence a target.
    Fencer(FenceEvent),
    /// `node` left the membership while expected up and is owed fencing (loss
    /// number `loss`); services that must wait for it wait now.
    NodeUnclean {
        /// The node.
        node: NodeId,
        /// Which loss.
        loss: u64,
    },
    /// `node` is fenced since loss `loss`: services waiting on it may recover.
    NodeFenced {
        /// The node.
        node: NodeId,
        /// Which loss.
        loss: u64,
    },
    /// `node` was unfenced (`on` through the fabric devices) in its current
    /// membership: it may use the shared storage they guard.
    NodeUnfenced {
        /// The node.
        node: NodeId,
    },
}

/// Counters of the fencing service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FenceServiceStats {
    /// Fencer messages from peers that did not decode (dropped).
    pub malformed: u64,
    /// Requests of the decision the fencer refused (each counted as a failed attempt).
    pub decision_refused: u64,
    /// Fencer messages dropped because totem's queue stayed full.
    pub sends_dropped: u64,
    /// Devices currently registered from the CIB.
    pub cib_devices: u64,
    /// CIB fencing entries refused (invalid, an id the configuration file
    /// defines, rejected by the fencer) or whose agent's metadata failed.
    pub cib_refused: u64,
}

/// What a member said in this configuration about its process.
#[derive(Debug, Clone, Copy)]
struct Presence {
    /// See [`PeerMessage::Present`].
    unclean: bool,
    /// See [`PeerMessage::Present`].
    first_ring: Option<phalanx_totem::RingId>,
}

#[derive(Debug)]
pub(super) struct FenceService {
    fencer: Fencer,
    decision: FenceDecision,
    names: BTreeMap<NodeId, String>,
    ids: BTreeMap<String, NodeId>,
    /// Encoded messages (service byte first) waiting for room in totem.
    sends: VecDeque<Vec<u8>>,
    deadline: Option<Time>,
    /// The decision's requests in flight: call id → (node, loss).
    decided: BTreeMap<u64, (NodeId, u64)>,
    next_call: u64,
    /// Nodes last reported unclean (to report each loss once).
    unclean: BTreeMap<NodeId, u64>,
    /// Losses the decision wanted fenced while another operation (any origin)
    /// was already fencing the node: node → loss. That operation's result
    /// answers them; a failure sends the decision's request after all.
    awaiting: BTreeMap<NodeId, u64>,
    stats: FenceServiceStats,
    /// Devices and levels the CIB defines.
    cib: CibFencingState,
    /// Unfencing of members when a fabric device is registered.
    unfencing: Unfencing,
    /// The unfencing requests in flight: call id → node.
    unfence_calls: BTreeMap<u64, NodeId>,
    /// See [`FencingSetup::unclean_start`].
    unclean_start: bool,
    /// The members of the current regular configuration.
    ring_members: BTreeSet<NodeId>,
    /// Who has said in this configuration how it started and which process
    /// it is ([`PeerMessage::Present`]).
    present: BTreeMap<NodeId, Presence>,
    /// The first regular configuration this process was a member of: says
    /// which process this is, in every [`PeerMessage::Present`].
    first_ring: Option<phalanx_totem::RingId>,
    /// See [`FencingSetup::ring_seq_durable`].
    ring_seq_durable: bool,
}

impl FenceService {
    pub(super) fn new(setup: FencingSetup, now: Time) -> Result<Self, FencerError> {
        let mut fencer = Fencer::new(setup.fencer);
        let mut cib = CibFencingState::default();
        for d in &setup.devices {
            cib.config_devices.insert(d.id().to_string());
            cib.caps
                .insert(d.agent().to_string(), d.capabilities().clone());
        }
        for d in setup.devices {
            fencer.handle(now, FencerInput::RegisterDevice(d))?;
        }
        for (target, index, devices) in setup.levels {
            fencer.handle(
                now,
                FencerInput::RegisterLevel {
                    target,
                    index,
                    devices,
                },
            )?;
        }
        let ids = setup.names.iter().map(|(id, n)| (n.clone(), *id)).collect();
        let mut unfencing = Unfencing::new(setup.decision.local, setup.decision.max_attempts);
        unfencing.set_required(needs_unfencing(&fencer));
        Ok(FenceService {
            fencer,
            decision: FenceDecision::new(setup.decision),
            names: setup.names,
            ids,
            sends: VecDeque::new(),
            deadline: None,
            decided: BTreeMap::new(),
            next_call: 1,
            unclean: BTreeMap::new(),
            awaiting: BTreeMap::new(),
            stats: FenceServiceStats::default(),
            cib,
            unfencing,
            unfence_calls: BTreeMap::new(),
            unclean_start: setup.unclean_start,
            ring_seq_durable: setup.ring_seq_durable,
            ring_members: BTreeSet::new(),
            present: BTreeMap::new(),
            first_ring: None,
        })
    }

    /// Queues a message for totem (service byte first); the oldest is dropped
    /// and counted when the queue is full.
    fn queue_send(&mut self, m: &PeerMessage) {
        let mut b = vec![ServiceId::Fence as u8];
        b.extend_from_slice(&encode_peer_message(m));
        if self.sends.len() >= MAX_QUEUED_SENDS {
            self.stats.sends_dropped += 1;
            self.sends.pop_front();
        }
        self.sends.push_back(b);
    }

    /// Gives the decision this configuration's announcements of how each
    /// member started again: one delivered before the decision saw its sender join
    /// (votequorum reports a configuration only after its own exchange) is
    /// applied once it has.
    fn apply_presence(&mut self) {
        let mut news = Vec::new();
        for (n, p) in &self.present {
            if let Some(ring) = p.first_ring
                && self.decision.announced_first_ring(*n, ring)
            {
                news.push((*n, ring));
            }
            self.decision.announced_start(*n, p.unclean);
        }
        // A fencing that names the process's first ring and is over counts
        // now, even if its result came before the word (one result per
        // operation, whatever its order with the word).
        for (n, ring) in news {
            let name = self.name(n);
            let done = self.fencer.history().entries().any(|e| {
                e.state == OpState::Done
                    && matches!(e.action, Action::Off | Action::Reboot)
                    && e.target.eq_ignore_ascii_case(&name)
                    && e.target_joined == Some(ring)
            });
            if done {
                self.decision.fenced(n, Some(ring));
            }
        }
    }

    /// Whether an operation that powers `target` off (ours or a peer's) is
    /// pending: its result will answer for this loss too.
    fn off_in_progress(&self, target: &str) -> bool {
        self.fencer.history().entries().any(|e| {
            e.state == OpState::Pending
                && matches!(e.action, Action::Off | Action::Reboot)
                && e.target.eq_ignore_ascii_case(target)
        })
    }

    fn name(&self, node: NodeId) -> String {
        self.names
            .get(&node)
            .cloned()
            .unwrap_or_else(|| format!("node{node}"))
    }

    /// The ring in which we last saw the node named `target` join (`None` for a
    /// name that is no cluster node, or one never seen as a member).
    fn joined_ring_of(&self, target: &str) -> Option<phalanx_totem::RingId> {
        let id = self.ids.get(target).or_else(|| {
            self.ids
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(target))
                .map(|(_, id)| id)
        })?;
        self.decision.joined_ring(*id)
    }
}

/// Whether a registered device fences through a fabric (its agent's `on` is
/// `automatic`): members must then be unfenced when they join.
fn needs_unfencing(fencer: &Fencer) -> bool {
    fencer
        .registry()
        .devices()
        .any(|d| d.capabilities().on_automatic)
}

impl Stack {
    /// Whether `node` may use the storage fabric devices guard (unfenced in its
    /// current membership; always, without such a device or without fencing).
    pub fn fence_is_unfenced(&self, node: NodeId) -> bool {
        self.fence
            .as_ref()
            .is_none_or(|f| f.unfencing.is_unfenced(node))
    }

    /// The fencer core, if the Stack runs fencing (queries: history, registry).
    pub fn fencer(&self) -> Option<&Fencer> {
        self.fence.as_ref().map(|f| &f.fencer)
    }

    /// The "who fences" decision, if the Stack runs fencing (queries: a node's
    /// state, the unclean nodes, `is_fenced_since_lost`).
    pub fn fence_decision(&self) -> Option<&FenceDecision> {
        self.fence.as_ref().map(|f| &f.decision)
    }

    /// Every node's name, as fencing targets them (empty without fencing).
    pub fn fence_names(&self) -> BTreeMap<NodeId, String> {
        self.fence
            .as_ref()
            .map(|f| f.names.clone())
            .unwrap_or_default()
    }

    /// Counters of the fencing service (zero without it).
    pub fn fence_stats(&self) -> FenceServiceStats {
        self.fence
            .as_ref()
            .map(|f| f.stats.clone())
            .unwrap_or_default()
    }

    pub(super) fn on_fence_command(&mut self, c: FenceCommand) -> Result<(), FencerError> {
        let now = self.now;
        let Some(f) = self.fence.as_mut() else {
            return Err(FencerError::BadRequest("fencing is not configured".into()));
        };
        // Every request says which incarnation of its target it is about (the
        // ring in which this node last saw it join): its success fences that one.
        let input = match c {
            FenceCommand::Fence(mut r) => {
                r.target_joined = f.joined_ring_of(&r.target);
                FencerInput::Request(r)
            }
            FenceCommand::Confirm {
                target,
                client,
                call,
            } => FencerInput::Confirm {
                target_joined: f.joined_ring_of(&target),
                target,
                client,
                call,
            },
            FenceCommand::HistoryCleanup { target } => FencerInput::HistoryCleanup { target },
        };
        f.fencer.handle(now, input)
    }

    /// Reconciles the fencer with the devices and levels of the CIB, when there
    /// is a CIB and it changed (or `force`).
    pub(super) fn fence_follow_cib(&mut self, force: bool) {
        let now = self.now;
        let me = self.totem.node_id();
        let (Some(f), Some(c)) = (self.fence.as_mut(), self.cib.as_ref()) else {
            return;
        };
        if !force && !f.cib.cib_changed(c.cib()) {
            return;
        }
        let r = f.cib.reconcile(c.cib(), &mut f.fencer, now, force);
        f.unfencing.set_required(needs_unfencing(&f.fencer));
        // Watchdog-only nodes: those no registered device (configuration file
        // or CIB) can fence.
        let devices: Vec<&Device> = f.fencer.registry().devices().collect();
        let only = watchdog_only_nodes(devices, &f.names);
        f.decision.set_watchdog_only(only);
        f.stats.cib_refused += r.refused;
        f.stats.cib_devices = f.cib.registered().count() as u64;
        for note in &r.notes {
            record!(self.logger, now.as_nanos(), me, Notice, "fence", "{}", note);
        }
        for agent in r.ask_metadata {
            self.out.push_back(Output::FenceMetadata { agent });
        }
    }

    /// The driver read an agent's metadata (for a device the CIB defines).
    pub(super) fn on_fence_metadata(
        &mut self,
        agent: &str,
        result: Result<phalanx_fence::core::AgentCapabilities, String>,
    ) {
        let now = self.now;
        let me = self.totem.node_id();
        let Some(f) = self.fence.as_mut() else {
            return;
        };
        if let Err(why) = &result {
            f.stats.cib_refused += 1;
            record!(
                self.logger,
                now.as_nanos(),
                me,
                Warn,
                "fence",
                "agent {} has no usable metadata: {}",
                agent,
                why
            );
        }
        f.cib.metadata(agent, result);
        self.fence_follow_cib(true);
    }

    pub(super) fn on_fence_agent_done(&mut self, call: CallId, outcome: CallOutcome) {
        let now = self.now;
        if let Some(f) = self.fence.as_mut() {
            // A result for a call the fencer no longer waits for is ignored there.
            let _ = f
                .fencer
                .handle(now, FencerInput::AgentDone { call, outcome });
        }
    }

    /// A fencer message delivered in total order.
    pub(super) fn on_fence_message(&mut self, sender: NodeId, data: &[u8]) {
        let now = self.now;
        let Some(f) = self.fence.as_mut() else {
            self.stats.unknown_service += 1;
            return;
        };
        match decode_peer_message(data) {
            Ok(PeerMessage::Present {
                unclean,
                first_ring,
            }) => {
                f.decision.online(sender);
                if f.ring_members.contains(&sender) {
                    f.present.insert(
                        sender,
                        Presence {
                            unclean,
                            first_ring,
                        },
                    );
                }
                f.apply_presence();
            }
            Ok(msg) => {
                // The sender's fencing service is up (every fencer speaks when
                // a node joins): it is not pending.
                f.decision.online(sender);
                // Where an operation's start falls among configuration changes
                // (agreed order, our own included) tells which incarnation of
                // its target it can have fenced.
                if let PeerMessage::Started {
                    id, target, action, ..
                } = &msg
                    && let Some(&node) = f.ids.get(target.as_str())
                {
                    if *action == Action::On {
                        f.unfencing.operation_started(*id, node);
                    } else {
                        f.decision.operation_started(*id, node);
                    }
                }
                let _ = f
                    .fencer
                    .handle(now, FencerInput::Peer { from: sender, msg });
            }
            Err(_) => f.stats.malformed += 1,
        }
    }

    /// A regular configuration: the fencer's peers.
    ///
    /// Every member says first, in this configuration, how it started
    /// ([`PeerMessage::Present`]); until a member's word is delivered, it is in
    /// doubt ([`Stack::fence_in_doubt`]). Agreed order puts it before anything
    /// this member sends later, so no lockspace join can overtake it.
    pub(super) fn fence_config(&mut self, ring: phalanx_totem::RingId, members: &[NodeId]) {
        let now = self.now;
        if let Some(f) = self.fence.as_mut() {
            let members: BTreeSet<NodeId> = members.iter().copied().collect();
            f.ring_members = members.clone();
            f.present.clear();
            let unclean = f.unclean_start;
            let first = *f.first_ring.get_or_insert(ring);
            let first_ring = f.ring_seq_durable.then_some(first);
            f.queue_send(&PeerMessage::Present {
                unclean,
                first_ring,
            });
            let _ = f.fencer.handle(now, FencerInput::Members(members));
        }
    }

    /// The ring's members and their words, for a failed test's message.
    #[cfg(test)]
    pub(super) fn fence_debug(&self) -> String {
        self.fence.as_ref().map_or(String::new(), |f| {
            format!("ring_members {:?} present {:?}", f.ring_members, f.present)
        })
    }

    /// The nodes whose fate is in doubt for a service about to take shared
    /// state it cannot see the rest of (a DLM lockspace join), ascending: the
    /// decision's [`in_doubt`](FenceDecision::in_doubt), the members of the
    /// current configuration that have not said yet how they started, and this
    /// node if it started unclean (it waits for its own fencing). Empty without
    /// fencing, or with fencing disabled.
    pub(super) fn fence_in_doubt(&self) -> Vec<NodeId> {
        let Some(f) = self.fence.as_ref() else {
            return Vec::new();
        };
        if !f.decision.config().fencing_enabled {
            return Vec::new();
        }
        let me = f.decision.config().local;
        let mut out: BTreeSet<NodeId> = f.decision.in_doubt().into_iter().collect();
        out.extend(
            f.ring_members
                .iter()
                .filter(|n| **n != me && !f.present.contains_key(n)),
        );
        if f.unclean_start {
            out.insert(me);
        }
        out.into_iter().collect()
    }

    /// A quorum event: the decision's membership and quorum.
    pub(super) fn fence_quorum_event(&mut self, e: &phalanx_quorum::Event) {
        let now = self.now;
        if let Some(f) = self.fence.as_mut() {
            // Startup fencings peers did before we joined (history synchronised
            // on join) spare those nodes ours.
            let ids = &f.ids;
            f.decision
                .learn_history(f.fencer.history().entries(), |t| ids.get(t).copied());
            // The watchdog countdowns of this change's losses start now.
            f.decision.advance(now);
            f.decision.handle_quorum_event(e);
            f.apply_presence();
            if let phalanx_quorum::Event::QuorumChanged { ring, nodes, .. } = e {
                let members: BTreeSet<NodeId> = nodes
                    .iter()
                    .filter(|n| n.state != phalanx_quorum::NodeState::Dead)
                    .map(|n| n.node)
                    .collect();
                let may = f.decision.may_fence();
                f.unfencing.configuration(*ring, &members, may);
            }
        }
    }

    pub(super) fn fence_timeout(&mut self, now: Time) {
        if let Some(f) = self.fence.as_mut()
            && f.decision.poll_timeout().is_some_and(|t| t <= now)
        {
            let ids = &f.ids;
            f.decision
                .learn_history(f.fencer.history().entries(), |t| ids.get(t).copied());
            // Lost nodes whose watchdog has surely fired are fenced; the startup
            // dead time or a pending member's timeout may be over.
            f.decision.advance(now);
        }
        if let Some(f) = self.fence.as_mut()
            && f.deadline.is_some_and(|t| t <= now)
        {
            f.deadline = None;
            let _ = f.fencer.handle(now, FencerInput::Timeout);
        }
    }

    pub(super) fn fence_deadline(&self) -> Option<Time> {
        let f = self.fence.as_ref()?;
        [f.deadline, f.decision.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Moves the decision's requests into the fencer and the fencer's outputs out,
    /// until neither has anything more.
    pub(super) fn pump_fence(&mut self) {
        let now = self.now;
        let me = self.totem.node_id();
        let Some(f) = self.fence.as_mut() else {
            return;
        };
        let mut outputs = Vec::new();
        loop {
            let mut moved = false;
            while let Some(d) = f.decision.poll() {
                moved = true;
                match d {
                    DecisionOutput::Fence {
                        node,
                        action,
                        loss,
                        delay,
                    } => {
                        let name = f.name(node);
                        if f.off_in_progress(&name) {
                            // An administrator's (or a peer's) fencing of this node is
                            // under way — e.g. it was fenced as a member and its loss
                            // was seen before the result: wait for that result.
                            f.awaiting.insert(node, loss);
                            continue;
                        }
                        let call = f.next_call;
                        f.next_call += 1;
                        let mut req = FenceRequest::new(&name, action, DECISION_CLIENT, call);
                        req.delay = delay;
                        req.target_joined = f.decision.joined_ring(node);
                        f.decided.insert(call, (node, loss));
                        record!(
                            self.logger,
                            now.as_nanos(),
                            me,
                            Notice,
                            "fence",
                            "node {} lost (loss {}): requesting {}",
                            node,
                            loss,
                            action.as_str()
                        );
                        if f.fencer.handle(now, FencerInput::Request(req)).is_err() {
                            f.stats.decision_refused += 1;
                            f.decided.remove(&call);
                            f.decision.request_failed(node, loss);
                        }
                    }
                    DecisionOutput::NodeFenced { node, loss } => {
                        f.unclean.remove(&node);
                        outputs.push(FenceNotice::NodeFenced { node, loss });
                    }
                }
            }
            while let Some(u) = f.unfencing.poll() {
                moved = true;
                match u {
                    UnfenceOutput::Unfence { node, joined } => {
                        let name = f.name(node);
                        let call = f.next_call;
                        f.next_call += 1;
                        let mut req = FenceRequest::new(&name, Action::On, DECISION_CLIENT, call);
                        // Unfencing the local node is letting it in, not killing it.
                        req.allow_self = true;
                        req.target_joined = joined;
                        record!(
                            self.logger,
                            now.as_nanos(),
                            me,
                            Notice,
                            "fence",
                            "node {} joined: requesting unfencing",
                            node
                        );
                        f.unfence_calls.insert(call, node);
                        if f.fencer.handle(now, FencerInput::Request(req)).is_err() {
                            f.unfence_calls.remove(&call);
                            f.unfencing.failed(node);
                        }
                    }
                    UnfenceOutput::NodeUnfenced { node } => {
                        outputs.push(FenceNotice::NodeUnfenced { node });
                    }
                }
            }
            // Losses the decision recorded (reported once each, in node order).
            for node in f.decision.unclean() {
                if let NodeFenceState::Unclean { loss } = f.decision.state(node)
                    && f.unclean.insert(node, loss) != Some(loss)
                {
                    outputs.push(FenceNotice::NodeUnclean { node, loss });
                }
            }
            loop {
                match f.fencer.poll_output() {
                    FencerOutput::AgentCall(c) => {
                        moved = true;
                        self.out.push_back(Output::FenceAgent(c));
                    }
                    FencerOutput::Broadcast(m) => {
                        moved = true;
                        f.queue_send(&m);
                    }
                    FencerOutput::Event(e) => {
                        moved = true;
                        match &e {
                            // An `on` is unfencing, never a fencing.
                            FenceEvent::Fenced(entry) if entry.action == Action::On => {
                                if let Some(&id) = f.ids.get(&entry.target) {
                                    f.unfencing
                                        .operation_done(id, entry.id, entry.target_joined);
                                }
                            }
                            FenceEvent::Fenced(entry) => {
                                if let Some(&id) = f.ids.get(&entry.target) {
                                    let awaited = f.awaiting.remove(&id);
                                    f.decision
                                        .operation_fenced(id, entry.id, entry.target_joined);
                                    // A result about another incarnation (a
                                    // startup fencing that landed after the node
                                    // joined) did not fence this loss: ask after
                                    // all (a no-op when it did).
                                    if let Some(loss) = awaited {
                                        f.decision.request_failed(id, loss);
                                    }
                                }
                            }
                            FenceEvent::FenceFailed(entry) => {
                                f.decision.operation_ended(entry.id);
                                f.unfencing.operation_ended(entry.id);
                                if let Some(&id) = f.ids.get(&entry.target)
                                    && let Some(loss) = f.awaiting.remove(&id)
                                {
                                    f.decision.request_failed(id, loss);
                                }
                            }
                            FenceEvent::RequestDone {
                                client,
                                call,
                                result,
                                ..
                            } if client == DECISION_CLIENT => {
                                // A success that fenced the loss made it Fenced
                                // already (its `Fenced` event comes first) and
                                // this is a no-op; one that did not (it was
                                // about another incarnation) is asked again.
                                if let Some((node, loss)) = f.decided.remove(call) {
                                    f.decision.request_failed(node, loss);
                                }
                                if let Some(node) = f.unfence_calls.remove(call)
                                    && result.is_err()
                                {
                                    f.unfencing.failed(node);
                                }
                            }
                            _ => {}
                        }
                        outputs.push(FenceNotice::Fencer(e));
                    }
                    FencerOutput::Timeout(t) => {
                        f.deadline = t;
                        break;
                    }
                }
            }
            if !moved {
                break;
            }
        }
        for n in outputs {
            self.emit(Output::Event(StackEvent::Fence(n)));
        }
    }

    /// Feeds the fencer's messages to totem (agreed) while it has room; true if any
    /// moved.
    pub(super) fn pump_fence_sends(&mut self) -> bool {
        let Some(f) = self.fence.as_mut() else {
            return false;
        };
        let mut any = false;
        while let Some(m) = f.sends.front() {
            if m.len() > self.totem.send_queue_room() {
                break;
            }
            let Some(m) = f.sends.pop_front() else { break };
            // Room was checked; only a node that left refuses, when dropping is right.
            let _ = self.totem.mcast_owned(self.now, Guarantee::Agreed, m);
            any = true;
        }
        any
    }

    pub(super) fn fence_is_quiescent(&self) -> bool {
        self.fence.as_ref().is_none_or(|f| f.sends.is_empty())
    }
}
