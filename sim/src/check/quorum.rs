//! The checker set for nodes that run votequorum over totem: the totem checkers
//! plus [`quorum_uniqueness`](super::quorum_uniqueness),
//! [`quorum_currency`](super::quorum_currency) and
//! [`quorum_convergence`](super::quorum_convergence).

use super::Violation;
use crate::history::History;

/// Runs the totem and the quorum checkers.
pub fn all(h: &History) -> Vec<Violation> {
    let mut v = super::all(h);
    v.extend(super::quorum_uniqueness::check(h));
    v.extend(super::quorum_currency::check(h));
    v.extend(super::quorum_convergence::check(h));
    v
}
