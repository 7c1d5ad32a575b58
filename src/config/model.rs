//! The configuration model shared by both syntaxes, its validation, and the
//! mapping onto the protocol cores' configurations.

use super::error::{ConfigError, Warning};
use super::fencing::FencingConfig;
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

/// Most links (Corosync's `INTERFACE_MAX`): link numbers are 0..=7.
pub const MAX_LINKS: usize = 8;
/// Default UDP port of link 0; link `n` defaults to `DEFAULT_PORT + n`.
pub const DEFAULT_PORT: u16 = 5405;
/// Default cluster key file.
pub const DEFAULT_KEY_FILE: &str = "/etc/phalanx/authkey";
/// Default directory for persisted state (ring sequence, expected-votes tracking).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/phalanx";
/// Smallest accepted cluster key, in bytes.
pub const MIN_KEY_LEN: usize = 32;
/// Bytes a datagram spends on IP and UDP headers (IPv6, the larger of the two).
pub const IP_UDP_OVERHEAD: usize = 48;
/// Bytes a datagram spends on crypto when it is on: the sealed datagram's header
/// and AEAD tag ([`crate::crypto::OVERHEAD`]).
pub const CRYPTO_OVERHEAD: usize = crate::crypto::OVERHEAD;
/// Corosync's default `netmtu`: with it, a full frame fits one 1 500-byte packet.
pub const DEFAULT_NETMTU: u32 = 1500;
/// Corosync's default `token_coefficient`.
pub const DEFAULT_TOKEN_COEFFICIENT: Duration = Duration::from_millis(650);

/// A whole cluster configuration, as loaded from a corosync.conf or a TOML file.
///
/// Every field has a default ([`ClusterConfig::default`]); [`ClusterConfig::validate`]
/// checks the cross-field rules; the loaders call it.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterConfig {
    /// Cluster name (`totem.cluster_name`). Default empty.
    pub cluster_name: String,
    /// The node list (`nodelist { node { ... } }`).
    pub nodes: Vec<NodeEntry>,
    /// The local node id if the file names it (`totem.nodeid`, TOML `local_node_id`).
    pub local_node_id: Option<u32>,
    /// The local node's position in `nodes` if the file names it
    /// (`nodelist.local_node_pos`, TOML `local_node_pos`).
    pub local_node_pos: Option<usize>,
    /// How datagrams travel.
    pub transport: Transport,
    /// Per-link settings, index = link number; one per link the nodes use.
    pub links: Vec<LinkConfig>,
    /// How links are used when there are several (knet `link_mode`).
    pub link_mode: LinkMode,
    /// Totem timers and flow control as given in the file (unset = default).
    pub totem: TotemTimings,
    /// Datagram authentication and encryption.
    pub crypto: CryptoConfig,
    /// Directory for persisted state (`system.state_dir`). Default `/var/lib/phalanx`.
    pub state_dir: PathBuf,
    /// Quorum options (`quorum { ... }`).
    pub quorum: QuorumConfig,
    /// Logging options (`logging { ... }`).
    pub logging: LoggingConfig,
    /// Fencing options, devices and levels (`fencing { ... }`); off without it.
    pub fencing: FencingConfig,
    /// Run the replicated CIB (`cib { enabled: yes }`; on when the section is
    /// present). Every node of a cluster must agree.
    pub cib: bool,
    /// Where Pacemaker's RelaxNG schemas are (`cib { schemas: DIR }`, e.g.
    /// `/usr/share/pacemaker`): every CIB change is then validated against the
    /// schema its `validate-with` names, as Pacemaker's CIB manager does. Off
    /// without it. Every node of a cluster must give the same schemas.
    pub cib_schemas: Option<PathBuf>,
    /// Whether the CIB takes writes only in a quorate partition
    /// (`cib { require_quorum: yes|no }`). `None`: yes exactly when quorum runs
    /// (see `docs/cib-service.md` § Quorum).
    pub cib_require_quorum: Option<bool>,
    /// Serve Corosync's client protocol (libqb IPC: cpg, quorum, votequorum,
    /// cfg) so that programs linked with libcpg & co. use this node
    /// (`compat { ipc: yes }`; TOML `[compat] ipc = true`). Off by default: the
    /// sockets are abstract names per network namespace, which a Corosync
    /// running beside the node would hold.
    pub compat_ipc: bool,
    /// The libqb connection type the client protocol announces
    /// (`compat { ipc_transport: shm | socket }`; TOML `[compat] ipc_transport
    /// = "shm"`): shared memory by default, as Corosync (Pacemaker needs it:
    /// it checks the daemon's uid on the connection's poll fd).
    pub ipc_transport: crate::compat::qb::IpcTransport,
    /// Users whose programs may use the Corosync client protocol besides root
    /// and the daemon's own user: names or numeric ids (`uidgid { uid: ... }`,
    /// one per section, sections repeat; TOML `[compat] uids = [...]`).
    pub ipc_users: Vec<String>,
    /// Groups likewise (`uidgid { gid: ... }`; TOML `[compat] gids = [...]`);
    /// gid 0 always may.
    pub ipc_groups: Vec<String>,
    /// Whether the daemon's driver thread should run real-time (Corosync's
    /// `system.sched_rr`); `None` when the file does not say.
    pub sched_rr: Option<bool>,
    /// How the lock manager's lock traffic travels (`dlm { lock_traffic: direct
    /// | ring }`; TOML `[dlm] lock_traffic = "direct"`); `None` when the file
    /// does not say (the library's default). Every node of a cluster must agree.
    pub dlm_lock_traffic: Option<DlmLockTraffic>,
    /// Where each value came from (file and lines), for error messages.
    pub source: SourceInfo,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            cluster_name: String::new(),
            nodes: Vec::new(),
            local_node_id: None,
            local_node_pos: None,
            transport: Transport::default(),
            links: Vec::new(),
            link_mode: LinkMode::default(),
            totem: TotemTimings::default(),
            crypto: CryptoConfig::default(),
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            quorum: QuorumConfig::default(),
            logging: LoggingConfig::default(),
            fencing: FencingConfig::default(),
            cib: false,
            cib_schemas: None,
            cib_require_quorum: None,
            compat_ipc: false,
            ipc_transport: crate::compat::qb::IpcTransport::Shm,
            ipc_users: Vec::new(),
            ipc_groups: Vec::new(),
            sched_rr: None,
            dlm_lock_traffic: None,
            source: SourceInfo::default(),
        }
    }
}

