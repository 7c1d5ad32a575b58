//! # phalanx-logsys — flight-recorder logging
//!
//! Every record of every level goes into a fixed-size ring of compact binary records
//! (time, level, subsystem, node, thread, file:line, format string and unformatted
//! arguments). Formatting happens only when the ring is read. The ring lives either in
//! memory ([`Logger::memory`], deterministic, for the simulator and tests) or in a
//! memory-mapped file ([`Logger::file`], [`Logger::builder`]) that survives `SIGKILL`,
//! `abort` and panics: the `phalanx-blackbox` tool ([`dump::run`]) reads it back.
//!
//! Run loop: protocol cores call [`record!`] with the time they were given; they never
//! read a clock. Drivers build a file-backed logger, add [`Output`]s with per-subsystem
//! [`Filter`]s (stderr, a log file, syslog), install [`install_panic_hook`], and hand
//! clones of the logger to the cores.
//!
//! Guarantees: writing never blocks on a lock (one atomic `fetch_add` reserves space,
//! the record is stored with relaxed atomic stores and published by its first word) and
//! never fails or panics; a reader recovers every intact record and detects torn or
//! overwritten ones by position and CRC32C. Not done: cross-node collection over the
//! network (merge files with the tool instead), compression, encryption.
//!
//! ```
//! use phalanx_logsys::{record, Level, Logger};
//! let log = Logger::memory(1 << 16);
//! record!(log, 1_000, 7, Info, "totem", "entering {} for ring {}", "GATHER", 12u64);
//! let recs = log.records();
//! assert_eq!(recs[0].message, "entering GATHER for ring 12");
//! ```
//!
//! A crash-surviving recorder with a stderr output for notices:
//!
//! ```
//! use phalanx_logsys::{record, Filter, Level, Logger, Output};
//! let path = std::env::temp_dir().join(format!("doc-blackbox-{}", std::process::id()));
//! let log = Logger::builder()
//!     .file(&path, 1 << 20)
//!     .output(Output::stderr(Filter::new(Level::Warn).subsystem("totem", Level::Notice)))
//!     .build()?;
//! record!(log, phalanx_logsys::monotonic_ns(), 1, Debug, "totem", "token seq {}", 42u64);
//! // Another process (or this one, after a crash) reads the file:
//! let snap = phalanx_logsys::read_file(&path)?;
//! assert_eq!(snap.records[0].message, "token seq 42");
//! # std::fs::remove_file(&path).ok();
//! # Ok::<(), phalanx_logsys::Error>(())
//! ```
#![warn(missing_docs)]

mod error;
mod output;
mod read;
mod ring;

#[cfg(feature = "log")]
pub mod bridge_log;
#[cfg(feature = "tracing")]
pub mod bridge_tracing;
pub mod dump;

pub use error::Error;
pub use output::{Filter, Output, format_line, format_wall};
pub use read::{Snapshot, fuzzing, read_bytes, read_file};

use ring::{Fields, HEADER_LEN, Ring};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Severity of a record. Every level is recorded; output filters apply only when
/// records are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// The node cannot continue as configured.
    Error = 0,
    /// Something unexpected that the node recovers from.
    Warn = 1,
    /// A state change an operator wants to see (membership formed, ...).
    Notice = 2,
    /// Normal operational information.
    Info = 3,
    /// Protocol detail.
    Debug = 4,
    /// Per-message detail.
    Trace = 5,
}

impl Level {
    /// All levels, most severe first.
    pub const ALL: [Level; 6] = [
        Level::Error,
        Level::Warn,
        Level::Notice,
        Level::Info,
        Level::Debug,
        Level::Trace,
    ];

    /// Upper-case name, such as `"INFO"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Notice => "NOTICE",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        }
    }

    /// The level with discriminant `v`.
    pub fn from_u8(v: u8) -> Option<Level> {
        Level::ALL.get(usize::from(v)).copied()
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Level {
    type Err = String;
    /// Parses a level name, case-insensitively (`warning` and `err` are accepted too).
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "error" | "err" => Ok(Level::Error),
            "warn" | "warning" => Ok(Level::Warn),
            "notice" => Ok(Level::Notice),
            "info" => Ok(Level::Info),
            "debug" => Ok(Level::Debug),
            "trace" => Ok(Level::Trace),
            _ => Err(format!("unknown level {s:?}")),
        }
    }
}

