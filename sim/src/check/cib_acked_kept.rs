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
//! loss but the one `docs/cib-service.md` § Quorum states: a divergence report
//! does not excuse it.
//!
//! The crash gap (seeds 1058 and 1328 of the swarm). An acknowledgement is given
//! once the change is applied in the quorate configuration `R`, before any node
//! has it on disk. The argument that it survives needs every later quorate
//! configuration `R'` to contain a process that holds it; when every node of `R'`
//! that was in `R` ended (crashed with the write failed or not yet done, or left
//! before applying it) and came back from a disk without it, `R'` is a quorate
//! lineage newer than the change and wins every later merge against it — even
//! against a process that read the change from its own disk meanwhile. That is
//! the documented limit ("if the nodes joining `R` and `R'` all crashed before
//! writing `c` to disk the overlap is lost"), and the issue's property is about a
//! partition that *keeps* quorum, which `R` did not. So a loss is excused exactly
//! when such an `R'` exists: sequence above `R`'s, a majority of the nodes (one
//! vote each, as the swarm configures votequorum), writable with quorum (some
//! member reported [`CibObservation::Writable`]), every member's process known,
//! none of them having held the change before it joined `R'`, and every node in
//! both `R` and `R'` a later process in `R'` than in `R` (it ended in between). A
//! lineage that drops a change some member of `R'` held, or that a process of `R`
//! which stayed up never applied, is still caught.

use super::cib::observations;
use super::{MAX_REPORTS, Violation};
use crate::history::{CibObservation, ConfigKind, EventKind, History, MsgId, Observation, RingId};
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
            CibObservation::Acked { marker: None, .. } | CibObservation::Writable { .. } => {}
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
    let mut gap: Option<CrashGap> = None;
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
        if !reports_excuse
            && gap
                .get_or_insert_with(|| CrashGap::of(h))
                .excuses(m, op)
                .is_some()
        {
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

/// What the crash-gap excuse needs from a history (see the module docs).
struct CrashGap<'h> {
    /// Regular configurations: members, and the process of each member that
    /// reported it with the index of that event.
    rings: BTreeMap<RingId, RingSeen<'h>>,
    /// Configurations some member reported writable in.
    writable: BTreeSet<RingId>,
    /// The configuration each request was applied in by the process that made it.
    ack_ring: BTreeMap<MsgId, RingId>,
    /// Per process and marker, the first event at which it held the marker
    /// (in a reported state, or by applying the request that created it).
    first_held: BTreeMap<((u32, u32), &'h str), usize>,
    /// Nodes in the run.
    nodes: usize,
}

#[derive(Default)]
struct RingSeen<'h> {
    members: &'h [u32],
    joined: BTreeMap<u32, ((u32, u32), usize)>,
}

impl<'h> CrashGap<'h> {
    fn of(h: &'h History) -> Self {
        let mut marker_of: BTreeMap<MsgId, &str> = BTreeMap::new();
        for (_, _, o) in observations(h) {
            if let CibObservation::Acked {
                op,
                marker: Some(m),
            } = o
            {
                marker_of.insert(*op, m);
            }
        }
        let mut g = CrashGap {
            rings: BTreeMap::new(),
            writable: BTreeSet::new(),
            ack_ring: BTreeMap::new(),
            first_held: BTreeMap::new(),
            nodes: h.nodes.len(),
        };
        for (i, e) in h.events.iter().enumerate() {
            let p = (e.node, e.incarnation);
            let EventKind::Observation(o) = &e.kind else {
                continue;
            };
            match o {
                Observation::Config {
                    kind: ConfigKind::Regular,
                    ring,
                    members,
                    ..
                } => {
                    let seen = g.rings.entry(*ring).or_default();
                    seen.members = members;
                    seen.joined.entry(e.node).or_insert((p, i));
                }
                Observation::Cib(CibObservation::Writable { ring }) => {
                    g.writable.insert(*ring);
                }
                Observation::Cib(CibObservation::State { markers, .. }) => {
                    for m in markers {
                        g.first_held.entry((p, m.as_str())).or_insert(i);
                    }
                }
                Observation::Cib(CibObservation::Applied { ring, op, .. }) => {
                    if (op.sender, op.incarnation) == p {
                        g.ack_ring.insert(*op, *ring);
                    }
                    if let Some(m) = marker_of.get(op) {
                        g.first_held.entry((p, m)).or_insert(i);
                    }
                }
                _ => {}
            }
        }
        g
    }

    /// The quorate configuration newer than the one `op` was acknowledged in
    /// whose members had all lost (or never had) marker `m`, if there is one.
    fn excuses(&self, m: &str, op: &MsgId) -> Option<RingId> {
        let acked_in = self.ack_ring.get(op)?;
        let acked_seen = self.rings.get(acked_in)?;
        self.rings
            .iter()
            .filter(|(ring, seen)| {
                ring.1 > acked_in.1
                    && self.writable.contains(*ring)
                    && seen.members.len() * 2 > self.nodes
                    && seen.members.iter().all(|n| {
                        seen.joined.get(n).is_some_and(|(p, at)| {
                            // Not holding it, and (if the node was in the
                            // acknowledging ring) a later process than the one
                            // there: a process of that ring that stayed up must
                            // have applied it (safe delivery), so its lacking
                            // the change is a loss, not the crash gap.
                            self.first_held.get(&(*p, m)).is_none_or(|held| held > at)
                                && acked_seen.joined.get(n).is_none_or(|(q, _)| q != p)
                        })
                    })
            })
            .map(|(ring, _)| *ring)
            .next()
    }
}