/// One node of the node list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeEntry {
    /// Node id (`nodeid`), non-zero and unique.
    pub node_id: u32,
    /// Node name (`name`).
    pub name: Option<String>,
    /// Address per link, index = link number (`ring0_addr` .. `ring7_addr`).
    pub addrs: Vec<Option<NodeAddr>>,
    /// Votes this node has (`quorum_votes`). Default 1.
    pub quorum_votes: u32,
}

/// A node's address on one link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeAddr {
    /// An IP address and port.
    Ip(SocketAddr),
    /// A host name, resolved when the node starts.
    Host {
        /// The host name.
        name: String,
        /// The UDP port.
        port: u16,
    },
}

impl NodeAddr {
    /// Parses `ip`, `ip:port`, `[ipv6]:port`, `host` or `host:port`; a missing port
    /// is `default_port`. Never resolves names.
    pub fn parse(s: &str, default_port: u16) -> Result<NodeAddr, String> {
        let s = s.trim();
        if let Ok(sa) = s.parse::<SocketAddr>() {
            return Ok(NodeAddr::Ip(sa));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(NodeAddr::Ip(SocketAddr::new(ip, default_port)));
        }
        if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']'))
            && let Ok(ip) = inner.parse::<IpAddr>()
        {
            return Ok(NodeAddr::Ip(SocketAddr::new(ip, default_port)));
        }
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => match p.parse::<u16>() {
                Ok(p) => (h, p),
                Err(_) => return Err(format!("bad port in address {s:?}")),
            },
            _ => (s, default_port),
        };
        let valid_host = !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
            && !host.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            && !host.starts_with(['-', '.']);
        if !valid_host {
            return Err(format!("not an IP address or host name: {s:?}"));
        }
        Ok(NodeAddr::Host {
            name: host.to_string(),
            port,
        })
    }

    /// The UDP port.
    pub fn port(&self) -> u16 {
        match self {
            NodeAddr::Ip(sa) => sa.port(),
            NodeAddr::Host { port, .. } => *port,
        }
    }

    /// The IP address, if this is not a host name.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            NodeAddr::Ip(sa) => Some(sa.ip()),
            NodeAddr::Host { .. } => None,
        }
    }

    /// Resolves to socket addresses (a name lookup for host names).
    pub fn resolve(&self) -> std::io::Result<Vec<SocketAddr>> {
        match self {
            NodeAddr::Ip(sa) => Ok(vec![*sa]),
            NodeAddr::Host { name, port } => {
                Ok((name.as_str(), *port).to_socket_addrs()?.collect())
            }
        }
    }
}

impl fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeAddr::Ip(sa) => write!(f, "{sa}"),
            NodeAddr::Host { name, port } => write!(f, "{name}:{port}"),
        }
    }
}

/// How datagrams travel between nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Transport {
    /// UDP unicast to each configured node (Phalanx's transport; the default).
    #[default]
    Udpu,
    /// IP multicast (Corosync `transport: udp`).
    Udp {
        /// Multicast group (`interface.mcastaddr`); `None` = derived later.
        mcast_addr: Option<IpAddr>,
        /// Multicast TTL (`interface.ttl`). Default 1.
        ttl: u8,
    },
    /// Corosync's `knet`: accepted so that knet configurations load, and run as
    /// Phalanx's UDP unicast transport with its own link monitoring.
    Knet,
}

