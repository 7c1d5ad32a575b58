//! Outputs: stderr, a log file (reopened for rotation) and syslog, each with
//! per-subsystem level filters. Outputs see only the records their filter lets through;
//! the ring keeps every record regardless.

use crate::{Error, Level, Record};
use parking_lot::Mutex;
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

/// Which records an output prints: a default level plus per-subsystem overrides.
///
/// A record passes when its level is at least as severe as the level in force for its
/// subsystem (`Error` is the most severe).
///
/// ```
/// use phalanx_logsys::{Filter, Level};
/// let f = Filter::new(Level::Notice).subsystem("totem", Level::Debug).subsystem_off("dlm");
/// assert!(f.allows(Level::Debug, "totem"));
/// assert!(!f.allows(Level::Info, "cpg"));
/// assert!(!f.allows(Level::Error, "dlm"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    default: Option<Level>,
    subsystems: Vec<(String, Option<Level>)>,
}

impl Filter {
    /// Passes records at `level` or more severe, in every subsystem.
    pub fn new(level: Level) -> Self {
        Self {
            default: Some(level),
            subsystems: Vec::new(),
        }
    }

    /// Passes nothing (add subsystems to pass some).
    pub fn off() -> Self {
        Self {
            default: None,
            subsystems: Vec::new(),
        }
    }

    /// Sets the level for one subsystem.
    pub fn subsystem(mut self, name: &str, level: Level) -> Self {
        self.set(name, Some(level));
        self
    }

    /// Silences one subsystem.
    pub fn subsystem_off(mut self, name: &str) -> Self {
        self.set(name, None);
        self
    }

    fn set(&mut self, name: &str, level: Option<Level>) {
        match self.subsystems.iter_mut().find(|(n, _)| n == name) {
            Some(e) => e.1 = level,
            None => self.subsystems.push((name.to_string(), level)),
        }
    }

    /// Whether a record of `level` in `subsystem` passes.
    pub fn allows(&self, level: Level, subsystem: &str) -> bool {
        let limit = match self.subsystems.iter().find(|(n, _)| n == subsystem) {
            Some((_, l)) => *l,
            None => self.default,
        };
        limit.is_some_and(|l| level <= l)
    }

    /// The least severe level any subsystem passes (`None`: passes nothing).
    pub(crate) fn max_level(&self) -> Option<Level> {
        self.subsystems
            .iter()
            .filter_map(|(_, l)| *l)
            .chain(self.default)
            .max()
    }
}

enum Kind {
    Stderr,
    File {
        path: PathBuf,
        file: Mutex<std::fs::File>,
    },
    Syslog {
        sock: UnixDatagram,
        path: PathBuf,
        ident: String,
        facility: u8,
    },
}

/// A destination for formatted records, with its own [`Filter`].
pub struct Output {
    kind: Kind,
    filter: Filter,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            Kind::Stderr => "stderr".to_string(),
            Kind::File { path, .. } => format!("file {}", path.display()),
            Kind::Syslog { path, .. } => format!("syslog {}", path.display()),
        };
        f.debug_struct("Output")
            .field("kind", &kind)
            .field("filter", &self.filter)
            .finish()
    }
}

fn open_append(path: &Path) -> Result<std::fs::File, Error> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, e))
}

/// syslog facility `daemon`.
const FACILITY_DAEMON: u8 = 3;

impl Output {
    /// Standard error, one line per record.
    pub fn stderr(filter: Filter) -> Self {
        Self {
            kind: Kind::Stderr,
            filter,
        }
    }

    /// A log file opened for appending; [`Logger::reopen_outputs`] reopens it after the
    /// file was renamed by a log rotator.
    ///
    /// [`Logger::reopen_outputs`]: crate::Logger::reopen_outputs
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be opened.
    pub fn file(path: impl AsRef<Path>, filter: Filter) -> Result<Self, Error> {
        let path = path.as_ref().to_path_buf();
        let file = Mutex::new(open_append(&path)?);
        Ok(Self {
            kind: Kind::File { path, file },
            filter,
        })
    }

