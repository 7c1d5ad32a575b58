//! **Group convergence** (liveness): once the cluster has settled in one ring of
//! every node, every live member's last view of a group is the same, and it is
//! exactly the set of live members (not failed, handle not dropped) whose own last
//! view contains them. With `cpg_departure_once` this makes each departure
//! (LEAVE, PROCDOWN, NODEDOWN) reported exactly once to each member that stays.

use super::cpg::{CpgHistory, Step, who};
use super::{MAX_REPORTS, Violation};
use crate::history::{CpgMember, History};
use std::collections::{BTreeMap, BTreeSet};

const NAME: &str = "cpg_convergence";

/// Checks convergence over a history.
pub fn check(h: &History) -> Vec<Violation> {
    check_cpg(h, &CpgHistory::new(h))
}

pub(crate) fn check_cpg(h: &History, c: &CpgHistory) -> Vec<Violation> {
    // Judge only a settled cluster: every node running, operational, in one ring of
    // all of them (otherwise `liveness` reports it).
    let mut ring = None;
    for (_, s) in &h.final_status {
        let Some(s) = s else { return Vec::new() };
        if !s.operational || !s.quiescent || s.members != h.nodes {
            return Vec::new();
        }
        if ring.is_some_and(|r| r != s.ring) {
            return Vec::new();
        }
        ring = Some(s.ring);
    }
    let mut out = Vec::new();
    let mut live: BTreeMap<&[u8], BTreeSet<CpgMember>> = BTreeMap::new();
    let mut last_views = Vec::new();
    for t in &c.timelines {
        if t.failed || t.went_down {
            continue;
        }
        let last = t.steps.iter().rev().find_map(|s| match s {
            Step::View(v) => Some(v),
            _ => None,
        });
        if let Some(v) = last.filter(|v| v.members.contains(&t.id())) {
            live.entry(t.group.as_slice()).or_default().insert(t.id());
            last_views.push((t, v));
        }
    }
    for (t, v) in last_views {
        let expect = &live[t.group.as_slice()];
        let have: BTreeSet<CpgMember> = v.members.iter().copied().collect();
        if &have != expect && out.len() < MAX_REPORTS {
            out.push(Violation::new(
                NAME,
                format!(
                    "{} ends with view {} members {:?}, live members are {:?}",
                    who(t),
                    v.view,
                    v.members,
                    expect
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::cpg::testutil::*;
    use crate::node::NodeStatus;

    fn settled(mut h: History) -> History {
        let status = NodeStatus {
            operational: true,
            ring: Some((1, 9)),
            members: vec![1, 2],
            quiescent: true,
        };
        h.final_status = vec![(1, Some(status.clone())), (2, Some(status))];
        h
    }

    #[test]
    fn agreeing_final_views_pass_and_a_missed_departure_fails() {
        assert!(check(&settled(two_members())).is_empty());
        let mut h = two_members();
        // Node 2's member leaves; node 1's member never hears of it.
        view(
            &mut h,
            2,
            1,
            vid(2, 1),
            &[(1, 1)],
            &[((2, 1), crate::history::CpgReason::Leave)],
            &[],
        );
        assert_eq!(check(&settled(h)).len(), 1);
    }
}
