//! A libqb IPC server, so that unmodified Corosync client programs (linked with
//! the real libcpg, libquorum, libvotequorum, libcfg) talk to a Phalanx node.
//!
//! Run loop: one thread, a mio poll over an abstract unix listener per service
//! (`cmap`, `cpg`, `quorum`, `votequorum`, `cfg`), each connection's sockets and
//! each CPG connection's member event fd. A client connects to the service's
//! socket and sends a connection request; the server checks its credentials
//! (`SO_PEERCRED`) and answers with the connection type of
//! [`IpcOptions::transport`]:
//!
//! - **shared memory** (`QB_IPC_SHM`, the default, as Corosync): request,
//!   response and event ring buffers in `/dev/shm`, one notification byte per
//!   request (client → server) and per callback (server → client) on the setup
//!   stream socket, which is the client's poll fd — so a client can check the
//!   daemon's uid with `SO_PEERCRED` on it, as Pacemaker does;
//! - **sockets** (`QB_IPC_SOCKET`): requests and replies as datagrams on
//!   `<base>-request` / `<base>-response`, callbacks on `<base>-event-tx` →
//!   `<base>-event`; the setup socket stays open only to notice either side
//!   going away.
//!
//! See docs/compat.md.
//!
//! What it guarantees: a client never makes the server block, crash or grow
//! without bound — malformed requests are answered with `CS_ERR_INVALID_PARAM`
//! (or the client is dropped), a corrupted or truncated ring drops its client,
//! every connection's callback queue is bounded (a client that stops reading is
//! disconnected), handshakes that stall are dropped.
//! What it does not do: zero-copy buffers, cmap tracking on the stats map, a
//! quorum device's master-wins.
//!
//! Not run here: it binds the abstract names Corosync clients look for in the
//! network namespace (tests/compat_ipc.rs runs it in namespaces of its own).
//!
//! ```no_run
//! use phalanx::compat::qb::{IpcOptions, IpcServer};
//! # fn node() -> phalanx::node::Node { unimplemented!() }
//! let node = node();
//! let server = IpcServer::start(node.handle(), IpcOptions::default())?;
//! // ... corosync-cpgtool, corosync-quorumtool, libcpg applications connect ...
//! server.stop();
//! node.leave()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod cfg;
pub mod cfg_shutdown;
pub mod cmap;
pub mod cmap_runtime;
pub mod cmap_stats;
pub mod cmap_track;
mod conn;
mod cpg;
pub mod cpg_partial;
pub mod cpg_wire;
mod handshake;
pub mod qdevice;
mod quorum;
pub mod quorum_wire;
pub mod reload;
mod ring;
mod server;
mod shm;
mod sigbus;
mod sockets;
mod stale;
pub mod wire;

pub use cmap::{CmapValue, keys_from_config, node_addrs_from_config};
pub use qdevice::qdevice_mode_from_config;
pub use server::{IpcOptions, IpcServer};
pub use sockets::{peer_credentials, resolve_group, resolve_user};
pub use wire::{IpcError, IpcTransport, Request, decode_request};

/// `cs_error_t` values (Corosync's `corotypes.h`).
pub mod cs {
    /// Success.
    pub const OK: i32 = 1;
    /// Library / internal error.
    pub const ERR_LIBRARY: i32 = 2;
    /// The operation failed.
    pub const ERR_FAILED_OPERATION: i32 = 21;
    /// A timeout passed.
    pub const ERR_TIMEOUT: i32 = 5;
    /// Retry later.
    pub const ERR_TRY_AGAIN: i32 = 6;
    /// A bad argument.
    pub const ERR_INVALID_PARAM: i32 = 7;
    /// Out of memory or resources.
    pub const ERR_NO_MEMORY: i32 = 8;
    /// Unknown handle.
    pub const ERR_BAD_HANDLE: i32 = 9;
    /// A change is in progress.
    pub const ERR_BUSY: i32 = 10;
    /// Permission denied.
    pub const ERR_ACCESS: i32 = 11;
    /// Does not exist.
    pub const ERR_NOT_EXIST: i32 = 12;
    /// Name too long.
    pub const ERR_NAME_TOO_LONG: i32 = 13;
    /// Already exists.
    pub const ERR_EXIST: i32 = 14;
    /// A request about something that no longer holds (a quorum device's
    /// poll for a ring that is not the current one).
    pub const ERR_MESSAGE_ERROR: i32 = 22;
    /// End of a listing.
    pub const ERR_NO_SECTIONS: i32 = 27;
    /// No resources left.
    pub const ERR_NO_RESOURCES: i32 = 18;
    /// Not supported.
    pub const ERR_NOT_SUPPORTED: i32 = 19;
    /// Message too big.
    pub const ERR_TOO_BIG: i32 = 26;
}

/// The services offered, with their Corosync service numbers (the high 16
/// bits of an exec message id; on IPC each service has its own socket).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    /// The configuration database.
    Cmap = 0,
    /// Configuration (node addresses, local node id).
    Cfg = 1,
    /// Closed process groups.
    Cpg = 2,
    /// The simple quorum API.
    Quorum = 3,
    /// The votequorum API.
    Votequorum = 5,
}

impl Service {
    /// Every service, in service-number order.
    pub const ALL: [Service; 5] = [
        Service::Cmap,
        Service::Cfg,
        Service::Cpg,
        Service::Quorum,
        Service::Votequorum,
    ];

    /// The abstract socket name libqb clients connect to.
    pub fn socket_name(self) -> &'static str {
        match self {
            Service::Cmap => "cmap",
            Service::Cfg => "cfg",
            Service::Cpg => "cpg",
            Service::Quorum => "quorum",
            Service::Votequorum => "votequorum",
        }
    }
}

/// Decodes one request datagram for `service` the way the server does, for
/// the fuzz target: header, then the service's request layout.
pub fn decode_service_request(service: Service, buf: &[u8]) -> Result<(), IpcError> {
    let r = decode_request(buf)?;
    match service {
        Service::Cpg => cpg_wire::CpgCall::decode(&r).map(drop),
        Service::Quorum => quorum_wire::QuorumCall::decode(&r).map(drop),
        Service::Votequorum => quorum_wire::VotequorumCall::decode(&r).map(drop),
        Service::Cfg => cfg::CfgCall::decode(&r).map(drop),
        Service::Cmap => cmap::CmapCall::decode(&r).map(drop),
    }
}
