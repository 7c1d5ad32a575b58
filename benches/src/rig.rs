//! The Corosync bench rig this harness mirrors: the directory with cpgperf, bench.sh
//! and summarize.sh, kept beside the repository (`../shared/bench`). The harness only
//! uses its `summarize.sh`, as an independent check of its own summary.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The rig's summarizer: `summarize.sh RAW...` prints the median table.
const SUMMARIZE: &str = "summarize.sh";

/// Where the rig is looked for when neither `--corosync-bench` nor
/// `PHALANX_COROSYNC_BENCH` names it: `../shared/bench` beside the repository this
/// binary was built from (this package is the repository's `benches/`).
pub fn default_dir() -> PathBuf {
    let package = Path::new(env!("CARGO_MANIFEST_DIR"));
    match package.parent().and_then(Path::parent) {
        Some(beside_repository) => beside_repository.join("shared/bench"),
        None => package.join("../../shared/bench"),
    }
}

/// The rig to use: `explicit` (which must hold summarize.sh), else the default
/// directory when it holds one, else none.
///
/// # Errors
/// `explicit` has no summarize.sh.
pub fn locate(explicit: Option<&Path>) -> Result<Option<PathBuf>, String> {
    match explicit {
        Some(dir) if dir.join(SUMMARIZE).is_file() => Ok(Some(dir.to_path_buf())),
        Some(dir) => Err(format!(
            "--corosync-bench {}: no {SUMMARIZE} there",
            dir.display()
        )),
        None => {
            let dir = default_dir();
            Ok(dir.join(SUMMARIZE).is_file().then_some(dir))
        }
    }
}

/// Writes `out/summarize-sh.md`: the rig's summary of `out/raw.txt`.
///
/// # Errors
/// The file cannot be written, or summarize.sh cannot run or fails.
pub fn summarize(rig: &Path, out: &Path) -> io::Result<()> {
    let target = out.join("summarize-sh.md");
    // Run through bash: a copy of the rig may have lost its exec bits.
    let status = Command::new("bash")
        .arg(rig.join(SUMMARIZE))
        .arg(out.join("raw.txt"))
        .stdin(Stdio::null())
        .stdout(File::create(&target)?)
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{SUMMARIZE} exited with {status}"
        )))
    }
}
