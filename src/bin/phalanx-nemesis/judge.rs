//! The judge: the simulator's checkers, unchanged, over the history of real
//! processes — every totem (EVS) checker, every CPG checker, and the quorum
//! checkers `quorum_uniqueness`, `quorum_convergence` and `quorum_currency`.
//!
//! `quorum_currency` judges a process's quorum belief once the Stack has
//! handled the input that installed a configuration, because the Stack reports
//! both while handling one input. `phalanxd` relays configurations (its event
//! loop) and quorum notifications (a thread of their own) separately, so their
//! order in its output is not the Stack's; both lines carry the node driver's
//! step, and the history puts each notification where its step says
//! ([`step_order`](crate::step_order)) — so the checker judges the protocol,
//! not the relay's lag.

use crate::history::Loaded;
use phalanx_sim::check;
use phalanx_sim::check::Violation;

/// Every checker that judges a run (for the verdict line). `link_failover` runs
/// too but judges only quiet networks, which a nemesis run never is.
pub const CHECKERS: &[&str] = &[
    "agreed_order",
    "virtual_synchrony",
    "self_delivery",
    "no_duplication",
    "config_agreement",
    "safe_delivery",
    "transitional_order",
    "ring_id_fresh",
    "liveness",
    "cpg_view_agreement",
    "cpg_group_order",
    "cpg_integrity",
    "cpg_self_delivery",
    "cpg_departure_once",
    "cpg_no_delivery_before_join",
    "cpg_convergence",
    "quorum_uniqueness",
    "quorum_convergence",
    "quorum_currency",
];

/// The violations found in a run's history.
pub fn judge(loaded: &Loaded) -> Vec<Violation> {
    let h = &loaded.history;
    // The totem checkers and the CPG checkers (cpg::all runs both).
    let mut v = check::cpg::all(h);
    v.extend(check::quorum_uniqueness::check(h));
    v.extend(check::quorum_convergence::check(h));
    v.extend(check::quorum_currency::check(h));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run of one process, node 1 of 3, that sees nodes 3 then 2 go: its
    /// `config` lines (each shrink a transitional and a regular configuration
    /// of one step, the first with a delivery between them), then its `quorum`
    /// lines as the relay printed them — each after the next configuration's
    /// line. `shrink_step`: the step stamped on the decision over ring 1.8's
    /// members.
    fn run(name: &str, shrink_step: u64) -> Loaded {
        let dir = std::env::temp_dir().join(format!("nemesis-judge-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let lines = |t: &str| -> String { t.lines().map(|l| format!("{}\n", l.trim())).collect() };
        let w = |file: &str, text: String| std::fs::write(dir.join(file), text).unwrap();
        w(
            crate::record::FILE,
            lines(
                "1000 start nodes=3 seed=1 wall_ns=0
                 1001 spawn node=1 inc=0 clock=0
                 9000 end",
            ),
        );
        w(
            "n1.0.events",
            lines(&format!(
                "2000 config kind=regular ring=1.4 prev=- members=1,2,3 joined=1,2,3 left=- step=3
                 2010 quorum quorate=1 ring=1.4 members=1,2,3 step=3
                 3000 config kind=transitional ring=1.8 prev=1.4 members=1,2 joined=- left=3 step=10
                 3001 deliver from=2 guarantee=agreed len=21 inc=0 seq=0 intact=1 count=1 order=1
                 3002 config kind=regular ring=1.8 prev=- members=1,2 joined=- left=3 step=10
                 4000 config kind=transitional ring=1.12 prev=1.8 members=1 joined=- left=2 step=20
                 4001 config kind=regular ring=1.12 prev=- members=1 joined=- left=2 step=20
                 4100 quorum quorate=1 ring=1.8 members=1,2 step={shrink_step}
                 4200 quorum quorate=0 ring=1.12 members=1 step=20"
            )),
        );
        let loaded = crate::history::load(&dir).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        loaded
    }

    fn currency(l: &Loaded) -> Vec<Violation> {
        judge(l)
            .into_iter()
            .filter(|v| v.property == "quorum_currency")
            .collect()
    }

    #[test]
    fn a_decision_relayed_after_the_next_configuration_counts_for_its_own_step() {
        let l = run("late", 10);
        assert_eq!(l.counts.quorum, 3);
        assert!(currency(&l).is_empty(), "{:?}", currency(&l));
        // It is placed with ring 1.8, before ring 1.12; each step's lines at
        // the instant of its first configuration (times from the start, 1000).
        let order: Vec<String> = l
            .history
            .events
            .iter()
            .filter_map(|e| match &e.kind {
                phalanx_sim::history::EventKind::Observation(
                    phalanx_sim::history::Observation::Quorum { ring, .. }
                    | phalanx_sim::history::Observation::Config { ring, .. },
                ) => Some(format!("{}@{}", ring.1, e.time)),
                _ => None,
            })
            .collect();
        assert_eq!(
            order,
            [
                "4@1000", "4@1000", "8@2000", "8@2000", "8@2000", "12@3000", "12@3000", "12@3000"
            ]
        );
    }

    #[test]
    fn a_stale_claim_past_the_configuration_step_is_still_a_violation() {
        // The same lines, but the decision over ring 1.8's members came a step
        // later: after ring 1.8 was installed the process still claimed quorum
        // counting node 3 — what the checker exists to catch.
        let l = run("stale", 11);
        let v = currency(&l);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("installed ring 1.8 [1, 2]"), "{v:?}");
        assert!(v[0].detail.contains("counting [3]"), "{v:?}");
    }
}
