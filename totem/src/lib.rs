//! # phalanx-totem — the Totem single-ring protocol as a sans-IO core
//!
//! Totem orders messages from every node of a cluster into one total order and
//! agrees on membership, with extended virtual synchrony (EVS) on every change.
//! This crate is the protocol only: no sockets, threads or clocks. Time is an
//! input ([`Time`]), outputs are polled.
//!
//! ## The run loop
//!
//! ```text
//! loop {
//!     feed inputs:   handle_datagram(now, bytes) | handle_timeout(now) | mcast(now, ..)
//!     drain outputs: poll_transmit() -> send;  poll_event() -> deliver / persist
//!     sleep until:   poll_timeout()
//! }
//! ```
//!
//! ## Guarantees
//!
//! - **Agreed** delivery: every member delivers messages in one total order.
//! - **Safe** delivery: a safe message is delivered only once every member of the
//!   configuration holds it (Corosync carries the flag but never implemented it).
//! - **EVS configuration changes**: old-ring messages, then a *transitional*
//!   configuration, then the remaining old-ring messages of transitional members,
//!   then the *regular* configuration — identical at every member that moves
//!   together.
//! - Bounded queues: a full send queue answers [`SendError::TryAgain`].
//!
//! It does not encrypt or authenticate (the driver does), and does not detect
//! crashed nodes faster than its token and consensus timeouts ([`Config`]).
//!
//! ## Example: a two-node ring driven by hand
//!
//! ```
//! use phalanx_totem::{Config, Destination, Event, Guarantee, Time, Totem};
//! use phalanx_logsys::Logger;
//! use std::time::Duration;
//!
//! let ids = vec![1, 2];
//! let mut nodes: Vec<Totem> = ids.iter()
//!     .map(|&id| Totem::new(Config::new(id, ids.clone()), None, Time::ZERO, Logger::discard()).unwrap())
//!     .collect();
//! let mut now = Time::ZERO;
//! let mut delivered = vec![Vec::new(), Vec::new()];
//! nodes[0].mcast(now, Guarantee::Safe, b"hello").unwrap();
//! for _ in 0..20_000 {
//!     // Move every datagram to its destinations (a lossless zero-latency network).
//!     let mut wire = Vec::new();
//!     for (i, n) in nodes.iter_mut().enumerate() {
//!         while let Some(t) = n.poll_transmit() {
//!             for (j, id) in ids.iter().enumerate() {
//!                 let to_j = match &t.dest {
//!                     Destination::Node(d) => d == id,
//!                     Destination::Members(m) => m.contains(id),
//!                     Destination::All => j != i,
//!                 };
//!                 if to_j { wire.push((j, t.data.clone())); }
//!             }
//!         }
//!         while let Some(e) = n.poll_event() {
//!             if let Event::Deliver(d) = e { delivered[i].push(d.data); }
//!         }
//!     }
//!     for (j, data) in wire { nodes[j].handle_datagram(now, &data); }
//!     if delivered.iter().all(|d| !d.is_empty()) { break; }
//!     now = now + Duration::from_millis(1);
//!     for n in nodes.iter_mut() { n.handle_timeout(now); }
//! }
//! assert_eq!(delivered, vec![vec![b"hello".to_vec()], vec![b"hello".to_vec()]]);
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod config;
pub mod error;
mod frame;
mod srp;
mod stats;
mod store;
pub mod testing;
mod time;
pub mod wire;

/// A node identifier (non-zero).
pub type NodeId = u32;

pub use config::Config;
pub use error::{ConfigError, DecodeError, SendError};
pub use srp::{ConfigChange, ConfigKind, Delivery, Destination, Event, State, Totem, Transmit};
pub use stats::Stats;
pub use time::Time;
pub use wire::{Guarantee, RingId};

/// Entry points for fuzz targets: decoders that are otherwise internal.
#[doc(hidden)]
pub mod fuzzing {
    /// Splits a frame into chunks; returns how many, or an error.
    pub fn decode_frame(frame: &[u8]) -> Result<usize, crate::DecodeError> {
        crate::frame::chunks(frame).map(Iterator::count)
    }
}
