//! # Phalanx — an embeddable high-availability cluster stack
//!
//! An application links this crate and becomes a cluster node; there is no
//! separate daemon. Totem orders every message of the cluster into one total
//! order and agrees on membership with extended virtual synchrony; closed
//! process groups and votequorum ride on it, as Corosync's CPG and votequorum
//! ride on its Totem.
//!
//! ## Map
//!
//! The protocols are sans-IO cores — no sockets, threads or clocks: time and
//! datagrams are inputs, messages and events are outputs — each in its own
//! crate, re-exported here:
//!
//! | module | crate | what |
//! |---|---|---|
//! | [`totem`] | `phalanx-totem` | the Totem single-ring protocol: total order, membership, EVS |
//! | [`cpg`] | `phalanx-cpg` | closed process groups over Totem: join, leave, multicast, views |
//! | [`quorum`] | `phalanx-quorum` | votequorum, and the quorum-device (qnetd) protocol |
//! | [`logsys`] | `phalanx-logsys` | the flight recorder: binary records in a ring that survives a crash |
//! | [`cib`] | `phalanx-cib` | replicated configuration database — **skeleton, not yet built** |
//! | [`dlm`] | `phalanx-dlm` | distributed lock manager — lock engine and distributed sans-IO core (`dlm::cluster`); not yet a Stack service |
//! | [`fence`] | `phalanx-fence` | fencing — **skeleton, not yet built** |
//!
//! This crate composes and drives them:
//!
//! - [`stack`] — the **Stack**, the one sans-IO composition of links, Totem,
//!   CPG and votequorum, with one [`Input`](stack::Input) and one
//!   [`Output`](stack::Output) type. Real nodes and the simulator drive the same
//!   Stack.
//! - [`node`] — the real-world driver: [`Node`](node::Node) runs a Stack on UDP
//!   sockets in a mio loop on its own thread and hands out clonable handles:
//!   [`NodeHandle`](node::NodeHandle), [`Cpg`](node::Cpg),
//!   [`Quorum`](node::Quorum). [`NodeOptions`](node::NodeOptions) says how to
//!   run it.
//! - [`config`] — a `corosync.conf` or TOML file into one
//!   [`ClusterConfig`](config::ClusterConfig), and from there
//!   [`NodeOptions::from_config`](node::NodeOptions::from_config).
//! - [`link`] — several links per node with liveness monitoring and fail-over
//!   (the role of Corosync's knet), inside the Stack.
//! - [`crypto`] — authenticated encryption of every datagram, per link, with
//!   replay protection.
//! - [`admin`] — the admin socket the tools (`phalanx-cpgtool`,
//!   `phalanx-quorumtool`) talk to; [`quorum_client`] — the node's side of a
//!   `phalanx-qnetd` arbitrator; [`util`] — small shared pieces.
//!
//! Outside this crate: `phalanx-sim` (`sim/`), a deterministic simulator of
//! whole clusters under faults, is a dev-dependency only (tests and examples);
//! the `phalanx-swarm` crate (`swarm/`) runs the Stack under it with seeded
//! faults and judges the histories. The binaries in `src/bin` are the daemon
//! `phalanxd` and the operator tools; the design notes are in `docs/`.
//!
//! ## A first cluster
//!
//! One node on loopback is a cluster of one: it forms a ring, is quorate on its
//! own, and receives its own messages like any member.
//!
//! ```
//! use phalanx::cpg::{CpgEvent, Guarantee};
//! use phalanx::node::{Node, NodeOptions};
//! use phalanx::quorum::QuorumConfig;
//! use phalanx::totem::Config;
//! use std::time::Duration;
//!
//! // A free port for the example; a real cluster's node list and addresses
//! // come from its configuration (`NodeOptions::from_config`).
//! let port = std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port();
//! let addrs = [(1, format!("127.0.0.1:{port}").parse()?)].into();
//! let opts = NodeOptions::new(Config::new(1, vec![1]), addrs)
//!     .with_quorum(QuorumConfig::new(1, &[1]));
//! let node = Node::start(opts)?;
//!
//! // A process group member: join, multicast, receive our own message.
//! let member = node.cpg().member()?;
//! member.join(b"orders")?;
//! member.mcast_wait(b"orders", Guarantee::Agreed, b"ship #42", Some(Duration::from_secs(30)))?;
//! let delivered = loop {
//!     if let CpgEvent::Deliver(d) = member.events().recv_timeout(Duration::from_secs(30))? {
//!         break d;
//!     }
//! };
//! assert_eq!((delivered.sender, &delivered.data[..]), (member.id(), &b"ship #42"[..]));
//!
//! // Quorum: decided on the same ring, reported once that ring is installed.
//! let quorum = node.quorum();
//! let changes = quorum.notifications();
//! while !quorum.is_quorate() {
//!     changes.recv_timeout(Duration::from_secs(30))?;
//! }
//! let info = quorum.info().expect("quorum is configured");
//! println!(
//!     "ring {}: {} of {} expected votes, quorum {}",
//!     node.handle().membership().ring,
//!     info.cluster.total_votes,
//!     info.cluster.expected_votes,
//!     info.cluster.quorum,
//! );
//! node.leave()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

pub mod admin;
pub mod compat;
pub mod config;
pub mod crypto;

pub mod link;

pub mod node;
pub mod util;

pub mod quorum_client;
pub mod relaxng;

pub mod stack;

pub use phalanx_cib as cib;
pub use phalanx_cpg as cpg;
pub use phalanx_dlm as dlm;
pub use phalanx_fence as fence;
pub use phalanx_logsys as logsys;
pub use phalanx_quorum as quorum;
pub use phalanx_totem as totem;
