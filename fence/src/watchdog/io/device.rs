//! The kernel's watchdog device (`/dev/watchdog`, the watchdog API of
//! Documentation/watchdog/watchdog-api.rst): opening it arms it; every write
//! restarts its countdown; writing `V` just before closing disarms it ("magic
//! close") unless the kernel was built with `nowayout`; closing without `V`, or the
//! process dying, leaves it armed and the machine resets at the timeout.
#![allow(unsafe_code)]

use super::{KEEPALIVE, MAGIC_CLOSE, WatchdogError};
use crate::watchdog::Watchdog;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Encodes an ioctl request number the way `<asm-generic/ioctl.h>` does
/// (x86, arm, arm64, riscv; not mips/powerpc/sparc, whose layout differs).
const fn ioc(dir: u32, ty: u8, nr: u8, size: u32) -> u32 {
    (dir << 30) | (size << 16) | ((ty as u32) << 8) | nr as u32
}
const IOC_WRITE: u32 = 1;
const IOC_READ: u32 = 2;
/// `_IOWR('W', 6, int)`: set the timeout (seconds, in/out).
pub const WDIOC_SETTIMEOUT: u32 = ioc(IOC_READ | IOC_WRITE, b'W', 6, 4);
/// `_IOR('W', 7, int)`: read the timeout in force (seconds).
pub const WDIOC_GETTIMEOUT: u32 = ioc(IOC_READ, b'W', 7, 4);

/// An open, armed kernel watchdog device.
#[derive(Debug)]
pub struct DevWatchdog {
    file: File,
    path: PathBuf,
    timeout: Duration,
    disarmed: bool,
}

impl DevWatchdog {
    /// Opens (and so arms) the device and sets its timeout, rounded up to whole
    /// seconds; the timeout in force is read back (drivers round or clamp it).
    pub fn open(path: &Path, timeout: Duration) -> Result<DevWatchdog, WatchdogError> {
        let mut secs = seconds(timeout)?;
        // O_CLOEXEC (std's default): an agent or supervisor we start must not
        // hold the device open after we are gone.
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|source| WatchdogError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        // Never write to something that is not a device (a mistyped path to a
        // regular file must not get a `V` written over its first byte).
        let is_char_device = file
            .metadata()
            .map(|m| m.file_type().is_char_device())
            .unwrap_or(false);
        if !is_char_device {
            return Err(WatchdogError::NotADevice(path.to_path_buf()));
        }
        let mut dog = DevWatchdog {
            file,
            path: path.to_path_buf(),
            timeout: Duration::ZERO,
            disarmed: false,
        };
        let ioctl_err = |what, source| WatchdogError::Ioctl {
            path: path.to_path_buf(),
            what,
            source,
        };
        if let Err(e) = dog.ioctl_int(WDIOC_SETTIMEOUT, &mut secs) {
            // Not a watchdog, or the timeout refused: disarm before failing, or
            // the machine would reset at the device's default timeout.
            let _ = dog.disarm();
            return Err(ioctl_err("WDIOC_SETTIMEOUT", e));
        }
        let mut actual = 0;
        if let Err(e) = dog.ioctl_int(WDIOC_GETTIMEOUT, &mut actual) {
            let _ = dog.disarm();
            return Err(ioctl_err("WDIOC_GETTIMEOUT", e));
        }
        dog.timeout = Duration::from_secs(u64::try_from(actual).unwrap_or(0).max(1));
        Ok(dog)
    }

    /// The device's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn ioctl_int(&self, request: u32, value: &mut i32) -> std::io::Result<()> {
        // SAFETY: both requests take a pointer to one `int`, which `value` is,
        // valid and writable for the call; the fd is open for the call's length.
        let r = unsafe {
            libc::ioctl(
                self.file.as_raw_fd(),
                request as _,
                value as *mut i32 as *mut libc::c_int,
            )
        };
        if r < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    fn write_byte(&mut self, b: u8) -> std::io::Result<()> {
        if self.disarmed {
            return Err(std::io::Error::other("watchdog already disarmed"));
        }
        self.file.write_all(&[b])
    }
}

