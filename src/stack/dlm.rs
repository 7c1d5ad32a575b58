//! The Stack's DLM service: `phalanx-dlm`'s [`DlmNode`] wired to CPG and fencing.
//!
//! - **Membership.** Each lockspace is a CPG group `dlm:<name>` joined by a member
//!   id reserved for the service ([`DLM_CPG_LOCAL`]). Every group view becomes an
//!   [`Input::Members`](phalanx_dlm::cluster::Input::Members) whose epoch is the
//!   view's place in the total order (see [`ViewClock`]); members that left with
//!   `NODEDOWN` or `PROCDOWN` are *failed* until the fence decision reports them
//!   fenced since their loss, a `LEAVE` is clean.
//! - **Fencing.** A member that leaves a lockspace by failure is recorded with
//!   the incarnation the fence decision knows it by
//!   ([`FenceDecision::incarnation`](phalanx_fence::core::FenceDecision::incarnation))
//!   and handed to the core as failed in every later view until
//!   [`FenceDecision::is_fenced_since`](phalanx_fence::core::FenceDecision::is_fenced_since)
//!   that incarnation — `dlm_controld`'s "fence time ≥ failure time": a rejoin
//!   (a restarted process, or the same one after a merge) does not count; then
//!   the core gets `Fenced` and its recovery may release its locks. Without a
//!   fencing service nothing can be waited for and a failed node counts as
//!   fenced at once (a cluster without fencing has no protection against a node
//!   that is only partitioned away — documented, as in Linux with
//!   `enable_fencing=0`). A node fenced while it was a member counts once the
//!   membership saw it go (the decision then reports it fenced everywhere).
//! - **The fence actor.** The decision requests fencing of lost nodes only, and
//!   forgets a loss on rejoin; the DLM asks for the rest itself, as
//!   `dlm_controld`'s `dlm_stonith` does (skip when already fenced since the
//!   failure, else kick): a node owed fencing that the decision will not fence
//!   is requested through the fencer's client path ([`DLM_FENCE_CLIENT`]) by the
//!   **fence actor** — the lowest node id that was a lockspace member before the
//!   failure and is one now — once its partition may fence (quorum). One
//!   operation against a node at a time (any pending off/reboot of it counts),
//!   at most the decision's `max_attempts` accepted requests per failure. A node
//!   owed fencing that is a member again is either a **restart** (its CPG
//!   incarnation changed: a fresh process, it knows nothing and cannot act; it
//!   is not a candidate actor) or a **stateful merge** (the same process back
//!   after a partition: it may owe fencing of *our* side in turn). Merged
//!   members stay candidates, so both sides of a merge compute the same actor,
//!   the lowest id of the merged lockspace: it fences the others' nodes and
//!   the others fence nobody (`dlm_controld`: "the low nodeid kills the stateful
//!   merged members"), instead of each side shooting the other. No actor acts
//!   while CPG's state exchange runs (the views lag the ring then).
//! - **Joining waits while a node's fate is in doubt.** A lockspace's CPG group
//!   is joined only once the fence decision has no node in doubt
//!   ([`FenceDecision::in_doubt`](phalanx_fence::core::FenceDecision::in_doubt):
//!   lost and not fenced, or configured and never seen while startup fencing is
//!   undecided, or a member that announced an unclean start; and members of
//!   the current ring that have not said yet how they started) — as
//!   `dlm_controld` waits while fencing is in progress. The
//!   core's fencing gate covers nodes that *leave* a view; a node that joins a
//!   lockspace alone or in a partition of fresh processes sees no one leave, and
//!   would master and grant what a partitioned node still holds (found by
//!   `phalanx-nemesis`). Without quorum nothing in doubt is fenced, so such a
//!   join waits for quorum too. The CPG join may take effect in a later ring
//!   than the one it was asked in: at our first view, the nodes in doubt then
//!   (not in the view) are handed to the core as failed until they are fenced,
//!   or no longer in doubt with CPG's exchange over.
//! - **Messages.** The core's point-to-point messages travel as CPG messages to the
//!   lockspace's group, agreed order, with the destination node in front; every
//!   member but the destination drops them. The links carry datagrams without
//!   retransmission or order, while the core needs per-pair FIFO delivery without
//!   loss; totem's agreed order gives that (and more: a message is ordered with the
//!   group views, as in virtual synchrony), at the cost of one token rotation per
//!   hop and of the message reaching every member of the group. A core message
//!   larger than [`MAX_DLM_FRAGMENT`] (recovery lists every mastered name and
//!   every re-mastered lock) goes as several CPG messages, reassembled by the
//!   destination: CPG refuses messages above its `max_message_size` (1 MiB).
//! - **Backpressure.** The core's sends wait in a bounded queue for room in CPG;
//!   while it is full, application calls are refused with `TryAgain`.

use super::{InputError, Output, Stack, StackEvent};
use crate::link::{LinkTransmit, SendTable};
use parking_lot::{MappedMutexGuard, Mutex, MutexGuard};
use phalanx_cpg::{CpgEvent, GroupChange, Guarantee, Reason};
use phalanx_dlm::channel::{ChannelConfig, ChannelOutput, PeerChannel};
use phalanx_dlm::cluster::{self, DlmConfig, DlmNode, LockspaceId};
use phalanx_dlm::{Completion, DlmError, LockId, LockRequest, Mode, Owner, UnlockRequest};
use phalanx_logsys::record;
use phalanx_totem::{NodeId, Time};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use thiserror::Error;

/// The CPG member id the DLM service joins its groups with (applications cannot
/// use it: CPG requests naming it are refused with `Exist`).
pub const DLM_CPG_LOCAL: u32 = u32::MAX;

/// The prefix of a lockspace's CPG group name.
pub const DLM_GROUP_PREFIX: &[u8] = b"dlm:";

/// Longest lockspace name (as libdlm).
pub const MAX_LOCKSPACE_NAME: usize = 64;

/// Most core bytes in one CPG message; a larger core message is split. Well below
/// CPG's default `max_message_size` (1 MiB), so that other groups' traffic can
/// interleave with a long recovery message.
pub const MAX_DLM_FRAGMENT: usize = 256 * 1024;

/// Largest core message a destination reassembles (a longer one is dropped and
/// counted `malformed`): far above what a lockspace within the engine's bounds
/// sends (a million names of 64 bytes).
pub const MAX_DLM_MESSAGE: usize = 256 * 1024 * 1024;

/// The frame byte after the destination: this piece ends the core message.
const FRAME_LAST: u8 = 0;
/// The frame byte after the destination: more pieces of this message follow.
const FRAME_MORE: u8 = 1;

/// Most records from one peer held until this node reaches their epoch; beyond
/// it they are dropped and counted `malformed` (a peer cannot be that far ahead
/// of a view this node will install).
const MAX_HELD_RECORDS: usize = 65_536;

/// The client name of the DLM's fencing requests (in the fencer's history).
pub const DLM_FENCE_CLIENT: &str = "phalanx-dlm";

/// Whether a core message is lock traffic (wire tags 1..=10: lookups, removes,
/// requests, conversions, unlocks, ASTs, BASTs, refusals), which the direct path
/// may carry; recovery messages (11, 12) always go on the ring.
fn is_lock_traffic(bytes: &[u8]) -> bool {
    matches!(bytes.get(1), Some(1..=10))
}

/// Whether a lock-traffic message calls for an answer from its peer: a lookup,
/// request, conversion or unlock (a reply, an AST or a refusal), or a BAST (the
/// holder's conversion or unlock).
fn calls_for_answer(bytes: &[u8]) -> bool {
    matches!(bytes.get(1), Some(1 | 4 | 5 | 6 | 8))
}

/// Whether a lock-traffic message answers one of [`calls_for_answer`]'s: a lookup
/// reply, an AST, a refusal, "not the master", or a conversion or unlock after a
/// BAST.
fn is_answer(bytes: &[u8]) -> bool {
    matches!(bytes.get(1), Some(2 | 5 | 6 | 7 | 9 | 10))
}

