//! Checkers: one property per file, each a pure function of a [`History`].
//!
//! Vocabulary: a *process* is `(node, incarnation)`; a process that crashed or left is
//! *failed* from then on. A process is *in* a configuration from the moment it
//! installs it until it installs the next one.

use crate::history::{
    ConfigKind, EventKind, Guarantee, History, MsgId, Observation, Process, RingId,
};
use crate::node::NodeId;
use std::collections::BTreeMap;
use std::fmt;

pub mod agreed_order;
pub mod cib;
pub mod cib_acked_kept;
pub mod cib_apply_order;
pub mod cib_convergence;
pub mod cib_versions;
pub mod config_agreement;
pub mod cpg;
pub mod cpg_convergence;
pub mod cpg_departure_once;
pub mod cpg_group_order;
pub mod cpg_integrity;
pub mod cpg_no_delivery_before_join;
pub mod cpg_self_delivery;
pub mod cpg_view_agreement;
pub mod link_failover;
pub mod liveness;
pub mod no_duplication;
pub mod quorum;
pub mod quorum_convergence;
pub mod quorum_currency;
pub mod quorum_uniqueness;
pub mod ring_id_fresh;
pub mod safe_delivery;
pub mod self_delivery;
pub mod transitional_order;
pub mod virtual_synchrony;

/// A property that did not hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The property's short name (the checker's file name).
    pub property: &'static str,
    /// What was seen, with enough ids to find it in a trace.
    pub detail: String,
}

impl Violation {
    pub(crate) fn new(property: &'static str, detail: String) -> Self {
        Self { property, detail }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.property, self.detail)
    }
}

/// Runs every checker.
pub fn all(h: &History) -> Vec<Violation> {
    // Split the history once; every checker but liveness reads the same timelines.
    let tls = timelines(h);
    let mut v = Vec::new();
    v.extend(agreed_order::check_timelines(&tls));
    v.extend(virtual_synchrony::check_timelines(&tls));
    v.extend(self_delivery::check_timelines(&tls));
    v.extend(no_duplication::check_timelines(&tls));
    v.extend(config_agreement::check_timelines(&tls));
    v.extend(safe_delivery::check_timelines(&tls));
    v.extend(transitional_order::check_timelines(&tls));
    v.extend(ring_id_fresh::check_timelines(&tls));
    v.extend(link_failover::check_timelines(h, &tls));
    v.extend(liveness::check(h));
    v
}

/// Cap on violations reported per checker: one bug tends to produce thousands of
/// identical complaints, and the first few are what a human reads.
pub(crate) const MAX_REPORTS: usize = 8;

/// Identity of a configuration across processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum ConfKey {
    Regular(RingId),
    Transitional { old: Option<RingId>, ring: RingId },
}

impl fmt::Display for ConfKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Regular(r) => write!(f, "REG {}.{}", r.0, r.1),
            Self::Transitional { old: Some(o), ring } => {
                write!(f, "TRANS {}.{}<-{}.{}", ring.0, ring.1, o.0, o.1)
            }
            Self::Transitional { old: None, ring } => write!(f, "TRANS {}.{}<-?", ring.0, ring.1),
        }
    }
}

/// One configuration a process installed.
#[derive(Clone, Debug)]
pub(crate) struct Install {
    pub kind: ConfigKind,
    pub ring: RingId,
    pub old_ring: Option<RingId>,
    /// Sorted, deduplicated.
    pub members: Vec<NodeId>,
    pub key: ConfKey,
}

/// One delivery by a process.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Delivery {
    pub msg: MsgId,
    pub guarantee: Guarantee,
    pub intact: bool,
    /// Index into the process's `configs` of the configuration it was delivered in.
    pub config: Option<usize>,
}

/// Everything one process did, in order.
#[derive(Clone, Debug)]
pub(crate) struct Timeline {
    pub process: Process,
    /// Crashed or left at some point.
    pub failed: bool,
    pub sent: Vec<MsgId>,
    pub configs: Vec<Install>,
    pub deliveries: Vec<Delivery>,
}

impl Timeline {
    fn new(process: Process) -> Self {
        Self {
            process,
            failed: false,
            sent: Vec::new(),
            configs: Vec::new(),
            deliveries: Vec::new(),
        }
    }
}

