//! The CIB layer's checkers, run together on a history whose nodes host the CIB
//! replication service and report [`CibObservation`]s.
//!
//! - [`cib_convergence`]: after heal and quiescence every node holds the same copy;
//! - [`cib_acked_kept`]: an acknowledged change is never lost silently (with
//!   quorum required, never lost at all);
//! - [`cib_versions`]: a copy's version never goes back within a process;
//! - [`cib_apply_order`]: within a configuration, members apply the same requests
//!   in the same order with the same results.

use super::{Violation, cib_acked_kept, cib_apply_order, cib_convergence, cib_versions};
use crate::history::{CibObservation, EventKind, History, Observation};
use crate::node::NodeId;

/// Runs the totem checkers and every CIB checker.
pub fn all(h: &History) -> Vec<Violation> {
    let mut v = super::all(h);
    v.extend(cib_convergence::check(h));
    v.extend(cib_acked_kept::check(h));
    v.extend(cib_versions::check(h));
    v.extend(cib_apply_order::check(h));
    v
}

/// As [`all`], for nodes whose CIB takes writes only with quorum: an acknowledged
/// change may not be lost even with a divergence report
/// ([`cib_acked_kept::check_quorate`] instead of [`cib_acked_kept::check`]).
pub fn all_with_quorum(h: &History) -> Vec<Violation> {
    let mut v = super::all(h);
    v.extend(cib_convergence::check(h));
    v.extend(cib_acked_kept::check_quorate(h));
    v.extend(cib_versions::check(h));
    v.extend(cib_apply_order::check(h));
    v
}

/// The CIB observations of a history in order, with who made them.
pub(crate) fn observations(
    h: &History,
) -> impl Iterator<Item = (NodeId, u32, &CibObservation)> + '_ {
    h.events.iter().filter_map(|e| match &e.kind {
        EventKind::Observation(Observation::Cib(o)) => Some((e.node, e.incarnation, o)),
        _ => None,
    })
}
