//! The event stream: one line per event, `<mono_ns> <event> <key=value ...>`,
//! written whole and at once by the thread that reports it (under a lock, so
//! lines never interleave). No writer thread: handing every line to one cost a
//! few context switches per line, which on a loaded machine starved everything
//! else (the nodes' own drivers, and `ip` in the tests).

use phalanx::totem::{Guarantee, NodeId};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// CLOCK_MONOTONIC in nanoseconds: one clock for every process of the machine
/// (network namespaces do not change it), so a controller can order the events
/// of several nodes on one time line.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    debug_assert_eq!(r, 0, "CLOCK_MONOTONIC is always available on Linux");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Writes event lines to stdout. Clone it into every thread that reports.
#[derive(Clone)]
pub struct Emitter {
    out: Arc<Mutex<std::io::BufWriter<std::io::Stdout>>>,
    /// Set when stdout is gone (the controller died): a node must not outlive
    /// its controller.
    stop: &'static AtomicBool,
}

impl Emitter {
    /// An emitter on stdout that sets `stop` when stdout fails.
    pub fn new(stop: &'static AtomicBool) -> Emitter {
        Emitter {
            out: Arc::new(Mutex::new(std::io::BufWriter::new(std::io::stdout()))),
            stop,
        }
    }

    /// Writes `<now> <event> <fields>` (`fields` may be empty) and flushes it:
    /// once this returns the line is in the pipe, so it survives a `kill -9`
    /// of the node. Timestamped under the lock, so lines come in time order.
    pub fn emit(&self, event: &str, fields: &str) {
        // A thread that panicked while writing left at most a partial line.
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let t = mono_ns();
        let sep = if fields.is_empty() { "" } else { " " };
        let written = writeln!(out, "{t} {event}{sep}{fields}").and_then(|()| out.flush());
        if written.is_err() {
            self.stop.store(true, Ordering::SeqCst);
        }
    }
}

/// `1,2,3`, or `-` for none.
pub fn ids(v: &[NodeId]) -> String {
    list(v.iter().map(|n| n.to_string()))
}

/// Comma-separated, or `-` for none.
pub fn list(items: impl Iterator<Item = String>) -> String {
    let v: Vec<String> = items.collect();
    if v.is_empty() {
        "-".into()
    } else {
        v.join(",")
    }
}

/// `agreed` or `safe`.
pub fn guarantee(g: Guarantee) -> &'static str {
    match g {
        Guarantee::Agreed => "agreed",
        Guarantee::Safe => "safe",
    }
}

/// Bytes as one field value: printable ASCII but `%`, `,` and `=` as is, every
/// other byte (space, control, non-ASCII) as `%XX`. The empty value is `-`, so a
/// value that is just `-` is written `%2D`.
pub fn pct(b: &[u8]) -> String {
    if b.is_empty() {
        return "-".into();
    }
    let mut s = String::with_capacity(b.len());
    for &c in b {
        if c.is_ascii_graphic() && !matches!(c, b'%' | b',' | b'=') && b != b"-" {
            s.push(c as char);
        } else {
            s.push_str(&format!("%{c:02X}"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pct_keeps_tokens_whole() {
        assert_eq!(pct(b"1/2:b1:3"), "1/2:b1:3");
        assert_eq!(pct(b"a b%c,d=e"), "a%20b%25c%2Cd%3De");
        assert_eq!(pct(b""), "-");
        assert_eq!(pct(b"-"), "%2D");
        assert_eq!(pct(b"a-b"), "a-b");
        assert_eq!(pct("é".as_bytes()), "%C3%A9");
    }
}
