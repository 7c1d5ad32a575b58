//! Quorum on a running node: state, change notifications and runtime changes
//! (the role of libquorum / libvotequorum). See [`Quorum`].

use super::callback::CallbackGuard;
use super::{Command, Reply, Shared};
use crate::stack::{QuorumRequest, Request};
use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use phalanx_quorum::{ClusterInfo, NodeStatus};
use phalanx_totem::{NodeId, RingId};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

/// A quorum change, as delivered to [`Quorum::notifications`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumChange {
    /// Whether this partition is quorate now.
    pub quorate: bool,
    /// The ring the decision is for.
    pub ring: RingId,
    /// Every configured node with its votes and state.
    pub nodes: Vec<NodeStatus>,
    /// The driver step that decided it. The driver numbers each pass in which
    /// it takes the Stack's outputs (those of one datagram, or of a timeout and
    /// the requests that came with it) and stamps that pass's configurations
    /// ([`NodeEvent::Config`](super::NodeEvent::Config)) and quorum changes with
    /// the number. They reach the application on two streams, so a reader that
    /// needs their order — was this decision taken with that configuration, or
    /// after it? — compares steps: equal steps came from the same inputs.
    pub step: u64,
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

/// Quorum state as last decided, from [`Quorum::info`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct QuorumInfo {
    /// Quorate or not, votes, quorum, the options in force and the current
    /// members.
    pub cluster: ClusterInfo,
    /// Every configured node with its votes and state.
    pub nodes: Vec<NodeStatus>,
    /// The driver step that published it (see [`QuorumChange::step`]).
    pub step: u64,
}

/// Quorum state the driver publishes.
#[derive(Debug, Default)]
pub(crate) struct QuorumShared {
    pub(crate) info: parking_lot::Mutex<Option<QuorumInfo>>,
    subscribers: parking_lot::Mutex<Vec<Subscriber>>,
}

/// What a subscriber and the publisher share; the publisher holds it weakly, to
/// learn that the subscriber is gone.
#[derive(Debug, Default)]
struct Subscription {
    skipped: AtomicU64,
}

/// The publisher's side of one subscription.
#[derive(Debug)]
struct Subscriber {
    tx: Sender<QuorumChange>,
    /// A second receiver of the same queue, to discard the oldest change when
    /// the queue is full.
    oldest: Receiver<QuorumChange>,
    subscription: Weak<Subscription>,
}

impl Subscriber {
    /// Queues `change`, discarding the oldest queued change if there is no
    /// room; false when the subscriber is gone.
    fn offer(&self, change: &QuorumChange) -> bool {
        let Some(subscription) = self.subscription.upgrade() else {
            return false;
        };
        let mut change = change.clone();
        // Only the publisher sends (under the subscribers lock): once one change
        // left the queue, by this pop or the reader's, the send fits.
        loop {
            match self.tx.try_send(change) {
                Ok(()) => return true,
                Err(TrySendError::Full(back)) => {
                    if self.oldest.try_recv().is_ok() {
                        subscription.skipped.fetch_add(1, Ordering::Relaxed);
                    }
                    change = back;
                }
                // Not while `oldest` lives; handled all the same.
                Err(TrySendError::Disconnected(_)) => return false,
            }
        }
    }
}

impl QuorumShared {
    /// A new subscription to the changes published from now on.
    pub(crate) fn subscribe(&self) -> QuorumNotifications {
        let (tx, rx) = bounded(QuorumNotifications::CAPACITY);
        let subscription = Arc::new(Subscription::default());
        self.subscribers.lock().push(Subscriber {
            tx,
            oldest: rx.clone(),
            subscription: Arc::downgrade(&subscription),
        });
        QuorumNotifications { rx, subscription }
    }

    /// Publishes a change to every live subscriber (never blocks the driver).
    pub(crate) fn notify(&self, change: QuorumChange) {
        self.subscribers.lock().retain(|s| s.offer(&change));
    }

    /// Ends every subscription: their readers see the stream end once they
    /// have read what is queued.
    pub(crate) fn close(&self) {
        self.subscribers.lock().clear();
    }
}

