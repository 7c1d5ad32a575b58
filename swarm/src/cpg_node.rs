//! A [`Stack`] node with a workload that churns closed process groups.
//!
//! Each node runs a few local members (ids unique across incarnations) that join
//! and leave three groups, get dropped without leaving (`member_down`), and
//! multicast self-describing messages; raw totem messages flow alongside so the
//! totem checkers keep judging the layer below. Every CPG payload carries
//! `node | incarnation | seq | local | crc32c`, so a receiver can tell exactly which
//! message it got, from whom, and whether it arrived intact.

use crate::stack_node::{LinkPlan, RunPlan, node_of_addr, sim_addr};
use bytes::Bytes;
use phalanx::stack::{
    CpgRequest as StackCpgRequest, Input, Output, PersistItem, Request, Stack, StackEvent,
    StopReason,
};
use phalanx_cpg::{CpgError, CpgEvent, Reason, ViewId};
use phalanx_logsys::Logger;
use phalanx_sim::history::{CpgReason, CpgRequest, CpgViewId};
use phalanx_sim::totem_node::{
    RING_SEQ_FILE, config_observation, observed_guarantee, parse_payload, persisted_ring_seq,
};
use phalanx_sim::{
    Destination, Disk, History, MsgId, NodeFactory, NodeId, NodeStatus, Observation, PersistWrite,
    Rng, SimNode, Transmit, Violation,
};
use phalanx_totem as totem;
use std::collections::VecDeque;

/// `node | incarnation | seq | local | crc`.
const HEADER: usize = 4 + 4 + 8 + 4 + 4;
/// Live local members per node, at most.
const MAX_LOCALS: usize = 4;

/// The groups the workload uses: short names and one of the maximal length.
fn groups() -> [Vec<u8>; 3] {
    [b"alpha".to_vec(), b"beta".to_vec(), vec![b'g'; 128]]
}

/// Builds [`CpgNode`]s with group churn; totem parameters are drawn from the run
/// seed as for the plain totem nodes, links and crypto from [`LinkPlan::draw`].
#[derive(Default, Debug, Clone)]
pub struct CpgFactory {
    run: RunPlan,
}

impl CpgFactory {
    /// Nodes with these links and this crypto in every run.
    pub fn with_links(links: LinkPlan) -> Self {
        Self {
            run: RunPlan {
                run_seed: 0,
                links: Some(links),
            },
        }
    }
}

impl NodeFactory for CpgFactory {
    fn begin_run(&mut self, run_seed: u64) {
        self.run.run_seed = run_seed;
    }

    fn links(&self) -> u8 {
        self.run.links().links
    }

    fn create(
        &mut self,
        id: NodeId,
        all: &[NodeId],
        incarnation: u32,
        seed: u64,
        now: u64,
        disk: &mut Disk,
        logger: Logger,
    ) -> Box<dyn SimNode> {
        let mut cfg = self.run.config(id, all, incarnation, seed);
        // Queue limits and transitional views drawn per run.
        let mut rng = Rng::new(self.run.run_seed ^ 0x6370_6763_6667);
        cfg.cpg.send_queue_bytes = [16usize << 10, 64 << 10][rng.gen_range(0..2) as usize];
        cfg.cpg.send_queue_messages = [8usize, 64][rng.gen_range(0..2) as usize];
        cfg.cpg.deliver_transitional = rng.gen_bool(0.5);
        let start = NodeStart {
            plan: self.run.links(),
            id,
            incarnation,
            now,
            cpg_workload: true,
        };
        Box::new(CpgNode::start(cfg, start, disk, logger))
    }

    fn check(&self, history: &History) -> Vec<Violation> {
        phalanx_sim::check::cpg::all(history)
    }
}

/// Builds Stack nodes that multicast raw messages only (the totem layer through
/// the whole Stack: links, crypto, persistence), judged by the totem checkers.
#[derive(Default, Debug, Clone)]
pub struct StackRawFactory {
    run: RunPlan,
}

impl StackRawFactory {
    /// Nodes with these links and this crypto in every run.
    pub fn with_links(links: LinkPlan) -> Self {
        Self {
            run: RunPlan {
                run_seed: 0,
                links: Some(links),
            },
        }
    }
}