/// The lockspace a core message is for (the wire format puts its id at bytes
/// 2..6); `None` for a message too short to have one.
fn lockspace_of(bytes: &[u8]) -> Option<LockspaceId> {
    bytes
        .get(2..6)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// What the DLM service starts from (see [`StackConfig::dlm`](super::StackConfig::dlm)).
#[derive(Clone, Debug)]
pub struct DlmSetup {
    /// The core's bounds and every lockspace's engine configuration (the same on
    /// every node).
    pub node: DlmConfig,
    /// Most core messages waiting for room in CPG; beyond it application calls
    /// are refused with `TryAgain`.
    pub max_sends: usize,
    /// How often idle resources are forgotten (the toss timer).
    pub toss_interval: std::time::Duration,
    /// Lock traffic (lookups, requests, conversions, unlocks, ASTs, BASTs) goes
    /// point-to-point over the links ([`phalanx_dlm::channel`]) instead of as
    /// agreed CPG messages; recovery stays on the ring. On by default (one
    /// network hop a message instead of a token wait); `false` puts all of it
    /// on the ring (`dlm { lock_traffic: ring }`): see `docs/dlm.md` ("A
    /// point-to-point path").
    pub direct: bool,
}

impl Default for DlmSetup {
    fn default() -> Self {
        DlmSetup {
            node: DlmConfig::default(),
            max_sends: 4096,
            toss_interval: std::time::Duration::from_secs(10),
            direct: true,
        }
    }
}

/// An application's DLM request.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DlmRequest {
    /// Join (create or open) a lockspace: answered by [`DlmEvent::Joined`].
    Join {
        /// Its name (1..=64 bytes).
        name: Vec<u8>,
    },
    /// Leave a lockspace (refused while this node holds locks in it): answered by
    /// [`DlmEvent::Left`].
    Leave {
        /// Its name.
        name: Vec<u8>,
    },
    /// A lock or conversion (`dlm_ls_lock`).
    Lock {
        /// The lockspace.
        lockspace: Vec<u8>,
        /// The call.
        request: LockRequest,
    },
    /// An unlock or cancel (`dlm_ls_unlock`).
    Unlock {
        /// The lockspace.
        lockspace: Vec<u8>,
        /// The call.
        request: UnlockRequest,
    },
}

/// What the DLM service tells the handles.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DlmEvent {
    /// This node is a member of the lockspace (its first view).
    Joined {
        /// The lockspace.
        lockspace: Arc<[u8]>,
    },
    /// This node left the lockspace.
    Left {
        /// The lockspace.
        lockspace: Arc<[u8]>,
    },
    /// A completion AST (`completion.lock` is the id the lock call returned).
    Completion {
        /// The lockspace.
        lockspace: Arc<[u8]>,
        /// The AST.
        completion: Completion,
    },
    /// A blocking AST.
    Blocking {
        /// The lockspace.
        lockspace: Arc<[u8]>,
        /// The lock.
        lock: LockId,
        /// Its owner.
        owner: Owner,
        /// The mode someone is blocked on.
        mode: Mode,
    },
    /// The master refused a call this node had accepted (errno).
    Refused {
        /// The lockspace.
        lockspace: Arc<[u8]>,
        /// The lock.
        lock: LockId,
        /// Its owner.
        owner: Owner,
        /// errno.
        errno: i32,
    },
    /// Recovery waits until `node` is fenced.
    AwaitFencing {
        /// The failed node.
        node: NodeId,
    },
    /// The fence decision reports `node` fenced; recovery may release its locks.
    Fenced {
        /// The node.
        node: NodeId,
    },
    /// The lockspace's membership changed (epoch `epoch`): recovery starts.
    Members {
        /// The lockspace.
        lockspace: Arc<[u8]>,
        /// The view's epoch.
        epoch: u64,
        /// Members after the change.
        members: Vec<NodeId>,
        /// Failed members not yet fenced.
        failed: Vec<NodeId>,
    },
    /// The lockspace finished recovery for `epoch`.
    Recovered {
        /// The lockspace.
        lockspace: Arc<[u8]>,
        /// The epoch.
        epoch: u64,
    },
}

/// Why the DLM service refused a request; nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DlmServiceError {
    /// The Stack does not run the DLM service.
    #[error("the DLM service is not configured")]
    NotConfigured,
    /// The lockspace name is empty or longer than 64 bytes.
    #[error("lockspace name must be 1..=64 bytes, got {0}")]
    NameTooLong(usize),
    /// Already a member (or joining, or leaving).
    #[error("lockspace already joined or being joined/left")]
    Exist,
    /// Not a member of this lockspace (or its join is not complete yet).
    #[error("not a member of this lockspace")]
    NotJoined,
    /// Another joined lockspace has the same 32-bit id (hash of the name).
    #[error("lockspace id collides with a joined lockspace")]
    IdCollision,
    /// This node still holds locks in the lockspace (unlock them first).
    #[error("locks are still held in this lockspace")]
    Busy,
    /// Queues are full (backpressure); retry once messages have moved.
    #[error("queues full, try again")]
    TryAgain,
    /// The lock manager refused the call.
    #[error(transparent)]
    Lock(#[from] DlmError),
    /// CPG refused the group request.
    #[error(transparent)]
    Cpg(#[from] phalanx_cpg::CpgError),
}

/// Counters of the DLM service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DlmServiceStats {
    /// Core messages sent through CPG.
    pub sent: u64,
    /// Core messages delivered to this node.
    pub received: u64,
    /// Core messages that could not be sent (group left meanwhile) — dropped.
    pub send_dropped: u64,
    /// Group messages for this node that were malformed (dropped).
    pub malformed: u64,
    /// Fencing requests the DLM made as fence actor (accepted by the fencer).
    pub fence_requests: u64,
    /// Direct-path datagrams an application thread put on the links itself
    /// ([`DlmFastPath::take_transmits`]).
    pub app_thread_datagrams: u64,
    /// Of those, the ones the socket refused (the channel sends them again).
    pub app_thread_send_errors: u64,
    /// Lock-traffic records queued for the direct path (0 with `direct` off).
    pub direct_sent: u64,
    /// Lock-traffic records the direct path delivered to this node's core.
    pub direct_received: u64,
    /// Records that arrived from a view this node's lockspace had not reached
    /// and were held until it did (rule 2 of the design in `docs/dlm.md`).
    pub held_for_view: u64,
    /// Records stamped with a view from before this node joined the lockspace
    /// (made for an earlier incarnation of it): dropped.
    pub stale_dropped: u64,
}

/// Numbers group views in the total order, the same on every node that installs
/// them: `(ring sequence, CPG control messages delivered in the ring, index of the
/// view for this group within that delivery)`. A view is installed either when a
/// JOIN/LEAVE/PROCDOWN control message is applied or when a ring's state exchange
/// completes (itself on the delivery of a control message, the last JOINLIST), so
/// every member of a ring installs it at the same count. Ring sequences increase
/// across rings, so epochs increase on every node.
#[derive(Debug, Default)]
pub(super) struct ViewClock {
    ring_seq: u64,
    controls: u64,
    /// Views per group at the current count.
    index: BTreeMap<LockspaceId, u64>,
}

impl ViewClock {
    fn new_ring(&mut self, seq: u64) {
        self.ring_seq = seq;
        self.controls = 0;
        self.index.clear();
    }

    fn control_delivered(&mut self) {
        self.controls += 1;
        self.index.clear();
    }

    fn next(&mut self, ls: LockspaceId) -> u64 {
        let i = self.index.entry(ls).or_insert(0);
        let epoch = (self.ring_seq << 40) | ((self.controls & 0xFFFF_FFFF) << 8) | (*i & 0xFF);
        *i += 1;
        epoch
    }
}

/// A member's failure, owed fencing.
#[derive(Debug, Clone)]
struct Failure {
    /// The fence decision's incarnation of the node when it failed: a fencing
    /// covering it (or a later one) releases its locks.
    incarnation: u64,
    /// The lockspace members before the failure (the fence actor is the lowest
    /// of them still a member).
    before: BTreeSet<NodeId>,
    /// The node's CPG incarnation when it was last a member (`None`: unknown):
    /// a member again with the same one came back by a merge, with state.
    cpg: Option<u64>,
    /// Not a failure seen in this lockspace but a node in doubt when this
    /// node's join completed (see [`Stack::dlm_settled`]).
    doubt: bool,
}

/// The DLM's own fencing requests for one node.
#[derive(Debug, Clone, Copy)]
struct FenceAsk {
    /// The incarnation whose failure they are for (a later failure resets the count).
    incarnation: u64,
    /// Requests the fencer accepted.
    attempts: u32,
}

/// One lockspace as the service knows it.
#[derive(Debug)]
struct LsEntry {
    name: Arc<[u8]>,
    group: Vec<u8>,
    /// This node's member is in the group view.
    member: bool,
    /// Nodes that left the group by failure and are not known fenced since.
    failed: BTreeMap<NodeId, Failure>,
    /// The members of the last view (what a failure's `before` is).
    members: Vec<NodeId>,
    /// The CPG incarnation of each member at the last view.
    cpg_incarnations: BTreeMap<NodeId, u64>,
    /// The ring (sequence number) in which the last view was applied: a
    /// member of it that fails is the incarnation the fence decision saw
    /// in that ring ([`FenceDecision::incarnation_in`]).
    view_ring: u64,
    /// The epoch of the last view given to the core (stamped on direct records).
    epoch: u64,
    /// The epoch of the first view with this node in it (of the current
    /// membership): a direct record or ring frame stamped earlier was made for
    /// an earlier incarnation of this node — its sender's view still had that
    /// one — and is dropped (the sender resolves the call when it sees that one
    /// go).
    joined_epoch: u64,
    /// The CPG group was joined; false while the join waits for no node to be
    /// in doubt.
    cpg_joined: bool,
}

