//! A deliberately trivial protocol for exercising the engine and the checkers.
//!
//! Every node sits in one static regular configuration of all nodes (ring `(1, 0)`),
//! multicasts application messages with agreed guarantee, and delivers only its own
//! messages, at once. That trivially satisfies every checked property, so a swarm over
//! it must be clean; each [`Bug`] breaks exactly one property so tests can show the
//! checkers catching it through the whole engine.

use crate::history::{ConfigKind, Guarantee, MsgId, Observation};
use crate::node::{Destination, Disk, NodeFactory, NodeId, NodeStatus, SimNode, Transmit};
use crate::rng::Rng;
use phalanx_logsys::{Logger, record};
use std::collections::VecDeque;

/// A bug to inject into every test node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Bug {
    /// Correct behaviour.
    #[default]
    None,
    /// Deliver other nodes' messages on receipt (breaks agreed order).
    DeliverOnReceipt,
    /// Forget to deliver every third own message (breaks self delivery).
    SkipSelfDelivery,
    /// Deliver some own messages twice (breaks no duplication).
    DuplicateDelivery,
    /// Node 2 leaves node 1 out of the static configuration (breaks config agreement).
    WrongMembers,
    /// Node 1 never becomes operational (breaks liveness).
    NeverOperational,
}

/// Builds [`TestNode`]s.
#[derive(Clone, Copy, Debug, Default)]
pub struct TestFactory {
    /// The bug every node carries.
    pub bug: Bug,
}

const MAGIC: u8 = 0x54;
const KIND_APP: u8 = 0;
const KIND_HEARTBEAT: u8 = 1;
const KIND_BYE: u8 = 2;
const HEARTBEAT_NS: u64 = 100_000_000;
const HEADER: usize = 1 + 1 + 4 + 4 + 8 + 2;

/// A word-at-a-time multiplicative hash, enough to notice corruption in a test payload.
fn checksum(b: &[u8]) -> u32 {
    let mut h = 0x811C_9DC5_u64 ^ b.len() as u64;
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
        h = (h ^ w).wrapping_mul(0x0000_0100_0000_01B3).rotate_left(29);
    }
    for &x in chunks.remainder() {
        h = (h ^ u64::from(x)).wrapping_mul(0x0000_0100_0000_01B3);
    }
    (h ^ (h >> 32)) as u32
}

fn encode(kind: u8, msg: MsgId, payload_len: u16, fill: u8) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER + usize::from(payload_len) + 4);
    v.push(MAGIC);
    v.push(kind);
    v.extend_from_slice(&msg.sender.to_le_bytes());
    v.extend_from_slice(&msg.incarnation.to_le_bytes());
    v.extend_from_slice(&msg.seq.to_le_bytes());
    v.extend_from_slice(&payload_len.to_le_bytes());
    v.extend(std::iter::repeat_n(fill, usize::from(payload_len)));
    let c = checksum(&v);
    v.extend_from_slice(&c.to_le_bytes());
    v
}

/// Parses a datagram: `(kind, msg)` if well formed and intact.
fn decode(b: &[u8]) -> Option<(u8, MsgId)> {
    let body = b.get(..b.len().checked_sub(4)?)?;
    let sum = u32::from_le_bytes(b.get(body.len()..)?.try_into().ok()?);
    if body.len() < HEADER || body[0] != MAGIC || checksum(body) != sum {
        return None;
    }
    let u32_at = |i: usize| {
        body.get(i..i + 4)
            .and_then(|s| s.try_into().ok())
            .map(u32::from_le_bytes)
    };
    let len = u16::from_le_bytes(body.get(18..20)?.try_into().ok()?);
    if body.len() != HEADER + usize::from(len) {
        return None;
    }
    let msg = MsgId {
        sender: u32_at(2)?,
        incarnation: u32_at(6)?,
        seq: u64::from_le_bytes(body.get(10..18)?.try_into().ok()?),
    };
    Some((body[1], msg))
}

/// The trivial node; see the module docs.
pub struct TestNode {
    id: NodeId,
    all: Vec<NodeId>,
    incarnation: u32,
    seq: u64,
    bug: Bug,
    next_heartbeat: u64,
    left: bool,
    out: VecDeque<Transmit>,
    obs: VecDeque<Observation>,
    log: Logger,
}

