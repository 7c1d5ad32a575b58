//! **Departures reported exactly once**: each view a member receives follows from
//! its previous one — `members = previous − left + joined`, only previous members
//! leave, only non-members join (a restarted node's members may do both at once) —
//! so no member is reported gone twice, or gone without having been there. Reasons
//! must match what happened: PROCDOWN only for a dropped handle, LEAVE only for a
//! member that left (or was dropped), JOIN only for one that joined. That every
//! departure is reported at least once is `cpg_convergence`.

use super::cpg::{CpgHistory, Req, Step, ViewStep, who};
use super::{MAX_REPORTS, Violation};
use crate::history::{CpgReason, History};
use std::collections::BTreeSet;

const NAME: &str = "cpg_departure_once";

/// Checks the departure bookkeeping over a history.
pub fn check(h: &History) -> Vec<Violation> {
    check_cpg(&CpgHistory::new(h))
}

pub(crate) fn check_cpg(c: &CpgHistory) -> Vec<Violation> {
    let mut out = Vec::new();
    let report = |out: &mut Vec<Violation>, s: String| {
        if out.len() < MAX_REPORTS {
            out.push(Violation::new(NAME, s));
        }
    };
    for t in &c.timelines {
        let mut prev: Option<&ViewStep> = None;
        for s in &t.steps {
            let Step::View(v) = s else { continue };
            for (m, r) in &v.left {
                let ok = match r {
                    CpgReason::ProcDown => c.requested(*m, &t.group, Req::Down),
                    CpgReason::Leave => {
                        c.requested(*m, &t.group, Req::Leave)
                            || c.requested(*m, &t.group, Req::Down)
                    }
                    _ => true,
                };
                if !ok {
                    report(
                        &mut out,
                        format!(
                            "{} saw {m:?} leave with {r:?} in {}, which it never asked",
                            who(t),
                            v.view
                        ),
                    );
                }
            }
            for (m, r) in &v.joined {
                if *r == CpgReason::Join && !c.requested(*m, &t.group, Req::Join) {
                    report(
                        &mut out,
                        format!("{} saw {m:?} JOIN in {} without a join", who(t), v.view),
                    );
                }
            }
            if let Some(p) = prev.filter(|p| p.members.contains(&t.id())) {
                let before: BTreeSet<_> = p.members.iter().copied().collect();
                let left: BTreeSet<_> = v.left.iter().map(|(m, _)| *m).collect();
                let joined: BTreeSet<_> = v.joined.iter().map(|(m, _)| *m).collect();
                let ghosts: Vec<_> = left.difference(&before).collect();
                let again: Vec<_> = joined
                    .iter()
                    .filter(|m| before.contains(m) && !left.contains(m))
                    .collect();
                let expect: BTreeSet<_> = before
                    .difference(&left)
                    .copied()
                    .chain(joined.iter().copied())
                    .collect();
                let now: BTreeSet<_> = v.members.iter().copied().collect();
                if !ghosts.is_empty() || !again.is_empty() || expect != now {
                    report(
                        &mut out,
                        format!(
                            "{} view {} after {}: previous {:?}, left {:?}, joined {:?}, members {:?}",
                            who(t),
                            v.view,
                            p.view,
                            p.members,
                            v.left,
                            v.joined,
                            v.members
                        ),
                    );
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
    use crate::history::CpgReason::{Leave, NodeDown, ProcDown};
    use crate::history::CpgRequest;

    #[test]
    fn consistent_departures_pass() {
        let mut h = two_members();
        view(
            &mut h,
            1,
            1,
            vid(0, 0),
            &[(1, 1)],
            &[((2, 1), NodeDown)],
            &[],
        );
        assert!(check(&h).is_empty());
    }

    #[test]
    fn a_second_departure_fails() {
        let mut h = two_members();
        view(
            &mut h,
            1,
            1,
            vid(0, 0),
            &[(1, 1)],
            &[((2, 1), NodeDown)],
            &[],
        );
        view(
            &mut h,
            1,
            1,
            vid(0, 1),
            &[(1, 1)],
            &[((2, 1), NodeDown)],
            &[],
        );
        assert_eq!(check(&h).len(), 1);
    }

    #[test]
    fn a_reason_that_did_not_happen_fails() {
        let mut h = two_members();
        view(
            &mut h,
            1,
            1,
            vid(2, 1),
            &[(1, 1)],
            &[((2, 1), ProcDown)],
            &[],
        );
        assert_eq!(check(&h).len(), 1);
        let mut h = two_members();
        request(&mut h, 2, 1, CpgRequest::Leave);
        view(&mut h, 1, 1, vid(2, 1), &[(1, 1)], &[((2, 1), Leave)], &[]);
        assert!(check(&h).is_empty());
    }
}
