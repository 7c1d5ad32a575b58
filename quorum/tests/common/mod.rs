//! A tiny deterministic "totem" for votequorum tests: partitions receive EVS
//! configuration changes (transitional then regular) and every member delivers the
//! partition's messages in one total order.
#![allow(dead_code)]

use phalanx_quorum::{Event, NodeId, QuorumConfig, Votequorum};
use phalanx_totem::{ConfigChange, ConfigKind, RingId, Time};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

pub struct Cluster {
    pub nodes: BTreeMap<NodeId, Votequorum>,
    pub events: BTreeMap<NodeId, Vec<Event>>,
    members: BTreeMap<NodeId, Vec<NodeId>>,
    rings: BTreeMap<NodeId, RingId>,
    parts: Vec<Vec<NodeId>>,
    seq: u64,
    pub now: Time,
    make: Box<dyn Fn(NodeId) -> QuorumConfig>,
}

impl Cluster {
    /// Nodes `ids`, not yet started.
    pub fn new(ids: &[NodeId], make: impl Fn(NodeId) -> QuorumConfig + 'static) -> Self {
        let mut c = Cluster {
            nodes: BTreeMap::new(),
            events: BTreeMap::new(),
            members: BTreeMap::new(),
            rings: BTreeMap::new(),
            parts: Vec::new(),
            seq: 0,
            now: Time::ZERO,
            make: Box::new(make),
        };
        for &id in ids {
            c.start(id);
        }
        c
    }

    /// (Re)starts a node with a fresh core (not in any partition until `partition`).
    pub fn start(&mut self, id: NodeId) {
        let q = Votequorum::new((self.make)(id)).expect("valid config");
        self.nodes.insert(id, q);
        self.members.remove(&id);
        self.rings.remove(&id);
    }

    /// Installs new rings: one per part; nodes in no part are down.
    pub fn partition(&mut self, parts: &[&[NodeId]]) {
        self.parts = parts.iter().map(|p| p.to_vec()).collect();
        for p in parts {
            self.seq += 4;
            let ring = RingId {
                seq: self.seq,
                rep: p[0],
            };
            let set: BTreeSet<NodeId> = p.iter().copied().collect();
            for &n in p.iter() {
                let prev = self.members.get(&n).cloned();
                let prev_ring = self.rings.get(&n).copied();
                let q = self.nodes.get_mut(&n).expect("started");
                if let Some(prev) = &prev {
                    let trans: Vec<NodeId> =
                        prev.iter().copied().filter(|m| set.contains(m)).collect();
                    q.handle_config(
                        self.now,
                        &ConfigChange {
                            kind: ConfigKind::Transitional,
                            ring,
                            previous: prev_ring,
                            left: prev.iter().copied().filter(|m| !set.contains(m)).collect(),
                            joined: vec![],
                            members: trans,
                        },
                    );
                }
                let prev = prev.unwrap_or_default();
                q.handle_config(
                    self.now,
                    &ConfigChange {
                        kind: ConfigKind::Regular,
                        ring,
                        previous: prev_ring,
                        left: prev.iter().copied().filter(|m| !set.contains(m)).collect(),
                        joined: p.iter().copied().filter(|m| !prev.contains(m)).collect(),
                        members: p.to_vec(),
                    },
                );
                self.members.insert(n, p.to_vec());
                self.rings.insert(n, ring);
            }
        }
        self.settle();
    }

    /// Delivers every queued message in each partition, in one order, until quiet.
    pub fn settle(&mut self) {
        for _ in 0..1000 {
            let mut any = false;
            for p in self.parts.clone() {
                let mut batch = Vec::new();
                for &n in &p {
                    let q = self.nodes.get_mut(&n).expect("node");
                    while let Some(m) = q.poll_send() {
                        batch.push((n, m));
                    }
                }
                for (from, m) in &batch {
                    any = true;
                    for &n in &p {
                        let q = self.nodes.get_mut(&n).expect("node");
                        q.handle_message(self.now, *from, m).expect("valid message");
                    }
                }
            }
            for (id, q) in self.nodes.iter_mut() {
                while let Some(e) = q.poll_event() {
                    self.events.entry(*id).or_default().push(e);
                }
            }
            if !any {
                return;
            }
        }
        panic!("messages never settled");
    }

    /// Advances virtual time, firing due timers.
    pub fn advance(&mut self, d: Duration) {
        self.now = self.now + d;
        for p in self.parts.clone() {
            for n in p {
                self.nodes
                    .get_mut(&n)
                    .expect("node")
                    .handle_timeout(self.now);
            }
        }
        self.settle();
    }

    pub fn q(&mut self, id: NodeId) -> &mut Votequorum {
        self.nodes.get_mut(&id).expect("node")
    }

    pub fn quorate(&self, id: NodeId) -> bool {
        self.nodes[&id].is_quorate()
    }

    /// The quorate flags of `ids` in order.
    pub fn quorate_of(&self, ids: &[NodeId]) -> Vec<bool> {
        ids.iter().map(|i| self.quorate(*i)).collect()
    }

    /// Every member of each partition agrees on (quorate, quorum, expected, total).
    pub fn assert_partitions_agree(&self, at: &str) {
        for p in &self.parts {
            let infos: BTreeSet<(bool, u32, u32, u32)> = p
                .iter()
                .map(|n| {
                    let i = self.nodes[n].info();
                    (i.quorate, i.quorum, i.expected_votes, i.total_votes)
                })
                .collect();
            assert_eq!(infos.len(), 1, "{at}: partition {p:?} disagrees: {infos:?}");
        }
    }

    /// No two disjoint partitions are quorate at once.
    pub fn assert_at_most_one_quorate(&self, at: &str) {
        let q: Vec<&Vec<NodeId>> = self
            .parts
            .iter()
            .filter(|p| p.iter().any(|n| self.quorate(*n)))
            .collect();
        assert!(q.len() <= 1, "{at}: several quorate partitions: {q:?}");
    }
}
