//! The per-connection resources of a shared-memory (`QB_IPC_SHM`) libqb
//! connection, as libqb 2.0's server lays them out:
//!
//! - the connection directory `<runtime>/qb-<server pid>-<client pid>-<n>-<random>`
//!   (mode 0770, the client's), whose `qb` prefix names the rings;
//! - three rings (see [`Ring`]): `<dir>/qb-request-<service>` (requests in, its
//!   user data is the flow-control word), `<dir>/qb-response-<service>`
//!   (replies) and `<dir>/qb-event-<service>` (callbacks), each a `-header`
//!   and a `-data` file owned by the client, mode 0600.
//!
//! Notifications travel on the setup stream socket, which stays connected:
//! the client writes one byte after each request it puts in the request
//! ring; the server writes one byte after each callback it puts in the event
//! ring (the client's poll fd is this socket, and it reads one byte per
//! callback). Replies need no byte: the client waits on the response ring's
//! semaphore. EOF on the socket is the disconnect.

use super::handshake::{Client, connection_dir};
use super::ring::Ring;
use super::wire::{ConnectionResponse, IpcTransport};
use std::io;
use std::path::{Path, PathBuf};

/// What a shared-memory connection owns; dropping it removes every file.
pub struct ShmResources {
    /// Requests from the client.
    pub request: Ring,
    /// Replies to it.
    pub response: Ring,
    /// Callbacks to it.
    pub event: Ring,
    /// The connection response to send.
    pub answer: ConnectionResponse,
    /// The connection's directory, removed after the rings.
    dir: PathBuf,
}

impl Drop for ShmResources {
    fn drop(&mut self) {
        // Runs before the fields drop: the rings then unmap, and their own
        // removals find nothing (ignored).
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl ShmResources {
    /// Whether the client truncated one of the ring files (see
    /// [`Ring::damaged`]).
    pub fn damaged(&self) -> bool {
        self.request.damaged() || self.response.damaged() || self.event.damaged()
    }
}

/// Creates the directory and rings for `client` under `runtime_dir`.
pub fn create(runtime_dir: &Path, client: &Client<'_>) -> io::Result<ShmResources> {
    let (dir, mut guard) = connection_dir(runtime_dir, client)?;
    let owner = (super::sockets::euid() == 0).then_some((client.uid, client.gid));
    let name = |channel: &str| format!("{}/qb-{channel}-{}", dir.display(), client.service);
    let max = client.max_msg_size as usize;
    let request = Ring::create(&name("request"), max, owner)?;
    let response = Ring::create(&name("response"), max, owner)?;
    let event = Ring::create(&name("event"), max, owner)?;
    let answer = ConnectionResponse {
        error: 0,
        max_msg_size: client.max_msg_size,
        connection: client.serial,
        transport: IpcTransport::Shm,
        request: name("request"),
        response: name("response"),
        event: name("event"),
    };
    guard.disarm();
    Ok(ShmResources {
        request,
        response,
        event,
        answer,
        dir,
    })
}
