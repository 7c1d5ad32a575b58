//! Fence races, by seed: a cluster splits and each side's decision asks its
//! fencer to shoot the other side, with the delays of §2.7 of the fencing
//! reference and devices that fail. The network stays cut: what decides who
//! lives is quorum, the delays, and the devices.
//!
//! Two shapes:
//! * **two_node** — 2 nodes with votequorum's `two_node` (and the
//!   `wait_for_all` it implies): both halves stay quorate, so both shoot.
//!   Delays are none, `pcmk_delay_max` alone, or a static per-node
//!   `pcmk_delay_base` map favouring one node (optionally with a
//!   `pcmk_delay_max` on top).
//! * **partition** — 3–5 nodes split in two (with `auto_tie_breaker` now and
//!   then, so that an even split has a winner): at most one half is quorate
//!   (votequorum's own arithmetic says which).
//!
//! * **startup** — 3–5 nodes, fewer than half of them absent when the others
//!   form the cluster: some boot later, some never. Startup fencing (on by
//!   default, 20 s dead time) shoots the ones still unseen.
//!
//! Devices, per call, by seed: work (the machine goes off within
//! [`LATENCY_MAX_MS`], then the agent reports), fail without acting, fail after
//! the machine went off, time out, or never answer. A node that is off stops
//! running its fencer; calls it already made still act (the device is
//! elsewhere). `reboot` brings a machine back later, still cut off, as a new
//! boot: `wait_for_all` keeps a lone two_node boot inquorate.
//!
//! Checked every run:
//! * **a survivor when quorum guarantees one**: in a partition run, no node of
//!   the quorate half is ever shot (so one node at least lives);
//! * **a survivor when a static delay guarantees one**: in a two_node run whose
//!   favoured node's smallest delay exceeds the other's largest by more than
//!   the detection skew plus the device latency, and whose favoured side's
//!   first call acts, the favoured node is never shot;
//! * **startup fencing happens**: in a startup run, every machine that never
//!   booted has been shot by the end, and no present node ever is;
//! * no fencing requested by a decision whose partition is inquorate;
//! * no lost node reported fenced (services would recover) while the boot of
//!   it that the reporting node last saw still runs;
//! * one boot of a node, as one incarnation the requester knew, is fenced by at
//!   most one successful decision request;
//! * after the devices heal, nothing is left in flight and no quorate
//!   coordinator owes fencing.
//!
//! Counted, not asserted: two_node runs where both nodes were shot, by delay
//! plan — `pcmk_delay_max` alone narrows the race but cannot close it, and a
//! static delay does not help when the favoured side's first call fails.
//!
//! `PHALANX_FENCE_RACE_SEEDS=a..b` (or one seed) replays or widens the run.

use phalanx_fence::Action;
use phalanx_fence::core::{
    AgentCapabilities, CallId, CallOutcome, DecisionConfig, DecisionOutput, Device, FenceDecision,
    FenceEvent, FenceRequest, Fencer, FencerConfig, FencerInput, FencerOutput, LevelTarget, OpId,
    OpState, PeerMessage, SeededRng, decode_peer_message, encode_peer_message,
};
use phalanx_quorum::TieBreaker;
use phalanx_quorum::votequorum::calc;
use phalanx_totem::{RingId, Time};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

const SEEDS: u64 = 3000;
/// Largest difference between the moments the two sides see the split.
const SKEW_MAX_MS: u64 = 1000;
/// Largest time from an agent call to the machine going off.
const LATENCY_MAX_MS: u64 = 3000;
/// Devices stop failing at this moment (the healing phase).
const HEAL_AT_S: u64 = 300;
/// The run ends here.
const END_S: u64 = 700;
const REQUEST_TIMEOUT_S: u64 = 20;

/// How the devices delay fencing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DelayPlan {
    None,
    /// `pcmk_delay_max` only.
    Max(u64),
    /// `pcmk_delay_base=node<favoured>:<base>s;<others>:0s`, and `pcmk_delay_max`
    /// when not 0.
    Static {
        favoured: u32,
        base: u64,
        max: u64,
    },
}

