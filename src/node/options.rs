//! How to run a node: [`NodeOptions`] and its cluster key, [`CryptoOptions`].

use super::link_options::LinkOptions;
use phalanx_cpg::CpgConfig;
use phalanx_logsys::Logger;
use phalanx_totem::{Config, NodeId};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// How to run a node.
///
/// Built from a cluster configuration ([`NodeOptions::from_config`]) or from
/// [`NodeOptions::new`] (the protocol configuration and every node's address)
/// and the `with_*` methods for anything else. The fields are public for
/// reading and for changing in place; the struct is `#[non_exhaustive]`, so
/// new options can come without breaking callers, which therefore cannot write
/// it as a struct literal.
///
/// ```
/// use phalanx::node::{CryptoOptions, NodeOptions};
/// use phalanx::quorum::QuorumConfig;
/// use phalanx::totem::Config;
/// use std::collections::BTreeMap;
/// use std::net::SocketAddr;
///
/// let addrs: BTreeMap<u32, SocketAddr> = [
///     (1, "10.0.0.1:5405".parse()?),
///     (2, "10.0.0.2:5405".parse()?),
///     (3, "10.0.0.3:5405".parse()?),
/// ]
/// .into();
/// let mut opts = NodeOptions::new(Config::new(1, vec![1, 2, 3]), addrs)
///     .with_crypto(CryptoOptions::new(vec![0x5a; 32], "demo"))
///     .with_state_dir("/var/lib/phalanx")
///     .with_quorum(QuorumConfig::new(1, &[1, 2, 3]))
///     .with_cluster_name("demo");
/// opts.event_capacity = 4096; // fields can be set in place too
/// opts.validate()?; // what `Node::start` checks first, binding nothing
/// assert_eq!(opts.cluster_name, "demo");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
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
    /// Many datagrams per system call: the datagrams of one driver pass go out
    /// with one `sendmmsg` per link, and waiting ones are read with `recvmmsg`.
    /// Off by default: measured in the Corosync rig's topology (3 nodes, MTU
    /// 1500) it bought nothing (tput1 1 KiB 40 k vs 49 k msgs/s, 64 B and 16 KiB
    /// equal within noise, lat1 p50 +6 %; `docs/performance.md`), because one pass
    /// holds few datagrams per link and holding them delays the first.
    pub batch_io: bool,
    /// Segmentation offload at the kernel boundary (on by default): the frames
    /// one input produces for one peer go out in one `sendmsg` with
    /// `UDP_SEGMENT` (equal-sized runs; the wire carries the same datagrams), and
    /// the sockets read with `UDP_GRO`, so a run arrives in one read. A kernel or
    /// device that refuses it is detected at the first send and the node goes on
    /// datagram by datagram (`TransportStats::tx_gso_refused`); datagrams larger
    /// than the path MTU (which the kernel fragments but cannot segment) go one by
    /// one, and runs to IPv6 multicast groups too. Ignored when
    /// [`batch_io`](Self::batch_io) is on. Measured gains (3 nodes, MTU 1500):
    /// `docs/performance.md`.
    pub segmentation_offload: bool,
    /// Authenticated encryption of every datagram (`None`: plaintext, for
    /// benchmarks). A node without the key cannot take part.
    pub crypto: Option<CryptoOptions>,
    /// Run the driver thread under SCHED_RR with this priority (1–99), as
    /// Corosync's `sched_rr: yes` does, so CPU starvation of the node's own
    /// thread cannot look like a failed node to the others. Needs
    /// CAP_SYS_NICE; when refused the node runs normally and counts it in
    /// `DriverStats::realtime_refused`. `None` (the default): normal scheduling.
    pub realtime_priority: Option<i32>,
    /// Before the driver thread sleeps, it polls its sockets and command queue
    /// without sleeping for up to this long (zero, the default: it sleeps at
    /// once). A datagram or a send that comes within the spin is taken without a
    /// thread wake-up (≈ 10–20 µs on a VM whose idle vCPUs halt), at the cost of a
    /// core busy for the spin after every pass.
    pub spin_before_park: std::time::Duration,
    /// After a lock-manager message that calls for an answer went to a peer
    /// point-to-point (a request to a remote master, a BAST to a holder), the
    /// driver polls for the answer without sleeping for up to this long (once
    /// per wait, yielding its CPU): the answer is one hop and the peer's work
    /// away, and taking it without a wake-up saves about one in the lock's round
    /// trip. Default 100 µs; zero: sleep at once.
    pub dlm_answer_spin: std::time::Duration,
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
    /// Fencing (needs `quorum`): devices, levels, policy, where agents run.
    pub fencing: Option<super::NodeFencing>,
    /// Run the replicated CIB (every node of the cluster or none); its files live
    /// in `<state_dir>/cib-<node id>/` (memory only without a state directory).
    pub cib: bool,
    /// Pacemaker's RelaxNG schema directory (e.g. `/usr/share/pacemaker`): every
    /// CIB change is validated against the schema its `validate-with` names
    /// ([`crate::relaxng`]). `None`: no validation. Give every node the same.
    pub cib_schemas: Option<std::path::PathBuf>,
    /// The CIB takes writes only in a quorate partition
    /// ([`crate::stack::CibSetup::require_quorum`]; `None`: when `quorum` is set).
    pub cib_require_quorum: Option<bool>,
    /// Run the distributed lock manager (`Node::dlm` handles; lockspaces are CPG
    /// groups `dlm:<name>`, so only nodes that join a lockspace take part in it).
    pub dlm: Option<crate::stack::DlmSetup>,
    /// Where the host's boot id is read (default
    /// `/proc/sys/kernel/random/boot_id`). With the DLM, fencing and a state
    /// directory, a node that first joins a lockspace leaves a marker with this
    /// id in the state directory until it stops cleanly; a process that finds
    /// its predecessor's marker of the same boot is fenced before anyone joins a
    /// lockspace (`docs/dlm.md`). Several simulated hosts on one machine (tests)
    /// each give their own file, which their fence agent rewrites when it
    /// power-cycles the node.
    pub boot_id_file: std::path::PathBuf,
    /// The node's own watchdog (`None`: none): armed at start, fed by the driver
    /// loop, starved when the node must fence itself (quorum lost under
    /// `no-quorum-policy=suicide`), disarmed on a clean leave.
    pub watchdog: Option<super::WatchdogOptions>,
}

