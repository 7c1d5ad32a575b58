//! The Totem single-ring protocol state machine.
//!
//! Split by concern: this file holds the node's state, the public API and the
//! timers; `token.rs` one token visit; `membership.rs` GATHER and COMMIT;
//! `recovery.rs` RECOVERY and the EVS delivery sequence on entering OPERATIONAL.

mod membership;
mod recovery;
mod token;

use self::token as token_limits;

use crate::NodeId;
use crate::config::Config;
use crate::error::{ConfigError, SendError};
use crate::frame::{Assembled, Reassembly, SendQueue, chunks};
use crate::stats::Stats;
use crate::store::{SeqStore, Stored};
use crate::time::Time;
use crate::wire::{self, Guarantee, Message, RingId, Token};
use bytes::Bytes;
use phalanx_logsys::{Logger, record};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

/// Protocol state (Totem SRP paper, §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Collecting join messages to agree on a new membership.
    Gather,
    /// Installing the agreed membership with the commit token.
    Commit,
    /// Exchanging old-ring messages on the new ring.
    Recovery,
    /// Ordering messages on an installed ring.
    Operational,
    /// Left the cluster; the node does nothing more.
    Left,
}

/// Where a datagram must go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// One node.
    Node(NodeId),
    /// Every member of the current ring except this node.
    Members(Arc<[NodeId]>),
    /// Every configured node except this node.
    All,
}

/// A datagram for the driver to send.
#[derive(Clone, Debug)]
pub struct Transmit {
    /// Where to send it.
    pub dest: Destination,
    /// The encoded datagram.
    pub data: Vec<u8>,
}

/// Kind of configuration change (extended virtual synchrony).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigKind {
    /// The members of the old configuration that move to the new ring together;
    /// delivered between the old configuration's messages and the new ring.
    Transitional,
    /// A newly installed ring.
    Regular,
}

/// A configuration change delivered to the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigChange {
    /// Transitional or regular.
    pub kind: ConfigKind,
    /// The new ring (for a transitional configuration too).
    pub ring: RingId,
    /// The regular ring being left, if any.
    pub previous: Option<RingId>,
    /// Members of this configuration, ascending.
    pub members: Vec<NodeId>,
    /// Members of the previous regular configuration not in this one.
    pub left: Vec<NodeId>,
    /// Members of this configuration not in the previous regular one.
    pub joined: Vec<NodeId>,
}

/// An application message delivered in total order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The node that sent it.
    pub sender: NodeId,
    /// The guarantee it was sent with.
    pub guarantee: Guarantee,
    /// The message: a slice of the frame it came in (cloning and slicing are a
    /// reference count, no copy); a message that was split over several frames is
    /// its own buffer. Holding it keeps its frame's memory (at most `max_frame`
    /// bytes) alive.
    pub data: Bytes,
}

/// Something the application or driver must act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A message, in agreed (or safe) order.
    Deliver(Delivery),
    /// A configuration change.
    Config(ConfigChange),
    /// Persist this ring sequence number (in the state directory) before sending
    /// further datagrams, and pass it to [`Totem::new`] after a restart so that the
    /// node never reuses a ring id.
    PersistRingSeq(u64),
}

/// State of one ring: the installed one, or the one being recovered onto.
#[derive(Clone, Debug, Default)]
pub(crate) struct RingState {
    pub(crate) id: RingId,
    /// Members, ascending.
    pub(crate) members: Vec<NodeId>,
    /// Members other than this node, for multicast.
    pub(crate) others: Arc<[NodeId]>,
    pub(crate) store: SeqStore,
    /// All received up to (contiguous).
    pub(crate) my_aru: u64,
    pub(crate) high_delivered: u64,
    /// Every member holds every message up to here.
    pub(crate) safe_upto: u64,
}

impl RingState {
    pub(crate) fn new(id: RingId, members: Vec<NodeId>, me: NodeId) -> Self {
        let others: Arc<[NodeId]> = members.iter().copied().filter(|n| *n != me).collect();
        RingState {
            id,
            members,
            others,
            ..Default::default()
        }
    }

