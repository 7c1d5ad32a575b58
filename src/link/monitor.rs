//! The link state machine: per peer and per link, ping on a timer, declare the link
//! up after `pong_count` timely pongs and down after `ping_timeout` without one,
//! and choose the links each datagram to a peer goes on.
//!
//! Sans-IO: time is an input, pings and pongs to send are polled, nothing here
//! touches a socket or a clock, and the peers are kept in a `BTreeMap` so a run is a
//! pure function of its inputs.

use super::stats::{LinkState, LinkStats, PeerLinkStatus};
use super::wire::{Kind, LinkMsg, LinkWireError};
use crate::config::LinkMode;
use phalanx_totem::{NodeId, Time};
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;
use thiserror::Error;

/// Ping timing of one link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkTiming {
    /// A ping to every peer this often.
    pub ping_interval: Duration,
    /// An up link goes down after this long without a pong.
    pub ping_timeout: Duration,
    /// Timely pongs in a row (no gap longer than `ping_timeout`) for a down link
    /// to come up.
    pub pong_count: u32,
}

impl LinkTiming {
    /// The defaults for a token timeout: `pong_count` 2, interval
    /// token / (4 × pong_count), timeout token / (2 × pong_count) — 37.5 ms and
    /// 75 ms at the default 300 ms token. Half of knet's rule (token / (2 × pong_count)
    /// and token / pong_count): a dead link is found 37.5–75 ms after it fails,
    /// before totem's first or second token retransmission (token / 4.2 ≈ 71 ms,
    /// ≈ 143 ms), so the retransmitted token already takes another link and totem
    /// never sees the failure.
    pub fn for_token(token: Duration) -> Self {
        Self::with(token, None, None, 2)
    }

    /// The timing for a token timeout with the given overrides (the config keys
    /// `knet_ping_interval`, `knet_ping_timeout`, `knet_pong_count`).
    pub fn with(
        token: Duration,
        interval: Option<Duration>,
        timeout: Option<Duration>,
        pong_count: u32,
    ) -> Self {
        let pc = pong_count.max(1);
        LinkTiming {
            ping_interval: interval.unwrap_or(token / (4 * pc)),
            ping_timeout: timeout.unwrap_or(token / (2 * pc)),
            pong_count: pc,
        }
    }

    fn check(&self) -> Result<(), LinkConfigError> {
        if self.ping_interval.is_zero() || self.ping_timeout <= self.ping_interval {
            return Err(LinkConfigError::Timing);
        }
        Ok(())
    }
}

/// One link as the monitor sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkSpec {
    /// Link number (0..=7), as in `ringN_addr`.
    pub number: u8,
    /// Passive mode prefers the up link with the highest priority.
    pub priority: u32,
    /// Ping timing.
    pub timing: LinkTiming,
}

/// A configuration the monitor refuses.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkConfigError {
    /// No link, more than 8, a number above 7, or the same number twice.
    #[error("links must be 1 to 8 distinct link numbers 0..=7")]
    Links,
    /// Ping interval zero or not below the ping timeout.
    #[error("ping interval must be non-zero and below the ping timeout")]
    Timing,
}

/// Why a link datagram from a peer was dropped (counted, never a panic).
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkRxError {
    /// Malformed.
    #[error("malformed link datagram: {0}")]
    Wire(#[from] LinkWireError),
    /// Sender, target or link number does not match where it came from.
    #[error("link datagram misaddressed")]
    Misaddressed,
    /// A pong for no ping we sent, or one already counted.
    #[error("unexpected pong")]
    UnexpectedPong,
    /// Too many pongs waiting to be sent.
    #[error("link send queue full")]
    QueueFull,
}

/// A link changed state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkEvent {
    /// The peer.
    pub peer: NodeId,
    /// The link number.
    pub link: u8,
    /// The new state.
    pub state: LinkState,
    /// When.
    pub at: Time,
}

/// A ping or pong to send: `msg` on link slot `slot` to `peer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControlTransmit {
    /// Destination node.
    pub peer: NodeId,
    /// Index of the link in the monitor's link list.
    pub slot: usize,
    /// The datagram.
    pub msg: LinkMsg,
}

#[derive(Clone, Debug)]
struct PeerLink {
    state: LinkState,
    since: Time,
    /// Timely pongs since the link was last down.
    pongs_in_row: u32,
    last_pong: Option<Time>,
    next_ping: Time,
    /// Sequence number of the last ping sent.
    ping_seq: u64,
    /// Sequence number of the last pong counted.
    pong_seq: u64,
    rtt: Option<Duration>,
    stats: LinkStats,
}

