//! A cluster node on real UDP sockets: the Stack driven by a mio poll loop on
//! its own thread ([`Node`]), with clonable handles for application threads:
//! [`NodeHandle`] (raw totem messages, membership, counters), [`Cpg`] (process
//! groups) and [`Quorum`].
//!
//! Options come from a cluster configuration ([`NodeOptions::from_config`]) or
//! are built in code ([`NodeOptions::new`] and its `with_*` methods).

mod admin;
mod callback;
mod cib_handle;
mod cib_store;
mod cpg;
mod dlm_admin;
mod dlm_handle;
mod dlm_marker;
mod driver;
mod error;
mod fence_handle;
mod fence_register;
mod fencing;
mod from_config;
mod gso;
mod link_options;
mod mmsg;
mod options;
mod persist;
mod quorum;
mod snapshot;
mod sockets;
mod stats_keys;
mod transport;
mod validate;
mod watchdog;

/// UDP segmentation offload (`UDP_SEGMENT` / `UDP_GRO`) for a caller's own socket.
pub use gso::public as udp_offload;

pub use crate::link::{LinkState, LinkStats, PeerLinkStatus};
pub use callback::CallbackGuard;
pub use cib_handle::{CIB_HANDLE_CLIENT, Cib, CibCallError, CibStatus};
pub use cpg::{CallbackMember, Cpg, CpgGroup, CpgMember, DispatchMode};
pub use dlm_admin::parse_mode;
pub use dlm_handle::{
    Dlm, DlmCallError, DlmDump, DlmNotice, DumpedLock, Granted, LockCall, Lockspace, Notify,
};
pub use dlm_marker::{DEFAULT_BOOT_ID_FILE, DlmPredecessor};
pub use driver::DriverStats;
pub use error::NodeError;
pub use fence_handle::{
    Fence, FenceCallError, FenceNodeState, FenceStatus, FencedBy, HANDLE_CLIENT,
};
pub use fencing::{NodeFencing, fencing_from_config};
pub use link_options::{ExtraLink, LinkOptions, LinkParams, Multicast};
pub use options::{CryptoOptions, NodeOptions};
pub use quorum::{
    Quorum, QuorumCallError, QuorumChange, QuorumInfo, QuorumNotifications, QuorumNotificationsIter,
};
pub use snapshot::{Membership, NodeStats};
pub use transport::{TransportStats, set_socket_buffers};
pub use watchdog::{WatchdogKind, WatchdogOptions, default_supervisor, watchdog_from_config};

use crate::stack::{QuorumRequest, RawDelivery, Request};
use crossbeam_channel::{Receiver, Sender, bounded, unbounded};
use parking_lot::Mutex;
use phalanx_totem::{ConfigChange, Guarantee, NodeId, SendError};
use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};
use std::thread::JoinHandle;

/// What the application receives, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeEvent {
    /// A message in agreed (or safe) order (raw messages of
    /// [`NodeHandle::mcast`]; process-group traffic goes to [`CpgMember`]s).
    Deliver(RawDelivery),
    /// A transitional or regular configuration, and the driver step that
    /// produced it (the same numbering as [`QuorumChange::step`], so a reader of
    /// both streams can tell which quorum decision came with it).
    Config(ConfigChange, u64),
    /// Fencing: a result, a node owed fencing, a node fenced.
    Fence(crate::stack::FenceNotice),
    /// The CIB: a diff, a sync, a divergence report (replies go to handles too).
    Cib(phalanx_cib::service::CibEvent),
}

/// What handles send the driver: Stack requests (answered through [`Reply`]), and
/// the one thing the driver itself owns, where a CPG member's events go.
pub(crate) enum Command {
    /// A Stack input, with where its answer goes.
    Stack(Request, Reply),
    /// A new CPG member: where its events go.
    CpgRegister { local: u32, sink: cpg::MemberSink },
    /// A DLM handle's call (answered by the driver, which routes its notices).
    Dlm(dlm_handle::DlmCommand),
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
    /// A CIB handle waits for its request (`call`) to be applied.
    CibDone {
        /// The handle's call id.
        call: u64,
        /// Where the result goes.
        answer: cib_handle::CibAnswer,
    },
    /// A fence handle waits for the fencer to take the request.
    FenceAccepted(Sender<Result<(), FenceCallError>>),
    /// A fence handle waits for its operation (`call`) to finish.
    FenceDone {
        /// The handle's call id.
        call: u64,
        /// Where the result goes.
        answer: fence_handle::FenceAnswer,
    },
}

/// Wakes the driver if it is parked in `poll` (an eventfd write per message was
/// ~20 % of the small-message send profile). The fence pairs with the driver's;
/// the argument is in `Driver::run`. A failed wake means the driver is gone; the
/// caller's next send then fails.
///
/// Only the handle that turns `parked` off writes the eventfd: the others of the
/// same park find it off and know a wake is on its way. One of them whose
/// command the woken driver's drain missed is still seen — its fence precedes
/// the driver's next parking fence (it read `parked` before that store), so the
/// driver's look at the queue before it sleeps again finds the command. (Every
/// handle writing while the driver was still asleep was ~3.4 % of the CPG
/// 64-byte profile.)
pub(crate) fn wake_if_parked(shared: &Shared, waker: &mio::Waker) {
    fence(Ordering::SeqCst);
    if shared.parked.load(Ordering::SeqCst) && shared.parked.swap(false, Ordering::SeqCst) {
        let _ = waker.wake();
    }
}

