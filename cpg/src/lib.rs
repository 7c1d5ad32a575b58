//! # phalanx-cpg — closed process groups over Totem
//!
//! Named groups (1..=128 bytes) whose members are (node id, local member id);
//! `join` / `leave` complete when the totem-ordered JOIN / LEAVE is applied;
//! `mcast` reaches every member of the group in one total order, the sender
//! included; view changes carry member, left and joined lists with the reasons JOIN,
//! LEAVE, NODEDOWN, NODEUP and PROCDOWN. After every totem configuration the nodes
//! exchange their members (JOINLIST) so that every node of the new ring agrees on
//! every group, and messages sent during that exchange are ordered after it.
//!
//! A sans-IO core: no sockets, clocks, threads or randomness; ordered maps only.
//!
//! ## The run loop
//!
//! ```text
//! totem events → handle_deliver(sender, guarantee, bytes) | handle_config(&change)
//! app requests → join | leave | member_down | mcast   (answer at once: Ok / CpgError)
//! to totem     ← next_send_len() / poll_send()        (only when totem has room)
//! to apps      ← poll_event(): Change | Deliver | Totem
//! ```
//!
//! The facade's `Stack` does this wiring; `docs/cpg.md` states the guarantees and
//! the state-exchange design.
//!
//! ## Example: one node, totem played by hand
//!
//! ```
//! use bytes::Bytes;
//! use phalanx_cpg::{Cpg, CpgConfig, CpgEvent, Guarantee, MemberId, RingId};
//! use phalanx_totem::{ConfigChange, ConfigKind};
//!
//! let mut cpg = Cpg::new(1, CpgConfig::default());
//! cpg.join(7, b"workers").unwrap();
//! cpg.mcast(7, b"workers", Guarantee::Agreed, b"hello").unwrap();
//! // Totem installs a ring; CPG announces its members before anything else.
//! cpg.handle_config(&ConfigChange {
//!     kind: ConfigKind::Regular,
//!     ring: RingId { seq: 1, rep: 1 },
//!     previous: None,
//!     members: vec![1],
//!     left: vec![],
//!     joined: vec![],
//! });
//! // "Totem": order every message and deliver it back.
//! while let Some((guarantee, msg)) = cpg.poll_send() {
//!     cpg.handle_deliver(1, guarantee, Bytes::from(msg));
//! }
//! let mut got = Vec::new();
//! while let Some(e) = cpg.poll_event() {
//!     match e {
//!         CpgEvent::Change(c) => got.push(format!("view {:?}", c.members)),
//!         CpgEvent::Deliver(d) => got.push(format!("{:?} to {:?}", d.data, d.recipients)),
//!         _ => {}
//!     }
//! }
//! assert_eq!(got, [r#"view [MemberId { node: 1, local: 7 }]"#, r#"b"hello" to [7]"#]);
//! assert_eq!(cpg.membership(b"workers"), [MemberId { node: 1, local: 7 }]);
//! ```
//!
//! Not done here: fragmentation (totem fragments large messages), handles and
//! threads (the facade), quorum.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod config;
mod core;
mod deliver;
pub mod error;
mod locals;
mod send_queue;
mod stats;
mod sync;
mod types;
pub mod wire;

#[cfg(test)]
mod tests;

pub use crate::config::CpgConfig;
pub use crate::core::Cpg;
pub use crate::error::{CpgError, DecodeError};
pub use crate::locals::LocalState;
pub use crate::stats::CpgStats;
pub use crate::types::{
    Change, CpgEvent, GroupChange, GroupDelivery, GroupName, MAX_GROUP_NAME, MemberId, Reason,
    TotemMembership, ViewId,
};
pub use phalanx_totem::{Guarantee, NodeId, RingId};
