//! The TOML file's shape, as serde reads it. Fields are optional (the model's
//! defaults apply) except a node's `id`; keys serde does not know are collected as
//! warnings by the loader.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

/// The whole file: top-level keys and one table per section.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct Root {
    pub(super) cluster_name: Option<String>,
    pub(super) local_node_id: Option<u32>,
    pub(super) local_node_pos: Option<usize>,
    pub(super) transport: Option<String>,
    pub(super) link_mode: Option<String>,
    pub(super) state_dir: Option<PathBuf>,
    pub(super) multicast: Option<Multicast>,
    pub(super) nodes: Vec<Node>,
    pub(super) links: Vec<Link>,
    pub(super) totem: Totem,
    pub(super) crypto: Crypto,
    pub(super) quorum: Quorum,
    pub(super) logging: Logging,
    pub(super) fencing: Option<Fencing>,
    pub(super) cib: Option<CibSection>,
    pub(super) dlm: DlmSection,
    pub(super) compat: CompatSection,
}

/// `[compat]`: `ipc` (serve Corosync's client protocol; default false), and
/// who may use it besides root and the daemon's user: `uids`, `gids` (names or
/// numeric ids, as strings).
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct CompatSection {
    pub(super) ipc: Option<bool>,
    /// `"shm"` (default) or `"socket"`.
    pub(super) ipc_transport: Option<String>,
    pub(super) uids: Vec<String>,
    pub(super) gids: Vec<String>,
}

/// `[cib]`: `enabled` (default true once the table is there), `schemas` (a
/// directory of Pacemaker's RelaxNG schemas to validate every change with),
/// `require_quorum` (writes only with quorum; default: when quorum runs).
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct CibSection {
    pub(super) enabled: Option<bool>,
    pub(super) schemas: Option<std::path::PathBuf>,
    pub(super) require_quorum: Option<bool>,
}

/// `[dlm]`: `lock_traffic` (`"direct"` or `"ring"`).
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct DlmSection {
    pub(super) lock_traffic: Option<String>,
}

/// `[multicast]`: the group of `transport = "udp"`.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct Multicast {
    pub(super) addr: Option<IpAddr>,
    pub(super) ttl: Option<u8>,
}

/// One `[[nodes]]` entry.
#[derive(Deserialize)]
pub(super) struct Node {
    pub(super) id: u32,
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) addrs: Vec<String>,
    #[serde(default)]
    pub(super) quorum_votes: Option<u32>,
}

/// One `[[links]]` entry (`number` defaults to its position).
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct Link {
    pub(super) number: Option<u8>,
    pub(super) port: Option<u16>,
    pub(super) priority: Option<u32>,
    pub(super) ping_interval_ms: Option<u64>,
    pub(super) ping_timeout_ms: Option<u64>,
    pub(super) pong_count: Option<u32>,
}

/// `[totem]`: timings (`*_ms`) and limits.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct Totem {
    pub(super) token_ms: Option<u64>,
    pub(super) token_coefficient_ms: Option<u64>,
    pub(super) token_retransmit_ms: Option<u64>,
    pub(super) token_retransmits_before_loss_const: Option<u32>,
    pub(super) hold_ms: Option<u64>,
    pub(super) join_ms: Option<u64>,
    pub(super) consensus_ms: Option<u64>,
    pub(super) merge_ms: Option<u64>,
    pub(super) fail_recv_const: Option<u32>,
    pub(super) seqno_unchanged_const: Option<u32>,
    pub(super) window_size: Option<u32>,
    pub(super) max_messages: Option<u32>,
    pub(super) send_hold_us: Option<u64>,
    pub(super) netmtu: Option<u32>,
    pub(super) max_message_size: Option<usize>,
    pub(super) send_queue_bytes: Option<usize>,
}

/// `[crypto]`.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct Crypto {
    pub(super) enabled: Option<bool>,
    pub(super) cipher: Option<String>,
    pub(super) key_file: Option<PathBuf>,
    pub(super) key: Option<String>,
}

