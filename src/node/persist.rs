//! The ring sequence on disk: `<state_dir>/ringseq_<nodeid>`, 8 bytes little-endian,
//! replaced atomically (write, fsync, rename) so a crash leaves the old or the new
//! value, never a torn one.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

fn path(dir: &Path, node: u32) -> PathBuf {
    dir.join(format!("ringseq_{node}"))
}

/// The persisted sequence, or `None` if there is none (first start).
pub(crate) fn load(dir: &Path, node: u32) -> io::Result<Option<u64>> {
    match fs::read(path(dir, node)) {
        Ok(b) => match <[u8; 8]>::try_from(b.as_slice()) {
            Ok(a) => Ok(Some(u64::from_le_bytes(a))),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "ring sequence file is not 8 bytes",
            )),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Stores `seq` durably before returning.
pub(crate) fn store(dir: &Path, node: u32, seq: u64) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".ringseq_{node}.tmp"));
    let mut f = fs::File::create(&tmp)?;
    f.write_all(&seq.to_le_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, path(dir, node))?;
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip_and_absence() {
        let dir = std::env::temp_dir().join(format!("phalanx-persist-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(super::load(&dir, 3).unwrap(), None);
        super::store(&dir, 3, 77).unwrap();
        super::store(&dir, 3, 78).unwrap();
        assert_eq!(super::load(&dir, 3).unwrap(), Some(78));
        std::fs::write(dir.join("ringseq_4"), b"xx").unwrap();
        assert!(super::load(&dir, 4).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
