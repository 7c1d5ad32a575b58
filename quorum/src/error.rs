//! Errors of the quorum cores. One enum per concern; every variant says whether
//! state changed and whether a retry can help.

use thiserror::Error;

/// A quorum configuration that cannot run (returned by [`crate::QuorumConfig::validate`]
/// and [`crate::Votequorum::new`]). Nothing was created; fix the configuration.
/// The forbidden option combinations are those Corosync's votequorum refuses or
/// silently disables; Phalanx refuses them all, loudly.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No node list and no `expected_votes`: nothing to count against.
    #[error("neither a node list nor expected_votes is configured")]
    NoExpectedVotes,
    /// Node id 0 is reserved (Corosync uses it for the quorum device).
    #[error("node id 0 is reserved")]
    ZeroNodeId,
    /// A node id is listed twice.
    #[error("node {0} is listed twice")]
    DuplicateNode(u32),
    /// The local node is not in the node list.
    #[error("local node {0} is not in the node list")]
    LocalNotListed(u32),
    /// More nodes than [`crate::limits::MAX_NODES`].
    #[error("{0} nodes configured, at most {max} allowed", max = crate::limits::MAX_NODES)]
    TooManyNodes(usize),
    /// A vote count above [`crate::limits::MAX_VOTES`], or a total that overflows.
    #[error("votes out of range: {0}")]
    VotesOutOfRange(String),
    /// `two_node` needs exactly two configured nodes with one vote each.
    #[error("two_node requires exactly two nodes with one vote each")]
    TwoNodeNeedsTwoNodes,
    /// `two_node` and a quorum device are exclusive (the device is the tie-breaker).
    #[error("two_node cannot be combined with a quorum device")]
    TwoNodeWithDevice,
    /// `two_node` and `auto_tie_breaker` are exclusive (Corosync disables two_node).
    #[error("two_node cannot be combined with auto_tie_breaker")]
    TwoNodeWithAutoTieBreaker,
    /// `last_man_standing` and a quorum device are exclusive (use the lms algorithm).
    #[error("last_man_standing cannot be combined with a quorum device")]
    LastManStandingWithDevice,
    /// `auto_tie_breaker` and a quorum device are exclusive (the device breaks ties).
    #[error("auto_tie_breaker cannot be combined with a quorum device")]
    AutoTieBreakerWithDevice,
    /// `auto_tie_breaker` on an odd number of expected votes without `wait_for_all`:
    /// an exact half split cannot happen, so the option would be silently useless
    /// (Corosync disables it, and refuses to start if `last_man_standing` is also set).
    #[error(
        "auto_tie_breaker needs an even number of expected votes or wait_for_all (expected votes {0})"
    )]
    AutoTieBreakerOddWithoutWaitForAll(u32),
    /// `last_man_standing` needs every node to have exactly one vote.
    #[error("last_man_standing requires one vote per node (node {node} has {votes})")]
    LastManStandingMultiVote {
        /// The offending node.
        node: u32,
        /// Its votes.
        votes: u32,
    },
    /// `last_man_standing_window` must be positive.
    #[error("last_man_standing_window must be positive")]
    ZeroWindow,
    /// The `auto_tie_breaker_node` list is empty or names an unknown node.
    #[error("auto_tie_breaker_node: {0}")]
    BadTieBreakerList(String),
    /// The ffsplit algorithm needs a device with exactly one vote and one vote per node.
    #[error("ffsplit requires device votes = 1 and one vote per node ({0})")]
    FfsplitVotes(String),
    /// The device's votes are zero or out of range.
    #[error("quorum device votes: {0}")]
    DeviceVotes(String),
}

/// A runtime request the votequorum core refused. No state changed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum QuorumError {
    /// The outgoing queue is full. Retry after the Stack has drained `poll_send`.
    #[error("send queue full, try again")]
    TryAgain,
    /// No regular configuration has been installed yet. Retry later.
    #[error("not a member of a ring yet")]
    NotReady,
    /// The requested expected votes are 0, too large, or below the current total votes.
    #[error("invalid expected votes {requested} (total votes {total})")]
    InvalidExpectedVotes {
        /// What was asked.
        requested: u32,
        /// Current total votes of the partition.
        total: u32,
    },
    /// Votes out of range, or more than one vote with `last_man_standing`.
    #[error("invalid votes {0}")]
    InvalidVotes(u32),
    /// The node is neither configured nor ever seen.
    #[error("unknown node {0}")]
    UnknownNode(u32),
    /// The request needs a quorum device and none is configured.
    #[error("no quorum device configured")]
    NoDevice,
}

/// Bytes that are not a valid message. The caller counts and drops them; a decoder
/// never panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Shorter than its header or a declared length.
    #[error("truncated message")]
    Truncated,
    /// Wrong magic or version.
    #[error("bad magic or version")]
    BadHeader,
    /// Unknown message type or enum value.
    #[error("unknown type or value {0}")]
    BadType(u8),
    /// A count or length exceeds its limit.
    #[error("field exceeds its limit")]
    TooLarge,
    /// Trailing bytes or an inconsistent field.
    #[error("malformed message")]
    Malformed,
}
