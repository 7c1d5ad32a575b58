//! Bridge from the [`log`] facade: every `log::info!` (etc.) becomes a record.
//!
//! The target becomes the subsystem; the message is formatted at write time (a
//! `fmt::Arguments` cannot be stored unformatted), except for plain literals, which are
//! stored without formatting.
//!
//! ```
//! use phalanx_logsys::{Logger, bridge_log::LogBridge};
//! let rec = Logger::memory(1 << 16);
//! let bridge = LogBridge::new(rec.clone(), 3);
//! // In an application: `bridge.install().unwrap();` then use `log::info!` anywhere.
//! log::Log::log(&bridge, &log::Record::builder()
//!     .level(log::Level::Warn)
//!     .target("app")
//!     .args(format_args!("disk {}% full", 91))
//!     .build());
//! let r = &rec.records()[0];
//! assert_eq!((r.subsystem.as_str(), r.message.as_str(), r.node), ("app", "disk 91% full", 3));
//! ```

use crate::{Arg, Level, Logger, monotonic_ns};
use std::cell::RefCell;
use std::fmt::Write as _;

/// A [`log::Log`] implementation that writes to a [`Logger`].
#[derive(Clone, Debug)]
pub struct LogBridge {
    logger: Logger,
    node: u32,
}

impl LogBridge {
    /// Records go to `logger` with node id `node` and `CLOCK_MONOTONIC` time.
    pub fn new(logger: Logger, node: u32) -> Self {
        Self { logger, node }
    }

    /// Installs this bridge as the global `log` logger with every level enabled (the
    /// recorder keeps everything; use the logger's outputs to filter what is printed).
    ///
    /// # Errors
    /// If a global logger was already installed.
    pub fn install(self) -> Result<(), log::SetLoggerError> {
        log::set_boxed_logger(Box::new(self))?;
        log::set_max_level(log::LevelFilter::Trace);
        Ok(())
    }
}

fn level(l: log::Level) -> Level {
    match l {
        log::Level::Error => Level::Error,
        log::Level::Warn => Level::Warn,
        log::Level::Info => Level::Info,
        log::Level::Debug => Level::Debug,
        log::Level::Trace => Level::Trace,
    }
}

thread_local!(static BUF: RefCell<String> = const { RefCell::new(String::new()) });

impl log::Log for LogBridge {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        self.logger.is_enabled()
    }

    fn log(&self, r: &log::Record<'_>) {
        if !self.logger.is_enabled() {
            return;
        }
        let write = |msg: &str| {
            self.logger.write_parts(
                level(r.level()),
                r.target(),
                r.file().unwrap_or(""),
                r.line().unwrap_or(0),
                "{}",
                self.node,
                monotonic_ns(),
                &[Arg::Str(msg)],
            )
        };
        if let Some(s) = r.args().as_str() {
            return write(s);
        }
        // Reuse a per-thread buffer; a `Display` impl that logs re-enters and gets its own.
        BUF.with(|b| match b.try_borrow_mut() {
            Ok(mut buf) => {
                buf.clear();
                let _ = write!(buf, "{}", r.args());
                write(&buf);
            }
            Err(_) => write(&r.args().to_string()),
        });
    }

    fn flush(&self) {
        let _ = self.logger.flush();
    }
}