/// Link liveness and link choice for every peer (see the module docs).
#[derive(Debug)]
pub struct LinkMonitor {
    me: NodeId,
    mode: LinkMode,
    links: Vec<LinkSpec>,
    peers: BTreeMap<NodeId, Vec<PeerLink>>,
    /// Per peer: the slots to send on (bit i = slot i), recomputed on state change.
    routes: BTreeMap<NodeId, u8>,
    /// Bumped whenever a peer's `routes` entry changes.
    generation: u64,
    rr: BTreeMap<NodeId, usize>,
    outbox: VecDeque<ControlTransmit>,
    outbox_cap: usize,
    events: VecDeque<LinkEvent>,
    all: u8,
    /// When `handle_timeout` last ran, to notice that we ourselves were not
    /// running (a stalled process must not blame its links).
    last_tick: Option<Time>,
    /// No link is declared down before this (set after such a stall).
    grace_until: Time,
    stalls: u64,
}

impl LinkMonitor {
    /// A monitor for node `me` with the given peers (`me` is skipped) and links,
    /// every link down, first pings due at `now`.
    pub fn new(
        me: NodeId,
        peers: &[NodeId],
        links: Vec<LinkSpec>,
        mode: LinkMode,
        now: Time,
    ) -> Result<Self, LinkConfigError> {
        if links.is_empty() || links.len() > 8 {
            return Err(LinkConfigError::Links);
        }
        for (i, l) in links.iter().enumerate() {
            if l.number > 7 || links[..i].iter().any(|o| o.number == l.number) {
                return Err(LinkConfigError::Links);
            }
            l.timing.check()?;
        }
        let fresh = PeerLink {
            state: LinkState::Down,
            since: now,
            pongs_in_row: 0,
            last_pong: None,
            next_ping: now,
            ping_seq: 0,
            pong_seq: 0,
            rtt: None,
            stats: LinkStats::default(),
        };
        let all = if links.len() == 8 {
            u8::MAX
        } else {
            (1u8 << links.len()) - 1
        };
        let peers: BTreeMap<NodeId, Vec<PeerLink>> = peers
            .iter()
            .filter(|p| **p != me)
            .map(|p| (*p, vec![fresh.clone(); links.len()]))
            .collect();
        let n = peers.len();
        let routes = peers.keys().map(|p| (*p, all)).collect();
        Ok(LinkMonitor {
            me,
            mode,
            outbox_cap: 4 * (n + 1) * links.len() + 64,
            links,
            peers,
            routes,
            generation: 0,
            rr: BTreeMap::new(),
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            all,
            last_tick: None,
            grace_until: now,
            stalls: 0,
        })
    }

    /// The links, in slot order.
    pub fn links(&self) -> &[LinkSpec] {
        &self.links
    }

    /// The slots (bit i = slot i) a datagram to `peer` goes on now: passive, the up
    /// link with the highest priority (ties: lowest link number); active, every up
    /// link; rr, the next up link in turn. With no link up, every link (best
    /// effort: the peer may be starting, or totem will decide it is gone).
    pub fn route(&mut self, peer: NodeId) -> u8 {
        let Some(&mask) = self.routes.get(&peer) else {
            return 0;
        };
        if self.mode != LinkMode::Rr || mask == self.all && !self.any_up(peer) {
            return mask;
        }
        let turn = self.rr.entry(peer).or_insert(0);
        let n = self.links.len();
        for k in 0..n {
            let slot = (*turn + k) % n;
            if mask & (1 << slot) != 0 {
                *turn = (slot + 1) % n;
                return 1 << slot;
            }
        }
        mask
    }

    fn any_up(&self, peer: NodeId) -> bool {
        self.peers
            .get(&peer)
            .is_some_and(|v| v.iter().any(|l| l.state == LinkState::Up))
    }

    fn recompute(&mut self, peer: NodeId) {
        let Some(v) = self.peers.get(&peer) else {
            return;
        };
        let up = |i: usize| v[i].state == LinkState::Up;
        let mut mask = 0u8;
        match self.mode {
            LinkMode::Passive => {
                let mut best: Option<usize> = None;
                for i in (0..v.len()).filter(|i| up(*i)) {
                    let better = match best {
                        None => true,
                        Some(b) => {
                            let (l, bl) = (&self.links[i], &self.links[b]);
                            l.priority > bl.priority
                                || l.priority == bl.priority && l.number < bl.number
                        }
                    };
                    if better {
                        best = Some(i);
                    }
                }
                if let Some(b) = best {
                    mask = 1 << b;
                }
            }
            LinkMode::Active | LinkMode::Rr => {
                for i in (0..v.len()).filter(|i| up(*i)) {
                    mask |= 1 << i;
                }
            }
        }
        let mask = if mask == 0 { self.all } else { mask };
        if self.routes.insert(peer, mask) != Some(mask) {
            self.generation += 1;
        }
    }