/// The static part of a record: where it was written and its format string.
#[derive(Debug)]
pub struct Callsite {
    /// Severity.
    pub level: Level,
    /// Subsystem name, such as `"totem"`.
    pub subsystem: &'static str,
    /// Source file.
    pub file: &'static str,
    /// Source line.
    pub line: u32,
    /// Format string; each `{}` is replaced by the next argument when read.
    pub format: &'static str,
}

/// One argument of a record, stored unformatted.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Arg<'a> {
    /// Unsigned integer.
    U64(u64),
    /// Signed integer.
    I64(i64),
    /// Floating point.
    F64(f64),
    /// Boolean.
    Bool(bool),
    /// Text.
    Str(&'a str),
}

/// Conversion of a value into a record argument.
pub trait ToArg {
    /// The argument form of `self`.
    fn to_arg(&self) -> Arg<'_>;
}

macro_rules! to_arg_unsigned { ($($t:ty),*) => { $(impl ToArg for $t { fn to_arg(&self) -> Arg<'_> { Arg::U64(*self as u64) } })* } }
macro_rules! to_arg_signed { ($($t:ty),*) => { $(impl ToArg for $t { fn to_arg(&self) -> Arg<'_> { Arg::I64(*self as i64) } })* } }
to_arg_unsigned!(u8, u16, u32, u64, usize);
to_arg_signed!(i8, i16, i32, i64, isize);
impl ToArg for f64 {
    fn to_arg(&self) -> Arg<'_> {
        Arg::F64(*self)
    }
}
impl ToArg for bool {
    fn to_arg(&self) -> Arg<'_> {
        Arg::Bool(*self)
    }
}
impl ToArg for str {
    fn to_arg(&self) -> Arg<'_> {
        Arg::Str(self)
    }
}
impl ToArg for String {
    fn to_arg(&self) -> Arg<'_> {
        Arg::Str(self)
    }
}
impl<T: ToArg + ?Sized> ToArg for &T {
    fn to_arg(&self) -> Arg<'_> {
        (**self).to_arg()
    }
}

/// A record read back, with its message formatted.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// Monotonic (or virtual) time in nanoseconds, as given by the writer.
    pub mono_ns: u64,
    /// Wall time in nanoseconds since the Unix epoch, captured by file-backed (driver)
    /// loggers; 0 for [`Logger::memory`], which stays deterministic.
    pub wall_ns: u64,
    /// Severity.
    pub level: Level,
    /// Subsystem name.
    pub subsystem: String,
    /// Node id of the writer.
    pub node: u32,
    /// OS thread id of the writer (0 for [`Logger::memory`]).
    pub thread: u32,
    /// Source file.
    pub file: String,
    /// Source line.
    pub line: u32,
    /// The formatted message.
    pub message: String,
}

/// Formats `format` with `args` substituted for each `{}` in order.
pub fn format_args_deferred(format: &str, args: &[Arg<'_>]) -> String {
    let mut out = String::with_capacity(format.len() + 16 * args.len());
    let mut rest = format;
    let mut it = args.iter();
    while let Some(pos) = rest.find("{}") {
        use std::fmt::Write as _;
        out.push_str(&rest[..pos]);
        let _ = match it.next() {
            Some(Arg::U64(v)) => write!(out, "{v}"),
            Some(Arg::I64(v)) => write!(out, "{v}"),
            Some(Arg::F64(v)) => write!(out, "{v}"),
            Some(Arg::Bool(v)) => write!(out, "{v}"),
            Some(Arg::Str(v)) => out.write_str(v),
            None => out.write_str("{?}"),
        };
        rest = &rest[pos + 2..];
    }
    out.push_str(rest);
    out
}

/// A cheap, clonable handle to a recorder. `Send + Sync`; clones share one ring.
#[derive(Clone, Default)]
pub struct Logger {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    ring: Ring,
    /// Capture wall time and thread ids (driver loggers); off for `Logger::memory`.
    real: bool,
    outputs: Vec<Output>,
    /// `1 + ` the least severe level any output prints; 0 when nothing is printed.
    output_limit: u8,
    path: Option<PathBuf>,
}

impl std::fmt::Debug for Logger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Logger");
        d.field("enabled", &self.inner.is_some());
        if let Some(i) = &self.inner {
            d.field("capacity", &i.ring.capacity)
                .field("path", &i.path)
                .field("outputs", &i.outputs);
        }
        d.finish()
    }
}

impl Logger {
    /// A logger that records nothing; [`record!`] costs one branch.
    pub fn discard() -> Self {
        Self { inner: None }
    }

    /// An in-memory recorder that keeps roughly the newest `capacity_bytes` of records
    /// (rounded down to a power of two, between 16 KiB and 1 GiB). Deterministic: no
    /// wall time, no thread ids, so the same writes give the same records.
    pub fn memory(capacity_bytes: usize) -> Self {
        Self {
            inner: Some(Arc::new(Inner {
                ring: Ring::heap(ring::capacity_for(capacity_bytes.min(MAX_MEMORY))),
                real: false,
                outputs: Vec::new(),
                output_limit: 0,
                path: None,
            })),
        }
    }

    /// A crash-surviving recorder in a new file of about `size` bytes of records
    /// (rounded down to a power of two; the file is 4 KiB larger for its header). An
    /// existing file at `path` is replaced. Records carry wall time and thread ids.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be created or mapped.
    pub fn file(path: impl AsRef<Path>, size: usize) -> Result<Self, Error> {
        Self::builder().file(path, size).build()
    }

    /// A builder for driver loggers (file or memory ring, outputs, options).
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Whether records written to this logger are kept anywhere.
    #[inline]
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Writes one record. Prefer the [`record!`] macro.
    #[inline]
    pub fn write(&self, site: &'static Callsite, node: u32, mono_ns: u64, args: &[Arg<'_>]) {
        if let Some(inner) = &self.inner {
            inner.write(
                site.level,
                site.subsystem,
                site.file,
                site.line,
                site.format,
                node,
                mono_ns,
                args,
            );
        }
    }

    /// Writes one record whose static parts are not `'static` (bridges from other
    /// logging APIs, panic messages). Strings longer than the frame limits are cut.
    #[allow(clippy::too_many_arguments)]
    pub fn write_parts(
        &self,
        level: Level,
        subsystem: &str,
        file: &str,
        line: u32,
        format: &str,
        node: u32,
        mono_ns: u64,
        args: &[Arg<'_>],
    ) {
        if let Some(inner) = &self.inner {
            inner.write(level, subsystem, file, line, format, node, mono_ns, args);
        }
    }

    /// All records still held, oldest first.
    pub fn records(&self) -> Vec<Record> {
        self.snapshot().map(|s| s.records).unwrap_or_default()
    }

    /// Reads the ring now: records plus what the reader had to skip. `None` for
    /// [`Logger::discard`].
    pub fn snapshot(&self) -> Option<Snapshot> {
        read_bytes(&self.snapshot_bytes()?).ok()
    }

    /// A copy of the ring image (header + data), in the file format; `None` for
    /// [`Logger::discard`].
    pub fn snapshot_bytes(&self) -> Option<Vec<u8>> {
        self.inner.as_ref().map(|i| i.ring.snapshot())
    }

    /// Dumps the ring on demand: writes a copy of it to `path` in the file format, which
    /// `phalanx-blackbox` reads. Works for memory loggers too.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be written.
    pub fn dump_to_file(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        let path = path.as_ref();
        let bytes = self.snapshot_bytes().unwrap_or_default();
        std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
    }

    /// Flushes a file-backed ring to disk (`msync`). The records are already safe
    /// against a process crash without this; it matters for a machine crash.
    ///
    /// # Errors
    /// [`Error::Io`] if `msync` fails.
    pub fn flush(&self) -> Result<(), Error> {
        if let Some(i) = &self.inner
            && let ring::Storage::Map(m) = &i.ring.storage
        {
            m.flush()
                .map_err(|e| Error::io(i.path.clone().unwrap_or_default(), e))?;
        }
        Ok(())
    }

    /// Reopens file outputs (call after a log rotator renamed them, e.g. on SIGHUP).
    ///
    /// # Errors
    /// The first [`Error::Io`] met; the other outputs are still reopened.
    pub fn reopen_outputs(&self) -> Result<(), Error> {
        let mut first = Ok(());
        if let Some(i) = &self.inner {
            for o in &i.outputs {
                if let Err(e) = o.reopen()
                    && first.is_ok()
                {
                    first = Err(e);
                }
            }
        }
        first
    }

    /// The recorder file, for file-backed loggers.
    pub fn path(&self) -> Option<&Path> {
        self.inner.as_ref()?.path.as_deref()
    }
}

impl Inner {
    // Not `#[inline]`: only the `is_enabled` check is inlined into each `record!` call
    // site; the encoder stays one out-of-line copy (a call costs ~1 ns).
    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        level: Level,
        subsystem: &str,
        file: &str,
        line: u32,
        format: &str,
        node: u32,
        mono_ns: u64,
        args: &[Arg<'_>],
    ) {
        let (wall_ns, thread) = if self.real {
            (wall_ns(), thread_id())
        } else {
            (0, 0)
        };
        let f = Fields {
            level,
            subsystem,
            file,
            line,
            format,
            node,
            thread,
            mono_ns,
            wall_ns,
        };
        ring::write(&self.ring, &f, args);
        if (level as u8) < self.output_limit {
            self.emit(&f, args);
        }
    }

    #[cold]
    fn emit(&self, f: &Fields<'_>, args: &[Arg<'_>]) {
        if !self
            .outputs
            .iter()
            .any(|o| o.filter().allows(f.level, f.subsystem))
        {
            return;
        }
        let rec = Record {
            mono_ns: f.mono_ns,
            wall_ns: f.wall_ns,
            level: f.level,
            subsystem: f.subsystem.to_string(),
            node: f.node,
            thread: f.thread,
            file: f.file.to_string(),
            line: f.line,
            message: format_args_deferred(f.format, args),
        };
        for o in &self.outputs {
            o.emit(&rec);
        }
    }
}

