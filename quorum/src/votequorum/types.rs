//! The votequorum core's public value types: node and cluster state, events, counters.

use crate::NodeId;
use phalanx_totem::RingId;

/// A node's state as votequorum sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    /// In the current configuration.
    Member,
    /// Not in the current configuration.
    Dead,
    /// In the current configuration, announced a clean leave.
    Leaving,
}

/// One node of [`Votequorum::nodes`](super::Votequorum::nodes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    /// Node id.
    pub node: NodeId,
    /// Member, dead or leaving.
    pub state: NodeState,
    /// Its votes.
    pub votes: u32,
    /// The expected votes it last announced.
    pub expected: u32,
}

/// The partition's quorum state ([`Votequorum::info`](super::Votequorum::info)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterInfo {
    /// This node.
    pub local: NodeId,
    /// The current ring, once one is installed.
    pub ring: Option<RingId>,
    /// Members of the current configuration, ascending.
    pub members: Vec<NodeId>,
    /// True once every member's state announcement for this ring was delivered.
    pub synced: bool,
    /// Quorate or not.
    pub quorate: bool,
    /// Votes needed.
    pub quorum: u32,
    /// Expected votes of the partition (highest announced).
    pub expected_votes: u32,
    /// Votes present (members + device when it casts).
    pub total_votes: u32,
    /// Votes the device carries (0 without a device).
    pub device_votes: u32,
    /// The device casts its vote for this ring (as replicated).
    pub device_cast: bool,
    /// `two_node` set.
    pub two_node: bool,
    /// `wait_for_all` set.
    pub wait_for_all: bool,
    /// Still waiting for all nodes.
    pub wfa_waiting: bool,
    /// `last_man_standing` set.
    pub last_man_standing: bool,
    /// `auto_tie_breaker` set.
    pub auto_tie_breaker: bool,
    /// `allow_downscale` set.
    pub allow_downscale: bool,
}

/// Something the Stack or application must act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Quorum state or membership changed (emitted after each state exchange and
    /// whenever `quorate` flips).
    QuorumChanged {
        /// Quorate or not.
        quorate: bool,
        /// The ring.
        ring: RingId,
        /// Members and their states.
        nodes: Vec<NodeStatus>,
    },
    /// The partition's expected votes changed.
    ExpectedVotesChanged(u32),
    /// The local node's withdrawal of its device vote for `ring` was delivered: every
    /// member of the partition has stopped counting it. The Stack then calls the
    /// qdevice client's `release_done` (with `confirm_release`).
    DeviceReleased {
        /// The ring the vote had been cast for.
        ring: RingId,
    },
    /// Write this value to the expected-votes tracking file (`expected_votes_tracking`)
    /// and pass it back as [`QuorumConfig::tracked_expected_votes`](crate::QuorumConfig::tracked_expected_votes) after a restart.
    PersistExpectedVotes(u32),
}

/// Counters for diagnostics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages that did not decode (counted and dropped).
    pub decode_errors: u64,
    /// Messages for another ring or from a non-member (ignored).
    pub stale: u64,
    /// Requests that were invalid by the time they were delivered (ignored).
    pub rejected: u64,
}
