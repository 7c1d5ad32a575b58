//! Connection directories left in the runtime directory (`/dev/shm`) by a
//! phalanxd that was killed (SIGKILL, a crash): removed when the next server
//! starts — only ours, only those of a process that no longer runs.
//!
//! Each server leaves a marker `phalanx-qb-<pid>` in the runtime directory
//! while it runs (removed on a clean stop), holding the process's start time
//! (`/proc/<pid>/stat` field 22). At start, every other marker whose process is
//! gone — no such pid, or a pid now used by a process that started at another
//! time — has its connection directories removed, those named as our server
//! names them (`qb-<that pid>-<client pid>-<serial>-<8 hex digits>`; libqb's
//! own servers end in 6 `mkdtemp` characters), then the marker itself. A
//! marker of a live process, or of one whose start time is unknown, is left
//! alone.

use std::io;
use std::path::{Path, PathBuf};

/// The marker files' name prefix.
const MARKER_PREFIX: &str = "phalanx-qb-";

/// This server's marker; removed when dropped (a clean stop).
#[derive(Debug)]
pub struct Marker {
    path: PathBuf,
}

impl Marker {
    /// Writes `<dir>/phalanx-qb-<our pid>` with our start time.
    pub fn create(dir: &Path) -> io::Result<Marker> {
        let pid = std::process::id();
        let path = dir.join(format!("{MARKER_PREFIX}{pid}"));
        let start = start_time(pid).unwrap_or(0);
        std::fs::write(&path, format!("{start}\n"))?;
        Ok(Marker { path })
    }
}

impl Drop for Marker {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// When process `pid` started (clock ticks since boot), if it runs.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`: comm may hold anything, so count fields
    // after the last ')': state is field 3, starttime field 22.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(22 - 3)?
        .parse()
        .ok()
}

/// Whether the process a marker describes (`pid`, started at `start`; 0:
/// unknown) still runs.
fn still_runs(pid: u32, start: u64) -> bool {
    match start_time(pid) {
        None => false,
        Some(now) => start == 0 || now == start,
    }
}

/// The server pid in a connection directory name of ours:
/// `qb-<server pid>-<client pid>-<serial>-<8 hex digits>`.
pub fn server_pid_of(name: &str) -> Option<u32> {
    let mut parts = name.strip_prefix("qb-")?.split('-');
    let pid = parts.next()?.parse().ok()?;
    parts.next()?.parse::<u32>().ok()?;
    parts.next()?.parse::<u64>().ok()?;
    let random = parts.next()?;
    let ours = random.len() == 8 && random.bytes().all(|b| b.is_ascii_hexdigit());
    (ours && parts.next().is_none()).then_some(pid)
}

/// Removes from `dir` the connection directories of every dead server that
/// left a marker, and those markers; what was removed, and why.
pub fn remove_stale(dir: &Path) -> Vec<(PathBuf, String)> {
    let me = std::process::id();
    let mut removed = Vec::new();
    let names = |dir: &Path| -> Vec<(String, PathBuf, std::fs::Metadata)> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| {
                let meta = e.path().symlink_metadata().ok()?;
                Some((e.file_name().to_str()?.to_string(), e.path(), meta))
            })
            .collect()
    };
    let entries = names(dir);
    for (name, marker, meta) in &entries {
        let Some(pid) = name
            .strip_prefix(MARKER_PREFIX)
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me || !meta.is_file() {
            continue;
        }
        let start = std::fs::read_to_string(marker)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        if still_runs(pid, start) {
            continue;
        }
        let why = format!("phalanxd pid {pid} no longer runs");
        for (other, path, meta) in &entries {
            // Real directories only (never a link planted in the shared tmpfs).
            if server_pid_of(other) == Some(pid)
                && meta.is_dir()
                && std::fs::remove_dir_all(path).is_ok()
            {
                removed.push((path.clone(), why.clone()));
            }
        }
        if std::fs::remove_file(marker).is_ok() {
            removed.push((marker.clone(), why));
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_directory_names_only() {
        assert_eq!(server_pid_of("qb-41-77-3-0a1b2c3d"), Some(41));
        assert_eq!(server_pid_of("qb-41-77-3-a1b2c3"), None, "libqb's");
        assert_eq!(server_pid_of("qb-41-77-3-0a1b2c3d-x"), None);
        assert_eq!(server_pid_of("qb-x-77-3-0a1b2c3d"), None);
        assert_eq!(server_pid_of("phalanx-qb-41"), None);
    }

    #[test]
    fn a_dead_servers_directories_go_a_live_ones_stay() {
        let dir = std::env::temp_dir().join(format!("phalanx-stale-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // A process that ran and was reaped: its pid is free.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        std::fs::write(dir.join(format!("phalanx-qb-{dead}")), "12345\n").unwrap();
        // A marker of the running process other than "me" cannot be made in
        // one process; the parent (the test runner's shell or cargo) stands in.
        let parent = std::os::unix::process::parent_id();
        let parent_start = start_time(parent).unwrap();
        std::fs::write(
            dir.join(format!("phalanx-qb-{parent}")),
            format!("{parent_start}\n"),
        )
        .unwrap();
        for d in [
            format!("qb-{dead}-5-1-0000abcd"),
            format!("qb-{dead}-5-2-a1b2c3"),
            format!("qb-{parent}-5-1-0000abcd"),
        ] {
            std::fs::create_dir(dir.join(&d)).unwrap();
            std::fs::write(dir.join(&d).join("qb-request-cpg-header"), b"x").unwrap();
        }
        let removed = remove_stale(&dir);
        let gone: Vec<String> = removed
            .iter()
            .map(|(p, _)| p.file_name().unwrap().to_str().unwrap().to_string())
            .collect();
        assert_eq!(
            gone,
            [
                format!("qb-{dead}-5-1-0000abcd"),
                format!("phalanx-qb-{dead}")
            ]
        );
        assert!(
            dir.join(format!("qb-{dead}-5-2-a1b2c3")).exists(),
            "not ours"
        );
        assert!(dir.join(format!("qb-{parent}-5-1-0000abcd")).exists());
        // The same pid with another start time is another process: stale.
        std::fs::write(
            dir.join(format!("phalanx-qb-{parent}")),
            format!("{}\n", parent_start + 1),
        )
        .unwrap();
        assert_eq!(remove_stale(&dir).len(), 2);
        assert!(!dir.join(format!("qb-{parent}-5-1-0000abcd")).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
