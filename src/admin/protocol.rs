//! What the tools ask a running node and what it answers: one JSON object per
//! line each way, so a human can also talk to the socket with `socat`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Longest request line a node reads; longer ones get [`Response::Error`].
pub const MAX_REQUEST: usize = 4096;

/// A question or command for the node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Request {
    /// Node, ring and members.
    Status,
    /// Every process group cluster-wide with its members.
    CpgGroups,
    /// Quorum state and the node list with votes.
    Quorum,
    /// Set expected votes cluster-wide (`corosync-quorumtool -e`).
    SetExpectedVotes {
        /// The new expected votes.
        votes: u32,
    },
    /// Set one node's votes cluster-wide (`corosync-quorumtool -v`).
    SetVotes {
        /// The node.
        node: u32,
        /// Its new votes.
        votes: u32,
    },
    /// Stop waiting for all nodes (`corosync-cmapctl -s quorum.cancel_wait_for_all`).
    CancelWaitForAll,
    /// Every counter of the node (`corosync-cmapctl -m stats`).
    Stats,
    /// A CIB operation: a `cib_command` element as `phalanx_cib::ops::wire` writes
    /// it (what `phalanx-cibadmin` sends); answered once applied cluster-wide.
    Cib {
        /// The request's XML.
        command: String,
    },
    /// Fencing devices, history and node states (`stonith_admin --list-registered`,
    /// `--history`).
    FenceStatus,
    /// Fence a node through the cluster and wait for the result
    /// (`stonith_admin --fence/--reboot/--unfence`).
    Fence {
        /// Target node name.
        target: String,
        /// `off`, `reboot` or `on` (unfence).
        action: String,
        /// The operation's timeout in milliseconds (default: `fencing.timeout`).
        timeout_ms: Option<u64>,
    },
    /// Confirm a node is down without running an agent (`stonith_admin --confirm`).
    FenceConfirm {
        /// Target node name.
        target: String,
    },
    /// Drop completed history entries (`stonith_admin --history --cleanup`).
    FenceHistoryCleanup {
        /// Only this target's.
        target: Option<String>,
    },
    /// Register a fencing device cluster-wide at run time (`stonith_admin
    /// --register`): stored in the CIB as a `primitive class="stonith"`, so every
    /// node's fencer registers it; answered once the CIB change is applied
    /// cluster-wide.
    FenceRegister {
        /// The device id.
        device: String,
        /// Its agent (an executable in the nodes' agent directory).
        agent: String,
        /// Its parameters: agent options and `pcmk_*` attributes.
        params: BTreeMap<String, String>,
    },
    /// Remove a device registered at run time or defined in the CIB
    /// (`stonith_admin --deregister`).
    FenceDeregister {
        /// The device id.
        device: String,
    },
    /// Add a fencing level for a node cluster-wide (`stonith_admin
    /// --register-level`).
    FenceRegisterLevel {
        /// Target node name.
        target: String,
        /// Level index, 1..=9.
        index: u8,
        /// Its devices, tried in order.
        devices: Vec<String>,
    },
    /// Remove a node's fencing level (`stonith_admin --deregister-level`).
    FenceDeregisterLevel {
        /// Target node name.
        target: String,
        /// Level index, 1..=9.
        index: u8,
    },
    /// A DLM request (`phalanx-dlm-tool`).
    Dlm(DlmAdmin),
}

/// What `phalanx-dlm-tool` asks. Locks taken through the socket belong to the
/// node's process and stay until unlocked through the socket (or the node stops).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[non_exhaustive]
pub enum DlmAdmin {
    /// Lockspaces this node is in, with members and recovery state.
    Ls,
    /// This node's locks and the master copies it holds.
    Lockdump,
    /// Join a lockspace.
    Join {
        /// Its name.
        lockspace: String,
    },
    /// Leave a lockspace.
    Leave {
        /// Its name.
        lockspace: String,
    },
    /// Lock a resource and wait for the grant; answers the lock id.
    Lock {
        /// Lockspace (joined through the socket first, or joined here).
        lockspace: String,
        /// Resource.
        resource: String,
        /// NL, CR, CW, PR, PW or EX.
        mode: String,
        /// Fail instead of waiting.
        #[serde(default)]
        noqueue: bool,
    },
    /// Unlock a lock taken through the socket.
    Unlock {
        /// Lockspace.
        lockspace: String,
        /// The id `lock` answered.
        lock: u32,
    },
}

/// The answer to a [`Request::Dlm`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DlmAnswer {
    /// The tool's exit status (0 success, 1 failure, 11 `EAGAIN`).
    pub exit_code: u8,
    /// Why it failed.
    pub error: Option<String>,
    /// What to print.
    pub output: String,
}

/// The outcome of a CIB operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CibAnswer {
    /// cibadmin's exit status for this outcome (0 on success).
    pub exit_code: u8,
    /// Why it failed.
    pub error: Option<String>,
    /// A query's result (XML).
    pub output: Option<String>,
    /// The CIB's `(admin_epoch, epoch, num_updates)` after it.
    pub version: Option<(i64, i64, i64)>,
}