/// Splits a history into per-process timelines, ordered by process.
pub(crate) fn timelines(h: &History) -> Vec<Timeline> {
    let mut map: BTreeMap<Process, Timeline> = BTreeMap::new();
    for e in &h.events {
        let p = (e.node, e.incarnation);
        let t = match &e.kind {
            EventKind::PartitionChange { .. } => continue,
            _ => map.entry(p).or_insert_with(|| Timeline::new(p)),
        };
        match &e.kind {
            EventKind::Crash | EventKind::Leave => t.failed = true,
            EventKind::Observation(Observation::Sent { msg, .. }) => t.sent.push(*msg),
            EventKind::Observation(Observation::Deliver {
                msg,
                guarantee,
                intact,
            }) => {
                let config = t.configs.len().checked_sub(1);
                t.deliveries.push(Delivery {
                    msg: *msg,
                    guarantee: *guarantee,
                    intact: *intact,
                    config,
                });
            }
            EventKind::Observation(Observation::Config {
                kind,
                ring,
                old_ring,
                members,
            }) => {
                let mut members = members.clone();
                members.sort_unstable();
                members.dedup();
                let key = match kind {
                    ConfigKind::Regular => ConfKey::Regular(*ring),
                    ConfigKind::Transitional => ConfKey::Transitional {
                        old: *old_ring,
                        ring: *ring,
                    },
                };
                t.configs.push(Install {
                    kind: *kind,
                    ring: *ring,
                    old_ring: *old_ring,
                    members,
                    key,
                });
            }
            _ => {}
        }
    }
    map.into_values().collect()
}

/// Dense numbering of every message id in a history, so per-process tables can be
/// plain vectors instead of hash maps.
pub(crate) struct MsgIndex {
    ids: Vec<MsgId>,
}

impl MsgIndex {
    pub fn new(tls: &[Timeline]) -> Self {
        let mut ids: Vec<MsgId> = tls
            .iter()
            .flat_map(|t| {
                t.sent
                    .iter()
                    .copied()
                    .chain(t.deliveries.iter().map(|d| d.msg))
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        Self { ids }
    }
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    /// The id with dense index `i`.
    pub fn id(&self, i: usize) -> MsgId {
        self.ids.get(i).copied().unwrap_or(MsgId {
            sender: 0,
            incarnation: 0,
            seq: 0,
        })
    }
    /// Dense index of `m` (every id in the timelines it was built from has one).
    pub fn get(&self, m: &MsgId) -> usize {
        self.ids.binary_search(m).unwrap_or(0)
    }
}

/// Formats a short list of ids for a violation detail.
pub(crate) fn sample(ids: &[MsgId]) -> String {
    let mut s: Vec<String> = ids.iter().take(5).map(|m| m.to_string()).collect();
    if ids.len() > 5 {
        s.push(format!("... ({} total)", ids.len()));
    }
    format!("[{}]", s.join(", "))
}

/// `n3#1` for process (3, 1).
pub(crate) fn proc_name(p: Process) -> String {
    format!("n{}#{}", p.0, p.1)
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Builders for hand-made histories.
    use super::*;
    use crate::history::Observation as O;

    pub fn m(sender: NodeId, seq: u64) -> MsgId {
        MsgId {
            sender,
            incarnation: 0,
            seq,
        }
    }
    pub fn sent(h: &mut History, t: u64, n: NodeId, msg: MsgId, g: Guarantee) {
        h.observe(t, n, 0, O::Sent { msg, guarantee: g });
    }
    pub fn deliver(h: &mut History, t: u64, n: NodeId, msg: MsgId, g: Guarantee) {
        h.observe(
            t,
            n,
            0,
            O::Deliver {
                msg,
                guarantee: g,
                intact: true,
            },
        );
    }
    pub fn reg(h: &mut History, t: u64, n: NodeId, ring: RingId, members: &[NodeId]) {
        h.observe(
            t,
            n,
            0,
            O::Config {
                kind: ConfigKind::Regular,
                ring,
                old_ring: None,
                members: members.to_vec(),
            },
        );
    }
    pub fn trans(
        h: &mut History,
        t: u64,
        n: NodeId,
        ring: RingId,
        old: RingId,
        members: &[NodeId],
    ) {
        h.observe(
            t,
            n,
            0,
            O::Config {
                kind: ConfigKind::Transitional,
                ring,
                old_ring: Some(old),
                members: members.to_vec(),
            },
        );
    }
    /// Every node sends and delivers `msgs` in a single regular configuration.
    pub fn healthy(nodes: &[NodeId], msgs: &[MsgId]) -> History {
        let mut h = History::new(nodes.to_vec());
        for &n in nodes {
            reg(&mut h, 0, n, (1, 4), nodes);
        }
        for &msg in msgs {
            sent(&mut h, 1, msg.sender, msg, Guarantee::Safe);
        }
        for &n in nodes {
            for &msg in msgs {
                deliver(&mut h, 2, n, msg, Guarantee::Safe);
            }
        }
        h
    }
}