impl NodeOptions {
    /// Options with defaults: link 0 alone, no state directory, no flight
    /// recorder, 65 536 pending events, plaintext, no quorum, no admin socket.
    pub fn new(totem: Config, addrs: BTreeMap<NodeId, SocketAddr>) -> Self {
        NodeOptions {
            totem,
            addrs,
            links: LinkOptions::default(),
            state_dir: None,
            logger: Logger::discard(),
            event_capacity: 65_536,
            socket_buffer: 0,
            batch_io: false,
            segmentation_offload: true,
            crypto: None,
            realtime_priority: None,
            spin_before_park: std::time::Duration::ZERO,
            dlm_answer_spin: std::time::Duration::from_micros(100),
            cpg: CpgConfig::default(),
            admin_socket: None,
            quorum: None,
            qdevice: None,
            cluster_name: String::new(),
            node_names: BTreeMap::new(),
            fencing: None,
            cib: false,
            cib_schemas: None,
            cib_require_quorum: None,
            dlm: None,
            boot_id_file: super::dlm_marker::DEFAULT_BOOT_ID_FILE.into(),
            watchdog: None,
        }
    }

    /// Sets [`links`](Self::links).
    pub fn with_links(mut self, links: LinkOptions) -> Self {
        self.links = links;
        self
    }

    /// Sets [`state_dir`](Self::state_dir).
    pub fn with_state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    /// Sets [`logger`](Self::logger).
    pub fn with_logger(mut self, logger: Logger) -> Self {
        self.logger = logger;
        self
    }

    /// Sets [`event_capacity`](Self::event_capacity).
    pub fn with_event_capacity(mut self, events: usize) -> Self {
        self.event_capacity = events;
        self
    }

    /// Sets [`batch_io`](Self::batch_io).
    pub fn with_batch_io(mut self, on: bool) -> Self {
        self.batch_io = on;
        self
    }

    /// Sets [`segmentation_offload`](Self::segmentation_offload).
    pub fn with_segmentation_offload(mut self, on: bool) -> Self {
        self.segmentation_offload = on;
        self
    }

    /// Sets [`socket_buffer`](Self::socket_buffer).
    pub fn with_socket_buffer(mut self, bytes: usize) -> Self {
        self.socket_buffer = bytes;
        self
    }

    /// Sets [`crypto`](Self::crypto).
    pub fn with_crypto(mut self, crypto: CryptoOptions) -> Self {
        self.crypto = Some(crypto);
        self
    }

    /// Sets [`spin_before_park`](Self::spin_before_park).
    pub fn with_spin_before_park(mut self, spin: std::time::Duration) -> Self {
        self.spin_before_park = spin;
        self
    }

    /// Sets [`realtime_priority`](Self::realtime_priority).
    pub fn with_realtime_priority(mut self, priority: i32) -> Self {
        self.realtime_priority = Some(priority);
        self
    }

    /// Sets [`cpg`](Self::cpg).
    pub fn with_cpg(mut self, cpg: CpgConfig) -> Self {
        self.cpg = cpg;
        self
    }

    /// Sets [`admin_socket`](Self::admin_socket).
    pub fn with_admin_socket(mut self, path: impl Into<PathBuf>) -> Self {
        self.admin_socket = Some(path.into());
        self
    }

    /// Sets [`quorum`](Self::quorum).
    pub fn with_quorum(mut self, quorum: phalanx_quorum::QuorumConfig) -> Self {
        self.quorum = Some(quorum);
        self
    }

    /// Sets [`qdevice`](Self::qdevice).
    pub fn with_qdevice(mut self, qdevice: crate::quorum_client::DriverConfig) -> Self {
        self.qdevice = Some(qdevice);
        self
    }

    /// Sets [`cluster_name`](Self::cluster_name).
    pub fn with_cluster_name(mut self, name: impl Into<String>) -> Self {
        self.cluster_name = name.into();
        self
    }

    /// Sets [`node_names`](Self::node_names).
    pub fn with_node_names(mut self, names: BTreeMap<NodeId, String>) -> Self {
        self.node_names = names;
        self
    }
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

impl CryptoOptions {
    /// `key` for the cluster `cluster_name`, with the default cipher.
    pub fn new(key: Vec<u8>, cluster_name: impl Into<String>) -> Self {
        CryptoOptions {
            key,
            cluster_name: cluster_name.into(),
            cipher: crate::crypto::Cipher::default(),
        }
    }
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
