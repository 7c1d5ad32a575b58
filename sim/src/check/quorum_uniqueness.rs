//! Quorum uniqueness: never two disjoint partitions quorate at the same virtual time.
//!
//! **Beliefs.** Each process (node, incarnation) holds the quorum state of its last
//! [`Observation::Quorum`]: quorate or not, and the members its decision counted.
//! A quorate belief lasts, on the engine's *global* virtual time (the time the
//! history stamps on every event, not the node's drifting local clock), from the
//! observation until the process's next quorum observation, or until the process
//! crashes or leaves (a dead process cannot act; its restart is a new process that
//! starts inquorate). A **pause does not end it**: a paused process still believes
//! what it last heard and acts on it when it resumes, before it can learn
//! otherwise — exactly the stale belief a split brain is made of. Events with the
//! same virtual time count in history order, so a belief that ends at the instant
//! another begins is judged as overlapping (the conservative reading).
//!
//! **Property.** At no instant do two processes hold quorate beliefs whose member
//! sets are disjoint.
//!
//! **Why disjoint, not "different".** A cut-off or paused process keeps its old
//! ring's quorate belief until its token-loss timeout (or resume) delivers the
//! transitional configuration, while the majority has already formed a new ring and
//! is quorate too. That overlap is inherent to votequorum — a process cannot know
//! faster than totem tells it — and is bounded by the failure-detection time; the
//! majority fences before it takes over. The two beliefs share members (the
//! majority's members were in the old ring), so they are not two *partitions*. Two
//! quorate beliefs over disjoint member sets are: each counted a majority of the
//! expected votes from nodes the other did not count. With static expected votes E
//! ≥ the total configured votes T (no `two_node`, `last_man_standing`,
//! `allow_downscale` or runtime changes) that is impossible for correct arithmetic —
//! V₁ + V₂ ≤ T ≤ E, so not both Vᵢ > E/2 — and `auto_tie_breaker` lowest/highest
//! grants an exact half only to the side holding one fixed node. So any violation is
//! a bug in the core or in its wiring (a decision over the wrong member set, a
//! stale flag after a configuration change, a lost or misrouted message).
//!
//! Those options (two_node by design, the others by lowering E) do let disjoint
//! partitions be quorate, so runs that use them must not be judged by this checker.

use super::{MAX_REPORTS, Violation, proc_name};
use crate::history::{EventKind, History, Observation, Process, RingId};
use crate::node::{NodeId, VTime};
use std::collections::BTreeMap;

const NAME: &str = "quorum_uniqueness";

/// A quorate belief: the ring, its counted members (sorted), since when.
struct Belief {
    ring: RingId,
    members: Vec<NodeId>,
    since: VTime,
}

/// Checks the property over a history.
pub fn check(h: &History) -> Vec<Violation> {
    let mut quorate: BTreeMap<Process, Belief> = BTreeMap::new();
    let mut v = Vec::new();
    for e in &h.events {
        let p: Process = (e.node, e.incarnation);
        match &e.kind {
            EventKind::Crash | EventKind::Leave => {
                quorate.remove(&p);
            }
            EventKind::Restart => {
                // Defensive: an earlier incarnation cannot act any more.
                quorate.retain(|q, _| q.0 != e.node || q.1 == e.incarnation);
            }
            EventKind::Observation(Observation::Quorum { quorate: false, .. }) => {
                quorate.remove(&p);
            }
            EventKind::Observation(Observation::Quorum {
                quorate: true,
                ring,
                members,
            }) => {
                let mut members = members.clone();
                members.sort_unstable();
                members.dedup();
                for (other, b) in &quorate {
                    if *other != p && disjoint(&members, &b.members) && v.len() < MAX_REPORTS {
                        v.push(Violation::new(
                            NAME,
                            format!(
                                "at {} ns {} quorate in ring {}.{} with {:?} while {} has been \
                                 quorate since {} ns in ring {}.{} with {:?} (disjoint)",
                                e.time,
                                proc_name(p),
                                ring.0,
                                ring.1,
                                members,
                                proc_name(*other),
                                b.since,
                                b.ring.0,
                                b.ring.1,
                                b.members
                            ),
                        ));
                    }
                }
                quorate.insert(
                    p,
                    Belief {
                        ring: *ring,
                        members,
                        since: e.time,
                    },
                );
            }
            _ => {}
        }
    }
    v
}