impl Transport {
    /// Whether this runs as UDP unicast ([`Transport::Udpu`] or [`Transport::Knet`]).
    pub fn is_unicast(&self) -> bool {
        !matches!(self, Transport::Udp { .. })
    }
}

/// How several links are used (knet `link_mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LinkMode {
    /// Send on the up link with the highest priority (ties: lowest link number).
    #[default]
    Passive,
    /// Send on every up link.
    Active,
    /// Round robin over up links.
    Rr,
}

/// How the lock manager's lookups, requests, conversions, unlocks, ASTs and
/// BASTs travel between nodes (`dlm { lock_traffic: ... }`); recovery is on
/// the ring either way (`docs/dlm.md`, "A point-to-point path").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DlmLockTraffic {
    /// Point-to-point datagrams on the links, one network hop a message.
    Direct,
    /// Agreed CPG messages in the lockspace's group (each waits for the token).
    Ring,
}

impl DlmLockTraffic {
    /// Parses the configuration's spelling (`direct` or `ring`).
    pub fn parse(text: &str) -> Option<DlmLockTraffic> {
        match text {
            "direct" => Some(DlmLockTraffic::Direct),
            "ring" => Some(DlmLockTraffic::Ring),
            _ => None,
        }
    }
}

/// Settings of one link (`totem { interface { linknumber: N ... } }`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkConfig {
    /// Link number, 0..=7 (`linknumber`, Corosync 2 `ringnumber`).
    pub link_number: u8,
    /// UDP port (`mcastport`). Default 5405 + link number.
    pub port: u16,
    /// Priority in passive mode (`knet_link_priority`). Default 0.
    pub priority: u32,
    /// Link ping interval (`knet_ping_interval`). Default token / (4 × pong_count).
    pub ping_interval: Option<Duration>,
    /// Link down after this long without pong (`knet_ping_timeout`). Default
    /// token / (2 × pong_count).
    pub ping_timeout: Option<Duration>,
    /// Pongs needed to declare a link up (`knet_pong_count`). Default 2.
    pub pong_count: u32,
}

impl LinkConfig {
    /// The defaults of link `n`.
    pub fn new(link_number: u8) -> Self {
        LinkConfig {
            link_number,
            port: DEFAULT_PORT.saturating_add(u16::from(link_number)),
            priority: 0,
            ping_interval: None,
            ping_timeout: None,
            pong_count: 2,
        }
    }

    /// Ping interval and timeout for a given token timeout (when unset:
    /// token / (4 × pong_count) and token / (2 × pong_count), half of knet's rule so
    /// that a dead link is found before totem's second token retransmission; see
    /// `docs/links.md`).
    pub fn ping_times(&self, token: Duration) -> (Duration, Duration) {
        let t = crate::link::LinkTiming::with(
            token,
            self.ping_interval,
            self.ping_timeout,
            self.pong_count,
        );
        (t.ping_interval, t.ping_timeout)
    }
}

/// Totem timers and flow control exactly as given in the file; `None` = not given
/// (the default applies, see [`ClusterConfig::totem_config`]). Field names are the
/// Corosync key names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TotemTimings {
    /// Token-loss timeout (`token`). Default 300 ms (Corosync: 3000 ms).
    pub token: Option<Duration>,
    /// Added per node beyond two, only when `token` is given (`token_coefficient`).
    /// Default 650 ms.
    pub token_coefficient: Option<Duration>,
    /// Token re-send interval (`token_retransmit`). Default
    /// token / (token_retransmits_before_loss_const + 0.2).
    pub token_retransmit: Option<Duration>,
    /// Re-sends before the token counts as lost
    /// (`token_retransmits_before_loss_const`). Default 4.
    pub token_retransmits_before_loss_const: Option<u32>,
    /// Token hold on an idle ring (`hold`). Default token / 5, or
    /// 0.8 × token_retransmit when `token` is given.
    pub hold: Option<Duration>,
    /// Join re-send interval (`join`). Default 30 ms.
    pub join: Option<Duration>,
    /// Consensus timeout (`consensus`). Default 250 ms, or 1.2 × effective token
    /// when `token` is given.
    pub consensus: Option<Duration>,
    /// Merge-detect interval (`merge`). Default 200 ms.
    pub merge: Option<Duration>,
    /// Rotations before "failed to receive" (`fail_recv_const`). Default 2500.
    pub fail_recv_const: Option<u32>,
    /// Idle rotations before token hold (`seqno_unchanged_const`). Default 30.
    pub seqno_unchanged_const: Option<u32>,
    /// Frames per rotation (`window_size`). Default 256.
    pub window_size: Option<u32>,
    /// Frames per token visit (`max_messages`). Default 64.
    pub max_messages: Option<u32>,
    /// How long a node that sent everything it had keeps the token for more of
    /// its own messages (`send_hold_us`, microseconds; a Phalanx key, Corosync
    /// has none). Default 0: the token moves on at once, as in Corosync. See
    /// `phalanx_totem::Config::send_hold`.
    pub send_hold: Option<Duration>,
    /// Path MTU in bytes (`netmtu`); the frame size is this minus headers and
    /// crypto overhead. Default 1500 ([`DEFAULT_NETMTU`], Corosync's): a full
    /// frame fits one packet on an Ethernet path, over IPv4 or IPv6.
    pub netmtu: Option<u32>,
    /// Largest application message (Phalanx extension `max_message_size`).
    /// Default 1 MiB.
    pub max_message_size: Option<usize>,
    /// Send queue limit in bytes (Phalanx extension `send_queue_bytes`).
    /// Default 8 MiB.
    pub send_queue_bytes: Option<usize>,
}

