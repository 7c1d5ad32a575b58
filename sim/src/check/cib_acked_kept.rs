//! **No acknowledged CIB change lost silently**: a marker object whose creation
//! was acknowledged to a client is, at the end, in every running node's copy, or in
//! a divergence report (a sync discarded the partition's changes, and said so), or
//! every process that ever held it crashed or left before the end (what was on no
//! disk and in no running copy is gone — Pacemaker's contract too).
//!
//! Without quorum the service gives the copy with the highest version the win,
//! whatever the partition sizes (Pacemaker's rule), so a quorate partition's
//! changes can be discarded by a merge; what [`check`] verifies is that such a loss
//! is always reported. With `require_quorum` every acknowledgement is given in a
//! quorate configuration, and [`check_quorate`] (`cib_quorate_kept`) allows no
//! loss at all: a divergence report does not excuse it.

use super::cib::observations;
use super::{MAX_REPORTS, Violation};
use crate::history::{CibObservation, EventKind, History, MsgId};
use std::collections::{BTreeMap, BTreeSet};

const NAME: &str = "cib_acked_kept";
const NAME_QUORATE: &str = "cib_quorate_kept";

/// Checks every acknowledged marker against the final copies and the reports.
pub fn check(h: &History) -> Vec<Violation> {
    check_with(h, true)
}

/// For nodes whose CIB takes writes only with quorum: every acknowledged marker
/// is in every running node's final copy, unless every process that held it
/// ended (a divergence report is no excuse).
pub fn check_quorate(h: &History) -> Vec<Violation> {
    check_with(h, false)
}

fn check_with(h: &History, reports_excuse: bool) -> Vec<Violation> {
    let name = if reports_excuse { NAME } else { NAME_QUORATE };
    let mut acked: BTreeMap<&str, MsgId> = BTreeMap::new();
    let mut reported: BTreeSet<&str> = BTreeSet::new();
    let mut final_markers: BTreeMap<u32, &[String]> = BTreeMap::new();
    // Processes that held each marker (in a reported state) or applied its request.
    let mut holders: BTreeMap<&str, BTreeSet<(u32, u32)>> = BTreeMap::new();
    let mut applied_by: BTreeMap<MsgId, BTreeSet<(u32, u32)>> = BTreeMap::new();
    for (node, inc, o) in observations(h) {
        match o {
            CibObservation::Acked {
                op,
                marker: Some(m),
            } => {
                acked.insert(m, *op);
            }
            CibObservation::State { markers, .. } => {
                for m in markers {
                    holders.entry(m).or_default().insert((node, inc));
                }
                final_markers.insert(node, markers);
            }
            CibObservation::Applied { op, .. } => {
                applied_by.entry(*op).or_default().insert((node, inc));
            }
            CibObservation::Divergence { markers } => {
                reported.extend(markers.iter().map(String::as_str));
            }
            CibObservation::Acked { marker: None, .. } => {}
        }
    }
    let ended: BTreeSet<(u32, u32)> = h
        .events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Crash | EventKind::Leave))
        .map(|e| (e.node, e.incarnation))
        .collect();
    let running: Vec<u32> = h
        .final_status
        .iter()
        .filter(|(_, s)| s.is_some())
        .map(|(n, _)| *n)
        .collect();
    let mut out = Vec::new();
    for (m, op) in &acked {
        if reports_excuse && reported.contains(m) {
            continue;
        }
        let missing: Vec<u32> = running
            .iter()
            .copied()
            .filter(|n| {
                final_markers
                    .get(n)
                    .is_none_or(|ms| ms.binary_search_by(|x| x.as_str().cmp(m)).is_err())
            })
            .collect();
        if missing.is_empty() {
            continue;
        }
        let mut held: BTreeSet<(u32, u32)> = holders.get(m).cloned().unwrap_or_default();
        held.extend(applied_by.get(op).into_iter().flatten());
        if held.iter().all(|p| ended.contains(p)) {
            continue;
        }
        if out.len() < MAX_REPORTS {
            let report = if reported.contains(m) {
                "discarded at a merge (reported)"
            } else {
                "in no divergence report"
            };
            out.push(Violation::new(
                name,
                format!(
                    "marker {m} (request {op:?}) was acknowledged, is missing on {missing:?}, \
                     {report}; held by {held:?}"
                ),
            ));
        }
    }
    out
}