/// Two sorted lists share no element.
fn disjoint(a: &[NodeId], b: &[NodeId]) -> bool {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(h: &mut History, t: u64, n: NodeId, inc: u32, quorate: bool, ring: RingId, m: &[u32]) {
        h.observe(
            t,
            n,
            inc,
            Observation::Quorum {
                quorate,
                ring,
                members: m.to_vec(),
            },
        );
    }

    /// 5 nodes all quorate, then a 2|3 split.
    fn split() -> History {
        let mut h = History::new(vec![1, 2, 3, 4, 5]);
        for n in 1..=5 {
            q(&mut h, 10, n, 0, true, (1, 4), &[1, 2, 3, 4, 5]);
        }
        h
    }

    #[test]
    fn a_stale_majority_belief_overlapping_the_new_ring_is_fine() {
        let mut h = split();
        // 3, 4, 5 re-form; 1 and 2 have not noticed yet.
        for n in 3..=5 {
            q(&mut h, 20, n, 0, true, (3, 8), &[3, 4, 5]);
        }
        for n in 1..=2 {
            q(&mut h, 30, n, 0, false, (1, 12), &[1, 2]);
        }
        assert!(check(&h).is_empty(), "{:?}", check(&h));
    }

    #[test]
    fn disjoint_quorate_partitions_are_caught() {
        let mut h = split();
        for n in 3..=5 {
            q(&mut h, 20, n, 0, true, (3, 8), &[3, 4, 5]);
        }
        q(&mut h, 25, 1, 0, true, (1, 12), &[1, 2]);
        let v = check(&h);
        assert_eq!(v.len(), 3, "{v:?}");
        assert!(v[0].detail.contains("n1#0 quorate in ring 1.12"));
    }

    #[test]
    fn a_belief_ends_at_a_crash_or_leave_but_not_at_a_pause() {
        let mut h = History::new(vec![1, 2, 3]);
        q(&mut h, 10, 1, 0, true, (1, 4), &[1]);
        h.push(11, 1, 0, EventKind::Crash);
        q(&mut h, 12, 2, 0, true, (2, 8), &[2]);
        h.push(13, 2, 0, EventKind::Leave);
        q(&mut h, 14, 3, 0, true, (3, 9), &[3]);
        assert!(check(&h).is_empty());
        h.push(15, 3, 0, EventKind::Pause);
        h.push(16, 1, 1, EventKind::Restart);
        q(&mut h, 17, 1, 1, true, (1, 10), &[1]);
        assert_eq!(check(&h).len(), 1, "the paused n3 still believes");
    }

    #[test]
    fn losing_quorum_before_the_other_side_gains_it_is_fine() {
        let mut h = History::new(vec![1, 2]);
        q(&mut h, 10, 1, 0, true, (1, 4), &[1]);
        q(&mut h, 20, 1, 0, false, (1, 4), &[1]);
        q(&mut h, 20, 2, 0, true, (2, 8), &[2]);
        assert!(check(&h).is_empty());
        // The same instant in the other order overlaps (conservative).
        let mut h = History::new(vec![1, 2]);
        q(&mut h, 10, 1, 0, true, (1, 4), &[1]);
        q(&mut h, 20, 2, 0, true, (2, 8), &[2]);
        q(&mut h, 20, 1, 0, false, (1, 4), &[1]);
        assert_eq!(check(&h).len(), 1);
    }
}
