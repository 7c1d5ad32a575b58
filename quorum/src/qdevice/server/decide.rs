//! One cluster's decision: the partitions as reported, whether the reports are
//! consistent, and which partition the algorithm picks.

use super::Cluster;
use crate::config::{Algorithm, TieBreaker};
use crate::qdevice::algo::{self, Heuristics, Partition};
use phalanx_totem::RingId;
use std::collections::{BTreeMap, BTreeSet};

/// The partitions of a cluster as its connected nodes report them, or `None` while
/// the reports are inconsistent (a member listed in one ring reports another).
fn partitions(cl: &Cluster) -> Option<Vec<Partition>> {
    let mut by_ring: BTreeMap<RingId, Partition> = BTreeMap::new();
    for (id, v) in &cl.nodes {
        let (Some(_), Some(s)) = (v.conn, &v.status) else {
            continue;
        };
        // A partition whose heuristics are still running is not compared yet.
        if s.heuristics == Heuristics::Pending {
            return None;
        }
        let p = by_ring.entry(s.ring).or_insert_with(|| Partition {
            ring: s.ring,
            members: s.members.iter().copied().collect(),
            connected: Vec::new(),
        });
        if p.members != s.members.iter().copied().collect::<BTreeSet<_>>() {
            return None;
        }
        p.connected.push((*id, s.heuristics));
    }
    // Every connected member of a ring must report that ring.
    for p in by_ring.values() {
        for m in &p.members {
            if let Some(v) = cl.nodes.get(m) {
                if let (Some(_), Some(s)) = (v.conn, &v.status) {
                    if s.ring != p.ring {
                        return None;
                    }
                }
            }
        }
    }
    Some(by_ring.into_values().collect())
}

pub(super) enum Outcome {
    Winner(Partition),
    NoWinner,
    Unstable,
}

pub(super) fn decide(cl: &Cluster) -> Outcome {
    let Some(parts) = partitions(cl) else {
        return Outcome::Unstable;
    };
    let Some(s) = cl.nodes.values().find_map(|v| v.status.as_ref()) else {
        return Outcome::NoWinner;
    };
    let (alg, tb, n): (Algorithm, TieBreaker, usize) =
        (s.algorithm, s.tie_breaker.clone(), s.config_nodes.len());
    match algo::choose(alg, &parts, n, &tb, &cl.last_holders) {
        Some(p) => Outcome::Winner(p.clone()),
        None => Outcome::NoWinner,
    }
}
