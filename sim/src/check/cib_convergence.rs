//! **CIB convergence**: once faults stop, the network heals and every node is
//! quiescent, every node's copy has the same exact digest (the service's state
//! exchange on the final configuration synced everyone to one copy).

use super::Violation;
use super::cib::observations;
use crate::history::{CibObservation, History};
use std::collections::BTreeMap;

const NAME: &str = "cib_convergence";

/// Checks that every running node ends quiescent with the same digest.
pub fn check(h: &History) -> Vec<Violation> {
    let mut last = BTreeMap::new();
    for (node, _, o) in observations(h) {
        if let CibObservation::State {
            digest, version, ..
        } = o
        {
            last.insert(node, (*digest, *version));
        }
    }
    let mut out = Vec::new();
    let mut first = None;
    for (node, status) in &h.final_status {
        // A node not running is the liveness checker's complaint.
        let Some(s) = status else { continue };
        if !s.quiescent {
            out.push(Violation::new(
                NAME,
                format!("n{node} is not quiescent at the end"),
            ));
        }
        let Some(&(digest, version)) = last.get(node) else {
            out.push(Violation::new(
                NAME,
                format!("n{node} reported no CIB state"),
            ));
            continue;
        };
        match first {
            None => first = Some((*node, digest, version)),
            Some((n0, d0, v0)) if d0 != digest => out.push(Violation::new(
                NAME,
                format!("n{node} ends with version {version:?}, n{n0} with {v0:?}: digests differ"),
            )),
            Some(_) => {}
        }
    }
    out
}
