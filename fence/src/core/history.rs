//! Fencing history (§2.4 of the fencing reference): one entry per operation, kept
//! on every node, bounded by Pacemaker's rule — once there are more than 500
//! entries, sort them (pending first, then the most recently completed) and drop
//! the *completed* ones past the first 250; pending entries are always kept.
//! A joining node's history is merged in (see [`History::merge`]).

use crate::Action;
use phalanx_quorum::NodeId;
use phalanx_totem::{RingId, Time};
use std::collections::BTreeMap;

/// Trim once the history holds more than this many entries.
pub const MAX_HISTORY: usize = 500;
/// Completed entries kept (counting pending ones first) when trimming.
pub const TRIMMED_HISTORY: usize = MAX_HISTORY / 2;
/// A hard bound even on pending entries: only reached when peers announce
/// operations that never finish (a faulty or hostile peer); the oldest pending
/// entries are then dropped.
pub const HARD_MAX_HISTORY: usize = 2 * MAX_HISTORY;

/// Identifies one fencing operation cluster-wide: the node that started it, that
/// node's fencer incarnation (new after each restart), and a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpId {
    /// The originating node.
    pub origin: NodeId,
    /// The originator's incarnation.
    pub incarnation: u64,
    /// Sequence within that incarnation.
    pub seq: u64,
}

/// Where an operation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum OpState {
    /// Not finished.
    Pending,
    /// The target was fenced.
    Done,
    /// It was not.
    Failed,
}

/// Who carried the operation out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delegate {
    /// The fencer of this node ran the devices.
    Node(NodeId),
    /// An administrator confirmed the target is down (manual acknowledgement).
    Manual,
}

/// One history entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The operation.
    pub id: OpId,
    /// Target node name.
    pub target: String,
    /// Requested action.
    pub action: Action,
    /// Originating node (same as `id.origin`).
    pub origin: NodeId,
    /// Who executed it, once known.
    pub delegate: Option<Delegate>,
    /// The requesting client's name.
    pub client: String,
    /// Pending, done or failed.
    pub state: OpState,
    /// When it completed (the recording node's time).
    pub completed: Option<Time>,
    /// Why it failed, when it did.
    pub exit_reason: Option<String>,
    /// The requester's view of the ring in which the target last joined (see
    /// [`FenceDecision::joined_ring`](super::FenceDecision::joined_ring)); a
    /// success fences that incarnation only. `None`: the requester never saw the
    /// target as a member, and the result marks no loss fenced.
    pub target_joined: Option<RingId>,
}

/// The history of fencing operations.
#[derive(Debug, Clone, Default)]
pub struct History {
    entries: BTreeMap<OpId, HistoryEntry>,
}

impl History {
    /// Empty.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces an entry, then trims. A completed entry is never turned back
    /// into a pending one (a late duplicate "started" message cannot undo a result).
    pub fn record(&mut self, entry: HistoryEntry) {
        if let Some(old) = self.entries.get(&entry.id)
            && old.state != OpState::Pending
            && entry.state == OpState::Pending
        {
            return;
        }
        self.entries.insert(entry.id, entry);
        self.trim();
    }

    /// An entry by id.
    pub fn get(&self, id: &OpId) -> Option<&HistoryEntry> {
        self.entries.get(id)
    }