    /// Changes whenever [`route_fixed`](Self::route_fixed) may answer differently.
    pub fn route_generation(&self) -> u64 {
        self.generation
    }

    /// The slots a datagram to `peer` goes on, as [`route`](Self::route) but
    /// without taking a turn: in rr mode, the first slot of the turn's choices
    /// (`None` for an unknown peer).
    pub fn route_fixed(&self, peer: NodeId) -> Option<u8> {
        let mask = *self.routes.get(&peer)?;
        if self.mode == LinkMode::Rr && mask != 0 {
            return Some(mask & mask.wrapping_neg());
        }
        Some(mask)
    }

    /// Counts a datagram sent to `peer` on `slot` (totem traffic; pings and pongs
    /// are counted by the monitor itself).
    pub fn count_tx(&mut self, peer: NodeId, slot: usize, bytes: usize) {
        if let Some(l) = self.peers.get_mut(&peer).and_then(|v| v.get_mut(slot)) {
            l.stats.tx_packets += 1;
            l.stats.tx_bytes += bytes as u64;
        }
    }

    /// Counts a datagram received from `peer` on `slot` (any kind).
    pub fn count_rx(&mut self, peer: NodeId, slot: usize, bytes: usize) {
        if let Some(l) = self.peers.get_mut(&peer).and_then(|v| v.get_mut(slot)) {
            l.stats.rx_packets += 1;
            l.stats.rx_bytes += bytes as u64;
        }
    }

    /// A link datagram (see [`super::wire`]) came from `peer` (the owner of the
    /// source address on that link, authenticated when crypto is on) on `slot`.
    pub fn handle_datagram(
        &mut self,
        now: Time,
        peer: NodeId,
        slot: usize,
        datagram: &[u8],
    ) -> Result<(), LinkRxError> {
        let me = self.me;
        let Some(number) = self.links.get(slot).map(|l| l.number) else {
            return Err(LinkRxError::Misaddressed);
        };
        let pong_count = self.links[slot].timing.pong_count;
        let timeout = self.links[slot].timing.ping_timeout;
        let Some(l) = self.peers.get_mut(&peer).and_then(|v| v.get_mut(slot)) else {
            return Err(LinkRxError::Misaddressed);
        };
        let msg = match LinkMsg::decode(datagram) {
            Ok(m) => m,
            Err(e) => {
                l.stats.rx_invalid += 1;
                return Err(e.into());
            }
        };
        if msg.sender != peer || msg.target != me || msg.link != number {
            l.stats.rx_invalid += 1;
            return Err(LinkRxError::Misaddressed);
        }
        match msg.kind {
            Kind::Ping => {
                l.stats.pings_rx += 1;
                if self.outbox.len() >= self.outbox_cap {
                    l.stats.tx_dropped += 1;
                    return Err(LinkRxError::QueueFull);
                }
                l.stats.pongs_tx += 1;
                self.outbox.push_back(ControlTransmit {
                    peer,
                    slot,
                    msg: LinkMsg {
                        kind: Kind::Pong,
                        sender: me,
                        target: peer,
                        ..msg
                    },
                });
                Ok(())
            }
            Kind::Pong => {
                if msg.seq == 0
                    || msg.seq > l.ping_seq
                    || msg.seq <= l.pong_seq
                    || msg.stamp > now.as_nanos()
                {
                    l.stats.pongs_unexpected += 1;
                    return Err(LinkRxError::UnexpectedPong);
                }
                l.stats.pongs_rx += 1;
                l.pong_seq = msg.seq;
                l.rtt = Some(now.saturating_since(Time::from_nanos(msg.stamp)));
                // Hysteresis: only pongs without a gap longer than the timeout count
                // towards bringing a down link up.
                if l.last_pong
                    .is_some_and(|t| now.saturating_since(t) > timeout)
                {
                    l.pongs_in_row = 0;
                }
                l.last_pong = Some(now);
                l.pongs_in_row = l.pongs_in_row.saturating_add(1);
                if l.state == LinkState::Down && l.pongs_in_row >= pong_count {
                    l.state = LinkState::Up;
                    l.since = now;
                    l.stats.ups += 1;
                    self.events.push_back(LinkEvent {
                        peer,
                        link: number,
                        state: LinkState::Up,
                        at: now,
                    });
                    self.recompute(peer);
                }
                Ok(())
            }
        }
    }