    /// The local syslog daemon over the datagram socket `/dev/log`, facility `daemon`,
    /// tagged `ident[pid]`.
    ///
    /// # Errors
    /// [`Error::Io`] if no socket can be created.
    pub fn syslog(ident: &str, filter: Filter) -> Result<Self, Error> {
        Self::syslog_at("/dev/log", ident, filter)
    }

    /// Like [`Output::syslog`] with another socket path (tests, containers).
    ///
    /// # Errors
    /// [`Error::Io`] if no socket can be created.
    pub fn syslog_at(socket: impl AsRef<Path>, ident: &str, filter: Filter) -> Result<Self, Error> {
        let path = socket.as_ref().to_path_buf();
        let sock = UnixDatagram::unbound().map_err(|e| Error::io(&path, e))?;
        Ok(Self {
            kind: Kind::Syslog {
                sock,
                path,
                ident: ident.to_string(),
                facility: FACILITY_DAEMON,
            },
            filter,
        })
    }

    pub(crate) fn filter(&self) -> &Filter {
        &self.filter
    }

    /// Prints `rec` if the filter passes it. Output errors are ignored: logging must
    /// never take the node down (the ring still has the record).
    pub(crate) fn emit(&self, rec: &Record) {
        if !self.filter.allows(rec.level, &rec.subsystem) {
            return;
        }
        match &self.kind {
            Kind::Stderr => {
                let line = format_line(rec);
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
            }
            Kind::File { file, .. } => {
                let line = format_line(rec);
                let _ = file.lock().write_all(line.as_bytes());
            }
            Kind::Syslog {
                sock,
                path,
                ident,
                facility,
            } => {
                let sev = match rec.level {
                    Level::Error => 3,
                    Level::Warn => 4,
                    Level::Notice => 5,
                    Level::Info => 6,
                    Level::Debug | Level::Trace => 7,
                };
                let msg = format!(
                    "<{}>{}[{}]: [{}] {}",
                    u32::from(*facility) * 8 + sev,
                    ident,
                    std::process::id(),
                    rec.subsystem,
                    rec.message
                );
                let _ = sock.send_to(msg.as_bytes(), path);
            }
        }
    }

    /// Reopens a file output (after rotation); other kinds need nothing.
    pub(crate) fn reopen(&self) -> Result<(), Error> {
        if let Kind::File { path, file } = &self.kind {
            *file.lock() = open_append(path)?;
        }
        Ok(())
    }
}

/// One line: `<wall time> <mono s> node=<n> tid=<t> <LEVEL> <subsys> <file:line> <message>`
/// (`-` in place of the wall time when the record has none).
///
/// Newlines in the message are escaped so that one record is one line.
pub fn format_line(rec: &Record) -> String {
    let mut s = String::with_capacity(96 + rec.message.len());
    if rec.wall_ns != 0 {
        s.push_str(&format_wall(rec.wall_ns));
    } else {
        s.push('-');
    }
    s.push_str(&format!(
        " {}.{:09} node={} tid={} {:<6} {} {}:{} ",
        rec.mono_ns / 1_000_000_000,
        rec.mono_ns % 1_000_000_000,
        rec.node,
        rec.thread,
        rec.level.as_str(),
        rec.subsystem,
        rec.file,
        rec.line
    ));
    for c in rec.message.chars() {
        match c {
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            c => s.push(c),
        }
    }
    s.push('\n');
    s
}

/// Formats nanoseconds since the Unix epoch as RFC 3339 UTC with nanoseconds.
pub fn format_wall(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        ns % 1_000_000_000
    )
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// (year, month, day) to days since 1970-01-01.
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_time_round_trips_through_civil_dates() {
        assert_eq!(format_wall(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            format_wall(1_700_000_000_123_456_789),
            "2023-11-14T22:13:20.123456789Z"
        );
        for days in [-1000i64, 0, 59, 60, 365, 11_016, 19_675, 100_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
