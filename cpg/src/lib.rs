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