impl NodeFactory for StackRawFactory {
    fn begin_run(&mut self, run_seed: u64) {
        self.run.run_seed = run_seed;
    }

    fn links(&self) -> u8 {
        self.run.links().links
    }

    fn create(
        &mut self,
        id: NodeId,
        all: &[NodeId],
        incarnation: u32,
        seed: u64,
        now: u64,
        disk: &mut Disk,
        logger: Logger,
    ) -> Box<dyn SimNode> {
        let cfg = self.run.config(id, all, incarnation, seed);
        let start = NodeStart {
            plan: self.run.links(),
            id,
            incarnation,
            now,
            cpg_workload: false,
        };
        Box::new(CpgNode::start(cfg, start, disk, logger))
    }
}

/// Who a new [`CpgNode`] is and what it does.
pub(crate) struct NodeStart {
    pub(crate) plan: LinkPlan,
    pub(crate) id: NodeId,
    pub(crate) incarnation: u32,
    pub(crate) now: u64,
    /// Churn groups and send CPG messages; false = raw messages only.
    pub(crate) cpg_workload: bool,
}

/// A Stack plus the group-churning workload (or, without `cpg_workload`, only raw
/// messages: the totem and quorum layers' node). Quorum changes, if the Stack runs
/// quorum, are recorded as [`Observation::Quorum`].
pub struct CpgNode {
    stack: Stack,
    plan: LinkPlan,
    /// Churn groups and send CPG messages; false = raw messages only.
    cpg_workload: bool,
    id: NodeId,
    incarnation: u32,
    /// Next message sequence number (shared by raw and CPG messages).
    next_seq: u64,
    /// Next local member id: unique across incarnations (`incarnation << 20 | n`).
    next_local: u32,
    /// Local members whose handles are alive.
    locals: Vec<u32>,
    out: VecDeque<Transmit>,
    writes: VecDeque<PersistWrite>,
    observations: VecDeque<Observation>,
    deadline: Option<u64>,
    stopped: bool,
    /// Members dropped while the Stack held events behind a durable write.
    dropped_behind_gate: Vec<u32>,
}

impl CpgNode {
    /// Builds the Stack from `cfg` (recovering the ring sequence from `disk`) and
    /// wraps it.
    pub(crate) fn start(
        cfg: phalanx::stack::StackConfig,
        start: NodeStart,
        disk: &Disk,
        logger: Logger,
    ) -> Self {
        let NodeStart {
            plan,
            id,
            incarnation,
            now,
            cpg_workload,
        } = start;
        let persisted = persisted_ring_seq(disk);
        let stack = Stack::new(cfg, persisted, totem::Time::from_nanos(now), logger)
            .expect("simulated configs are valid");
        let mut node = Self {
            stack,
            plan,
            cpg_workload,
            id,
            incarnation,
            next_seq: 0,
            next_local: incarnation << 20,
            locals: Vec::new(),
            out: VecDeque::new(),
            writes: VecDeque::new(),
            observations: VecDeque::new(),
            deadline: None,
            stopped: false,
            dropped_behind_gate: Vec::new(),
        };
        node.collect();
        node
    }

    /// Drains the Stack's outputs into the engine's queues, up to its deadline.
    fn collect(&mut self) {
        loop {
            match self.stack.poll_output() {
                Output::Transmit(t) => match node_of_addr(t.to) {
                    Some((node, _)) => self.out.push_back(Transmit {
                        dest: Destination::Node(node),
                        link: t.link,
                        data: t.data.to_vec(),
                    }),
                    None => unreachable!("simulated links have only simulated addresses"),
                },
                Output::Persist(p) => {
                    let (file, bytes) = match p.item {
                        PersistItem::RingSeq(seq) => {
                            (RING_SEQ_FILE.to_string(), seq.to_le_bytes().to_vec())
                        }
                        PersistItem::ExpectedVotes(n) => {
                            ("expected_votes".to_string(), n.to_le_bytes().to_vec())
                        }
                        other => (format!("{other:?}"), Vec::new()),
                    };
                    self.writes.push_back(PersistWrite {
                        id: p.id.0,
                        file,
                        bytes,
                    });
                }
                Output::Event(e) => self.observe(e),
                Output::Stopped(StopReason::Left) => {}
                Output::Stopped(_) => self.stopped = true,
                Output::Timeout(t) => {
                    self.deadline = t.map(totem::Time::as_nanos);
                    break;
                }
                _ => {}
            }
        }
    }

