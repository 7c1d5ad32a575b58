//! A cluster node on real UDP sockets: the totem core driven by a mio poll loop on
//! its own thread, with clonable handles for application threads.
//!
//! ```no_run
//! use phalanx::node::{Node, NodeOptions, NodeEvent};
//! use phalanx::totem::{Config, Guarantee};
//! use std::collections::BTreeMap;
//!
//! let addrs: BTreeMap<u32, std::net::SocketAddr> =
//!     [(1, "127.0.0.1:5405".parse().unwrap()), (2, "127.0.0.1:5406".parse().unwrap())].into();
//! let node = Node::start(NodeOptions::new(Config::new(1, vec![1, 2]), addrs)).unwrap();
//! node.handle().mcast(Guarantee::Agreed, b"hello").unwrap();
//! for ev in node.events() {
//!     if let NodeEvent::Deliver(d) = ev { println!("{} says {:?}", d.sender, d.data); break; }
//! }
//! node.leave().unwrap();
//! ```

mod admin;
mod cpg;
mod driver;
mod error;
mod from_config;
mod link_options;
mod persist;
mod quorum;
mod sockets;
mod transport;
mod validate;

pub use crate::link::{LinkState, LinkStats, PeerLinkStatus};
pub use cpg::{Cpg, CpgMember, DispatchMode};
pub use driver::DriverStats;
pub use error::NodeError;
pub use link_options::{ExtraLink, LinkOptions, LinkParams, Multicast};
pub use quorum::{Quorum, QuorumCallError, QuorumChange};
pub use transport::{TransportStats, set_socket_buffers};

use crate::stack::{QuorumRequest, RawDelivery, Request};
use crossbeam_channel::{Receiver, Sender, bounded, unbounded};
use parking_lot::Mutex;
use phalanx_cpg::CpgConfig;
use phalanx_logsys::Logger;
use phalanx_totem::{Config, ConfigChange, Guarantee, NodeId, RingId, SendError, Stats};
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};
use std::thread::JoinHandle;

/// How to run a node.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// The protocol configuration (node id, node list, timers, limits).
    pub totem: Config,
    /// UDP address of every configured node on link 0, this one's included (it is
    /// bound).
    pub addrs: BTreeMap<NodeId, SocketAddr>,
    /// Further links, link settings and the link mode (default: link 0 alone).
    /// See `docs/links.md`.
    pub links: LinkOptions,
    /// Where the ring sequence is persisted (`ringseq_<nodeid>`); `None` keeps it
    /// in memory only (tests), at the risk of reusing a ring id after a restart.
    pub state_dir: Option<PathBuf>,
    /// Flight recorder.
    pub logger: Logger,
    /// Deliveries and configuration changes that may wait for the application.
    /// When full, the node stops: an application that does not consume stalls its
    /// own node (and the others exclude it after a token timeout), rather than
    /// memory growing without bound.
    pub event_capacity: usize,
    /// Socket buffer size to request, in bytes (0: derive from the flow-control
    /// window).
    pub socket_buffer: usize,
    /// Authenticated encryption of every datagram (`None`: plaintext, for
    /// benchmarks). A node without the key cannot take part.
    pub crypto: Option<CryptoOptions>,
    /// Run the driver thread under SCHED_RR with this priority (1–99), as
    /// Corosync's `sched_rr: yes` does, so CPU starvation of the node's own
    /// thread cannot look like a failed node to the others. Needs
    /// CAP_SYS_NICE; when refused the node runs normally and counts it in
    /// `DriverStats::realtime_refused`. `None` (the default): normal scheduling.
    pub realtime_priority: Option<i32>,
    /// Process groups: message size and queue limits, transitional delivery.
    /// (`incarnation` and `wire_prefix` are set by the node.)
    pub cpg: CpgConfig,
    /// Serve the admin socket (for `phalanx-cpgtool` / `phalanx-quorumtool`)
    /// at this path; `None`: no socket.
    pub admin_socket: Option<PathBuf>,
    /// Votequorum (`None`: no quorum service; `Quorum::is_quorate` is then false).
    pub quorum: Option<phalanx_quorum::QuorumConfig>,
    /// The quorum-device driver (a `phalanx-qnetd` arbitrator), if configured.
    pub qdevice: Option<crate::quorum_client::DriverConfig>,
    /// The cluster's name, for tools.
    pub cluster_name: String,
    /// Node names from the node list, for tools.
    pub node_names: BTreeMap<NodeId, String>,
}

