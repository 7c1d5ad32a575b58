//! The watchdog's I/O: the kernel watchdog device, the supervisor process and its
//! loop. (The rest of the `watchdog` module is sans-IO.)
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod device;
mod error;
mod process;
mod supervisor;

pub use device::{DevWatchdog, WDIOC_GETTIMEOUT, WDIOC_SETTIMEOUT};
pub use error::WatchdogError;
pub use process::ProcessWatchdog;
pub use supervisor::{SUPERVISOR_BIN, SuperviseEnd, Target, supervise};

/// The byte that feeds the supervisor (any byte but [`MAGIC_CLOSE`] does).
pub const KEEPALIVE: u8 = b'.';
/// The byte that disarms it, as `V` disarms a kernel watchdog on close.
pub const MAGIC_CLOSE: u8 = b'V';
