//! The arbitrator's algorithms as pure functions: which partition gets the vote.

use crate::NodeId;
use crate::config::{Algorithm, TieBreaker};
use phalanx_totem::RingId;
use std::cmp::Ordering;
use std::collections::BTreeSet;

/// A node's heuristics result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Heuristics {
    /// Not run, or no heuristics configured.
    #[default]
    Undefined,
    /// Every command exited 0 within its timeout.
    Pass,
    /// Some command failed or timed out.
    Fail,
    /// Commands are running for the reported membership; the arbitrator waits for
    /// the result before deciding (bounded by the node's heuristics timeout).
    Pending,
}

/// One partition as the arbitrator sees it: the ring its connected members report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// Its ring.
    pub ring: RingId,
    /// Its members (from the reports), ascending.
    pub members: BTreeSet<NodeId>,
    /// The members connected to the arbitrator, with their heuristics results.
    pub connected: Vec<(NodeId, Heuristics)>,
}

impl Partition {
    /// connected + heuristics passed − heuristics failed.
    pub fn score(&self) -> i64 {
        let mut s = self.connected.len() as i64;
        for (_, h) in &self.connected {
            match h {
                Heuristics::Pass => s += 1,
                Heuristics::Fail => s -= 1,
                Heuristics::Undefined | Heuristics::Pending => {}
            }
        }
        s
    }
}

/// Compares two partitions by the tie-breaker: `Greater` means `a` wins.
fn tie_break(tb: &TieBreaker, a: &Partition, b: &Partition) -> Ordering {
    match tb {
        TieBreaker::Lowest => b.members.first().cmp(&a.members.first()),
        TieBreaker::Highest => a.members.last().cmp(&b.members.last()),
        TieBreaker::Nodes(list) => {
            for n in list {
                match (a.members.contains(n), b.members.contains(n)) {
                    (true, false) => return Ordering::Greater,
                    (false, true) => return Ordering::Less,
                    _ => {}
                }
            }
            b.members.first().cmp(&a.members.first())
        }
    }
}