    pub(crate) fn next_after(&self, me: NodeId) -> NodeId {
        let i = self.members.iter().position(|n| *n == me).unwrap_or(0);
        self.members[(i + 1) % self.members.len()]
    }
}

/// Per-visit bookkeeping of the token on the active ring.
#[derive(Clone, Debug, Default)]
pub(crate) struct TokenState {
    /// `token_seq` of the last token processed.
    pub(crate) last_token_seq: Option<u64>,
    /// Token aru on arrival at the previous visit.
    pub(crate) prev_arrival_aru: Option<u64>,
    /// Token seq when this node forwarded it last (messages up to it had a whole
    /// rotation to arrive, so missing ones are requested).
    pub(crate) seq_at_last_forward: u64,
    /// Frames this node sent on its previous visit (flow control).
    pub(crate) sent_last_visit: u32,
    /// Backlog this node reported on its previous visit.
    pub(crate) backlog_last_visit: u32,
    /// Consecutive visits with no new message on the ring.
    pub(crate) idle_visits: u32,
    /// Consecutive visits where this node held the aru back at the same value.
    pub(crate) aru_stuck_visits: u32,
    /// Sequence numbers this node retransmitted on its previous visit (at most
    /// `max_messages`): one asked for again was lost on the way from this node,
    /// so the request stays on the token for the next holders to serve as well.
    pub(crate) served_last_visit: Vec<u64>,
    /// The last token sent and to whom, for retransmission.
    pub(crate) last_sent: Option<(NodeId, Vec<u8>)>,
    /// A token held by the representative, or passed to itself on a one-node ring.
    pub(crate) held: Option<Token>,
    /// A hold-cancel was sent for the current idle period.
    pub(crate) hold_cancel_sent: bool,
    /// The `held` token is kept by a send hold (not the representative's idle
    /// hold): what the visit has sent so far.
    pub(crate) send_hold: Option<SendHold>,
}

/// A visit kept open for more of this node's own messages ([`Config::send_hold`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct SendHold {
    /// The hold ends then (the visit's arrival plus `send_hold`).
    pub(crate) until: Time,
    /// Frames (new ones and retransmissions) this visit has sent.
    pub(crate) sent: u32,
    /// Most frames the visit may send.
    pub(crate) cap: u32,
}

