//! Errors of the totem core.

use thiserror::Error;

/// Why a request to the core was refused. No variant changes protocol state.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SendError {
    /// The send queue is full (backpressure). Nothing was queued; retry once the
    /// core reports room ([`crate::Totem::send_queue_room`]) or after the next
    /// delivery.
    #[error("send queue full, try again")]
    TryAgain,
    /// The message is larger than `max_message_size`. Nothing was queued; retrying
    /// will not help.
    #[error("message of {size} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// Size of the refused message.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The node has left the cluster (or is leaving). Nothing was queued.
    #[error("node has left the cluster")]
    Left,
}

/// A configuration that cannot run. Returned by [`crate::Config::validate`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A field is outside its allowed range.
    #[error("{field}: {reason}")]
    Invalid {
        /// The offending field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// A datagram that could not be decoded. Counted and dropped by the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Shorter than its header or a declared length.
    #[error("truncated datagram")]
    Truncated,
    /// Wrong magic number: not a Phalanx totem datagram.
    #[error("bad magic")]
    BadMagic,
    /// A protocol version this node does not speak.
    #[error("unsupported version {0}")]
    BadVersion(u8),
    /// Unknown message type.
    #[error("unknown message type {0}")]
    BadType(u8),
    /// The checksum does not match the contents.
    #[error("checksum mismatch")]
    BadChecksum,
    /// A count or length exceeds its protocol limit.
    #[error("field exceeds its limit")]
    TooLarge,
    /// Bytes left over after the message, or an inconsistent field.
    #[error("malformed datagram")]
    Malformed,
}
