//! `phalanx-blackbox`: print recorder files, live or after a crash.
//!
//! ```text
//! phalanx-blackbox [OPTIONS] FILE...
//! ```
//!
//! One record per line, oldest first, the formatted message last. Several files (one
//! per node) are merged into one timeline. Options:
//!
//! - `-l, --level LEVEL` — only records at LEVEL or more severe
//!   (error, warn, notice, info, debug, trace);
//! - `-s, --subsystem NAME[,NAME..]` — only these subsystems (repeatable);
//! - `--since T`, `--until T` — time range, inclusive; T is RFC 3339 UTC
//!   (`2026-11-01T12:00:00.5Z`) or seconds (`1730462400.5`) on the chosen clock;
//! - `--clock wall|mono` — clock for ranges and merging (default wall, which falls back
//!   to the monotonic time for records without wall time);
//! - `--json` — one JSON object per line;
//! - `--stats` — a summary line per file on stderr.
//!
//! Exit status: 0 on success, 1 when a file could not be read (the others are still
//! printed), 2 on a usage error. The binary parses its command line into [`Options`]
//! and calls [`run`].

use crate::{Level, Record, Snapshot, format_line, format_wall, read_file};
use std::io::Write;
use std::process::ExitCode;

/// Which timestamp orders, merges and filters records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Clock {
    /// Wall time; records without one use their monotonic time.
    #[default]
    Wall,
    /// The writer-supplied monotonic (or virtual) time.
    Mono,
}

/// Parsed command line.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Options {
    /// Recorder files.
    pub files: Vec<String>,
    /// Least severe level printed (`None`: all).
    pub level: Option<Level>,
    /// Subsystems printed (empty: all).
    pub subsystems: Vec<String>,
    /// Start of the time range, ns on `clock`.
    pub since: Option<u64>,
    /// End of the time range, ns on `clock`.
    pub until: Option<u64>,
    /// Clock for ranges and merging.
    pub clock: Clock,
    /// JSON lines output.
    pub json: bool,
    /// Summary per file on stderr.
    pub stats: bool,
}

/// Parses `seconds[.fraction]` or RFC 3339 UTC (`YYYY-MM-DDTHH:MM:SS[.frac][Z]`) to ns.
pub fn parse_time(s: &str) -> Result<u64, String> {
    let bad = || format!("bad time {s:?} (RFC 3339 UTC or seconds)");
    let (int, frac) = match s.find('.') {
        Some(i) => (&s[..i], s[i + 1..].trim_end_matches('Z')),
        None => (s.trim_end_matches('Z'), ""),
    };
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let nanos: u64 = format!("{frac:0<9}").parse().map_err(|_| bad())?;
    let secs: u64 = if int.bytes().all(|b| b.is_ascii_digit()) && !int.is_empty() {
        int.parse().map_err(|_| bad())?
    } else {
        // YYYY-MM-DDTHH:MM:SS
        let b = int.as_bytes();
        if b.len() != 19
            || b[4] != b'-'
            || b[7] != b'-'
            || !matches!(b[10], b'T' | b' ')
            || b[13] != b':'
            || b[16] != b':'
        {
            return Err(bad());
        }
        let num = |r: std::ops::Range<usize>| int[r].parse::<u32>().map_err(|_| bad());
        let (y, mo, d, h, mi, se) = (
            num(0..4)?,
            num(5..7)?,
            num(8..10)?,
            num(11..13)?,
            num(14..16)?,
            num(17..19)?,
        );
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
            return Err(bad());
        }
        let days = crate::output::days_from_civil(i64::from(y), mo, d);
        let secs = days * 86_400 + i64::from(h * 3600 + mi * 60 + se);
        u64::try_from(secs).map_err(|_| bad())?
    };
    secs.checked_mul(1_000_000_000)
        .and_then(|v| v.checked_add(nanos))
        .ok_or_else(bad)
}

/// The time of `r` on `clock`.
pub fn time_of(r: &Record, clock: Clock) -> u64 {
    match clock {
        Clock::Wall if r.wall_ns != 0 => r.wall_ns,
        _ => r.mono_ns,
    }
}

/// Whether `r` passes the filters of `o`.
pub fn selected(o: &Options, r: &Record) -> bool {
    let t = time_of(r, o.clock);
    o.level.is_none_or(|l| r.level <= l)
        && (o.subsystems.is_empty() || o.subsystems.contains(&r.subsystem))
        && o.since.is_none_or(|s| t >= s)
        && o.until.is_none_or(|u| t <= u)
}

