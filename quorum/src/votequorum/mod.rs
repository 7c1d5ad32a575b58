//! The votequorum core: state exchange at every configuration, the quorum decision,
//! runtime changes replicated in total order.
//!
//! Every decision is taken while handling a totem-ordered input (a configuration
//! change or a delivered message) and only from state every member of the partition
//! holds identically (the announcements of the current ring), so all members of a
//! partition compute the same result at the same point of the total order. The only
//! local input that is not ordered — the last-man-standing timer — is turned into a
//! message ([`Message::LmsExpired`]) and acted on at delivery.

pub mod calc;
mod requests;
mod types;

pub use types::{ClusterInfo, Event, NodeState, NodeStatus, Stats};

use crate::NodeId;
use crate::config::QuorumConfig;
use crate::error::{ConfigError, DecodeError};
use crate::limits::MAX_VOTES;
use crate::wire::{self, Message, NodeInfo, Reconfigure, flags};
use calc::Decision;
use phalanx_totem::{ConfigChange, ConfigKind, RingId, Time};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

#[derive(Clone, Copy, Debug)]
pub(crate) struct Record {
    votes: u32,
    expected: u32,
    state: NodeState,
    flags: u16,
}

/// The votequorum core of one node.
#[derive(Debug)]
pub struct Votequorum {
    cfg: QuorumConfig,
    configured: BTreeSet<NodeId>,
    nodes: BTreeMap<NodeId, Record>,
    ring: Option<RingId>,
    members: BTreeSet<NodeId>,
    /// Members of the current regular configuration (not changed by transitional ones).
    regular_members: Vec<NodeId>,
    /// Members of the last regular configuration before the current one.
    prev_members: Vec<NodeId>,
    /// Union of the members' previous configurations (for the tie-breaker list).
    previous: BTreeSet<NodeId>,
    /// Members whose announcement for this ring has not been delivered yet.
    pending: BTreeSet<NodeId>,
    synced: bool,
    /// Between a transitional configuration and the next regular one.
    in_transition: bool,
    expected: u32,
    tracked: u32,
    wfa_waiting: bool,
    quorate: bool,
    quorum: u32,
    leaving: bool,
    device_cast: BTreeSet<NodeId>,
    local_device_cast: bool,
    lms_deadline: Option<Time>,
    lms_armed_ring: Option<RingId>,
    last_notified: Option<(bool, RingId, Vec<NodeStatus>)>,
    /// Expected votes as last reported by [`Event::ExpectedVotesChanged`] (or at
    /// start): every path that changes them — raise, set, LMS, downscale, a merge
    /// — is reported against this.
    notified_expected: u32,
    send: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
    stats: Stats,
}