impl DelayPlan {
    fn params(&self, n: u32) -> Vec<(String, String)> {
        match *self {
            DelayPlan::None => vec![],
            DelayPlan::Max(m) => vec![("pcmk_delay_max".into(), format!("{m}s"))],
            DelayPlan::Static {
                favoured,
                base,
                max,
            } => {
                let map = (1..=n)
                    .map(|i| format!("{}:{}s", name(i), if i == favoured { base } else { 0 }))
                    .collect::<Vec<_>>()
                    .join(";");
                let mut p = vec![("pcmk_delay_base".to_string(), map)];
                if max > 0 {
                    p.push(("pcmk_delay_max".into(), format!("{max}s")));
                }
                p
            }
        }
    }

    /// The smallest and largest delay, in seconds, before a device call against
    /// `target` — the documented rule (max unset = base; base capped to max;
    /// uniform in between), stated here independently of the fencer.
    fn range(&self, target: u32) -> (u64, u64) {
        let (base, max) = match *self {
            DelayPlan::None => (0, 0),
            DelayPlan::Max(m) => (0, m),
            DelayPlan::Static {
                favoured,
                base,
                max,
            } => (if target == favoured { base } else { 0 }, max),
        };
        let hi = if max == 0 { base } else { max };
        (base.min(hi), hi)
    }
}

/// What a device does with one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Works,
    FailsNoEffect,
    /// The machine went off, yet the agent reports a failure.
    FailsAfterEffect,
    TimesOut,
    Silent,
}

impl Fault {
    fn acts(self) -> bool {
        matches!(self, Fault::Works | Fault::FailsAfterEffect)
    }

    fn draw(rng: &mut SeededRng) -> Fault {
        match rng.up_to(99) {
            0..=59 => Fault::Works,
            60..=74 => Fault::FailsNoEffect,
            75..=79 => Fault::FailsAfterEffect,
            80..=89 => Fault::TimesOut,
            _ => Fault::Silent,
        }
    }
}

struct SimNode {
    up: bool,
    boot: u64,
    /// Has this boot seen every node (`wait_for_all` is satisfied)?
    saw_all: bool,
    fencer: Fencer,
    decision: FenceDecision,
    /// The outcomes of this node's next device calls.
    faults: VecDeque<Fault>,
}

enum Ev {
    /// A partition's members install a new membership.
    Config(BTreeSet<u32>),
    /// An agent call's report reaches the node that made it (if that boot lives).
    Answer {
        node: u32,
        boot: u64,
        call: CallId,
        outcome: CallOutcome,
    },
    /// A device switches `target` off (the boot it finds running, whatever it is).
    Off(u32),
    /// A rebooted machine starts again.
    On(u32),
}

/// Per-run results that the totals sum.
#[derive(Default)]
struct Tally {
    two_node: u64,
    double: BTreeMap<&'static str, (u64, u64)>,
    guaranteed: u64,
    partition_runs: u64,
    startup_runs: u64,
    startup_shots: u64,
    shots: u64,
}

/// A decision's request in flight: target, loss, the target's boot when asked,
/// and the incarnation the request named.
struct DecisionRequest(u32, u64, u64, Option<RingId>);

struct Sim {
    seed: u64,
    rng: SeededRng,
    now: Time,
    n: u32,
    two_node: bool,
    auto_tie_breaker: bool,
    action: Action,
    plan: DelayPlan,
    topo: bool,
    /// Machines that never boot on their own (startup runs).
    never_started: BTreeSet<u32>,
    /// Machines present when the cluster formed (startup runs).
    present: BTreeSet<u32>,
    nodes: BTreeMap<u32, SimNode>,
    /// Each side of the cut, as it was split (machines stay on their side).
    sides: Vec<BTreeSet<u32>>,
    /// The current memberships (one per side, live nodes only; a rebooted
    /// two_node machine is alone).
    partitions: Vec<BTreeSet<u32>>,
    events: Vec<(Time, u64, Ev)>,
    seq: u64,
    epoch: u64,
    healed: bool,
    /// Machines a device switched off at least once.
    shot: BTreeSet<u32>,
    /// (observer, target) → the boot of target the observer last saw as a member.
    seen_boot: BTreeMap<(u32, u32), u64>,
    /// (requesting node, its call) → (target, loss, the target's boot then, the
    /// incarnation the request named).
    requests: BTreeMap<(u32, u64), DecisionRequest>,
    /// Operations whose start a decision request broadcast.
    decision_ops: BTreeSet<OpId>,
    /// (target, boot, the incarnation the request named) → successful decision
    /// requests. (A startup fencing names none; if the node joins before it
    /// lands, its loss is fenced again — the decision cannot tell whether the
    /// device acted before that boot, so that second fencing is owed.)
    fenced: BTreeMap<(u32, u64, Option<RingId>), u32>,
    /// Losses a decision wanted fenced while an operation on the node was
    /// already pending in its fencer's history: (node, target) → loss. As the
    /// Stack does, that operation's result answers them.
    awaiting: BTreeMap<(u32, u32), u64>,
    next_call: u64,
    log: Vec<String>,
}

