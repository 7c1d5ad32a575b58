//! A deterministic in-test cluster for `CibService`: every node's frames are
//! delivered to all members of its group in one total order (a seeded choice
//! of whose queue is drained next), with partitions and heals as
//! configuration changes, and checkers for the replication properties.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use phalanx_cib::ops::{CallOptions, CibOp, OpContext, Scope, empty_cib};
use phalanx_cib::service::fragment::FrameError;
use phalanx_cib::service::{
    CibEvent, CibService, CibServiceConfig, DiffCause, MessageError, ReplyError,
};
use phalanx_cib::version::Version;
use phalanx_cib::xml::{Element, Escaping, Style, to_string};
use phalanx_totem::{NodeId, RingId};

/// SplitMix64: small, seeded, good enough to pick interleavings.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// What a client asked for (to judge its reply).
#[derive(Clone, Debug)]
pub enum Intent {
    /// Creates a unique configuration object `id`.
    Marker(String),
    /// Anything else.
    Other,
}

pub struct Node {
    pub id: NodeId,
    pub svc: CibService,
    pub ring: Option<RingId>,
    pub last_version: Version,
    /// The last CIB handed out to persist.
    pub persisted: Option<Element>,
    /// Calls sent and not answered: call → intent.
    pub open_calls: BTreeMap<u64, Intent>,
}

/// Every applied request as one node saw it: (origin, call, version, digest
/// of the result from the patchset).
pub type Applied = (NodeId, u64, Version, String);

pub struct Cluster {
    pub nodes: Vec<Node>,
    /// Current partition: groups of node indices.
    pub groups: Vec<Vec<usize>>,
    pub ring_seq: u64,
    pub rng: Rng,
    next_call: u64,
    /// Markers whose creation was acknowledged, with the acknowledging node.
    pub acked_markers: Vec<(NodeId, String)>,
    /// Pretty text of every discarded patchset reported.
    pub divergence_text: Vec<String>,
    pub divergences: usize,
    /// Per ring and node: the requests applied, in order.
    pub applied: BTreeMap<RingId, BTreeMap<NodeId, Vec<Applied>>>,
    pub replies_ok: usize,
    pub replies_failed: usize,
    pub interrupted: usize,
    pub syncs: usize,
    pub persists: usize,
    pub frames: usize,
}

pub fn config(id: NodeId, frame_size: usize) -> CibServiceConfig {
    let mut c = CibServiceConfig::new(id);
    c.frame_size = frame_size;
    c
}

impl Cluster {
    /// `n` nodes, all starting from `cib`, not yet configured.
    pub fn new(n: usize, seed: u64, frame_size: usize, cib: &Element) -> Self {
        let nodes = (1..=n as NodeId)
            .map(|id| Node {
                id,
                svc: CibService::new(config(id, frame_size), cib.clone()),
                ring: None,
                last_version: Version::of_cib(cib),
                persisted: None,
                open_calls: BTreeMap::new(),
            })
            .collect();
        let mut c = Cluster {
            nodes,
            groups: Vec::new(),
            ring_seq: 0,
            rng: Rng::new(seed),
            next_call: 1,
            acked_markers: Vec::new(),
            divergence_text: Vec::new(),
            divergences: 0,
            applied: BTreeMap::new(),
            replies_ok: 0,
            replies_failed: 0,
            interrupted: 0,
            syncs: 0,
            persists: 0,
            frames: 0,
        };
        c.set_groups(vec![(0..n).collect()]);
        c
    }

    /// Installs a new partition: every group whose membership changed gets a
    /// new ring (EVS: nothing is in flight, frames are delivered as taken).
    pub fn set_groups(&mut self, groups: Vec<Vec<usize>>) {
        for g in &groups {
            let members: Vec<NodeId> = g.iter().map(|&i| self.nodes[i].id).collect();
            let unchanged = self.groups.iter().any(|old| old == g);
            if unchanged {
                continue;
            }
            self.ring_seq += 4;
            let ring = RingId {
                seq: self.ring_seq,
                rep: members[0],
            };
            for &i in g {
                let n = &mut self.nodes[i];
                n.svc.handle_config(&members, &[], &[], ring);
                n.ring = Some(ring);
            }
        }
        self.groups = groups;
        self.drain_all();
    }