/// Merges several recorders' records into one timeline (stable: ties keep file order,
/// and a single file keeps its write order).
pub fn merge(snaps: &[Snapshot], clock: Clock) -> Vec<(usize, &Record)> {
    let mut all: Vec<(usize, &Record)> = snaps
        .iter()
        .enumerate()
        .flat_map(|(i, s)| s.records.iter().map(move |r| (i, r)))
        .collect();
    if snaps.len() > 1 {
        all.sort_by_key(|(i, r)| (time_of(r, clock), *i));
    }
    all
}

/// One record as a JSON object (no trailing newline).
pub fn json_line(r: &Record, source: Option<&str>) -> String {
    let mut s = String::with_capacity(160 + r.message.len());
    s.push('{');
    if let Some(src) = source {
        s.push_str("\"source\":");
        json_str(&mut s, src);
        s.push(',');
    }
    s.push_str(&format!(
        "\"mono_ns\":{},\"wall_ns\":{},\"time\":",
        r.mono_ns, r.wall_ns
    ));
    if r.wall_ns != 0 {
        json_str(&mut s, &format_wall(r.wall_ns));
    } else {
        s.push_str("null");
    }
    s.push_str(&format!(
        ",\"node\":{},\"thread\":{},\"level\":\"{}\",\"subsystem\":",
        r.node,
        r.thread,
        r.level.as_str()
    ));
    json_str(&mut s, &r.subsystem);
    s.push_str(",\"file\":");
    json_str(&mut s, &r.file);
    s.push_str(&format!(",\"line\":{},\"message\":", r.line));
    json_str(&mut s, &r.message);
    s.push('}');
    s
}

fn json_str(out: &mut String, v: &str) {
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Runs the tool on parsed options, printing to `out` and diagnostics to `err`.
/// Returns the exit status.
pub fn run(o: &Options, out: &mut dyn Write, err: &mut dyn Write) -> ExitCode {
    let mut status = ExitCode::SUCCESS;
    let mut snaps = Vec::new();
    let mut names = Vec::new();
    for f in &o.files {
        match read_file(f) {
            Ok(s) => {
                if o.stats || s.damaged > 0 || s.truncated {
                    let _ = writeln!(
                        err,
                        "# {f}: {} records, pid {}, capacity {}, cursor {}, {} damaged regions, {} bytes skipped{}",
                        s.records.len(),
                        s.pid,
                        s.capacity,
                        s.cursor,
                        s.damaged,
                        s.skipped_bytes,
                        if s.truncated { ", truncated" } else { "" }
                    );
                }
                snaps.push(s);
                names.push(f.as_str());
            }
            Err(e) => {
                let _ = writeln!(err, "phalanx-blackbox: {f}: {e}");
                status = ExitCode::from(1);
            }
        }
    }
    let multi = snaps.len() > 1;
    for (i, r) in merge(&snaps, o.clock) {
        if !selected(o, r) {
            continue;
        }
        let line = if o.json {
            let mut l = json_line(r, multi.then(|| names[i]));
            l.push('\n');
            l
        } else {
            format_line(r)
        };
        if out.write_all(line.as_bytes()).is_err() {
            // Closed pipe (`| head`): stop quietly.
            return status;
        }
    }
    let _ = out.flush();
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_times() {
        assert_eq!(parse_time("10.5"), Ok(10_500_000_000));
        assert_eq!(
            parse_time("2023-11-14T22:13:20.123456789Z"),
            Ok(1_700_000_000_123_456_789)
        );
        assert!(parse_time("2023-13-14T22:13:20Z").is_err());
        assert!(parse_time("x").is_err());
    }

    #[test]
    fn json_escapes_and_merge_orders_by_time() {
        let rec = |t: u64, node: u32, msg: &str| Record {
            mono_ns: t,
            wall_ns: 0,
            level: Level::Info,
            subsystem: "s".into(),
            node,
            thread: 0,
            file: "f.rs".into(),
            line: 1,
            message: msg.into(),
        };
        let j = json_line(&rec(5, 1, "a\"b\n\u{1}"), None);
        assert!(j.contains(r#""message":"a\"b\n\u0001""#), "{j}");
        assert!(j.contains(r#""time":null"#));
        let a = Snapshot {
            records: vec![rec(1, 1, "a1"), rec(30, 1, "a2")],
            ..Default::default()
        };
        let b = Snapshot {
            records: vec![rec(2, 2, "b1"), rec(30, 2, "b2")],
            ..Default::default()
        };
        let snaps = [a, b];
        let m: Vec<&str> = merge(&snaps, Clock::Wall)
            .iter()
            .map(|(_, r)| r.message.as_str())
            .collect();
        assert_eq!(m, ["a1", "b1", "a2", "b2"]);
    }
}
