//! What the fence tests share: where the test agents live, temporary directories,
//! and the check that a real tool is installed (a missing tool fails the test).
#![allow(dead_code, clippy::disallowed_methods, clippy::disallowed_types)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// fence/test-agents in this checkout.
pub fn test_agents_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("test-agents")
}

/// Where Debian's fence-agents installs agents.
pub const SYSTEM_DIR: &str = "/usr/sbin";

/// Fails the test with a clear message when `agent` is not installed in /usr/sbin.
pub fn require_installed(agent: &str) {
    let path = Path::new(SYSTEM_DIR).join(agent);
    assert!(
        path.is_file(),
        "{} is missing: install Debian's fence-agents package (apt-get install fence-agents); \
         these tests run the real agent and never skip",
        path.display()
    );
}

/// A directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh directory named after `tag`, this process and a counter.
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "phalanx-fence-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A path inside it, as a string (agents get paths as parameter text).
    pub fn file(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Whether `pid` is gone or a zombie (dead, only waiting to be reaped by its parent).
pub fn process_is_dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next());
            matches!(state, Some(Some('Z' | 'X')))
        }
    }
}