    /// A random split into two non-empty groups (when whole), or a heal.
    pub fn change_configuration(&mut self) {
        let n = self.nodes.len();
        if self.groups.len() == 1 {
            let mut a = Vec::new();
            let mut b = Vec::new();
            for i in 0..n {
                if self.rng.chance(50) {
                    a.push(i)
                } else {
                    b.push(i)
                }
            }
            if a.is_empty() {
                a.push(b.pop().unwrap());
            }
            if b.is_empty() {
                b.push(a.pop().unwrap());
            }
            self.set_groups(vec![a, b]);
        } else {
            self.set_groups(vec![(0..n).collect()]);
        }
    }

    /// A client request at a random node.
    pub fn random_request(&mut self) {
        let i = self.rng.below(self.nodes.len());
        let call = self.next_call;
        self.next_call += 1;
        let node = self.nodes[i].id;
        let (op, intent) = match self.rng.below(5) {
            0 | 1 => {
                let id = format!("m-{node}-{call}");
                let input = Element::new("cluster_property_set")
                    .with_attr("id", id.as_str())
                    .with_child(
                        Element::new("nvpair")
                            .with_attr("id", format!("{id}-v"))
                            .with_attr("name", id.as_str())
                            .with_attr("value", "1"),
                    );
                (
                    CibOp::Create {
                        scope: Scope::section("crm_config"),
                        input,
                        options: CallOptions::default(),
                    },
                    Intent::Marker(id),
                )
            }
            2 => {
                // A shared object both sides of a partition may change.
                let input = Element::new("primitive")
                    .with_attr("id", "shared")
                    .with_attr("class", "ocf")
                    .with_attr("type", "Dummy")
                    .with_attr("description", format!("{node}-{call}"));
                (
                    CibOp::Modify {
                        scope: Scope::section("resources"),
                        input,
                        options: CallOptions {
                            can_create: true,
                            ..Default::default()
                        },
                    },
                    Intent::Other,
                )
            }
            3 => {
                let input = Element::new("node_state")
                    .with_attr("id", format!("{}", self.rng.below(3) + 1))
                    .with_attr("counter", format!("{call}"));
                (
                    CibOp::Modify {
                        scope: Scope::section("status"),
                        input,
                        options: CallOptions {
                            can_create: true,
                            ..Default::default()
                        },
                    },
                    Intent::Other,
                )
            }
            _ => (
                if self.rng.chance(50) {
                    CibOp::Delete {
                        scope: Scope::xpath("//primitive[@id='shared']"),
                        input: None,
                        options: CallOptions::default(),
                    }
                } else {
                    CibOp::Query {
                        scope: Scope::section("crm_config"),
                        options: CallOptions::default(),
                    }
                },
                Intent::Other,
            ),
        };
        let ctx = OpContext {
            user: Some("hacluster".into()),
            client_name: Some("harness".into()),
            origin: Some(format!("node{node}")),
            now: Some(format!("t{call}")),
            ..Default::default()
        };
        if self.nodes[i].svc.request(1, call, op, ctx).is_ok() {
            self.nodes[i].open_calls.insert(call, intent);
        }
        self.drain_node(i);
    }