/// Cipher for datagrams.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Cipher {
    /// AES-256-GCM (Corosync `aes256`, `aes192`, `aes128` map here).
    #[default]
    Aes256Gcm,
    /// ChaCha20-Poly1305.
    ChaCha20Poly1305,
    /// No crypto (benchmarks only).
    None,
}

/// Datagram authentication and encryption. On by default (AEAD always
/// authenticates and encrypts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CryptoConfig {
    /// Whether datagrams are protected. Default true.
    pub enabled: bool,
    /// The AEAD cipher. Default AES-256-GCM.
    pub cipher: Cipher,
    /// Key file (`keyfile`). Default `/etc/phalanx/authkey`.
    pub key_file: PathBuf,
    /// Inline key (`key`), used instead of the key file.
    pub key: Option<Vec<u8>>,
}

impl Default for CryptoConfig {
    fn default() -> Self {
        CryptoConfig {
            enabled: true,
            cipher: Cipher::Aes256Gcm,
            key_file: PathBuf::from(DEFAULT_KEY_FILE),
            key: None,
        }
    }
}

impl CryptoConfig {
    /// Crypto switched off (`crypto_cipher: none`, `crypto_hash: none`).
    pub fn off() -> Self {
        CryptoConfig {
            enabled: false,
            cipher: Cipher::None,
            ..CryptoConfig::default()
        }
    }
}

/// Which node wins a tie with `auto_tie_breaker`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TieBreakerNode {
    /// The partition with the lowest node id.
    #[default]
    Lowest,
    /// The partition with the highest node id.
    Highest,
    /// The first listed node present.
    Nodes(Vec<u32>),
}

/// Quorum options (votequorum). Parsed and kept; semantics live in `phalanx::quorum`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumConfig {
    /// `provider` (e.g. `corosync_votequorum`).
    pub provider: Option<String>,
    /// `expected_votes`; default = sum of node votes.
    pub expected_votes: Option<u32>,
    /// `two_node`. Default false.
    pub two_node: bool,
    /// `wait_for_all`; `None` = implied by `two_node`.
    pub wait_for_all: Option<bool>,
    /// `last_man_standing`. Default false.
    pub last_man_standing: bool,
    /// `last_man_standing_window`. Default 10 s.
    pub last_man_standing_window: Duration,
    /// `auto_tie_breaker`. Default false.
    pub auto_tie_breaker: bool,
    /// `auto_tie_breaker_node`. Default lowest.
    pub auto_tie_breaker_node: TieBreakerNode,
    /// `allow_downscale`. Default false.
    pub allow_downscale: bool,
    /// `expected_votes_tracking`. Default false.
    pub expected_votes_tracking: bool,
    /// `device { ... }`: a quorum device.
    pub device: Option<QuorumDevice>,
}

impl Default for QuorumConfig {
    fn default() -> Self {
        QuorumConfig {
            provider: None,
            expected_votes: None,
            two_node: false,
            wait_for_all: None,
            last_man_standing: false,
            last_man_standing_window: Duration::from_millis(10_000),
            auto_tie_breaker: false,
            auto_tie_breaker_node: TieBreakerNode::Lowest,
            allow_downscale: false,
            expected_votes_tracking: false,
            device: None,
        }
    }
}

/// A quorum device (`quorum { device { ... } }`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumDevice {
    /// `model` (e.g. `net`).
    pub model: String,
    /// `votes`; default depends on the algorithm.
    pub votes: Option<u32>,
    /// `timeout`. Default 10 s.
    pub timeout: Duration,
    /// `sync_timeout`. Default 30 s.
    pub sync_timeout: Duration,
    /// `net { ... }` settings of the `net` model.
    pub net: Option<QdeviceNet>,
    /// `heuristics { ... }`: commands whose results the arbitrator weighs.
    pub heuristics: Option<QdeviceHeuristics>,
}

