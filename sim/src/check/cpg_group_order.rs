//! **Group total order**: the members of a group deliver its messages in one
//! order. Every member's delivery sequence must be a subsequence of a single total
//! order: the "delivered before" edges of all members form no cycle.

use super::cpg::{CpgHistory, Step};
use super::{MAX_REPORTS, Violation, sample};
use crate::history::{History, MsgId};
use std::collections::BTreeMap;

const NAME: &str = "cpg_group_order";

/// One group's messages (dense index) and "delivered right before" edges.
type OrderGraph = (BTreeMap<MsgId, usize>, Vec<(usize, usize)>);

/// Checks group order over a history.
pub fn check(h: &History) -> Vec<Violation> {
    check_cpg(&CpgHistory::new(h))
}

pub(crate) fn check_cpg(c: &CpgHistory) -> Vec<Violation> {
    let mut out = Vec::new();
    // Per group: message index, edges between consecutive deliveries.
    let mut groups: BTreeMap<&[u8], OrderGraph> = BTreeMap::new();
    for t in &c.timelines {
        let (index, edges) = groups.entry(t.group.as_slice()).or_default();
        let mut last: Option<usize> = None;
        for s in &t.steps {
            if let Step::Deliver { msg, .. } = s {
                let n = index.len();
                let i = *index.entry(*msg).or_insert(n);
                if let Some(l) = last {
                    if l != i {
                        edges.push((l, i));
                    }
                }
                last = Some(i);
            }
        }
    }
    for (group, (index, edges)) in groups {
        let n = index.len();
        let mut indegree = vec![0usize; n];
        let mut adj: Vec<Vec<usize>> = vec![Vec::new(); n];
        for &(a, b) in &edges {
            adj[a].push(b);
            indegree[b] += 1;
        }
        let mut ready: Vec<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
        let mut done = 0;
        while let Some(i) = ready.pop() {
            done += 1;
            for &j in &adj[i] {
                indegree[j] -= 1;
                if indegree[j] == 0 {
                    ready.push(j);
                }
            }
        }
        if done < n && out.len() < MAX_REPORTS {
            let ids: Vec<MsgId> = index
                .iter()
                .filter(|(_, i)| indegree[**i] > 0)
                .map(|(m, _)| *m)
                .collect();
            out.push(Violation::new(
                NAME,
                format!(
                    "group {}: members delivered messages in conflicting orders, among {}",
                    group.escape_ascii(),
                    sample(&ids)
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Observation;

    fn deliver(h: &mut History, node: u32, receiver: u32, seq: u64) {
        h.observe(
            0,
            node,
            0,
            Observation::CpgDeliver {
                group: b"g".to_vec(),
                receiver,
                sender: (1, 1),
                msg: MsgId {
                    sender: 1,
                    incarnation: 0,
                    seq,
                },
                intact: true,
            },
        );
    }

    #[test]
    fn same_order_passes_and_swapped_order_fails() {
        let mut h = History::new(vec![1, 2]);
        for s in [1, 2, 3] {
            deliver(&mut h, 1, 1, s);
        }
        for s in [1, 3] {
            deliver(&mut h, 2, 5, s);
        }
        assert!(check(&h).is_empty());
        deliver(&mut h, 2, 6, 3);
        deliver(&mut h, 2, 6, 2);
        assert_eq!(check(&h).len(), 1);
    }
}
