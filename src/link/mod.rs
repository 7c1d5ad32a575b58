//! Several links per node with liveness monitoring and fail-over — the role of
//! Corosync's knet links, as sans-IO state machines inside the
//! [`Stack`](crate::stack::Stack): the [`LinkMonitor`] (liveness, link choice) and
//! the [`LinkLayer`] around it (addresses, per-link AEAD, replay windows).
//!
//! Each link is its own UDP socket and address per node (`ring0_addr` ..
//! `ring7_addr`). For every peer and link the [`LinkMonitor`] sends a ping every
//! `ping_interval`; a link comes **up** after `pong_count` timely pongs and goes
//! **down** when no pong arrived for `ping_timeout`. Datagrams to a peer go, by
//! [`LinkMode`](crate::config::LinkMode):
//!
//! - **passive** (default): on the up link with the highest priority, ties to the
//!   lowest link number — fail-over when it goes down, fail-back when it returns;
//! - **active**: on every up link (totem drops the duplicates and counts them in
//!   `Stats::mcast_duplicates` / `tokens_stale`);
//! - **rr**: on the up links in turn.
//!
//! With no link up to a peer, datagrams go on every link. Pings and pongs travel
//! inside the crypto envelope like every datagram (see [`wire`]).
//!
//! Run loop (the driver's, in a few lines):
//!
//! ```
//! use phalanx::link::{LinkMonitor, LinkSpec, LinkTiming};
//! use phalanx::config::LinkMode;
//! use phalanx::totem::Time;
//! use std::time::Duration;
//!
//! let timing = LinkTiming::for_token(Duration::from_millis(300));
//! let links = vec![
//!     LinkSpec { number: 0, priority: 1, timing },
//!     LinkSpec { number: 1, priority: 0, timing },
//! ];
//! let mut m = LinkMonitor::new(1, &[1, 2], links, LinkMode::Passive, Time::ZERO).unwrap();
//! m.handle_timeout(Time::ZERO);
//! while let Some(t) = m.poll_transmit() {
//!     // encode t.msg, seal it, send it to t.peer's address on link slot t.slot
//!     assert_eq!(t.peer, 2);
//! }
//! // No link up yet: datagrams to node 2 go on both links.
//! assert_eq!(m.route(2), 0b11);
//! assert!(m.poll_timeout().is_some());
//! ```
//!
//! What it does not do (compared with knet): no path-MTU discovery (totem frames are
//! sized by configuration), no compression, no per-link crypto configuration, no
//! link-level fragmentation; liveness is per link and peer, not per destination
//! address family.

mod layer;
mod monitor;
mod send_table;
mod stats;
#[cfg(test)]
mod tests;
pub mod wire;

pub use layer::{
    DatagramDrop, LinkAddrs, LinkCrypto, LinkLayer, LinkLayerError, LinkLayerStats, LinkTransmit,
    Received, link_cluster_name,
};
pub use monitor::{
    ControlTransmit, LinkConfigError, LinkEvent, LinkMonitor, LinkRxError, LinkSpec, LinkTiming,
};
pub use send_table::SendTable;
pub use stats::{LinkState, LinkStats, PeerLinkStatus};