/// `[quorum]`.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct Quorum {
    pub(super) provider: Option<String>,
    pub(super) expected_votes: Option<u32>,
    pub(super) two_node: Option<bool>,
    pub(super) wait_for_all: Option<bool>,
    pub(super) last_man_standing: Option<bool>,
    pub(super) last_man_standing_window_ms: Option<u64>,
    pub(super) auto_tie_breaker: Option<bool>,
    pub(super) auto_tie_breaker_node: Option<TieBreaker>,
    pub(super) allow_downscale: Option<bool>,
    pub(super) expected_votes_tracking: Option<bool>,
    pub(super) device: Option<Device>,
}

/// `auto_tie_breaker_node`: `"lowest"`, `"highest"` or a list of node ids.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum TieBreaker {
    Word(String),
    Nodes(Vec<u32>),
}

/// `[quorum.device]`.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct Device {
    pub(super) model: String,
    pub(super) votes: Option<u32>,
    pub(super) timeout_ms: Option<u64>,
    pub(super) sync_timeout_ms: Option<u64>,
    pub(super) net: Option<DeviceNet>,
    pub(super) heuristics: Option<DeviceHeuristics>,
}

/// `[quorum.device.heuristics]`: `mode`, `timeout_ms`, and `exec` as a table of
/// name = command (run in name order).
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct DeviceHeuristics {
    pub(super) mode: Option<String>,
    pub(super) timeout_ms: Option<u64>,
    pub(super) exec: BTreeMap<String, String>,
}

/// `[quorum.device.net]`.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct DeviceNet {
    pub(super) host: String,
    pub(super) port: Option<u16>,
    pub(super) algorithm: Option<String>,
    pub(super) tie_breaker: Option<String>,
    pub(super) tls: Option<String>,
}

/// `[logging]`.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct Logging {
    pub(super) to_stderr: Option<bool>,
    pub(super) to_logfile: Option<bool>,
    pub(super) logfile: Option<PathBuf>,
    pub(super) to_syslog: Option<bool>,
    pub(super) syslog_facility: Option<String>,
    pub(super) debug: Option<String>,
    pub(super) timestamp: Option<bool>,
    pub(super) fileline: Option<bool>,
    pub(super) function_name: Option<bool>,
    pub(super) blackbox: Option<bool>,
    pub(super) logger_subsys: Vec<Subsys>,
}

/// One `[[logging.logger_subsys]]` entry.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct Subsys {
    pub(super) subsys: String,
    pub(super) debug: Option<String>,
    pub(super) to_stderr: Option<bool>,
    pub(super) to_logfile: Option<bool>,
    pub(super) to_syslog: Option<bool>,
    pub(super) logfile: Option<PathBuf>,
}

/// `[fencing]`, with `[[fencing.devices]]` and `[[fencing.levels]]`.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct Fencing {
    pub(super) enabled: Option<bool>,
    pub(super) action: Option<String>,
    pub(super) timeout_ms: Option<u64>,
    pub(super) max_attempts: Option<u32>,
    pub(super) priority_fencing_delay_ms: Option<u64>,
    pub(super) watchdog_timeout_ms: Option<u64>,
    pub(super) watchdog: Option<String>,
    pub(super) fencing_watchdog_timeout_ms: Option<u64>,
    pub(super) startup_fencing: Option<bool>,
    pub(super) dc_deadtime_ms: Option<u64>,
    pub(super) node_pending_timeout_ms: Option<u64>,
    pub(super) no_quorum_policy: Option<String>,
    pub(super) agent_dir: Option<PathBuf>,
    pub(super) devices: Vec<FenceDevice>,
    pub(super) levels: Vec<FenceLevel>,
}

/// One `[[fencing.devices]]` entry; `params` are the device's parameters
/// (strings, numbers or booleans, written to the agent as text).
#[derive(Deserialize)]
pub(super) struct FenceDevice {
    pub(super) id: String,
    pub(super) agent: String,
    #[serde(default)]
    pub(super) params: BTreeMap<String, ::toml::Value>,
}

/// One `[[fencing.levels]]` entry.
#[derive(Deserialize)]
pub(super) struct FenceLevel {
    pub(super) index: u8,
    #[serde(default)]
    pub(super) target: Option<String>,
    #[serde(default)]
    pub(super) target_pattern: Option<String>,
    #[serde(default)]
    pub(super) target_attribute: Option<String>,
    #[serde(default)]
    pub(super) target_value: Option<String>,
    pub(super) devices: Vec<String>,
}