#[derive(Debug)]
pub(super) struct DlmService {
    node: DlmNode,
    setup: DlmSetup,
    lockspaces: BTreeMap<LockspaceId, LsEntry>,
    ids: BTreeMap<Arc<[u8]>, LockspaceId>,
    /// (lockspace, encoded payload: destination, frame byte, a piece of the
    /// core's bytes).
    sends: VecDeque<(LockspaceId, Vec<u8>)>,
    /// Pieces of core messages for this node received so far, per (lockspace,
    /// sender); dropped when the sender leaves the lockspace's group.
    partial: BTreeMap<(LockspaceId, NodeId), Vec<u8>>,
    /// The direct path (`DlmSetup::direct`): a channel per peer, made in ring
    /// `ring_seq` (its stream id), dropped when the peer leaves the ring.
    channels: BTreeMap<NodeId, PeerChannel>,
    /// Per peer, direct-path messages sent that call for an answer from it
    /// ([`calls_for_answer`]) less answers received from it, at least 0: the
    /// driver waits awake for an answer that is most likely on its way.
    awaiting: BTreeMap<NodeId, u32>,
    ring_seq: u64,
    /// The current ring's members: no channel to or from anyone else.
    ring_members: Vec<NodeId>,
    /// Records (epoch, core bytes) waiting for room in a peer's channel.
    backlog: BTreeMap<NodeId, VecDeque<Vec<u8>>>,
    backlog_len: usize,
    /// Channel datagrams for the links.
    direct_out: VecDeque<(NodeId, Vec<u8>)>,
    /// How the links reach each peer, for application threads (direct path
    /// only; `None` until the Stack publishes one).
    send_table: Option<SendTable>,
    /// The link layer generation `send_table` was made from.
    send_table_generation: u64,
    /// A ring-sequence write is outstanding: no datagram may leave (the Stack's
    /// persist gate), so application threads leave theirs to the driver.
    gated: bool,
    /// Records from a peer held until this node's view reaches their epoch (and
    /// every later record of that peer behind them, in order).
    held_in: BTreeMap<NodeId, VecDeque<(LockspaceId, u64, Vec<u8>)>>,
    clock: ViewClock,
    toss_at: Option<Time>,
    stats: DlmServiceStats,
    /// The fence actor's requests, per node owed fencing.
    fence_asks: BTreeMap<NodeId, FenceAsk>,
    /// The next call id of a DLM fencing request.
    next_fence_call: u64,
}

/// The 32-bit id of a lockspace name (the same on every node).
pub fn lockspace_id(name: &[u8]) -> LockspaceId {
    let h = cluster::fnv1a64(name);
    (h ^ (h >> 32)) as u32
}

/// Bytes before the core bytes in a ring payload: destination, frame byte,
/// the sender's lockspace epoch (13 since 2026-12-07, 5 before: builds on
/// either side of that change cannot share a lockspace).
const RING_HEADER: usize = 13;

/// The CPG payloads carrying core message `bytes` to node `to`: each is the
/// destination (u32, big-endian), a frame byte ([`FRAME_MORE`] when more pieces
/// follow, else [`FRAME_LAST`]), the sender's lockspace epoch (u64,
/// big-endian: what a direct record carries, for the same check at the
/// destination) and at most `max_piece` core bytes. The pieces of
/// one message are queued together, so the group's total order keeps them
/// together and in order for the destination.
fn frames(to: NodeId, epoch: u64, bytes: &[u8], max_piece: usize) -> Vec<Vec<u8>> {
    let pieces: Vec<&[u8]> = if bytes.is_empty() {
        vec![bytes]
    } else {
        bytes.chunks(max_piece.max(1)).collect()
    };
    let last = pieces.len() - 1;
    pieces
        .into_iter()
        .enumerate()
        .map(|(i, piece)| {
            let mut payload = Vec::with_capacity(RING_HEADER + piece.len());
            payload.extend_from_slice(&to.to_be_bytes());
            payload.push(if i == last { FRAME_LAST } else { FRAME_MORE });
            payload.extend_from_slice(&epoch.to_be_bytes());
            payload.extend_from_slice(piece);
            payload
        })
        .collect()
}

impl LsEntry {
    /// Whether a message stamped with view `epoch` was made before this node
    /// joined the lockspace (for an earlier incarnation of it).
    fn made_before_join(&self, epoch: u64) -> bool {
        epoch < self.joined_epoch
    }
}

impl DlmService {
    /// Whether a message stamped with view `epoch` was made before this node
    /// joined lockspace `ls`.
    fn made_before_join(&self, ls: LockspaceId, epoch: u64) -> bool {
        self.lockspaces
            .get(&ls)
            .is_some_and(|e| e.made_before_join(epoch))
    }

    /// The view stamped on what this node sends in lockspace `ls` (direct
    /// records and ring frames alike): the last one its core was given.
    fn stamp(&self, ls: LockspaceId) -> u64 {
        self.lockspaces.get(&ls).map_or(0, |e| e.epoch)
    }

    /// A piece of a core message for this node from `from` in lockspace `ls`,
    /// sent in the sender's view `epoch`: kept until the last piece, then the
    /// whole message goes to the core — unless it was made before this node
    /// joined the lockspace (for an earlier incarnation of it: a peer's view
    /// can still hold that one when a process restarts faster than the ring
    /// notices, and the group's order can put the message after this one's join).
    fn piece(&mut self, ls: LockspaceId, from: NodeId, frame: u8, epoch: u64, piece: &[u8]) {
        let key = (ls, from);
        let mut bytes = self.partial.remove(&key).unwrap_or_default();
        if bytes.len() + piece.len() > MAX_DLM_MESSAGE || frame > FRAME_MORE {
            // Beyond any message a peer within bounds sends, or not a frame we
            // know: drop it; a following piece starts a new message.
            self.stats.malformed += 1;
            return;
        }
        bytes.extend_from_slice(piece);
        if frame == FRAME_MORE {
            self.partial.insert(key, bytes);
            return;
        }
        if self.made_before_join(ls, epoch) {
            self.stats.stale_dropped += 1;
            return;
        }
        self.stats.received += 1;
        let _ = self
            .node
            .handle_input(cluster::Input::Message { from, bytes });
    }

    /// Queues a lock-traffic message for `to` on the direct path, stamped with
    /// the lockspace's epoch.
    fn send_direct(&mut self, now: u64, to: NodeId, ls: LockspaceId, bytes: &[u8]) {
        if !self.ring_members.contains(&to) {
            // Left the ring: the ring would not deliver it either, and the view
            // without it follows.
            self.stats.send_dropped += 1;
            return;
        }
        if calls_for_answer(bytes) {
            *self.awaiting.entry(to).or_default() += 1;
        }
        let epoch = self.stamp(ls);
        let mut record = Vec::with_capacity(8 + bytes.len());
        record.extend_from_slice(&epoch.to_be_bytes());
        record.extend_from_slice(bytes);
        self.backlog.entry(to).or_default().push_back(record);
        self.backlog_len += 1;
        self.stats.direct_sent += 1;
        self.flush_backlog(now, to);
    }

    /// Moves `peer`'s waiting records into its channel while the window has
    /// room, and the channel's datagrams out.
    fn flush_backlog(&mut self, now: u64, peer: NodeId) {
        let stream = self.ring_seq;
        let ch = self
            .channels
            .entry(peer)
            .or_insert_with(|| PeerChannel::new(stream, ChannelConfig::default()));
        if let Some(q) = self.backlog.get_mut(&peer) {
            while ch.has_room() {
                let Some(record) = q.pop_front() else { break };
                self.backlog_len -= 1;
                if ch.send(now, record).is_err() {
                    // Only a record above the channel's limit: no lock-traffic
                    // message is that large.
                    self.stats.send_dropped += 1;
                }
            }
        }
        while let Some(o) = ch.poll_output() {
            match o {
                ChannelOutput::Transmit(d) => self.direct_out.push_back((peer, d)),
                ChannelOutput::Deliver(_) => {}
            }
        }
    }

    /// A record a peer's channel delivered: to the core now, or held behind an
    /// epoch this node has not reached (and behind earlier held records).
    fn direct_record(&mut self, from: NodeId, record: &[u8]) {
        let (Some(epoch), Some(ls)) = (record.get(..8), record.get(8..).and_then(lockspace_of))
        else {
            self.stats.malformed += 1;
            return;
        };
        let epoch = u64::from_be_bytes(epoch.try_into().unwrap_or_default());
        if is_answer(&record[8..])
            && let Some(n) = self.awaiting.get_mut(&from)
        {
            *n = n.saturating_sub(1);
        }
        let entry = self.lockspaces.get(&ls);
        if entry.is_some_and(|e| e.made_before_join(epoch)) {
            self.stats.stale_dropped += 1;
            return;
        }
        // A lockspace this node is not in nor joining: the core decides (it keeps
        // messages for lockspaces it has not joined yet, within its bound).
        let ahead = entry.is_some_and(|e| epoch > e.epoch);
        let bytes = record[8..].to_vec();
        let q = self.held_in.entry(from).or_default();
        if !q.is_empty() || ahead {
            if q.len() < MAX_HELD_RECORDS {
                q.push_back((ls, epoch, bytes));
                self.stats.held_for_view += u64::from(ahead);
            } else {
                self.stats.malformed += 1;
            }
            return;
        }
        self.stats.received += 1;
        self.stats.direct_received += 1;
        let _ = self
            .node
            .handle_input(cluster::Input::Message { from, bytes });
    }