/// Whether the driver is parked and wakes by itself by Stack time `t` (ns):
/// then a handle whose only news for it is a timer due at `t` or later need
/// not wake it. Read after the news was made (under the state's lock); see the
/// driver's parking protocol.
pub(crate) fn parked_until_at_most(shared: &Shared, t: u64) -> bool {
    fence(Ordering::SeqCst);
    shared.parked.load(Ordering::SeqCst) && shared.parked_until.load(Ordering::SeqCst) <= t
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
    pub(crate) membership: Mutex<Membership>,
    pub(crate) stats: Mutex<NodeStats>,
    /// Operational, nothing queued, everything received delivered.
    pub(crate) quiescent: std::sync::atomic::AtomicBool,
    pub(crate) operational: std::sync::atomic::AtomicBool,
    /// The driver is (about to be) blocked in `poll`: handles must wake it.
    pub(crate) parked: AtomicBool,
    /// While `parked`: the driver wakes by itself at the latest at this Stack
    /// time (ns; `u64::MAX`: no deadline). Stored before `parked`.
    pub(crate) parked_until: AtomicU64,
    /// State and counters of every (peer, link).
    pub(crate) links: Mutex<Vec<PeerLinkStatus>>,
    /// Process groups.
    pub(crate) cpg: cpg::CpgShared,
    /// Quorum.
    pub(crate) quorum: quorum::QuorumShared,
    /// Fencing.
    pub(crate) fence: fence_handle::FenceShared,
    /// The CIB.
    pub(crate) cib: cib_handle::CibShared,
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
    /// The DLM's caller's-thread path (`None` without the DLM).
    dlm_fast: Option<dlm_handle::DlmFast>,
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

    /// The replicated CIB through this node (`NotConfigured` without it).
    pub fn cib(&self) -> Cib {
        Cib {
            tx: self.tx.clone(),
            waker: self.waker.clone(),
            shared: self.shared.clone(),
        }
    }

    /// The distributed lock manager through this node (calls fail with
    /// `NotConfigured` unless `NodeOptions::dlm` is set).
    pub fn dlm(&self) -> Dlm {
        Dlm {
            tx: self.tx.clone(),
            waker: self.waker.clone(),
            shared: self.shared.clone(),
            node: self.node_id,
            fast: self.dlm_fast.clone(),
        }
    }

    /// Fencing through this node (requests fail with `NotConfigured` without it).
    pub fn fence(&self) -> Fence {
        Fence {
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
    pub fn membership(&self) -> Membership {
        self.shared.membership.lock().clone()
    }

    /// Protocol and driver counters (published by the driver every loop).
    pub fn stats(&self) -> NodeStats {
        self.shared.stats.lock().clone()
    }

    /// Every counter and link state as the flat, ordered `stats.*` list that
    /// `phalanx-stats` prints (the admin socket's answer to `Stats`).
    pub fn stat_keys(&self) -> Vec<crate::admin::Stat> {
        stats_keys::flatten(&self.shared.stats.lock(), &self.shared.links.lock())
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

/// A running node: the driver thread and the event stream. Dropping it leaves
/// the cluster, as [`Node::leave`] does.
///
/// A one-node cluster on loopback that multicasts and receives its own message:
///
/// ```
/// use phalanx::node::{Node, NodeEvent, NodeOptions};
/// use phalanx::totem::{Config, Guarantee};
/// use std::time::Duration;
///
/// // A free port for the example; a real cluster's addresses come from its
/// // configuration (`NodeOptions::from_config`).
/// let port = std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port();
/// let addrs = [(1, format!("127.0.0.1:{port}").parse()?)].into();
/// let node = Node::start(NodeOptions::new(Config::new(1, vec![1]), addrs))?;
///
/// // Queued at once; sent when the node is on a ring, and delivered to every
/// // member, this one included, in one order.
/// node.handle().mcast(Guarantee::Agreed, b"hello")?;
/// loop {
///     match node.events().recv_timeout(Duration::from_secs(30))? {
///         NodeEvent::Config(c, _) => println!("{:?} ring {}: {:?}", c.kind, c.ring, c.members),
///         NodeEvent::Deliver(d) => {
///             assert_eq!((d.sender, &d.data[..]), (1, &b"hello"[..]));
///             break;
///         }
///         _ => {} // fencing notices (none without a `fencing` configuration)
///     }
/// }
/// assert_eq!(node.handle().membership().members, [1]);
/// node.leave()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Node {
    handle: NodeHandle,
    dlm_predecessor: DlmPredecessor,
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
        let agent_dir = opts.fencing.as_ref().map(|f| f.agent_dir.clone());
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
        let dlm_fast = driver.dlm_fast();
        let dlm_predecessor = driver.dlm_predecessor;
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
            dlm_predecessor,
            handle: NodeHandle {
                node_id,
                cpg,
                limit,
                max_message,
                tx,
                waker,
                shared,
                dlm_fast,
            },
            events: ev_rx,
            thread: Some(thread),
            admin: None,
        };
        if let Some(path) = admin_path {
            let provider = admin::NodeAdmin {
                shared: node.handle.shared.clone(),
                quorum: node.quorum(),
                fence: node.fence(),
                cib: node.cib(),
                dlm: node.dlm(),
                dlm_lockspaces: Default::default(),
                node_id,
                cluster_name: admin_info.0,
                nodes: admin_info.1,
                agent_dir,
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

    /// Fencing through this node.
    pub fn fence(&self) -> Fence {
        self.handle.fence()
    }

    /// The replicated CIB through this node.
    pub fn cib(&self) -> Cib {
        self.handle.cib()
    }

    /// The distributed lock manager through this node.
    pub fn dlm(&self) -> Dlm {
        self.handle.dlm()
    }

    /// What this node found of its previous process's DLM marker when it
    /// started (`docs/dlm.md`, "A process that restarts unclean").
    pub fn dlm_predecessor(&self) -> DlmPredecessor {
        self.dlm_predecessor
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
