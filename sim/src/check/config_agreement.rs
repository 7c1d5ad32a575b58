//! **Configuration agreement** (Totem TOCS 1995 §4, membership "Consensus" and
//! "Uniqueness"; EVS ICDCS 1994 "Configuration change consistency"): every process that
//! installs a configuration with a given identity installs the same member set; a
//! process is a member of every configuration it installs; and a process never
//! installs the same regular ring twice.

use super::{ConfKey, MAX_REPORTS, Timeline, Violation, proc_name, timelines};
use crate::history::{History, Process};
use crate::node::NodeId;
use std::collections::{BTreeMap, BTreeSet};

const NAME: &str = "config_agreement";

/// Checks that configuration identities determine their members.
pub fn check(h: &History) -> Vec<Violation> {
    check_timelines(&timelines(h))
}

pub(crate) fn check_timelines(tls: &[Timeline]) -> Vec<Violation> {
    let mut first: BTreeMap<ConfKey, (Process, Vec<NodeId>)> = BTreeMap::new();
    let mut out = Vec::new();
    let mut report = |v: Violation| {
        if out.len() < MAX_REPORTS {
            out.push(v);
        }
    };
    for t in tls {
        let mut regular_seen = BTreeSet::new();
        for c in &t.configs {
            if c.members.binary_search(&t.process.0).is_err() {
                report(Violation::new(
                    NAME,
                    format!(
                        "{} installed {} {:?} without itself",
                        proc_name(t.process),
                        c.key,
                        c.members
                    ),
                ));
            }
            if let ConfKey::Regular(r) = c.key
                && !regular_seen.insert(r)
            {
                report(Violation::new(
                    NAME,
                    format!("{} installed {} twice", proc_name(t.process), c.key),
                ));
            }
            match first.get(&c.key) {
                None => {
                    first.insert(c.key, (t.process, c.members.clone()));
                }
                Some((p, members)) if *members != c.members => report(Violation::new(
                    NAME,
                    format!(
                        "{} installed {} as {:?} but {} as {:?}",
                        proc_name(*p),
                        c.key,
                        members,
                        proc_name(t.process),
                        c.members
                    ),
                )),
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

    #[test]
    fn agreeing_members_pass() {
        let mut h = History::new(vec![1, 2]);
        reg(&mut h, 0, 1, (1, 4), &[1, 2]);
        reg(&mut h, 0, 2, (1, 4), &[2, 1]);
        assert!(check(&h).is_empty());
    }

    #[test]
    fn disagreement_is_reported() {
        let mut h = History::new(vec![1, 2, 3]);
        reg(&mut h, 0, 1, (1, 4), &[1, 2]);
        reg(&mut h, 0, 2, (1, 4), &[1, 2, 3]);
        let v = check(&h);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("REG 1.4"));
    }

    #[test]
    fn missing_self_and_reinstall_are_reported() {
        let mut h = History::new(vec![1, 2]);
        reg(&mut h, 0, 1, (1, 4), &[2]);
        reg(&mut h, 0, 1, (1, 4), &[2]);
        let v = check(&h);
        assert!(v.iter().any(|v| v.detail.contains("without itself")));
        assert!(v.iter().any(|v| v.detail.contains("twice")));
    }
}
