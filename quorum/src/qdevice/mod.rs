//! The quorum device: the arbitrator (qnetd) and its node-side client, as sans-IO
//! cores, plus their wire protocol.
//!
//! ## The no-double-vote rule
//!
//! A vote is granted to a node *for one ring* (a totem ring id names exactly one
//! membership), and a node's votequorum counts the device vote only on that ring. The
//! arbitrator keeps, per node, the ring it last granted and when that grant's lease
//! ends on the arbitrator's clock. It grants for ring `R` only when no node may still
//! hold a grant for another ring: every such grant was either given up by its holder
//! (a status report saying so) or its lease ran out. The client's lease starts when it
//! *sent* the status the grant answers, so it always ends before the arbitrator's.
//! After a restart the arbitrator knows nothing, so it treats every node as possibly
//! holding an unknown grant until one lease (plus margin) has passed since it started,
//! or until that node reports what it holds. See `docs/quorum.md`.

pub mod algo;
pub mod auth;
pub mod client;
pub mod proto;
pub mod server;

pub use algo::{Heuristics, Partition};
