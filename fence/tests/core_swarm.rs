//! A deterministic randomized test of fencers and "who fences" decisions together:
//! by seed, 3–5 nodes go through partitions, merges, crashes, restarts,
//! administrator requests and manual confirmations, and agents that pass, fail,
//! time out or never answer; devices with or without topology, with static checks
//! or a `dynamic-list` that makes every plan wait for a `list` call.
//! Broadcasts reach exactly the members of the sender's partition, in order; a
//! successful off/reboot powers its target down (it crashes).
//!
//! Odd seeds use **replayed devices**: every agent call is answered by a
//! [`RecordedDevice`] from `recordings/fence_dummy.jsonl` (real calls of Debian's
//! `fence_dummy`: its exit codes, output and durations, in virtual time, through
//! the runner's own interpretation), with the seed's [`DeviceFaults`] laid over
//! (hang, timeout, wrong status, crash, slow power-off); an off/reboot that may
//! have acted powers the target down even when the agent then failed. There the
//! `ipmi` device of a dynamic seed keeps the default host check, so it tries
//! `list` (which fence_dummy lacks) and falls back to `status`.
//!
//! Invariants, checked after every step:
//! * no fencing is requested by a decision whose partition is inquorate;
//! * within one membership epoch, a target generation (one boot) is fenced by at
//!   most one executed decision request (duplicates merge, a loss is requested
//!   once);
//! * every request completes within its bound (query bound + total timeout);
//! * every history stays bounded;
//! * a decision reports a lost node fenced only once the boot of it that the
//!   deciding node last saw as a member is no longer running (a late result
//!   about an earlier boot must not stand for a later one).
//!
//! and at the end, after healing (a quorate partition, agents that pass): every
//! request of a live node completed, no operation is in flight, and the
//! coordinator owes no fencing.

use phalanx_fence::Action;
use phalanx_fence::core::{
    AgentCall, AgentCapabilities, CallId, CallOutcome, DecisionConfig, DecisionOutput, Device,
    FenceDecision, FenceEvent, FenceRequest, Fencer, FencerConfig, FencerError, FencerInput,
    FencerOutput, LevelTarget, MAX_HISTORY, OpId, PeerMessage, SeededRng, decode_peer_message,
    encode_peer_message, scaled,
};
use phalanx_fence::replay::{DeviceFault, DeviceFaults, RecordedDevice};
use phalanx_totem::{RingId, Time};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const SEEDS: u64 = 4000;
const STEPS: usize = 120;
const BASE_TIMEOUT_S: u64 = 10;

/// Real calls of Debian's fence_dummy (see tests/replay_recording.rs).
const RECORDING: &str = include_str!("../recordings/fence_dummy.jsonl");

/// The replayed devices of a seed: the recording and the seed's fault mix.
struct Replay {
    device: RecordedDevice,
    faults: DeviceFaults,
}

/// What the replayed devices did over a run.
#[derive(Default)]
struct ReplayStats {
    seeds: u64,
    calls: u64,
    hang: u64,
    timeout: u64,
    wrong_status: u64,
    crash: u64,
    slow: u64,
    failed_but_acted: u64,
}

struct SimNode {
    up: bool,
    boot: u64,
    fencer: Fencer,
    decision: FenceDecision,
}

struct Answer {
    at: Time,
    node: u32,
    boot: u64,
    call: CallId,
    outcome: CallOutcome,
}

/// What a device does to a machine, at some moment before its agent reports.
enum Power {
    /// The machine stops.
    Down(u32),
    /// A rebooted machine comes back (a new boot) and joins a partition.
    Up(u32),
}

struct Sim {
    seed: u64,
    rng: SeededRng,
    now: Time,
    n: u32,
    nodes: BTreeMap<u32, SimNode>,
    partitions: Vec<BTreeSet<u32>>,
    answers: Vec<Answer>,
    /// Device actions, at their times.
    power: Vec<(Time, Power)>,
    epoch: u64,
    /// (node, call) → (submitted at, membership epoch of the request, the loss when
    /// a decision asked)
    outstanding: BTreeMap<(u32, u64), (Time, u64, Option<u64>)>,
    /// Operations that executed (a Started was broadcast) → client.
    executed: BTreeMap<OpId, String>,
    /// (target, its generation, request epoch) → successful decision executions.
    fenced: BTreeMap<(u32, u64, u64), u32>,
    /// (observer, target) → the boot of the target the observer last saw as a
    /// member.
    seen_boot: BTreeMap<(u32, u32), u64>,
    max_total: u64,
    next_call: u64,
    agents_always_pass: bool,
    topo: bool,
    dynamic: bool,
    replay: Option<Replay>,
    replay_stats: ReplayStats,
    log: Vec<String>,
}

