//! The event stream: one line per event, `<mono_ns> <event> <key=value ...>`,
//! written by one thread so that lines from many threads never interleave and
//! bursts go out in few writes.

use crossbeam_channel::{Receiver, Sender, unbounded};
use phalanx::totem::{Guarantee, NodeId};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

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

enum Out {
    Line(String),
    /// Answered once every line sent before it is written and flushed.
    Flush(Sender<()>),
}

/// Sends event lines to the writer thread. Clone it into every thread that reports.
#[derive(Clone)]
pub struct Emitter {
    tx: Sender<Out>,
}

impl Emitter {
    /// Starts the writer thread on stdout. When stdout is gone (the controller
    /// died) it sets `stop`: a node must not outlive its controller.
    pub fn start(stop: &'static AtomicBool) -> std::io::Result<Emitter> {
        let (tx, rx) = unbounded();
        std::thread::Builder::new()
            .name("phalanxd-out".into())
            .spawn(move || write_lines(&rx, stop))?;
        Ok(Emitter { tx })
    }

    /// Emits `<now> <event> <fields>` (`fields` may be empty), timestamped now.
    pub fn emit(&self, event: &str, fields: &str) {
        let t = mono_ns();
        let line = if fields.is_empty() {
            format!("{t} {event}\n")
        } else {
            format!("{t} {event} {fields}\n")
        };
        // The writer only goes away with the process.
        let _ = self.tx.send(Out::Line(line));
    }

    /// Returns once every line emitted so far is written out.
    pub fn flush(&self) {
        let (done, wait) = crossbeam_channel::bounded(1);
        if self.tx.send(Out::Flush(done)).is_ok() {
            let _ = wait.recv();
        }
    }
}

fn write_lines(rx: &Receiver<Out>, stop: &AtomicBool) {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut broken = false;
    for msg in rx.iter() {
        match msg {
            Out::Line(l) if !broken => {
                broken = out.write_all(l.as_bytes()).is_err();
                if rx.is_empty() && !broken {
                    broken = out.flush().is_err();
                }
            }
            Out::Line(_) => {}
            Out::Flush(done) => {
                let _ = out.flush();
                let _ = done.send(());
            }
        }
        if broken {
            stop.store(true, Ordering::SeqCst);
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
