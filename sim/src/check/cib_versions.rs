//! **CIB versions never go back**: within one process (a node's incarnation),
//! every version it reports — after a request, a sync, or at start — is at least
//! the one before, ordered `(admin_epoch, epoch, num_updates)`. (A restart reads
//! the copy from disk, where `num_updates` is 0: a new process.)

use super::cib::observations;
use super::{MAX_REPORTS, Violation};
use crate::history::{CibObservation, History};
use std::collections::BTreeMap;

const NAME: &str = "cib_versions";

/// Checks per process that versions are non-decreasing.
pub fn check(h: &History) -> Vec<Violation> {
    let mut last = BTreeMap::new();
    let mut out = Vec::new();
    for (node, inc, o) in observations(h) {
        let v = match o {
            CibObservation::State { version, .. } | CibObservation::Applied { version, .. } => {
                *version
            }
            _ => continue,
        };
        if let Some(prev) = last.insert((node, inc), v)
            && v < prev
            && out.len() < MAX_REPORTS
        {
            out.push(Violation::new(
                NAME,
                format!("n{node}/{inc}: version went back from {prev:?} to {v:?}"),
            ));
        }
    }
    out
}
