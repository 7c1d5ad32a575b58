//! # phalanx-quorum — votequorum and a third-site quorum arbitrator, as sans-IO cores
//!
//! [`Votequorum`] decides whether this node's partition may act. It rides on totem:
//!
//! ```text
//! loop {
//!     feed inputs:   handle_config(now, &ConfigChange)          (transitional / regular)
//!                    handle_message(now, sender, &payload)      (its own messages, agreed order)
//!                    handle_timeout(now)                        (last-man-standing window)
//!                    set_expected_votes | set_votes | cancel_wait_for_all | set_device_vote
//!     drain outputs: poll_send() -> totem mcast (agreed);  poll_event() -> notify
//!     sleep until:   poll_timeout()
//! }
//! ```
//!
//! The Stack must deliver the core's own messages back to it (totem self delivery):
//! the state exchange completes when every member's announcement, including this
//! node's, has been delivered.
//!
//! ## Example: three members agree
//!
//! ```
//! use phalanx_quorum::{QuorumConfig, Votequorum};
//! use phalanx_totem::{ConfigChange, ConfigKind, RingId, Time};
//!
//! let ids = [1, 2, 3];
//! let mut nodes: Vec<Votequorum> =
//!     ids.iter().map(|&me| Votequorum::new(QuorumConfig::new(me, &ids)).unwrap()).collect();
//! let cc = ConfigChange {
//!     kind: ConfigKind::Regular, ring: RingId { seq: 4, rep: 1 }, previous: None,
//!     members: vec![1, 2], left: vec![], joined: vec![1, 2],
//! };
//! for n in &mut nodes[..2] { n.handle_config(Time::ZERO, &cc); }
//! // The Stack multicasts what poll_send gives; totem delivers it to both in one order.
//! let mut wire = Vec::new();
//! for (i, n) in nodes[..2].iter_mut().enumerate() {
//!     while let Some(p) = n.poll_send() { wire.push((ids[i], p)); }
//! }
//! for (from, p) in &wire {
//!     for n in &mut nodes[..2] { n.handle_message(Time::ZERO, *from, p).unwrap(); }
//! }
//! let info = nodes[0].info();
//! assert!(info.quorate && nodes[1].is_quorate());
//! assert_eq!((info.expected_votes, info.total_votes, info.quorum), (3, 2, 2));
//! ```
//!
//! ## Guarantees
//!
//! - Quorum = max(⌊E/2⌋+1, ⌊V/2⌋+1) with Corosync's options (`two_node`,
//!   `wait_for_all`, `last_man_standing`, `auto_tie_breaker`, `allow_downscale`,
//!   `expected_votes_tracking`); combinations Corosync refuses or disables are refused
//!   with a [`ConfigError`].
//! - Every member of a partition computes the same result: each member announces its
//!   state at every regular configuration and the decision is taken only from those
//!   announcements, at the same point of the total order.
//! - Expected votes only rise, except through explicit paths (set expected votes, the
//!   last-man-standing window, a clean leave with `allow_downscale`), so quorum does not
//!   fall by accident.
//! - Decoders are total; peers cannot make the core panic.
//!
//! The [`qdevice`] module holds the quorum-device side: the arbitrator's algorithms
//! (ffsplit, lms), the arbitrator core ([`qdevice::server::Qnetd`]) that never grants
//! the vote to two partitions at once, and the node-side client core
//! ([`qdevice::client::QdeviceClient`]). Drivers (TCP, processes for heuristics) live in
//! the facade.
//!
//! It does not persist anything itself (it emits [`Event::PersistExpectedVotes`]) and
//! does not read clocks.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod codec;
pub mod config;
pub mod error;
pub mod qdevice;
pub mod votequorum;
pub mod wire;

/// A node identifier (non-zero), as in totem.
pub type NodeId = phalanx_totem::NodeId;

/// Protocol limits.
pub mod limits {
    /// Most nodes a cluster may list (totem's limit).
    pub const MAX_NODES: usize = phalanx_totem::config::limits::MAX_NODES;
    /// Largest vote count of one node, the device, or expected votes.
    pub const MAX_VOTES: u32 = 1 << 20;
    /// Requests queued for multicast before `TryAgain`.
    pub const MAX_SEND_QUEUE: usize = 64;
}

pub use config::{Algorithm, DeviceConfig, NodeVotes, QuorumConfig, TieBreaker};
pub use error::{ConfigError, DecodeError, QuorumError};
pub use votequorum::{ClusterInfo, Event, NodeState, NodeStatus, Stats, Votequorum};

/// Entry points for fuzz targets.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::qdevice::proto::{decode_frame_body, encode_frame_body};
    pub use crate::wire::{decode, encode};
}
