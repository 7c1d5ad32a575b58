//! The fencer state machine (sans-IO): requests in, agent calls, peer broadcasts and
//! handle events out. See the crate docs for the run loop; the rules it follows are
//! §2.4/§2.5 of the fencing reference and Pacemaker's fencer.
//!
//! An operation goes through two stages:
//!
//! 1. **Plan.** The target's topology levels (ascending), or, without topology, the
//!    registered devices that can fence it (by priority, then id) as alternatives.
//!    Devices whose check needs the agent (`dynamic-list` without a fresh list,
//!    `status`) are asked first. The total timeout is then fixed
//!    ([`total_timeout_secs`]) and a [`PeerMessage::Started`] is broadcast.
//! 2. **Run.** One device at a time: its delay, a free slot under
//!    `pcmk_action_limit`, the agent call, retries (`pcmk_<action>_retries`
//!    attempts in all, only while the last attempt did not time out and less than
//!    70 % of the action timeout has passed, a pause between attempts). With
//!    topology every device of a level must succeed and the first failure moves to
//!    the next level; without topology the first success wins and a failure moves
//!    to the next device. A reboot of a multi-device level runs `off` on all, then
//!    `on` on all (skipping devices with `pcmk_reboot_action=off`, without `on`,
//!    with automatic unfencing, or whose `on` runs on the target, which is off
//!    by then); the `on` phase cannot fail the operation.
//!
//! The operation ends when it succeeds, runs out of devices/levels, or its total
//! timeout passes (a timeout during the `on` phase is a success: the target is
//! already off). The result goes into history, to the requesting client, to every
//! handle as a notification, and to the peers.

mod calls;
mod finish;
mod peers;
mod plan;
mod run;

use super::delay::start_delay_secs;
use super::device::Device;
use super::history::{Delegate, History, HistoryEntry, MAX_HISTORY, OpId, OpState};
use super::io::{
    AgentCall, CallId, CallOutcome, FenceEvent, FenceFailure, FenceRequest, FencerError,
    FencerInput, FencerOutput, MAX_NAME_LEN, PeerMessage,
};
use super::registry::{Eligibility, Registry};
use super::rng::SeededRng;
use super::timeout::{DeviceBudget, scaled, total_timeout_secs};
use super::topology::Topology;
use super::wire::MAX_REASON_LEN;
use crate::Action;
use phalanx_quorum::NodeId;
use phalanx_totem::{RingId, Time};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

/// The fencer's configuration.
#[derive(Debug, Clone)]
pub struct FencerConfig {
    /// This node's id.
    pub local: NodeId,
    /// This node's name (targets are names).
    pub local_name: String,
    /// Differs on every start of the fencer (operation ids stay unique).
    pub incarnation: u64,
    /// Seed of the random part of `pcmk_delay_max`.
    pub seed: u64,
    /// `fencing-timeout`: a request's timeout when it gives none (60 s).
    pub default_timeout: Duration,
    /// Most local operations (own and merged duplicates) in flight; more is
    /// [`FencerError::TryAgain`].
    pub max_ops: usize,
    /// Most peer operations remembered for duplicate merging (oldest forgotten).
    pub max_peer_ops: usize,
    /// Pause between two attempts on a device (Pacemaker: 1 s).
    pub retry_pause: Duration,
    /// How long past its timeout an agent call may stay unreported before the core
    /// counts it as timed out (frees its device slot if the runner lost it).
    pub call_grace: Duration,
}

