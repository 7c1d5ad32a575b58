//! Errors of the CPG core.

use thiserror::Error;

/// Why a request was refused. Unless a variant says otherwise, nothing changed and
/// nothing was queued.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CpgError {
    /// The member already joined (or is joining) this group. Retrying will not help.
    #[error("member already joined this group")]
    Exist,
    /// The member is between a request and its ordered completion (a join or a leave
    /// in flight, or a member that went down and whose departure is not yet ordered).
    /// Retry after the pending change is delivered.
    #[error("a change for this member is in progress")]
    Busy,
    /// The member has not joined this group. Retrying will not help.
    #[error("member is not in this group")]
    NotExist,
    /// The group name is empty or longer than 128 bytes.
    #[error("group name must be 1..=128 bytes, got {0}")]
    NameTooLong(usize),
    /// The send queue is full (backpressure). Retry once
    /// [`Cpg::send_room`](crate::Cpg::send_room) reports room.
    #[error("send queue full, try again")]
    TryAgain,
    /// This node has as many memberships as its state-exchange announcement can
    /// carry (about `max_message_size / 268`). Retry after some member leaves.
    #[error("too many memberships on this node")]
    NoResources,
    /// The message is larger than the configured maximum. Retrying will not help.
    #[error("message of {size} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// Size of the refused message.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The node this request went to has stopped or left the cluster; nothing
    /// changed. Not retryable on this node.
    #[error("the node is not running")]
    NotRunning,
}

/// A CPG message that could not be decoded. Counted and dropped by the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Shorter than its header or a declared length.
    #[error("truncated message")]
    Truncated,
    /// A wire version this node does not speak.
    #[error("unsupported version {0}")]
    BadVersion(u8),
    /// Unknown message kind.
    #[error("unknown message kind {0}")]
    BadKind(u8),
    /// A group name of length 0 or more than 128 bytes.
    #[error("bad group name length {0}")]
    BadName(usize),
    /// An unknown departure reason.
    #[error("bad reason {0}")]
    BadReason(u8),
    /// Bytes left over after the message.
    #[error("trailing bytes")]
    Trailing,
}