/// A fence device as the tools show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FenceDeviceInfo {
    /// Device id.
    pub id: String,
    /// Its agent.
    pub agent: String,
}

/// One fencing operation of the history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FenceHistoryItem {
    /// Target node name.
    pub target: String,
    /// Action.
    pub action: String,
    /// `pending`, `done` or `failed`.
    pub state: String,
    /// Originating node.
    pub origin: u32,
    /// Who executed it: a node id, `manual`, or empty when unknown.
    pub delegate: String,
    /// The requesting client.
    pub client: String,
    /// Why it failed.
    pub reason: Option<String>,
}

/// A node's fencing state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FenceNodeInfo {
    /// Node id.
    pub id: u32,
    /// Node name.
    pub name: String,
    /// `member`, `down`, `unclean` or `fenced`.
    pub state: String,
    /// Devices that may fence it, each with what it takes (`yes`, `if listed`,
    /// `if status`).
    #[serde(default)]
    pub devices: Vec<(String, String)>,
    /// Unfenced in its current membership (true without a fabric device).
    #[serde(default)]
    pub unfenced: bool,
}

/// The fencing state (answer to [`Request::FenceStatus`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FenceReport {
    /// Registered devices.
    pub devices: Vec<FenceDeviceInfo>,
    /// The history as this node knows it.
    pub history: Vec<FenceHistoryItem>,
    /// Every node.
    pub nodes: Vec<FenceNodeInfo>,
}

/// A counter's or state's value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StatValue {
    /// A counter or a measurement in the unit its key names.
    Count(u64),
    /// A state (`up`, `down`).
    Text(String),
}

/// One `stats.*` key and its value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stat {
    /// Dotted key, e.g. `stats.rx_drop.auth_failed`.
    pub key: String,
    /// Its value.
    pub value: StatValue,
}

/// A configured node as the tools show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Node id.
    pub id: u32,
    /// Name from the node list (empty when none was given).
    pub name: String,
    /// Member of the current ring.
    pub member: bool,
}

/// The node's view of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// This node's id.
    pub node_id: u32,
    /// The cluster name.
    pub cluster_name: String,
    /// Ring representative and sequence.
    pub ring: (u32, u64),
    /// Operational on that ring.
    pub operational: bool,
    /// Every configured node.
    pub nodes: Vec<NodeInfo>,
}

/// One member of a process group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMember {
    /// Node it runs on.
    pub node: u32,
    /// Its id on that node (the role of a pid).
    pub local: u32,
    /// The node's name, if known.
    pub node_name: String,
}

/// A process group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// The group name's bytes.
    pub name: Vec<u8>,
    /// Members in join order as the node knows them.
    pub members: Vec<GroupMember>,
}

/// One node in the quorum node list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumNode {
    /// Node id.
    pub id: u32,
    /// Name from the node list.
    pub name: String,
    /// Its votes.
    pub votes: u32,
    /// Member of this partition.
    pub member: bool,
}

/// Quorum state (`corosync-quorumtool -s`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumStatus {
    /// This partition has quorum.
    pub quorate: bool,
    /// Expected votes in force.
    pub expected_votes: u32,
    /// Highest expected votes seen.
    pub highest_expected: u32,
    /// Votes present in this partition.
    pub total_votes: u32,
    /// Votes needed.
    pub quorum: u32,
    /// Option flags in force (`2Node`, `WaitForAll`, `LastManStanding`, ...).
    pub flags: Vec<String>,
    /// Quorum device votes, if a device is configured.
    pub device_votes: Option<u32>,
    /// Every node.
    pub nodes: Vec<QuorumNode>,
}

/// The node's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "response", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Response {
    /// Answer to [`Request::Status`].
    Status(Status),
    /// Answer to [`Request::CpgGroups`].
    Groups {
        /// Every group.
        groups: Vec<Group>,
    },
    /// Answer to [`Request::Quorum`].
    Quorum(QuorumStatus),
    /// Answer to [`Request::Cib`].
    Cib(CibAnswer),
    /// Answer to [`Request::FenceStatus`].
    Fence(FenceReport),
    /// Answer to [`Request::Fence`] and [`Request::FenceConfirm`]: the target is
    /// fenced.
    Fenced {
        /// Who fenced it: a node id, or `manual`.
        by: String,
    },
    /// Answer to [`Request::Stats`].
    Stats {
        /// Every key, in a fixed order.
        stats: Vec<Stat>,
    },
    /// Answer to [`Request::Dlm`].
    Dlm(DlmAnswer),
    /// A command was accepted.
    Done,
    /// The request failed; nothing changed.
    Error {
        /// Why.
        message: String,
    },
}

impl Response {
    /// An error answer.
    pub fn error(message: impl Into<String>) -> Self {
        Response::Error {
            message: message.into(),
        }
    }
}
