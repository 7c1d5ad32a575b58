//! The cluster key file: writing one (the `phalanx-keygen` tool) and reading one.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use thiserror::Error;
use zeroize::Zeroize;

use super::{MAX_KEY_LEN, MIN_KEY_LEN};

/// Size of a key file written by [`generate_key_file`] (as `corosync-keygen`).
pub const KEY_FILE_LEN: usize = 256;

/// The default key file path used by `phalanx-keygen`.
pub const DEFAULT_KEY_PATH: &str = "/etc/phalanx/authkey";

/// Writes [`KEY_FILE_LEN`] bytes of OS randomness to `path` with mode `0400`.
///
/// Without `overwrite`, an existing file is an error (`AlreadyExists`). With it, the
/// new key is written to a temporary file in the same directory, synced, and renamed
/// over `path`, so readers see the old key or the new one, never a partial file.
pub fn generate_key_file(path: impl AsRef<Path>, overwrite: bool) -> io::Result<()> {
    let path = path.as_ref();
    let mut key = [0u8; KEY_FILE_LEN];
    getrandom::fill(&mut key).map_err(io::Error::other)?;
    let res = if overwrite {
        let tmp = tmp_path(path);
        let r = write_new(&tmp, &key).and_then(|()| fs::rename(&tmp, path));
        if r.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        r
    } else {
        write_new(path, &key)
    };
    key.zeroize();
    if res.is_ok() {
        // Make the rename durable too (best effort: not every filesystem allows it).
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(d) = fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
    }
    res
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".tmp{}", std::process::id()));
    path.with_file_name(name)
}

fn write_new(path: &Path, key: &[u8]) -> io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(path)?;
    let r = f.write_all(key).and_then(|()| f.sync_all());
    if r.is_err() {
        drop(f);
        let _ = fs::remove_file(path);
    }
    r
}

/// Why a key file could not be used.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Opening or reading the file failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The path is not a regular file.
    #[error("key file {path}: not a regular file")]
    NotAFile {
        /// The key file.
        path: PathBuf,
    },
    /// Shorter than [`MIN_KEY_LEN`] bytes.
    #[error("key file {path}: {len} bytes, at least {MIN_KEY_LEN} required")]
    TooShort {
        /// The key file.
        path: PathBuf,
        /// Its length.
        len: u64,
    },
    /// Longer than [`MAX_KEY_LEN`] bytes.
    #[error("key file {path}: {len} bytes, at most {MAX_KEY_LEN} allowed")]
    TooLong {
        /// The key file.
        path: PathBuf,
        /// Its length (at least; the file may have been growing).
        len: u64,
    },
}

/// The contents of a key file, wiped from memory on drop.
pub struct KeyFile {
    bytes: Vec<u8>,
    mode: u32,
}

impl KeyFile {
    /// The key bytes (pass to [`super::DatagramCrypto::new`]).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The file's permission bits (`st_mode & 0o7777`).
    pub fn mode(&self) -> u32 {
        self.mode
    }

    /// True when group or others have any access to the file (`mode & 0o077 != 0`).
    /// The key is still returned; the caller should log a warning, as the key is a
    /// cluster-wide secret.
    pub fn permissions_too_open(&self) -> bool {
        self.mode & 0o077 != 0
    }
}

impl std::fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyFile")
            .field("len", &self.bytes.len())
            .field("mode", &format_args!("{:o}", self.mode))
            .finish_non_exhaustive()
    }
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

/// Reads a key file: between [`MIN_KEY_LEN`] and [`MAX_KEY_LEN`] bytes, a regular file.
/// Check [`KeyFile::permissions_too_open`] and warn when it is set.
pub fn read_key_file(path: impl AsRef<Path>) -> Result<KeyFile, KeyError> {
    let path = path.as_ref();
    let io_err = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let f = fs::File::open(path).map_err(io_err)?;
    let meta = f.metadata().map_err(io_err)?;
    if !meta.is_file() {
        return Err(KeyError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let mut bytes = Vec::with_capacity(MAX_KEY_LEN + 1);
    // Bounded read: a file that grows (or lies about its size) cannot make us read more.
    f.take(MAX_KEY_LEN as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    let len = bytes.len() as u64;
    let mode = meta.permissions().mode() & 0o7777;
    let key = KeyFile { bytes, mode };
    if len < MIN_KEY_LEN as u64 {
        return Err(KeyError::TooShort {
            path: path.to_path_buf(),
            len,
        });
    }
    if len > MAX_KEY_LEN as u64 {
        return Err(KeyError::TooLong {
            path: path.to_path_buf(),
            len: len.max(meta.len()),
        });
    }
    Ok(key)
}
