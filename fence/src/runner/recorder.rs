//! Recording every agent call to a JSON-lines file, and loading it back.

use crate::agent::{
    AgentReply, AgentRequest, CallRecord, FenceAgent, RecordingError, parse_recording,
};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Wraps an agent and appends each call ([`CallRecord`]: request, stdin, every
/// attempt's stdout/stderr/exit/duration/timeout, outcome) as one JSON line to a
/// file. A failed write never fails the call: it is counted
/// ([`RecordingAgent::write_errors`]).
pub struct RecordingAgent<A> {
    inner: A,
    file: Mutex<File>,
    write_errors: AtomicU64,
}

impl<A: FenceAgent> RecordingAgent<A> {
    /// Records `inner`'s calls to `path` (created, or appended to).
    pub fn create(inner: A, path: &Path) -> std::io::Result<RecordingAgent<A>> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(RecordingAgent {
            inner,
            file: Mutex::new(file),
            write_errors: AtomicU64::new(0),
        })
    }

    /// How many records could not be written.
    pub fn write_errors(&self) -> u64 {
        self.write_errors.load(Ordering::Relaxed)
    }
}

impl<A: FenceAgent> FenceAgent for RecordingAgent<A> {
    fn run(&self, request: &AgentRequest) -> AgentReply {
        let reply = self.inner.run(request);
        let mut line = CallRecord {
            request: request.clone(),
            reply: reply.clone(),
        }
        .to_json_line();
        line.push('\n');
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        // One write_all per record on an O_APPEND file keeps lines whole.
        if file
            .write_all(line.as_bytes())
            .and_then(|()| file.flush())
            .is_err()
        {
            self.write_errors.fetch_add(1, Ordering::Relaxed);
        }
        reply
    }
}

/// A recording that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("reading recording: {0}")]
    Io(#[from] std::io::Error),
    /// A line is not a record.
    #[error(transparent)]
    Parse(#[from] RecordingError),
}

/// Reads a recording file.
pub fn load_recording(path: &Path) -> Result<Vec<CallRecord>, LoadError> {
    Ok(parse_recording(&std::fs::read_to_string(path)?)?)
}
