//! # phalanx-fence — fencing decisions, topology and fence agents
//!
//! **Status: under construction.** This crate owns who must be fenced after a
//! membership loss (with quorum), fencing topology (levels of devices), delays
//! against fence races, unfencing and history (a sans-IO core), and fence agents
//! behind a trait, including a runner for ClusterLabs fence-agents.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod action;
pub mod core;

pub use action::{Action, UnknownAction};