    /// Hands the core the held records whose epoch this node has reached, in
    /// each peer's order.
    fn release_held(&mut self) {
        let peers: Vec<NodeId> = self.held_in.keys().copied().collect();
        for from in peers {
            while let Some(q) = self.held_in.get_mut(&from) {
                let ready = q.front().is_some_and(|(ls, epoch, _)| {
                    self.lockspaces.get(ls).is_none_or(|e| *epoch <= e.epoch)
                });
                if !ready {
                    break;
                }
                let Some((ls, epoch, bytes)) = q.pop_front() else {
                    break;
                };
                if self.made_before_join(ls, epoch) {
                    self.stats.stale_dropped += 1;
                    continue;
                }
                self.stats.received += 1;
                self.stats.direct_received += 1;
                let _ = self
                    .node
                    .handle_input(cluster::Input::Message { from, bytes });
            }
        }
        self.held_in.retain(|_, q| !q.is_empty());
    }

    pub(super) fn new(me: NodeId, setup: DlmSetup) -> Result<Self, phalanx_dlm::ConfigError> {
        Ok(DlmService {
            node: DlmNode::new(me, setup.node.clone())?,
            setup,
            lockspaces: BTreeMap::new(),
            ids: BTreeMap::new(),
            sends: VecDeque::new(),
            partial: BTreeMap::new(),
            channels: BTreeMap::new(),
            awaiting: BTreeMap::new(),
            ring_seq: 0,
            ring_members: Vec::new(),
            backlog: BTreeMap::new(),
            backlog_len: 0,
            direct_out: VecDeque::new(),
            send_table: None,
            send_table_generation: 0,
            gated: false,
            held_in: BTreeMap::new(),
            clock: ViewClock::default(),
            toss_at: None,
            stats: DlmServiceStats::default(),
            fence_asks: BTreeMap::new(),
            next_fence_call: 1,
        })
    }

    /// The service's next timer: the toss, or a channel's retransmission or ack.
    fn deadline(&self) -> Option<Time> {
        let channels = self
            .channels
            .values()
            .filter_map(PeerChannel::deadline)
            .min()
            .map(Time::from_nanos);
        [self.toss_at, channels].into_iter().flatten().min()
    }

    fn joined_id(&self, name: &[u8]) -> Result<LockspaceId, DlmServiceError> {
        match self.ids.get(name) {
            Some(&id) if self.lockspaces.get(&id).is_some_and(|e| e.member) => Ok(id),
            _ => Err(DlmServiceError::NotJoined),
        }
    }

    fn check_room(&self) -> Result<(), DlmServiceError> {
        if self.sends.len() + self.backlog_len >= self.setup.max_sends {
            return Err(DlmServiceError::TryAgain);
        }
        Ok(())
    }

    /// A lock or unlock call on the core: (lockspace, the new lock's id).
    /// Whoever runs it (the Stack, or a [`DlmFastPath`] caller) leaves the
    /// core's outputs for `drain_dlm`.
    fn app_call(
        &mut self,
        r: DlmRequest,
    ) -> Result<(LockspaceId, Option<LockId>), DlmServiceError> {
        match r {
            DlmRequest::Lock { lockspace, request } => {
                let id = self.joined_id(&lockspace)?;
                self.app_call_in(id, FastRequest::Lock(request))
            }
            DlmRequest::Unlock { lockspace, request } => {
                let id = self.joined_id(&lockspace)?;
                self.app_call_in(id, FastRequest::Unlock(request))
            }
            // Joins and leaves go through CPG (the Stack's own path).
            DlmRequest::Join { .. } | DlmRequest::Leave { .. } => {
                Err(DlmServiceError::NotConfigured)
            }
        }
    }

    /// [`Self::app_call`] in lockspace `id`, already found joined.
    fn app_call_in(
        &mut self,
        id: LockspaceId,
        r: FastRequest,
    ) -> Result<(LockspaceId, Option<LockId>), DlmServiceError> {
        self.check_room()?;
        match r {
            FastRequest::Lock(request) => Ok((id, Some(self.node.lock(id, request)?))),
            FastRequest::Unlock(request) => {
                self.node.unlock(id, request)?;
                Ok((id, None))
            }
        }
    }
}

/// The service behind its lock, shared by the Stack and [`DlmFastPath`]s.
#[derive(Debug)]
pub(super) struct DlmShared {
    service: Mutex<DlmService>,
    /// [`StackEvent::Dlm`]s emitted and not yet routed by the driver
    /// ([`Stack::dlm_routed`]); counted while the service is locked.
    unrouted: AtomicUsize,
    /// The Stack stopped.
    stopped: AtomicBool,
}

impl DlmShared {
    pub(super) fn new(service: DlmService) -> DlmShared {
        DlmShared {
            service: Mutex::new(service),
            unrouted: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
        }
    }
}

/// A lock or unlock call for [`DlmFastPath::call`], whose lockspace is
/// named beside it (borrowed: no copy of the name per call).
#[derive(Debug)]
pub enum FastRequest {
    /// A lock or conversion.
    Lock(LockRequest),
    /// An unlock or cancel.
    Unlock(UnlockRequest),
}

impl FastRequest {
    /// The same call as a [`DlmRequest`] for the driver's path.
    pub fn into_request(self, lockspace: &[u8]) -> DlmRequest {
        let lockspace = lockspace.to_vec();
        match self {
            FastRequest::Lock(request) => DlmRequest::Lock { lockspace, request },
            FastRequest::Unlock(request) => DlmRequest::Unlock { lockspace, request },
        }
    }

    /// The existing lock the call is about (none for a new lock).
    pub(crate) fn target(&self) -> Option<LockId> {
        match self {
            FastRequest::Lock(r) => r.lock,
            FastRequest::Unlock(r) => Some(r.lock),
        }
    }
}

/// What [`DlmFastPath::call`] did.
#[derive(Debug)]
pub enum FastCall {
    /// Not run (the DLM has events in flight, the lockspace is not joined, the
    /// Stack stopped, ...): send the request through the driver as usual.
    NotRun(FastRequest),
    /// Refused at once with what [`Stack::dlm_request`] would have answered;
    /// nothing changed.
    Refused(DlmServiceError),
    /// Done on the caller's thread: the call's own completion, the only output
    /// it produced (a locally mastered resource without contention).
    Completed(Option<LockId>, Completion),
    /// Accepted; its outputs (messages, ASTs) wait in the core for the
    /// driver: call [`Stack::dlm_flush`] on the driver's thread.
    Accepted(Option<LockId>),
}

/// Lock and unlock calls run on the caller's thread, under the service's lock,
/// instead of in a round trip through the driver's thread.
///
/// **Why it is safe.** The call runs the same code as [`Stack::dlm_request`]
/// (`DlmService::app_call`: lockspace joined, room in the send queue, then the
/// core's `lock`/`unlock`) on the same state, under the lock every Stack entry
/// point takes: to the core it is an input between two of the driver's, as if
/// the driver had run it at that instant. Grant queues, recovery phases and
/// the directory see one serial sequence of inputs, as before. What changes is
/// only how the outputs leave: a call runs only while the DLM has nothing in
/// flight (the core's output queue empty and every event already emitted routed
/// to its handle, `unrouted == 0`); if its only output is its own completion,
/// that completion goes straight to the caller — the order every handle
/// observes is the one the driver would have produced (nothing was before it,
/// anything after it is made under the lock after it). Any other output (a
/// message to a remote master, a grant or BAST for another lock, a lookup)
/// stays in the core for the driver, who moves it at its next pump
/// ([`FastCall::Accepted`]). `on_accept` runs under the lock, before any output
/// of the call can be routed, so the caller registers where the lock's later
/// notices go before they can exist.
#[derive(Clone, Debug)]
pub struct DlmFastPath {
    shared: Arc<DlmShared>,
}

impl DlmFastPath {
    /// Whether events the Stack emitted are not routed yet: a [`Self::call`]
    /// now would not run (read without the service's lock; it only advises).
    pub fn events_in_flight(&self) -> bool {
        self.shared.unrouted.load(Ordering::Acquire) != 0
    }