impl NodeFactory for TestFactory {
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
        // The boot counter on disk shows that state survives crashes.
        let boots = disk
            .get("boots")
            .and_then(|b| b.as_slice().try_into().ok())
            .map(u32::from_le_bytes)
            .unwrap_or(0)
            + 1;
        disk.insert("boots".to_string(), boots.to_le_bytes().to_vec());
        record!(
            logger,
            now,
            id,
            Notice,
            "testnode",
            "boot {} incarnation {}",
            boots,
            incarnation
        );
        let mut members = all.to_vec();
        if self.bug == Bug::WrongMembers && id == 2 {
            members.retain(|m| *m != 1);
        }
        let mut node = TestNode {
            id,
            all: all.to_vec(),
            incarnation,
            seq: 0,
            bug: self.bug,
            next_heartbeat: now.saturating_add(HEARTBEAT_NS),
            left: false,
            out: VecDeque::new(),
            obs: VecDeque::new(),
            log: logger,
        };
        node.obs.push_back(Observation::Config {
            kind: ConfigKind::Regular,
            ring: (1, 0),
            old_ring: None,
            members,
        });
        Box::new(node)
    }

    /// Every checker but `ring_id_fresh`: a test node re-installs its one static
    /// ring after a restart by design (it has no ring sequence to persist).
    fn check(&self, history: &crate::History) -> Vec<crate::Violation> {
        crate::check::all(history)
            .into_iter()
            .filter(|v| v.property != "ring_id_fresh")
            .collect()
    }
}

impl TestNode {
    fn my_msg(&self, seq: u64) -> MsgId {
        MsgId {
            sender: self.id,
            incarnation: self.incarnation,
            seq,
        }
    }
}

impl SimNode for TestNode {
    fn handle_datagram(&mut self, now: u64, from: NodeId, _link: u8, data: &[u8]) -> bool {
        let Some((kind, msg)) = decode(data) else {
            record!(
                self.log,
                now,
                self.id,
                Warn,
                "testnode",
                "bad datagram from {}",
                from
            );
            return true;
        };
        if kind == KIND_APP && self.bug == Bug::DeliverOnReceipt && !self.left {
            self.obs.push_back(Observation::Deliver {
                msg,
                guarantee: Guarantee::Agreed,
                intact: true,
            });
        }
        true
    }

    fn handle_timeout(&mut self, now: u64) {
        if self.left || now < self.next_heartbeat {
            return;
        }
        self.next_heartbeat = now.saturating_add(HEARTBEAT_NS);
        record!(
            self.log,
            now,
            self.id,
            Debug,
            "testnode",
            "heartbeat seq {}",
            self.seq
        );
        let data = encode(KIND_HEARTBEAT, self.my_msg(self.seq), 0, 0);
        self.out.push_back(Transmit {
            dest: Destination::AllNodes,
            link: 0,
            data,
        });
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    fn poll_timeout(&self) -> Option<u64> {
        (!self.left).then_some(self.next_heartbeat)
    }

    fn app_tick(&mut self, _now: u64, rng: &mut Rng) {
        if self.left {
            return;
        }
        for _ in 0..rng.gen_range(0..=2) {
            self.seq += 1;
            let msg = self.my_msg(self.seq);
            let len = rng.gen_range(0..=1200) as u16;
            self.out.push_back(Transmit {
                dest: Destination::AllNodes,
                link: 0,
                data: encode(KIND_APP, msg, len, self.seq as u8),
            });
            self.obs.push_back(Observation::Sent {
                msg,
                guarantee: Guarantee::Agreed,
            });
            let deliver = Observation::Deliver {
                msg,
                guarantee: Guarantee::Agreed,
                intact: true,
            };
            match self.bug {
                Bug::SkipSelfDelivery if self.seq % 3 == 0 => {}
                Bug::DuplicateDelivery if self.seq % 5 == 0 => {
                    self.obs.push_back(deliver.clone());
                    self.obs.push_back(deliver);
                }
                _ => self.obs.push_back(deliver),
            }
        }
    }

    fn leave(&mut self, now: u64) {
        record!(self.log, now, self.id, Notice, "testnode", "leaving");
        self.left = true;
        let data = encode(KIND_BYE, self.my_msg(self.seq), 0, 0);
        self.out.push_back(Transmit {
            dest: Destination::AllNodes,
            link: 0,
            data,
        });
    }

    fn poll_observation(&mut self) -> Option<Observation> {
        self.obs.pop_front()
    }

    fn status(&self) -> NodeStatus {
        let broken = self.bug == Bug::NeverOperational && self.id == 1;
        let operational = !self.left && !broken;
        NodeStatus {
            operational,
            ring: Some((1, 0)),
            members: self.all.clone(),
            quiescent: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_round_trips_and_rejects_garbage() {
        let m = MsgId {
            sender: 3,
            incarnation: 2,
            seq: 99,
        };
        let b = encode(KIND_APP, m, 10, 7);
        assert_eq!(decode(&b), Some((KIND_APP, m)));
        let mut bad = b.clone();
        bad[12] ^= 1;
        assert_eq!(decode(&bad), None);
        for n in 0..b.len() {
            assert_eq!(decode(&b[..n]), None);
        }
    }
}
