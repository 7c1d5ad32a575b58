//! The judge: the simulator's checkers, unchanged, over the history of real
//! processes — every totem (EVS) checker, every CPG checker, and the quorum
//! checkers `quorum_uniqueness` and `quorum_convergence`.
//!
//! Not `quorum_currency`: it judges a process's quorum belief at the instant
//! the process installs a configuration, because the Stack reports both while
//! handling one input. `phalanxd` relays configurations (its event loop) and
//! quorum notifications (a thread of their own) separately, so a real history
//! cannot tell which came first within one driver step — the checker would
//! flag the relay's lag, not the protocol. Judging it needs the driver to
//! order the two streams (e.g. one sequence number across both).

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
];

/// The violations found in a run's history.
pub fn judge(loaded: &Loaded) -> Vec<Violation> {
    let h = &loaded.history;
    // The totem checkers and the CPG checkers (cpg::all runs both).
    let mut v = check::cpg::all(h);
    v.extend(check::quorum_uniqueness::check(h));
    v.extend(check::quorum_convergence::check(h));
    v
}