    fn observe(&mut self, e: StackEvent) {
        match e {
            StackEvent::Deliver(d) => {
                let (msg, intact) = parse_payload(&d.data, d.sender);
                self.observations.push_back(Observation::Deliver {
                    msg,
                    guarantee: observed_guarantee(d.guarantee),
                    intact,
                });
            }
            StackEvent::Config(c) => self.observations.push_back(config_observation(c)),
            StackEvent::Cpg(e) => self.observe_cpg(e),
            StackEvent::Quorum(phalanx_quorum::Event::QuorumChanged {
                quorate,
                ring,
                nodes,
            }) => self.observations.push_back(Observation::Quorum {
                quorate,
                ring: (ring.rep, ring.seq),
                members: nodes.iter().map(|n| n.node).collect(),
            }),
            _ => {}
        }
    }

    fn cpg(&mut self, now: totem::Time, r: StackCpgRequest) -> Result<(), CpgError> {
        match self
            .stack
            .handle_input(now, Input::Request(Request::Cpg(r)))
        {
            Ok(()) => Ok(()),
            Err(phalanx::stack::InputError::Cpg(e)) => Err(e),
            Err(_) => Err(CpgError::NotRunning),
        }
    }

    fn observe_cpg(&mut self, e: CpgEvent) {
        match e {
            CpgEvent::Change(c) => {
                let view = match c.view {
                    ViewId::Sync(r) => CpgViewId {
                        ring: (r.rep, r.seq),
                        sender: 0,
                        seq: 0,
                    },
                    ViewId::Message { ring, sender, seq } => CpgViewId {
                        ring: (ring.rep, ring.seq),
                        sender,
                        seq,
                    },
                    _ => return,
                };
                let members: Vec<_> = c.members.iter().map(|m| (m.node, m.local)).collect();
                let list = |l: &[phalanx_cpg::Change]| -> Vec<_> {
                    l.iter()
                        .map(|c| ((c.member.node, c.member.local), reason(c.reason)))
                        .collect()
                };
                let (left, joined) = (list(&c.left), list(&c.joined));
                // A member dropped while this event waited behind a slow
                // ring-sequence write gets nothing, as the driver drops a gone
                // member's sink. (Any other event for a dropped member is the
                // checkers' business.)
                for r in c
                    .recipients
                    .iter()
                    .filter(|r| !self.dropped_behind_gate.contains(r))
                {
                    self.observations.push_back(Observation::CpgView {
                        group: c.group.as_bytes().to_vec(),
                        receiver: *r,
                        view,
                        members: members.clone(),
                        left: left.clone(),
                        joined: joined.clone(),
                    });
                }
            }
            CpgEvent::Deliver(d) => {
                let (msg, intact) = parse_cpg(&d.data, d.sender.node, d.sender.local);
                for r in d
                    .recipients
                    .iter()
                    .filter(|r| !self.dropped_behind_gate.contains(r))
                {
                    self.observations.push_back(Observation::CpgDeliver {
                        group: d.group.as_bytes().to_vec(),
                        receiver: *r,
                        sender: (d.sender.node, d.sender.local),
                        msg,
                        intact,
                    });
                }
            }
            CpgEvent::Totem(_) => {}
            _ => {}
        }
    }

    fn now(now: u64) -> totem::Time {
        totem::Time::from_nanos(now)
    }

    fn request(&mut self, group: &[u8], local: u32, request: CpgRequest) {
        self.observations.push_back(Observation::CpgRequest {
            group: group.to_vec(),
            local,
            request,
        });
    }

