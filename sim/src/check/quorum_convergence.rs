//! Quorum convergence: after the liveness phase, every running node's last quorum
//! state counts exactly the members of its final ring, and all of them agree on
//! whether the cluster is quorate.
//!
//! The liveness phase ends with every node up in one ring (the totem `liveness`
//! checker); the quorum state exchange of that ring must then have completed
//! everywhere with one answer. A node without any quorum observation in its last
//! incarnation is a violation too. (Which answer is right depends on the options;
//! the factory knows them, this checker does not.)

use super::{MAX_REPORTS, Violation};
use crate::history::{EventKind, History, Observation};
use crate::node::NodeId;
use std::collections::BTreeMap;

const NAME: &str = "quorum_convergence";

/// A node's latest incarnation and its last quorum state (quorate, sorted members).
type Last = (u32, Option<(bool, Vec<NodeId>)>);

/// Checks the property over a history.
pub fn check(h: &History) -> Vec<Violation> {
    // Each node's latest incarnation and its last quorum state in it.
    let mut last: BTreeMap<NodeId, Last> = BTreeMap::new();
    for e in &h.events {
        if matches!(e.kind, EventKind::PartitionChange { .. }) {
            continue;
        }
        let slot = last.entry(e.node).or_insert((e.incarnation, None));
        if e.incarnation > slot.0 {
            *slot = (e.incarnation, None);
        }
        if let EventKind::Observation(Observation::Quorum {
            quorate, members, ..
        }) = &e.kind
            && e.incarnation == slot.0
        {
            let mut m = members.clone();
            m.sort_unstable();
            m.dedup();
            slot.1 = Some((*quorate, m));
        }
    }
    let mut v = Vec::new();
    let mut answers: BTreeMap<bool, Vec<NodeId>> = BTreeMap::new();
    for (node, status) in &h.final_status {
        let Some(status) = status else { continue };
        let mut members = status.members.clone();
        members.sort_unstable();
        match last.get(node).and_then(|s| s.1.as_ref()) {
            None => v.push(Violation::new(
                NAME,
                format!("n{node} ended without any quorum state"),
            )),
            Some((quorate, m)) => {
                if *m != members {
                    v.push(Violation::new(
                        NAME,
                        format!(
                            "n{node}'s last quorum state counts {m:?}, its final ring has {members:?}"
                        ),
                    ));
                }
                answers.entry(*quorate).or_default().push(*node);
            }
        }
    }
    if answers.len() > 1 {
        v.push(Violation::new(
            NAME,
            format!("nodes disagree at the end: quorate {answers:?}"),
        ));
    }
    v.truncate(MAX_REPORTS);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::NodeStatus;

    fn ended(h: &mut History, members: &[NodeId]) {
        h.final_status = members
            .iter()
            .map(|&n| {
                let s = NodeStatus {
                    operational: true,
                    ring: Some((1, 9)),
                    members: members.to_vec(),
                    quiescent: true,
                };
                (n, Some(s))
            })
            .collect();
    }

    fn q(h: &mut History, n: NodeId, inc: u32, quorate: bool, m: &[NodeId]) {
        h.observe(
            5,
            n,
            inc,
            Observation::Quorum {
                quorate,
                ring: (1, 9),
                members: m.to_vec(),
            },
        );
    }

    #[test]
    fn agreement_on_the_final_ring_passes() {
        let mut h = History::new(vec![1, 2]);
        q(&mut h, 1, 0, true, &[2, 1]);
        q(&mut h, 2, 0, true, &[1, 2]);
        ended(&mut h, &[1, 2]);
        assert!(check(&h).is_empty(), "{:?}", check(&h));
    }

    #[test]
    fn disagreement_stale_members_and_silence_are_caught() {
        let mut h = History::new(vec![1, 2, 3]);
        q(&mut h, 1, 0, true, &[1, 2, 3]);
        q(&mut h, 2, 0, false, &[1, 2, 3]);
        q(&mut h, 3, 0, true, &[3]);
        h.push(6, 3, 1, EventKind::Restart);
        ended(&mut h, &[1, 2, 3]);
        let v = check(&h);
        let d: Vec<&str> = v.iter().map(|v| v.detail.as_str()).collect();
        assert_eq!(v.len(), 2, "{d:?}");
        assert!(d[0].contains("n3 ended without any quorum state"), "{d:?}");
        assert!(d[1].contains("disagree"), "{d:?}");
    }
}