/// A stream of quorum changes, from [`Quorum::notifications`]. It dereferences
/// to a crossbeam [`Receiver`]: `recv`, `recv_timeout`, `try_iter`, `iter` and
/// `select!` work on it as on any receiver.
///
/// A reader that lags never makes the node wait and never misses the present:
/// at most [`QuorumNotifications::CAPACITY`] changes wait, and when one more
/// comes the *oldest* waiting change is discarded (and counted in
/// [`QuorumNotifications::skipped`]). The last change a slow reader reads is
/// always the current state.
///
/// The stream ends (receiving fails with a disconnect) after the node stops.
/// Dropping this value ends the subscription, even if a clone of the receiver
/// is kept.
#[derive(Debug)]
pub struct QuorumNotifications {
    rx: Receiver<QuorumChange>,
    subscription: Arc<Subscription>,
}

impl QuorumNotifications {
    /// Most changes that wait for the reader; beyond that the oldest are
    /// discarded.
    pub const CAPACITY: usize = 1024;

    /// Changes discarded so far because the reader lagged.
    pub fn skipped(&self) -> u64 {
        self.subscription.skipped.load(Ordering::Relaxed)
    }
}

impl std::ops::Deref for QuorumNotifications {
    type Target = Receiver<QuorumChange>;

    fn deref(&self) -> &Receiver<QuorumChange> {
        &self.rx
    }
}

impl std::borrow::Borrow<Receiver<QuorumChange>> for QuorumNotifications {
    fn borrow(&self) -> &Receiver<QuorumChange> {
        &self.rx
    }
}

impl<'a> IntoIterator for &'a QuorumNotifications {
    type Item = QuorumChange;
    type IntoIter = crossbeam_channel::Iter<'a, QuorumChange>;

    fn into_iter(self) -> Self::IntoIter {
        self.rx.iter()
    }
}

impl IntoIterator for QuorumNotifications {
    type Item = QuorumChange;
    type IntoIter = QuorumNotificationsIter;

    fn into_iter(self) -> QuorumNotificationsIter {
        QuorumNotificationsIter {
            rx: self.rx.clone().into_iter(),
            subscription: self,
        }
    }
}

/// [`QuorumNotifications`] as an iterator that blocks for each change and
/// ends with the stream (`for change in quorum.notifications()`).
#[derive(Debug)]
pub struct QuorumNotificationsIter {
    rx: crossbeam_channel::IntoIter<QuorumChange>,
    /// Keeps the subscription.
    subscription: QuorumNotifications,
}

impl QuorumNotificationsIter {
    /// Changes discarded so far because the reader lagged.
    pub fn skipped(&self) -> u64 {
        self.subscription.skipped()
    }
}

impl Iterator for QuorumNotificationsIter {
    type Item = QuorumChange;

    fn next(&mut self) -> Option<QuorumChange> {
        self.rx.next()
    }
}

