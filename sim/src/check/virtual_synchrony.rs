//! **Virtual synchrony** (EVS ICDCS 1994, "Failure atomicity"; Totem TOCS 1995 §2):
//! if processes p and q both install configuration C and both install the same next
//! configuration C' after C, then p and q deliver the same set of messages while in C.
//! Applied to regular configurations (keyed by ring) and transitional ones (keyed by
//! old ring and new ring).

use super::{ConfKey, MAX_REPORTS, Timeline, Violation, proc_name, sample, timelines};
use crate::history::{History, MsgId, Process};
use std::collections::BTreeMap;

const NAME: &str = "virtual_synchrony";

/// Checks that processes moving together from C to C' delivered the same messages in C.
pub fn check(h: &History) -> Vec<Violation> {
    check_timelines(&timelines(h))
}

pub(crate) fn check_timelines(tls: &[Timeline]) -> Vec<Violation> {
    let mut first: BTreeMap<(ConfKey, ConfKey), (Process, Vec<MsgId>)> = BTreeMap::new();
    let mut out = Vec::new();
    for t in tls {
        let mut sets: Vec<Vec<MsgId>> = vec![Vec::new(); t.configs.len()];
        for d in &t.deliveries {
            if let Some(c) = d.config {
                sets[c].push(d.msg);
            }
        }
        for (i, set) in sets.iter_mut().enumerate() {
            let Some(next) = t.configs.get(i + 1) else {
                break;
            };
            set.sort_unstable();
            set.dedup();
            let key = (t.configs[i].key, next.key);
            match first.get(&key) {
                None => {
                    first.insert(key, (t.process, std::mem::take(set)));
                }
                Some((p, other)) if other != set => {
                    if out.len() < MAX_REPORTS {
                        let only_p: Vec<MsgId> = other
                            .iter()
                            .filter(|m| set.binary_search(m).is_err())
                            .copied()
                            .collect();
                        let only_q: Vec<MsgId> = set
                            .iter()
                            .filter(|m| other.binary_search(m).is_err())
                            .copied()
                            .collect();
                        out.push(Violation::new(
                            NAME,
                            format!(
                                "{} and {} both went {} -> {} but delivered different sets in {}: only {}: {}, only {}: {}",
                                proc_name(*p),
                                proc_name(t.process),
                                key.0,
                                key.1,
                                key.0,
                                proc_name(*p),
                                sample(&only_p),
                                proc_name(t.process),
                                sample(&only_q)
                            ),
                        ));
                    }
                }
                Some(_) => {}
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

    /// Nodes 1 and 2 in ring 1.4, node 2 delivers `extra` too, both move on to 1.8.
    fn two_rings(extra: bool, same_next: bool) -> History {
        let mut h = History::new(vec![1, 2]);
        for n in [1, 2] {
            reg(&mut h, 0, n, (1, 4), &[1, 2]);
            deliver(&mut h, 1, n, m(1, 1), Agreed);
        }
        if extra {
            deliver(&mut h, 1, 2, m(1, 2), Agreed);
        }
        trans(&mut h, 2, 1, (1, 8), (1, 4), &[1, 2]);
        let next = if same_next { (1, 8) } else { (2, 8) };
        trans(&mut h, 2, 2, next, (1, 4), &[1, 2]);
        h
    }

    #[test]
    fn same_sets_pass() {
        assert!(check(&two_rings(false, true)).is_empty());
    }

    #[test]
    fn different_next_configuration_is_not_constrained() {
        assert!(check(&two_rings(true, false)).is_empty());
    }

    #[test]
    fn different_sets_are_reported() {
        let v = check(&two_rings(true, true));
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("1:0:2"), "{}", v[0].detail);
    }
}
