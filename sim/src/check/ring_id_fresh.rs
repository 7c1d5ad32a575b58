//! **Ring identity freshness** (Totem TOCS 1995 §4: the ring sequence number is
//! kept on stable storage so that ring identifiers are unique): a restarted node
//! never installs a regular configuration whose ring id one of its earlier
//! incarnations installed. This is what persisting the ring sequence before the
//! commit token leaves buys; a node whose write failed must stop rather than go on.

use super::{MAX_REPORTS, Timeline, Violation, proc_name};
use crate::history::{ConfigKind, RingId};
use crate::node::NodeId;
use std::collections::{BTreeMap, BTreeSet};

const NAME: &str = "ring_id_fresh";

pub(crate) fn check_timelines(tls: &[Timeline]) -> Vec<Violation> {
    // Timelines are ordered by (node, incarnation): earlier incarnations first.
    let mut seen: BTreeMap<NodeId, BTreeSet<RingId>> = BTreeMap::new();
    let mut out = Vec::new();
    for t in tls {
        let earlier = seen.entry(t.process.0).or_default();
        let mut mine = BTreeSet::new();
        for c in t.configs.iter().filter(|c| c.kind == ConfigKind::Regular) {
            if earlier.contains(&c.ring) && out.len() < MAX_REPORTS {
                out.push(Violation::new(
                    NAME,
                    format!(
                        "{} installed ring {}.{}, which an earlier incarnation of node {} installed",
                        proc_name(t.process),
                        c.ring.0,
                        c.ring.1,
                        t.process.0
                    ),
                ));
            }
            mine.insert(c.ring);
        }
        earlier.extend(mine);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::timelines;
    use crate::history::{EventKind, History, Observation};

    fn install(h: &mut History, t: u64, node: NodeId, inc: u32, ring: RingId) {
        h.push(
            t,
            node,
            inc,
            EventKind::Observation(Observation::Config {
                kind: ConfigKind::Regular,
                ring,
                old_ring: None,
                members: vec![1, 2],
            }),
        );
    }

    #[test]
    fn a_ring_id_installed_again_after_a_restart_is_caught() {
        let mut h = History::new(vec![1, 2]);
        install(&mut h, 1, 1, 0, (1, 4));
        h.push(2, 1, 0, EventKind::Crash);
        h.push(3, 1, 1, EventKind::Restart);
        install(&mut h, 4, 1, 1, (1, 4));
        let v = check_timelines(&timelines(&h));
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].property, NAME);
    }

    #[test]
    fn fresh_ring_ids_pass() {
        let mut h = History::new(vec![1, 2]);
        install(&mut h, 1, 1, 0, (1, 4));
        h.push(2, 1, 0, EventKind::Crash);
        h.push(3, 1, 1, EventKind::Restart);
        install(&mut h, 4, 1, 1, (1, 8));
        install(&mut h, 5, 2, 0, (1, 4));
        assert!(check_timelines(&timelines(&h)).is_empty());
    }
}
