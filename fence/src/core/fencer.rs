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
//!    `on` on all (skipping devices with `pcmk_reboot_action=off`, without `on`, or
//!    with automatic unfencing); the `on` phase cannot fail the operation.
//!
//! The operation ends when it succeeds, runs out of devices/levels, or its total
//! timeout passes (a timeout during the `on` phase is a success: the target is
//! already off). The result goes into history, to the requesting client, to every
//! handle as a notification, and to the peers.

use super::delay::start_delay_secs;
use super::device::Device;
use super::history::{Delegate, History, HistoryEntry, OpId, OpState};
use super::io::{
    AgentCall, CallId, CallOutcome, FenceEvent, FenceFailure, FenceRequest, FencerError,
    FencerInput, FencerOutput, MAX_NAME_LEN, PeerMessage,
};
use super::registry::{Eligibility, Registry};
use super::rng::SeededRng;
use super::timeout::{DeviceBudget, scaled, total_timeout_secs};
use super::topology::Topology;
use crate::Action;
use phalanx_quorum::NodeId;
use phalanx_totem::Time;
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
}

#[derive(Debug, Clone)]
struct PeerOp {
    target: String,
    action: Action,
    client: String,
    created: Time,
    total_timeout_s: u64,
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
}

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

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
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
            } => self.confirm(now, target, client, call),
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
                if node.is_empty() || node.len() > MAX_NAME_LEN {
                    return Err(FencerError::BadRequest("bad node name".into()));
                }
                self.attributes
                    .insert(node.to_ascii_lowercase(), attributes);
                Ok(())
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
            [Some(op.deadline), step]
        });
        let guards = self.calls.values().map(|c| c.guard);
        ops.chain(guards).flatten().min()
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
        let same = |target: &str, action: Action, client: &str| {
            target.eq_ignore_ascii_case(&req.target)
                && action == req.action
                && !client.eq_ignore_ascii_case(&req.client)
        };
        for op in self.ops.values() {
            if matches!(op.kind, OpKind::Duplicate(_))
                || !same(&op.req.target, op.req.action, &op.req.client)
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
            if !same(&p.target, p.action, &p.client) || !self.members.contains(&id.origin) {
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

    // ----- planning ----------------------------------------------------------

    fn exec_mut(&mut self, id: OpId) -> Option<&mut Exec> {
        match &mut self.ops.get_mut(&id)?.kind {
            OpKind::Own(e) => Some(e),
            OpKind::Duplicate(_) => None,
        }
    }

    fn plan(&mut self, now: Time, id: OpId) {
        let Some(op) = self.ops.get(&id) else { return };
        let target = op.req.target.clone();
        let action = op.req.action;
        let base = op.base_timeout_s;
        let attrs = self
            .attributes
            .get(&target.to_ascii_lowercase())
            .cloned()
            .unwrap_or_default();
        let levels = self.topology.levels_for(&target, &attrs);
        let (topology, levels): (bool, Vec<Vec<String>>) = if levels.is_empty() {
            let devs = self
                .registry
                .candidates(&target, action, now)
                .into_iter()
                .map(|(d, _)| d)
                .collect();
            (false, vec![devs])
        } else {
            (true, levels.into_iter().map(|(_, d)| d).collect())
        };
        let mut asked = BTreeSet::new();
        let mut queries = Vec::new();
        for dev in levels.iter().flatten() {
            if !asked.insert(dev.clone()) {
                continue;
            }
            let purpose = match self.registry.eligibility(dev, action, &target, now, false) {
                Eligibility::NeedsList => Purpose::List,
                Eligibility::NeedsStatus => Purpose::Status,
                _ => continue,
            };
            queries.push((dev.clone(), purpose));
        }
        let mut call_ids = BTreeSet::new();
        for (dev, purpose) in queries {
            let Some(device) = self.registry.get(&dev) else {
                continue;
            };
            let qaction = if purpose == Purpose::List {
                Action::List
            } else {
                Action::Status
            };
            let timeout = secs(device.action_timeout_secs(qaction, base).max(1));
            let target_arg = (purpose == Purpose::Status).then(|| target.clone());
            let call = self.enqueue(Call {
                device: dev,
                action: qaction,
                target: target_arg,
                op: Some(id),
                purpose,
                timeout,
                attempt: 1,
                guard: None,
            });
            call_ids.insert(call);
        }
        let Some(exec) = self.exec_mut(id) else {
            return;
        };
        exec.topology = topology;
        exec.levels = levels;
        exec.queries = call_ids;
        if exec.queries.is_empty() {
            self.finish_planning(now, id);
        }
    }

    fn capable(&self, exec: &Exec, device: &str, action: Action, target: &str, now: Time) -> bool {
        match self.registry.eligibility(device, action, target, now, true) {
            Eligibility::Yes => true,
            Eligibility::NeedsStatus => exec.status_ok.contains(device),
            _ => false,
        }
    }

    fn finish_planning(&mut self, now: Time, id: OpId) {
        let Some(op) = self.ops.get(&id) else { return };
        let OpKind::Own(exec) = &op.kind else { return };
        let target = op.req.target.clone();
        let action = op.req.action;
        let base = op.base_timeout_s;
        let mut exec = (**exec).clone();
        if !exec.topology {
            let keep: Vec<String> = exec.levels[0]
                .iter()
                .filter(|d| self.capable(&exec, d, action, &target, now))
                .cloned()
                .collect();
            exec.levels[0] = keep;
        }
        // The phase the budget is computed for (Pacemaker: the op's phase when the
        // first level is entered, for every level).
        let phase_action = if exec.topology && action == Action::Reboot && exec.levels[0].len() > 1
        {
            Action::Off
        } else {
            action
        };
        let budgets: Vec<DeviceBudget> = exec
            .levels
            .iter()
            .flatten()
            .filter(|d| self.capable(&exec, d, action, &target, now))
            .filter_map(|d| self.registry.get(d))
            .map(|d| DeviceBudget::of(d, phase_action, &target, base))
            .collect();
        if budgets.is_empty() {
            exec.planning = false;
            if let Some(op) = self.ops.get_mut(&id) {
                op.kind = OpKind::Own(Box::new(exec));
            }
            self.fail(now, id, format!("no device can fence {target}"), false);
            return;
        }
        let total = total_timeout_secs(&budgets, base, op.req.delay);
        let started = PeerMessage::Started {
            id,
            target,
            action,
            client: op.req.client.clone(),
            total_timeout_s: total,
        };
        exec.planning = false;
        if let Some(op) = self.ops.get_mut(&id) {
            op.total_timeout_s = total;
            op.deadline = now + secs(total);
            op.kind = OpKind::Own(Box::new(exec));
        }
        self.out.push_back(FencerOutput::Broadcast(started));
        self.start_level(now, id, 0);
    }

    // ----- running -----------------------------------------------------------

    fn start_level(&mut self, now: Time, id: OpId, level: usize) {
        let Some(op) = self.ops.get(&id) else { return };
        let action = op.req.action;
        let Some(exec) = self.exec_mut(id) else {
            return;
        };
        if level >= exec.levels.len() {
            let reason = exec
                .last_reason
                .clone()
                .unwrap_or_else(|| "all fencing levels failed".into());
            self.fail(now, id, reason, false);
            return;
        }
        exec.level = level;
        exec.pos = 0;
        exec.phase = if exec.topology && action == Action::Reboot && exec.levels[level].len() > 1 {
            Phase::Off
        } else {
            Phase::Requested
        };
        self.start_step(now, id);
    }

    fn start_step(&mut self, now: Time, id: OpId) {
        let Some(op) = self.ops.get(&id) else { return };
        let OpKind::Own(exec) = &op.kind else { return };
        let list = if exec.phase == Phase::On {
            &exec.on_devices
        } else {
            &exec.levels[exec.level]
        };
        let Some(dev_id) = list.get(exec.pos).cloned() else {
            if !exec.topology && exec.phase == Phase::Requested {
                let reason = exec
                    .last_reason
                    .clone()
                    .unwrap_or_else(|| "every device failed".into());
                self.fail(now, id, reason, false);
            } else {
                self.level_complete(now, id);
            }
            return;
        };
        let target = op.req.target.clone();
        let requested = op.req.delay;
        let base = op.base_timeout_s;
        let first = exec.level == 0 && exec.pos == 0 && exec.phase != Phase::On;
        let phase = exec.phase;
        let usable = self.registry.get(&dev_id).is_some()
            && (phase == Phase::On || self.capable(exec, &dev_id, op.req.action, &target, now));
        let Some(device) = self.registry.get(&dev_id).filter(|_| usable) else {
            self.step_failed(now, id, format!("device {dev_id} cannot fence {target}"));
            return;
        };
        let action = match phase {
            Phase::Off => Action::Off,
            Phase::On => Action::On,
            Phase::Requested if op.req.action == Action::Reboot => device.reboot_or_off(),
            Phase::Requested => op.req.action,
        };
        let timeout_s = device.action_timeout_secs(action, base).max(1);
        let retries = device.retries(action).max(1);
        let delay = start_delay_secs(
            requested,
            first,
            device.delay_base_secs(action, &target),
            device.delay_max_secs(action),
            &mut self.rng,
        );
        let step = Step {
            device: dev_id,
            action,
            timeout_s,
            attempt: 1,
            retries,
            first_start: None,
            wait: StepWait::Delay(now + secs(delay)),
        };
        if let Some(exec) = self.exec_mut(id) {
            exec.step = Some(step);
        }
        if delay == 0 {
            self.enqueue_step(now, id);
        }
    }

    /// Queues the current step's next attempt on its device.
    fn enqueue_step(&mut self, now: Time, id: OpId) {
        let Some(op) = self.ops.get(&id) else { return };
        let target = op.req.target.clone();
        let OpKind::Own(exec) = &op.kind else { return };
        let Some(step) = exec.step.clone() else {
            return;
        };
        let elapsed = step
            .first_start
            .map_or(Duration::ZERO, |t| now.saturating_since(t));
        let remaining = secs(step.timeout_s).saturating_sub(elapsed);
        if remaining.is_zero() {
            self.step_failed(
                now,
                id,
                format!("{} {} ran out of time", step.device, step.action),
            );
            return;
        }
        let call = self.enqueue(Call {
            device: step.device.clone(),
            action: step.action,
            target: Some(target),
            op: Some(id),
            purpose: Purpose::Fence,
            timeout: remaining,
            attempt: step.attempt,
            guard: None,
        });
        if let Some(s) = self.exec_mut(id).and_then(|e| e.step.as_mut()) {
            s.wait = StepWait::Queued(call);
        }
    }

    fn step_succeeded(&mut self, now: Time, id: OpId) {
        let Some(exec) = self.exec_mut(id) else {
            return;
        };
        exec.step = None;
        if !exec.topology && exec.phase == Phase::Requested {
            self.succeed(now, id);
            return;
        }
        exec.pos += 1;
        self.start_step(now, id);
    }

    fn step_failed(&mut self, now: Time, id: OpId, reason: String) {
        let Some(exec) = self.exec_mut(id) else {
            return;
        };
        exec.step = None;
        if exec.phase == Phase::On {
            // The target is already off: an `on` failure is ignored.
            exec.pos += 1;
            self.start_step(now, id);
            return;
        }
        exec.last_reason = Some(reason);
        if exec.topology {
            let next = exec.level + 1;
            self.start_level(now, id, next);
        } else {
            exec.pos += 1;
            self.start_step(now, id);
        }
    }

    fn level_complete(&mut self, now: Time, id: OpId) {
        let Some(exec) = self.exec_mut(id) else {
            return;
        };
        if exec.phase != Phase::Off {
            self.succeed(now, id);
            return;
        }
        let level = exec.levels[exec.level].clone();
        let on: Vec<String> = level
            .into_iter()
            .filter(|d| {
                self.registry.get(d).is_some_and(|dev: &Device| {
                    !dev.reboot_stays_off()
                        && dev.supports(Action::On)
                        && !dev.capabilities().on_automatic
                })
            })
            .collect();
        let Some(exec) = self.exec_mut(id) else {
            return;
        };
        exec.phase = Phase::On;
        exec.on_devices = on;
        exec.pos = 0;
        self.start_step(now, id);
    }

    // ----- agent calls -------------------------------------------------------

    fn enqueue(&mut self, call: Call) -> CallId {
        let id = CallId(self.next_call);
        self.next_call += 1;
        self.queues
            .entry(call.device.clone())
            .or_default()
            .push_back(id);
        self.calls.insert(id, call);
        id
    }

    fn running_on(&self, device: &str) -> usize {
        self.calls
            .values()
            .filter(|c| c.device == device && c.guard.is_some())
            .count()
    }

    /// Starts queued calls while their devices have free slots.
    fn pump(&mut self, now: Time) {
        let devices: Vec<String> = self.queues.keys().cloned().collect();
        for dev in devices {
            loop {
                let limit = self
                    .registry
                    .get(&dev)
                    .map_or(Some(1), |d| d.action_limit())
                    .map_or(usize::MAX, |l| l as usize);
                if self.running_on(&dev) >= limit {
                    break;
                }
                let Some(cid) = self.queues.get_mut(&dev).and_then(|q| q.pop_front()) else {
                    break;
                };
                self.start_call(now, cid);
            }
            if self.queues.get(&dev).is_some_and(|q| q.is_empty()) {
                self.queues.remove(&dev);
            }
        }
    }

    fn start_call(&mut self, now: Time, cid: CallId) {
        let grace = self.cfg.call_grace;
        let Some(call) = self.calls.get_mut(&cid) else {
            return;
        };
        call.guard = Some(now + call.timeout + grace);
        let call = call.clone();
        let Some(device) = self.registry.get(&call.device) else {
            // Removed while queued: the call cannot run.
            self.calls.remove(&cid);
            self.call_finished(
                now,
                cid,
                call,
                CallOutcome::Failed {
                    exit_code: None,
                    reason: "device was removed".into(),
                },
            );
            return;
        };
        let port = call.target.as_deref().and_then(|t| {
            device
                .host_argument()
                .map(|arg| (arg.to_string(), device.port_for(t).to_string()))
        });
        let ac = AgentCall {
            call: cid,
            op: call.op,
            device: call.device.clone(),
            agent: device.agent().to_string(),
            action: call.action,
            agent_action: device.agent_action(call.action),
            target: call.target.clone(),
            port,
            params: device.agent_params(),
            timeout: call.timeout,
            attempt: call.attempt,
        };
        self.stats.calls += 1;
        if call.purpose == Purpose::Fence
            && let Some(op) = call.op
            && let Some(step) = self.exec_mut(op).and_then(|e| e.step.as_mut())
        {
            step.wait = StepWait::Running(cid);
            step.first_start.get_or_insert(now);
        }
        self.out.push_back(FencerOutput::AgentCall(ac));
    }

    fn agent_done(&mut self, now: Time, cid: CallId, outcome: CallOutcome) {
        // Only a started call can finish; a queued one has not been handed out.
        match self.calls.get(&cid) {
            Some(c) if c.guard.is_some() => {}
            _ => {
                self.stats.stale_results += 1;
                return;
            }
        }
        let Some(call) = self.calls.remove(&cid) else {
            return;
        };
        self.call_finished(now, cid, call, outcome);
    }

    fn call_finished(&mut self, now: Time, cid: CallId, call: Call, outcome: CallOutcome) {
        let Some(op_id) = call.op.filter(|id| self.ops.contains_key(id)) else {
            if call.purpose == Purpose::List {
                // Still worth caching for later operations.
                let output = match &outcome {
                    CallOutcome::Success { output } => Some(output.as_str()),
                    _ => None,
                };
                self.registry.record_list(&call.device, now, output);
            }
            return;
        };
        match call.purpose {
            Purpose::List | Purpose::Status => {
                if call.purpose == Purpose::List {
                    let output = match &outcome {
                        CallOutcome::Success { output } => Some(output.as_str()),
                        _ => None,
                    };
                    self.registry.record_list(&call.device, now, output);
                }
                let reachable = matches!(
                    outcome,
                    CallOutcome::Success { .. }
                        | CallOutcome::Failed {
                            exit_code: Some(2),
                            ..
                        }
                );
                let Some(exec) = self.exec_mut(op_id) else {
                    return;
                };
                exec.queries.remove(&cid);
                if call.purpose == Purpose::Status && reachable {
                    exec.status_ok.insert(call.device.clone());
                }
                if exec.planning && exec.queries.is_empty() {
                    self.finish_planning(now, op_id);
                }
            }
            Purpose::Fence => {
                let Some(step) = self.exec_mut(op_id).and_then(|e| e.step.clone()) else {
                    return;
                };
                if step.device != call.device || step.action != call.action {
                    return;
                }
                match outcome {
                    CallOutcome::Success { .. } => self.step_succeeded(now, op_id),
                    CallOutcome::Failed { reason, .. } => {
                        let elapsed = step
                            .first_start
                            .map_or(Duration::ZERO, |t| now.saturating_since(t));
                        // Retry only with ≥ 30 % of the action timeout left.
                        let in_time = elapsed.as_secs_f64() < step.timeout_s as f64 * 0.7;
                        if step.attempt < step.retries && in_time {
                            self.stats.retries += 1;
                            let pause = self.cfg.retry_pause;
                            if let Some(s) = self.exec_mut(op_id).and_then(|e| e.step.as_mut()) {
                                s.attempt += 1;
                                s.wait = StepWait::Pause(now + pause);
                            }
                            if pause.is_zero() {
                                self.enqueue_step(now, op_id);
                            }
                        } else {
                            self.step_failed(
                                now,
                                op_id,
                                format!("{} {}: {reason}", step.device, step.action),
                            );
                        }
                    }
                    CallOutcome::TimedOut => {
                        self.step_failed(
                            now,
                            op_id,
                            format!("{} {} timed out", step.device, step.action),
                        );
                    }
                }
            }
        }
    }

    // ----- timers ------------------------------------------------------------

    fn expire(&mut self, now: Time) {
        // Lost calls first: they free device slots and may end steps.
        let lost: Vec<CallId> = self
            .calls
            .iter()
            .filter(|(_, c)| c.guard.is_some_and(|g| g <= now))
            .map(|(id, _)| *id)
            .collect();
        for cid in lost {
            if let Some(call) = self.calls.remove(&cid) {
                self.call_finished(now, cid, call, CallOutcome::TimedOut);
            }
        }
        let ids: Vec<OpId> = self.ops.keys().copied().collect();
        for id in ids {
            let Some(op) = self.ops.get(&id) else {
                continue;
            };
            if op.deadline <= now {
                let on_phase = matches!(&op.kind, OpKind::Own(e) if e.phase == Phase::On);
                if on_phase {
                    self.succeed(now, id);
                } else {
                    let t = op.total_timeout_s.max(scaled(op.base_timeout_s));
                    self.fail(now, id, format!("timed out after {t}s"), true);
                }
                continue;
            }
            let wait = match &op.kind {
                OpKind::Own(e) => e.step.as_ref().map(|s| s.wait),
                OpKind::Duplicate(_) => None,
            };
            if let Some(StepWait::Delay(t) | StepWait::Pause(t)) = wait
                && t <= now
            {
                self.enqueue_step(now, id);
            }
        }
    }

    // ----- completion --------------------------------------------------------

    fn succeed(&mut self, now: Time, id: OpId) {
        self.finish(now, id, Ok(Delegate::Node(self.cfg.local)));
    }

    fn fail(&mut self, now: Time, id: OpId, reason: String, timed_out: bool) {
        self.finish(now, id, Err(FenceFailure { reason, timed_out }));
    }

    /// Ends a local operation (and the duplicates merged into it).
    fn finish(&mut self, now: Time, id: OpId, result: Result<Delegate, FenceFailure>) {
        let Some(op) = self.ops.remove(&id) else {
            return;
        };
        // Queued calls are dropped; running ones finish on their own (their slot
        // stays taken until then) and are then ignored.
        let mine: Vec<CallId> = self
            .calls
            .iter()
            .filter(|(_, c)| c.op == Some(id))
            .map(|(c, _)| *c)
            .collect();
        for cid in mine {
            let queued = self.calls.get(&cid).is_some_and(|c| c.guard.is_none());
            if queued {
                if let Some(c) = self.calls.remove(&cid)
                    && let Some(q) = self.queues.get_mut(&c.device)
                {
                    q.retain(|x| *x != cid);
                }
            } else if let Some(c) = self.calls.get_mut(&cid) {
                c.op = None;
            }
        }
        let (state, delegate, reason) = match &result {
            Ok(d) => (OpState::Done, Some(*d), None),
            Err(f) => (OpState::Failed, None, Some(f.reason.clone())),
        };
        let entry = HistoryEntry {
            id,
            target: op.req.target.clone(),
            action: op.req.action,
            origin: self.cfg.local,
            delegate,
            client: op.req.client.clone(),
            state,
            completed: Some(now),
            exit_reason: reason,
        };
        self.publish(entry);
        self.out
            .push_back(FencerOutput::Event(FenceEvent::RequestDone {
                op: id,
                client: op.req.client,
                call: op.req.call,
                result: result.clone(),
            }));
        self.finish_duplicates_of(now, id, &result);
    }

    fn finish_duplicates_of(
        &mut self,
        now: Time,
        orig: OpId,
        result: &Result<Delegate, FenceFailure>,
    ) {
        let dups: Vec<OpId> = self
            .ops
            .values()
            .filter(|o| matches!(o.kind, OpKind::Duplicate(of) if of == orig))
            .map(|o| o.id)
            .collect();
        for d in dups {
            self.finish(now, d, result.clone());
        }
    }

    /// Records a final entry, notifies the handles and tells the peers.
    fn publish(&mut self, entry: HistoryEntry) {
        self.history.record(entry.clone());
        let ev = match entry.state {
            OpState::Done => FenceEvent::Fenced(entry.clone()),
            _ => FenceEvent::FenceFailed(entry.clone()),
        };
        self.out.push_back(FencerOutput::Event(ev));
        self.out
            .push_back(FencerOutput::Broadcast(PeerMessage::Result(entry)));
    }

    // ----- peers -------------------------------------------------------------

    fn peer(&mut self, now: Time, from: NodeId, msg: PeerMessage) {
        if from == self.cfg.local {
            return; // our own broadcast coming back: already applied
        }
        match msg {
            PeerMessage::Started {
                id,
                target,
                action,
                client,
                total_timeout_s,
            } => {
                if target.is_empty() || target.len() > MAX_NAME_LEN || client.len() > MAX_NAME_LEN {
                    return;
                }
                if self
                    .history
                    .get(&id)
                    .is_some_and(|e| e.state != OpState::Pending)
                {
                    return;
                }
                self.history.record(HistoryEntry {
                    id,
                    target: target.clone(),
                    action,
                    origin: id.origin,
                    delegate: None,
                    client: client.clone(),
                    state: OpState::Pending,
                    completed: None,
                    exit_reason: None,
                });
                if self.peer_ops.len() >= self.cfg.max_peer_ops
                    && let Some(oldest) = self
                        .peer_ops
                        .iter()
                        .min_by_key(|(id, p)| (p.created, **id))
                        .map(|(id, _)| *id)
                {
                    self.peer_ops.remove(&oldest);
                }
                self.peer_ops.insert(
                    id,
                    PeerOp {
                        target,
                        action,
                        client,
                        created: now,
                        total_timeout_s,
                    },
                );
            }
            PeerMessage::Result(entry) => self.peer_result(now, entry),
            PeerMessage::History(entries) => {
                let send = self
                    .history
                    .merge(entries, self.cfg.local, self.cfg.incarnation, now);
                for e in send {
                    self.out
                        .push_back(FencerOutput::Broadcast(PeerMessage::Result(e)));
                }
            }
        }
    }

    fn peer_result(&mut self, now: Time, entry: HistoryEntry) {
        if entry.state == OpState::Pending
            || entry.target.is_empty()
            || entry.target.len() > MAX_NAME_LEN
        {
            return;
        }
        self.peer_ops.remove(&entry.id);
        let already = self
            .history
            .get(&entry.id)
            .is_some_and(|e| e.state != OpState::Pending);
        self.history.record(entry.clone());
        if !already {
            let ev = match entry.state {
                OpState::Done => FenceEvent::Fenced(entry.clone()),
                _ => FenceEvent::FenceFailed(entry.clone()),
            };
            self.out.push_back(FencerOutput::Event(ev));
        }
        let result = match entry.state {
            OpState::Done => Ok(entry.delegate.unwrap_or(Delegate::Node(entry.origin))),
            _ => Err(FenceFailure {
                reason: entry.exit_reason.clone().unwrap_or_else(|| "failed".into()),
                timed_out: false,
            }),
        };
        self.finish_duplicates_of(now, entry.id, &result);
    }

    fn membership(&mut self, now: Time, mut members: BTreeSet<NodeId>) {
        members.insert(self.cfg.local);
        let joined = members.difference(&self.members).next().is_some();
        self.members = members;
        let orphaned: Vec<OpId> = self
            .peer_ops
            .keys()
            .filter(|id| !self.members.contains(&id.origin))
            .copied()
            .collect();
        for id in orphaned {
            let Some(p) = self.peer_ops.remove(&id) else {
                continue;
            };
            let entry = HistoryEntry {
                id,
                target: p.target,
                action: p.action,
                origin: id.origin,
                delegate: None,
                client: p.client,
                state: OpState::Failed,
                completed: Some(now),
                exit_reason: Some("originator left the membership".into()),
            };
            // Every member sees the same membership change and does the same: no
            // broadcast needed.
            self.history.record(entry.clone());
            self.out
                .push_back(FencerOutput::Event(FenceEvent::FenceFailed(entry.clone())));
            self.finish_duplicates_of(
                now,
                id,
                &Err(FenceFailure {
                    reason: "originator left the membership".into(),
                    timed_out: false,
                }),
            );
        }
        if joined {
            let all: Vec<HistoryEntry> = self.history.entries().cloned().collect();
            self.out
                .push_back(FencerOutput::Broadcast(PeerMessage::History(all)));
        }
    }
}
