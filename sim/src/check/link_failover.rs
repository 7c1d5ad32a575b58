//! **Link fail-over is invisible to membership** (the promise of redundant links,
//! Corosync's knet/RRP): on a network that neither loses, partitions, crashes nor
//! pauses — only single links cut in one direction while another link of that path
//! survives, and adversarial datagrams — once every node is in one configuration of
//! all nodes, no node installs another configuration.
//!
//! Applies only to runs whose history says `quiet_network`; vacuous otherwise.

use super::{MAX_REPORTS, Timeline, Violation, proc_name};
use crate::history::{ConfigKind, History};

const NAME: &str = "link_failover";

/// Checks a quiet run.
pub fn check(h: &History) -> Vec<Violation> {
    check_timelines(h, &super::timelines(h))
}

pub(crate) fn check_timelines(h: &History, tls: &[Timeline]) -> Vec<Violation> {
    if !h.quiet_network {
        return Vec::new();
    }
    let mut all = h.nodes.clone();
    all.sort_unstable();
    let mut out = Vec::new();
    for t in tls.iter().filter(|t| !t.failed) {
        let Some(full) = t
            .configs
            .iter()
            .position(|c| c.kind == ConfigKind::Regular && c.members == all)
        else {
            continue;
        };
        if let Some(c) = t.configs.get(full + 1)
            && out.len() < MAX_REPORTS
        {
            out.push(Violation::new(
                NAME,
                format!(
                    "{} left the full ring {}.{} for {:?} ring {}.{} {:?} with only single links cut",
                    proc_name(t.process),
                    t.configs[full].ring.0,
                    t.configs[full].ring.1,
                    c.kind,
                    c.ring.0,
                    c.ring.1,
                    c.members
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::timelines;
    use crate::history::{EventKind, Observation};

    fn config(h: &mut History, t: u64, node: u32, kind: ConfigKind, seq: u64, members: &[u32]) {
        h.push(
            t,
            node,
            0,
            EventKind::Observation(Observation::Config {
                kind,
                ring: (1, seq),
                old_ring: None,
                members: members.to_vec(),
            }),
        );
    }

    #[test]
    fn a_change_after_the_full_ring_on_a_quiet_network_is_caught() {
        let mut h = History::new(vec![1, 2]);
        h.quiet_network = true;
        config(&mut h, 1, 1, ConfigKind::Regular, 4, &[1, 2]);
        config(&mut h, 2, 1, ConfigKind::Transitional, 8, &[1]);
        config(&mut h, 3, 1, ConfigKind::Regular, 8, &[1]);
        let v = check_timelines(&h, &timelines(&h));
        assert_eq!(v.len(), 1, "{v:?}");
        // The same history on a faulty network is no violation.
        h.quiet_network = false;
        assert!(check_timelines(&h, &timelines(&h)).is_empty());
    }

    #[test]
    fn forming_the_full_ring_through_smaller_ones_is_fine() {
        let mut h = History::new(vec![1, 2]);
        h.quiet_network = true;
        config(&mut h, 1, 1, ConfigKind::Regular, 4, &[1]);
        config(&mut h, 2, 1, ConfigKind::Transitional, 8, &[1]);
        config(&mut h, 3, 1, ConfigKind::Regular, 8, &[1, 2]);
        assert!(check_timelines(&h, &timelines(&h)).is_empty());
    }
}