    /// Sends the pings that are due and takes down the links whose pongs are late.
    ///
    /// If this call comes more than two ping intervals after the previous one, this
    /// node was not running (CPU starvation, SIGSTOP, a full event channel): the
    /// pongs it has not read yet are not the links' fault, so no link is declared
    /// down for one more ping timeout ([`stalls`](Self::stalls) counts these).
    pub fn handle_timeout(&mut self, now: Time) {
        let me = self.me;
        let max_interval = self
            .links
            .iter()
            .map(|l| l.timing.ping_interval)
            .max()
            .unwrap_or_default();
        if self
            .last_tick
            .is_some_and(|t| now.saturating_since(t) > 2 * max_interval)
        {
            let grace = self.links.iter().map(|l| l.timing.ping_timeout).max();
            self.grace_until = now + grace.unwrap_or_default();
            self.stalls += 1;
        }
        self.last_tick = Some(now);
        let judge = now >= self.grace_until;
        let mut changed = Vec::new();
        for (peer, v) in self.peers.iter_mut() {
            for (slot, l) in v.iter_mut().enumerate() {
                let spec = &self.links[slot];
                if judge
                    && l.state == LinkState::Up
                    && l.last_pong
                        .is_none_or(|t| now.saturating_since(t) >= spec.timing.ping_timeout)
                {
                    l.state = LinkState::Down;
                    l.since = now;
                    l.pongs_in_row = 0;
                    l.stats.downs += 1;
                    self.events.push_back(LinkEvent {
                        peer: *peer,
                        link: spec.number,
                        state: LinkState::Down,
                        at: now,
                    });
                    changed.push(*peer);
                }
                if now >= l.next_ping {
                    // No catch-up after a stall: the next ping is an interval away.
                    l.next_ping = now + spec.timing.ping_interval;
                    if self.outbox.len() >= self.outbox_cap {
                        l.stats.tx_dropped += 1;
                        continue;
                    }
                    l.ping_seq += 1;
                    l.stats.pings_tx += 1;
                    self.outbox.push_back(ControlTransmit {
                        peer: *peer,
                        slot,
                        msg: LinkMsg {
                            kind: Kind::Ping,
                            link: spec.number,
                            sender: me,
                            target: *peer,
                            seq: l.ping_seq,
                            stamp: now.as_nanos(),
                        },
                    });
                }
            }
        }
        for p in changed {
            self.recompute(p);
        }
    }

    /// The next time [`handle_timeout`](Self::handle_timeout) has work: a ping due
    /// or an up link's pong deadline.
    pub fn poll_timeout(&self) -> Option<Time> {
        let mut next: Option<Time> = None;
        for v in self.peers.values() {
            for (slot, l) in v.iter().enumerate() {
                let mut t = l.next_ping;
                if l.state == LinkState::Up
                    && let Some(p) = l.last_pong
                {
                    let due = (p + self.links[slot].timing.ping_timeout).max(self.grace_until);
                    t = t.min(due);
                }
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
        next
    }

    /// Times this node noticed it had not been running for more than two ping
    /// intervals (and held off judging its links for one ping timeout).
    pub fn stalls(&self) -> u64 {
        self.stalls
    }

    /// The next ping or pong to send.
    pub fn poll_transmit(&mut self) -> Option<ControlTransmit> {
        self.outbox.pop_front()
    }

    /// The next link state change.
    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        self.events.pop_front()
    }

    /// State, round-trip time and counters of every (peer, link), ordered by peer
    /// then link number.
    pub fn status(&self) -> Vec<PeerLinkStatus> {
        let mut out = Vec::new();
        self.status_into(&mut out);
        out
    }

    /// [`status`](Self::status) into a reused vector.
    pub fn status_into(&self, out: &mut Vec<PeerLinkStatus>) {
        out.clear();
        for (peer, v) in &self.peers {
            for (slot, l) in v.iter().enumerate() {
                out.push(PeerLinkStatus {
                    peer: *peer,
                    link: self.links[slot].number,
                    state: l.state,
                    since: l.since,
                    rtt: l.rtt,
                    stats: l.stats.clone(),
                });
            }
        }
    }

    /// The state of `peer`'s link number `link`, if both exist.
    pub fn state(&self, peer: NodeId, link: u8) -> Option<LinkState> {
        let slot = self.links.iter().position(|l| l.number == link)?;
        self.peers.get(&peer).map(|v| v[slot].state)
    }
}
