use std::path::PathBuf;

/// Why a watchdog could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum WatchdogError {
    /// The device could not be opened (missing, busy: only one opener at a time,
    /// no permission).
    #[error("{path}: {source}")]
    Open {
        /// The device.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The path is not a character device (nothing was written to it).
    #[error("{0}: not a watchdog device (not a character device)")]
    NotADevice(PathBuf),
    /// An ioctl failed: not a watchdog device, or it refused the timeout.
    #[error("{path}: {what}: {source}")]
    Ioctl {
        /// The device.
        path: PathBuf,
        /// Which request.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The timeout cannot be expressed (zero, or more seconds than an `int`).
    #[error("watchdog timeout {0:?} out of range")]
    Timeout(std::time::Duration),
    /// The supervisor process could not be started.
    #[error("cannot start the watchdog supervisor {path}: {source}")]
    Spawn {
        /// The supervisor executable.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}
