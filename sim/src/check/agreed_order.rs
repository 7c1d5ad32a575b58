//! **Agreed order** (EVS "Total order"; Totem TOCS 1995 §2, "Delivery in agreed order"):
//! messages are delivered in one total order, so for any two processes p and q and any
//! messages m1, m2 that both deliver, p delivers m1 before m2 iff q does.
//!
//! Checked per pair of processes: p's delivery sequence restricted to the messages q
//! also delivered, mapped to q's delivery positions, must be strictly increasing.

use super::{MAX_REPORTS, MsgIndex, Timeline, Violation, proc_name, timelines};
use crate::history::History;

const NAME: &str = "agreed_order";
const NONE: u32 = u32::MAX;

/// Checks agreed (total) order across all pairs of processes.
pub fn check(h: &History) -> Vec<Violation> {
    check_timelines(&timelines(h))
}

pub(crate) fn check_timelines(tls: &[Timeline]) -> Vec<Violation> {
    let idx = MsgIndex::new(tls);
    // Position of each message in each process's delivery sequence (first delivery
    // only: duplicates are the no-duplication checker's business).
    let mut seqs: Vec<Vec<u32>> = Vec::with_capacity(tls.len());
    let mut pos: Vec<Vec<u32>> = Vec::with_capacity(tls.len());
    for t in tls {
        let mut p = vec![NONE; idx.len()];
        let mut s = Vec::with_capacity(t.deliveries.len());
        for d in &t.deliveries {
            let i = idx.get(&d.msg);
            if p[i] == NONE {
                p[i] = s.len() as u32;
                s.push(i as u32);
            }
        }
        seqs.push(s);
        pos.push(p);
    }
    let mut out = Vec::new();
    for a in 0..tls.len() {
        for b in a + 1..tls.len() {
            let mut last: Option<(u32, u32)> = None; // (msg, position in b)
            for &m in &seqs[a] {
                let pb = pos[b][m as usize];
                if pb == NONE {
                    continue;
                }
                if let Some((prev, prev_pos)) = last
                    && pb < prev_pos
                {
                    if out.len() < MAX_REPORTS {
                        let (m1, m2) = (idx.id(prev as usize), idx.id(m as usize));
                        out.push(Violation::new(
                            NAME,
                            format!(
                                "{} delivered {} before {}, {} delivered them in the opposite order",
                                proc_name(tls[a].process),
                                m1,
                                m2,
                                proc_name(tls[b].process)
                            ),
                        ));
                    }
                    break;
                }
                last = Some((m, pb));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testutil::*;
    use crate::history::Guarantee::Agreed;

    #[test]
    fn same_order_passes() {
        let h = healthy(&[1, 2, 3], &[m(1, 1), m(2, 1), m(1, 2)]);
        assert!(check(&h).is_empty());
    }

    #[test]
    fn partial_overlap_in_order_passes() {
        let mut h = History::new(vec![1, 2]);
        for msg in [m(1, 1), m(1, 2), m(1, 3)] {
            deliver(&mut h, 1, 1, msg, Agreed);
        }
        for msg in [m(1, 1), m(1, 3)] {
            deliver(&mut h, 1, 2, msg, Agreed);
        }
        assert!(check(&h).is_empty());
    }

    #[test]
    fn swapped_order_is_reported() {
        let mut h = History::new(vec![1, 2]);
        deliver(&mut h, 1, 1, m(1, 1), Agreed);
        deliver(&mut h, 1, 1, m(2, 1), Agreed);
        deliver(&mut h, 1, 2, m(2, 1), Agreed);
        deliver(&mut h, 1, 2, m(1, 1), Agreed);
        let v = check(&h);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].property, "agreed_order");
        assert!(
            v[0].detail.contains("1:0:1 before 2:0:1"),
            "{}",
            v[0].detail
        );
    }
}
