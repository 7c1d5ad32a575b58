//! Quorum on a running node: state, change notifications and runtime changes
//! (the role of libquorum / libvotequorum).
//!
//! ```no_run
//! # fn node() -> phalanx::node::Node { unimplemented!() }
//! let node = node();
//! let quorum = node.quorum();
//! let changes = quorum.notifications();
//! if !quorum.is_quorate() {
//!     // Wait until this partition may act.
//!     while let Ok(change) = changes.recv() {
//!         if change.quorate { break; }
//!     }
//! }
//! ```

use super::{Command, Reply, Shared};
use crate::stack::{QuorumRequest, Request};
use crossbeam_channel::{Receiver, Sender, bounded};
use phalanx_quorum::{ClusterInfo, NodeStatus};
use phalanx_totem::{NodeId, RingId};
use std::sync::Arc;

/// A quorum change, as delivered to [`Quorum::notifications`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumChange {
    /// Whether this partition is quorate now.
    pub quorate: bool,
    /// The ring the decision is for.
    pub ring: RingId,
    /// Every configured node with its votes and state.
    pub nodes: Vec<NodeStatus>,
}

/// Why a quorum request failed; nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QuorumCallError {
    /// Quorum is not configured on this node.
    #[error("quorum is not configured on this node")]
    NotConfigured,
    /// The quorum core refused (see the message).
    #[error("{0}")]
    Refused(String),
    /// The node has stopped.
    #[error("the node is not running")]
    NotRunning,
}

/// Quorum state the driver publishes.
#[derive(Debug, Default)]
pub(crate) struct QuorumShared {
    pub(crate) info: parking_lot::Mutex<Option<(ClusterInfo, Vec<NodeStatus>)>>,
    pub(crate) subscribers: parking_lot::Mutex<Vec<Sender<QuorumChange>>>,
    /// Notifications not delivered because a subscriber's queue was full.
    pub(crate) dropped: std::sync::atomic::AtomicU64,
}

/// Most notifications a subscriber may leave unread; beyond that the newest
/// are counted and dropped (the current state is always in [`Quorum::info`]).
const SUBSCRIBER_QUEUE: usize = 1024;

/// The node's quorum service. `Clone + Send + Sync`.
#[derive(Clone)]
pub struct Quorum {
    pub(super) tx: Sender<Command>,
    pub(super) waker: Arc<mio::Waker>,
    pub(super) shared: Arc<Shared>,
}

impl std::fmt::Debug for Quorum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quorum").finish_non_exhaustive()
    }
}

impl Quorum {
    /// Whether this partition is quorate (false when quorum is not configured
    /// or not yet decided).
    pub fn is_quorate(&self) -> bool {
        self.shared
            .quorum
            .info
            .lock()
            .as_ref()
            .is_some_and(|(i, _)| i.quorate)
    }

    /// Cluster information and the node list with votes, as last decided
    /// (`None` when quorum is not configured).
    pub fn info(&self) -> Option<(ClusterInfo, Vec<NodeStatus>)> {
        self.shared.quorum.info.lock().clone()
    }

    /// A stream of quorum changes from now on (`quorum_trackstart`).
    pub fn notifications(&self) -> Receiver<QuorumChange> {
        let (tx, rx) = bounded(SUBSCRIBER_QUEUE);
        self.shared.quorum.subscribers.lock().push(tx);
        rx
    }

    /// Calls `callback` for every quorum change from now on, in order, on a
    /// thread of its own (`quorum_trackstart` with a callback), until the node
    /// stops.
    pub fn on_change(
        &self,
        mut callback: impl FnMut(QuorumChange) + Send + 'static,
    ) -> std::io::Result<()> {
        let rx = self.notifications();
        std::thread::Builder::new()
            .name("phalanx-quorum-cb".into())
            .spawn(move || {
                for change in rx.iter() {
                    callback(change);
                }
            })?;
        Ok(())
    }

    /// Sets expected votes cluster-wide (`corosync-quorumtool -e`).
    pub fn set_expected_votes(&self, votes: u32) -> Result<(), QuorumCallError> {
        self.round_trip(QuorumRequest::SetExpectedVotes(votes))
    }

    /// Sets a node's votes cluster-wide (`corosync-quorumtool -v`).
    pub fn set_votes(&self, node: NodeId, votes: u32) -> Result<(), QuorumCallError> {
        self.round_trip(QuorumRequest::SetVotes { node, votes })
    }

    /// Stops waiting for all nodes (wait_for_all).
    pub fn cancel_wait_for_all(&self) -> Result<(), QuorumCallError> {
        self.round_trip(QuorumRequest::CancelWaitForAll)
    }

    fn round_trip(&self, request: QuorumRequest) -> Result<(), QuorumCallError> {
        super::request(
            &self.tx,
            &self.shared,
            &self.waker,
            |reply| Command::Stack(Request::Quorum(request), Reply::Quorum(reply)),
            || QuorumCallError::NotRunning,
        )
    }
}

impl QuorumShared {
    /// Publishes a change to every live subscriber (never blocks the driver).
    pub(crate) fn notify(&self, change: QuorumChange) {
        let mut subs = self.subscribers.lock();
        subs.retain(|s| match s.try_send(change.clone()) {
            Ok(()) => true,
            Err(crossbeam_channel::TrySendError::Full(_)) => {
                self.dropped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                true
            }
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => false,
        });
    }
}
