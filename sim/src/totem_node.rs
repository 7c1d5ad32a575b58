//! The Totem core as a simulated node, with a checking workload.
//!
//! Every application message carries `sender | incarnation | seq | crc32c(body) |
//! body`, so a receiver can tell exactly which message it got and whether it
//! arrived intact (the "no invention" and "no corruption" checks).

use crate::history::{ConfigKind, Guarantee, MsgId, Observation};
use crate::node::{Destination, Disk, NodeFactory, NodeId, NodeStatus, SimNode, Transmit};
use crate::rng::Rng;
use phalanx_logsys::Logger;
use phalanx_totem as totem;
use std::collections::VecDeque;
use std::time::Duration;

/// Disk file holding the persisted ring sequence.
/// The file on a node's simulated disk that holds its ring sequence.
pub const RING_SEQ_FILE: &str = "ringseq";
const HEADER: usize = 4 + 4 + 8 + 4;

/// Builds [`TotemNode`]s. Per-run protocol parameters (frame size, token timeout)
/// are drawn from the run's seed so that swarm testing varies them too.
#[derive(Default, Debug, Clone)]
pub struct TotemFactory {
    run_seed: u64,
}

impl NodeFactory for TotemFactory {
    fn begin_run(&mut self, run_seed: u64) {
        self.run_seed = run_seed;
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
        let persisted = persisted_ring_seq(disk);
        let _ = seed;
        let cfg = config_for(id, all, self.run_seed);
        Box::new(TotemNode::new(cfg, incarnation, now, persisted, logger))
    }
}

/// The ring sequence a node persisted on its simulated disk, if any.
pub fn persisted_ring_seq(disk: &Disk) -> Option<u64> {
    disk.get(RING_SEQ_FILE)
        .and_then(|b| b.as_slice().try_into().ok())
        .map(u64::from_le_bytes)
}

/// Persists a ring sequence on a node's simulated disk.
pub fn persist_ring_seq(disk: &mut Disk, seq: u64) {
    disk.insert(RING_SEQ_FILE.to_string(), seq.to_le_bytes().to_vec());
}

/// Queues a totem datagram in the engine's vocabulary (a multicast to members
/// becomes one datagram per member).
pub fn push_transmit(out: &mut VecDeque<Transmit>, t: totem::Transmit) {
    match t.dest {
        totem::Destination::Node(n) => out.push_back(Transmit {
            dest: Destination::Node(n),
            link: 0,
            data: t.data,
        }),
        totem::Destination::All => out.push_back(Transmit {
            dest: Destination::AllNodes,
            link: 0,
            data: t.data,
        }),
        totem::Destination::Members(m) => {
            for n in m.iter() {
                out.push_back(Transmit {
                    dest: Destination::Node(*n),
                    link: 0,
                    data: t.data.clone(),
                });
            }
        }
    }
}

/// Per-run protocol parameters, drawn from the run seed (identical on every node).
/// Public so that nodes running more layers over totem vary totem the same way.
pub fn config_for(id: NodeId, all: &[NodeId], run_seed: u64) -> totem::Config {
    let mut rng = Rng::new(run_seed ^ 0x7074_6f74_656d);
    let token_ms = [150u64, 300, 300, 500][rng.gen_range(0..4) as usize];
    let mut cfg =
        totem::Config::new(id, all.to_vec()).with_token_timeout(Duration::from_millis(token_ms));
    cfg.max_frame = [256usize, 700, 1400, 1400][rng.gen_range(0..4) as usize];
    cfg.max_messages = [4u32, 16, 64][rng.gen_range(0..3) as usize];
    cfg.window_size = cfg.max_messages * [2u32, 4, 8][rng.gen_range(0..3) as usize];
    cfg.send_queue_bytes = 256 << 10;
    cfg.max_message_size = 64 << 10;
    // Half the runs keep the token after sending, some for as long as allowed.
    let hold_us = [0u64, 0, 200, token_ms * 100][rng.gen_range(0..4) as usize];
    cfg.send_hold = Duration::from_micros(hold_us);
    cfg
}

/// A totem node plus a workload that multicasts self-describing messages.
pub struct TotemNode {
    totem: totem::Totem,
    id: NodeId,
    incarnation: u32,
    next_seq: u64,
    out: VecDeque<Transmit>,
    observations: VecDeque<Observation>,
    persist: Option<u64>,
}

impl TotemNode {
    fn new(
        cfg: totem::Config,
        incarnation: u32,
        now: u64,
        persisted: Option<u64>,
        logger: Logger,
    ) -> Self {
        let id = cfg.node_id;
        let totem = totem::Totem::new(cfg, persisted, totem::Time::from_nanos(now), logger)
            .expect("simulated configs are valid");
        let mut node = TotemNode {
            totem,
            id,
            incarnation,
            next_seq: 0,
            out: VecDeque::new(),
            observations: VecDeque::new(),
            persist: None,
        };
        node.collect();
        node
    }

