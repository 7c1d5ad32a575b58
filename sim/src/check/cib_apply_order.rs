//! **CIB apply order**: within one configuration, members apply requests in one
//! order with the same results. Precisely, for every two members of a ring:
//!
//! - the requests both applied come in the same relative order (totem's agreed
//!   order; a member cut off may skip the messages of members it lost, as extended
//!   virtual synchrony allows in the transitional configuration);
//! - while their sequences are equal, every request gives both the same version
//!   and digest (the service is deterministic: same inputs, same state).

use super::cib::observations;
use super::{MAX_REPORTS, Violation};
use crate::history::{CibObservation, CibVersion, History, MsgId, RingId};
use std::collections::BTreeMap;

const NAME: &str = "cib_apply_order";

type Applied = (MsgId, CibVersion, String);
type Process = (u32, u32);

/// Checks every pair of members of every ring.
pub fn check(h: &History) -> Vec<Violation> {
    let mut per_ring: BTreeMap<RingId, BTreeMap<Process, Vec<Applied>>> = BTreeMap::new();
    for (node, inc, o) in observations(h) {
        if let CibObservation::Applied {
            ring,
            op,
            version,
            digest,
        } = o
        {
            per_ring
                .entry(*ring)
                .or_default()
                .entry((node, inc))
                .or_default()
                .push((*op, *version, digest.clone()));
        }
    }
    let mut out = Vec::new();
    for (ring, members) in &per_ring {
        let members: Vec<_> = members.iter().collect();
        for (i, (p, a)) in members.iter().enumerate() {
            for (q, b) in &members[i + 1..] {
                if let Some(detail) = compare(a, b) {
                    if out.len() < MAX_REPORTS {
                        out.push(Violation::new(
                            NAME,
                            format!(
                                "ring {ring:?}, n{}/{} vs n{}/{}: {detail}",
                                p.0, p.1, q.0, q.1
                            ),
                        ));
                    }
                }
            }
        }
    }
    out
}

/// What is wrong between two members' sequences, if anything.
fn compare(a: &[Applied], b: &[Applied]) -> Option<String> {
    // Same requests so far: same results.
    for (k, (x, y)) in a.iter().zip(b).enumerate() {
        if x.0 != y.0 {
            break;
        }
        if x != y {
            return Some(format!("request #{k} {:?} gave {x:?} and {y:?}", x.0));
        }
    }
    // Common requests in the same relative order.
    let index: BTreeMap<MsgId, usize> = a.iter().enumerate().map(|(k, x)| (x.0, k)).collect();
    let mut last: Option<(usize, MsgId)> = None;
    for y in b {
        if let Some(&k) = index.get(&y.0) {
            if let Some((prev, prev_op)) = last
                && k <= prev
            {
                return Some(format!(
                    "{prev_op:?} and {:?} applied in opposite orders",
                    y.0
                ));
            }
            last = Some((k, y.0));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(sender: u32, seq: u64) -> Applied {
        let id = MsgId {
            sender,
            incarnation: 0,
            seq,
        };
        (id, (0, seq as i64, 0), format!("d{sender}.{seq}"))
    }

    #[test]
    fn skipped_messages_of_a_lost_member_are_allowed_reordering_is_not() {
        let a = [op(6, 0), op(1, 0), op(2, 0)];
        let b = [op(6, 0), op(2, 0)];
        assert_eq!(compare(&a, &b), None);
        let c = [op(2, 0), op(6, 0)];
        assert!(compare(&a, &c).is_some());
        let mut d = a.to_vec();
        d[1].2 = "other".into();
        assert!(compare(&a, &d).is_some(), "same request, different result");
    }
}
