//! The crate's error type.

use std::path::PathBuf;

/// Errors of the recorder and its reader.
///
/// Writing a record never fails (a record that cannot be stored is dropped); these errors
/// come from creating a recorder, reading a recorder file, and the outputs' setup.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation on `path` failed. Nothing was changed by the failed call; it may
    /// be retried once the cause (permissions, space, missing directory) is fixed.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The data does not start with the recorder magic: not a recorder file. Not
    /// retryable.
    #[error("not a flight-recorder file (bad magic)")]
    NotARecorder,
    /// The file was written by an incompatible format version. Not retryable.
    #[error("unsupported flight-recorder format version {0}")]
    UnsupportedVersion(u32),
    /// The header is damaged (checksum or a field out of range). Not retryable; the
    /// records cannot be located without a sane header.
    #[error("corrupt flight-recorder header: {0}")]
    CorruptHeader(&'static str),
    /// The data is shorter than a header. Not retryable.
    #[error("truncated flight-recorder file: {len} bytes, a header needs {need}")]
    Truncated {
        /// Bytes available.
        len: usize,
        /// Bytes a header needs.
        need: usize,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