/// A timeout in whole seconds, rounded up, as the ioctl takes it.
fn seconds(timeout: Duration) -> Result<i32, WatchdogError> {
    let secs = timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0);
    match i32::try_from(secs) {
        Ok(s) if s >= 1 => Ok(s),
        _ => Err(WatchdogError::Timeout(timeout)),
    }
}

impl Watchdog for DevWatchdog {
    fn feed(&mut self) -> std::io::Result<()> {
        self.write_byte(KEEPALIVE)
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn disarm(&mut self) -> std::io::Result<()> {
        self.write_byte(MAGIC_CLOSE)?;
        self.disarmed = true;
        // The magic close takes effect when the file closes (on drop).
        Ok(())
    }

    fn describe(&self) -> String {
        format!("{} ({} s)", self.path.display(), self.timeout.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_linux_headers() {
        // From <linux/watchdog.h> as compiled on x86_64/arm64.
        assert_eq!(WDIOC_SETTIMEOUT, 0xC004_5706);
        assert_eq!(WDIOC_GETTIMEOUT, 0x8004_5707);
    }

    #[test]
    fn timeouts_round_up_to_whole_seconds() {
        assert_eq!(seconds(Duration::from_millis(1)).unwrap(), 1);
        assert_eq!(seconds(Duration::from_millis(1000)).unwrap(), 1);
        assert_eq!(seconds(Duration::from_millis(1001)).unwrap(), 2);
        assert!(matches!(
            seconds(Duration::ZERO),
            Err(WatchdogError::Timeout(_))
        ));
        assert!(seconds(Duration::from_secs(u64::from(u32::MAX))).is_err());
    }

    #[test]
    fn a_missing_device_is_an_open_error() {
        let e = DevWatchdog::open(
            Path::new("/nonexistent/phalanx-watchdog"),
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(matches!(e, WatchdogError::Open { .. }), "{e}");
    }

    #[test]
    fn a_regular_file_is_refused_untouched() {
        let path = std::env::temp_dir().join(format!("phalanx-wd-notdev-{}", std::process::id()));
        std::fs::write(&path, b"keep").unwrap();
        let e = DevWatchdog::open(&path, Duration::from_secs(5)).unwrap_err();
        let left = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).ok();
        assert!(matches!(e, WatchdogError::NotADevice(_)), "{e}");
        assert_eq!(left, b"keep");
    }

    #[test]
    fn a_device_that_is_not_a_watchdog_fails_its_ioctl() {
        // /dev/null: a character device without the watchdog ioctls.
        let e = DevWatchdog::open(Path::new("/dev/null"), Duration::from_secs(5)).unwrap_err();
        let text = e.to_string();
        match e {
            WatchdogError::Ioctl { what, source, .. } => {
                assert_eq!(what, "WDIOC_SETTIMEOUT");
                assert_eq!(source.raw_os_error(), Some(libc::ENOTTY), "{text}");
            }
            other => panic!("expected an ioctl error, got {other}"),
        }
    }

    #[test]
    fn feeds_write_keepalives_and_disarm_writes_v_once() {
        // The write protocol, against a plain file standing in for the device.
        let path = std::env::temp_dir().join(format!("phalanx-wd-bytes-{}", std::process::id()));
        let file = File::create(&path).unwrap();
        let mut dog = DevWatchdog {
            file,
            path: path.clone(),
            timeout: Duration::from_secs(3),
            disarmed: false,
        };
        dog.feed().unwrap();
        dog.feed().unwrap();
        dog.disarm().unwrap();
        assert!(dog.feed().is_err(), "feeding after disarm must fail");
        assert!(dog.disarm().is_err(), "a second disarm must fail");
        assert_eq!(dog.timeout(), Duration::from_secs(3));
        drop(dog);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).ok();
        assert_eq!(bytes, b"..V");
    }
}