/// Builds a driver [`Logger`]: a file-backed (or memory) ring plus outputs.
#[derive(Debug, Default)]
pub struct Builder {
    file: Option<(PathBuf, usize)>,
    memory: Option<usize>,
    append: bool,
    deterministic: bool,
    outputs: Vec<Output>,
}

/// Default ring size for file-backed recorders: 8 MiB, as corosync's blackbox.
pub const DEFAULT_SIZE: usize = 8 << 20;

/// Largest in-memory ring (1 GiB); larger requests are clamped.
const MAX_MEMORY: usize = 1 << 30;

impl Builder {
    /// Records go to a memory-mapped file of about `size` bytes of records (see
    /// [`Logger::file`]; [`DEFAULT_SIZE`] is a good default).
    pub fn file(mut self, path: impl AsRef<Path>, size: usize) -> Self {
        self.file = Some((path.as_ref().to_path_buf(), size));
        self
    }

    /// Records go to memory (the default when no file is given; 8 MiB unless set,
    /// at most 1 GiB).
    pub fn memory(mut self, size: usize) -> Self {
        self.memory = Some(size);
        self
    }

    /// Keep the records of an existing recorder file of the same size (a restarted
    /// process continues the ring) instead of replacing it. A file that is not a valid
    /// recorder of that size is replaced.
    pub fn append(mut self, yes: bool) -> Self {
        self.append = yes;
        self
    }

