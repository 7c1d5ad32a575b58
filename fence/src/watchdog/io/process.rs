//! The process-level watchdog: a `phalanx-watchdog` supervisor started as a child
//! of the node, fed through a pipe. When the node stops feeding (it is fencing
//! itself, or its driver hangs) the supervisor SIGKILLs it. Weaker than a hardware
//! watchdog (a frozen kernel or a killed supervisor stops nothing), but needs no
//! device and no privilege.
#![allow(unsafe_code)]

use super::{KEEPALIVE, MAGIC_CLOSE, WatchdogError};
use crate::watchdog::Watchdog;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a disarmed supervisor may take to exit before it is killed.
const EXIT_WAIT: Duration = Duration::from_secs(2);

/// A running supervisor that kills this process when not fed.
#[derive(Debug)]
pub struct ProcessWatchdog {
    child: Child,
    pipe: Option<ChildStdin>,
    path: PathBuf,
    timeout: Duration,
}

impl ProcessWatchdog {
    /// Starts the supervisor `supervisor` (the `phalanx-watchdog` executable) for
    /// this process with `timeout` (whole milliseconds, at least one). Its
    /// countdown starts now.
    pub fn spawn(supervisor: &Path, timeout: Duration) -> Result<ProcessWatchdog, WatchdogError> {
        let ms = timeout.as_millis();
        if ms == 0 || ms > u128::from(u32::MAX) {
            return Err(WatchdogError::Timeout(timeout));
        }
        let spawn_err = |source| WatchdogError::Spawn {
            path: supervisor.to_path_buf(),
            source,
        };
        let mut child = Command::new(supervisor)
            .arg("--pid")
            .arg(std::process::id().to_string())
            .arg("--timeout-ms")
            .arg(ms.to_string())
            .stdin(Stdio::piped())
            // Not our stdout: whoever reads it waits for its end, which must come
            // when we die, not when the supervisor does.
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(spawn_err)?;
        let pipe = child.stdin.take();
        if let Some(p) = &pipe {
            // Never block the driver on a supervisor that does not read: a full
            // pipe is a failed feed, reported.
            set_nonblocking(p).map_err(spawn_err)?;
        }
        Ok(ProcessWatchdog {
            child,
            pipe,
            path: supervisor.to_path_buf(),
            timeout: Duration::from_millis(ms as u64),
        })
    }

    /// The supervisor's process id.
    pub fn supervisor_pid(&self) -> u32 {
        self.child.id()
    }

    fn write_byte(&mut self, b: u8) -> std::io::Result<()> {
        match &mut self.pipe {
            Some(p) => p.write_all(&[b]),
            None => Err(std::io::Error::other("watchdog already disarmed")),
        }
    }
}

fn set_nonblocking(p: &ChildStdin) -> std::io::Result<()> {
    let fd = p.as_raw_fd();
    // SAFETY: fcntl(2) F_GETFL/F_SETFL on an fd we own; no memory involved.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

impl Watchdog for ProcessWatchdog {
    fn feed(&mut self) -> std::io::Result<()> {
        self.write_byte(KEEPALIVE)
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn disarm(&mut self) -> std::io::Result<()> {
        self.write_byte(MAGIC_CLOSE)?;
        // The end of the pipe right after the `V` is the magic close.
        self.pipe = None;
        let deadline = Instant::now() + EXIT_WAIT;
        loop {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(std::io::Error::other(
                    "the watchdog supervisor did not exit after the magic close",
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn describe(&self) -> String {
        format!(
            "{} pid {} ({} ms)",
            self.path.display(),
            self.child.id(),
            self.timeout.as_millis()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_supervisor_is_a_spawn_error() {
        let e = ProcessWatchdog::spawn(
            Path::new("/nonexistent/phalanx-watchdog"),
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(matches!(e, WatchdogError::Spawn { .. }), "{e}");
    }

    #[test]
    fn zero_timeout_is_refused() {
        let e = ProcessWatchdog::spawn(Path::new("/bin/cat"), Duration::ZERO).unwrap_err();
        assert!(matches!(e, WatchdogError::Timeout(_)), "{e}");
    }
}
