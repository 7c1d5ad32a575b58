//! The node-side quorum-device client core: membership and heuristics in, frames
//! out, the vote (cast or not, for which ring) out.
//!
//! ```text
//! connected(now, nonce) | disconnected(now) | handle_bytes(now, &bytes)
//! set_membership(now, ring, members) | set_heuristics(now, result) | release_done(now)
//! handle_timeout(now)
//! drain: poll_transmit() -> write;  poll_event() -> ClientEvent::Vote -> Votequorum::set_device_vote
//! sleep until poll_timeout()
//! ```
//!
//! The client holds the vote for one ring, until the lease measured from when it sent
//! the acknowledged status; it accepts an ack only for its latest status, so what it
//! reports as held is always the truth the arbitrator needs.

use super::algo::Heuristics;
use super::auth::{self, LEN, Role, Session};
use super::proto::{self, Decision, Deframer, ErrorCode, Msg, Status};
use crate::NodeId;
use crate::config::{Algorithm, TieBreaker};
use phalanx_totem::{RingId, Time};
use std::collections::VecDeque;
use std::time::Duration;

/// Client settings.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Cluster name (the arbitrator selects the key by it).
    pub cluster: Vec<u8>,
    /// This node.
    pub node: NodeId,
    /// The cluster key bytes.
    pub key: Vec<u8>,
    /// Algorithm.
    pub algorithm: Algorithm,
    /// Tie-breaker.
    pub tie_breaker: TieBreaker,
    /// Configured nodes, ascending.
    pub config_nodes: Vec<NodeId>,
    /// When true, on a nack the client stops casting at once but reports the vote
    /// released only after [`QdeviceClient::release_done`] — the Stack calls it once
    /// its votequorum has delivered the withdrawal, so the whole partition has stopped
    /// counting the vote before the arbitrator can move it. When false the release is
    /// reported at once (standalone use).
    pub confirm_release: bool,
}

/// What the client tells the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientEvent {
    /// The device casts (`true`) or stops casting its vote for `ring`.
    Vote {
        /// The ring the vote is for.
        ring: RingId,
        /// Cast or not.
        cast: bool,
    },
    /// Authenticated with the arbitrator.
    Connected,
    /// The arbitrator refused us; the driver should close and retry later.
    Refused(ErrorCode),
    /// The arbitrator failed to authenticate or spoke nonsense; close.
    ProtocolError,
}

enum Link {
    Down,
    AwaitChallenge { nonce: [u8; LEN] },
    AwaitWelcome { session: Session },
    Active { session: Session },
}

/// Most recent statuses remembered for their send times.
const SENT_MEMORY: usize = 16;

/// The client core.
pub struct QdeviceClient {
    cfg: ClientConfig,
    link: Link,
    rx: Deframer,
    ring: Option<RingId>,
    members: Vec<NodeId>,
    heuristics: Heuristics,
    seq: u64,
    sent: VecDeque<(u64, Time, RingId)>,
    holding: Option<(RingId, Time)>,
    release_pending: bool,
    cast: Option<RingId>,
    lease: Duration,
    heartbeat: Duration,
    next_heartbeat: Option<Time>,
    out: VecDeque<Vec<u8>>,
    events: VecDeque<ClientEvent>,
}