    /// Do not capture wall time or thread ids (as [`Logger::memory`]).
    pub fn deterministic(mut self, yes: bool) -> Self {
        self.deterministic = yes;
        self
    }

    /// Adds an output; records its filter passes are printed as they are written.
    pub fn output(mut self, output: Output) -> Self {
        self.outputs.push(output);
        self
    }

    /// Creates the logger.
    ///
    /// # Errors
    /// [`Error::Io`] if the recorder file cannot be created, sized or mapped.
    pub fn build(self) -> Result<Logger, Error> {
        let (ring, path) = match self.file {
            Some((path, size)) => (open_file_ring(&path, size, self.append)?, Some(path)),
            None => (
                Ring::heap(ring::capacity_for(
                    self.memory.unwrap_or(DEFAULT_SIZE).min(MAX_MEMORY),
                )),
                None,
            ),
        };
        let output_limit = self
            .outputs
            .iter()
            .filter_map(|o| o.filter().max_level())
            .max()
            .map_or(0, |l| l as u8 + 1);
        Ok(Logger {
            inner: Some(Arc::new(Inner {
                ring,
                real: !self.deterministic,
                outputs: self.outputs,
                output_limit,
                path,
            })),
        })
    }
}

fn open_file_ring(path: &Path, size: usize, append: bool) -> Result<Ring, Error> {
    let capacity = ring::capacity_for(size);
    let total = HEADER_LEN as u64 + capacity;
    let io = |e| Error::io(path, e);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io)?;
    let map = |file: &std::fs::File| {
        memmap2::MmapOptions::new()
            .len(total as usize)
            .map_raw(file)
            .map_err(io)
    };
    if append && file.metadata().map_err(io)?.len() == total {
        let mut head = [0u8; 56];
        if std::io::Read::read_exact(&mut &file, &mut head).is_ok()
            && read::header_ok(&head, capacity)
        {
            return Ok(Ring::from_map(map(&file)?, capacity));
        }
    }
    // Fresh: zero-filled (sparse) file, then the header.
    file.set_len(0).map_err(io)?;
    file.set_len(total).map_err(io)?;
    let ring = Ring::from_map(map(&file)?, capacity);
    ring.store_header(&ring::build_header(capacity, 0, wall_ns()));
    Ok(ring)
}

