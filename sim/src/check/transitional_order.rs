//! **Transitional configurations** (EVS ICDCS 1994, "Configuration changes" and
//! "Transitional set"; Totem TOCS 1995 §5 recovery): each process alternates regular and
//! transitional configurations. After regular C comes a transitional configuration
//! leaving C (its old ring is C's ring) whose members are a subset of C's, and then the
//! regular configuration of the transitional's new ring, whose members include all of
//! the transitional's. A process's first configuration is regular.
//!
//! Delivery rule (EVS: a message is delivered in the configuration in which it was
//! sent or in the transitional configuration that follows it): a message delivered in
//! a regular configuration was sent by one of its members, and one delivered in a
//! transitional configuration by a member of the regular configuration it leaves. Not
//! necessarily by a transitional member: delivering the old ring's messages from
//! processors that have since failed is exactly what transitional configurations are
//! for (Totem TOCS 1995 §5).

use super::{MAX_REPORTS, Timeline, Violation, proc_name, timelines};
use crate::history::{ConfigKind, History};

const NAME: &str = "transitional_order";

fn subset(a: &[u32], b: &[u32]) -> bool {
    a.iter().all(|x| b.binary_search(x).is_ok())
}

/// Checks the regular/transitional alternation and the transitional delivery rule.
pub fn check(h: &History) -> Vec<Violation> {
    check_timelines(&timelines(h))
}

pub(crate) fn check_timelines(tls: &[Timeline]) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut report = |v: Violation| {
        if out.len() < MAX_REPORTS {
            out.push(v);
        }
    };
    for t in tls {
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
        // The configuration a delivered message was sent in: the regular configuration
        // itself, or for a transitional one the regular configuration it leaves.
        let origin = |ci: usize| {
            let c = &t.configs[ci];
            match c.kind {
                ConfigKind::Regular => Some(c),
                ConfigKind::Transitional => {
                    ci.checked_sub(1).map(|pi| &t.configs[pi]).filter(|prev| {
                        prev.kind == ConfigKind::Regular && Some(prev.ring) == c.old_ring
                    })
                }
            }
        };
        if let Some((d, ci, o)) = t.deliveries.iter().find_map(|d| {
            let ci = d.config?;
            let o = origin(ci)?;
            o.members
                .binary_search(&d.msg.sender)
                .is_err()
                .then_some((d, ci, o))
        }) {
            report(Violation::new(
                NAME,
                format!(
                    "{p} delivered {} in {}, but its sender is not a member of {} {:?}",
                    d.msg, t.configs[ci].key, o.key, o.members
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
        // Node 3 failed out of ring 1.4, but its old-ring message is still delivered.
        deliver(&mut h, 3, 1, m(3, 2), Agreed);
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

        let mut h = History::new(vec![1, 2, 3]);
        reg(&mut h, 0, 1, (1, 4), &[1, 2]);
        trans(&mut h, 1, 1, (1, 8), (1, 4), &[1]);
        deliver(&mut h, 2, 1, m(3, 1), Agreed);
        assert!(
            check(&h)[0].detail.contains("not a member of REG 1.4"),
            "{:?}",
            check(&h)
        );

        let mut h = History::new(vec![1, 2, 3]);
        reg(&mut h, 0, 1, (1, 4), &[1, 2]);
        deliver(&mut h, 1, 1, m(3, 1), Agreed);
        assert!(check(&h)[0].detail.contains("not a member of REG 1.4"));
    }
}
