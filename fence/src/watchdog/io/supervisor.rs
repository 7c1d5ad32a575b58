//! The supervisor's loop: the process-level watchdog. It reads feeds from a pipe
//! and SIGKILLs its target when none came for the timeout — whatever the target
//! is doing, hung driver thread included. Kernel watchdog semantics: a `V` as the
//! last byte before the end of the pipe disarms it; the end of the pipe without it
//! does not (the countdown goes on while the target lives).
#![allow(unsafe_code)]

use super::MAGIC_CLOSE;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

/// The supervisor executable's name (a bin of the `phalanx` package).
pub const SUPERVISOR_BIN: &str = "phalanx-watchdog";

/// How often the supervisor looks at whether its target still exists.
const CHECK_EVERY: Duration = Duration::from_millis(100);

/// The process the supervisor kills.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Its process id.
    pub pid: u32,
    /// The target is the supervisor's parent: it is alive while `getppid()` is
    /// its pid. (Safer than `kill(pid, 0)`, which would also find another process
    /// that reused the pid.)
    pub is_parent: bool,
}

impl Target {
    fn alive(&self) -> bool {
        if self.is_parent {
            // SAFETY: getppid(2) takes nothing and cannot fail.
            return unsafe { libc::getppid() } as u32 == self.pid;
        }
        // SAFETY: kill(2) with signal 0 only checks the pid; no memory involved.
        let r = unsafe { libc::kill(self.pid as libc::pid_t, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }

    fn kill(&self) -> std::io::Result<()> {
        // SAFETY: kill(2) on one positive pid (checked at start), no memory involved.
        if unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGKILL) } == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}

/// How supervision ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SuperviseEnd {
    /// Disarmed by a magic close: the target stopped cleanly.
    Disarmed,
    /// The target is gone by itself.
    TargetGone,
    /// Not fed for `unfed_for` (≥ the timeout): the target was SIGKILLed.
    Killed {
        /// Time since the last feed (or since the start).
        unfed_for: Duration,
    },
}

