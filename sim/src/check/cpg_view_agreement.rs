//! **Group view agreement** (virtual synchrony, "agreement on views"): every member
//! that installs a given group view (same group, same view id) sees the same member
//! list; members that move together from the same previous view see the same left
//! and joined lists, with the same reasons.

use super::cpg::{CpgHistory, Step, ViewStep, who};
use super::{MAX_REPORTS, Violation};
use crate::history::{CpgMember, CpgReason, CpgViewId, History};
use std::collections::BTreeMap;

const NAME: &str = "cpg_view_agreement";

type Lists = (Vec<(CpgMember, CpgReason)>, Vec<(CpgMember, CpgReason)>);
/// A view of a group: (group, view id).
type ViewKey<'a> = (&'a [u8], CpgViewId);
/// A view after a given previous view: (group, view, previous view, previous members).
type StepKey<'a> = (&'a [u8], CpgViewId, CpgViewId, &'a Vec<CpgMember>);

/// Checks view agreement over a history.
pub fn check(h: &History) -> Vec<Violation> {
    check_cpg(&CpgHistory::new(h))
}

pub(crate) fn check_cpg(c: &CpgHistory) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut members: BTreeMap<ViewKey, (&Vec<CpgMember>, String)> = BTreeMap::new();
    let mut lists: BTreeMap<StepKey, (Lists, String)> = BTreeMap::new();
    for t in &c.timelines {
        let mut prev: Option<&ViewStep> = None;
        for s in &t.steps {
            let Step::View(v) = s else { continue };
            match members.get(&(t.group.as_slice(), v.view)) {
                Some((m, first)) if *m != &v.members && out.len() < MAX_REPORTS => {
                    out.push(Violation::new(
                        NAME,
                        format!(
                            "view {}: {first} saw members {m:?}, {} saw {:?}",
                            v.view,
                            who(t),
                            v.members
                        ),
                    ))
                }
                Some(_) => {}
                None => {
                    members.insert((t.group.as_slice(), v.view), (&v.members, who(t)));
                }
            }
            if let Some(p) = prev.filter(|p| p.members.contains(&t.id())) {
                let mut l = (v.left.clone(), v.joined.clone());
                l.0.sort_unstable();
                l.1.sort_unstable();
                let key = (t.group.as_slice(), v.view, p.view, &p.members);
                match lists.get(&key) {
                    Some((other, first)) if *other != l && out.len() < MAX_REPORTS => {
                        out.push(Violation::new(
                            NAME,
                            format!(
                                "view {} after {}: {first} saw left/joined {other:?}, {} saw {l:?}",
                                v.view,
                                p.view,
                                who(t)
                            ),
                        ))
                    }
                    Some(_) => {}
                    None => {
                        lists.insert(key, (l, who(t)));
                    }
                }
            }
            prev = Some(v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::cpg::testutil::*;
    use crate::history::CpgReason::{Join, NodeUp};

    #[test]
    fn same_view_same_members_passes() {
        assert!(check(&two_members()).is_empty());
    }

    #[test]
    fn different_members_or_reasons_for_one_view_fail() {
        let mut h = two_members();
        view(&mut h, 3, 1, vid(2, 0), &[(2, 1)], &[], &[]);
        assert_eq!(check(&h).len(), 1);
        let mut h = two_members();
        // Same previous view, same new view, different reason.
        for (n, r) in [(1, Join), (2, NodeUp)] {
            view(
                &mut h,
                n,
                1,
                vid(3, 0),
                &[(1, 1), (2, 1), (3, 1)],
                &[],
                &[((3, 1), r)],
            );
        }
        assert_eq!(check(&h).len(), 1);
    }
}
