//! # phalanx-logsys — flight-recorder logging
//!
//! Interface placeholder: the record API the protocol cores use. The crash-surviving
//! memory-mapped ring is built behind this same API.
//!
//! ```
//! use phalanx_logsys::{record, Level, Logger};
//! let log = Logger::memory(1 << 16);
//! record!(log, 1_000, 7, Info, "totem", "entering {} for ring {}", "GATHER", 12u64);
//! let recs = log.records();
//! assert_eq!(recs[0].message, "entering GATHER for ring 12");
//! ```
#![warn(missing_docs)]

use parking_lot::Mutex;
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
    /// Severity.
    pub level: Level,
    /// Subsystem name.
    pub subsystem: String,
    /// Node id of the writer.
    pub node: u32,
    /// Source file and line.
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
        out.push_str(&rest[..pos]);
        match it.next() {
            Some(Arg::U64(v)) => out.push_str(&v.to_string()),
            Some(Arg::I64(v)) => out.push_str(&v.to_string()),
            Some(Arg::F64(v)) => out.push_str(&v.to_string()),
            Some(Arg::Bool(v)) => out.push_str(if *v { "true" } else { "false" }),
            Some(Arg::Str(v)) => out.push_str(v),
            None => out.push_str("{?}"),
        }
        rest = &rest[pos + 2..];
    }
    out.push_str(rest);
    out
}

/// A cheap, clonable handle to a record sink.
#[derive(Clone, Default)]
pub struct Logger {
    sink: Option<Arc<Mutex<MemorySink>>>,
}

#[derive(Default)]
struct MemorySink {
    records: std::collections::VecDeque<Record>,
    bytes: usize,
    capacity: usize,
}

impl std::fmt::Debug for Logger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logger").field("enabled", &self.sink.is_some()).finish()
    }
}

impl Logger {
    /// A logger that records nothing.
    pub fn discard() -> Self {
        Self { sink: None }
    }

    /// An in-memory recorder that keeps roughly the newest `capacity_bytes` of records.
    pub fn memory(capacity_bytes: usize) -> Self {
        Self {
            sink: Some(Arc::new(Mutex::new(MemorySink {
                capacity: capacity_bytes,
                ..MemorySink::default()
            }))),
        }
    }

    /// Whether records written to this logger are kept anywhere.
    #[inline]
    pub fn is_enabled(&self) -> bool {
        self.sink.is_some()
    }

    /// Writes one record. Prefer the [`record!`] macro.
    pub fn write(&self, site: &'static Callsite, node: u32, mono_ns: u64, args: &[Arg<'_>]) {
        let Some(sink) = &self.sink else { return };
        let rec = Record {
            mono_ns,
            level: site.level,
            subsystem: site.subsystem.to_string(),
            node,
            file: site.file.to_string(),
            line: site.line,
            message: format_args_deferred(site.format, args),
        };
        let size = 64 + rec.message.len();
        let mut s = sink.lock();
        s.bytes += size;
        s.records.push_back(rec);
        while s.bytes > s.capacity {
            match s.records.pop_front() {
                Some(old) => s.bytes -= 64 + old.message.len(),
                None => break,
            }
        }
    }

    /// All records still held, oldest first.
    pub fn records(&self) -> Vec<Record> {
        match &self.sink {
            Some(s) => s.lock().records.iter().cloned().collect(),
            None => Vec::new(),
        }
    }
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