/// State kept while in RECOVERY.
#[derive(Clone, Debug, Default)]
pub(crate) struct Recovery {
    /// Members of the new ring that come from this node's old ring.
    pub(crate) transitional: Vec<NodeId>,
    /// Highest old-ring sequence any transitional member delivered: all of them
    /// deliver up to here in the old configuration.
    pub(crate) delivered_in_old: u64,
    /// Old-ring sequence numbers still to re-send on the new ring.
    pub(crate) to_resend: VecDeque<u64>,
    /// The representative has originated the new ring's first token.
    pub(crate) token_originated: bool,
    /// Consecutive visits with no member re-sending.
    pub(crate) quiet_visits: u32,
    /// All recovered messages have sequence numbers up to here.
    pub(crate) install_seq: Option<u64>,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Timers {
    pub(crate) token_loss: Option<Time>,
    pub(crate) token_retransmit: Option<Time>,
    pub(crate) hold: Option<Time>,
    pub(crate) join: Option<Time>,
    pub(crate) consensus: Option<Time>,
    pub(crate) merge_detect: Option<Time>,
}

impl Timers {
    fn next(&self) -> Option<Time> {
        [
            self.token_loss,
            self.token_retransmit,
            self.hold,
            self.join,
            self.consensus,
            self.merge_detect,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

/// One totem node: a sans-IO state machine.
///
/// Drive it with [`handle_datagram`](Self::handle_datagram),
/// [`handle_timeout`](Self::handle_timeout) and [`mcast`](Self::mcast); after each
/// call drain [`poll_transmit`](Self::poll_transmit) and
/// [`poll_event`](Self::poll_event), and call `handle_timeout` at
/// [`poll_timeout`](Self::poll_timeout).
///
/// A clone is an independent copy of the node's whole state (only the logger is
/// shared): a snapshot that a test or a fuzz target can run on from the same
/// point many times without forming the ring again.
#[derive(Clone)]
pub struct Totem {
    pub(crate) cfg: Config,
    pub(crate) me: NodeId,
    pub(crate) log: Logger,
    pub(crate) now: Time,
    pub(crate) state: State,
    pub(crate) stats: Stats,
    /// Highest ring sequence this node has known (persisted).
    pub(crate) ring_seq_known: u64,
    /// The installed ring (the old ring while a membership change runs).
    pub(crate) ring: RingState,
    /// Whether any ring was ever installed (the first has no transitional
    /// configuration).
    pub(crate) installed_any: bool,
    /// The ring being recovered onto.
    pub(crate) new_ring: Option<RingState>,
    pub(crate) tok: TokenState,
    pub(crate) recovery: Option<Recovery>,
    // Membership (GATHER / COMMIT).
    pub(crate) procs: BTreeSet<NodeId>,
    pub(crate) failed: BTreeSet<NodeId>,
    pub(crate) consensus: BTreeSet<NodeId>,
    pub(crate) commit: Option<wire::Commit>,
    /// Highest join ring sequence seen from each node.
    pub(crate) join_marks: BTreeMap<NodeId, u64>,
    /// Highest ring sequence of a commit token this node accepted, per
    /// representative: a re-sent copy of a commit token this node already filled
    /// (and perhaps abandoned since) is not accepted again.
    pub(crate) commits_accepted: BTreeMap<NodeId, u64>,
    /// For each node we installed a ring without, the ring we left it behind in:
    /// its joins from that time are stale (see `on_join`).
    pub(crate) left_behind: BTreeMap<NodeId, RingId>,
    pub(crate) send_queue: SendQueue,
    pub(crate) reassembly: Reassembly,
    pub(crate) events: VecDeque<Event>,
    pub(crate) transmits: VecDeque<Transmit>,
    pub(crate) timers: Timers,
    /// Reused buffer for packing frames.
    pub(crate) frame_buf: Vec<u8>,
}

impl std::fmt::Debug for Totem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Totem")
            .field("me", &self.me)
            .field("state", &self.state)
            .field("ring", &self.ring.id)
            .field("members", &self.ring.members)
            .finish_non_exhaustive()
    }
}

impl Totem {
    /// Creates a node. `persisted_ring_seq` is the value of the last
    /// [`Event::PersistRingSeq`] this node saw before a restart (None on first
    /// start). The node starts in GATHER looking for the others.
    pub fn new(
        cfg: Config,
        persisted_ring_seq: Option<u64>,
        now: Time,
        log: Logger,
    ) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let me = cfg.node_id;
        // Seq 0 is never used by a real ring, so (me, 0) names this node's
        // pre-membership state uniquely: nobody else can share it as old ring.
        let ring = RingState::new(RingId { rep: me, seq: 0 }, vec![me], me);
        let mut t = Totem {
            me,
            log,
            now,
            state: State::Gather,
            stats: Stats::default(),
            ring_seq_known: persisted_ring_seq.unwrap_or(0),
            ring,
            installed_any: false,
            new_ring: None,
            tok: TokenState::default(),
            recovery: None,
            procs: BTreeSet::from([me]),
            failed: BTreeSet::new(),
            consensus: BTreeSet::new(),
            commit: None,
            join_marks: BTreeMap::new(),
            commits_accepted: BTreeMap::new(),
            left_behind: BTreeMap::new(),
            send_queue: SendQueue::default(),
            reassembly: Reassembly::default(),
            events: VecDeque::new(),
            transmits: VecDeque::new(),
            timers: Timers::default(),
            frame_buf: Vec::new(),
            cfg,
        };
        record!(
            t.log,
            now.as_nanos(),
            me,
            Notice,
            "totem",
            "node {} starting, ring seq {}",
            me,
            t.ring_seq_known
        );
        t.enter_gather("startup");
        Ok(t)
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.me
    }

    /// Current protocol state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The installed ring.
    pub fn ring_id(&self) -> RingId {
        self.ring.id
    }

    /// Members of the installed ring, ascending. Before the first ring is
    /// installed this is just this node.
    pub fn members(&self) -> &[NodeId] {
        &self.ring.members
    }