fn name(n: u32) -> String {
    format!("node{n}")
}

fn id_of(target: &str) -> Option<u32> {
    target.strip_prefix("node")?.parse().ok()
}

fn new_node(
    id: u32,
    n: u32,
    boot: u64,
    seed: u64,
    topo: bool,
    dynamic: bool,
    replayed: bool,
) -> SimNode {
    let mut cfg = FencerConfig::new(id, &name(id), boot, seed ^ u64::from(id) ^ (boot << 32));
    cfg.max_ops = 16;
    let mut fencer = Fencer::new(cfg);
    let t = Time::ZERO;
    // With `dynamic`, ipmi learns its targets from `list` (the default check for
    // an agent with `list` and no host list), so plans wait for an agent call.
    let dev = |id: &str, limit: &str| {
        // A replayed dynamic device keeps the default check (its `list` fails, so
        // it falls back to `status`).
        let check = match (dynamic && id == "ipmi", replayed) {
            (true, true) => None,
            (true, false) => Some("dynamic-list"),
            (false, _) => Some("none"),
        };
        let mut params: BTreeMap<String, String> =
            [("pcmk_action_limit", limit), ("pcmk_delay_max", "2")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        if let Some(check) = check {
            params.insert("pcmk_host_check".into(), check.into());
        }
        let agent = if replayed { "fence_dummy" } else { "fence_sim" };
        Device::new(id, agent, params, AgentCapabilities::power_switch(), 0).expect("device")
    };
    fencer
        .handle(t, FencerInput::RegisterDevice(dev("pdu", "1")))
        .expect("pdu");
    fencer
        .handle(t, FencerInput::RegisterDevice(dev("ipmi", "2")))
        .expect("ipmi");
    if topo {
        for (i, d) in [(1, "ipmi"), (2, "pdu")] {
            fencer
                .handle(
                    t,
                    FencerInput::RegisterLevel {
                        target: LevelTarget::Pattern("^node".into()),
                        index: i,
                        devices: vec![d.into()],
                    },
                )
                .expect("level");
        }
    }
    let mut dcfg = DecisionConfig::new(id, 1..=n);
    dcfg.max_attempts = 1000;
    SimNode {
        up: true,
        boot,
        fencer,
        decision: FenceDecision::new(dcfg),
    }
}

impl Sim {
    fn new(seed: u64) -> Self {
        let mut rng = SeededRng::new(seed);
        let n = 3 + rng.up_to(2) as u32;
        let topo = rng.up_to(1) == 1;
        let dynamic = rng.up_to(1) == 1;
        let replay = (seed % 2 == 1).then(|| Replay {
            device: RecordedDevice::from_recording(RECORDING).expect("the recording parses"),
            faults: DeviceFaults::draw(&mut rng),
        });
        let replayed = replay.is_some();
        let nodes = (1..=n)
            .map(|i| (i, new_node(i, n, 1, seed, topo, dynamic, replayed)))
            .collect();
        let mut sim = Sim {
            seed,
            rng,
            now: Time::ZERO,
            n,
            nodes,
            partitions: vec![(1..=n).collect()],
            answers: Vec::new(),
            power: Vec::new(),
            epoch: 0,
            outstanding: BTreeMap::new(),
            executed: BTreeMap::new(),
            fenced: BTreeMap::new(),
            seen_boot: BTreeMap::new(),
            max_total: 0,
            next_call: 1,
            agents_always_pass: false,
            topo,
            dynamic,
            replay,
            replay_stats: ReplayStats::default(),
            log: Vec::new(),
        };
        sim.apply_membership();
        sim
    }

    fn fail(&self, what: String) -> ! {
        let tail: Vec<&String> = self.log.iter().rev().take(40).collect();
        panic!(
            "seed {}: {what}\nlast events (newest first):\n{tail:#?}",
            self.seed
        );
    }

    fn quorate(&self, p: &BTreeSet<u32>) -> bool {
        p.len() as u32 > self.n / 2
    }

    fn partition_of(&self, node: u32) -> Option<&BTreeSet<u32>> {
        self.partitions.iter().find(|p| p.contains(&node))
    }

    fn apply_membership(&mut self) {
        self.partitions.retain(|p| !p.is_empty());
        self.epoch += 1;
        let parts = self.partitions.clone();
        for p in &parts {
            let q = self.quorate(p);
            // Every member of a partition shares its ring id, as totem's agreed
            // configuration gives them.
            let ring = RingId {
                seq: self.epoch,
                rep: p.first().copied().unwrap_or(0),
            };
            for id in p {
                for t in p {
                    let boot = self.nodes[t].boot;
                    self.seen_boot.insert((*id, *t), boot);
                }
                let node = self.nodes.get_mut(id).expect("node");
                node.fencer
                    .handle(self.now, FencerInput::Members(p.clone()))
                    .expect("members");
                node.decision.configuration(ring, p, q);
            }
        }
        self.log.push(format!(
            "{} epoch {} partitions {:?}",
            self.now, self.epoch, parts
        ));
        self.settle();
    }

    fn draw_outcome(&mut self, timeout: Duration) -> (Duration, Option<CallOutcome>) {
        let latency = Duration::from_millis(50 + self.rng.up_to(2950));
        if self.agents_always_pass {
            return (
                latency,
                Some(CallOutcome::Success {
                    output: String::new(),
                }),
            );
        }
        match self.rng.up_to(99) {
            0..=74 => (
                latency,
                Some(CallOutcome::Success {
                    output: String::new(),
                }),
            ),
            75..=89 => (
                latency,
                Some(CallOutcome::Failed {
                    exit_code: Some(1),
                    reason: "sim".into(),
                }),
            ),
            90..=94 => (timeout, Some(CallOutcome::TimedOut)),
            _ => (latency, None), // never answered
        }
    }

    /// A replayed device's answer: (latency, outcome or never, whether the
    /// device may have cut the target's power).
    fn replayed_answer(&mut self, c: &AgentCall) -> Option<(Duration, Option<CallOutcome>, bool)> {
        let replay = self.replay.as_ref()?;
        let fault = if self.agents_always_pass {
            None
        } else {
            replay.faults.pick(c.action, &mut self.rng)
        };
        let a = replay.device.answer(c, fault, &mut self.rng);
        let st = &mut self.replay_stats;
        st.calls += 1;
        match fault {
            Some(DeviceFault::Hang) => st.hang += 1,
            Some(DeviceFault::Timeout) => st.timeout += 1,
            Some(DeviceFault::WrongStatus) => st.wrong_status += 1,
            Some(DeviceFault::Crash) => st.crash += 1,
            Some(DeviceFault::SlowPowerOff(_)) => st.slow += 1,
            None => {}
        }
        let succeeded = matches!(a.outcome, Some(CallOutcome::Success { .. }));
        if a.may_have_powered_off && !succeeded {
            st.failed_but_acted += 1;
        }
        Some((a.after, a.outcome, a.may_have_powered_off))
    }

    /// Delivers every output until nothing moves.
    fn settle(&mut self) {
        loop {
            let mut moved = false;
            let ids: Vec<u32> = self.nodes.keys().copied().collect();
            for id in ids {
                if !self.nodes[&id].up {
                    continue;
                }
                loop {
                    let out = self.nodes.get_mut(&id).expect("node").fencer.poll_output();
                    if matches!(out, FencerOutput::Timeout(_)) {
                        break;
                    }
                    moved = true;
                    self.fencer_output(id, out);
                }
                while let Some(d) = self.nodes.get_mut(&id).expect("node").decision.poll() {
                    moved = true;
                    if let DecisionOutput::NodeFenced { node: t, loss } = d {
                        let seen = self.seen_boot.get(&(id, t)).copied();
                        let target = &self.nodes[&t];
                        if target.up && Some(target.boot) == seen {
                            self.fail(format!(
                                "node {id} reports node{t} fenced (loss {loss}) while the \
                                 boot {} it last saw as a member still runs",
                                target.boot
                            ));
                        }
                    }
                    self.decision_output(id, d);
                }
                let h = self.nodes[&id].fencer.history().len();
                if h > MAX_HISTORY {
                    self.fail(format!("node {id} history holds {h} entries"));
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn fencer_output(&mut self, id: u32, out: FencerOutput) {
        match out {
            FencerOutput::AgentCall(c) => {
                let (delay, outcome, acted) = match self.replayed_answer(&c) {
                    Some(answer) => answer,
                    None => {
                        let (delay, mut outcome) = self.draw_outcome(c.timeout);
                        if let (Action::List, Some(CallOutcome::Success { output })) =
                            (c.action, &mut outcome)
                        {
                            *output = (1..=self.n).map(|i| format!("{i},{}\n", name(i))).collect();
                        }
                        let acted = matches!(
                            (&outcome, c.action),
                            (
                                Some(CallOutcome::Success { .. }),
                                Action::Off | Action::Reboot
                            )
                        );
                        (delay, outcome, acted)
                    }
                };
                self.log.push(format!(
                    "{} n{id} call {:?} {} {:?} → {:?}",
                    self.now, c.call, c.device, c.action, outcome
                ));
                // A success (or, with replayed devices, an off that acted but
                // failed its verification or ran out of time) powered its target
                // off at some moment before the agent reported; a reboot brings it
                // back, possibly before the report (so a late result meets a new
                // boot).
                if let (true, Some(t)) = (acted, c.target.as_deref().and_then(id_of)) {
                    let acts =
                        self.now + Duration::from_nanos(self.rng.up_to(delay.as_nanos() as u64));
                    self.power.push((acts, Power::Down(t)));
                    if c.action == Action::Reboot {
                        let back = acts + Duration::from_millis(100 + self.rng.up_to(4000));
                        self.power.push((back, Power::Up(t)));
                    }
                }
                let Some(outcome) = outcome else { return };
                let boot = self.nodes[&id].boot;
                self.answers.push(Answer {
                    at: self.now + delay,
                    node: id,
                    boot,
                    call: c.call,
                    outcome,
                });
            }
            FencerOutput::Broadcast(msg) => {
                if let PeerMessage::Started {
                    id: op,
                    client,
                    total_timeout_s,
                    ..
                } = &msg
                {
                    self.executed.insert(*op, client.clone());
                    self.max_total = self.max_total.max(*total_timeout_s);
                }
                // Through the wire form, as the Stack will carry it over CPG.
                let bytes = encode_peer_message(&msg);
                let msg = match decode_peer_message(&bytes) {
                    Ok(m) => m,
                    Err(e) => self.fail(format!("a broadcast does not decode: {e}")),
                };
                // Every member (the sender too, as totem delivers its own
                // messages) sees the start in order with configuration changes.
                if let PeerMessage::Started { id: op, target, .. } = &msg
                    && let Some(t) = id_of(target)
                {
                    let members: Vec<u32> = self
                        .partition_of(id)
                        .map(|p| p.iter().copied().collect())
                        .unwrap_or_default();
                    for m in members {
                        let node = self.nodes.get_mut(&m).expect("member");
                        node.decision.operation_started(*op, t);
                    }
                }
                let peers: Vec<u32> = self
                    .partition_of(id)
                    .map(|p| p.iter().copied().filter(|p| *p != id).collect())
                    .unwrap_or_default();
                for p in peers {
                    let node = self.nodes.get_mut(&p).expect("peer");
                    node.fencer
                        .handle(
                            self.now,
                            FencerInput::Peer {
                                from: id,
                                msg: msg.clone(),
                            },
                        )
                        .expect("peer message");
                }
            }
            FencerOutput::Event(FenceEvent::RequestDone {
                op, call, result, ..
            }) => {
                let Some((t0, req_epoch, by_decision)) = self.outstanding.remove(&(id, call))
                else {
                    self.fail(format!("node {id}: RequestDone for unknown call {call}"));
                };
                let bound = t0 + Duration::from_secs(scaled(BASE_TIMEOUT_S) + self.max_total);
                if self.now > bound {
                    self.fail(format!(
                        "node {id} call {call} completed at {} after its bound {bound}",
                        self.now
                    ));
                }
                self.log.push(format!(
                    "{} n{id} done call {call} {op:?} ok={}",
                    self.now,
                    result.is_ok()
                ));
                if let (Some(loss), Err(_)) = (by_decision, &result)
                    && let Some(t) = self.target_of_call(id, call)
                {
                    self.nodes
                        .get_mut(&id)
                        .expect("node")
                        .decision
                        .request_failed(t, loss);
                }
                let executed = self
                    .executed
                    .get(&op)
                    .is_some_and(|c| c.starts_with("decision@"));
                if by_decision.is_some() && executed && result.is_ok() {
                    let target = self.target_of_call(id, call);
                    if let Some(t) = target {
                        let boot = self.nodes[&t].boot;
                        let count = self.fenced.entry((t, boot, req_epoch)).or_default();
                        *count += 1;
                        if *count > 1 {
                            self.fail(format!("node{t} (boot {boot}) fenced twice by decisions in epoch {req_epoch}"));
                        }
                    }
                }
            }
            FencerOutput::Event(FenceEvent::Fenced(e)) => {
                if let Some(t) = id_of(&e.target) {
                    self.nodes
                        .get_mut(&id)
                        .expect("node")
                        .decision
                        .operation_fenced(t, e.id, e.target_joined);
                }
            }
            FencerOutput::Event(FenceEvent::FenceFailed(e)) => {
                self.nodes
                    .get_mut(&id)
                    .expect("node")
                    .decision
                    .operation_ended(e.id);
            }
            FencerOutput::Timeout(_) => {}
        }
    }

    fn target_of_call(&self, node: u32, call: u64) -> Option<u32> {
        // The sim names calls so that the target is recoverable: call = seq * 16 + target.
        let _ = node;
        Some((call % 16) as u32)
    }

    fn submit(
        &mut self,
        id: u32,
        target: u32,
        action: Action,
        client: String,
        delay: Option<i64>,
        by_decision: Option<u64>,
    ) -> Result<(), FencerError> {
        let call = self.next_call * 16 + u64::from(target);
        self.next_call += 1;
        let mut req = FenceRequest::new(&name(target), action, &client, call);
        req.timeout = Some(Duration::from_secs(BASE_TIMEOUT_S));
        req.target_joined = self.nodes[&id].decision.joined_ring(target);
        req.delay = delay;
        let r = self
            .nodes
            .get_mut(&id)
            .expect("node")
            .fencer
            .handle(self.now, FencerInput::Request(req));
        self.log.push(format!(
            "{} n{id} {client} requests {action} node{target}: {r:?}",
            self.now
        ));
        if r.is_ok() {
            self.outstanding
                .insert((id, call), (self.now, self.epoch, by_decision));
        }
        r
    }

    fn decision_output(&mut self, id: u32, d: DecisionOutput) {
        if let DecisionOutput::Fence {
            node,
            action,
            delay,
            loss,
        } = d
        {
            let quorate = self.partition_of(id).is_some_and(|p| self.quorate(p));
            if !quorate {
                self.fail(format!(
                    "node {id} requested fencing of node{node} while inquorate"
                ));
            }
            let client = format!("decision@{id}");
            if self
                .submit(id, node, action, client, delay, Some(loss))
                .is_err()
            {
                // Refused (full): the decision asks again after a failure.
                self.nodes
                    .get_mut(&id)
                    .expect("node")
                    .decision
                    .request_failed(node, loss);
            }
        }
    }

    fn crash(&mut self, target: u32) {
        let node = self.nodes.get_mut(&target).expect("node");
        node.up = false;
        self.outstanding.retain(|(n, _), _| *n != target);
        for p in &mut self.partitions {
            p.remove(&target);
        }
        self.apply_membership();
    }

    fn restart(&mut self, target: u32) {
        let boot = self.nodes[&target].boot + 1;
        let node = new_node(
            target,
            self.n,
            boot,
            self.seed,
            self.topo,
            self.dynamic,
            self.replay.is_some(),
        );
        self.nodes.insert(target, node);
        let k = self.rng.up_to(self.partitions.len() as u64) as usize;
        match self.partitions.get_mut(k) {
            Some(p) => {
                p.insert(target);
            }
            None => self.partitions.push(BTreeSet::from([target])),
        }
        self.log
            .push(format!("{} node{target} restarts (boot {boot})", self.now));
        self.apply_membership();
    }

    fn repartition(&mut self) {
        let up: Vec<u32> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.up)
            .map(|(i, _)| *i)
            .collect();
        let groups = 1 + self.rng.up_to(2) as usize;
        let mut parts = vec![BTreeSet::new(); groups];
        for id in up {
            let g = self.rng.up_to(groups as u64 - 1) as usize;
            parts[g].insert(id);
        }
        self.partitions = parts;
        self.apply_membership();
    }

    fn advance(&mut self, dt: Duration) {
        let end = self.now + dt;
        loop {
            let next_answer = self.answers.iter().map(|a| a.at).min();
            let next_power = self.power.iter().map(|(t, _)| *t).min();
            let next_timer = self
                .nodes
                .values()
                .filter(|n| n.up)
                .filter_map(|n| n.fencer.poll_timeout())
                .min();
            let next = [next_power, next_answer, next_timer]
                .into_iter()
                .flatten()
                .min();
            let Some(next) = next.filter(|t| *t <= end) else {
                break;
            };
            self.now = self.now.max(next);
            if let Some(i) = self.power.iter().position(|(t, _)| *t <= self.now) {
                match self.power.remove(i).1 {
                    Power::Down(t) if self.nodes[&t].up => {
                        self.log
                            .push(format!("{} node{t} powered down by a device", self.now));
                        self.crash(t);
                    }
                    Power::Up(t) if !self.nodes[&t].up => self.restart(t),
                    _ => {}
                }
            } else if let Some(i) = self.answers.iter().position(|a| a.at <= self.now) {
                let a = self.answers.remove(i);
                let live = self.nodes[&a.node].up && self.nodes[&a.node].boot == a.boot;
                if live {
                    self.nodes
                        .get_mut(&a.node)
                        .expect("node")
                        .fencer
                        .handle(
                            self.now,
                            FencerInput::AgentDone {
                                call: a.call,
                                outcome: a.outcome,
                            },
                        )
                        .expect("agent result");
                }
            } else {
                let ids: Vec<u32> = self.nodes.keys().copied().collect();
                for id in ids {
                    let node = self.nodes.get_mut(&id).expect("node");
                    if node.up && node.fencer.poll_timeout().is_some_and(|t| t <= self.now) {
                        node.fencer
                            .handle(self.now, FencerInput::Timeout)
                            .expect("timeout");
                    }
                }
            }
            self.settle();
        }
        self.now = end;
    }

    fn step(&mut self) {
        let up: Vec<u32> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.up)
            .map(|(i, _)| *i)
            .collect();
        let down: Vec<u32> = self
            .nodes
            .iter()
            .filter(|(_, n)| !n.up)
            .map(|(i, _)| *i)
            .collect();
        match self.rng.up_to(99) {
            0..=9 => self.repartition(),
            10..=14 if up.len() > 1 => {
                let v = up[self.rng.up_to(up.len() as u64 - 1) as usize];
                self.log.push(format!("{} node{v} crashes", self.now));
                self.crash(v);
            }
            15..=24 if !down.is_empty() => {
                let v = down[self.rng.up_to(down.len() as u64 - 1) as usize];
                self.restart(v);
            }
            30..=31 if !up.is_empty() && !down.is_empty() => {
                // An administrator confirms a powered-off node is down.
                let a = up[self.rng.up_to(up.len() as u64 - 1) as usize];
                let t = down[self.rng.up_to(down.len() as u64 - 1) as usize];
                let input = FencerInput::Confirm {
                    target: name(t),
                    client: "admin-ack".into(),
                    call: 0,
                    target_joined: self.nodes[&a].decision.joined_ring(t),
                };
                self.log
                    .push(format!("{} n{a} confirms node{t} down", self.now));
                self.nodes
                    .get_mut(&a)
                    .expect("node")
                    .fencer
                    .handle(self.now, input)
                    .expect("confirm");
                self.outstanding
                    .insert((a, 0), (self.now, self.epoch, None));
                self.settle();
            }
            25..=29 if !up.is_empty() => {
                let a = up[self.rng.up_to(up.len() as u64 - 1) as usize];
                let t = 1 + self.rng.up_to(u64::from(self.n) - 1) as u32;
                if t != a {
                    let action = if self.rng.up_to(1) == 0 {
                        Action::Reboot
                    } else {
                        Action::Off
                    };
                    let client = format!("admin{}", self.rng.up_to(1));
                    let _ = self.submit(a, t, action, client, None, None);
                    self.settle();
                }
            }
            _ => {
                let dt = Duration::from_millis(self.rng.up_to(8000));
                self.advance(dt);
            }
        }
    }

    /// Restarts crashed nodes until a majority is up, and puts every live node in
    /// one partition (when that changes anything).
    fn heal(&mut self) {
        loop {
            let up: BTreeSet<u32> = self
                .nodes
                .iter()
                .filter(|(_, n)| n.up)
                .map(|(i, _)| *i)
                .collect();
            if up.len() as u32 > self.n / 2 {
                if self.partitions != [up.clone()] {
                    self.partitions = vec![up];
                    self.apply_membership();
                }
                return;
            }
            let v = *self
                .nodes
                .iter()
                .find(|(_, n)| !n.up)
                .expect("a crashed node")
                .0;
            self.restart(v);
        }
    }

    fn heal_and_check(&mut self) {
        self.agents_always_pass = true;
        // Operations still running may power nodes down while we heal: heal again
        // after each stretch, long enough for every bound, until nothing moves.
        for _ in 0..20 {
            self.heal();
            self.advance(Duration::from_secs(60));
        }
        self.heal();
        self.advance(Duration::from_secs(60));
        if let Some(((n, c), _)) = self.outstanding.iter().next() {
            self.fail(format!("node {n} call {c} never completed"));
        }
        for (id, node) in &self.nodes {
            if node.up && node.fencer.in_flight() != 0 {
                self.fail(format!(
                    "node {id} still has {} operations in flight",
                    node.fencer.in_flight()
                ));
            }
        }
        let members = &self.partitions[0];
        if self.quorate(members) {
            let coord = *members.first().expect("non-empty");
            let owed = self.nodes[&coord].decision.unclean();
            if !owed.is_empty() {
                self.fail(format!(
                    "coordinator node{coord} still owes fencing of {owed:?}"
                ));
            }
        }
    }
}

/// Seeds to run: `PHALANX_FENCE_SWARM_SEEDS=a..b` (or one seed `a`) replays or
/// widens the run; the default is `0..SEEDS`.
fn seeds() -> std::ops::Range<u64> {
    let Ok(v) = std::env::var("PHALANX_FENCE_SWARM_SEEDS") else {
        return 0..SEEDS;
    };
    let parse = |s: &str| s.trim().parse::<u64>().expect("a seed number");
    match v.split_once("..") {
        Some((a, b)) => parse(a)..parse(b),
        None => parse(&v)..parse(&v) + 1,
    }
}

#[test]
fn swarm_of_fencers_keeps_its_invariants() {
    let mut fences = 0usize;
    let mut calls = 0usize;
    let mut requests = 0u64;
    let mut replay = ReplayStats::default();
    let seeds = seeds();
    let runs = seeds.end - seeds.start;
    for seed in seeds {
        let mut sim = Sim::new(seed);
        for _ in 0..STEPS {
            sim.step();
        }
        sim.heal_and_check();
        fences += sim.fenced.len();
        calls += sim
            .log
            .iter()
            .filter(|l| l.contains(" call CallId"))
            .count();
        requests += sim.next_call - 1;
        if sim.replay.is_some() {
            let st = &sim.replay_stats;
            replay.seeds += 1;
            replay.calls += st.calls;
            replay.hang += st.hang;
            replay.timeout += st.timeout;
            replay.wrong_status += st.wrong_status;
            replay.crash += st.crash;
            replay.slow += st.slow;
            replay.failed_but_acted += st.failed_but_acted;
        }
    }
    eprintln!("{runs} seeds: {requests} requests, {calls} agent calls, {fences} decision fencings");
    eprintln!(
        "replayed devices: {} seeds, {} calls; faults: {} hang, {} timeout, {} wrong status, \
         {} crash, {} slow power-off; {} failed calls that powered the target off",
        replay.seeds,
        replay.calls,
        replay.hang,
        replay.timeout,
        replay.wrong_status,
        replay.crash,
        replay.slow,
        replay.failed_but_acted
    );
    // Half the seeds replay recorded devices, and over a run of any size every
    // fault kind was drawn.
    assert!(replay.seeds >= runs / 2, "{} replayed seeds", replay.seeds);
    if replay.seeds >= 50 {
        assert!(
            replay.calls >= 10 * replay.seeds,
            "{} replayed calls",
            replay.calls
        );
        for (kind, n) in [
            ("hang", replay.hang),
            ("timeout", replay.timeout),
            ("wrong status", replay.wrong_status),
            ("crash", replay.crash),
            ("slow power-off", replay.slow),
            ("failed but acted", replay.failed_but_acted),
        ] {
            assert!(n > 0, "no {kind} over {} replayed seeds", replay.seeds);
        }
    }
    // The runs did exercise fencing, not only idle membership changes.
    assert!(
        fences as u64 >= runs,
        "only {fences} decision fencings over {runs} seeds"
    );
    assert!(
        calls as u64 >= 10 * runs,
        "only {calls} agent calls over {runs} seeds"
    );
}
