//! A [`Stack`] node with a workload that churns closed process groups.
//!
//! Each node runs a few local members (ids unique across incarnations) that join
//! and leave three groups, get dropped without leaving (`member_down`), and
//! multicast self-describing messages; raw totem messages flow alongside so the
//! totem checkers keep judging the layer below. Every CPG payload carries
//! `node | incarnation | seq | local | crc32c`, so a receiver can tell exactly which
//! message it got, from whom, and whether it arrived intact.

use crate::stack::{Stack, StackConfig, StackEvent};
use bytes::Bytes;
use phalanx_cpg::{CpgConfig, CpgError, CpgEvent, Reason, ViewId};
use phalanx_logsys::Logger;
use phalanx_sim::history::{CpgReason, CpgRequest, CpgViewId};
use phalanx_sim::totem_node::{persist_ring_seq, persisted_ring_seq, push_transmit};
use phalanx_sim::{
    ConfigKind, Disk, Guarantee, History, MsgId, NodeFactory, NodeId, NodeStatus, Observation, Rng,
    SimNode, Transmit, Violation,
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

/// Builds [`CpgNode`]s; totem parameters are drawn from the run seed as for the
/// plain totem nodes.
#[derive(Default, Debug, Clone)]
pub struct CpgFactory {
    run_seed: u64,
}

impl NodeFactory for CpgFactory {
    fn begin_run(&mut self, run_seed: u64) {
        self.run_seed = run_seed;
    }

    fn create(
        &mut self,
        id: NodeId,
        all: &[NodeId],
        incarnation: u32,
        _seed: u64,
        now: u64,
        disk: &mut Disk,
        logger: Logger,
    ) -> Box<dyn SimNode> {
        let persisted = persisted_ring_seq(disk);
        let cfg = phalanx_sim::totem_node::config_for(id, all, self.run_seed);
        let mut rng = Rng::new(self.run_seed ^ 0x6370_6763_6667);
        let cpg = CpgConfig {
            max_message_size: cfg.max_message_size - phalanx_cpg::wire::MAX_HEADER,
            send_queue_bytes: [16usize << 10, 64 << 10][rng.gen_range(0..2) as usize],
            send_queue_messages: [8usize, 64][rng.gen_range(0..2) as usize],
            deliver_transitional: rng.gen_bool(0.5),
            incarnation: u64::from(incarnation),
            wire_prefix: None,
        };
        let cfg = StackConfig {
            totem: cfg,
            cpg,
            quorum: None,
        };
        let stack = Stack::new(cfg, persisted, totem::Time::from_nanos(now), logger)
            .expect("simulated configs are valid");
        Box::new(CpgNode::new(stack, id, incarnation, true))
    }

    fn check(&self, history: &History) -> Vec<Violation> {
        phalanx_sim::check::cpg::all(history)
    }
}

/// A Stack plus the group-churning workload (or, without `cpg_workload`, only raw
/// messages: the quorum layer's node). Quorum changes, if the Stack runs quorum, are
/// recorded as [`Observation::Quorum`].
pub struct CpgNode {
    stack: Stack,
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
    observations: VecDeque<Observation>,
    persist: Option<u64>,
}

impl CpgNode {
    pub(crate) fn new(stack: Stack, id: NodeId, incarnation: u32, cpg_workload: bool) -> Self {
        let mut node = Self {
            stack,
            cpg_workload,
            id,
            incarnation,
            next_seq: 0,
            next_local: incarnation << 20,
            locals: Vec::new(),
            out: VecDeque::new(),
            observations: VecDeque::new(),
            persist: None,
        };
        node.collect();
        node
    }

    fn collect(&mut self) {
        while let Some(t) = self.stack.poll_transmit() {
            push_transmit(&mut self.out, t);
        }
        while let Some(e) = self.stack.poll_event() {
            match e {
                StackEvent::Deliver(d) => {
                    let (msg, intact) = parse_raw(&d.data, d.sender);
                    self.observations.push_back(Observation::Deliver {
                        msg,
                        guarantee: guarantee(d.guarantee),
                        intact,
                    });
                }
                StackEvent::Config(c) => {
                    let (kind, old_ring) = match c.kind {
                        totem::ConfigKind::Transitional => {
                            (ConfigKind::Transitional, c.previous.map(|r| (r.rep, r.seq)))
                        }
                        totem::ConfigKind::Regular => (ConfigKind::Regular, None),
                    };
                    self.observations.push_back(Observation::Config {
                        kind,
                        ring: (c.ring.rep, c.ring.seq),
                        old_ring,
                        members: c.members,
                    });
                }
                StackEvent::Cpg(e) => self.observe_cpg(e),
                StackEvent::PersistRingSeq(s) => self.persist = Some(s),
                StackEvent::Quorum(phalanx_quorum::Event::QuorumChanged {
                    quorate,
                    ring,
                    nodes,
                }) => self.observations.push_back(Observation::Quorum {
                    quorate,
                    ring: (ring.rep, ring.seq),
                    members: nodes.iter().map(|n| n.node).collect(),
                }),
                StackEvent::Quorum(_) => {}
            }
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
                for r in c.recipients.iter() {
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
                for r in d.recipients.iter() {
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
                if self.stack.cpg_join(t, local, group).is_ok() {
                    self.request(group, local, CpgRequest::Join);
                }
            }
            10..=19 => {
                if let Some(local) = pick(rng, &self.locals) {
                    if self.stack.cpg_join(t, local, group).is_ok() {
                        self.request(group, local, CpgRequest::Join);
                    }
                }
            }
            20..=27 => {
                if let Some(local) = pick(rng, &self.locals) {
                    if self.stack.cpg_leave(t, local, group).is_ok() {
                        self.request(group, local, CpgRequest::Leave);
                    }
                }
            }
            28..=30 => {
                if let Some(local) = pick(rng, &self.locals) {
                    self.locals.retain(|l| *l != local);
                    self.stack.cpg_member_down(t, local);
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
                match self.stack.cpg_mcast(t, local, group, g, &data) {
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
        if self.stack.mcast_owned(t, g, data).is_ok() {
            self.next_seq += 1;
            self.observations.push_back(Observation::Sent {
                msg: self.msg(seq),
                guarantee: guarantee(g),
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

fn guarantee(g: totem::Guarantee) -> Guarantee {
    match g {
        totem::Guarantee::Safe => Guarantee::Safe,
        totem::Guarantee::Agreed => Guarantee::Agreed,
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

/// A raw message: `node | incarnation | seq | crc | body`.
fn parse_raw(data: &Bytes, from: NodeId) -> (MsgId, bool) {
    if data.len() < 20 {
        return (bad_id(from), false);
    }
    let msg = MsgId {
        sender: le_u32(&data[0..4]),
        incarnation: le_u32(&data[4..8]),
        seq: le_u64(&data[8..16]),
    };
    let crc = le_u32(&data[16..20]);
    let intact =
        msg.sender == from && crc32c::crc32c(&data[..16]) ^ crc32c::crc32c(&data[20..]) == crc;
    (msg, intact)
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
    fn handle_datagram(&mut self, now: u64, _from: NodeId, data: &[u8]) {
        self.stack.handle_datagram(Self::now(now), data);
        self.collect();
    }

    fn handle_timeout(&mut self, now: u64) {
        self.stack.handle_timeout(Self::now(now));
        self.collect();
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    fn poll_timeout(&self) -> Option<u64> {
        self.stack.poll_timeout().map(|t| t.as_nanos())
    }

    fn app_tick(&mut self, now: u64, rng: &mut Rng) {
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
        self.stack.leave(Self::now(now));
        self.collect();
    }

    fn poll_observation(&mut self) -> Option<Observation> {
        self.observations.pop_front()
    }

    fn status(&self) -> NodeStatus {
        let totem = self.stack.totem();
        let r = totem.ring_id();
        NodeStatus {
            operational: totem.is_operational(),
            ring: Some((r.rep, r.seq)),
            members: totem.members().to_vec(),
            quiescent: self.stack.is_quiescent(),
        }
    }

    fn persist(&mut self, disk: &mut Disk) {
        if let Some(s) = self.persist.take() {
            persist_ring_seq(disk, s);
        }
    }
}
