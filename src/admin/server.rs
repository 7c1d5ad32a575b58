//! The node side of the admin socket: a thread that accepts connections on a
//! Unix socket and answers each request line through an [`AdminProvider`].

use super::protocol::{MAX_REQUEST, Request, Response};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Answers admin requests; implemented by the running node.
pub trait AdminProvider: Send + Sync + 'static {
    /// The answer to `req` (commands answer [`Response::Done`] once accepted).
    fn answer(&self, req: Request) -> Response;
}

/// A running admin socket; dropping it stops the thread and removes the socket.
pub struct AdminServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl AdminServer {
    /// Binds `path` (replacing a stale socket left by a crashed node) and serves
    /// requests on a thread of its own. Only the owner may connect (mode 0600).
    pub fn start(path: &Path, provider: Arc<dyn AdminProvider>) -> io::Result<AdminServer> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        match UnixStream::connect(path) {
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{} is served by a running node", path.display()),
                ));
            }
            Err(_) => {
                let _ = std::fs::remove_file(path);
            }
        }
        let listener = UnixListener::bind(path)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("phalanx-admin".into())
            .spawn(move || {
                let active = Arc::new(AtomicUsize::new(0));
                for conn in listener.incoming() {
                    if stop2.load(Ordering::Acquire) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    // A thread per client, at most MAX_CLIENTS: most requests are
                    // answered from published snapshots, but a fencing request
                    // waits for its operation and must not hold the others up.
                    if active.fetch_add(1, Ordering::AcqRel) >= MAX_CLIENTS {
                        active.fetch_sub(1, Ordering::AcqRel);
                        let _ = refuse_busy(conn);
                        continue;
                    }
                    let (provider, done) = (Arc::clone(&provider), Arc::clone(&active));
                    let spawned = std::thread::Builder::new()
                        .name("phalanx-admin-client".into())
                        .spawn(move || {
                            let _ = serve(conn, provider.as_ref());
                            done.fetch_sub(1, Ordering::AcqRel);
                        });
                    if spawned.is_err() {
                        active.fetch_sub(1, Ordering::AcqRel);
                    }
                }
            })?;
        Ok(AdminServer {
            path: path.to_path_buf(),
            stop,
            thread: Some(thread),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Clients served at once; one more is told to come back.
const MAX_CLIENTS: usize = 8;

fn refuse_busy(mut conn: UnixStream) -> io::Result<()> {
    let mut out = serde_json::to_vec(&Response::error("admin socket busy; try again"))
        .map_err(io::Error::other)?;
    out.push(b'\n');
    conn.write_all(&out)
}

fn serve(conn: UnixStream, provider: &dyn AdminProvider) -> io::Result<()> {
    // A client that stops talking must not hold a thread for long.
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    conn.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut writer = conn.try_clone()?;
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    loop {
        line.clear();
        let n = (&mut reader)
            .take(MAX_REQUEST as u64 + 1)
            .read_line(&mut line)?;
        if n == 0 {
            return Ok(());
        }
        let response = if n > MAX_REQUEST {
            Response::error(format!("request longer than {MAX_REQUEST} bytes"))
        } else {
            match serde_json::from_str::<Request>(line.trim()) {
                Ok(req) => provider.answer(req),
                Err(e) => Response::error(format!("bad request: {e}")),
            }
        };
        let mut out = serde_json::to_vec(&response).map_err(io::Error::other)?;
        out.push(b'\n');
        writer.write_all(&out)?;
        if n > MAX_REQUEST {
            // The rest of an oversized line would be read as garbage requests.
            return Ok(());
        }
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the accept() so the thread sees the flag.
        let _ = UnixStream::connect(&self.path);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}