impl QdeviceClient {
    /// A client, not yet connected.
    pub fn new(cfg: ClientConfig) -> Self {
        QdeviceClient {
            cfg,
            link: Link::Down,
            rx: Deframer::default(),
            ring: None,
            members: Vec::new(),
            heuristics: Heuristics::Undefined,
            seq: 0,
            sent: VecDeque::new(),
            holding: None,
            release_pending: false,
            cast: None,
            lease: Duration::ZERO,
            heartbeat: Duration::from_secs(1),
            next_heartbeat: None,
            out: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// A TCP connection to the arbitrator is up; `nonce` is 32 fresh random bytes.
    pub fn connected(&mut self, _now: Time, nonce: [u8; LEN]) {
        self.rx = Deframer::default();
        self.sent.clear();
        self.link = Link::AwaitChallenge { nonce };
        let hello = Msg::Hello {
            cluster: self.cfg.cluster.clone(),
            node: self.cfg.node,
            nonce,
        };
        self.out
            .push_back(proto::frame(&proto::encode_frame_body(&hello), None));
    }

    /// The connection is gone. A held vote stays until its lease ends.
    pub fn disconnected(&mut self, _now: Time) {
        self.link = Link::Down;
        self.sent.clear();
        self.next_heartbeat = None;
        self.out.clear();
    }

    /// Whether the link is authenticated.
    pub fn is_connected(&self) -> bool {
        matches!(self.link, Link::Active { .. })
    }

    /// Bytes from the arbitrator.
    pub fn handle_bytes(&mut self, now: Time, data: &[u8]) {
        self.rx.push(data);
        loop {
            match self.rx.next_frame() {
                None => return,
                Some(Err(_)) => return self.protocol_error(now),
                Some(Ok(f)) => {
                    if !self.frame(now, &f) {
                        return self.protocol_error(now);
                    }
                }
            }
        }
    }

    fn protocol_error(&mut self, now: Time) {
        self.events.push_back(ClientEvent::ProtocolError);
        self.disconnected(now);
    }

    fn frame(&mut self, now: Time, f: &[u8]) -> bool {
        let msg = match &mut self.link {
            Link::Down => return true,
            Link::AwaitChallenge { .. } => match proto::decode_frame_body(f) {
                Ok(m) => m,
                Err(_) => return false,
            },
            Link::AwaitWelcome { session } | Link::Active { session } => {
                let Ok((b, t)) = proto::split_tag(f) else {
                    return false;
                };
                if !session.open(b, &t) {
                    // Unauthenticated plain error frames are not trusted either.
                    return false;
                }
                match proto::decode_frame_body(b) {
                    Ok(m) => m,
                    Err(_) => return false,
                }
            }
        };
        let link = std::mem::replace(&mut self.link, Link::Down);
        match (link, msg) {
            (Link::AwaitChallenge { nonce: cn }, Msg::Challenge { nonce: sn, proof }) => {
                let c = &self.cfg;
                let want = auth::proof(&c.key, Role::Server, &c.cluster, c.node, &cn, &sn);
                if !auth::verify(&want, &proof) {
                    return false;
                }
                let mine = auth::proof(&c.key, Role::Client, &c.cluster, c.node, &cn, &sn);
                let session = Session::new(&c.key, Role::Client, &c.cluster, c.node, &cn, &sn);
                self.out.push_back(proto::frame(
                    &proto::encode_frame_body(&Msg::Auth { proof: mine }),
                    None,
                ));
                self.link = Link::AwaitWelcome { session };
            }
            (Link::AwaitChallenge { .. }, Msg::Error(code)) => {
                // Before authentication an error cannot be verified; report it anyway
                // (it only makes us disconnect, which a network attacker can do too).
                self.events.push_back(ClientEvent::Refused(code));
                self.link = Link::Down;
            }
            (
                Link::AwaitWelcome { session },
                Msg::Welcome {
                    lease_ms,
                    heartbeat_ms,
                },
            ) => {
                self.lease = Duration::from_millis(u64::from(lease_ms));
                self.heartbeat = Duration::from_millis(u64::from(heartbeat_ms.max(1)));
                self.link = Link::Active { session };
                self.events.push_back(ClientEvent::Connected);
                self.send_status(now);
            }
            (
                Link::Active { session },
                Msg::Vote {
                    seq,
                    ring,
                    decision,
                },
            ) => {
                self.link = Link::Active { session };
                self.on_vote(now, seq, ring, decision);
            }
            (Link::AwaitWelcome { .. } | Link::Active { .. }, Msg::Error(code)) => {
                self.events.push_back(ClientEvent::Refused(code));
                self.link = Link::Down;
            }
            _ => return false,
        }
        true
    }

    fn on_vote(&mut self, now: Time, seq: u64, ring: RingId, d: Decision) {
        match d {
            Decision::Ack => {
                // Only an ack of our latest status, for the ring we are on.
                let Some(&(last, sent_at, sent_ring)) = self.sent.back() else {
                    return;
                };
                if last != seq || sent_ring != ring || self.ring != Some(ring) {
                    return;
                }
                let end = sent_at + self.lease;
                if now >= end {
                    return;
                }
                self.holding = Some((ring, end));
                self.release_pending = false;
                self.update_cast();
            }
            Decision::Nack => {
                if self.holding.is_some() {
                    if self.cfg.confirm_release {
                        self.release_pending = true;
                    } else {
                        self.holding = None;
                    }
                    self.update_cast();
                    self.send_status(now);
                }
            }
            Decision::Wait => {}
        }
    }

    fn update_cast(&mut self) {
        let now_cast = match self.holding {
            Some((r, _)) if !self.release_pending => Some(r),
            _ => None,
        };
        if now_cast != self.cast {
            if let Some(old) = self.cast {
                self.events.push_back(ClientEvent::Vote {
                    ring: old,
                    cast: false,
                });
            }
            if let Some(r) = now_cast {
                self.events.push_back(ClientEvent::Vote {
                    ring: r,
                    cast: true,
                });
            }
            self.cast = now_cast;
        }
    }

    /// The node's totem membership changed. A vote held for the previous ring is
    /// dropped (it is only valid on the ring it was granted for).
    pub fn set_membership(&mut self, now: Time, ring: RingId, members: &[NodeId]) {
        if self.ring == Some(ring) {
            return;
        }
        self.ring = Some(ring);
        let mut m = members.to_vec();
        m.sort_unstable();
        m.dedup();
        self.members = m;
        if self.holding.is_some_and(|(r, _)| r != ring) {
            self.holding = None;
            self.release_pending = false;
            self.update_cast();
        }
        self.send_status(now);
    }

    /// Heuristics are starting for the next membership: the next status reports
    /// them as pending, so the arbitrator waits for the result (call before
    /// [`QdeviceClient::set_membership`], then [`QdeviceClient::set_heuristics`] with
    /// the result).
    pub fn heuristics_pending(&mut self) {
        self.heuristics = Heuristics::Pending;
    }

    /// A new heuristics result for the current membership.
    pub fn set_heuristics(&mut self, now: Time, h: Heuristics) {
        if self.heuristics != h {
            self.heuristics = h;
            self.send_status(now);
        }
    }

    /// The node has stopped counting the vote everywhere (see
    /// [`ClientConfig::confirm_release`]); report it released.
    pub fn release_done(&mut self, now: Time) {
        if self.release_pending {
            self.release_pending = false;
            self.holding = None;
            self.update_cast();
            self.send_status(now);
        }
    }

    fn send_status(&mut self, now: Time) {
        let (Some(ring), Link::Active { session }) = (self.ring, &mut self.link) else {
            return;
        };
        self.seq += 1;
        let st = Status {
            seq: self.seq,
            algorithm: self.cfg.algorithm,
            tie_breaker: self.cfg.tie_breaker.clone(),
            config_nodes: self.cfg.config_nodes.clone(),
            ring,
            members: self.members.clone(),
            heuristics: self.heuristics,
            holding: self.holding.map(|(r, _)| r),
        };
        let body = proto::encode_frame_body(&Msg::Status(st));
        let tag = session.seal(&body);
        self.out.push_back(proto::frame(&body, Some(&tag)));
        if self.sent.len() == SENT_MEMORY {
            self.sent.pop_front();
        }
        self.sent.push_back((self.seq, now, ring));
        self.next_heartbeat = Some(now + self.heartbeat);
    }

    /// Fires due deadlines: lease end, heartbeat.
    pub fn handle_timeout(&mut self, now: Time) {
        if let Some((_, end)) = self.holding {
            if now >= end {
                self.holding = None;
                self.release_pending = false;
                self.update_cast();
            }
        }
        if self.next_heartbeat.is_some_and(|t| now >= t) {
            self.send_status(now);
        }
    }

    /// The next deadline.
    pub fn poll_timeout(&self) -> Option<Time> {
        let lease = self.holding.map(|(_, e)| e);
        match (lease, self.next_heartbeat) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next bytes to write to the arbitrator.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// The ring the device currently casts its vote for, if any.
    pub fn vote(&self) -> Option<RingId> {
        self.cast
    }

    /// When the current vote's lease ends (client clock).
    pub fn lease_end(&self) -> Option<Time> {
        self.holding.map(|(_, e)| e)
    }
}