    /// Delivers one frame of a random node that has one; false if none has.
    pub fn deliver_one(&mut self) -> bool {
        let ready: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].svc.next_send_len().is_some())
            .collect();
        if ready.is_empty() {
            return false;
        }
        let i = ready[self.rng.below(ready.len())];
        let frame = self.nodes[i].svc.poll_send().unwrap();
        self.frames += 1;
        let sender = self.nodes[i].id;
        let group = self.groups.iter().find(|g| g.contains(&i)).unwrap().clone();
        for j in group {
            match self.nodes[j].svc.handle_message(sender, &frame) {
                // Frames of a message cut by a configuration change.
                Ok(()) | Err(MessageError::Frame(FrameError::Orphan { .. })) => {}
                Err(e) => panic!("node {} dropped a frame of {sender}: {e}", j + 1),
            }
            self.drain_node(j);
        }
        true
    }

    /// Delivers until no node has anything to send.
    pub fn settle(&mut self) {
        let mut guard = 0;
        while self.deliver_one() {
            guard += 1;
            assert!(guard < 1_000_000, "no quiescence");
        }
    }

    fn drain_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.drain_node(i);
        }
    }

    /// Routes a node's events and persist requests; checks the per-step
    /// properties.
    pub fn drain_node(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let v = node.svc.version();
        assert!(
            v >= node.last_version,
            "node {}: version went back from {} to {v}",
            node.id,
            node.last_version
        );
        node.last_version = v;
        while let Some(e) = node.svc.poll_event() {
            match e {
                CibEvent::Reply {
                    client,
                    call,
                    result,
                } => {
                    assert_eq!(client, 1);
                    let intent = node.open_calls.remove(&call).unwrap_or_else(|| {
                        panic!("node {}: reply to unknown call {call}", node.id)
                    });
                    match result {
                        Ok(r) => {
                            self.replies_ok += 1;
                            if let (Intent::Marker(m), true) = (intent, r.changed) {
                                self.acked_markers.push((node.id, m));
                            }
                        }
                        Err(ReplyError::Interrupted) => self.interrupted += 1,
                        Err(ReplyError::Op(_)) => self.replies_failed += 1,
                        // Only with require_quorum, which this harness leaves off.
                        Err(ReplyError::Unconfirmed) => {
                            panic!("node {}: unconfirmed without require_quorum", node.id)
                        }
                    }
                }
                CibEvent::Diff {
                    patchset,
                    version,
                    cause,
                } => {
                    if let DiffCause::Request { origin, call, .. } = cause {
                        let ring = node.ring.expect("applied outside a configuration");
                        self.applied
                            .entry(ring)
                            .or_default()
                            .entry(node.id)
                            .or_default()
                            .push((
                                origin,
                                call,
                                version,
                                patchset.attr("digest").unwrap_or("").to_string(),
                            ));
                    }
                }
                CibEvent::Synced { .. } => self.syncs += 1,
                CibEvent::Divergence(d) => {
                    self.divergences += 1;
                    assert!(d.ours <= d.theirs, "a copy with a higher version lost");
                    let text = d
                        .discarded
                        .map(|p| to_string(&p, Style::Compact, Escaping::Xml))
                        .unwrap_or_default();
                    self.divergence_text.push(text);
                }
                CibEvent::PersistFailed { .. } => panic!("no write fails here"),
            }
        }
        while let Some(p) = node.svc.poll_persist() {
            assert!(p.cib.find_child("status").is_none(), "status persisted");
            assert_eq!(p.cib.attr("num_updates"), Some("0"));
            assert_eq!(p.version.num_updates, 0);
            node.persisted = Some(p.cib);
            node.svc.persisted(p.id, Ok(())).unwrap();
            self.persists += 1;
        }
    }

    /// The checks after heal and quiescence.
    pub fn check_final(&self) {
        let first = &self.nodes[0];
        for n in &self.nodes {
            assert!(n.svc.is_quiescent(), "node {} not quiescent", n.id);
            assert_eq!(n.svc.digest(), first.svc.digest(), "node {} differs", n.id);
            assert_eq!(n.svc.cib(), first.svc.cib());
            assert!(n.open_calls.is_empty(), "node {}: unanswered calls", n.id);
            // The last write is the configuration of the current copy.
            if let Some(p) = &n.persisted {
                assert_eq!(
                    p.find_child("configuration"),
                    n.svc.cib().find_child("configuration"),
                    "node {}: last write is not the current configuration",
                    n.id
                );
            }
        }
        // Within a configuration every node applied the same requests, in
        // the same order, with the same results.
        for (ring, per_node) in &self.applied {
            let mut seqs = per_node.values();
            let a = seqs.next().unwrap();
            for b in seqs {
                assert_eq!(a, b, "ring {ring}: members applied different sequences");
            }
        }
        // No acknowledged marker is lost silently: it is in the final CIB or
        // reported in a divergence.
        let text = to_string(first.svc.cib(), Style::Compact, Escaping::Xml);
        for (node, m) in &self.acked_markers {
            let needle = format!("id=\"{m}\"");
            assert!(
                text.contains(&needle) || self.divergence_text.iter().any(|d| d.contains(&needle)),
                "marker {m} acknowledged by node {node} is lost without a divergence report"
            );
        }
    }
}

pub fn start_cib() -> Element {
    let mut c = empty_cib(1);
    c.set_attr("validate-with", "pacemaker-3.9");
    c
}

/// Members of a ring, ascending (for assertions).
pub fn members(c: &Cluster, group: usize) -> BTreeSet<NodeId> {
    c.groups[group].iter().map(|&i| c.nodes[i].id).collect()
}
