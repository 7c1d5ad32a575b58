//! Quorum currency: once a process has installed a configuration, it does not keep
//! claiming quorum with nodes outside it.
//!
//! Totem tells a process its partition shrank by delivering a transitional (then a
//! regular) configuration; votequorum must then decide again from the members it
//! still has, or drop its claim. So after the Stack has handled the input that
//! installed configuration C, the process's quorate belief (its last
//! [`Observation::Quorum`], as in [`quorum_uniqueness`](super::quorum_uniqueness))
//! counts only members of C.
//!
//! The Stack reports a configuration and the quorum state it causes while handling
//! one input, at one virtual time, so the check for a configuration installed at
//! time t is made at the process's next event after t (or at the end of the run).
//! Crashes and leaves end the belief; a pause does not — and needs no exemption:
//! a paused process installs nothing. This is what keeps a stale belief from
//! outliving what its own process knows; `quorum_uniqueness` then bounds what a
//! stale belief may overlap.

use super::{MAX_REPORTS, Violation, proc_name};
use crate::history::{EventKind, History, Observation, Process, RingId};
use crate::node::{NodeId, VTime};
use std::collections::BTreeMap;

const NAME: &str = "quorum_currency";

#[derive(Default)]
struct State {
    /// The quorate belief: ring and counted members (sorted).
    belief: Option<(RingId, Vec<NodeId>)>,
    /// A configuration installed at this time, not checked yet: its ring and members.
    pending: Option<(VTime, RingId, Vec<NodeId>)>,
}

/// Checks the property over a history.
pub fn check(h: &History) -> Vec<Violation> {
    let mut procs: BTreeMap<Process, State> = BTreeMap::new();
    let mut v = Vec::new();
    for e in &h.events {
        if matches!(e.kind, EventKind::PartitionChange { .. }) {
            continue;
        }
        let p: Process = (e.node, e.incarnation);
        let s = procs.entry(p).or_default();
        if s.pending.as_ref().is_some_and(|c| c.0 < e.time) {
            judge(p, s, &mut v);
        }
        match &e.kind {
            EventKind::Crash | EventKind::Leave => *s = State::default(),
            EventKind::Observation(Observation::Config { ring, members, .. }) => {
                let mut m = members.clone();
                m.sort_unstable();
                m.dedup();
                s.pending = Some((e.time, *ring, m));
            }
            EventKind::Observation(Observation::Quorum {
                quorate,
                ring,
                members,
            }) => {
                s.belief = quorate.then(|| {
                    let mut m = members.clone();
                    m.sort_unstable();
                    m.dedup();
                    (*ring, m)
                });
            }
            _ => {}
        }
    }
    for (p, s) in procs.iter_mut() {
        judge(*p, s, &mut v);
    }
    v.truncate(MAX_REPORTS);
    v
}

/// Checks `s`'s pending configuration against its belief.
fn judge(p: Process, s: &mut State, v: &mut Vec<Violation>) {
    let (Some((t, ring, config)), Some((qring, members))) = (s.pending.take(), &s.belief) else {
        return;
    };
    let outside: Vec<NodeId> = members
        .iter()
        .filter(|m| config.binary_search(m).is_err())
        .copied()
        .collect();
    if !outside.is_empty() {
        v.push(Violation::new(
            NAME,
            format!(
                "{} installed ring {}.{} {config:?} at {t} ns but still claims quorum \
                 (ring {}.{}) counting {outside:?}",
                proc_name(p),
                ring.0,
                ring.1,
                qring.0,
                qring.1
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testutil::{reg, trans};

    fn q(h: &mut History, t: u64, n: NodeId, quorate: bool, ring: RingId, m: &[u32]) {
        h.observe(
            t,
            n,
            0,
            Observation::Quorum {
                quorate,
                ring,
                members: m.to_vec(),
            },
        );
    }

    #[test]
    fn a_claim_must_follow_the_configuration() {
        let mut h = History::new(vec![1, 2, 3]);
        reg(&mut h, 10, 1, (1, 4), &[1, 2, 3]);
        q(&mut h, 10, 1, true, (1, 4), &[1, 2, 3]);
        // Node 3 is gone: the same input re-decides over the transitional members.
        trans(&mut h, 20, 1, (1, 8), (1, 4), &[1, 2]);
        q(&mut h, 20, 1, true, (1, 4), &[1, 2]);
        reg(&mut h, 21, 1, (1, 8), &[1, 2]);
        q(&mut h, 22, 1, true, (1, 8), &[1, 2]);
        assert!(check(&h).is_empty(), "{:?}", check(&h));
        // Then node 2 goes, and the claim stays.
        trans(&mut h, 30, 1, (1, 12), (1, 8), &[1]);
        reg(&mut h, 31, 1, (1, 12), &[1]);
        let v = check(&h);
        // One per configuration installed with the stale claim.
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(v[0].detail.contains("ring 1.12 [1] at 30 ns"), "{v:?}");
        assert!(v[0].detail.contains("counting [2]"), "{v:?}");
    }

    #[test]
    fn an_inquorate_or_crashed_process_claims_nothing() {
        let mut h = History::new(vec![1, 2]);
        reg(&mut h, 10, 1, (1, 4), &[1, 2]);
        q(&mut h, 10, 1, true, (1, 4), &[1, 2]);
        trans(&mut h, 20, 1, (1, 8), (1, 4), &[1]);
        q(&mut h, 20, 1, false, (1, 4), &[1]);
        reg(&mut h, 30, 2, (2, 8), &[2]);
        q(&mut h, 30, 2, true, (2, 8), &[2]);
        h.push(40, 2, 0, EventKind::Crash);
        assert!(check(&h).is_empty(), "{:?}", check(&h));
    }
}