/// `quorum.device.heuristics`: commands run on every membership change (`mode:
/// sync`; `on` also runs them periodically in Corosync, which Phalanx does not do
/// yet), all of which must exit 0 for the result to pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QdeviceHeuristics {
    /// `mode`: `off`, `sync` or `on`. Default `off`.
    pub mode: String,
    /// `timeout` for all commands together. Default 5 s.
    pub timeout: Duration,
    /// `exec_<name>: <command>`, in file order.
    pub exec: Vec<(String, String)>,
}

impl Default for QdeviceHeuristics {
    fn default() -> Self {
        QdeviceHeuristics {
            mode: "off".into(),
            timeout: Duration::from_millis(5_000),
            exec: Vec::new(),
        }
    }
}

impl Default for QuorumDevice {
    fn default() -> Self {
        QuorumDevice {
            model: String::new(),
            votes: None,
            timeout: Duration::from_millis(10_000),
            sync_timeout: Duration::from_millis(30_000),
            net: None,
            heuristics: None,
        }
    }
}

/// Settings of the `net` quorum device model (`quorum.device.net`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QdeviceNet {
    /// Arbitrator host (`host`).
    pub host: String,
    /// Arbitrator TCP port (`port`). Default 5403.
    pub port: u16,
    /// `algorithm` (`ffsplit`, `lms`). Default `ffsplit`.
    pub algorithm: String,
    /// `tie_breaker` (`lowest`, `highest`, a node id). Default `lowest`.
    pub tie_breaker: String,
    /// `tls` (`on`, `off`, `required`). Default `on`.
    pub tls: String,
}

impl Default for QdeviceNet {
    fn default() -> Self {
        QdeviceNet {
            host: String::new(),
            port: 5403,
            algorithm: "ffsplit".into(),
            tie_breaker: "lowest".into(),
            tls: "on".into(),
        }
    }
}

/// Debug logging level (`debug: off|on|trace`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DebugLevel {
    /// No debug messages.
    #[default]
    Off,
    /// Debug messages.
    On,
    /// Debug and trace messages.
    Trace,
}

/// Logging options (`logging { ... }`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggingConfig {
    /// `to_stderr`. Default true.
    pub to_stderr: bool,
    /// `to_logfile`. Default false.
    pub to_logfile: bool,
    /// `logfile`.
    pub logfile: Option<PathBuf>,
    /// `to_syslog`. Default false.
    pub to_syslog: bool,
    /// `syslog_facility`. Default `daemon`.
    pub syslog_facility: String,
    /// `debug`. Default off.
    pub debug: DebugLevel,
    /// `timestamp` (`on`, `hires` = true). Default true.
    pub timestamp: bool,
    /// `fileline`. Default false.
    pub fileline: bool,
    /// `function_name`. Default false.
    pub function_name: bool,
    /// `blackbox` (the flight recorder). Default true.
    pub blackbox: bool,
    /// Per-subsystem overrides (`logger_subsys { subsys: QUORUM debug: on }`).
    pub logger_subsys: Vec<LoggerSubsys>,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            to_stderr: true,
            to_logfile: false,
            logfile: None,
            to_syslog: false,
            syslog_facility: "daemon".into(),
            debug: DebugLevel::Off,
            timestamp: true,
            fileline: false,
            function_name: false,
            blackbox: true,
            logger_subsys: Vec::new(),
        }
    }
}

/// Per-subsystem logging overrides; `None` = as the global setting.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoggerSubsys {
    /// Subsystem name (`subsys`), e.g. `QUORUM`, `TOTEM`.
    pub subsys: String,
    /// `debug`.
    pub debug: Option<DebugLevel>,
    /// `to_stderr`.
    pub to_stderr: Option<bool>,
    /// `to_logfile`.
    pub to_logfile: Option<bool>,
    /// `to_syslog`.
    pub to_syslog: Option<bool>,
    /// `logfile`.
    pub logfile: Option<PathBuf>,
}

/// Where the values of a [`ClusterConfig`] came from: the file and, per key, the
/// key's spelling in that file's syntax and its line. Not part of equality (two
/// configurations with the same values compare equal whatever their source).
#[derive(Clone, Debug, Default)]
pub struct SourceInfo {
    file: String,
    keys: BTreeMap<String, (String, Option<u32>)>,
}

impl PartialEq for SourceInfo {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl SourceInfo {
    /// A source with a file label and no keys.
    pub fn new(file: impl Into<String>) -> Self {
        SourceInfo {
            file: file.into(),
            keys: BTreeMap::new(),
        }
    }

    /// The file (or label) the configuration came from.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Records that model key `canonical` (e.g. `nodes.0.node_id`) is spelt
    /// `display` in the file and sits on `line` (or its parent's line if `None`).
    pub fn set(
        &mut self,
        canonical: impl Into<String>,
        display: impl Into<String>,
        line: Option<u32>,
    ) {
        self.keys.insert(canonical.into(), (display.into(), line));
    }

