//! Running fence agents for real — **the one module of this crate that does I/O**:
//! it starts processes, reads clocks, sleeps, spawns threads and reads and writes
//! files. Everything else in `phalanx-fence` is sans-IO; this module is what a
//! driver plugs into it.
//!
//! - [`ProcessAgent`] runs an agent executable exactly as Pacemaker does: no argv,
//!   the options on stdin, in its own process group, stdout/stderr captured up to a
//!   cap, one timeout shared by all attempts that kills the whole group.
//! - [`AgentPool`] runs any [`FenceAgent`](crate::agent::FenceAgent) off the
//!   caller's thread on a bounded set of workers and delivers each
//!   [`AgentCompletion`] on a crossbeam channel, for a driver to feed back to the
//!   stack as an input.
//! - [`installed_agents`] lists the `fence_*` executables of a directory.
//! - [`RecordingAgent`] writes every call to a JSON-lines file that
//!   [`crate::agent::ReplayAgent`] answers from.

// The crate's clippy.toml forbids clocks, threads and files so that its protocol
// cores stay deterministic; running processes under a timeout is exactly what they
// are needed for, here and nowhere else.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod capture;
mod installed;
mod pool;
mod process;
mod process_group;
mod recorder;

pub use capture::DEFAULT_OUTPUT_CAP;
pub use installed::{SYSTEM_AGENT_DIRS, installed_agents, system_agents};
pub use pool::{AgentCompletion, AgentPool, PoolError};
pub use process::{DEFAULT_RETRY_PAUSE, ProcessAgent, RunnerLimits};
pub use recorder::{LoadError, RecordingAgent, load_recording};
