//! # phalanx-fence — fencing decisions, topology and fence agents
//!
//! **Status: under construction.** This crate owns who must be fenced after a
//! membership loss (with quorum), fencing topology (levels of devices), delays
//! against fence races, unfencing and history (a sans-IO core), and fence agents
//! behind a trait, including a runner for ClusterLabs fence-agents.
//!
//! - [`agent`]: the [`agent::FenceAgent`] trait, requests and the stdin protocol,
//!   outcome interpretation, metadata, record/replay — sans-IO.
//! - [`core`]: the fencer (devices, topology, timeouts, delays, history), its wire
//!   form, and the "who fences" decision — sans-IO, deterministic.
//! - [`replay`]: recorded devices answering the fencer's calls in virtual time,
//!   with per-seed device faults, for the simulator — sans-IO, deterministic.
//! - [`watchdog`]: self-fencing — the feed policy (sans-IO) and the watchdogs
//!   (`/dev/watchdog`, a supervisor process) in its `io` module.
//! - [`runner`]: the only I/O in the crate — real agent processes, a worker pool,
//!   the recording file.
#![warn(missing_docs)]
// Only runner::process_group (kill of a process group) and watchdog::io (ioctl,
// kill, poll, fcntl) need unsafe.
#![deny(unsafe_code)]

mod action;
pub mod agent;
pub mod core;
pub mod replay;
pub mod runner;
pub mod watchdog;

pub use action::{Action, UnknownAction};
