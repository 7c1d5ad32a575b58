//! The controller's own record of a run, `nemesis.events`: one line per thing
//! the nemesis did that the processes cannot report themselves — starts,
//! kills, pauses, network changes, the CPG requests and multicasts it asked for
//! (written *before* the command goes out, so a process killed before answering
//! still has them), the final status of each node. Lines are
//! `<mono_ns> <what> key=value ...`, on the nodes' clock (CLOCK_MONOTONIC), so
//! [`crate::history`] can merge them with the processes' own files.

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

/// File name of the record in the run directory.
pub const FILE: &str = "nemesis.events";

/// CLOCK_MONOTONIC in nanoseconds (the clock of the nodes' event lines).
pub fn mono_ns() -> u64 {
    phalanx::logsys::monotonic_ns()
}

/// Appends records to `nemesis.events`.
pub struct Recorder {
    out: std::io::BufWriter<std::fs::File>,
}

impl Recorder {
    /// Creates the file in `dir`.
    pub fn create(dir: &Path) -> std::io::Result<Recorder> {
        Ok(Recorder {
            out: std::io::BufWriter::new(std::fs::File::create(dir.join(FILE))?),
        })
    }

    /// Writes `<now> <what> <fields>`; returns the timestamp.
    pub fn write(&mut self, what: &str, fields: &[(&str, String)]) -> std::io::Result<u64> {
        let t = mono_ns();
        let mut line = format!("{t} {what}");
        for (k, v) in fields {
            let _ = write!(line, " {k}={v}");
        }
        line.push('\n');
        self.out.write_all(line.as_bytes())?;
        Ok(t)
    }

    /// Flushes to the file.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// One parsed record.
pub struct Record {
    /// When (CLOCK_MONOTONIC ns).
    pub at: u64,
    /// What.
    pub what: String,
    /// Its fields.
    pub fields: std::collections::BTreeMap<String, String>,
}

impl Record {
    /// Field `k`.
    pub fn get(&self, k: &str) -> Result<&str, String> {
        self.fields
            .get(k)
            .map(String::as_str)
            .ok_or_else(|| format!("record `{}` at {} has no {k}", self.what, self.at))
    }

    /// Field `k` as a number.
    pub fn num<T: std::str::FromStr>(&self, k: &str) -> Result<T, String> {
        let v = self.get(k)?;
        v.parse()
            .map_err(|_| format!("record `{}`: {k}={v:?} is not a number", self.what))
    }
}

/// Parses the record file of a run.
pub fn read(dir: &Path) -> Result<Vec<Record>, String> {
    let path = dir.join(FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            let mut words = l.split(' ');
            let at = words
                .next()
                .and_then(|w| w.parse().ok())
                .ok_or_else(|| format!("{}:{}: no timestamp", path.display(), i + 1))?;
            let what = words
                .next()
                .ok_or_else(|| format!("{}:{}: no record kind", path.display(), i + 1))?
                .to_string();
            let fields = words
                .filter_map(|w| w.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Ok(Record { at, what, fields })
        })
        .collect()
}