    /// Whether the file gives model key `canonical` itself (e.g. `compat.ipc`):
    /// an explicit setting, as opposed to the default.
    pub fn contains(&self, canonical: &str) -> bool {
        self.keys.contains_key(canonical)
    }

    /// The line of a model key, or of its nearest ancestor with a known line.
    pub fn line_of(&self, canonical: &str) -> Option<u32> {
        let mut k = canonical;
        loop {
            if let Some((_, Some(l))) = self.keys.get(k) {
                return Some(*l);
            }
            k = k.rsplit_once('.')?.0;
        }
    }

    /// The spelling of a model key in the file's syntax (the model key itself if
    /// unknown).
    pub fn display_key(&self, canonical: &str) -> String {
        self.keys
            .get(canonical)
            .map(|(d, _)| d.clone())
            .unwrap_or_else(|| canonical.to_string())
    }

    /// An error about model key `canonical`, located in the file.
    pub fn error(&self, canonical: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::new(
            self.file.clone(),
            self.line_of(canonical),
            Some(self.display_key(canonical)),
            message,
        )
    }

    /// A warning about model key `canonical`, located in the file.
    pub fn warning(&self, canonical: &str, message: impl Into<String>) -> Warning {
        Warning {
            file: self.file.clone(),
            line: self.line_of(canonical),
            key: self.display_key(canonical),
            message: message.into(),
        }
    }
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

impl ClusterConfig {
    /// Checks the rules that span fields: nodes present, ids non-zero and unique,
    /// every node with `ring0_addr` and the same links, one IP family per link,
    /// unique addresses, link numbers ≤ 7, token ≥ 10 ms, consensus > join, key
    /// length. The loaders call it; call it again after changing fields.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let src = &self.source;
        self.fencing.validate(src)?;
        if self.nodes.is_empty() {
            return Err(src.error("nodes", "no nodes configured"));
        }
        if self.nodes.len() > phalanx_totem::config::limits::MAX_NODES {
            return Err(src.error("nodes", "more than 384 nodes"));
        }
        let first_links: Vec<bool> = self.nodes[0].addrs.iter().map(Option::is_some).collect();
        let mut ids = BTreeMap::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let key = |f: &str| format!("nodes.{i}.{f}");
            if n.node_id == 0 {
                return Err(src.error(&key("node_id"), "node id 0 is reserved"));
            }
            if let Some(prev) = ids.insert(n.node_id, i) {
                return Err(src.error(
                    &key("node_id"),
                    format!("duplicate node id {} (also node #{prev})", n.node_id),
                ));
            }
            if n.addrs.len() > MAX_LINKS {
                return Err(src.error(&key("addrs.8"), "link number above 7"));
            }
            if n.addrs.first().is_none_or(Option::is_none) {
                return Err(src.error(&key("addrs.0"), "node has no ring0_addr"));
            }
            let links: Vec<bool> = n.addrs.iter().map(Option::is_some).collect();
            for l in 0..links.len().max(first_links.len()) {
                let here = links.get(l).copied().unwrap_or(false);
                let there = first_links.get(l).copied().unwrap_or(false);
                if here != there {
                    let msg = if here {
                        format!("link {l} is configured here but not on the first node")
                    } else {
                        format!(
                            "link {l} is missing (the first node has it; every node needs the same links)"
                        )
                    };
                    return Err(src.error(&key(&format!("addrs.{l}")), msg));
                }
            }
        }
        for l in 0..first_links.len() {
            let mut family = None;
            let mut seen = BTreeMap::new();
            for (i, n) in self.nodes.iter().enumerate() {
                let Some(Some(a)) = n.addrs.get(l) else {
                    continue;
                };
                let key = format!("nodes.{i}.addrs.{l}");
                if let Some(ip) = a.ip() {
                    match family {
                        None => family = Some(ip.is_ipv4()),
                        Some(v4) if v4 != ip.is_ipv4() => {
                            return Err(src.error(&key, format!("mixed IP families on link {l}")));
                        }
                        _ => {}
                    }
                }
                if let Some(prev) = seen.insert(a.to_string(), i) {
                    return Err(src.error(
                        &key,
                        format!("address {a} is also used by node #{prev} on link {l}"),
                    ));
                }
            }
        }
        for (k, link) in self.links.iter().enumerate() {
            if usize::from(link.link_number) >= MAX_LINKS {
                return Err(src.error(&format!("links.{k}.link_number"), "link number above 7"));
            }
            let (interval, timeout) = link.ping_times(self.effective_token());
            if interval.is_zero() || timeout <= interval {
                return Err(src.error(
                    &format!("links.{k}.ping_timeout"),
                    format!(
                        "link {}: knet_ping_timeout ({} ms) must exceed a non-zero \
                         knet_ping_interval ({} ms)",
                        link.link_number,
                        ms(timeout),
                        ms(interval)
                    ),
                ));
            }
        }
        let t = &self.totem;
        if let Some(tok) = t.token
            && tok < Duration::from_millis(10)
        {
            return Err(src.error(
                "totem.token",
                format!("must be at least 10 ms, got {} ms", ms(tok)),
            ));
        }
        if let (Some(c), Some(j)) = (t.consensus, t.join)
            && c <= j
        {
            return Err(src.error(
                "totem.consensus",
                format!("must exceed join ({} ms), got {} ms", ms(j), ms(c)),
            ));
        }
        if self.crypto.enabled && self.crypto.cipher == Cipher::None {
            return Err(src.error("crypto.cipher", "crypto is enabled but the cipher is none"));
        }
        if let Some(key) = &self.crypto.key
            && key.len() < MIN_KEY_LEN
        {
            return Err(src.error(
                "crypto.key",
                format!("key is {} bytes, at least {MIN_KEY_LEN} needed", key.len()),
            ));
        }
        Ok(())
    }