impl FencerConfig {
    /// Defaults for everything but identity and seed.
    pub fn new(local: NodeId, local_name: &str, incarnation: u64, seed: u64) -> Self {
        FencerConfig {
            local,
            local_name: local_name.to_string(),
            incarnation,
            seed,
            default_timeout: Duration::from_secs(60),
            max_ops: 64,
            max_peer_ops: 256,
            retry_pause: Duration::from_secs(1),
            call_grace: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Requested,
    Off,
    On,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StepWait {
    Delay(Time),
    Queued(CallId),
    Running(CallId),
    Pause(Time),
}

#[derive(Debug, Clone)]
struct Step {
    device: String,
    action: Action,
    timeout_s: u64,
    attempt: u32,
    retries: u32,
    first_start: Option<Time>,
    wait: StepWait,
}

#[derive(Debug, Clone)]
struct Exec {
    planning: bool,
    topology: bool,
    levels: Vec<Vec<String>>,
    level: usize,
    pos: usize,
    phase: Phase,
    on_devices: Vec<String>,
    step: Option<Step>,
    queries: BTreeSet<CallId>,
    status_ok: BTreeSet<String>,
    last_reason: Option<String>,
}

#[derive(Debug, Clone)]
enum OpKind {
    /// Merged into another in-flight operation (ours or a peer's).
    Duplicate(OpId),
    Own(Box<Exec>),
}

#[derive(Debug, Clone)]
struct Op {
    id: OpId,
    req: FenceRequest,
    base_timeout_s: u64,
    created: Time,
    deadline: Time,
    total_timeout_s: u64,
    kind: OpKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    List,
    Status,
    Fence,
    /// An `on_target` action a peer's operation asked this node (its target) to
    /// run; the outcome goes back as [`PeerMessage::Executed`].
    ForPeer(CallId),
}

#[derive(Debug, Clone)]
struct Call {
    device: String,
    action: Action,
    target: Option<String>,
    op: Option<OpId>,
    purpose: Purpose,
    timeout: Duration,
    attempt: u32,
    guard: Option<Time>,
    /// Handed to the target's fencer (an `on_target` action): its answer comes
    /// as [`PeerMessage::Executed`], and it takes no local device slot.
    remote: bool,
}

#[derive(Debug, Clone)]
struct PeerOp {
    target: String,
    action: Action,
    client: String,
    created: Time,
    total_timeout_s: u64,
    target_joined: Option<RingId>,
}

/// Counters for tests and status displays.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FencerStats {
    /// Requests accepted.
    pub requests: u64,
    /// Requests merged into an in-flight duplicate.
    pub merged: u64,
    /// Agent calls emitted (queries and fencing attempts).
    pub calls: u64,
    /// Retries of a fencing action on the same device.
    pub retries: u64,
    /// Agent results for calls no longer known (late after a timeout).
    pub stale_results: u64,
    /// Requests refused with TryAgain.
    pub try_again: u64,
    /// `on_target` actions handed to the target's fencer.
    pub delegated: u64,
    /// Actions run here for a peer's operation (this node was the target).
    pub executed_for_peers: u64,
}

/// Most actions run at once for peers' operations; more are refused at once.
pub const MAX_PEER_EXECUTIONS: usize = 64;

/// The fencer core.
#[derive(Debug)]
pub struct Fencer {
    cfg: FencerConfig,
    registry: Registry,
    topology: Topology,
    attributes: BTreeMap<String, BTreeMap<String, String>>,
    history: History,
    members: BTreeSet<NodeId>,
    ops: BTreeMap<OpId, Op>,
    peer_ops: BTreeMap<OpId, PeerOp>,
    calls: BTreeMap<CallId, Call>,
    queues: BTreeMap<String, VecDeque<CallId>>,
    out: VecDeque<FencerOutput>,
    rng: SeededRng,
    next_seq: u64,
    next_call: u64,
    stats: FencerStats,
}

/// Most nodes whose attributes are kept.
const MAX_ATTRIBUTE_NODES: usize = 4096;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A history entry from a peer that is safe to store.
fn sane_entry(e: &HistoryEntry) -> bool {
    !e.target.is_empty()
        && e.target.len() <= MAX_NAME_LEN
        && e.client.len() <= MAX_NAME_LEN
        && e.exit_reason
            .as_ref()
            .is_none_or(|r| r.len() <= MAX_REASON_LEN)
        && e.origin == e.id.origin
}

impl Fencer {
    /// A fencer with no devices, levels or history; the membership is the local node.
    pub fn new(cfg: FencerConfig) -> Self {
        let rng = SeededRng::new(cfg.seed);
        let members = BTreeSet::from([cfg.local]);
        Fencer {
            cfg,
            registry: Registry::new(),
            topology: Topology::new(),
            attributes: BTreeMap::new(),
            history: History::new(),
            members,
            ops: BTreeMap::new(),
            peer_ops: BTreeMap::new(),
            calls: BTreeMap::new(),
            queues: BTreeMap::new(),
            out: VecDeque::new(),
            rng,
            next_seq: 1,
            next_call: 1,
            stats: FencerStats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &FencerConfig {
        &self.cfg
    }

    /// Registered devices.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Fencing levels.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Fencing history.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// When `target` was last fenced successfully, as recorded here (what DLM's
    /// `stonith_api_time` asks), or `None`.
    pub fn last_fenced(&self, target: &str) -> Option<Time> {
        self.history
            .entries()
            .filter(|e| e.state == OpState::Done && e.target.eq_ignore_ascii_case(target))
            .filter_map(|e| e.completed)
            .max()
    }

    /// Whether some operation against `target` is pending (ours or a peer's).
    pub fn fencing_in_progress(&self, target: &str) -> bool {
        self.history
            .entries()
            .any(|e| e.state == OpState::Pending && e.target.eq_ignore_ascii_case(target))
    }

    /// Counters.
    pub fn stats(&self) -> FencerStats {
        self.stats
    }

    /// Local operations in flight (own and merged duplicates).
    pub fn in_flight(&self) -> usize {
        self.ops.len()
    }

    /// Agent calls running or waiting for a device slot.
    pub fn calls_outstanding(&self) -> usize {
        self.calls.len()
    }

    /// Takes one input (see the crate docs for the run loop). Requests answer here:
    /// `Ok` when taken, a typed error when refused (nothing changed).
    pub fn handle(&mut self, now: Time, input: FencerInput) -> Result<(), FencerError> {
        self.expire(now);
        let r = match input {
            FencerInput::Request(req) => self.request(now, req),
            FencerInput::Confirm {
                target,
                client,
                call,
                target_joined,
            } => self.confirm(now, target, client, call, target_joined),
            FencerInput::AgentDone { call, outcome } => {
                self.agent_done(now, call, outcome);
                Ok(())
            }
            FencerInput::Peer { from, msg } => {
                self.peer(now, from, msg);
                Ok(())
            }
            FencerInput::Members(m) => {
                self.membership(now, m);
                Ok(())
            }
            FencerInput::Timeout => Ok(()),
            FencerInput::RegisterDevice(d) => self.registry.register(d).map_err(Into::into),
            FencerInput::RemoveDevice(id) => {
                self.registry.remove(&id);
                Ok(())
            }
            FencerInput::RegisterLevel {
                target,
                index,
                devices,
            } => self
                .topology
                .register(target, index, devices)
                .map_err(Into::into),
            FencerInput::RemoveLevel { target, index } => {
                self.topology.remove(&target, index);
                Ok(())
            }
            FencerInput::NodeAttributes { node, attributes } => {
                self.set_attributes(node, attributes)
            }
            FencerInput::HistoryCleanup { target } => {
                self.history.cleanup(target.as_deref());
                Ok(())
            }
        };
        self.pump(now);
        r
    }

    /// The next output; [`FencerOutput::Timeout`] when there is nothing more until
    /// the next input.
    pub fn poll_output(&mut self) -> FencerOutput {
        self.out
            .pop_front()
            .unwrap_or_else(|| FencerOutput::Timeout(self.poll_timeout()))
    }

    /// The earliest deadline (operation timeouts, delays, retry pauses, call guards).
    pub fn poll_timeout(&self) -> Option<Time> {
        let ops = self.ops.values().flat_map(|op| {
            let step = match &op.kind {
                OpKind::Own(e) => e.step.as_ref().and_then(|s| match s.wait {
                    StepWait::Delay(t) | StepWait::Pause(t) => Some(t),
                    _ => None,
                }),
                OpKind::Duplicate(_) => None,
            };
            [self.deadline_of(op), step]
        });
        let guards = self.calls.values().map(|c| c.guard);
        ops.chain(guards).flatten().min()
    }

    /// When an operation times out: a duplicate of one of our own operations has
    /// no deadline of its own (it ends with the original, whose deadline moves
    /// when its plan is made); any other has its own.
    fn deadline_of(&self, op: &Op) -> Option<Time> {
        match op.kind {
            OpKind::Duplicate(of) if self.ops.contains_key(&of) => None,
            _ => Some(op.deadline),
        }
    }

    fn set_attributes(
        &mut self,
        node: String,
        attributes: BTreeMap<String, String>,
    ) -> Result<(), FencerError> {
        let too_long = attributes
            .iter()
            .any(|(k, v)| k.len() > MAX_NAME_LEN || v.len() > MAX_NAME_LEN);
        if node.is_empty() || node.len() > MAX_NAME_LEN || too_long || attributes.len() > 256 {
            return Err(FencerError::BadRequest(
                "bad node name or attributes".into(),
            ));
        }
        if !self.attributes.contains_key(&node.to_ascii_lowercase())
            && self.attributes.len() >= MAX_ATTRIBUTE_NODES
        {
            return Err(FencerError::BadRequest(
                "too many nodes with attributes".into(),
            ));
        }
        self.attributes
            .insert(node.to_ascii_lowercase(), attributes);
        Ok(())
    }

    // ----- requests -----------------------------------------------------------

    fn validate(&self, target: &str, client: &str) -> Result<(), FencerError> {
        if target.is_empty() || target.len() > MAX_NAME_LEN || client.len() > MAX_NAME_LEN {
            return Err(FencerError::BadRequest(format!(
                "target and client names must be 1..={MAX_NAME_LEN} bytes"
            )));
        }
        Ok(())
    }

    fn new_id(&mut self) -> OpId {
        let id = OpId {
            origin: self.cfg.local,
            incarnation: self.cfg.incarnation,
            seq: self.next_seq,
        };
        self.next_seq += 1;
        id
    }

    fn request(&mut self, now: Time, req: FenceRequest) -> Result<(), FencerError> {
        self.validate(&req.target, &req.client)?;
        if !matches!(req.action, Action::Off | Action::On | Action::Reboot) {
            return Err(FencerError::BadRequest(format!(
                "{} is not a fencing action",
                req.action
            )));
        }
        if req.target.eq_ignore_ascii_case(&self.cfg.local_name) && !req.allow_self {
            return Err(FencerError::SelfFencing);
        }
        if self.ops.len() >= self.cfg.max_ops {
            self.stats.try_again += 1;
            return Err(FencerError::TryAgain);
        }
        self.stats.requests += 1;
        let base_timeout_s = req
            .timeout
            .unwrap_or(self.cfg.default_timeout)
            .as_secs()
            .max(1);
        let id = self.new_id();
        self.history.record(HistoryEntry {
            id,
            target: req.target.clone(),
            action: req.action,
            origin: self.cfg.local,
            delegate: None,
            client: req.client.clone(),
            state: OpState::Pending,
            completed: None,
            exit_reason: None,
            target_joined: req.target_joined,
        });
        if let Some((orig, deadline)) = self.find_duplicate(now, &req) {
            self.stats.merged += 1;
            self.ops.insert(
                id,
                Op {
                    id,
                    req,
                    base_timeout_s,
                    created: now,
                    deadline,
                    total_timeout_s: 0,
                    kind: OpKind::Duplicate(orig),
                },
            );
            return Ok(());
        }
        let op = Op {
            id,
            req,
            base_timeout_s,
            created: now,
            // The query stage's own bound; replaced by the total once planned.
            deadline: now + secs(scaled(base_timeout_s)),
            total_timeout_s: 0,
            kind: OpKind::Own(Box::new(Exec {
                planning: true,
                topology: false,
                levels: Vec::new(),
                level: 0,
                pos: 0,
                phase: Phase::Requested,
                on_devices: Vec::new(),
                step: None,
                queries: BTreeSet::new(),
                status_ok: BTreeSet::new(),
                last_reason: None,
            })),
        };
        self.ops.insert(id, op);
        self.plan(now, id);
        Ok(())
    }

    /// An in-flight operation this request can piggy-back on: same target and
    /// action, another client, not a self-fencing, not older than its total
    /// timeout, originator still a member. Returns it and its deadline.
    fn find_duplicate(&self, now: Time, req: &FenceRequest) -> Option<(OpId, Time)> {
        // A duplicate fences the same incarnation: an operation asked for before
        // the target last rejoined may have acted before it, and its result must
        // not stand for a request about the later membership.
        let same = |target: &str, action: Action, client: &str, joined: Option<RingId>| {
            target.eq_ignore_ascii_case(&req.target)
                && action == req.action
                && !client.eq_ignore_ascii_case(&req.client)
                && joined == req.target_joined
        };
        for op in self.ops.values() {
            if matches!(op.kind, OpKind::Duplicate(_))
                || !same(
                    &op.req.target,
                    op.req.action,
                    &op.req.client,
                    op.req.target_joined,
                )
                || op.req.target.eq_ignore_ascii_case(&self.cfg.local_name)
            {
                continue;
            }
            if op.total_timeout_s > 0 && now > op.created + secs(op.total_timeout_s) {
                continue;
            }
            return Some((op.id, op.deadline));
        }
        for (id, p) in &self.peer_ops {
            if !same(&p.target, p.action, &p.client, p.target_joined)
                || !self.members.contains(&id.origin)
            {
                continue;
            }
            let deadline = p.created + secs(p.total_timeout_s);
            if p.total_timeout_s > 0 && now > deadline {
                continue;
            }
            return Some((*id, deadline));
        }
        None
    }

    fn confirm(
        &mut self,
        now: Time,
        target: String,
        client: String,
        call: u64,
        target_joined: Option<RingId>,
    ) -> Result<(), FencerError> {
        self.validate(&target, &client)?;
        let id = self.new_id();
        let entry = HistoryEntry {
            id,
            target,
            action: Action::Off,
            origin: self.cfg.local,
            delegate: Some(Delegate::Manual),
            client: client.clone(),
            state: OpState::Done,
            completed: Some(now),
            exit_reason: None,
            target_joined,
        };
        self.publish(entry);
        self.out
            .push_back(FencerOutput::Event(FenceEvent::RequestDone {
                op: id,
                client,
                call,
                result: Ok(Delegate::Manual),
            }));
        Ok(())
    }
}
