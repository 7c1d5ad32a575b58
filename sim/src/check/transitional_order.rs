//! **Transitional configurations** (EVS ICDCS 1994, "Configuration changes" and
//! "Transitional set"; Totem TOCS 1995 §5 recovery): each process alternates regular and
//! transitional configurations. After regular C comes a transitional configuration
//! leaving C (its old ring is C's ring) whose members are a subset of C's, and then the
//! regular configuration of the transitional's new ring, whose members include all of
//! the transitional's. A process's first configuration is regular. Messages delivered
//! in a transitional configuration were sent by its members.

use super::{MAX_REPORTS, Violation, proc_name, timelines};
use crate::history::{ConfigKind, History};

const NAME: &str = "transitional_order";

fn subset(a: &[u32], b: &[u32]) -> bool {
    a.iter().all(|x| b.binary_search(x).is_ok())
}

/// Checks the regular/transitional alternation and the transitional delivery rule.
pub fn check(h: &History) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut report = |v: Violation| {
        if out.len() < MAX_REPORTS {
            out.push(v);
        }
    };
    for t in timelines(h) {
        let p = proc_name(t.process);
        if let Some(c) = t.configs.first()
            && c.kind == ConfigKind::Transitional
        {
            report(Violation::new(
                NAME,
                format!("{p}'s first configuration is transitional: {}", c.key),
            ));
        }
        for c in &t.configs {
            if c.kind == ConfigKind::Transitional && c.old_ring.is_none() {
                report(Violation::new(
                    NAME,
                    format!("{p} installed {} without an old ring", c.key),
                ));
            }
        }
        for w in t.configs.windows(2) {
            let (prev, cur) = (&w[0], &w[1]);
            match (prev.kind, cur.kind) {
                (ConfigKind::Regular, ConfigKind::Transitional) => {
                    if cur.old_ring != Some(prev.ring) {
                        report(Violation::new(
                            NAME,
                            format!(
                                "{p} went from {} to {}, which leaves another ring",
                                prev.key, cur.key
                            ),
                        ));
                    } else if !subset(&cur.members, &prev.members) {
                        report(Violation::new(
                            NAME,
                            format!(
                                "{p}: transitional {} members {:?} not within {} members {:?}",
                                cur.key, cur.members, prev.key, prev.members
                            ),
                        ));
                    }
                }
                (ConfigKind::Transitional, ConfigKind::Regular) => {
                    if cur.ring != prev.ring {
                        report(Violation::new(
                            NAME,
                            format!(
                                "{p} went from {} to {}, a different ring",
                                prev.key, cur.key
                            ),
                        ));
                    } else if !subset(&prev.members, &cur.members) {
                        report(Violation::new(
                            NAME,
                            format!(
                                "{p}: regular {} members {:?} miss transitional members {:?}",
                                cur.key, cur.members, prev.members
                            ),
                        ));
                    }
                }
                _ => report(Violation::new(
                    NAME,
                    format!(
                        "{p} went from {} to {} without alternating",
                        prev.key, cur.key
                    ),
                )),
            }
        }
        if let Some((d, c)) = t.deliveries.iter().find_map(|d| {
            let c = t.configs.get(d.config?)?;
            (c.kind == ConfigKind::Transitional && c.members.binary_search(&d.msg.sender).is_err())
                .then_some((d, c))
        }) {
            report(Violation::new(
                NAME,
                format!(
                    "{p} delivered {} in {} {:?}, but its sender is not a member",
                    d.msg, c.key, c.members
                ),
            ));
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
    fn proper_alternation_passes() {
        let mut h = History::new(vec![1, 2, 3]);
        reg(&mut h, 0, 1, (1, 4), &[1, 2, 3]);
        deliver(&mut h, 1, 1, m(3, 1), Agreed);
        trans(&mut h, 2, 1, (1, 8), (1, 4), &[1, 2]);
        deliver(&mut h, 3, 1, m(2, 1), Agreed);
        reg(&mut h, 4, 1, (1, 8), &[1, 2, 4]);
        assert!(check(&h).is_empty());
    }

    #[test]
    fn skipped_transitional_is_reported() {
        let mut h = History::new(vec![1, 2]);
        reg(&mut h, 0, 1, (1, 4), &[1, 2]);
        reg(&mut h, 1, 1, (1, 8), &[1, 2]);
        let v = check(&h);
        assert_eq!(v.len(), 1);
        assert!(v[0].detail.contains("without alternating"));
    }

    #[test]
    fn wrong_old_ring_superset_and_foreign_sender_are_reported() {
        let mut h = History::new(vec![1, 2, 3]);
        reg(&mut h, 0, 1, (1, 4), &[1, 2]);
        trans(&mut h, 1, 1, (1, 8), (1, 5), &[1]);
        let v = check(&h);
        assert!(v[0].detail.contains("leaves another ring"), "{v:?}");

        let mut h = History::new(vec![1, 2, 3]);
        reg(&mut h, 0, 1, (1, 4), &[1, 2]);
        trans(&mut h, 1, 1, (1, 8), (1, 4), &[1, 3]);
        assert!(check(&h)[0].detail.contains("not within"));

        let mut h = History::new(vec![1, 2]);
        reg(&mut h, 0, 1, (1, 4), &[1, 2]);
        trans(&mut h, 1, 1, (1, 8), (1, 4), &[1]);
        deliver(&mut h, 2, 1, m(2, 1), Agreed);
        assert!(check(&h)[0].detail.contains("not a member"));
    }
}
