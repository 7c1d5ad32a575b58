//! The fencer's inputs, outputs, peer messages and errors.

use super::device::{Device, DeviceError};
use super::history::{Delegate, HistoryEntry, OpId};
use super::registry::RegistryError;
use super::timeout::RequestedDelay;
use super::topology::{LevelTarget, TopologyError};
use crate::Action;
use phalanx_quorum::NodeId;
use phalanx_totem::{RingId, Time};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use thiserror::Error;

/// Longest target or client name accepted in a request.
pub const MAX_NAME_LEN: usize = 256;

/// A request to fence a target (from a local client, or from the "who fences"
/// decision).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FenceRequest {
    /// Target node name.
    pub target: String,
    /// `Off`, `On` (unfence) or `Reboot`.
    pub action: Action,
    /// The requesting client's name (recorded in history; two requests from the same
    /// client are never merged).
    pub client: String,
    /// The client's own id for this call, echoed in [`FenceEvent::RequestDone`].
    pub call: u64,
    /// The request's timeout (`fencing-timeout` when `None`).
    pub timeout: Option<Duration>,
    /// A delay before the first device (`--delay`; negative disables device delays).
    pub delay: RequestedDelay,
    /// Allow fencing the local node.
    pub allow_self: bool,
    /// The requester's view of the ring in which the target last joined (see
    /// [`FenceDecision::joined_ring`](super::FenceDecision::joined_ring)); a
    /// success fences that incarnation only. `None`: the requester never saw the
    /// target as a member, and the result marks no loss fenced.
    pub target_joined: Option<RingId>,
}

impl FenceRequest {
    /// A request with default timeout, no delay, self-fencing refused.
    pub fn new(target: &str, action: Action, client: &str, call: u64) -> Self {
        FenceRequest {
            target: target.to_string(),
            action,
            client: client.to_string(),
            call,
            timeout: None,
            delay: None,
            allow_self: false,
            target_joined: None,
        }
    }
}

/// Identifies one agent call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CallId(pub u64);

/// How an agent call ended (reported by whoever ran it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallOutcome {
    /// Exit 0; `output` is the agent's stdout (the target list for `list`).
    Success {
        /// Standard output.
        output: String,
    },
    /// A non-zero exit or a failure to run. For `status`, exit code 2 means "the
    /// port is off", which still proves the device can reach the target.
    Failed {
        /// The exit code when the agent ran.
        exit_code: Option<i32>,
        /// Why.
        reason: String,
    },
    /// The agent did not finish within the call's timeout (and was killed).
    TimedOut,
}

/// Every input of [`Fencer::handle`](super::Fencer::handle).
#[derive(Debug, Clone)]
pub enum FencerInput {
    /// Fence a target.
    Request(FenceRequest),
    /// Manual acknowledgement: mark `target` fenced without an agent.
    Confirm {
        /// Target node name.
        target: String,
        /// Client name.
        client: String,
        /// Client's call id.
        call: u64,
        /// The confirming node's view of the target's incarnation
        /// ([`FenceRequest::target_joined`]).
        target_joined: Option<RingId>,
    },
    /// An agent call finished.
    AgentDone {
        /// Which call.
        call: CallId,
        /// How.
        outcome: CallOutcome,
    },
    /// A fencer message from a peer (delivered in total order over CPG; our own
    /// broadcasts come back too and are recognised).
    Peer {
        /// Sender.
        from: NodeId,
        /// The message.
        msg: PeerMessage,
    },
    /// The current membership (node ids, including the local node).
    Members(BTreeSet<NodeId>),
    /// A deadline from [`FencerOutput::Timeout`] has passed.
    Timeout,
    /// Add or replace a device.
    RegisterDevice(Device),
    /// Remove a device.
    RemoveDevice(String),
    /// Add or replace a fencing level.
    RegisterLevel {
        /// Target selector.
        target: LevelTarget,
        /// Index 1..=9.
        index: u8,
        /// Devices, all of which must succeed.
        devices: Vec<String>,
    },
    /// Remove one level (`Some(index)`) or all levels of a target.
    RemoveLevel {
        /// Target selector.
        target: LevelTarget,
        /// Index or all.
        index: Option<u8>,
    },
    /// A node's attributes (for `target-attribute` levels).
    NodeAttributes {
        /// Node name.
        node: String,
        /// Its attributes.
        attributes: BTreeMap<String, String>,
    },
    /// Drop completed history entries (all, or one target's); pending ones stay.
    HistoryCleanup {
        /// Limit to this target.
        target: Option<String>,
    },
}

