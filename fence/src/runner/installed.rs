//! Which fence agents are installed.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Where fence-agents installs its executables.
pub const SYSTEM_AGENT_DIRS: [&str; 2] = ["/usr/sbin", "/sbin"];

/// Most agents listed from one directory.
const MAX_AGENTS: usize = 10_000;

/// The `fence_*` executables (regular files, or links to them, with an execute
/// bit) in `dir`, sorted by name.
pub fn installed_agents(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if !name.starts_with("fence_") || name.len() <= "fence_".len() {
            continue;
        }
        // metadata() follows symlinks: a dangling link is not an agent.
        let Ok(meta) = std::fs::metadata(entry.path()) else {
            continue;
        };
        if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
            names.push(name);
            if names.len() >= MAX_AGENTS {
                break;
            }
        }
    }
    names.sort();
    Ok(names)
}

/// The agents of [`SYSTEM_AGENT_DIRS`] as (name, path); a name found in several
/// directories (`/sbin` is often a link to `/usr/sbin`) is listed once, from the
/// first. Directories that do not exist are skipped.
pub fn system_agents() -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = Vec::new();
    for dir in SYSTEM_AGENT_DIRS {
        let dir = Path::new(dir);
        for name in installed_agents(dir).unwrap_or_default() {
            if !out.iter().any(|(n, _)| *n == name) {
                let path = dir.join(&name);
                out.push((name, path));
            }
        }
    }
    out.sort();
    out
}