    /// Runs `request` in lockspace `lockspace` here if it can (see the
    /// type's docs); `on_accept(new lock id, own completion)` runs under the
    /// lock when the core accepted it.
    pub fn call(
        &self,
        lockspace: &[u8],
        request: FastRequest,
        on_accept: impl FnOnce(Option<LockId>, Option<&Completion>),
    ) -> FastCall {
        let mut d = self.shared.service.lock();
        let target = request.target();
        if self.shared.stopped.load(Ordering::Acquire)
            || self.shared.unrouted.load(Ordering::Acquire) != 0
            || d.node.pending_outputs() != 0
        {
            return FastCall::NotRun(request);
        }
        let Ok(id) = d.joined_id(lockspace) else {
            return FastCall::NotRun(request);
        };
        let (ls, new_lock) = match d.app_call_in(id, request) {
            Ok(accepted) => accepted,
            Err(e) => return FastCall::Refused(e),
        };
        let own = new_lock.or(target);
        let only_own = d.node.pending_outputs() == 1
            && matches!(d.node.peek_output(),
                Some(cluster::Output::Completion { lockspace, completion })
                    if *lockspace == ls && Some(completion.lock) == own);
        if only_own
            && let Some(cluster::Output::Completion { completion, .. }) = d.node.poll_output()
        {
            on_accept(new_lock, Some(&completion));
            return FastCall::Completed(new_lock, completion);
        }
        on_accept(new_lock, None);
        FastCall::Accepted(new_lock)
    }
}

impl DlmFastPath {
    /// Runs `request` on the driver's own thread — a call made by a notice
    /// callback the driver is running — whatever is in flight. The same code
    /// as [`Stack::dlm_request`] (`DlmService::app_call`) under the service's
    /// lock: to the core, an input between two of the driver's. Every output,
    /// the call's own completion included, stays in the core: the driver
    /// routes the events it emitted before first, then moves these with
    /// [`Stack::dlm_flush`] — each handle sees the order the driver's command
    /// path would give. `on_accept(new lock id)` runs under the lock, before
    /// any output of the call can be routed. Never [`FastCall::Completed`];
    /// [`FastCall::NotRun`] only once the Stack stopped.
    pub fn call_on_driver(
        &self,
        lockspace: &[u8],
        request: FastRequest,
        on_accept: impl FnOnce(Option<LockId>),
    ) -> FastCall {
        let mut d = self.shared.service.lock();
        if self.shared.stopped.load(Ordering::Acquire) {
            return FastCall::NotRun(request);
        }
        let accepted = d
            .joined_id(lockspace)
            .and_then(|id| d.app_call_in(id, request));
        match accepted {
            Ok((_, new_lock)) => {
                on_accept(new_lock);
                FastCall::Accepted(new_lock)
            }
            Err(e) => FastCall::Refused(e),
        }
    }

    /// The direct path's datagrams this thread may put on the links itself
    /// (after a [`FastCall::Accepted`]), sealed as the driver would: the core's
    /// leading lock-traffic messages to peers go into their channels (what the
    /// driver's next pump would do first), then every channel datagram for a
    /// peer the [`SendTable`] reaches is taken. Nothing while the Stack's
    /// persist gate holds datagrams, without the direct path or a table, or
    /// once stopped: the driver sends those. `now` is the driver's clock.
    ///
    /// Datagrams taken here may reach a peer before ones the driver took
    /// earlier: the channel orders records and the crypto window accepts
    /// counters out of order, so only the first hop changes.
    pub fn take_transmits(&self, now: Time) -> Vec<LinkTransmit> {
        let mut d = self.shared.service.lock();
        let d = &mut *d;
        if self.shared.stopped.load(Ordering::Acquire) || !d.setup.direct || d.gated {
            return Vec::new();
        }
        let Some(table) = d.send_table.take() else {
            return Vec::new();
        };
        let me = d.node.id();
        let now_ns = now.as_nanos();
        while let Some(cluster::Output::Send { to, bytes }) = d.node.peek_output() {
            let to = *to;
            let Some(ls) = lockspace_of(bytes) else {
                break;
            };
            if to == me || !is_lock_traffic(bytes) || !table.reaches(to) {
                break;
            }
            let Some(cluster::Output::Send { bytes, .. }) = d.node.poll_output() else {
                break;
            };
            d.send_direct(now_ns, to, ls, &bytes);
        }
        let mut out = Vec::new();
        let mut left = VecDeque::new();
        for (peer, data) in d.direct_out.drain(..) {
            if !table.reaches(peer) {
                left.push_back((peer, data));
            } else if !table.send(peer, &data, &mut |t| out.push(t)) {
                // Not sealed: the channel sends the record again.
                d.stats.app_thread_send_errors += 1;
            }
        }
        d.direct_out = left;
        d.stats.app_thread_datagrams += out.len() as u64;
        d.send_table = Some(table);
        out
    }

    /// After [`Self::take_transmits`]: `None` if the driver must pump (outputs
    /// wait in the core or datagrams for it), else the earliest of the
    /// service's timers (ns; `u64::MAX`: none) — all the driver must still do
    /// for this call is run them.
    pub fn driver_wanted_by(&self) -> Option<u64> {
        let d = self.shared.service.lock();
        if d.node.pending_outputs() != 0 || !d.direct_out.is_empty() {
            return None;
        }
        Some(d.deadline().map_or(u64::MAX, Time::as_nanos))
    }

    /// The service's counters.
    pub fn stats(&self) -> DlmServiceStats {
        self.shared.service.lock().stats.clone()
    }

    /// Counts datagrams from [`Self::take_transmits`] the socket refused.
    pub fn count_send_errors(&self, n: u64) {
        if n > 0 {
            self.shared.service.lock().stats.app_thread_send_errors += n;
        }
    }
}

impl Stack {
    /// Gives the DLM service the links' current [`SendTable`] (direct path
    /// only), when the routes changed since the last one.
    pub(super) fn publish_dlm_send_table(&mut self) {
        let Some(shared) = &self.dlm else { return };
        let generation = self.links.route_generation();
        let mut d = shared.service.lock();
        if !d.setup.direct || d.send_table.is_some() && d.send_table_generation == generation {
            return;
        }
        d.send_table = Some(self.links.send_table());
        d.send_table_generation = generation;
    }

    /// Whether application threads are told the persist gate holds datagrams.
    #[cfg(test)]
    pub(super) fn dlm_gated(&self) -> bool {
        self.dlm.as_ref().is_some_and(|s| s.service.lock().gated)
    }

    /// Tells application threads whether the persist gate holds datagrams.
    pub(super) fn dlm_set_gated(&self, gated: bool) {
        if let Some(shared) = &self.dlm {
            shared.service.lock().gated = gated;
        }
    }
}