/// The cluster key and cipher.
#[derive(Clone)]
pub struct CryptoOptions {
    /// The cluster key (the key file's bytes, 32..=4096 of them).
    pub key: Vec<u8>,
    /// Mixed into the derived keys: clusters sharing a key file cannot talk.
    pub cluster_name: String,
    /// The AEAD.
    pub cipher: crate::crypto::Cipher,
}

impl std::fmt::Debug for CryptoOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CryptoOptions")
            .field("key", &format_args!("<{} bytes>", self.key.len()))
            .field("cluster_name", &self.cluster_name)
            .field("cipher", &self.cipher)
            .finish()
    }
}

impl NodeOptions {
    /// Options with defaults: no state directory, no flight recorder, 65 536
    /// pending events.
    pub fn new(totem: Config, addrs: BTreeMap<NodeId, SocketAddr>) -> Self {
        NodeOptions {
            totem,
            addrs,
            links: LinkOptions::default(),
            state_dir: None,
            logger: Logger::discard(),
            event_capacity: 65_536,
            socket_buffer: 0,
            crypto: None,
            realtime_priority: None,
            cpg: CpgConfig::default(),
            admin_socket: None,
            quorum: None,
            qdevice: None,
            cluster_name: String::new(),
            node_names: BTreeMap::new(),
        }
    }
}

/// What the application receives, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeEvent {
    /// A message in agreed (or safe) order (raw messages of
    /// [`NodeHandle::mcast`]; process-group traffic goes to [`CpgMember`]s).
    Deliver(RawDelivery),
    /// A transitional or regular configuration.
    Config(ConfigChange),
}

/// What handles send the driver: Stack requests (answered through [`Reply`]), and
/// the one thing the driver itself owns, where a CPG member's events go.
pub(crate) enum Command {
    /// A Stack input, with where its answer goes.
    Stack(Request, Reply),
    /// A new CPG member: where its events go.
    CpgRegister { local: u32, sink: cpg::MemberSink },
}

/// Where the answer to a [`Command::Stack`] goes.
pub(crate) enum Reply {
    /// Nobody waits (device votes, member down, leave).
    None,
    /// A CPG handle waits (join, leave).
    Cpg(Sender<Result<(), phalanx_cpg::CpgError>>),
    /// A quorum handle waits.
    Quorum(Sender<Result<(), QuorumCallError>>),
    /// Admitted by a handle against the shared CPG budget (`reserved` bytes, one
    /// message); released once the core took it.
    CpgBudget(usize),
}

/// Wakes the driver if it is parked in `poll` (an eventfd write per message was
/// ~20 % of the small-message send profile). The fence pairs with the driver's;
/// the argument is in `Driver::run`. A failed wake means the driver is gone; the
/// caller's next send then fails.
pub(crate) fn wake_if_parked(shared: &Shared, waker: &mio::Waker) {
    fence(Ordering::SeqCst);
    if shared.parked.load(Ordering::SeqCst) {
        let _ = waker.wake();
    }
}

/// Sends a command that the driver answers (join, leave, quorum changes) and
/// waits for the answer; `stopped` when the driver is gone.
pub(crate) fn request<E>(
    tx: &Sender<Command>,
    shared: &Shared,
    waker: &mio::Waker,
    make: impl FnOnce(Sender<Result<(), E>>) -> Command,
    stopped: impl Fn() -> E,
) -> Result<(), E> {
    let (reply, answer) = bounded(1);
    tx.send(make(reply)).map_err(|_| stopped())?;
    wake_if_parked(shared, waker);
    answer.recv().map_err(|_| stopped())?
}