/// "Run action A of device D against target T" — for the agent runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentCall {
    /// Report the result with this id.
    pub call: CallId,
    /// The fencing operation it serves (`None` for nothing: never emitted).
    pub op: Option<OpId>,
    /// Device id.
    pub device: String,
    /// Agent executable name.
    pub agent: String,
    /// The fencer's action.
    pub action: Action,
    /// The `action=` text for the agent (`pcmk_<action>_action` applied).
    pub agent_action: String,
    /// Target node (`nodename=`), if the action has one.
    pub target: Option<String>,
    /// `(host argument, port)`, e.g. `("port", "2,3")`, when the device takes one.
    pub port: Option<(String, String)>,
    /// The agent's own parameters.
    pub params: BTreeMap<String, String>,
    /// Kill the agent after this long and report [`CallOutcome::TimedOut`].
    pub timeout: Duration,
    /// 1 for the first attempt, 2 for the first retry, ...
    pub attempt: u32,
}

/// Messages between fencers (the Stack sends them over CPG).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerMessage {
    /// An operation started (lets peers merge duplicates and show it pending).
    Started {
        /// The operation.
        id: OpId,
        /// Target node name.
        target: String,
        /// Requested action.
        action: Action,
        /// Client name.
        client: String,
        /// Its total timeout, seconds.
        total_timeout_s: u64,
        /// The request's view of the target's incarnation
        /// ([`FenceRequest::target_joined`]).
        target_joined: Option<RingId>,
    },
    /// An operation's final result.
    Result(HistoryEntry),
    /// A node's whole history (sent when membership grows).
    History(Vec<HistoryEntry>),
    /// "Target, run this device action yourself" — the `on` of an `on_target`
    /// device (fence_scsi, fence_mpath: a node re-registers its own key), which
    /// must run on the target node. The node whose name is `target` runs it with
    /// its own registration of `device` and answers with
    /// [`PeerMessage::Executed`].
    Execute {
        /// The operation it serves (its origin is the node waiting).
        id: OpId,
        /// The origin's call id, echoed in the answer.
        call: CallId,
        /// Device id.
        device: String,
        /// The target, which is the node that runs it.
        target: String,
        /// The action (only `on` is run for peers).
        action: Action,
        /// Kill the agent after this long, milliseconds.
        timeout_ms: u64,
    },
    /// The sender's fencing service is up in the current configuration. The
    /// Stack sends one after every configuration change, before anything else
    /// of the change, so a peer's [`FenceDecision`](super::FenceDecision)
    /// knows every member's state before a service that needs it (a DLM
    /// lockspace join) goes ahead. The fencer itself ignores it.
    Present {
        /// The sender's previous process on this host ended, on this boot,
        /// without a clean stop while it could hold cluster resources (DLM
        /// locks): until this node is fenced nobody may take for granted what
        /// that process held ([`FenceDecision::announced_unclean`](super::FenceDecision::announced_unclean)).
        unclean: bool,
        /// The first ring the sender's process was a member of (`None` from
        /// a build that predates it). A ring holds one process per node, so
        /// this names the process as every peer can name it, whenever each
        /// saw it join ([`FenceDecision::announced_first_ring`](super::FenceDecision::announced_first_ring)).
        first_ring: Option<RingId>,
    },
    /// How an [`PeerMessage::Execute`] ended, from the node that ran it.
    Executed {
        /// The operation.
        id: OpId,
        /// The origin's call id.
        call: CallId,
        /// How the agent ended.
        outcome: CallOutcome,
    },
}

/// Why an operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FenceFailure {
    /// Human-readable reason.
    pub reason: String,
    /// True when the total timeout expired.
    pub timed_out: bool,
}

/// Events for the fencer's handles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FenceEvent {
    /// A request of a local client finished.
    RequestDone {
        /// The operation.
        op: OpId,
        /// Client name.
        client: String,
        /// Client's call id.
        call: u64,
        /// Who fenced the target, or why not.
        result: Result<Delegate, FenceFailure>,
    },
    /// Some operation (any origin) fenced a target.
    Fenced(HistoryEntry),
    /// Some operation (any origin) failed to fence a target.
    FenceFailed(HistoryEntry),
}

/// What the driver must act on, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FencerOutput {
    /// Run an agent; report with [`FencerInput::AgentDone`].
    AgentCall(AgentCall),
    /// Send to every fencer (CPG, agreed order).
    Broadcast(PeerMessage),
    /// Hand to the handles.
    Event(FenceEvent),
    /// Nothing more now; feed [`FencerInput::Timeout`] at this time (none: idle).
    Timeout(Option<Time>),
}

/// A refused input. Nothing changed unless the variant says otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FencerError {
    /// Too many operations in flight; retry later.
    #[error("too many fencing operations in flight; try again")]
    TryAgain,
    /// The request is malformed (empty or over-long name, an action that is not
    /// off/on/reboot).
    #[error("bad fencing request: {0}")]
    BadRequest(String),
    /// The target is this node and the request did not allow self-fencing.
    #[error("refusing to fence the local node without allow_self")]
    SelfFencing,
    /// A device definition was refused.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// A topology change was refused.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// The registry is full.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}