    /// Notes about values that load but may not do what the user expects.
    pub(crate) fn lint(&self) -> Vec<Warning> {
        let mut w = Vec::new();
        let src = &self.source;
        if self.totem.token.is_none() && self.totem.token_coefficient.is_some() {
            w.push(src.warning(
                "totem.token_coefficient",
                "only applies when token is set; Phalanx's default token (300 ms) is used as is",
            ));
        }
        if self.quorum.two_node && self.nodes.len() != 2 {
            w.push(src.warning(
                "quorum.two_node",
                format!("two_node with {} nodes has no effect", self.nodes.len()),
            ));
        }
        w
    }

    /// The node ids, in node-list order.
    pub fn node_ids(&self) -> Vec<u32> {
        self.nodes.iter().map(|n| n.node_id).collect()
    }

    /// The effective token timeout: `token + (N − 2) × token_coefficient` for N > 2
    /// nodes when `token` is given, else Phalanx's default (300 ms) as is.
    pub fn effective_token(&self) -> Duration {
        match self.totem.token {
            Some(tok) => {
                let n = self.nodes.len();
                let coef = self
                    .totem
                    .token_coefficient
                    .unwrap_or(DEFAULT_TOKEN_COEFFICIENT);
                if n > 2 {
                    tok.saturating_add(coef.saturating_mul((n - 2).min(u32::MAX as usize) as u32))
                } else {
                    tok
                }
            }
            None => phalanx_totem::Config::new(1, vec![1]).token_timeout,
        }
    }

    /// The totem configuration of node `local_node_id`: Phalanx's defaults,
    /// overridden by every value given in the file (Corosync's derivation rules
    /// for values left unset when `token` is given), then checked with
    /// [`phalanx_totem::Config::validate`].
    pub fn totem_config(&self, local_node_id: u32) -> Result<phalanx_totem::Config, ConfigError> {
        let src = &self.source;
        if !self.nodes.iter().any(|n| n.node_id == local_node_id) {
            return Err(src.error(
                "nodes",
                format!("local node id {local_node_id} is not in the node list"),
            ));
        }
        let t = &self.totem;
        let mut c = phalanx_totem::Config::new(local_node_id, self.node_ids());
        let token = self.effective_token();
        c.token_timeout = token;
        let k = t.token_retransmits_before_loss_const.unwrap_or(4);
        if t.token.is_some() || t.token_retransmits_before_loss_const.is_some() {
            c.token_retransmit = token.div_f64(f64::from(k) + 0.2);
        }
        if t.token.is_some() {
            c.hold = c.token_retransmit.mul_f64(0.8);
            c.consensus_timeout = token.mul_f64(1.2);
        }
        if let Some(v) = t.token_retransmit {
            c.token_retransmit = v;
        }
        if let Some(v) = t.hold {
            c.hold = v;
        }
        if let Some(v) = t.consensus {
            c.consensus_timeout = v;
        }
        match t.join {
            Some(v) => c.join_interval = v,
            None => {
                c.join_interval = c
                    .join_interval
                    .min(c.consensus_timeout / 2)
                    .max(Duration::from_millis(1))
            }
        }
        if let Some(v) = t.merge {
            c.merge_interval = v;
        }
        if let Some(v) = t.fail_recv_const {
            c.fail_to_receive_rotations = v;
        }
        if let Some(v) = t.seqno_unchanged_const {
            c.idle_rotations = v;
        }
        if let Some(v) = t.max_messages {
            c.max_messages = v;
        }
        if let Some(v) = t.send_hold {
            c.send_hold = v;
        }
        if let Some(v) = t.window_size {
            c.window_size = v;
        }
        // Absent, Corosync's default: frames sized for a 1 500-byte path. (A fixed
        // 1 400-byte frame, as before, made sealed datagrams of up to 1 502 bytes:
        // every full frame went out as two IP fragments.)
        {
            let mtu = t.netmtu.unwrap_or(DEFAULT_NETMTU);
            use phalanx_totem::wire::{ENCAP_OVERHEAD, MAX_FRAME_PAYLOAD, MCAST_OVERHEAD};
            let crypto = if self.crypto.enabled {
                CRYPTO_OVERHEAD
            } else {
                0
            };
            let overhead = IP_UDP_OVERHEAD + MCAST_OVERHEAD + ENCAP_OVERHEAD + crypto;
            let frame = (mtu as usize).saturating_sub(overhead);
            if frame < phalanx_totem::config::limits::MIN_FRAME {
                return Err(src.error(
                    "totem.netmtu",
                    format!(
                        "{mtu} leaves {frame} bytes per frame after {overhead} bytes of headers; at least {} needed",
                        phalanx_totem::config::limits::MIN_FRAME
                    ),
                ));
            }
            c.max_frame = frame.min(MAX_FRAME_PAYLOAD);
        }
        if let Some(v) = t.max_message_size {
            c.max_message_size = v;
        }
        if let Some(v) = t.send_queue_bytes {
            c.send_queue_bytes = v;
        }
        c.validate().map_err(|e| {
            let (field, reason) = match &e {
                phalanx_totem::ConfigError::Invalid { field, reason } => (*field, reason.clone()),
                #[allow(unreachable_patterns)]
                _ => ("", e.to_string()),
            };
            let key = match field {
                "token_timeout" => "totem.token",
                "token_retransmit" => "totem.token_retransmit",
                "hold" => "totem.hold",
                "send_hold" => "totem.send_hold_us",
                "join_interval" => "totem.join",
                "consensus_timeout" => "totem.consensus",
                "merge_interval" => "totem.merge",
                "idle_rotations" => "totem.seqno_unchanged_const",
                "window_size" => "totem.window_size",
                "max_frame" => "totem.netmtu",
                "max_message_size" => "totem.max_message_size",
                "send_queue_bytes" => "totem.send_queue_bytes",
                _ => "nodes",
            };
            src.error(key, format!("invalid totem configuration: {reason}"))
        })?;
        Ok(c)
    }

