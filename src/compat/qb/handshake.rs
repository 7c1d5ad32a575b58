//! The per-connection resources a socket-type libqb connection needs, created
//! when a connection request is accepted:
//!
//! - a directory `<runtime>/qb-<server pid>-<client pid>-<n>-<random>`;
//! - in it the control file `qb-control-<service>` (24 zero bytes: three
//!   `{sent, flow_control}` pairs the client maps; writing a non-zero
//!   `flow_control` on the request pair makes the client's next multicast fail
//!   with `CS_ERR_TRY_AGAIN`);
//! - two datagram sockets on abstract names derived from the base
//!   `<dir>/qb-<service>`: `<base>-request` (requests in, replies out to the
//!   client's `<base>-response`) and `<base>-event-tx` (callbacks out to the
//!   client's `<base>-event`).

use super::sockets::{MAX_NAME, abstract_addr, size_buffers};
use super::wire::{ConnectionResponse, IpcTransport};
use std::fs::File;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::{Path, PathBuf};

/// Send buffer of a connection's callback socket.
pub const EVENT_BUFFER: usize = 512 * 1024;

/// Bytes of the control file (`3 * sizeof(struct ipc_us_control)`).
const CONTROL_LEN: u64 = 24;

/// What a connection owns on the file system and its datagram sockets.
pub struct Resources {
    /// The connection's directory (removed on drop).
    pub dir: PathBuf,
    /// The control file.
    pub control: File,
    /// Requests in, replies out.
    pub request: UnixDatagram,
    /// Callbacks out.
    pub event: UnixDatagram,
    /// Where replies go (the client binds it before its first request).
    pub response_peer: SocketAddr,
    /// Where callbacks go.
    pub event_peer: SocketAddr,
    /// The connection response to send.
    pub answer: ConnectionResponse,
}

impl Drop for Resources {
    fn drop(&mut self) {
        // The client removes them too when it disconnects cleanly; whoever is
        // second finds nothing.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Who is connecting, and to what.
pub struct Client<'a> {
    /// Service socket name (`cpg`, ...).
    pub service: &'a str,
    /// Client pid, uid, gid (from the kernel).
    pub pid: u32,
    /// Client uid.
    pub uid: u32,
    /// Client gid.
    pub gid: u32,
    /// A number unique among this server's connections.
    pub serial: u64,
    /// Maximum message size of the connection.
    pub max_msg_size: u32,
}

/// Creates the connection's directory
/// `<runtime>/qb-<server pid>-<client pid>-<n>-<random>` (mode 0770, the
/// client's), removed when the returned guard drops unless it is disarmed.
pub fn connection_dir(runtime_dir: &Path, client: &Client<'_>) -> io::Result<(PathBuf, DirGuard)> {
    let mut random = [0u8; 4];
    getrandom::fill(&mut random).map_err(|e| io::Error::other(e.to_string()))?;
    let dir = runtime_dir.join(format!(
        "qb-{}-{}-{}-{:08x}",
        std::process::id(),
        client.pid,
        client.serial,
        u32::from_ne_bytes(random)
    ));
    std::fs::DirBuilder::new().mode(0o770).create(&dir)?;
    let guard = DirGuard(Some(dir.clone()));
    give_to_client(&dir, client)?;
    Ok((dir, guard))
}

/// Creates the resources for `client` under `runtime_dir`.
pub fn create(runtime_dir: &Path, client: &Client<'_>) -> io::Result<Resources> {
    // From here on `Resources::drop` (or this guard) removes the directory.
    let (dir, mut guard) = connection_dir(runtime_dir, client)?;
    let control_path = dir.join(format!("qb-control-{}", client.service));
    let control = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&control_path)?;
    control.set_len(CONTROL_LEN)?;
    give_to_client(&control_path, client)?;
    let base = format!("{}/qb-{}", dir.display(), client.service);
    if base.len() + "-event-tx".len() > MAX_NAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "runtime directory path too long for libqb socket names",
        ));
    }
    let request = UnixDatagram::bind_addr(&abstract_addr(&format!("{base}-request"))?)?;
    let event = UnixDatagram::bind_addr(&abstract_addr(&format!("{base}-event-tx"))?)?;
    for s in [&request, &event] {
        s.set_nonblocking(true)?;
    }
    // Requests and replies up to the maximum size. Callbacks are cut into
    // pieces of at most `EVENT_BUFFER / 2` (partial deliveries), and the
    // kernel's queue towards a client is bounded by this send buffer (a
    // connected datagram socket's peer queue limit does not apply to its own
    // peer): kept small, so a client that stops reading shows up in our own
    // bounded queue soon.
    size_buffers(&request, client.max_msg_size as usize * 2);
    size_buffers(&event, EVENT_BUFFER);
    let answer = ConnectionResponse {
        error: 0,
        max_msg_size: client.max_msg_size,
        connection: client.serial,
        transport: IpcTransport::Socket,
        request: control_path.display().to_string(),
        response: base.clone(),
        event: String::new(),
    };
    let response_peer = abstract_addr(&format!("{base}-response"))?;
    let event_peer = abstract_addr(&format!("{base}-event"))?;
    // `Resources` owns the directory from here.
    guard.0 = None;
    Ok(Resources {
        dir,
        control,
        request,
        event,
        response_peer,
        event_peer,
        answer,
    })
}

/// Removes a half-built connection directory.
pub struct DirGuard(Option<PathBuf>);

impl DirGuard {
    /// The directory is owned by something else now.
    pub fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for DirGuard {
    fn drop(&mut self) {
        if let Some(d) = self.0.take() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Hands `path` to the client's uid and gid when we may (as root); a daemon
/// running as the client's own user needs nothing.
pub fn give_to_client(path: &Path, client: &Client<'_>) -> io::Result<()> {
    if super::sockets::euid() == 0 {
        std::os::unix::fs::chown(path, Some(client.uid), Some(client.gid))?;
    }
    Ok(())
}