fn name(n: u32) -> String {
    format!("node{n}")
}

fn id_of(target: &str) -> Option<u32> {
    target.strip_prefix("node")?.parse().ok()
}

impl Sim {
    fn new(seed: u64) -> Self {
        let mut rng = SeededRng::new(seed);
        let shape = rng.up_to(9);
        let two_node = shape < 5;
        let startup = shape >= 8;
        let n = if two_node { 2 } else { 3 + rng.up_to(2) as u32 };
        let auto_tie_breaker = !two_node && rng.up_to(1) == 1;
        let action = if rng.up_to(1) == 0 {
            Action::Off
        } else {
            Action::Reboot
        };
        let plan = match rng.up_to(9) {
            0..=3 => DelayPlan::Static {
                favoured: 1 + rng.up_to(u64::from(n) - 1) as u32,
                base: 1 + rng.up_to(14),
                max: if rng.up_to(2) == 0 {
                    1 + rng.up_to(11)
                } else {
                    0
                },
            },
            4..=6 => DelayPlan::Max(1 + rng.up_to(4)),
            _ => DelayPlan::None,
        };
        let topo = rng.up_to(1) == 1;
        // Startup runs: fewer than half absent (the rest is quorate), each of
        // them booting late or never.
        let mut late = BTreeMap::new();
        let mut never_started = BTreeSet::new();
        if startup {
            let absent = 1 + rng.up_to(u64::from((n - 1) / 2 - 1)) as u32;
            let mut pool: Vec<u32> = (1..=n).collect();
            for _ in 0..absent {
                let k = rng.up_to(pool.len() as u64 - 1) as usize;
                let m = pool.remove(k);
                if rng.up_to(1) == 0 {
                    never_started.insert(m);
                } else {
                    late.insert(m, Duration::from_millis(rng.up_to(40_000)));
                }
            }
        }
        let cut = if startup {
            vec![(1..=n).collect()]
        } else if two_node {
            vec![BTreeSet::from([1]), BTreeSet::from([2])]
        } else {
            let mut a = BTreeSet::new();
            let mut b = BTreeSet::new();
            for i in 1..=n {
                if rng.up_to(1) == 0 { &mut a } else { &mut b }.insert(i);
            }
            vec![a, b]
        };
        let mut sim = Sim {
            seed,
            rng,
            now: Time::ZERO,
            n,
            two_node,
            auto_tie_breaker,
            action,
            plan,
            topo,
            never_started,
            present: BTreeSet::new(),
            nodes: BTreeMap::new(),
            sides: cut.into_iter().filter(|s| !s.is_empty()).collect(),
            partitions: vec![(1..=n).collect()],
            events: Vec::new(),
            seq: 0,
            epoch: 0,
            healed: false,
            shot: BTreeSet::new(),
            seen_boot: BTreeMap::new(),
            requests: BTreeMap::new(),
            decision_ops: BTreeSet::new(),
            fenced: BTreeMap::new(),
            awaiting: BTreeMap::new(),
            next_call: 1,
            log: Vec::new(),
        };
        for i in 1..=n {
            let mut node = sim.boot_node(i, 1);
            if sim.never_started.contains(&i) || late.contains_key(&i) {
                // Not booted yet: its first boot will be boot 1.
                node.up = false;
                node.boot = 0;
            }
            sim.nodes.insert(i, node);
        }
        sim.present = (1..=n).filter(|i| sim.nodes[i].up).collect();
        if startup {
            sim.partitions = vec![sim.present.clone()];
            let present = sim.present.clone();
            sim.install(&present);
            for (m, at) in late {
                sim.schedule(at, Ev::On(m));
            }
        }
        // The whole cluster formed (every boot saw all), then the cable is cut:
        // each side sees the split after its own detection time.
        if !startup {
            let all = sim.partitions[0].clone();
            sim.install(&all);
        }
        for side in sim.sides.clone().into_iter().filter(|_| !startup) {
            let skew = sim.rng.up_to(SKEW_MAX_MS);
            sim.schedule(Duration::from_millis(skew), Ev::Config(side));
        }
        sim.log.push(format!(
            "seed {seed}: n={n} two_node={two_node} atb={auto_tie_breaker} {action} \
             {plan:?} topo={topo} sides {:?}",
            sim.sides
        ));
        sim
    }