    /// Finds the local node: by explicit id (`hint`), else by the file's
    /// `local_node_id` / `local_node_pos`, else by the one node that has an address
    /// this host owns (checked by binding a UDP socket to it).
    pub fn local_node(&self, hint: Option<u32>) -> Result<&NodeEntry, ConfigError> {
        let src = &self.source;
        if let Some(id) = hint.or(self.local_node_id) {
            return self.nodes.iter().find(|n| n.node_id == id).ok_or_else(|| {
                src.error("nodes", format!("node id {id} is not in the node list"))
            });
        }
        if let Some(pos) = self.local_node_pos {
            return self.nodes.get(pos).ok_or_else(|| {
                src.error(
                    "local_node_pos",
                    format!(
                        "position {pos} is past the {} listed nodes",
                        self.nodes.len()
                    ),
                )
            });
        }
        let owns = |a: &NodeAddr| {
            a.resolve()
                .map(|v| {
                    v.iter()
                        .any(|sa| UdpSocket::bind(SocketAddr::new(sa.ip(), 0)).is_ok())
                })
                .unwrap_or(false)
        };
        let matches: Vec<&NodeEntry> = self
            .nodes
            .iter()
            .filter(|n| n.addrs.iter().flatten().any(owns))
            .collect();
        match matches.as_slice() {
            [one] => Ok(one),
            [] => Err(src.error(
                "nodes",
                "no node has an address of this host; give the node id",
            )),
            _ => Err(src.error(
                "nodes",
                format!(
                    "{} nodes have addresses of this host; give the node id",
                    matches.len()
                ),
            )),
        }
    }

    /// Reads the cluster key: the inline key if given, else the key file.
    /// `Ok(None)` when crypto is off.
    pub fn load_key(&self) -> Result<Option<Vec<u8>>, ConfigError> {
        let c = &self.crypto;
        if !c.enabled {
            return Ok(None);
        }
        if let Some(k) = &c.key {
            return Ok(Some(k.clone()));
        }
        let key = std::fs::read(&c.key_file).map_err(|e| {
            self.source.error(
                "crypto.key_file",
                format!(
                    "crypto is on but no key is given and the key file {} cannot be read: {e}",
                    c.key_file.display()
                ),
            )
        })?;
        if key.len() < MIN_KEY_LEN {
            return Err(self.source.error(
                "crypto.key_file",
                format!(
                    "key file {} holds {} bytes, at least {MIN_KEY_LEN} needed",
                    c.key_file.display(),
                    key.len()
                ),
            ));
        }
        Ok(Some(key))
    }

    /// Checks that the key is available when crypto is on (see [`Self::load_key`]).
    pub fn check_key_file(&self) -> Result<(), ConfigError> {
        self.load_key().map(|_| ())
    }
}