/// The node's quorum service. `Clone + Send + Sync`.
///
/// A one-node cluster on loopback, which is quorate on its own:
///
/// ```
/// use phalanx::node::{Node, NodeOptions};
/// use phalanx::quorum::QuorumConfig;
/// use phalanx::totem::Config;
/// use std::time::Duration;
///
/// // A free port for the example; a real cluster's addresses come from its
/// // configuration (`NodeOptions::from_config`).
/// let port = std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port();
/// let addrs = [(1, format!("127.0.0.1:{port}").parse()?)].into();
/// let opts = NodeOptions::new(Config::new(1, vec![1]), addrs)
///     .with_quorum(QuorumConfig::new(1, &[1]));
/// let node = Node::start(opts)?;
///
/// let quorum = node.quorum();
/// let changes = quorum.notifications();
/// // Wait until this partition may act. Subscribed before looking: a change
/// // after the look is in the stream.
/// while !quorum.is_quorate() {
///     let change = changes.recv_timeout(Duration::from_secs(30))?;
///     println!("ring {}: quorate {}", change.ring.seq, change.quorate);
/// }
/// let info = quorum.info().expect("quorum is configured");
/// assert_eq!((info.cluster.expected_votes, info.cluster.quorum), (1, 1));
/// assert_eq!(info.nodes.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
            .is_some_and(|i| i.cluster.quorate)
    }

    /// Cluster information and the node list with votes, as last decided
    /// (`None` when quorum is not configured).
    pub fn info(&self) -> Option<QuorumInfo> {
        self.shared.quorum.info.lock().clone()
    }

    /// A stream of quorum changes from now on (`quorum_trackstart`); see
    /// [`QuorumNotifications`] for what happens when the reader lags.
    pub fn notifications(&self) -> QuorumNotifications {
        self.shared.quorum.subscribe()
    }

    /// Calls `callback` for every quorum change from now on, in order, on a
    /// thread of its own (`quorum_trackstart` with a callback), until the
    /// returned guard is dropped or the node stops. A callback slower than the
    /// changes skips the oldest ones, as a lagging [`QuorumNotifications`]
    /// reader does.
    pub fn on_change(
        &self,
        callback: impl FnMut(QuorumChange) + Send + 'static,
    ) -> std::io::Result<CallbackGuard> {
        CallbackGuard::spawn("phalanx-quorum-cb".into(), self.notifications(), callback)
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

    /// This node's quorum device casts (`cast`) or withdraws its vote for
    /// `ring` (libvotequorum's `votequorum_qdevice_poll`). Replicated in total
    /// order; a vote for a ring that is no longer current is not counted.
    /// Refused without `quorum.device` configured.
    pub fn set_device_vote(&self, ring: RingId, cast: bool) -> Result<(), QuorumCallError> {
        self.round_trip(QuorumRequest::DeviceVote { ring, cast })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::TryRecvError;

    fn change(seq: u64) -> QuorumChange {
        QuorumChange {
            quorate: seq % 2 == 0,
            ring: RingId { rep: 1, seq },
            nodes: Vec::new(),
            step: seq,
        }
    }

    #[test]
    fn a_reader_that_lagged_reads_the_newest_changes_and_last_the_current_state() {
        let shared = QuorumShared::default();
        let changes = shared.subscribe();
        let published = 3 * QuorumNotifications::CAPACITY as u64 + 7;
        for seq in 0..published {
            shared.notify(change(seq));
        }
        let read: Vec<QuorumChange> = changes.try_iter().collect();
        let kept = QuorumNotifications::CAPACITY as u64;
        let expected: Vec<QuorumChange> = (published - kept..published).map(change).collect();
        assert_eq!(read, expected, "the newest changes, in order");
        assert_eq!(read.last(), Some(&change(published - 1)));
        assert_eq!(changes.skipped(), published - kept);
    }

    #[test]
    fn a_reader_racing_the_publisher_ends_on_the_current_state() {
        let shared = Arc::new(QuorumShared::default());
        let changes = shared.subscribe();
        let published = 10 * QuorumNotifications::CAPACITY as u64;
        let publisher = {
            let shared = shared.clone();
            std::thread::spawn(move || {
                for seq in 0..published {
                    shared.notify(change(seq));
                }
                shared.close();
            })
        };
        let mut last: Option<QuorumChange> = None;
        let mut count = 0u64;
        // Until the stream ends: the publisher closed it after the last change.
        for c in &changes {
            if let Some(prev) = &last {
                assert!(
                    c.ring.seq > prev.ring.seq,
                    "out of order: {prev:?} then {c:?}"
                );
            }
            last = Some(c);
            count += 1;
        }
        publisher.join().unwrap();
        assert_eq!(last, Some(change(published - 1)));
        assert_eq!(
            count + changes.skipped(),
            published,
            "every change read or counted"
        );
    }

    #[test]
    fn a_dropped_subscription_is_forgotten_and_others_still_receive() {
        let shared = QuorumShared::default();
        let gone = shared.subscribe();
        let kept = shared.subscribe();
        // A clone of the receiver does not keep the subscription.
        let clone: Receiver<QuorumChange> = (*gone).clone();
        drop(gone);
        shared.notify(change(1));
        assert_eq!(shared.subscribers.lock().len(), 1);
        assert_eq!(clone.try_recv(), Err(TryRecvError::Disconnected));
        assert_eq!(kept.try_recv(), Ok(change(1)));
        shared.close();
        assert_eq!(kept.try_recv(), Err(TryRecvError::Disconnected));
    }
}
