//! Shared helpers for the conformance tests: where the corpus is, and how to
//! run the real Pacemaker tools (which must be installed: the tests fail, not
//! skip, without them).
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The shared CIB corpus: `shared/` beside the checkout, or the directory
/// named by `PHALANX_SHARED_DIR` when the checkout lives elsewhere (a git
/// worktree, say).
pub fn corpus() -> PathBuf {
    let shared = std::env::var_os("PHALANX_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    let dir = shared.join("cib-corpus");
    assert!(
        dir.join("scheduler").is_dir(),
        "CIB corpus not found at {} (the checkout must sit beside shared/)",
        dir.display()
    );
    dir
}

/// The scheduler CIBs, sorted by name.
pub fn scheduler_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus().join("scheduler"))
        .expect("read scheduler corpus")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    files.sort();
    files
}

/// Reads a corpus file as text.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The path of a real Pacemaker tool; panics with an install hint if missing.
pub fn tool(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "the real Pacemaker tool `{name}` is required by this conformance test and was not found; \
         install Debian's pacemaker-cli-utils (apt-get install pacemaker-cli-utils)"
    );
}

/// Runs a tool with `args`, feeding `stdin` if given.
pub fn run(tool_path: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(tool_path);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", tool_path.display()));
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        pipe.write_all(text.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("wait for tool")
}

/// A scratch directory for this test binary, emptied on creation.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("phalanx-cib-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}
