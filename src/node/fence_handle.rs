//! The `Fence` handle: fence a node through the cluster, confirm a node is down,
//! clean the history, and read the fencing state the driver publishes.
//!
//! Requests from a handle are "externally requested fencing" (an administrator,
//! the DLM): like Pacemaker's `stonith_admin`, they are not gated by quorum.

use super::{Command, Reply, Shared};
use crate::stack::{FenceCommand, Request};
use crossbeam_channel::{Sender, bounded};
use parking_lot::Mutex;
use phalanx_fence::Action;
use phalanx_fence::core::{Delegate, FenceRequest, HistoryEntry, NodeFenceState};
use phalanx_totem::NodeId;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use thiserror::Error;

/// The client name of a handle's requests, as history records it.
pub const HANDLE_CLIENT: &str = "phalanx-fence-handle";

/// Why a fencing call did not succeed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FenceCallError {
    /// The node runs without fencing.
    #[error("fencing is not configured on this node")]
    NotConfigured,
    /// The node has stopped.
    #[error("the node is not running")]
    NotRunning,
    /// The fencer refused the request (bad target, too many operations: try again).
    #[error("refused: {0}")]
    Refused(String),
    /// The operation ran and did not fence the target.
    #[error("fencing failed: {0}")]
    Failed(String),
}

/// Who fenced the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FencedBy {
    /// This node's fencer ran the devices (node id).
    Node(NodeId),
    /// An administrator confirmed it.
    Manual,
}

/// A node as fencing sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FenceNodeState {
    /// Node id.
    pub id: NodeId,
    /// Its name (fencing targets are names).
    pub name: String,
    /// `member`, `down`, `unclean` or `fenced`.
    pub state: &'static str,
    /// The devices that may fence it (`stonith_admin --query`), with what it
    /// takes: `yes`, `if listed` (a `dynamic-list` device whose list is not
    /// fresh), `if status` (a `status` check).
    pub devices: Vec<(String, &'static str)>,
    /// Unfenced in its current membership (always true without a fabric device).
    pub unfenced: bool,
}

/// What the driver publishes about fencing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FenceStatus {
    /// Registered devices: (id, agent).
    pub devices: Vec<(String, String)>,
    /// The history, as this node knows it.
    pub history: Vec<HistoryEntry>,
    /// Every configured node's fencing state.
    pub nodes: Vec<FenceNodeState>,
}

/// Published fencing state and the handles' call counter.
#[derive(Debug, Default)]
pub(crate) struct FenceShared {
    pub(crate) status: Mutex<Option<FenceStatus>>,
    next_call: AtomicU64,
}

impl FenceShared {
    fn call(&self) -> u64 {
        self.next_call.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// The answer the driver routes back for a handle's request.
pub(crate) type FenceAnswer = Sender<Result<Option<Delegate>, FenceCallError>>;

/// Fencing through this node (`Clone + Send + Sync`).
#[derive(Clone)]
pub struct Fence {
    pub(super) tx: Sender<Command>,
    pub(super) waker: Arc<mio::Waker>,
    pub(super) shared: Arc<Shared>,
}

impl std::fmt::Debug for Fence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fence").finish_non_exhaustive()
    }
}

impl Fence {
    /// Fences `target` (a node name) with `action` (off, on = unfence, reboot) and
    /// waits for the result. `timeout`: the operation's (default `fencing.timeout`).
    pub fn fence(
        &self,
        target: &str,
        action: Action,
        timeout: Option<Duration>,
    ) -> Result<FencedBy, FenceCallError> {
        let call = self.shared.fence.call();
        let mut req = FenceRequest::new(target, action, HANDLE_CLIENT, call);
        req.timeout = timeout;
        req.allow_self = true;
        self.round_trip(FenceCommand::Fence(req), call)
    }

    /// Records that an administrator confirmed `target` is down (manual
    /// acknowledgement: no agent runs) and waits until every node knows.
    pub fn confirm(&self, target: &str) -> Result<FencedBy, FenceCallError> {
        let call = self.shared.fence.call();
        let cmd = FenceCommand::Confirm {
            target: target.to_string(),
            client: HANDLE_CLIENT.to_string(),
            call,
        };
        self.round_trip(cmd, call)
    }

    /// Drops completed history entries (all, or `target`'s).
    pub fn history_cleanup(&self, target: Option<&str>) -> Result<(), FenceCallError> {
        let (tx, rx) = bounded(1);
        let cmd = FenceCommand::HistoryCleanup {
            target: target.map(str::to_string),
        };
        self.send(Command::Stack(
            Request::Fence(cmd),
            Reply::FenceAccepted(tx),
        ))?;
        rx.recv().map_err(|_| FenceCallError::NotRunning)?
    }

    /// The fencing state as the driver last published it (`None` without fencing).
    pub fn status(&self) -> Option<FenceStatus> {
        self.shared.fence.status.lock().clone()
    }

    fn round_trip(&self, cmd: FenceCommand, call: u64) -> Result<FencedBy, FenceCallError> {
        let (tx, rx) = bounded(1);
        self.send(Command::Stack(
            Request::Fence(cmd),
            Reply::FenceDone { call, answer: tx },
        ))?;
        match rx.recv().map_err(|_| FenceCallError::NotRunning)?? {
            Some(Delegate::Node(n)) => Ok(FencedBy::Node(n)),
            Some(Delegate::Manual) | None => Ok(FencedBy::Manual),
        }
    }

    fn send(&self, c: Command) -> Result<(), FenceCallError> {
        self.tx.send(c).map_err(|_| FenceCallError::NotRunning)?;
        super::wake_if_parked(&self.shared, &self.waker);
        Ok(())
    }
}

/// A decision state as the status shows it.
pub(crate) fn state_name(s: NodeFenceState) -> &'static str {
    match s {
        NodeFenceState::Member => "member",
        NodeFenceState::Down => "down",
        NodeFenceState::Unclean { .. } => "unclean",
        NodeFenceState::Fenced { .. } => "fenced",
    }
}