/// State the driver publishes for handles to read.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Bytes accepted by handles and not yet sent on a ring.
    pub(crate) queued: AtomicUsize,
    pub(crate) membership: Mutex<(RingId, Vec<NodeId>)>,
    pub(crate) stats: Mutex<(Stats, DriverStats)>,
    /// Operational, nothing queued, everything received delivered.
    pub(crate) quiescent: std::sync::atomic::AtomicBool,
    pub(crate) operational: std::sync::atomic::AtomicBool,
    /// The driver is (about to be) blocked in `poll`: handles must wake it.
    pub(crate) parked: AtomicBool,
    /// State and counters of every (peer, link).
    pub(crate) links: Mutex<Vec<PeerLinkStatus>>,
    /// Process groups.
    pub(crate) cpg: cpg::CpgShared,
    /// Quorum.
    pub(crate) quorum: quorum::QuorumShared,
}

/// A clonable, thread-safe handle to a running node.
#[derive(Clone)]
pub struct NodeHandle {
    node_id: NodeId,
    cpg: Cpg,
    limit: usize,
    max_message: usize,
    tx: Sender<Command>,
    waker: Arc<mio::Waker>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHandle")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl NodeHandle {
    /// Queues a message for ordered delivery to every member, this node included.
    /// Returns at once: [`SendError::TryAgain`] when the send queue is full.
    pub fn mcast(&self, guarantee: Guarantee, data: &[u8]) -> Result<(), SendError> {
        if data.len() > self.max_message {
            return Err(SendError::TooLarge {
                size: data.len(),
                max: self.max_message,
            });
        }
        let before = self.shared.queued.fetch_add(data.len(), Ordering::AcqRel);
        if before + data.len() > self.limit && before > 0 {
            self.shared.queued.fetch_sub(data.len(), Ordering::AcqRel);
            return Err(SendError::TryAgain);
        }
        // One spare byte in front: the stack writes the service id there, so the
        // payload is copied once, here.
        let mut msg = Vec::with_capacity(1 + data.len());
        msg.push(0);
        msg.extend_from_slice(data);
        let request = Request::Mcast { guarantee, msg };
        if self.tx.send(Command::Stack(request, Reply::None)).is_err() {
            self.shared.queued.fetch_sub(data.len(), Ordering::AcqRel);
            return Err(SendError::Left);
        }
        wake_if_parked(&self.shared, &self.waker);
        Ok(())
    }

    /// The node's process-group service.
    pub fn cpg(&self) -> Cpg {
        self.cpg.clone()
    }

