//! Small C clients of the real Corosync libraries, built with gcc for the
//! tests that run them against `phalanxd` (sources in `tests/compat_ipc/`).

use super::conf::TestDir;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds `tests/compat_ipc/<name>.c` against the real Corosync library `lib`
/// (`-l<lib>`) into `dir`; panics with gcc's message when it cannot.
pub fn build(dir: &TestDir, name: &str, lib: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/compat_ipc/{name}.c"));
    let bin = dir.path.join(name);
    let out = Command::new("gcc")
        .args(["-Wall", "-Werror", "-o"])
        .arg(&bin)
        .arg(&src)
        .arg(format!("-l{lib}"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run gcc ({e}): .ci/run installs gcc and lib{lib}-dev"));
    assert!(
        out.status.success(),
        "building {name} failed (lib{lib}-dev installed?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    bin
}