/// Supervises `target`: every byte read from `input` feeds; a gap of `timeout`
/// SIGKILLs the target. Writes one line to `log` saying why it ends.
pub fn supervise<F: AsFd + Read>(
    mut input: F,
    target: Target,
    timeout: Duration,
    log: &mut dyn Write,
) -> std::io::Result<SuperviseEnd> {
    if target.pid <= 1 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "refusing to supervise pid 0 or 1",
        ));
    }
    let mut last_feed = Instant::now();
    let mut expect_close = false;
    let mut input_open = true;
    let mut buf = [0u8; 256];
    loop {
        if !target.alive() {
            let _ = writeln!(log, "phalanx-watchdog: pid {} is gone", target.pid);
            return Ok(SuperviseEnd::TargetGone);
        }
        let unfed_for = last_feed.elapsed();
        if unfed_for >= timeout {
            target.kill()?;
            let _ = writeln!(
                log,
                "phalanx-watchdog: pid {} not fed for {} ms (timeout {} ms): SIGKILL",
                target.pid,
                unfed_for.as_millis(),
                timeout.as_millis()
            );
            return Ok(SuperviseEnd::Killed { unfed_for });
        }
        let wait = (timeout - unfed_for).min(CHECK_EVERY);
        if !input_open {
            // The pipe ended without a magic close: keep counting.
            std::thread::sleep(wait);
            continue;
        }
        if !readable(&input, wait)? {
            continue;
        }
        match input.read(&mut buf) {
            Ok(0) => {
                if expect_close {
                    let _ = writeln!(log, "phalanx-watchdog: pid {} disarmed", target.pid);
                    return Ok(SuperviseEnd::Disarmed);
                }
                input_open = false;
            }
            Ok(n) => {
                last_feed = Instant::now();
                // A pipe keeps no write boundaries (the kernel's rule is "a `V`
                // in the last write"): here it is "`V` is the last byte".
                expect_close = buf[n - 1] == MAGIC_CLOSE;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

/// Waits up to `wait` for `fd` to be readable (or at its end).
fn readable(fd: &impl AsFd, wait: Duration) -> std::io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: fd.as_fd().as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(wait.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd, count 1; the fd is borrowed for the call.
    let r = unsafe { libc::poll(&mut pfd, 1, ms) };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() == std::io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(e);
    }
    Ok(r > 0)
}

#[cfg(test)]
mod tests {
    use super::super::KEEPALIVE;
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Child, Command};

    const TIMEOUT: Duration = Duration::from_millis(300);

    fn sleeper() -> (Child, Target) {
        let child = Command::new("sleep").arg("30").spawn().expect("sleep(1)");
        let t = Target {
            pid: child.id(),
            is_parent: false,
        };
        (child, t)
    }

    fn run(
        input: std::io::PipeReader,
        t: Target,
    ) -> std::thread::JoinHandle<(SuperviseEnd, String, Duration)> {
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut log = Vec::new();
            let end = supervise(input, t, TIMEOUT, &mut log).unwrap();
            (end, String::from_utf8(log).unwrap(), start.elapsed())
        })
    }

    #[test]
    fn an_unfed_target_is_killed_after_the_timeout() {
        let (mut child, t) = sleeper();
        let (r, w) = std::io::pipe().unwrap();
        let (end, log, took) = run(r, t).join().unwrap();
        drop(w);
        let SuperviseEnd::Killed { unfed_for } = end else {
            panic!("expected a kill, got {end:?}");
        };
        assert!(
            unfed_for >= TIMEOUT && took >= TIMEOUT,
            "{unfed_for:?} {took:?}"
        );
        assert!(took < TIMEOUT * 3, "killed only after {took:?}");
        assert!(log.contains("not fed for"), "{log}");
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
    }

    #[test]
    fn a_fed_target_lives_and_a_magic_close_disarms() {
        let (mut child, t) = sleeper();
        let (r, mut w) = std::io::pipe().unwrap();
        let h = run(r, t);
        let start = Instant::now();
        // Feed for four timeouts, every third of one.
        while start.elapsed() < TIMEOUT * 4 {
            w.write_all(&[KEEPALIVE]).unwrap();
            std::thread::sleep(TIMEOUT / 3);
        }
        assert!(child.try_wait().unwrap().is_none(), "fed target died");
        w.write_all(&[MAGIC_CLOSE]).unwrap();
        drop(w);
        let (end, log, _) = h.join().unwrap();
        assert_eq!(end, SuperviseEnd::Disarmed, "{log}");
        assert!(child.try_wait().unwrap().is_none(), "disarmed target died");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn closing_without_magic_keeps_the_countdown() {
        let (mut child, t) = sleeper();
        let (r, mut w) = std::io::pipe().unwrap();
        // A V followed by a plain feed is no magic close.
        w.write_all(&[MAGIC_CLOSE]).unwrap();
        w.write_all(&[KEEPALIVE]).unwrap();
        drop(w);
        let (end, _, took) = run(r, t).join().unwrap();
        assert!(matches!(end, SuperviseEnd::Killed { .. }), "{end:?}");
        assert!(took >= TIMEOUT);
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
    }

    #[test]
    fn a_target_that_exits_ends_supervision_without_a_kill() {
        let mut child = Command::new("true").spawn().unwrap();
        let t = Target {
            pid: child.id(),
            is_parent: false,
        };
        child.wait().unwrap(); // reaped: the pid no longer exists
        let (r, _w) = std::io::pipe().unwrap();
        let (end, ..) = run(r, t).join().unwrap();
        assert_eq!(end, SuperviseEnd::TargetGone);
    }

    #[test]
    fn pid_one_is_refused() {
        let (r, _w) = std::io::pipe().unwrap();
        let t = Target {
            pid: 1,
            is_parent: false,
        };
        assert!(supervise(r, t, TIMEOUT, &mut Vec::new()).is_err());
    }
}
