//! The CIB's files on a real node: `<state_dir>/cib-<node>/` holds `cib.xml`,
//! `cib.xml.sig`, the backups `cib-N.raw` (+ `.sig`) and `cib.last`, in the format
//! `phalanx_cib::persist` defines (Pacemaker's). Loading falls back to the newest
//! valid backup when the live file's digest is wrong, and moves the bad files
//! aside; writing follows `persist::WritePlan` with temporary files, fsync and
//! rename.

use phalanx_cib::persist::{self, LAST, LIVE, LIVE_SIG, Loaded, QUORATE_SEQ};
use phalanx_cib::service::PersistRequest;
use phalanx_cib::version::Version;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The CIB directory of node `node`.
pub(crate) fn dir(state_dir: &Path, node: u32) -> PathBuf {
    state_dir.join(format!("cib-{node}"))
}

/// The quorate lineage persisted with the CIB `loaded` from `dir` (0 unless it
/// came from the live file), and its lineage version if a sync had raised the
/// copy's version past it.
pub(crate) fn load_quorate_seq(dir: &Path, loaded: &Loaded) -> (u64, Option<Version>) {
    persist::lineage_for(fs::read(dir.join(QUORATE_SEQ)).ok().as_deref(), loaded)
}

/// Loads the CIB (an empty one when there are no files), moving refused live
/// files aside as `<name>.corrupt`.
pub(crate) fn load(dir: &Path) -> io::Result<Loaded> {
    fs::create_dir_all(dir)?;
    let loaded = persist::load(|name| fs::read(dir.join(name)).ok());
    for name in &loaded.archive {
        let from = dir.join(name);
        if from.exists() {
            fs::rename(&from, dir.join(format!("{name}.corrupt")))?;
        }
    }
    Ok(loaded)
}

/// Writes `req` durably (backup of the current files first), stamping
/// `cib-last-written` with `now`.
pub(crate) fn write(dir: &Path, req: &PersistRequest, now: &str) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let last = fs::read(dir.join(LAST)).ok();
    let plan = persist::plan_write(&req.cib, Some(now), last.as_deref());
    let (b0, b1) = (dir.join(&plan.backup.0), dir.join(&plan.backup.1));
    for b in [&b0, &b1] {
        match fs::remove_file(b) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    for (live, backup) in [(LIVE, &b0), (LIVE_SIG, &b1)] {
        let live = dir.join(live);
        if live.exists() && fs::hard_link(&live, backup).is_err() {
            fs::copy(&live, backup)?;
        }
    }
    // The lineage first, naming the content it belongs to (and keeping the
    // lines of the files before): whichever write a crash cuts, the lineage read
    // at start is the one of the `cib.xml` on disk.
    let lineage = persist::quorate_file_with(
        fs::read(dir.join(QUORATE_SEQ)).ok().as_deref(),
        &req.cib,
        req.quorate_seq,
        req.lineage_version,
    );
    write_atomic(dir, QUORATE_SEQ, lineage.as_bytes())?;
    write_atomic(dir, LAST, plan.last.as_bytes())?;
    write_atomic(dir, LIVE, plan.xml.as_bytes())?;
    write_atomic(dir, LIVE_SIG, plan.sig.as_bytes())?;
    File::open(dir)?.sync_all()
}

fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    fs::rename(&tmp, dir.join(name))
}

/// The wall-clock time as Pacemaker writes `cib-last-written`
/// (`Sun Dec  6 05:00:00 2026`, local time).
pub(crate) fn ctime_now() -> String {
    let mut buf = [0 as libc::c_char; 64];
    // SAFETY: time(NULL) only returns the time; ctime_r writes at most 26 bytes
    // into `buf` (64 long) and returns it or NULL.
    let text = unsafe {
        let t = libc::time(std::ptr::null_mut());
        let p = libc::ctime_r(&t, buf.as_mut_ptr());
        if p.is_null() {
            return String::new();
        }
        std::ffi::CStr::from_ptr(p)
    };
    text.to_string_lossy().trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use phalanx_cib::service::PersistRequest;
    use phalanx_cib::version::Version;

    #[test]
    fn written_files_load_back_and_a_bad_signature_falls_back_to_the_backup() {
        let d = std::env::temp_dir().join(format!("phalanx-cib-store-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        let empty = load(&d).unwrap().cib;
        let mut one = empty.clone();
        one.set_attr("epoch", "5");
        let req = |cib: &phalanx_cib::xml::Element| PersistRequest {
            id: 1,
            cib: cib.clone(),
            version: Version::of_cib(cib),
            quorate_seq: 7,
            lineage_version: Some(Version::new(0, 3, 2)),
        };
        write(&d, &req(&one), "Sun Dec  6 05:00:00 2026").unwrap();
        let mut two = one.clone();
        two.set_attr("epoch", "6");
        write(&d, &req(&two), "Sun Dec  6 05:00:01 2026").unwrap();
        let loaded = load(&d).unwrap();
        assert_eq!(loaded.cib.attr("epoch"), Some("6"));
        assert_eq!(
            load_quorate_seq(&d, &loaded),
            (7, Some(Version::new(0, 3, 2)))
        );
        // A corrupt live file: archived, and the backup (epoch 5) is used.
        fs::write(d.join(LIVE), b"<cib epoch=\"9\"/>").unwrap();
        let back = load(&d).unwrap();
        assert_eq!(back.cib.attr("epoch"), Some("5"), "{:?}", back.refused);
        assert!(d.join(format!("{LIVE}.corrupt")).exists());
        assert!(!ctime_now().is_empty());
        fs::remove_dir_all(&d).unwrap();
    }
}