/// Nanoseconds of `CLOCK_MONOTONIC` (comparable between processes of one machine).
/// For drivers and bridges; protocol cores take their time as a parameter instead.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// Nanoseconds since the Unix epoch (0 if the clock is before it).
pub fn wall_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The calling thread's OS thread id (cached per thread).
pub fn thread_id() -> u32 {
    use std::cell::Cell;
    thread_local!(static TID: Cell<u32> = const { Cell::new(0) });
    TID.with(|t| {
        let v = t.get();
        if v != 0 {
            return v;
        }
        #[cfg(target_os = "linux")]
        // SAFETY: gettid has no preconditions.
        let id = unsafe { libc::syscall(libc::SYS_gettid) } as u32;
        #[cfg(not(target_os = "linux"))]
        let id = {
            static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        };
        t.set(id);
        id
    })
}

/// Installs a panic hook that writes the panic (message and location) as an `Error`
/// record of subsystem `panic` to `logger` and flushes it, then runs the previous hook.
pub fn install_panic_hook(logger: Logger) {
    install_hook(logger, None);
}

/// Like [`install_panic_hook`], and also dumps the ring to `dump_path` (as
/// [`Logger::dump_to_file`]) so that the records survive even a memory logger.
pub fn install_panic_hook_with_dump(logger: Logger, dump_path: impl AsRef<Path>) {
    install_hook(logger, Some(dump_path.as_ref().to_path_buf()));
}

fn install_hook(logger: Logger, dump: Option<PathBuf>) {
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = if let Some(s) = info.payload().downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = info.payload().downcast_ref::<String>() {
            s.clone()
        } else {
            "Box<dyn Any>".to_string()
        };
        let (file, line) = info.location().map_or(("", 0), |l| (l.file(), l.line()));
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("<unnamed>");
        logger.write_parts(
            Level::Error,
            "panic",
            file,
            line,
            "thread '{}' panicked: {}",
            0,
            monotonic_ns(),
            &[Arg::Str(name), Arg::Str(&msg)],
        );
        let _ = logger.flush();
        if let Some(p) = &dump {
            let _ = logger.dump_to_file(p);
        }
        prev(info);
    }));
}

/// Writes a record: `record!(logger, mono_ns, node, Level, "subsys", "fmt {}", args..)`.
#[macro_export]
macro_rules! record {
    ($logger:expr, $mono_ns:expr, $node:expr, $level:ident, $subsys:expr, $fmt:literal $(, $arg:expr)* $(,)?) => {{
        let logger: &$crate::Logger = &$logger;
        if logger.is_enabled() {
            static SITE: $crate::Callsite = $crate::Callsite {
                level: $crate::Level::$level,
                subsystem: $subsys,
                file: file!(),
                line: line!(),
                format: $fmt,
            };
            logger.write(&SITE, $node, $mono_ns, &[$($crate::ToArg::to_arg(&$arg)),*]);
        }
    }};
}