    /// Moves the core's outputs into the engine's vocabulary.
    fn collect(&mut self) {
        while let Some(t) = self.totem.poll_transmit() {
            push_transmit(&mut self.out, t);
        }
        while let Some(e) = self.totem.poll_event() {
            match e {
                totem::Event::Deliver(d) => {
                    let (msg, intact) = parse_payload(&d.data, d.sender);
                    self.observations.push_back(Observation::Deliver {
                        msg,
                        guarantee: observed_guarantee(d.guarantee),
                        intact,
                    });
                }
                totem::Event::Config(c) => self.observations.push_back(config_observation(c)),
                totem::Event::PersistRingSeq(s) => self.persist = Some(s),
            }
        }
    }
}

/// A totem configuration change as the checkers see it.
pub fn config_observation(c: totem::ConfigChange) -> Observation {
    let (kind, old_ring) = match c.kind {
        totem::ConfigKind::Transitional => {
            (ConfigKind::Transitional, c.previous.map(|r| (r.rep, r.seq)))
        }
        totem::ConfigKind::Regular => (ConfigKind::Regular, None),
    };
    Observation::Config {
        kind,
        ring: (c.ring.rep, c.ring.seq),
        old_ring,
        members: c.members,
    }
}

/// Totem's guarantee in the checkers' vocabulary.
pub fn observed_guarantee(g: totem::Guarantee) -> Guarantee {
    match g {
        totem::Guarantee::Agreed => Guarantee::Agreed,
        totem::Guarantee::Safe => Guarantee::Safe,
    }
}

/// A self-describing workload message, `node | incarnation | seq | crc | body`
/// (all little-endian; the crc covers the first 16 bytes and the body): which
/// message it is, and whether it arrived intact from the node it names.
pub fn parse_payload(data: &[u8], from: NodeId) -> (MsgId, bool) {
    let bad = (
        MsgId {
            sender: from,
            incarnation: u32::MAX,
            seq: u64::MAX,
        },
        false,
    );
    if data.len() < HEADER {
        return bad;
    }
    let sender = u32::from_le_bytes(data[0..4].try_into().unwrap_or_default());
    let incarnation = u32::from_le_bytes(data[4..8].try_into().unwrap_or_default());
    let seq = u64::from_le_bytes(data[8..16].try_into().unwrap_or_default());
    let crc = u32::from_le_bytes(data[16..20].try_into().unwrap_or_default());
    let msg = MsgId {
        sender,
        incarnation,
        seq,
    };
    let intact =
        sender == from && crc32c::crc32c(&data[..16]) ^ crc32c::crc32c(&data[HEADER..]) == crc;
    (msg, intact)
}

impl SimNode for TotemNode {
    fn handle_datagram(&mut self, now: u64, _from: NodeId, _link: u8, data: &[u8]) -> bool {
        self.totem
            .handle_datagram(totem::Time::from_nanos(now), data);
        self.collect();
        true
    }

    fn handle_timeout(&mut self, now: u64) {
        self.totem.handle_timeout(totem::Time::from_nanos(now));
        self.collect();
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    fn poll_timeout(&self) -> Option<u64> {
        self.totem.poll_timeout().map(|t| t.as_nanos())
    }

    fn app_tick(&mut self, now: u64, rng: &mut Rng) {
        let count = 1 + rng.gen_range(0..4);
        for _ in 0..count {
            let size = match rng.gen_range(0..100) {
                0..=79 => rng.gen_range(0..64),
                80..=96 => rng.gen_range(64..1500),
                _ => rng.gen_range(1500..6000),
            } as usize;
            let guarantee = if rng.gen_bool(0.3) {
                totem::Guarantee::Safe
            } else {
                totem::Guarantee::Agreed
            };
            let seq = self.next_seq;
            let mut data = Vec::with_capacity(HEADER + size);
            data.extend_from_slice(&self.id.to_le_bytes());
            data.extend_from_slice(&self.incarnation.to_le_bytes());
            data.extend_from_slice(&seq.to_le_bytes());
            data.extend_from_slice(&[0; 4]);
            for i in 0..size {
                data.push((seq as usize).wrapping_mul(31).wrapping_add(i) as u8);
            }
            let crc = crc32c::crc32c(&data[..16]) ^ crc32c::crc32c(&data[HEADER..]);
            data[16..20].copy_from_slice(&crc.to_le_bytes());
            if self
                .totem
                .mcast_owned(totem::Time::from_nanos(now), guarantee, data)
                .is_ok()
            {
                self.next_seq += 1;
                let msg = MsgId {
                    sender: self.id,
                    incarnation: self.incarnation,
                    seq,
                };
                let guarantee = if guarantee == totem::Guarantee::Safe {
                    Guarantee::Safe
                } else {
                    Guarantee::Agreed
                };
                self.observations
                    .push_back(Observation::Sent { msg, guarantee });
            }
        }
        self.collect();
    }

    fn leave(&mut self, now: u64) {
        self.totem.leave(totem::Time::from_nanos(now));
        self.collect();
    }

    fn poll_observation(&mut self) -> Option<Observation> {
        self.observations.pop_front()
    }

    fn status(&self) -> NodeStatus {
        let r = self.totem.ring_id();
        NodeStatus {
            operational: self.totem.is_operational(),
            ring: Some((r.rep, r.seq)),
            members: self.totem.members().to_vec(),
            quiescent: self.totem.is_quiescent(),
        }
    }

    fn persist(&mut self, disk: &mut Disk) {
        if let Some(s) = self.persist.take() {
            persist_ring_seq(disk, s);
        }
    }
}
