//! Self-fencing with a watchdog: a node that must fence itself (quorum lost under
//! `no-quorum-policy=suicide`, a dead-man condition) stops feeding its watchdog,
//! which then resets the machine (`/dev/watchdog`) or kills the node's process (the
//! `phalanx-watchdog` supervisor) within the watchdog timeout.
//!
//! - [`WatchdogPolicy`] (sans-IO): whether to keep feeding, from quorum state,
//!   time and the configured policy.
//! - [`Watchdog`]: what the driver feeds; implemented in [`io`] by
//!   [`io::DevWatchdog`] (the kernel's watchdog device) and [`io::ProcessWatchdog`]
//!   (a supervisor process fed through a pipe), with [`io::supervise`] the
//!   supervisor's loop.
//!
//! The driver feeds from its own loop, never from a timer thread: a driver that
//! hangs stops feeding, and the node goes.

pub mod io;
mod policy;

pub use policy::{Feed, StarveReason, WatchdogPolicy};

use std::time::Duration;

/// A watchdog the node feeds. Not feeding it for [`Watchdog::timeout`] ends the
/// node (machine reset or process kill); [`Watchdog::disarm`] is the clean stop.
pub trait Watchdog: Send {
    /// Tells the watchdog the node is alive (restarts its countdown).
    fn feed(&mut self) -> std::io::Result<()>;
    /// The timeout in force (a device may round what was asked for).
    fn timeout(&self) -> Duration;
    /// Clean stop: disarms the watchdog (the magic close) so it does not fire.
    /// After this, feeding is an error.
    fn disarm(&mut self) -> std::io::Result<()>;
    /// What it is, for logs (`/dev/watchdog`, `phalanx-watchdog pid 1234`).
    fn describe(&self) -> String;
}
