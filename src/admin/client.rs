//! The tool side of the admin socket.

use super::protocol::{Request, Response};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// A connection to a running node's admin socket.
pub struct AdminClient {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl AdminClient {
    /// Connects to the socket at `path`.
    pub fn connect(path: &Path) -> io::Result<AdminClient> {
        let s = UnixStream::connect(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(AdminClient {
            writer: s.try_clone()?,
            reader: BufReader::new(s),
        })
    }

    /// Waits at most `timeout` for each answer (default 10 s; a fencing request
    /// lasts as long as its operation).
    pub fn set_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.writer.set_read_timeout(Some(timeout))
    }

    /// Sends `req` and waits for the answer.
    pub fn request(&mut self, req: &Request) -> io::Result<Response> {
        let mut line = serde_json::to_vec(req).map_err(io::Error::other)?;
        line.push(b'\n');
        self.writer.write_all(&line)?;
        let mut answer = String::new();
        if self.reader.read_line(&mut answer)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "node closed the admin socket",
            ));
        }
        serde_json::from_str(answer.trim())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}
