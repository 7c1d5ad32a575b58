//! Does this host still owe the cluster a fencing for an earlier process?
//!
//! The kernel's DLM keeps a host's lockspaces until the host reboots, so a
//! node's locks can only end with a fencing or a clean leave. Ours live in the
//! process: `kill -9` ends them, and if every process that saw it die is gone
//! too (killed, partitioned, restarted), nothing running remembers what it held
//! — a fresh lockspace would grant those resources while the dead process's
//! writes may still sit in the host's page cache. So before a node first joins
//! a lockspace it writes `<state_dir>/dlm-active-<node>` holding the host's
//! boot id and its pid, and removes it when it stops cleanly. A process that
//! finds the file with the *same* boot id knows its predecessor ended unclean
//! on this boot: it starts, says so to the cluster
//! ([`PeerMessage::Present`](phalanx_fence::core::PeerMessage::Present)), joins
//! no lockspace, and every member treats the node as in doubt until it is
//! fenced. A different boot id means the host was power-cycled since (what a
//! fencing does): the file is stale and removed. `docs/dlm.md` has the timeline.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Where Linux tells a boot apart from the next.
pub const DEFAULT_BOOT_ID_FILE: &str = "/proc/sys/kernel/random/boot_id";

/// The marker of one node in one state directory.
#[derive(Debug)]
pub(crate) struct DlmMarker {
    path: PathBuf,
    boot_id: String,
    /// Written by this process (removed again at a clean stop).
    armed: bool,
    /// The predecessor's marker, kept: only a fencing (a new boot) or the
    /// operator may end the doubt it records.
    inherited: bool,
}

/// What a node found of its predecessor's DLM marker when it started
/// ([`Node::dlm_predecessor`](super::Node::dlm_predecessor)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DlmPredecessor {
    /// No marker (no earlier process joined a lockspace, or it stopped
    /// cleanly), or no marker is kept here (no DLM, fencing or state
    /// directory).
    None,
    /// A marker of an earlier boot, removed: every earlier process of this
    /// node ran before a power cycle — the host was fenced since.
    PowerCycled,
    /// A marker of this boot: the previous process ended unclean; this node
    /// joins no lockspace and the cluster fences it.
    Unclean,
}

/// What the marker said at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Predecessor {
    /// No marker.
    Clean,
    /// A marker of an earlier boot (removed).
    PowerCycled,
    /// A marker of this boot: the process that wrote it ended without a clean
    /// stop.
    Unclean {
        /// The marker's path (for the operator).
        path: PathBuf,
        /// What it names as its writer's pid, if readable.
        pid: Option<u32>,
    },
}

impl DlmMarker {
    /// Reads the host's boot id from `boot_id_file` (a missing file reads as
    /// an empty id) and the marker of `node` in `state_dir`.
    pub(crate) fn open(
        state_dir: &Path,
        node: u32,
        boot_id_file: &Path,
    ) -> io::Result<(DlmMarker, Predecessor)> {
        let boot_id = match fs::read_to_string(boot_id_file) {
            Ok(s) => s.trim().to_string(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let path = state_dir.join(format!("dlm-active-{node}"));
        let mut marker = DlmMarker {
            path: path.clone(),
            boot_id,
            armed: false,
            inherited: false,
        };
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok((marker, Predecessor::Clean));
            }
            Err(e) => return Err(e),
        };
        // Line 1: the boot id (empty for a host without one), line 2: the pid.
        let mut lines = text.lines();
        let written_boot = lines.next().unwrap_or("").trim();
        let pid = lines.next().and_then(|w| w.trim().parse().ok());
        // An empty boot id is a host that has no way to tell boots apart (a
        // test host before its first power cycle): the same boot.
        if written_boot == marker.boot_id {
            marker.inherited = true;
            return Ok((marker, Predecessor::Unclean { path, pid }));
        }
        fs::remove_file(&path)?;
        Ok((marker, Predecessor::PowerCycled))
    }

    /// Before the first lockspace join: records this process as one that may
    /// hold locks (written to a temporary file, synced, renamed). Once per
    /// process.
    pub(crate) fn arm(&mut self) -> io::Result<()> {
        if self.armed || self.inherited {
            return Ok(());
        }
        let tmp = self.path.with_extension("tmp");
        {
            let mut f = fs::File::create(&tmp)?;
            write!(f, "{}\n{}\n", self.boot_id, std::process::id())?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            fs::File::open(dir)?.sync_all()?;
        }
        self.armed = true;
        Ok(())
    }

    /// A clean stop: this process's locks ended with its leave.
    pub(crate) fn disarm(&mut self) -> io::Result<()> {
        if !self.armed {
            return Ok(());
        }
        self.armed = false;
        match fs::remove_file(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("phalanx-marker-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).expect("temp dir");
        d
    }

    #[test]
    fn a_marker_of_this_boot_is_an_unclean_predecessor_and_is_kept() {
        let d = dir("same");
        let boot = d.join("boot_id");
        fs::write(&boot, "aaaa\n").expect("boot id");
        let (mut m, p) = DlmMarker::open(&d, 3, &boot).expect("open");
        assert_eq!(p, Predecessor::Clean);
        m.arm().expect("arm");
        let text = fs::read_to_string(d.join("dlm-active-3")).expect("marker");
        assert_eq!(text, format!("aaaa\n{}\n", std::process::id()));
        // Killed: nothing removed it. The next process on the same boot:
        drop(m);
        let (mut next, p) = DlmMarker::open(&d, 3, &boot).expect("open");
        assert_eq!(
            p,
            Predecessor::Unclean {
                path: d.join("dlm-active-3"),
                pid: Some(std::process::id())
            }
        );
        // It neither rewrites nor removes what it inherited.
        next.arm().expect("arm");
        next.disarm().expect("disarm");
        assert!(d.join("dlm-active-3").exists());
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn a_new_boot_or_a_clean_stop_leaves_no_doubt() {
        // (A marker of an earlier boot says so: the host was power-cycled.)
        let d = dir("new");
        let boot = d.join("boot_id");
        fs::write(&boot, "aaaa\n").expect("boot id");
        let (mut m, _) = DlmMarker::open(&d, 1, &boot).expect("open");
        m.arm().expect("arm");
        fs::write(&boot, "bbbb\n").expect("power cycle");
        let (_, p) = DlmMarker::open(&d, 1, &boot).expect("open");
        assert_eq!(p, Predecessor::PowerCycled);
        assert!(
            !d.join("dlm-active-1").exists(),
            "a stale marker is removed"
        );
        let (mut m, _) = DlmMarker::open(&d, 1, &boot).expect("open");
        m.arm().expect("arm");
        m.disarm().expect("clean stop");
        let (_, p) = DlmMarker::open(&d, 1, &boot).expect("open");
        assert_eq!(p, Predecessor::Clean);
        // Without a boot id file every start is the same boot.
        let (mut m, _) = DlmMarker::open(&d, 2, &d.join("none")).expect("open");
        m.arm().expect("arm");
        let (_, p) = DlmMarker::open(&d, 2, &d.join("none")).expect("open");
        assert_eq!(
            p,
            Predecessor::Unclean {
                path: d.join("dlm-active-2"),
                pid: Some(std::process::id())
            }
        );
        let _ = fs::remove_dir_all(&d);
    }
}