    /// Every entry, by id.
    pub fn entries(&self) -> impl Iterator<Item = &HistoryEntry> {
        self.entries.values()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Drops completed entries (all of them) or only those of one target.
    pub fn cleanup(&mut self, target: Option<&str>) {
        self.entries.retain(|_, e| {
            e.state == OpState::Pending || target.is_some_and(|t| !e.target.eq_ignore_ascii_case(t))
        });
    }

    /// Pacemaker's trim rule (module docs).
    pub fn trim(&mut self) {
        if self.entries.len() <= MAX_HISTORY {
            return;
        }
        let mut order: Vec<(&OpId, &HistoryEntry)> = self.entries.iter().collect();
        // Pending first; then newest completion first; ties by id, newest first.
        order.sort_by(|(ia, a), (ib, b)| {
            let pa = a.state == OpState::Pending;
            let pb = b.state == OpState::Pending;
            pb.cmp(&pa)
                .then_with(|| b.completed.cmp(&a.completed))
                .then_with(|| ib.cmp(ia))
        });
        let drop: Vec<OpId> = order
            .iter()
            .skip(TRIMMED_HISTORY)
            .filter(|(_, e)| e.state != OpState::Pending)
            .map(|(id, _)| **id)
            .collect();
        for id in drop {
            self.entries.remove(&id);
        }
        while self.entries.len() > HARD_MAX_HISTORY {
            // Only pending entries are left beyond the normal trim: drop the oldest.
            self.entries.pop_first();
        }
    }

    /// Merges a peer's history (sent when it or we join). For an operation both
    /// know: a completed state wins over a pending one. An operation only the peer
    /// knows is added — except that a *pending* one that we originated in an
    /// earlier incarnation can never finish, so it is recorded as failed. Returns
    /// the entries the peer should learn from us (ours completed where it had them
    /// pending, and the ones we just failed), to be broadcast.
    pub fn merge(
        &mut self,
        remote: Vec<HistoryEntry>,
        local: NodeId,
        incarnation: u64,
        now: Time,
    ) -> Vec<HistoryEntry> {
        let mut to_send = Vec::new();
        for mut theirs in remote {
            match self.entries.get(&theirs.id) {
                Some(ours) => {
                    if ours.state == OpState::Pending && theirs.state != OpState::Pending {
                        self.entries.insert(theirs.id, theirs);
                    } else if ours.state != OpState::Pending && theirs.state == OpState::Pending {
                        to_send.push(ours.clone());
                    }
                }
                None => {
                    if theirs.state == OpState::Pending
                        && theirs.origin == local
                        && theirs.id.incarnation != incarnation
                    {
                        theirs.state = OpState::Failed;
                        theirs.completed = Some(now);
                        theirs.exit_reason = Some(
                            "initiated by an earlier fencer process and presumed failed".into(),
                        );
                        to_send.push(theirs.clone());
                    }
                    self.entries.insert(theirs.id, theirs);
                }
            }
        }
        self.trim();
        to_send
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, state: OpState, completed: Option<u64>) -> HistoryEntry {
        HistoryEntry {
            id: OpId {
                origin: 1,
                incarnation: 1,
                seq,
            },
            target: format!("node{}", seq % 3),
            action: Action::Reboot,
            origin: 1,
            delegate: None,
            client: "c".into(),
            state,
            completed: completed.map(Time::from_nanos),
            exit_reason: None,
            target_joined: None,
        }
    }

    #[test]
    fn trim_keeps_pending_and_newest_250() {
        let mut h = History::new();
        for i in 0..500 {
            h.record(entry(i, OpState::Done, Some(i)));
        }
        assert_eq!(h.len(), 500, "no trim at exactly 500");
        h.record(entry(1000, OpState::Pending, None));
        assert_eq!(
            h.len(),
            TRIMMED_HISTORY,
            "501 → 250 (1 pending + 249 newest)"
        );
        assert!(h.get(&entry(1000, OpState::Pending, None).id).is_some());
        assert!(h.get(&entry(499, OpState::Done, None).id).is_some());
        assert!(h.get(&entry(251, OpState::Done, None).id).is_some());
        assert!(h.get(&entry(250, OpState::Done, None).id).is_none());

        // More than 250 pending: all pending kept, every completed one dropped.
        let mut h = History::new();
        for i in 0..300 {
            h.record(entry(i, OpState::Pending, None));
        }
        for i in 300..501 {
            h.record(entry(i, OpState::Failed, Some(i)));
        }
        assert_eq!(h.len(), 300);
        assert!(h.entries().all(|e| e.state == OpState::Pending));
    }

    #[test]
    fn hard_bound_on_pending_entries() {
        let mut h = History::new();
        for i in 0..(HARD_MAX_HISTORY as u64 + 10) {
            h.record(entry(i, OpState::Pending, None));
        }
        assert_eq!(h.len(), HARD_MAX_HISTORY);
        assert!(
            h.get(&entry(0, OpState::Pending, None).id).is_none(),
            "oldest dropped"
        );
    }

    #[test]
    fn completed_never_reverts_to_pending() {
        let mut h = History::new();
        h.record(entry(1, OpState::Done, Some(5)));
        h.record(entry(1, OpState::Pending, None));
        assert_eq!(
            h.get(&entry(1, OpState::Done, None).id).unwrap().state,
            OpState::Done
        );
    }

    #[test]
    fn merge_rules() {
        let mut h = History::new();
        h.record(entry(1, OpState::Pending, None)); // peer knows it done
        h.record(entry(2, OpState::Done, Some(9))); // peer has it pending
        let mut stale = entry(3, OpState::Pending, None); // ours, earlier incarnation
        stale.id.incarnation = 0;
        let mut peers = entry(4, OpState::Pending, None); // peer-originated, pending
        peers.origin = 2;
        peers.id.origin = 2;
        let remote = vec![
            entry(1, OpState::Done, Some(7)),
            entry(2, OpState::Pending, None),
            stale.clone(),
            peers.clone(),
        ];
        let send = h.merge(remote, 1, 1, Time::from_nanos(100));
        assert_eq!(
            h.get(&entry(1, OpState::Done, None).id).unwrap().state,
            OpState::Done
        );
        assert_eq!(
            h.get(&entry(2, OpState::Done, None).id).unwrap().state,
            OpState::Done
        );
        assert_eq!(h.get(&stale.id).unwrap().state, OpState::Failed);
        assert_eq!(h.get(&peers.id).unwrap().state, OpState::Pending);
        let sent: Vec<u64> = send.iter().map(|e| e.id.seq).collect();
        assert_eq!(sent, [2, 3]);
    }
}
