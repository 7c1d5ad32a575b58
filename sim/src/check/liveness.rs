//! **Liveness / membership convergence** (Totem TOCS 1995 §4, membership "Termination":
//! once failures stop and the network is connected, every correct processor installs
//! the same regular configuration containing all of them). At the end of the liveness
//! phase — partitions healed, paused nodes resumed, crashed nodes restarted, network
//! faults off — every node is running, operational, and reports one common ring whose
//! members are exactly all nodes.

use super::Violation;
use crate::history::History;

const NAME: &str = "liveness";

/// Checks that the cluster converged to one ring of all nodes.
pub fn check(h: &History) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut all = h.nodes.clone();
    all.sort_unstable();
    let mut common = None;
    for &n in &all {
        let Some((_, status)) = h.final_status.iter().find(|(id, _)| *id == n) else {
            out.push(Violation::new(
                NAME,
                format!("n{n}: no final status recorded"),
            ));
            continue;
        };
        let Some(s) = status else {
            out.push(Violation::new(
                NAME,
                format!("n{n} is not running at the end"),
            ));
            continue;
        };
        if !s.operational {
            out.push(Violation::new(
                NAME,
                format!("n{n} is not operational at the end (ring {:?})", s.ring),
            ));
            continue;
        }
        let mut members = s.members.clone();
        members.sort_unstable();
        members.dedup();
        if members != all {
            out.push(Violation::new(
                NAME,
                format!(
                    "n{n} ends in ring {:?} with members {:?}, expected {:?}",
                    s.ring, members, all
                ),
            ));
        }
        match (common, s.ring) {
            (_, None) => out.push(Violation::new(
                NAME,
                format!("n{n} is operational but reports no ring"),
            )),
            (None, Some(r)) => common = Some((n, r)),
            (Some((m, rm)), Some(r)) if rm != r => out.push(Violation::new(
                NAME,
                format!(
                    "n{m} ends in ring {}.{} but n{n} in ring {}.{}",
                    rm.0, rm.1, r.0, r.1
                ),
            )),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::NodeStatus;

    fn status(ring: (u32, u64), members: &[u32]) -> Option<NodeStatus> {
        Some(NodeStatus {
            operational: true,
            ring: Some(ring),
            members: members.to_vec(),
            quiescent: true,
        })
    }

    #[test]
    fn converged_cluster_passes() {
        let mut h = History::new(vec![1, 2]);
        h.final_status = vec![(1, status((1, 8), &[1, 2])), (2, status((1, 8), &[2, 1]))];
        assert!(check(&h).is_empty());
    }

    #[test]
    fn split_or_down_cluster_is_reported() {
        let mut h = History::new(vec![1, 2, 3]);
        h.final_status = vec![
            (1, status((1, 8), &[1, 2, 3])),
            (2, status((2, 8), &[1, 2, 3])),
            (3, None),
        ];
        let v = check(&h);
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(v.iter().any(|v| v.detail.contains("not running")));
        assert!(
            v.iter()
                .any(|v| v.detail.contains("n1 ends in ring 1.8 but n2"))
        );
    }
}