    /// The node's quorum service.
    pub fn quorum(&self) -> Quorum {
        Quorum {
            tx: self.tx.clone(),
            waker: self.waker.clone(),
            shared: self.shared.clone(),
        }
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The installed ring and its members.
    pub fn membership(&self) -> (RingId, Vec<NodeId>) {
        self.shared.membership.lock().clone()
    }

    /// Protocol and driver counters (published by the driver every loop).
    pub fn stats(&self) -> (Stats, DriverStats) {
        self.shared.stats.lock().clone()
    }

    /// State, round-trip time and counters of every (peer, link), ordered by
    /// peer then link number (published by the driver every 10 ms and at once on
    /// every link state change).
    pub fn links(&self) -> Vec<PeerLinkStatus> {
        self.shared.links.lock().clone()
    }

    /// Whether the node is operational on a ring (as of the driver's last pass).
    pub fn is_operational(&self) -> bool {
        self.shared.operational.load(Ordering::Acquire)
    }

    /// Operational, nothing queued to send, everything received delivered (as of
    /// the driver's last pass).
    pub fn is_quiescent(&self) -> bool {
        self.shared.queued.load(Ordering::Acquire) == 0
            && self.shared.quiescent.load(Ordering::Acquire)
    }

    /// Bytes that can be queued right now.
    pub fn send_room(&self) -> usize {
        self.limit
            .saturating_sub(self.shared.queued.load(Ordering::Acquire))
    }
}

/// A running node: the driver thread and the event stream.
pub struct Node {
    handle: NodeHandle,
    /// Dropped (socket removed) when the node stops.
    admin: Option<crate::admin::AdminServer>,
    events: Receiver<NodeEvent>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl Node {
    /// Checks the options ([`NodeOptions::validate`]), binds the node's sockets
    /// and starts its driver thread (and the admin socket and quorum device
    /// client when configured).
    pub fn start(opts: NodeOptions) -> Result<Node, NodeError> {
        opts.validate()?;
        let (tx, rx) = unbounded();
        let (ev_tx, ev_rx) = bounded(opts.event_capacity.max(1));
        let shared = Arc::new(Shared::default());
        let limit = opts
            .totem
            .send_queue_bytes
            .saturating_sub(opts.totem.max_message_size)
            .max(1);
        let max_message = opts.totem.max_message_size;
        let node_id = opts.totem.node_id;
        let event_capacity = opts.event_capacity;
        let admin_path = opts.admin_socket.clone();
        let mut names: BTreeMap<NodeId, String> =
            opts.addrs.keys().map(|&id| (id, String::new())).collect();
        for (id, name) in &opts.node_names {
            names.insert(*id, name.clone());
        }
        let admin_info = (opts.cluster_name.clone(), names);
        let cpg_cfg = opts.cpg.clone();
        let qdevice_cfg = opts.qdevice.clone();
        let mut driver = driver::Driver::new(opts, rx, ev_tx, shared.clone())?;
        let waker = driver.waker();
        if let Some(cfg) = qdevice_cfg {
            let (qtx, qwaker) = (tx.clone(), waker.clone());
            let qd = crate::quorum_client::QdeviceDriver::start(cfg, move |ev| {
                // Called on the device thread before any frame that depends on the
                // event leaves: the vote reaches the core first.
                if let phalanx_quorum::qdevice::client::ClientEvent::Vote { ring, cast } = *ev {
                    let vote = QuorumRequest::DeviceVote { ring, cast };
                    let _ = qtx.send(Command::Stack(Request::Quorum(vote), Reply::None));
                    let _ = qwaker.wake();
                }
            })?;
            driver.set_qdevice(qd);
        }
        let cpg = Cpg {
            node_id,
            tx: tx.clone(),
            waker: waker.clone(),
            shared: shared.clone(),
            event_capacity,
            max_message: cpg_cfg.max_message_size,
            limits: (cpg_cfg.send_queue_bytes, cpg_cfg.send_queue_messages.max(1)),
        };
        let thread = std::thread::Builder::new()
            .name(format!("phalanx-node-{node_id}"))
            .spawn(move || driver.run())?;
        let mut node = Node {
            handle: NodeHandle {
                node_id,
                cpg,
                limit,
                max_message,
                tx,
                waker,
                shared,
            },
            events: ev_rx,
            thread: Some(thread),
            admin: None,
        };
        if let Some(path) = admin_path {
            let provider = admin::NodeAdmin {
                shared: node.handle.shared.clone(),
                quorum: node.quorum(),
                node_id,
                cluster_name: admin_info.0,
                nodes: admin_info.1,
            };
            let admin = crate::admin::AdminServer::start(&path, Arc::new(provider))
                .map_err(|source| NodeError::AdminSocket { path, source })?;
            node.admin = Some(admin);
        }
        Ok(node)
    }

    /// A handle for sending and reading state; clone it freely.
    pub fn handle(&self) -> NodeHandle {
        self.handle.clone()
    }

    /// The node's process-group service.
    pub fn cpg(&self) -> Cpg {
        self.handle.cpg()
    }

    /// The node's quorum service.
    pub fn quorum(&self) -> Quorum {
        self.handle.quorum()
    }

    /// Deliveries and configuration changes, in order.
    pub fn events(&self) -> &Receiver<NodeEvent> {
        &self.events
    }

    /// Leaves the cluster cleanly and stops the driver.
    pub fn leave(mut self) -> io::Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> io::Result<()> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        self.admin = None;
        let _ = self
            .handle
            .tx
            .send(Command::Stack(Request::Leave, Reply::None));
        let _ = self.handle.waker.wake();
        // Unblock a driver waiting on a full event channel.
        while !thread.is_finished() {
            while self.events.try_recv().is_ok() {}
            std::thread::yield_now();
        }
        thread
            .join()
            .map_err(|_| io::Error::other("driver thread panicked"))?
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
