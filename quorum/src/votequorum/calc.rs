//! The votequorum arithmetic as pure functions, so that tables can test them.

use crate::NodeId;
use crate::config::TieBreaker;
use std::collections::BTreeSet;

/// Votes needed for quorum: `max(⌊E/2⌋+1, ⌊V/2⌋+1)` (the OpenVMS rule), or 1 for an
/// active `two_node` cluster.
pub fn quorum(expected: u32, total: u32, two_node: bool) -> u32 {
    if two_node {
        return 1;
    }
    (expected / 2 + 1).max(total / 2 + 1)
}

/// Whether the partition `members` holds the tie-breaker.
///
/// `configured` is the node list (lowest/highest are taken from it, so both halves of
/// a split agree). For a list, the first listed node present wins; a listed node that
/// is absent but was in `previous` (it may be on the other side) stops the search.
pub fn holds_tie_breaker(
    tb: &TieBreaker,
    configured: &BTreeSet<NodeId>,
    members: &BTreeSet<NodeId>,
    previous: &BTreeSet<NodeId>,
) -> bool {
    match tb {
        TieBreaker::Lowest => configured.first().is_some_and(|n| members.contains(n)),
        TieBreaker::Highest => configured.last().is_some_and(|n| members.contains(n)),
        TieBreaker::Nodes(list) => {
            for n in list {
                if members.contains(n) {
                    return true;
                }
                if previous.contains(n) {
                    return false;
                }
            }
            false
        }
    }
}

/// Inputs of one quorum decision (all replicated state of a partition).
#[derive(Clone, Debug)]
pub struct Decision {
    /// Partition expected votes E (already raised to V when V > E).
    pub expected: u32,
    /// Votes of the members.
    pub node_votes: u32,
    /// Votes the device adds now (0 unless it casts for this ring).
    pub device_votes: u32,
    /// `two_node` set.
    pub two_node: bool,
    /// Still waiting for all nodes.
    pub wfa_waiting: bool,
    /// `auto_tie_breaker` set and this partition holds the tie-breaker.
    pub atb_holds: bool,
}

impl Decision {
    /// Total votes V.
    pub fn total(&self) -> u32 {
        self.node_votes + self.device_votes
    }

    /// (quorum, quorate).
    pub fn outcome(&self) -> (u32, bool) {
        let v = self.total();
        let q = quorum(self.expected, v, self.two_node);
        let mut quorate = v >= q;
        // An exact half of the expected votes, holding the tie-breaker: the other
        // half cannot hold it, so exactly one half continues.
        if !quorate && self.atb_holds && self.node_votes * 2 == self.expected {
            quorate = true;
        }
        if self.wfa_waiting && v < self.expected {
            quorate = false;
        }
        (q, quorate)
    }
}