    fn boot_node(&mut self, id: u32, boot: u64) -> SimNode {
        let seed = self.seed ^ u64::from(id) ^ (boot << 32);
        let mut fencer = Fencer::new(FencerConfig::new(id, &name(id), boot, seed));
        let t = self.now;
        for (dev, priority) in [("ipmi", 0), ("pdu", 0)] {
            let mut params: BTreeMap<String, String> =
                self.plan.params(self.n).into_iter().collect();
            params.insert("pcmk_host_check".into(), "none".into());
            params.insert("pcmk_off_retries".into(), "2".into());
            let device = Device::new(
                dev,
                "fence_sim",
                params,
                AgentCapabilities::power_switch(),
                priority,
            )
            .expect("device");
            fencer
                .handle(t, FencerInput::RegisterDevice(device))
                .expect("register");
        }
        if self.topo {
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
        let mut dcfg = DecisionConfig::new(id, 1..=self.n);
        dcfg.fencing_action = self.action;
        dcfg.max_attempts = 1000;
        let faults = (0..4).map(|_| Fault::draw(&mut self.rng)).collect();
        SimNode {
            up: true,
            boot,
            saw_all: false,
            fencer,
            decision: FenceDecision::new(dcfg),
            faults,
        }
    }

    fn fail(&self, what: String) -> ! {
        let tail: Vec<&String> = self.log.iter().rev().take(40).collect();
        panic!(
            "seed {}: {what}\nlast events (newest first):\n{tail:#?}",
            self.seed
        );
    }

    fn schedule(&mut self, after: Duration, ev: Ev) {
        self.seq += 1;
        self.events.push((self.now + after, self.seq, ev));
    }

    /// votequorum's arithmetic for a membership (one vote per node).
    fn quorate(&self, members: &BTreeSet<u32>) -> bool {
        let configured: BTreeSet<u32> = (1..=self.n).collect();
        let wfa_waiting = self.two_node && members.iter().any(|m| !self.nodes[m].saw_all);
        calc::Decision {
            expected: self.n,
            node_votes: members.len() as u32,
            device_votes: 0,
            two_node: self.two_node,
            wfa_waiting,
            atb_holds: self.auto_tie_breaker
                && calc::holds_tie_breaker(&TieBreaker::Lowest, &configured, members, members),
        }
        .outcome()
        .1
    }

    /// The members of `members` that are up install it as their membership.
    fn install(&mut self, members: &BTreeSet<u32>) {
        let members: BTreeSet<u32> = members
            .iter()
            .copied()
            .filter(|m| self.nodes[m].up)
            .collect();
        if members.is_empty() {
            return;
        }
        self.partitions.retain(|p| p.is_disjoint(&members));
        self.partitions.push(members.clone());
        self.epoch += 1;
        let q = self.quorate(&members);
        let ring = RingId {
            seq: self.epoch,
            rep: members.first().copied().unwrap_or(0),
        };
        if members.len() == self.n as usize {
            for m in &members {
                self.nodes.get_mut(m).expect("node").saw_all = true;
            }
        }
        for id in &members {
            for t in &members {
                let boot = self.nodes[t].boot;
                self.seen_boot.insert((*id, *t), boot);
            }
            let now = self.now;
            let node = self.nodes.get_mut(id).expect("node");
            node.fencer
                .handle(now, FencerInput::Members(members.clone()))
                .expect("members");
            node.decision
                .learn_history(node.fencer.history().entries(), id_of);
            node.decision.advance(now);
            node.decision.configuration(ring, &members, q);
        }
        self.log.push(format!(
            "{} ring {} {:?} quorate={q}",
            self.now, self.epoch, members
        ));
        self.settle();
    }

    fn partition_of(&self, node: u32) -> Option<&BTreeSet<u32>> {
        self.partitions.iter().find(|p| p.contains(&node))
    }

    fn next_fault(&mut self, node: u32) -> Fault {
        if self.healed {
            return Fault::Works;
        }
        let drawn = Fault::draw(&mut self.rng);
        let n = self.nodes.get_mut(&node).expect("node");
        n.faults.push_back(drawn);
        n.faults.pop_front().unwrap_or(Fault::Works)
    }

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
                    self.decision_output(id, d);
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn decision_output(&mut self, id: u32, d: DecisionOutput) {
        match d {
            DecisionOutput::NodeFenced { node: t, loss } => {
                let seen = self.seen_boot.get(&(id, t)).copied();
                let target = &self.nodes[&t];
                if seen.is_none() && target.up && !self.shot.contains(&t) {
                    self.fail(format!(
                        "node{id} reports node{t}, never seen, fenced (loss {loss}) while it \
                         runs and no device ever switched it off"
                    ));
                }
                if target.up && Some(target.boot) == seen {
                    self.fail(format!(
                        "node{id} reports node{t} fenced (loss {loss}) while the boot {} it \
                         last saw as a member still runs",
                        target.boot
                    ));
                }
                self.log.push(format!(
                    "{} node{id}: node{t} fenced (loss {loss})",
                    self.now
                ));
            }
            DecisionOutput::Fence {
                node: t,
                action,
                loss,
                delay,
            } => {
                let quorate = self.partition_of(id).is_some_and(|p| self.quorate(p));
                if !quorate {
                    self.fail(format!(
                        "node{id} requested fencing of node{t} while inquorate"
                    ));
                }
                let pending = self.nodes[&id].fencer.history().entries().any(|e| {
                    e.state == OpState::Pending
                        && matches!(e.action, Action::Off | Action::Reboot)
                        && e.target == name(t)
                });
                if pending {
                    self.awaiting.insert((id, t), loss);
                    self.log.push(format!(
                        "{} node{id} awaits the pending fencing of node{t}",
                        self.now
                    ));
                    return;
                }
                let call = self.next_call;
                self.next_call += 1;
                let mut req = FenceRequest::new(&name(t), action, &format!("decision@{id}"), call);
                req.timeout = Some(Duration::from_secs(REQUEST_TIMEOUT_S));
                req.delay = delay;
                let joined = self.nodes[&id].decision.joined_ring(t);
                req.target_joined = joined;
                let now = self.now;
                let r = self
                    .nodes
                    .get_mut(&id)
                    .expect("node")
                    .fencer
                    .handle(now, FencerInput::Request(req));
                self.log
                    .push(format!("{now} node{id} requests {action} node{t}: {r:?}"));
                if r.is_ok() {
                    let boot = self.nodes[&t].boot;
                    self.requests
                        .insert((id, call), DecisionRequest(t, loss, boot, joined));
                } else {
                    let node = self.nodes.get_mut(&id).expect("node");
                    node.decision.request_failed(t, loss);
                }
            }
        }
    }

    fn fencer_output(&mut self, id: u32, out: FencerOutput) {
        match out {
            FencerOutput::AgentCall(c) => {
                let fault = self.next_fault(id);
                let latency = Duration::from_millis(200 + self.rng.up_to(LATENCY_MAX_MS - 200));
                let report = latency + Duration::from_millis(self.rng.up_to(500));
                self.log.push(format!(
                    "{} node{id} calls {} {:?} {:?}: {fault:?}",
                    self.now, c.device, c.action, c.target
                ));
                let target = c.target.as_deref().and_then(id_of);
                if fault.acts()
                    && matches!(c.action, Action::Off | Action::Reboot)
                    && let Some(t) = target
                {
                    self.schedule(latency, Ev::Off(t));
                    if c.action == Action::Reboot {
                        let back = latency + Duration::from_secs(20 + self.rng.up_to(40));
                        self.schedule(back, Ev::On(t));
                    }
                }
                let boot = self.nodes[&id].boot;
                let answer = |outcome| Ev::Answer {
                    node: id,
                    boot,
                    call: c.call,
                    outcome,
                };
                match fault {
                    Fault::Works => {
                        let output = String::new();
                        self.schedule(report, answer(CallOutcome::Success { output }));
                    }
                    Fault::FailsNoEffect | Fault::FailsAfterEffect => {
                        let outcome = CallOutcome::Failed {
                            exit_code: Some(1),
                            reason: "sim".into(),
                        };
                        self.schedule(report, answer(outcome));
                    }
                    Fault::TimesOut => self.schedule(c.timeout, answer(CallOutcome::TimedOut)),
                    Fault::Silent => {}
                }
            }
            FencerOutput::Broadcast(msg) => {
                let bytes = encode_peer_message(&msg);
                let msg = match decode_peer_message(&bytes) {
                    Ok(m) => m,
                    Err(e) => self.fail(format!("a broadcast does not decode: {e}")),
                };
                let members: Vec<u32> = self
                    .partition_of(id)
                    .map(|p| p.iter().copied().collect())
                    .unwrap_or_default();
                if let PeerMessage::Started {
                    id: op,
                    target,
                    client,
                    ..
                } = &msg
                {
                    if client.starts_with("decision@") {
                        self.decision_ops.insert(*op);
                    }
                    if let Some(t) = id_of(target) {
                        for m in &members {
                            let node = self.nodes.get_mut(m).expect("member");
                            node.decision.operation_started(*op, t);
                        }
                    }
                }
                for p in members.into_iter().filter(|p| *p != id) {
                    let now = self.now;
                    let node = self.nodes.get_mut(&p).expect("peer");
                    node.fencer
                        .handle(
                            now,
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
                let Some(DecisionRequest(t, loss, boot, joined)) =
                    self.requests.remove(&(id, call))
                else {
                    return;
                };
                self.log.push(format!(
                    "{} node{id} request for node{t} done ok={}",
                    self.now,
                    result.is_ok()
                ));
                if result.is_err() {
                    let node = self.nodes.get_mut(&id).expect("node");
                    node.decision.request_failed(t, loss);
                } else if self.decision_ops.contains(&op) {
                    let count = {
                        let c = self.fenced.entry((t, boot, joined)).or_default();
                        *c += 1;
                        *c
                    };
                    if count > 1 {
                        self.fail(format!(
                            "node{t} (boot {boot}) fenced by {count} decision requests"
                        ));
                    }
                }
            }
            FencerOutput::Event(FenceEvent::Fenced(e)) => {
                if let Some(t) = id_of(&e.target) {
                    let awaited = self.awaiting.remove(&(id, t));
                    let node = self.nodes.get_mut(&id).expect("node");
                    node.decision.operation_fenced(t, e.id, e.target_joined);
                    // A result about another incarnation did not fence this
                    // loss: ask after all.
                    if let Some(loss) = awaited {
                        node.decision.request_failed(t, loss);
                    }
                }
            }
            FencerOutput::Event(FenceEvent::FenceFailed(e)) => {
                let awaited =
                    id_of(&e.target).and_then(|t| self.awaiting.remove(&(id, t)).map(|l| (t, l)));
                let node = self.nodes.get_mut(&id).expect("node");
                node.decision.operation_ended(e.id);
                if let Some((t, loss)) = awaited {
                    node.decision.request_failed(t, loss);
                }
            }
            FencerOutput::Timeout(_) => {}
        }
    }

    fn power_off(&mut self, t: u32) {
        // A machine that is off already (not booted yet, or rebooting) is shot
        // all the same: the device holds it off.
        self.shot.insert(t);
        if !self.nodes[&t].up {
            return;
        }
        self.nodes.get_mut(&t).expect("node").up = false;
        self.log
            .push(format!("{} node{t} switched off by a device", self.now));
        // Its partition's other members see it go.
        if let Some(p) = self.partition_of(t).cloned() {
            let rest: BTreeSet<u32> = p.iter().copied().filter(|m| *m != t).collect();
            self.partitions.retain(|q| *q != p);
            if !rest.is_empty() {
                self.partitions.push(rest.clone());
                let skew = self.rng.up_to(SKEW_MAX_MS);
                self.schedule(Duration::from_millis(skew), Ev::Config(rest));
            }
        }
    }

    fn power_on(&mut self, t: u32) {
        if self.nodes[&t].up {
            return;
        }
        let boot = self.nodes[&t].boot + 1;
        let node = self.boot_node(t, boot);
        self.nodes.insert(t, node);
        self.log
            .push(format!("{} node{t} boots again (boot {boot})", self.now));
        // Still on its side of the cut: it joins whoever lives there.
        let side = self
            .sides
            .iter()
            .find(|s| s.contains(&t))
            .cloned()
            .unwrap_or_default();
        let live: BTreeSet<u32> = side.into_iter().filter(|m| self.nodes[m].up).collect();
        self.schedule(Duration::from_millis(500), Ev::Config(live));
    }

    fn run(&mut self) {
        let heal_at = Time::ZERO + Duration::from_secs(HEAL_AT_S);
        let end = Time::ZERO + Duration::from_secs(END_S);
        loop {
            let next_event = self.events.iter().map(|(t, s, _)| (*t, *s)).min();
            let next_timer = self
                .nodes
                .values()
                .filter(|n| n.up)
                .filter_map(|n| n.fencer.poll_timeout())
                .min();
            // The decision's own deadlines (startup dead time), as the Stack
            // folds them into its next deadline.
            let next_decision = self
                .nodes
                .values()
                .filter(|n| n.up)
                .filter_map(|n| n.decision.poll_timeout())
                .min();
            let next = [next_event.map(|e| e.0), next_timer, next_decision]
                .into_iter()
                .flatten()
                .min();
            let Some(next) = next.filter(|t| *t <= end) else {
                break;
            };
            if !self.healed && next >= heal_at {
                self.healed = true;
            }
            self.now = self.now.max(next);
            if let Some((at, seq)) = next_event.filter(|(t, _)| *t <= self.now) {
                let i = self
                    .events
                    .iter()
                    .position(|(t, s, _)| (*t, *s) == (at, seq))
                    .expect("event");
                let (_, _, ev) = self.events.swap_remove(i);
                self.deliver(ev);
            } else {
                let now = self.now;
                for node in self.nodes.values_mut().filter(|n| n.up) {
                    if node.fencer.poll_timeout().is_some_and(|t| t <= now) {
                        node.fencer
                            .handle(now, FencerInput::Timeout)
                            .expect("timeout");
                    }
                    if node.decision.poll_timeout().is_some_and(|t| t <= now) {
                        node.decision
                            .learn_history(node.fencer.history().entries(), id_of);
                        node.decision.advance(now);
                    }
                }
            }
            self.settle();
        }
        self.now = end;
    }

    fn deliver(&mut self, ev: Ev) {
        match ev {
            Ev::Config(members) => self.install(&members),
            Ev::Answer {
                node,
                boot,
                call,
                outcome,
            } => {
                let now = self.now;
                let n = self.nodes.get_mut(&node).expect("node");
                if n.up && n.boot == boot {
                    n.fencer
                        .handle(now, FencerInput::AgentDone { call, outcome })
                        .expect("agent done");
                }
            }
            Ev::Off(t) => self.power_off(t),
            Ev::On(t) => self.power_on(t),
        }
    }

    /// Does the configuration guarantee a survivor in a two_node run, and which?
    /// The favoured node's first device call lands no later than
    /// skew + its target's largest delay + latency; the other side's first call
    /// against it starts no earlier than the favoured node's smallest delay. So
    /// when the second exceeds the first and that first call acts, the other side
    /// is off before it calls. (A first call that fails leaves the race open.)
    fn guaranteed_survivor(&self, first_faults: &BTreeMap<u32, Fault>) -> Option<u32> {
        let DelayPlan::Static { favoured, .. } = self.plan else {
            return None;
        };
        let other = if favoured == 1 { 2 } else { 1 };
        let (favoured_lo, _) = self.plan.range(favoured);
        let (_, other_hi) = self.plan.range(other);
        let lands_by_ms = SKEW_MAX_MS + other_hi * 1000 + LATENCY_MAX_MS;
        let first_acts = first_faults.get(&favoured).is_some_and(|f| f.acts());
        (favoured_lo * 1000 > lands_by_ms && first_acts).then_some(favoured)
    }

    fn check_end(&self) {
        for (id, node) in &self.nodes {
            if node.up && node.fencer.in_flight() != 0 {
                self.fail(format!(
                    "node{id} still has {} operations in flight",
                    node.fencer.in_flight()
                ));
            }
        }
        for p in &self.partitions {
            if p.is_empty() || !self.quorate(p) {
                continue;
            }
            let coord = *p.first().expect("non-empty");
            let owed = self.nodes[&coord].decision.unclean();
            if !owed.is_empty() {
                self.fail(format!(
                    "coordinator node{coord} still owes fencing of {owed:?}"
                ));
            }
        }
    }
}

fn plan_label(plan: DelayPlan, guaranteed: bool) -> &'static str {
    match plan {
        DelayPlan::None => "no delay",
        DelayPlan::Max(_) => "pcmk_delay_max alone",
        DelayPlan::Static { .. } if guaranteed => "static delay, guaranteed",
        DelayPlan::Static { .. } => "static delay, not guaranteed",
    }
}

fn run_seed(seed: u64, tally: &mut Tally) {
    let mut sim = Sim::new(seed);
    let first_faults: BTreeMap<u32, Fault> = sim
        .nodes
        .iter()
        .map(|(i, n)| (*i, n.faults.front().copied().unwrap_or(Fault::Works)))
        .collect();
    let startup = !sim.never_started.is_empty() || sim.present.len() < sim.n as usize;
    let quorate_sides: Vec<BTreeSet<u32>> = if startup {
        vec![sim.present.clone()]
    } else {
        sim.sides
            .iter()
            .filter(|s| !sim.two_node && sim.quorate(s))
            .cloned()
            .collect()
    };
    sim.run();
    sim.check_end();
    tally.shots += sim.shot.len() as u64;
    if sim.two_node {
        tally.two_node += 1;
        let guaranteed = sim.guaranteed_survivor(&first_faults);
        if let Some(f) = guaranteed {
            tally.guaranteed += 1;
            if sim.shot.contains(&f) {
                sim.fail(format!(
                    "node{f} was shot although its static delay guaranteed it survives \
                     (shot: {:?})",
                    sim.shot
                ));
            }
        }
        let e = tally
            .double
            .entry(plan_label(sim.plan, guaranteed.is_some()))
            .or_default();
        e.0 += 1;
        if sim.shot.len() == 2 {
            e.1 += 1;
        }
    } else {
        if startup {
            tally.startup_runs += 1;
            tally.startup_shots += sim.never_started.len() as u64;
            if let Some(m) = sim.never_started.iter().find(|m| !sim.shot.contains(m)) {
                sim.fail(format!(
                    "node{m} never booted, yet startup fencing never shot it (shot: {:?})",
                    sim.shot
                ));
            }
        } else {
            tally.partition_runs += 1;
        }
        for side in &quorate_sides {
            if let Some(v) = side.iter().find(|m| sim.shot.contains(m)) {
                sim.fail(format!(
                    "node{v} of the quorate side {side:?} was shot (shot: {:?})",
                    sim.shot
                ));
            }
        }
        if sim.shot.len() == sim.n as usize {
            sim.fail("every node was shot in a partition run".into());
        }
    }
}

fn seeds() -> std::ops::Range<u64> {
    let Ok(v) = std::env::var("PHALANX_FENCE_RACE_SEEDS") else {
        return 0..SEEDS;
    };
    let parse = |s: &str| s.trim().parse::<u64>().expect("a seed number");
    match v.split_once("..") {
        Some((a, b)) => parse(a)..parse(b),
        None => parse(&v)..parse(&v) + 1,
    }
}

#[test]
fn fence_races_leave_a_survivor_when_delays_or_quorum_guarantee_one() {
    let mut tally = Tally::default();
    let seeds = seeds();
    let runs = seeds.end - seeds.start;
    for seed in seeds {
        run_seed(seed, &mut tally);
    }
    eprintln!(
        "{runs} seeds: {} two_node runs ({} with a guaranteed survivor), {} partition runs, \
         {} startup runs ({} machines never booted, all shot), {} machines shot",
        tally.two_node,
        tally.guaranteed,
        tally.partition_runs,
        tally.startup_runs,
        tally.startup_shots,
        tally.shots
    );
    for (label, (n, double)) in &tally.double {
        eprintln!(
            "  two_node, {label}: both shot in {double} of {n} runs ({:.1} %)",
            100.0 * *double as f64 / (*n).max(1) as f64
        );
    }
    // The runs raced: shots happened, and some two_node runs of each kind ran.
    assert!(tally.shots >= runs / 2, "only {} shots", tally.shots);
    if runs >= 1000 {
        assert!(tally.guaranteed > 0 && tally.partition_runs > 0 && tally.startup_shots > 0);
        let no_delay = tally.double.get("no delay").copied().unwrap_or_default();
        // Without a delay both sides call at once: double fencing must show up,
        // or the simulator is not racing at all.
        assert!(
            no_delay.1 > 0,
            "no double fencing without delays: {no_delay:?}"
        );
    }
}
