//! The admin socket: how `phalanx-cpgtool` and `phalanx-quorumtool` read a
//! running node's state and send it commands, the way corosync-cpgtool and
//! corosync-quorumtool talk to Corosync over IPC.
//!
//! A node started with [`NodeOptions::admin_socket`](crate::node::NodeOptions)
//! serves a Unix socket (mode 0600); each request and answer is one JSON line.
//!
//! ```
//! use phalanx::admin::{AdminClient, AdminProvider, AdminServer, Request, Response};
//! use std::sync::Arc;
//!
//! struct Echo;
//! impl AdminProvider for Echo {
//!     fn answer(&self, req: Request) -> Response {
//!         match req {
//!             Request::SetVotes { .. } => Response::Done,
//!             _ => Response::error("not here"),
//!         }
//!     }
//! }
//! let dir = std::env::temp_dir().join(format!("phalanx-admin-doc-{}", std::process::id()));
//! let server = AdminServer::start(&dir.join("admin.sock"), Arc::new(Echo)).unwrap();
//! let mut client = AdminClient::connect(server.path()).unwrap();
//! assert_eq!(client.request(&Request::SetVotes { node: 1, votes: 2 }).unwrap(), Response::Done);
//! ```

mod client;
mod locate;
mod protocol;
mod server;

pub use client::AdminClient;
pub use locate::{DEFAULT_CONFIG_PATH, locate_socket, socket_path};
pub use protocol::*;
pub use server::{AdminProvider, AdminServer};