impl Stack {
    /// The DLM core, if the Stack runs the service (queries: locks, masters).
    /// The guard holds the service's lock (application threads of a
    /// [`DlmFastPath`] wait meanwhile): keep it short, and call no other DLM
    /// method of the Stack while holding it (the lock is not reentrant).
    pub fn dlm(&self) -> Option<MappedMutexGuard<'_, DlmNode>> {
        self.dlm
            .as_ref()
            .map(|s| MutexGuard::map(s.service.lock(), |d| &mut d.node))
    }

    /// Whether a lock-traffic message this node sent point-to-point calls for an
    /// answer not received yet (a request to a remote master, a BAST to a
    /// holder): most likely on its way.
    pub fn dlm_awaits_peers(&self) -> bool {
        self.dlm
            .as_ref()
            .is_some_and(|s| s.service.lock().awaiting.values().any(|n| *n > 0))
    }

    /// The service's state for application threads (see [`DlmFastPath`]).
    pub fn dlm_fast_path(&self) -> Option<DlmFastPath> {
        self.dlm.as_ref().map(|s| DlmFastPath { shared: s.clone() })
    }

    /// The driver routed one [`StackEvent::Dlm`] to its handles (the count of
    /// events not yet routed gates the [`DlmFastPath`]).
    pub fn dlm_routed(&self) {
        if let Some(s) = &self.dlm {
            let _ = s
                .unrouted
                .fetch_update(Ordering::Release, Ordering::Relaxed, |n| n.checked_sub(1));
        }
    }

    /// Moves what a [`DlmFastPath`] call left in the core (messages, other
    /// locks' ASTs) out, as after any input.
    pub fn dlm_flush(&mut self, now: Time) {
        if self.stopped.is_some() {
            return;
        }
        self.now = now;
        self.pump();
    }

    /// The Stack stopped: fast-path calls stop too.
    pub(super) fn dlm_stopped(&self) {
        if let Some(s) = &self.dlm {
            let _guard = s.service.lock();
            s.stopped.store(true, Ordering::Release);
        }
    }

    /// The lockspaces this node is a member of: (name, id).
    pub fn dlm_lockspaces(&self) -> Vec<(Arc<[u8]>, LockspaceId)> {
        self.dlm
            .as_ref()
            .map(|s| {
                s.service
                    .lock()
                    .lockspaces
                    .iter()
                    .filter(|(_, e)| e.member)
                    .map(|(id, e)| (e.name.clone(), *id))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Counters of the DLM service.
    pub fn dlm_stats(&self) -> DlmServiceStats {
        self.dlm
            .as_ref()
            .map(|s| s.service.lock().stats.clone())
            .unwrap_or_default()
    }

    /// A DLM request; `Ok(Some(id))` for an accepted lock call (the id names the
    /// lock in its completion and in later calls). The run-loop contract is that
    /// of [`Stack::handle_input`]: poll the outputs afterwards.
    pub fn dlm_request(&mut self, now: Time, r: DlmRequest) -> Result<Option<LockId>, InputError> {
        if let Some(r) = &self.stopped {
            return Err(InputError::Stopped(r.clone()));
        }
        self.now = now;
        let result = self.on_dlm_request(r);
        self.pump();
        result.map_err(InputError::Dlm)
    }

    pub(super) fn on_dlm_request(
        &mut self,
        r: DlmRequest,
    ) -> Result<Option<LockId>, DlmServiceError> {
        let Some(shared) = self.dlm.clone() else {
            return Err(DlmServiceError::NotConfigured);
        };
        let mut d = shared.service.lock();
        match r {
            DlmRequest::Join { name } => {
                if name.is_empty() || name.len() > MAX_LOCKSPACE_NAME {
                    return Err(DlmServiceError::NameTooLong(name.len()));
                }
                if d.ids.contains_key(&name[..]) {
                    return Err(DlmServiceError::Exist);
                }
                let id = lockspace_id(&name);
                if d.lockspaces.contains_key(&id) {
                    return Err(DlmServiceError::IdCollision);
                }
                let mut group = DLM_GROUP_PREFIX.to_vec();
                group.extend_from_slice(&name);
                let cpg_joined = !self.dlm_join_in_doubt(&d);
                if cpg_joined {
                    self.cpg.join(DLM_CPG_LOCAL, &group)?;
                }
                let name: Arc<[u8]> = name.into();
                d.ids.insert(name.clone(), id);
                d.lockspaces.insert(
                    id,
                    LsEntry {
                        name,
                        group,
                        member: false,
                        failed: BTreeMap::new(),
                        members: Vec::new(),
                        cpg_incarnations: BTreeMap::new(),
                        epoch: 0,
                        joined_epoch: 0,
                        view_ring: 0,
                        cpg_joined,
                    },
                );
                if d.toss_at.is_none() {
                    d.toss_at = Some(self.now + d.setup.toss_interval);
                }
                Ok(None)
            }
            DlmRequest::Leave { name } => {
                if let Some(&id) = d.ids.get(&name[..])
                    && d.lockspaces.get(&id).is_some_and(|e| !e.cpg_joined)
                {
                    // Its join still waits: nothing to leave but the entry.
                    d.ids.remove(&name[..]);
                    let lockspace = d.lockspaces.remove(&id).map(|e| e.name);
                    drop(d);
                    if let Some(lockspace) = lockspace {
                        shared.unrouted.fetch_add(1, Ordering::Relaxed);
                        self.emit(Output::Event(StackEvent::Dlm(DlmEvent::Left { lockspace })));
                    }
                    return Ok(None);
                }
                let id = d.joined_id(&name)?;
                if !d.node.locks(id).is_empty() {
                    return Err(DlmServiceError::Busy);
                }
                let group = d.lockspaces[&id].group.clone();
                self.cpg.leave(DLM_CPG_LOCAL, &group)?;
                Ok(None)
            }
            r @ (DlmRequest::Lock { .. } | DlmRequest::Unlock { .. }) => {
                d.app_call(r).map(|(_, id)| id)
            }
        }
    }

    /// A CPG delivery is about to be routed: control messages advance the view
    /// clock (mcasts do not).
    pub(super) fn dlm_note_cpg_delivery(&mut self, data: &[u8]) {
        if let Some(s) = &self.dlm
            && phalanx_cpg::wire::mcast_group(Some(super::ServiceId::Cpg as u8), data).is_none()
        {
            s.service.lock().clock.control_delivered();
        }
    }

    /// A regular configuration: a new ring for the view clock; direct channels to
    /// nodes that left the ring are dropped (with what waits for them: a peer
    /// that comes back gets a new channel, named by this ring).
    pub(super) fn dlm_new_ring(&mut self, seq: u64, members: &[NodeId]) {
        if let Some(s) = &self.dlm {
            let mut d = s.service.lock();
            d.clock.new_ring(seq);
            d.ring_seq = seq;
            d.ring_members = members.to_vec();
            d.channels.retain(|n, _| members.contains(n));
            d.awaiting.retain(|n, _| members.contains(n));
            d.held_in.retain(|n, _| members.contains(n));
            d.backlog.retain(|n, _| members.contains(n));
            d.backlog_len = d.backlog.values().map(VecDeque::len).sum();
        }
    }

    /// A channel datagram from `from` (the direct path).
    pub(super) fn dlm_direct_datagram(&mut self, now: Time, from: NodeId, data: &[u8]) {
        let Some(s) = &self.dlm else { return };
        let mut d = s.service.lock();
        let d = &mut *d;
        if !d.ring_members.contains(&from) {
            // Not in this node's ring (a partitioned node that still sends):
            // nothing of it reaches the core.
            d.stats.malformed += 1;
            return;
        }
        let now = now.as_nanos();
        let stream = d.ring_seq;
        let ch = d
            .channels
            .entry(from)
            .or_insert_with(|| PeerChannel::new(stream, ChannelConfig::default()));
        if ch.datagram(now, data).is_err() {
            d.stats.malformed += 1;
            return;
        }
        let mut records = Vec::new();
        while let Some(o) = ch.poll_output() {
            match o {
                ChannelOutput::Transmit(t) => d.direct_out.push_back((from, t)),
                ChannelOutput::Deliver(r) => records.push(r),
            }
        }
        for r in records {
            d.direct_record(from, &r);
        }
        // Acks may have made room for waiting records.
        d.flush_backlog(now, from);
    }

    /// Whether the direct path is on (its datagrams are told from totem's).
    pub(super) fn dlm_direct(&self) -> bool {
        self.dlm
            .as_ref()
            .is_some_and(|s| s.service.lock().setup.direct)
    }

    /// Takes the direct path's datagrams for the links.
    pub(super) fn take_dlm_datagrams(&mut self) -> Vec<(NodeId, Vec<u8>)> {
        self.dlm
            .as_ref()
            .map(|s| s.service.lock().direct_out.drain(..).collect())
            .unwrap_or_default()
    }

    /// Takes the service's share of a CPG event; returns what is left for the
    /// application's members (`None`: nothing).
    pub(super) fn dlm_filter_cpg(&mut self, ev: CpgEvent) -> Option<CpgEvent> {
        let Some(shared) = self.dlm.clone() else {
            return Some(ev);
        };
        let group = match &ev {
            CpgEvent::Change(c) => c.group.as_bytes(),
            CpgEvent::Deliver(m) => m.group.as_bytes(),
            _ => return Some(ev),
        };
        let Some(name) = group.strip_prefix(DLM_GROUP_PREFIX) else {
            return Some(ev);
        };
        let id = lockspace_id(name);
        if shared
            .service
            .lock()
            .lockspaces
            .get(&id)
            .is_none_or(|e| &e.name[..] != name)
        {
            return Some(ev);
        }
        match ev {
            CpgEvent::Change(c) => {
                if !c.recipients.contains(&DLM_CPG_LOCAL) {
                    // A view this node's service is not in yet (someone else's
                    // join before ours): for nobody here unless an application
                    // member shares the group.
                    return (!c.recipients.is_empty()).then_some(CpgEvent::Change(c));
                }
                self.dlm_view(id, &c);
                let rest: Arc<[u32]> = c
                    .recipients
                    .iter()
                    .copied()
                    .filter(|l| *l != DLM_CPG_LOCAL)
                    .collect();
                (!rest.is_empty()).then(|| {
                    let mut c = c;
                    c.recipients = rest;
                    CpgEvent::Change(c)
                })
            }
            CpgEvent::Deliver(mut m) => {
                if !m.recipients.contains(&DLM_CPG_LOCAL) {
                    return (!m.recipients.is_empty()).then_some(CpgEvent::Deliver(m));
                }
                if m.sender.local == DLM_CPG_LOCAL {
                    let me = self.totem.node_id();
                    match (m.data.get(..4), m.data.get(4), m.data.get(5..RING_HEADER)) {
                        (Some(to), Some(&frame), Some(epoch)) => {
                            let to = u32::from_be_bytes([to[0], to[1], to[2], to[3]]);
                            let epoch = u64::from_be_bytes(epoch.try_into().unwrap_or_default());
                            if to == me {
                                shared.service.lock().piece(
                                    id,
                                    m.sender.node,
                                    frame,
                                    epoch,
                                    &m.data[RING_HEADER..],
                                );
                            }
                        }
                        _ => shared.service.lock().stats.malformed += 1,
                    }
                }
                let rest: Arc<[u32]> = m
                    .recipients
                    .iter()
                    .copied()
                    .filter(|l| *l != DLM_CPG_LOCAL)
                    .collect();
                (!rest.is_empty()).then(|| {
                    m.recipients = rest;
                    CpgEvent::Deliver(m)
                })
            }
            other => Some(other),
        }
    }

    /// A view of a lockspace's group: the core's `Members`.
    fn dlm_view(&mut self, id: LockspaceId, c: &GroupChange) {
        let me = self.totem.node_id();
        let newly_failed: Vec<NodeId> = c
            .left
            .iter()
            .filter(|l| {
                l.member.local == DLM_CPG_LOCAL
                    && matches!(l.reason, Reason::NodeDown | Reason::ProcDown)
            })
            .map(|l| l.member.node)
            .filter(|n| *n != me)
            .collect();
        let in_doubt: Vec<(NodeId, u64)> = self
            .fence_decision()
            .map(|f| {
                self.fence_in_doubt()
                    .into_iter()
                    .map(|n| (n, f.incarnation(n)))
                    .collect()
            })
            .unwrap_or_default();
        let Some(shared) = self.dlm.clone() else {
            return;
        };
        let mut d = shared.service.lock();
        let d = &mut *d;
        // A sender that left will not finish its message (a new incarnation
        // starts a new one).
        for l in c.left.iter().filter(|l| l.member.local == DLM_CPG_LOCAL) {
            d.partial.remove(&(id, l.member.node));
        }
        let epoch = d.clock.next(id);
        let members: Vec<NodeId> = c
            .members
            .iter()
            .filter(|m| m.local == DLM_CPG_LOCAL)
            .map(|m| m.node)
            .collect();
        let Some(e) = d.lockspaces.get_mut(&id) else {
            return;
        };
        // Each with the incarnation that failed — the one of the ring of the
        // view that last showed it (the decision may already have seen its
        // next process join) — and one fenced since (as a member, before it
        // left) owes nothing.
        let view_ring = phalanx_totem::RingId {
            seq: e.view_ring,
            rep: 0,
        };
        let newly_failed: Vec<(NodeId, u64)> = newly_failed
            .into_iter()
            .map(|n| (n, self.fence_incarnation_in(n, view_ring)))
            .filter(|(n, i)| !self.dlm_fenced_since(*n, *i))
            .collect();
        for (n, incarnation) in newly_failed {
            let failure = Failure {
                incarnation,
                before: e.members.iter().copied().collect(),
                cpg: e.cpg_incarnations.get(&n).copied(),
                doubt: false,
            };
            match e.failed.get_mut(&n) {
                Some(f) if !f.doubt => f.incarnation = f.incarnation.max(incarnation),
                _ => {
                    e.failed.insert(n, failure);
                }
            }
        }
        // Our join completes now, maybe in another ring than the one in which
        // it was asked for (its CPG message was delivered after a change):
        // nodes in doubt now may hold locks of this lockspace out of sight.
        if !e.member && members.contains(&me) {
            for (n, incarnation) in &in_doubt {
                if !members.contains(n) {
                    e.failed.entry(*n).or_insert(Failure {
                        incarnation: *incarnation,
                        before: BTreeSet::new(),
                        cpg: None,
                        doubt: true,
                    });
                }
            }
        }
        e.members = members.clone();
        e.view_ring = d.ring_seq;
        e.cpg_incarnations = members
            .iter()
            .filter_map(|n| self.cpg.node_incarnation(*n).map(|i| (*n, i)))
            .collect();
        let failed: Vec<NodeId> = e.failed.keys().copied().collect();
        let name = e.name.clone();
        let was_member = e.member;
        e.member = members.contains(&me);
        let is_member = e.member;
        e.epoch = epoch;
        if is_member && !was_member {
            e.joined_epoch = epoch;
        }
        let _ = d.node.handle_input(cluster::Input::Members {
            lockspace: id,
            epoch,
            members: members.clone(),
            failed: failed.clone(),
        });
        if !d.held_in.is_empty() {
            d.release_held();
        }
        let mut events = Vec::new();
        if is_member && !was_member {
            events.push(DlmEvent::Joined {
                lockspace: name.clone(),
            });
        }
        events.push(DlmEvent::Members {
            lockspace: name.clone(),
            epoch,
            members,
            failed,
        });
        if was_member && !is_member {
            d.lockspaces.remove(&id);
            d.ids.remove(&name);
            events.push(DlmEvent::Left { lockspace: name });
        }
        // Counted while the service is locked: a fast-path call sees them.
        shared.unrouted.fetch_add(events.len(), Ordering::Relaxed);
        for ev in events {
            self.emit(Output::Event(StackEvent::Dlm(ev)));
        }
    }

    /// Is some node's fate in doubt (see the module's docs), or does a
    /// lockspace still wait for a fencing? Never without fencing.
    fn dlm_join_in_doubt(&self, d: &DlmService) -> bool {
        self.fence_decision().is_some_and(|_| {
            !self.fence_in_doubt().is_empty()
                || d.lockspaces
                    .values()
                    .any(|e| e.failed.iter().any(|(n, fl)| !self.dlm_settled(*n, fl)))
        })
    }

    /// Is the failure `fl` of `node` settled: fenced since it (the rule; a
    /// node fenced while a member counts once it left), or,
    /// for a node that was only in doubt when our join completed, no longer in
    /// doubt — fenced since lost, or a member again of a ring whose CPG
    /// exchange is over (had it been in this lockspace's group, our view would
    /// show it now, and recovery would include its locks).
    fn dlm_settled(&self, node: NodeId, fl: &Failure) -> bool {
        let Some(f) = self.fence_decision() else {
            return true;
        };
        if f.is_fenced_since(node, fl.incarnation) {
            // Fenced as a member (a restarted or merged node): settled once
            // the membership saw it go and the decision reported its loss
            // fenced — the fencing is then over and recorded everywhere.
            return !f.is_fenced_member(node);
        }
        fl.doubt
            && !self.fence_in_doubt().contains(&node)
            && !(f.state(node) == phalanx_fence::core::NodeFenceState::Member
                && self.cpg.is_syncing())
    }

    /// The fence decision's incarnation of `node` in ring `ring` (0 without
    /// fencing).
    fn fence_incarnation_in(&self, node: NodeId, ring: phalanx_totem::RingId) -> u64 {
        self.fence_decision()
            .map_or(0, |f| f.incarnation_in(node, ring))
    }

    /// Has `node` been fenced since its incarnation `incarnation` failed?
    /// Always without a fencing service (nothing to wait for).
    fn dlm_fenced_since(&self, node: NodeId, incarnation: u64) -> bool {
        self.fence.is_none()
            || self
                .fence_decision()
                .is_some_and(|f| f.is_fenced_since(node, incarnation) && !f.is_fenced_member(node))
    }

    /// The fence actor's part (see the module docs): requests fencing of the
    /// nodes this node owes it for and that the decision will not fence, when
    /// this node is their actor and its partition may fence. True if a request
    /// went to the fencer.
    fn dlm_fence_owed(&mut self, shared: &Arc<DlmShared>) -> bool {
        let Some(f) = self.fence_decision() else {
            return false;
        };
        // While CPG's state exchange runs, the lockspace views lag the ring:
        // after a merge the decision may be quorate with the other side's
        // nodes back while our view does not show them yet, and each side
        // would find itself the lowest id (found by the nemesis: both sides
        // of a three-way partition fenced each other after the heal).
        if self.cpg.is_syncing() {
            return false;
        }
        let me = self.totem.node_id();
        let mut wanted: BTreeMap<NodeId, u64> = BTreeMap::new();
        {
            let mut d = shared.service.lock();
            let d = &mut *d;
            // Not settled, and no fencing since yet (one that fenced a member
            // waits for it to go, not for another).
            let owed = |n: NodeId, fl: &Failure| {
                !self.dlm_settled(n, fl) && !f.is_fenced_since(n, fl.incarnation)
            };
            for e in d.lockspaces.values() {
                let current: BTreeSet<NodeId> = e.members.iter().copied().collect();
                // A member again that restarted (another CPG incarnation, or
                // unknown): fresh, it knows nothing of the failure.
                let fresh = |m: NodeId| {
                    e.failed.get(&m).is_some_and(|fl| {
                        owed(m, fl) && (fl.cpg.is_none() || fl.cpg != self.cpg.node_incarnation(m))
                    })
                };
                for (n, fl) in e.failed.iter().filter(|(n, fl)| owed(**n, fl)) {
                    let actor = fl
                        .before
                        .iter()
                        .copied()
                        .filter(|m| current.contains(m) && !fresh(*m))
                        .min();
                    if actor == Some(me) {
                        let i = wanted.entry(*n).or_insert(0);
                        *i = (*i).max(fl.incarnation);
                    }
                }
            }
            d.fence_asks.retain(|n, _| wanted.contains_key(n));
        }
        if wanted.is_empty() || !f.may_fence() {
            return false;
        }
        let max_attempts = f.config().max_attempts;
        let action = f.config().fencing_action;
        let names = self.fence_names();
        let mut asked = false;
        for (node, incarnation) in wanted {
            // A loss the decision still owns is requested by its coordinator.
            if matches!(
                f_state(self, node),
                Some(phalanx_fence::core::NodeFenceState::Unclean { .. })
            ) {
                continue;
            }
            let name = names
                .get(&node)
                .cloned()
                .unwrap_or_else(|| format!("node{node}"));
            // One operation at a time against a node: a pending one (ours, the
            // decision's, a peer's) answers for this failure too.
            if self.fencer().is_some_and(|fe| {
                fe.history().entries().any(|h| {
                    h.state == phalanx_fence::core::OpState::Pending
                        && matches!(
                            h.action,
                            phalanx_fence::Action::Off | phalanx_fence::Action::Reboot
                        )
                        && h.target.eq_ignore_ascii_case(&name)
                })
            }) {
                continue;
            }
            let call = {
                let mut d = shared.service.lock();
                let ask = d.fence_asks.entry(node).or_insert(FenceAsk {
                    incarnation,
                    attempts: 0,
                });
                if ask.incarnation < incarnation {
                    *ask = FenceAsk {
                        incarnation,
                        attempts: 0,
                    };
                }
                if ask.attempts >= max_attempts {
                    continue;
                }
                let call = d.next_fence_call;
                d.next_fence_call += 1;
                call
            };
            let req = phalanx_fence::core::FenceRequest::new(&name, action, DLM_FENCE_CLIENT, call);
            let accepted = self
                .on_fence_command(super::FenceCommand::Fence(req))
                .is_ok();
            record!(
                self.logger,
                self.now.as_nanos(),
                me,
                Notice,
                "dlm",
                "node {} owes fencing since its failure (incarnation {}): requesting {} ({})",
                node,
                incarnation,
                action.as_str(),
                if accepted { "accepted" } else { "refused" }
            );
            if accepted {
                let mut d = shared.service.lock();
                d.stats.fence_requests += 1;
                if let Some(ask) = d.fence_asks.get_mut(&node) {
                    ask.attempts += 1;
                }
                asked = true;
            }
        }
        asked
    }

    /// Joins the groups of lockspaces whose join waited, once no node is in doubt.
    fn dlm_join_when_settled(&mut self, shared: &Arc<DlmShared>) {
        let d = shared.service.lock();
        let waiting: Vec<(LockspaceId, Vec<u8>)> = d
            .lockspaces
            .iter()
            .filter(|(_, e)| !e.cpg_joined)
            .map(|(id, e)| (*id, e.group.clone()))
            .collect();
        if waiting.is_empty() || self.dlm_join_in_doubt(&d) {
            return;
        }
        drop(d);
        for (id, group) in waiting {
            // A refused join (no room now) is tried again on the next pass.
            if self.cpg.join(DLM_CPG_LOCAL, &group).is_ok()
                && let Some(e) = shared.service.lock().lockspaces.get_mut(&id)
            {
                e.cpg_joined = true;
            }
        }
    }

    /// Feeds `Fenced` for failed nodes the decision now reports fenced, then moves
    /// the core's outputs out.
    pub(super) fn drain_dlm(&mut self) {
        let Some(shared) = self.dlm.clone() else {
            return;
        };
        self.dlm_join_when_settled(&shared);
        if self.dlm_fence_owed(&shared) {
            self.pump_fence();
        }
        let d = shared.service.lock();
        // Per node, settled in every lockspace: the core's `Fenced` is for
        // every lockspace at once.
        let mut waiting: BTreeMap<NodeId, bool> = BTreeMap::new();
        for (n, fl) in d.lockspaces.values().flat_map(|e| e.failed.iter()) {
            let settled = self.dlm_settled(*n, fl);
            let all = waiting.entry(*n).or_insert(true);
            *all = *all && settled;
        }
        drop(d);
        let fenced: Vec<NodeId> = waiting
            .into_iter()
            .filter(|(_, settled)| *settled)
            .map(|(n, _)| n)
            .collect();
        let me = self.totem.node_id();
        // A piece and its frame header must fit CPG's largest message.
        let max_piece = MAX_DLM_FRAGMENT.min(
            self.cpg
                .config()
                .max_message_size
                .saturating_sub(RING_HEADER),
        );
        let now = self.now.as_nanos();
        let mut d = shared.service.lock();
        let d = &mut *d;
        let mut events = Vec::new();
        for n in fenced {
            for e in d.lockspaces.values_mut() {
                e.failed.remove(&n);
            }
            let _ = d.node.handle_input(cluster::Input::Fenced { node: n });
            events.push(DlmEvent::Fenced { node: n });
        }
        while let Some(o) = d.node.poll_output() {
            let name = |d: &DlmService, ls: LockspaceId| -> Arc<[u8]> {
                d.lockspaces
                    .get(&ls)
                    .map_or_else(|| Arc::from(&b""[..]), |e| e.name.clone())
            };
            match o {
                cluster::Output::Send { to, bytes } if to == me => {
                    let _ = d
                        .node
                        .handle_input(cluster::Input::Message { from: me, bytes });
                }
                cluster::Output::Send { to, bytes } => {
                    let Some(ls) = lockspace_of(&bytes) else {
                        continue;
                    };
                    if d.setup.direct && is_lock_traffic(&bytes) {
                        d.send_direct(now, to, ls, &bytes);
                        continue;
                    }
                    for payload in frames(to, d.stamp(ls), &bytes, max_piece) {
                        d.sends.push_back((ls, payload));
                    }
                }
                cluster::Output::Completion {
                    lockspace,
                    completion,
                } => events.push(DlmEvent::Completion {
                    lockspace: name(d, lockspace),
                    completion,
                }),
                cluster::Output::Blocking {
                    lockspace,
                    lock,
                    owner,
                    mode,
                } => events.push(DlmEvent::Blocking {
                    lockspace: name(d, lockspace),
                    lock,
                    owner,
                    mode,
                }),
                cluster::Output::Refused {
                    lockspace,
                    lock,
                    owner,
                    errno,
                } => events.push(DlmEvent::Refused {
                    lockspace: name(d, lockspace),
                    lock,
                    owner,
                    errno,
                }),
                cluster::Output::AwaitFencing { node } => {
                    events.push(DlmEvent::AwaitFencing { node })
                }
                cluster::Output::Recovered { lockspace, epoch } => {
                    events.push(DlmEvent::Recovered {
                        lockspace: name(d, lockspace),
                        epoch,
                    })
                }
                _ => {}
            }
        }
        // Counted while the service is locked: a fast-path call sees them.
        shared.unrouted.fetch_add(events.len(), Ordering::Relaxed);
        for ev in events {
            self.emit(Output::Event(StackEvent::Dlm(ev)));
        }
    }

    /// Moves the core's messages into CPG while it has room; true if any moved.
    pub(super) fn pump_dlm_sends(&mut self) -> bool {
        let Some(shared) = self.dlm.clone() else {
            return false;
        };
        let mut d = shared.service.lock();
        let d = &mut *d;
        let mut any = false;
        while let Some((ls, payload)) = d.sends.front() {
            let Some(e) = d.lockspaces.get(ls) else {
                d.stats.send_dropped += 1;
                d.sends.pop_front();
                continue;
            };
            match self
                .cpg
                .mcast(DLM_CPG_LOCAL, &e.group, Guarantee::Agreed, payload)
            {
                Ok(()) => {
                    d.stats.sent += 1;
                    any = true;
                }
                Err(phalanx_cpg::CpgError::TryAgain) => break,
                // Left the group meanwhile: nobody there expects it.
                Err(_) => d.stats.send_dropped += 1,
            }
            d.sends.pop_front();
        }
        any
    }

    pub(super) fn dlm_deadline(&self) -> Option<Time> {
        self.dlm.as_ref()?.service.lock().deadline()
    }

    pub(super) fn dlm_timeout(&mut self, now: Time) {
        let Some(s) = &self.dlm else { return };
        let mut d = s.service.lock();
        let d = &mut *d;
        let peers: Vec<NodeId> = d
            .channels
            .iter()
            .filter(|(_, c)| c.deadline().is_some_and(|t| t <= now.as_nanos()))
            .map(|(n, _)| *n)
            .collect();
        for peer in peers {
            if let Some(c) = d.channels.get_mut(&peer) {
                c.tick(now.as_nanos());
            }
            d.flush_backlog(now.as_nanos(), peer);
        }
        if d.toss_at.is_none_or(|t| t > now) {
            return;
        }
        let ids: Vec<LockspaceId> = d
            .lockspaces
            .iter()
            .filter(|(_, e)| e.member)
            .map(|(id, _)| *id)
            .collect();
        for lockspace in ids {
            let _ = d.node.handle_input(cluster::Input::TossIdle { lockspace });
        }
        d.toss_at = (!d.lockspaces.is_empty()).then(|| now + d.setup.toss_interval);
    }

    pub(super) fn dlm_is_quiescent(&self) -> bool {
        self.dlm.as_ref().is_none_or(|s| {
            let d = s.service.lock();
            d.sends.is_empty() && d.backlog_len == 0
        })
    }
}

/// The fence decision's state of `node`, if the Stack runs fencing.
fn f_state(s: &Stack, node: NodeId) -> Option<phalanx_fence::core::NodeFenceState> {
    s.fence_decision().map(|f| f.state(node))
}

#[cfg(test)]
#[path = "tests/dlm_records.rs"]
mod records_tests;