    fn cpg_payload(&self, local: u32, seq: u64, size: usize) -> Vec<u8> {
        let mut data = Vec::with_capacity(HEADER + size);
        data.extend_from_slice(&self.id.to_le_bytes());
        data.extend_from_slice(&self.incarnation.to_le_bytes());
        data.extend_from_slice(&seq.to_le_bytes());
        data.extend_from_slice(&local.to_le_bytes());
        data.extend_from_slice(&[0; 4]);
        for i in 0..size {
            data.push((seq as usize).wrapping_mul(31).wrapping_add(i) as u8);
        }
        let crc = crc32c::crc32c(&data[..20]) ^ crc32c::crc32c(&data[HEADER..]);
        data[20..24].copy_from_slice(&crc.to_le_bytes());
        data
    }

    /// One random workload action.
    fn act(&mut self, now: u64, rng: &mut Rng) {
        let t = Self::now(now);
        let groups = groups();
        let group = &groups[rng.gen_range(0..groups.len() as u64) as usize];
        let pick = |rng: &mut Rng, v: &[u32]| {
            v.get(rng.gen_range(0..v.len().max(1) as u64) as usize)
                .copied()
        };
        match rng.gen_range(0..100) {
            0..=9 if self.locals.len() < MAX_LOCALS => {
                let local = self.next_local;
                self.next_local += 1;
                self.locals.push(local);
                let join = StackCpgRequest::Join {
                    local,
                    group: group.clone(),
                };
                if self.cpg(t, join).is_ok() {
                    self.request(group, local, CpgRequest::Join);
                }
            }
            10..=19 => {
                if let Some(local) = pick(rng, &self.locals) {
                    let join = StackCpgRequest::Join {
                        local,
                        group: group.clone(),
                    };
                    if self.cpg(t, join).is_ok() {
                        self.request(group, local, CpgRequest::Join);
                    }
                }
            }
            20..=27 => {
                if let Some(local) = pick(rng, &self.locals) {
                    let leave = StackCpgRequest::Leave {
                        local,
                        group: group.clone(),
                    };
                    if self.cpg(t, leave).is_ok() {
                        self.request(group, local, CpgRequest::Leave);
                    }
                }
            }
            28..=30 => {
                if let Some(local) = pick(rng, &self.locals) {
                    self.locals.retain(|l| *l != local);
                    if self.stack.held_outputs() > 0 {
                        self.dropped_behind_gate.push(local);
                    }
                    let _ = self.cpg(t, StackCpgRequest::MemberDown { local });
                    self.request(&[], local, CpgRequest::Down);
                }
            }
            31..=38 => self.mcast_raw(t, rng),
            _ => {
                let Some(local) = pick(rng, &self.locals) else {
                    return;
                };
                let seq = self.next_seq;
                let size = match rng.gen_range(0..100) {
                    0..=89 => rng.gen_range(0..64),
                    _ => rng.gen_range(64..3000),
                } as usize;
                let data = self.cpg_payload(local, seq, size);
                let g = random_guarantee(rng);
                let mcast = StackCpgRequest::Mcast {
                    local,
                    group: group.clone(),
                    guarantee: g,
                    data,
                };
                match self.cpg(t, mcast) {
                    Ok(()) => {
                        self.next_seq += 1;
                        self.observations.push_back(Observation::CpgSent {
                            group: group.clone(),
                            sender: local,
                            msg: self.msg(seq),
                        });
                    }
                    Err(CpgError::NotExist | CpgError::TryAgain) => {}
                    Err(e) => panic!("unexpected mcast error {e}"),
                }
            }
        }
    }

    /// Multicasts one self-describing raw (service 0) message.
    fn mcast_raw(&mut self, t: totem::Time, rng: &mut Rng) {
        let seq = self.next_seq;
        let size = rng.gen_range(0..200) as usize;
        let mut data = Vec::with_capacity(1 + 20 + size);
        data.push(0); // the service byte, set by the Stack
        data.extend_from_slice(&self.id.to_le_bytes());
        data.extend_from_slice(&self.incarnation.to_le_bytes());
        data.extend_from_slice(&seq.to_le_bytes());
        data.extend_from_slice(&[0; 4]);
        data.extend((0..size).map(|i| (seq as usize).wrapping_add(i) as u8));
        let crc = crc32c::crc32c(&data[1..17]) ^ crc32c::crc32c(&data[21..]);
        data[17..21].copy_from_slice(&crc.to_le_bytes());
        let g = random_guarantee(rng);
        let request = Request::Mcast {
            guarantee: g,
            msg: data,
        };
        if self.stack.handle_input(t, Input::Request(request)).is_ok() {
            self.next_seq += 1;
            self.observations.push_back(Observation::Sent {
                msg: self.msg(seq),
                guarantee: observed_guarantee(g),
            });
        }
    }

