//! **Safe delivery** (EVS ICDCS 1994, "Safe delivery"; Totem TOCS 1995 §2 "Delivery in
//! safe order"): if any process delivers m as safe while in configuration C, then every
//! member of C delivers m unless it fails — in C itself or, when C is regular, in the
//! transitional configuration that follows C.
//!
//! Members of C are node ids; the process held to the promise is the incarnation of that
//! node which installed C. A member whose process never installed C is not judged here
//! (it must have failed first, and configuration agreement is another checker's job).

use super::{ConfKey, MAX_REPORTS, MsgIndex, Timeline, Violation, proc_name, timelines};
use crate::history::{ConfigKind, Guarantee, History, MsgId};
use std::collections::{BTreeMap, BTreeSet};

const NAME: &str = "safe_delivery";

/// Checks that a safe delivery anywhere implies delivery at every surviving member.
pub fn check(h: &History) -> Vec<Violation> {
    check_timelines(&timelines(h))
}

pub(crate) fn check_timelines(tls: &[Timeline]) -> Vec<Violation> {
    let idx = MsgIndex::new(tls);
    // Who installed each configuration: (timeline index, config index).
    let mut installed: BTreeMap<ConfKey, Vec<(usize, usize)>> = BTreeMap::new();
    for (ti, t) in tls.iter().enumerate() {
        for (ci, c) in t.configs.iter().enumerate() {
            installed.entry(c.key).or_default().push((ti, ci));
        }
    }
    // Messages each process delivered in each of its configurations (dense ids, sorted).
    let per_config: Vec<Vec<Vec<usize>>> = tls
        .iter()
        .map(|t| {
            let mut v = vec![Vec::new(); t.configs.len()];
            for d in &t.deliveries {
                if let Some(c) = d.config {
                    v[c].push(idx.get(&d.msg));
                }
            }
            for s in &mut v {
                s.sort_unstable();
            }
            v
        })
        .collect();
    let mut done: BTreeSet<(ConfKey, MsgId)> = BTreeSet::new();
    let mut out = Vec::new();
    for (ti, t) in tls.iter().enumerate() {
        for d in &t.deliveries {
            let (Guarantee::Safe, Some(ci)) = (d.guarantee, d.config) else {
                continue;
            };
            let conf = &t.configs[ci];
            if !done.insert((conf.key, d.msg)) {
                continue;
            }
            let dense = idx.get(&d.msg);
            for &(qi, qc) in installed.get(&conf.key).map(Vec::as_slice).unwrap_or(&[]) {
                let q = &tls[qi];
                if q.failed || conf.members.binary_search(&q.process.0).is_err() {
                    continue;
                }
                let in_c = per_config[qi][qc].binary_search(&dense).is_ok();
                let in_trans = conf.kind == ConfigKind::Regular
                    && q.configs
                        .get(qc + 1)
                        .is_some_and(|n| n.kind == ConfigKind::Transitional)
                    && per_config[qi][qc + 1].binary_search(&dense).is_ok();
                if !in_c && !in_trans && out.len() < MAX_REPORTS {
                    out.push(Violation::new(
                        NAME,
                        format!(
                            "{} delivered {} as safe in {}, but member {} (not failed) never delivered it there",
                            proc_name(tls[ti].process),
                            d.msg,
                            conf.key,
                            proc_name(q.process)
                        ),
                    ));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testutil::*;
    use crate::history::{EventKind, Guarantee::Safe};

    #[test]
    fn everyone_delivers_passes() {
        assert!(check(&healthy(&[1, 2, 3], &[m(1, 1), m(2, 1)])).is_empty());
    }

    #[test]
    fn delivery_in_following_transitional_passes() {
        let mut h = History::new(vec![1, 2]);
        reg(&mut h, 0, 1, (1, 4), &[1, 2]);
        reg(&mut h, 0, 2, (1, 4), &[1, 2]);
        deliver(&mut h, 1, 1, m(1, 1), Safe);
        trans(&mut h, 2, 2, (2, 8), (1, 4), &[2]);
        deliver(&mut h, 3, 2, m(1, 1), Safe);
        assert!(check(&h).is_empty());
    }

    #[test]
    fn missing_member_is_reported_unless_failed() {
        let mut h = History::new(vec![1, 2]);
        reg(&mut h, 0, 1, (1, 4), &[1, 2]);
        reg(&mut h, 0, 2, (1, 4), &[1, 2]);
        deliver(&mut h, 1, 1, m(1, 1), Safe);
        let v = check(&h);
        assert_eq!(v.len(), 1);
        assert!(v[0].detail.contains("n2#0"), "{}", v[0].detail);
        h.push(5, 2, 0, EventKind::Crash);
        assert!(check(&h).is_empty());
    }
}