/// Which partition gets the vote, if any.
///
/// - **ffsplit**: only a partition with more than half of the configured nodes, or
///   exactly half when the count is even; then the larger, the higher score, the more
///   connected clients, the one holding members of the previous holder partition
///   (keep-active), the tie-breaker.
/// - **lms**: any partition with a connected client; the higher score, the larger,
///   keep-active, the tie-breaker. A single node that still sees the arbitrator wins.
///
/// Partitions are assumed disjoint (the server checks reports are consistent first).
pub fn choose<'a>(
    algorithm: Algorithm,
    parts: &'a [Partition],
    config_nodes: usize,
    tb: &TieBreaker,
    previous_holders: &BTreeSet<NodeId>,
) -> Option<&'a Partition> {
    let keep = |p: &Partition| p.members.iter().any(|m| previous_holders.contains(m));
    let eligible = |p: &&Partition| {
        !p.connected.is_empty()
            && match algorithm {
                Algorithm::Ffsplit => {
                    let s = p.members.len() * 2;
                    s > config_nodes || (s == config_nodes && config_nodes % 2 == 0)
                }
                Algorithm::Lms => true,
            }
    };
    parts.iter().filter(eligible).max_by(|a, b| {
        let primary = match algorithm {
            Algorithm::Ffsplit => a
                .members
                .len()
                .cmp(&b.members.len())
                .then(a.score().cmp(&b.score()))
                .then(a.connected.len().cmp(&b.connected.len())),
            Algorithm::Lms => a
                .score()
                .cmp(&b.score())
                .then(a.members.len().cmp(&b.members.len())),
        };
        primary
            .then(keep(a).cmp(&keep(b)))
            .then_with(|| tie_break(tb, a, b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(seq: u64, members: &[NodeId], connected: &[(NodeId, Heuristics)]) -> Partition {
        Partition {
            ring: RingId {
                seq,
                rep: members[0],
            },
            members: members.iter().copied().collect(),
            connected: connected.to_vec(),
        }
    }

    use Heuristics::{Fail, Pass, Undefined as U};

    #[test]
    fn ffsplit_table() {
        let none = BTreeSet::new();
        let a = |h1, h2| part(1, &[1, 2], &[(1, h1), (2, h2)]);
        let b = |h3, h4| part(2, &[3, 4], &[(3, h3), (4, h4)]);
        // (parts, tie-breaker, previous holders, expected winner ring seq)
        type Row = (Vec<Partition>, TieBreaker, BTreeSet<NodeId>, Option<u64>);
        let rows: Vec<Row> = vec![
            (
                vec![a(U, U), b(U, U)],
                TieBreaker::Lowest,
                none.clone(),
                Some(1),
            ),
            (
                vec![a(U, U), b(U, U)],
                TieBreaker::Highest,
                none.clone(),
                Some(2),
            ),
            (
                vec![a(U, U), b(U, U)],
                TieBreaker::Nodes(vec![4]),
                none.clone(),
                Some(2),
            ),
            (
                vec![a(U, U), b(U, U)],
                TieBreaker::Nodes(vec![9, 2]),
                none.clone(),
                Some(1),
            ),
            // heuristics outweigh the tie-breaker
            (
                vec![a(Fail, U), b(U, U)],
                TieBreaker::Lowest,
                none.clone(),
                Some(2),
            ),
            (
                vec![a(U, U), b(Pass, U)],
                TieBreaker::Lowest,
                none.clone(),
                Some(2),
            ),
            // more connected clients
            (
                vec![part(1, &[1, 2], &[(1, U)]), b(U, U)],
                TieBreaker::Lowest,
                none.clone(),
                Some(2),
            ),
            // keep-active beats the tie-breaker
            (
                vec![a(U, U), b(U, U)],
                TieBreaker::Lowest,
                [3].into(),
                Some(2),
            ),
            // 3 of 4 wins whatever the tie-breaker
            (
                vec![part(1, &[1], &[(1, Pass)]), part(2, &[2, 3, 4], &[(2, U)])],
                TieBreaker::Lowest,
                none.clone(),
                Some(2),
            ),
            // 1/1/2 of 4: the half wins, quarters never
            (
                vec![part(1, &[1], &[(1, U)]), part(2, &[2], &[(2, U)])],
                TieBreaker::Lowest,
                none.clone(),
                None,
            ),
            // odd cluster: half is not enough
            (
                vec![part(1, &[1], &[(1, U)]), part(2, &[2, 3], &[(2, U)])],
                TieBreaker::Lowest,
                none.clone(),
                Some(2),
            ),
        ];
        for (i, (parts, tb, prev, want)) in rows.into_iter().enumerate() {
            let n = if i == 10 { 3 } else { 4 };
            let got = choose(Algorithm::Ffsplit, &parts, n, &tb, &prev).map(|p| p.ring.seq);
            assert_eq!(got, want, "row {i}");
        }
        // 2 of 5 is never enough under ffsplit
        let p = [part(1, &[1, 2], &[(1, U)])];
        assert!(choose(Algorithm::Ffsplit, &p, 5, &TieBreaker::Lowest, &none).is_none());
    }

    #[test]
    fn lms_table() {
        let none = BTreeSet::new();
        // a single node that sees the arbitrator wins
        let p = [part(1, &[3], &[(3, U)])];
        assert_eq!(
            choose(Algorithm::Lms, &p, 4, &TieBreaker::Lowest, &none).map(|p| p.ring.seq),
            Some(1)
        );
        // even split: tie-breaker
        let p = [
            part(1, &[1, 2], &[(1, U), (2, U)]),
            part(2, &[3, 4], &[(3, U), (4, U)]),
        ];
        assert_eq!(
            choose(Algorithm::Lms, &p, 4, &TieBreaker::Lowest, &none).map(|p| p.ring.seq),
            Some(1)
        );
        assert_eq!(
            choose(Algorithm::Lms, &p, 4, &TieBreaker::Highest, &none).map(|p| p.ring.seq),
            Some(2)
        );
        // heuristics beat size in lms
        let p = [
            part(1, &[1, 2, 3], &[(1, Fail), (2, Fail), (3, Fail)]),
            part(2, &[4], &[(4, Pass)]),
        ];
        assert_eq!(
            choose(Algorithm::Lms, &p, 4, &TieBreaker::Lowest, &none).map(|p| p.ring.seq),
            Some(2)
        );
        // no connected client, no vote
        let p = [part(1, &[1, 2], &[])];
        assert!(choose(Algorithm::Lms, &p, 4, &TieBreaker::Lowest, &none).is_none());
    }
}