    fn msg(&self, seq: u64) -> MsgId {
        MsgId {
            sender: self.id,
            incarnation: self.incarnation,
            seq,
        }
    }
}

fn random_guarantee(rng: &mut Rng) -> totem::Guarantee {
    if rng.gen_bool(0.3) {
        totem::Guarantee::Safe
    } else {
        totem::Guarantee::Agreed
    }
}

fn reason(r: Reason) -> CpgReason {
    match r {
        Reason::Join => CpgReason::Join,
        Reason::Leave => CpgReason::Leave,
        Reason::NodeDown => CpgReason::NodeDown,
        Reason::NodeUp => CpgReason::NodeUp,
        Reason::ProcDown => CpgReason::ProcDown,
    }
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b.try_into().unwrap_or_default())
}

fn le_u64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b.try_into().unwrap_or_default())
}

/// A CPG payload: `node | incarnation | seq | local | crc | body`.
fn parse_cpg(data: &Bytes, from: NodeId, local: u32) -> (MsgId, bool) {
    if data.len() < HEADER {
        return (bad_id(from), false);
    }
    let msg = MsgId {
        sender: le_u32(&data[0..4]),
        incarnation: le_u32(&data[4..8]),
        seq: le_u64(&data[8..16]),
    };
    let crc = le_u32(&data[20..24]);
    let intact = msg.sender == from
        && le_u32(&data[16..20]) == local
        && crc32c::crc32c(&data[..20]) ^ crc32c::crc32c(&data[HEADER..]) == crc;
    (msg, intact)
}

fn bad_id(from: NodeId) -> MsgId {
    MsgId {
        sender: from,
        incarnation: u32::MAX,
        seq: u64::MAX,
    }
}

impl SimNode for CpgNode {
    fn handle_datagram(&mut self, now: u64, from: NodeId, link: u8, data: &[u8]) -> bool {
        let input = Input::Datagram {
            link,
            from: sim_addr(from, link),
            data,
        };
        let accepted = self.stack.handle_input(Self::now(now), input).is_ok();
        self.collect();
        accepted
    }

    fn handle_timeout(&mut self, now: u64) {
        let _ = self.stack.handle_input(Self::now(now), Input::Timeout);
        self.collect();
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    fn poll_timeout(&self) -> Option<u64> {
        self.deadline
    }

    fn app_tick(&mut self, now: u64, rng: &mut Rng) {
        if self.stopped {
            return;
        }
        for _ in 0..1 + rng.gen_range(0..4) {
            if self.cpg_workload {
                self.act(now, rng);
            } else {
                self.mcast_raw(Self::now(now), rng);
            }
        }
        self.collect();
    }

    fn leave(&mut self, now: u64) {
        let _ = self
            .stack
            .handle_input(Self::now(now), Input::Request(Request::Leave));
        self.collect();
    }

    fn poll_observation(&mut self) -> Option<Observation> {
        self.observations.pop_front()
    }

    fn status(&self) -> NodeStatus {
        crate::stack_node::status_of(&self.stack)
    }

    fn poll_persist(&mut self) -> Option<PersistWrite> {
        self.writes.pop_front()
    }

    fn persist_done(&mut self, now: u64, id: u64, ok: bool) {
        let result = if ok {
            Ok(())
        } else {
            Err(phalanx::stack::PersistFailed("simulated disk error".into()))
        };
        let input = Input::Persisted {
            id: phalanx::stack::PersistId(id),
            result,
        };
        let _ = self.stack.handle_input(Self::now(now), input);
        self.collect();
    }

    fn stopped(&self) -> bool {
        self.stopped
    }

    fn authenticates(&self) -> bool {
        self.plan.cipher.is_some()
    }
}