    /// Whether the node is OPERATIONAL on an installed ring.
    pub fn is_operational(&self) -> bool {
        self.state == State::Operational
    }

    /// Internal token bookkeeping, for debugging.
    #[doc(hidden)]
    pub fn debug_token_state(&self) -> String {
        format!(
            "tok={:?} ring_aru={} hd={} safe={} high={} queue={} held={:?}",
            (
                self.tok.last_token_seq,
                self.tok.prev_arrival_aru,
                self.tok.seq_at_last_forward,
                self.tok.idle_visits,
                self.tok.aru_stuck_visits
            ),
            self.ring.my_aru,
            self.ring.high_delivered,
            self.ring.safe_upto,
            self.ring.store.high(),
            self.send_queue.queue.len(),
            self.tok.held
        )
    }

    /// Whether the node is OPERATIONAL with nothing queued to send and every
    /// message it received delivered.
    pub fn is_quiescent(&self) -> bool {
        self.state == State::Operational
            && self.send_queue.is_empty()
            && self.ring.high_delivered >= self.ring.store.high()
            && self.ring.my_aru >= self.ring.store.high()
    }

    /// Whether this node keeps the token for more of its own messages right now
    /// ([`Config::send_hold`]): the hold ends at [`poll_timeout`](Self::poll_timeout)
    /// or at the next [`mcast`](Self::mcast). A driver that wants the hold's
    /// short deadline kept to the microsecond polls for work until it rather than
    /// sleeping on a millisecond timer.
    pub fn holds_token_for_sending(&self) -> bool {
        self.tok.send_hold.is_some() && self.tok.held.is_some()
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Bytes that can still be queued by [`mcast`](Self::mcast) right now.
    pub fn send_queue_room(&self) -> usize {
        self.cfg
            .send_queue_bytes
            .saturating_sub(self.send_queue.bytes)
    }

    /// Queues a message for ordered delivery to every member (this node included).
    ///
    /// Returns at once: `Ok` when queued, [`SendError::TryAgain`] when the send
    /// queue is full. Messages queued during a membership change are sent on the
    /// next ring.
    pub fn mcast(&mut self, now: Time, guarantee: Guarantee, data: &[u8]) -> Result<(), SendError> {
        self.admit(now, data.len())?;
        self.enqueue(guarantee, Bytes::copy_from_slice(data));
        Ok(())
    }

    /// [`mcast`](Self::mcast) for a message the caller already owns (a `Vec`
    /// or a [`Bytes`], e.g. a slice of a larger buffer): no copy. On an error
    /// the message is dropped (and nothing was queued).
    pub fn mcast_owned(
        &mut self,
        now: Time,
        guarantee: Guarantee,
        data: impl Into<Bytes>,
    ) -> Result<(), SendError> {
        let data = data.into();
        self.admit(now, data.len())?;
        self.enqueue(guarantee, data);
        Ok(())
    }

    /// Whether a message of `len` bytes may be queued now.
    fn admit(&mut self, now: Time, len: usize) -> Result<(), SendError> {
        self.now = now;
        if self.state == State::Left {
            return Err(SendError::Left);
        }
        if len > self.cfg.max_message_size {
            return Err(SendError::TooLarge {
                size: len,
                max: self.cfg.max_message_size,
            });
        }
        if self.send_queue.bytes + len > self.cfg.send_queue_bytes {
            self.stats.send_try_again += 1;
            return Err(SendError::TryAgain);
        }
        Ok(())
    }

    fn enqueue(&mut self, guarantee: Guarantee, data: Bytes) {
        self.send_queue.push(data, guarantee);
        self.stats.sent += 1;
        if self.state == State::Operational {
            self.cancel_hold();
        }
    }

    /// Leaves the cluster cleanly: the others form a new ring without waiting for
    /// timeouts. Unsent messages are discarded. The node does nothing afterwards.
    pub fn leave(&mut self, now: Time) {
        self.now = now;
        if self.state == State::Left {
            return;
        }
        record!(
            self.log,
            now.as_nanos(),
            self.me,
            Notice,
            "totem",
            "leaving ring {}",
            self.ring.id.seq
        );
        let msg = Message::Leave { ring: self.ring.id };
        // Twice, so one lost datagram does not cost the others a token timeout.
        self.send(Destination::All, &msg);
        self.send(Destination::All, &msg);
        self.state = State::Left;
        self.timers = Timers::default();
        self.tok.held = None;
    }

    /// Feeds one received datagram. Malformed or foreign datagrams are counted
    /// and dropped.
    pub fn handle_datagram(&mut self, now: Time, data: &[u8]) {
        self.now = now;
        if self.state == State::Left {
            return;
        }
        let dg = match wire::decode(data) {
            Ok(d) => d,
            Err(_) => {
                self.stats.rx_malformed += 1;
                return;
            }
        };
        let from = dg.sender;
        if from == self.me || !self.cfg.nodes.contains(&from) {
            self.stats.rx_unknown_sender += 1;
            return;
        }
        match dg.message {
            Message::Token(t) => self.on_token(t),
            Message::Mcast(m) => self.on_mcast(from, m),
            Message::Join(j) => self.on_join(from, j),
            Message::Commit(c) => self.on_commit(c),
            Message::MergeDetect { ring } => self.on_foreign_ring(from, ring),
            Message::HoldCancel { ring } => {
                if self.state == State::Operational && ring == self.ring.id {
                    self.cancel_hold();
                }
            }
            Message::Leave { ring } => self.on_leave(from, ring),
        }
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Time) {
        self.now = now;
        if self.state == State::Left {
            return;
        }
        let due = |t: Option<Time>| t.is_some_and(|t| t <= now);
        if due(self.timers.hold) {
            self.timers.hold = None;
            self.release_held_token();
        }
        if due(self.timers.token_retransmit) {
            self.timers.token_retransmit = None;
            if let Some((dest, bytes)) = self.tok.last_sent.clone() {
                self.stats.token_retransmits += 1;
                self.transmits.push_back(Transmit {
                    dest: Destination::Node(dest),
                    data: bytes,
                });
                self.timers.token_retransmit = Some(now + self.cfg.token_retransmit);
            }
        }
        if due(self.timers.token_loss) && self.paused_past(now) {
            // This process was not scheduled for over half a token timeout (a
            // stalled driver, a starved VM): the token may be waiting unread and
            // the others may never have noticed. Give it one more token timeout
            // instead of declaring everyone else gone (Corosync's pause detection).
            self.stats.pauses_detected += 1;
            record!(
                self.log,
                now.as_nanos(),
                self.me,
                Warn,
                "totem",
                "process pause detected ({} ms late): token timer re-armed",
                now.saturating_since(self.timers.token_loss.unwrap_or(now))
                    .as_millis() as u64
            );
            self.timers.token_loss = Some(now + self.cfg.token_timeout);
        }
        if due(self.timers.token_loss) {
            self.timers.token_loss = None;
            self.stats.token_losses += 1;
            let reason = match self.state {
                State::Operational => "token lost in OPERATIONAL",
                State::Commit => "commit token lost",
                State::Recovery => "token lost in RECOVERY",
                _ => "token lost",
            };
            self.enter_gather(reason);
        }
        if due(self.timers.join) {
            self.timers.join = Some(now + self.cfg.join_interval);
            self.send_join();
        }
        if due(self.timers.consensus) {
            self.timers.consensus = None;
            self.consensus_timeout();
        }
        if due(self.timers.merge_detect) {
            self.timers.merge_detect = None;
            if self.state == State::Operational && self.ring.id.rep == self.me {
                self.stats.merge_detects_tx += 1;
                let msg = Message::MergeDetect { ring: self.ring.id };
                self.send(Destination::All, &msg);
                self.timers.merge_detect = Some(now + self.cfg.merge_interval);
            }
        }
    }

    /// Whether this call comes so long after the token timer was due (more than
    /// half a token timeout) that the process itself must have been paused: the
    /// driver calls as soon as a timer is due, so a late call is the caller's
    /// stall, not the ring's silence.
    fn paused_past(&self, now: Time) -> bool {
        self.timers
            .token_loss
            .is_some_and(|t| now.saturating_since(t) > self.cfg.token_timeout / 2)
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the application or driver.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Time> {
        self.timers.next()
    }

    // ---- helpers shared by the submodules ----

    pub(crate) fn send(&mut self, dest: Destination, msg: &Message) {
        let mut data = Vec::with_capacity(64);
        wire::encode(self.me, msg, &mut data);
        self.transmits.push_back(Transmit { dest, data });
    }

    /// The ring tokens and data currently travel on (read-only).
    pub(crate) fn active(&self) -> &RingState {
        match self.state {
            State::Recovery => self.new_ring.as_ref().unwrap_or(&self.ring),
            _ => &self.ring,
        }
    }

    /// The ring tokens and data currently travel on.
    pub(crate) fn active_ring(&mut self) -> &mut RingState {
        match self.state {
            State::Recovery => self.new_ring.as_mut().unwrap_or(&mut self.ring),
            _ => &mut self.ring,
        }
    }

    fn on_mcast(&mut self, from: NodeId, m: wire::Mcast) {
        let active = match self.state {
            State::Operational => Some(self.ring.id),
            State::Recovery => self.new_ring.as_ref().map(|r| r.id),
            _ => None,
        };
        if Some(m.ring) == active {
            self.receive_on_active(from, m);
        } else if m.ring == self.ring.id {
            // A late old-ring frame during a membership change: worth keeping for
            // recovery only while this node has not yet reported its old-ring state
            // (aru, highest sequence) in a commit token — that is, in GATHER. The
            // recovery plan is fixed from the filled entries: when they show every
            // transitional member complete nobody re-sends anything, and the others
            // never learn of a frame taken after filling. Such a frame would be held
            // (and delivered in the transitional configuration) by this node alone:
            // found by the simulator in RECOVERY (seed 236) and in COMMIT (seeds
            // 17060, 22087), each time a paused node kept its ring and sent on it
            // after resuming.
            let window = token_limits::MAX_OUTSTANDING + u64::from(self.cfg.window_size);
            if self.state == State::Gather
                && m.seq != 0
                && m.seq <= self.ring.my_aru + 2 * window
                && self.ring.store.insert(
                    m.seq,
                    Stored {
                        sender: from,
                        guarantee: m.guarantee,
                        encapsulated: None,
                        payload: Bytes::from(m.payload),
                    },
                )
            {
                self.stats.mcast_rx += 1;
            }
        } else if self.state == State::Operational {
            self.on_foreign_ring(from, m.ring);
        }
    }

    fn receive_on_active(&mut self, from: NodeId, m: wire::Mcast) {
        let recovering = self.state == State::Recovery;
        let old_ring = self.ring.id;
        // Evidence that the token moved on — no need to re-send it — is a message
        // numbered after the token this node forwarded: only a later holder can
        // have sent it. An older one (sent before our visit and still in flight, a
        // retransmission) proves nothing: cancelling on it lost the token whenever
        // the one datagram carrying it was dropped (found by the simulator with a
        // link cut under load: the ring re-formed after a token timeout).
        if m.seq > self.tok.seq_at_last_forward {
            self.timers.token_retransmit = None;
        }
        let encap = m.encapsulated.clone();
        let stored = Stored {
            sender: from,
            guarantee: m.guarantee,
            encapsulated: m.encapsulated,
            payload: Bytes::from(m.payload),
        };
        let payload_for_old = if recovering && encap.as_ref().is_some_and(|e| e.ring == old_ring) {
            Some(stored.payload.clone())
        } else {
            None
        };
        let window = token_limits::MAX_OUTSTANDING + u64::from(self.cfg.window_size);
        let ring = self.active_ring();
        // Sequence numbers far beyond anything flow control lets the ring send
        // cannot be honest, and storing them would grow the store without bound.
        if m.seq == 0 || m.seq > ring.my_aru + 2 * window {
            self.stats.mcast_invalid += 1;
            return;
        }
        if !ring.store.insert(m.seq, stored) {
            self.stats.mcast_duplicates += 1;
            return;
        }
        ring.my_aru = ring.store.contiguous_from(ring.my_aru);
        self.stats.mcast_rx += 1;
        if let (Some(e), Some(payload)) = (encap, payload_for_old) {
            self.ring.store.insert(
                e.seq,
                Stored {
                    sender: e.sender,
                    guarantee: e.guarantee,
                    encapsulated: None,
                    payload,
                },
            );
        }
        if self.state == State::Operational {
            self.deliver_ready();
        }
    }

    /// Delivers every message of the installed ring that is ready: contiguous, and
    /// for safe messages held by every member.
    pub(crate) fn deliver_ready(&mut self) {
        loop {
            let next = self.ring.high_delivered + 1;
            let Some(f) = self.ring.store.get(next) else {
                break;
            };
            if f.encapsulated.is_none()
                && f.guarantee == Guarantee::Safe
                && next > self.ring.safe_upto
            {
                break;
            }
            self.ring.high_delivered = next;
            if f.encapsulated.is_some() {
                // Recovery traffic of this ring: already consumed in RECOVERY.
                continue;
            }
            // The frame stays borrowed from the store (it is kept for
            // retransmission); delivery touches only disjoint fields.
            let sink = DeliverySink {
                reassembly: &mut self.reassembly,
                events: &mut self.events,
                stats: &mut self.stats,
                max_message: self.cfg.max_message_size,
            };
            sink.deliver(f.sender, f.guarantee, &f.payload);
        }
    }

    /// Hands a frame's messages to the application, reassembling fragments.
    pub(crate) fn deliver_frame(&mut self, sender: NodeId, guarantee: Guarantee, payload: &Bytes) {
        DeliverySink {
            reassembly: &mut self.reassembly,
            events: &mut self.events,
            stats: &mut self.stats,
            max_message: self.cfg.max_message_size,
        }
        .deliver(sender, guarantee, payload);
    }

    fn on_foreign_ring(&mut self, from: NodeId, ring: RingId) {
        if self.state != State::Operational || ring == self.ring.id {
            return;
        }
        // A member's datagram from an older ring is just late; anything else means
        // another ring is alive (or a member moved on without us): merge.
        let member = self.ring.members.contains(&from);
        if !member || ring.seq > self.ring.id.seq {
            // The sender is alive and wants to merge: propose it from the first
            // join on (Corosync does the same with the sender of a merge probe).
            self.enter_gather_with("foreign ring detected", &[from]);
        }
    }

    fn on_leave(&mut self, from: NodeId, ring: RingId) {
        let relevant = match self.state {
            State::Operational => ring == self.ring.id && self.ring.members.contains(&from),
            State::Gather | State::Commit | State::Recovery => self.procs.contains(&from),
            State::Left => false,
        };
        if !relevant {
            return;
        }
        record!(
            self.log,
            self.now.as_nanos(),
            self.me,
            Info,
            "totem",
            "node {} leaves",
            from
        );
        if self.state == State::Operational {
            self.enter_gather("member left");
        } else if self.state != State::Gather {
            self.enter_gather("member left during membership change");
        }
        if self.failed.insert(from) {
            self.consensus.clear();
            self.consensus.insert(self.me);
            self.send_join();
        }
        self.check_consensus(false);
    }
}

/// The parts of a node that delivering a frame changes, borrowed apart from the
/// ring store that holds the frame.
struct DeliverySink<'a> {
    reassembly: &'a mut Reassembly,
    events: &'a mut VecDeque<Event>,
    stats: &'a mut Stats,
    max_message: usize,
}

impl DeliverySink<'_> {
    fn deliver(self, sender: NodeId, guarantee: Guarantee, payload: &Bytes) {
        let Ok(parts) = chunks(payload) else {
            self.stats.frames_malformed += 1;
            return;
        };
        for c in parts {
            match self.reassembly.push(sender, payload, &c, self.max_message) {
                Assembled::Message(data) => {
                    self.stats.delivered += 1;
                    if guarantee == Guarantee::Safe {
                        self.stats.delivered_safe += 1;
                    }
                    self.events.push_back(Event::Deliver(Delivery {
                        sender,
                        guarantee,
                        data,
                    }));
                }
                Assembled::Partial => {}
                Assembled::Orphan => self.stats.fragments_dropped += 1,
            }
        }
    }
}