impl Votequorum {
    /// Creates the core; refuses invalid options and forbidden combinations.
    pub fn new(cfg: QuorumConfig) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let expected = cfg.initial_expected_votes();
        let mut nodes = BTreeMap::new();
        for n in &cfg.nodes {
            nodes.insert(
                n.node,
                Record {
                    votes: n.votes,
                    expected,
                    state: NodeState::Dead,
                    flags: 0,
                },
            );
        }
        nodes.entry(cfg.local).or_insert(Record {
            votes: 1,
            expected,
            state: NodeState::Dead,
            flags: 0,
        });
        let configured = cfg.nodes.iter().map(|n| n.node).collect();
        let wfa = cfg.wait_for_all();
        let mut me = Votequorum {
            configured,
            nodes,
            ring: None,
            members: BTreeSet::new(),
            regular_members: Vec::new(),
            prev_members: Vec::new(),
            previous: BTreeSet::new(),
            pending: BTreeSet::new(),
            synced: false,
            in_transition: false,
            expected,
            tracked: expected,
            wfa_waiting: wfa,
            quorate: false,
            quorum: calc::quorum(expected, 0, cfg.two_node),
            leaving: false,
            device_cast: BTreeSet::new(),
            local_device_cast: false,
            lms_deadline: None,
            lms_armed_ring: None,
            last_notified: None,
            notified_expected: expected,
            send: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            cfg,
        };
        if me.cfg.tracking() && me.cfg.tracked_expected_votes != Some(expected) {
            me.events.push_back(Event::PersistExpectedVotes(expected));
        }
        Ok(me)
    }

    // ----- inputs -------------------------------------------------------------

    /// A totem configuration change (transitional or regular), in delivery order.
    /// (`now` is taken for symmetry with the other inputs; the timers are armed when
    /// the state exchange completes, at a delivered message.)
    pub fn handle_config(&mut self, now: Time, cc: &ConfigChange) {
        let _ = now;
        match cc.kind {
            ConfigKind::Transitional => self.transitional(cc),
            ConfigKind::Regular => self.regular(cc),
        }
    }

    fn transitional(&mut self, cc: &ConfigChange) {
        self.in_transition = true;
        let was_synced = self.synced;
        let old: BTreeSet<NodeId> = self.members.clone();
        self.set_members(&cc.members);
        // The device vote was granted for the old ring only.
        self.device_cast.clear();
        self.lms_deadline = None;
        if was_synced {
            // Transitional members shared the old ring's replicated state, so they
            // can decide at once; the old ring's members are the "previous" set.
            self.previous = old;
            self.recompute(false);
        } else {
            // No agreed state to decide from: the safe answer is "not quorate".
            // Reported even when that was the answer already: the members
            // changed, and a service that tells processes apart by their
            // leaves (the fence decision) must see this one — a process that
            // restarted faster than the token timeout is a leave here and a
            // join at the regular configuration, and nothing else shows it.
            self.quorate = false;
            self.notify();
        }
        self.synced = false;
    }

    fn regular(&mut self, cc: &ConfigChange) {
        if self.ring == Some(cc.ring) {
            return;
        }
        // Allow-downscale: a node that left cleanly lowers our expected votes.
        if self.cfg.allow_downscale {
            for n in &cc.left {
                if let Some(r) = self.nodes.get(n) {
                    if r.flags & flags::LEAVING != 0 {
                        self.expected = self.expected.saturating_sub(r.votes).max(1);
                    }
                }
            }
        }
        self.in_transition = false;
        self.prev_members = std::mem::take(&mut self.regular_members);
        self.regular_members = cc.members.clone();
        self.ring = Some(cc.ring);
        self.set_members(&cc.members);
        self.device_cast.clear();
        self.lms_deadline = None;
        self.pending = self.members.clone();
        self.previous.clear();
        self.synced = false;
        let me = self.cfg.local;
        let mine = self.nodes.get(&me).copied();
        let mut f = 0;
        if self.wfa_waiting {
            f |= flags::WFA_WAITING;
        }
        if self.quorate {
            f |= flags::QUORATE;
        }
        if self.leaving {
            f |= flags::LEAVING;
        }
        if self.cfg.device.is_some() {
            f |= flags::DEVICE;
        }
        let info = NodeInfo {
            ring: cc.ring,
            votes: mine.map_or(1, |r| r.votes),
            expected: self.expected,
            flags: f,
            prev_members: self.prev_members.clone(),
        };
        // Announcements bypass the request bound: they are one per ring.
        self.send.push_back(wire::encode(&Message::NodeInfo(info)));
    }

    fn set_members(&mut self, members: &[NodeId]) {
        self.members = members.iter().copied().collect();
        let expected = self.expected;
        for m in &self.members {
            self.nodes.entry(*m).or_insert(Record {
                votes: 1,
                expected,
                state: NodeState::Dead,
                flags: 0,
            });
        }
        for (id, r) in self.nodes.iter_mut() {
            if self.members.contains(id) {
                if r.state == NodeState::Dead {
                    // Back (or new): a clean leave announced earlier is over.
                    r.state = NodeState::Member;
                    r.flags &= !flags::LEAVING;
                }
            } else {
                // Keep the LEAVING flag: the regular configuration that follows
                // the transitional one uses it for allow_downscale.
                r.state = NodeState::Dead;
            }
        }
    }

    /// A votequorum message delivered by totem in agreed order. Bad bytes are counted
    /// and returned as an error; no state changes then.
    pub fn handle_message(
        &mut self,
        now: Time,
        sender: NodeId,
        payload: &[u8],
    ) -> Result<(), DecodeError> {
        let m = match wire::decode(payload) {
            Ok(m) => m,
            Err(e) => {
                self.stats.decode_errors += 1;
                return Err(e);
            }
        };
        if !self.members.contains(&sender) {
            self.stats.stale += 1;
            return Ok(());
        }
        match m {
            Message::NodeInfo(info) => self.node_info(now, sender, info),
            // An old ring's runtime change delivered after the transitional
            // configuration would be applied on each side of a split (two vote
            // raises could then make both halves quorate): drop it; the requester
            // sees it did not take effect (`info()`) and may retry on the new ring.
            Message::Reconfigure(_) if self.in_transition => self.stats.stale += 1,
            Message::Reconfigure(r) => self.reconfigure(r),
            Message::DeviceVote { ring, cast } => {
                // After a transitional configuration the old ring's messages are still
                // delivered, to each side of a split: a grant for the old ring must
                // not count on either side.
                if Some(ring) != self.ring || self.in_transition {
                    // A vote for an older ring is counted by nobody any more.
                    if !cast && sender == self.cfg.local {
                        self.events.push_back(Event::DeviceReleased { ring });
                    }
                    self.stats.stale += 1;
                    return Ok(());
                }
                if cast {
                    self.device_cast.insert(sender);
                } else {
                    self.device_cast.remove(&sender);
                    if sender == self.cfg.local {
                        self.events.push_back(Event::DeviceReleased { ring });
                    }
                }
                if self.synced {
                    self.recompute(false);
                }
            }
            Message::LmsExpired { ring } => {
                if Some(ring) != self.ring || !self.synced || self.in_transition {
                    self.stats.stale += 1;
                    return Ok(());
                }
                if self.cfg.last_man_standing && self.quorate {
                    let floor = if self.cfg.auto_tie_breaker { 1 } else { 2 };
                    let v = self.decision().total();
                    let lowered = v.max(floor);
                    if lowered < self.expected {
                        self.expected = lowered;
                        self.recompute(true);
                    }
                }
            }
            Message::Leaving => {
                if let Some(r) = self.nodes.get_mut(&sender) {
                    r.state = NodeState::Leaving;
                    r.flags |= flags::LEAVING;
                }
            }
        }
        Ok(())
    }

    fn node_info(&mut self, now: Time, sender: NodeId, info: NodeInfo) {
        if Some(info.ring) != self.ring || !self.pending.contains(&sender) {
            self.stats.stale += 1;
            return;
        }
        if info.votes > MAX_VOTES || info.expected > MAX_VOTES {
            self.stats.rejected += 1;
        }
        if let Some(r) = self.nodes.get_mut(&sender) {
            r.votes = info.votes.min(MAX_VOTES);
            r.expected = info.expected.min(MAX_VOTES);
            r.flags = info.flags;
            if info.flags & flags::LEAVING != 0 {
                r.state = NodeState::Leaving;
            }
        }
        self.previous.extend(info.prev_members.iter().copied());
        self.pending.remove(&sender);
        if self.pending.is_empty() {
            self.sync_complete(now);
        }
    }

    fn sync_complete(&mut self, now: Time) {
        self.synced = true;
        let mut e = 0;
        let mut all_waiting = true;
        for m in &self.members {
            if let Some(r) = self.nodes.get(m) {
                e = e.max(r.expected);
                all_waiting &= r.flags & flags::WFA_WAITING != 0;
            }
        }
        // Expected votes never fall through a merge: the highest announcement wins.
        // (A downscale by one side is undone by a member that did not see the leave.)
        self.expected = e.max(1);
        // Waiting for all is a partition-wide state, decided from the announcements:
        // a member that has already been quorate in a complete cluster vouches for
        // the partition, so it waits only if every member still waits.
        self.wfa_waiting = self.cfg.wait_for_all() && all_waiting;
        self.recompute(true);
        self.arm_lms(now);
    }

    fn reconfigure(&mut self, r: Reconfigure) {
        match r {
            Reconfigure::SetExpected(n) => {
                let v = self.decision().total();
                if n == 0 || n > MAX_VOTES || n < v {
                    self.stats.rejected += 1;
                    return;
                }
                self.expected = n;
            }
            Reconfigure::SetVotes { node, votes } => {
                if votes > MAX_VOTES || (self.cfg.last_man_standing && votes > 1) {
                    self.stats.rejected += 1;
                    return;
                }
                let Some(rec) = self.nodes.get_mut(&node) else {
                    self.stats.rejected += 1;
                    return;
                };
                rec.votes = votes;
            }
            Reconfigure::CancelWaitForAll => self.wfa_waiting = false,
        }
        self.recompute(true);
    }

    /// The last-man-standing window, if armed.
    pub fn poll_timeout(&self) -> Option<Time> {
        self.lms_deadline
    }

    /// Fires due timers.
    pub fn handle_timeout(&mut self, now: Time) {
        if let (Some(d), Some(ring)) = (self.lms_deadline, self.ring) {
            if now >= d {
                self.lms_deadline = None;
                self.send
                    .push_back(wire::encode(&Message::LmsExpired { ring }));
            }
        }
    }

    fn arm_lms(&mut self, now: Time) {
        if !self.cfg.last_man_standing || !self.quorate || self.lms_armed_ring == self.ring {
            return;
        }
        let d = self.decision();
        if d.node_votes < self.expected {
            self.lms_deadline = Some(now + self.cfg.last_man_standing_window);
            self.lms_armed_ring = self.ring;
        }
    }

    // ----- the decision -------------------------------------------------------

    fn decision(&self) -> Decision {
        let node_votes: u32 = self
            .members
            .iter()
            .filter_map(|m| self.nodes.get(m))
            .map(|r| r.votes)
            .fold(0u32, |a, b| a.saturating_add(b));
        let device_votes = if self.device_cast.is_empty() {
            0
        } else {
            self.cfg.device_votes()
        };
        let atb_holds = self.cfg.auto_tie_breaker
            && calc::holds_tie_breaker(
                &self.cfg.auto_tie_breaker_node,
                &self.configured,
                &self.members,
                &self.previous,
            );
        Decision {
            expected: self.expected,
            node_votes,
            device_votes,
            two_node: self.cfg.two_node,
            wfa_waiting: self.wfa_waiting,
            atb_holds,
        }
    }

    /// Recomputes quorum. `explicit` marks the paths allowed to lower expected votes
    /// (set expected, LMS, downscale); every other path can only raise them, which is
    /// what keeps quorum from falling.
    fn recompute(&mut self, explicit: bool) {
        let mut d = self.decision();
        if d.total() > self.expected {
            self.expected = d.total();
            d.expected = self.expected;
        }
        let (q, quorate) = d.outcome();
        self.quorum = q;
        if quorate && self.wfa_waiting {
            self.wfa_waiting = false;
        }
        self.quorate = quorate;
        if self.synced || !self.members.contains(&self.cfg.local) {
            let members: Vec<NodeId> = self.members.iter().copied().collect();
            for m in members {
                if let Some(r) = self.nodes.get_mut(&m) {
                    r.expected = self.expected;
                }
            }
        }
        if self.expected != self.notified_expected {
            self.notified_expected = self.expected;
            self.events
                .push_back(Event::ExpectedVotesChanged(self.expected));
        }
        if self.cfg.tracking() && self.expected != self.tracked {
            // Tracking never lowers, except through the explicit paths.
            if self.expected > self.tracked || explicit {
                self.tracked = self.expected;
                self.events
                    .push_back(Event::PersistExpectedVotes(self.tracked));
            }
        }
        self.notify();
    }

    fn notify(&mut self) {
        let Some(ring) = self.ring else { return };
        let nodes = self.member_status();
        let cur = (self.quorate, ring, nodes.clone());
        let changed = match &self.last_notified {
            None => true,
            Some((q, r, n)) => *q != self.quorate || *r != ring || *n != nodes,
        };
        if changed {
            self.last_notified = Some(cur);
            self.events.push_back(Event::QuorumChanged {
                quorate: self.quorate,
                ring,
                nodes,
            });
        }
    }

    fn member_status(&self) -> Vec<NodeStatus> {
        self.members
            .iter()
            .filter_map(|m| self.nodes.get(m).map(|r| status(*m, r)))
            .collect()
    }
}

pub(crate) fn status(node: NodeId, r: &Record) -> NodeStatus {
    NodeStatus {
        node,
        state: r.state,
        votes: r.votes,
        expected: r.expected,
    }
}
