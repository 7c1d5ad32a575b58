//! The node's quorum-device slot for libvotequorum's `votequorum_qdevice_*`
//! calls: one device per node, registered by name, alive while it polls
//! within `quorum.device.timeout`, its vote handed to the votequorum core for
//! the ring it names. Pure: the server passes the time and the current ring
//! and sends the [`DeviceVote`]s this returns.
//!
//! As Corosync: registration belongs to the node, not to the connection (a
//! device process that dies simply stops polling and loses its vote at the
//! timeout); a poll for a ring other than the current one is refused
//! (`CS_ERR_MESSAGE_ERROR`) and a new ring starts without the device's vote
//! until the device polls for it.
//!
//! ```
//! use phalanx::compat::qb::qdevice::{QdeviceMode, QdeviceSlot};
//! use phalanx::compat::qb::quorum_wire::QdeviceCall;
//! use phalanx_totem::RingId;
//! use std::time::{Duration, Instant};
//!
//! let mut slot = QdeviceSlot::new(QdeviceMode::External {
//!     timeout: Duration::from_secs(10),
//! });
//! let ring = RingId { rep: 1, seq: 8 };
//! let now = Instant::now();
//! let reg = QdeviceCall::Register { name: b"dev".to_vec() };
//! assert_eq!(slot.handle(now, Some(ring), reg).0, 1); // CS_OK
//! let poll = QdeviceCall::Poll { name: b"dev".to_vec(), cast: true, rep: 1, seq: 8 };
//! let (status, vote) = slot.handle(now, Some(ring), poll);
//! assert_eq!(status, 1);
//! let vote = vote.unwrap(); // the server hands it to the node
//! assert!(vote.cast);
//! slot.vote_sent(vote);
//! // No poll within the timeout: the vote is withdrawn.
//! let withdraw = slot.tick(now + Duration::from_secs(11)).unwrap();
//! assert!(!withdraw.cast);
//! ```

use super::cs;
use super::quorum_wire::{QdeviceCall, vq_flags};
use phalanx_totem::RingId;
use std::time::{Duration, Instant};

/// Pause before a refused withdrawal is offered again.
const RETRY: Duration = Duration::from_millis(100);

/// Whether and how this node has a quorum device for IPC clients.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum QdeviceMode {
    /// No `quorum.device` configured: the calls are refused `CS_ERR_ACCESS`
    /// (the device would carry no votes).
    #[default]
    Unconfigured,
    /// A device configured for an external program (a `quorum.device.model`
    /// other than `net`): it registers and polls over libvotequorum.
    External {
        /// `quorum.device.timeout`: the vote is withdrawn when no poll came
        /// within it.
        timeout: Duration,
    },
    /// The node runs its own device client (`model: net`, Phalanx's
    /// arbitrator): the slot is taken, registration answers `CS_ERR_EXIST`.
    Builtin,
}

/// The mode a node's configuration gives: no `quorum.device`, a `net` device
/// (the node's own client of Phalanx's arbitrator), or any other model — an
/// external device program registering over libvotequorum.
pub fn qdevice_mode_from_config(cfg: &crate::config::ClusterConfig) -> QdeviceMode {
    match &cfg.quorum.device {
        None => QdeviceMode::Unconfigured,
        Some(d) if d.model == "net" => QdeviceMode::Builtin,
        Some(d) => QdeviceMode::External { timeout: d.timeout },
    }
}

/// A vote (or its withdrawal) for the votequorum core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceVote {
    /// The ring it is for.
    pub ring: RingId,
    /// Cast (true) or withdrawn.
    pub cast: bool,
}

/// The node's device slot. See the module documentation.
#[derive(Debug, Default)]
pub struct QdeviceSlot {
    mode: QdeviceMode,
    name: Option<Vec<u8>>,
    alive: bool,
    cast: bool,
    master_wins: bool,
    /// When the device is declared lost if it does not poll.
    deadline: Option<Instant>,
    /// The last vote the core accepted from us.
    sent: Option<DeviceVote>,
    /// A withdrawal the core refused is offered again from then on.
    retry_at: Option<Instant>,
}

impl QdeviceSlot {
    /// An empty slot.
    pub fn new(mode: QdeviceMode) -> QdeviceSlot {
        QdeviceSlot {
            mode,
            ..QdeviceSlot::default()
        }
    }

    /// Handles one call: the status for the reply, and a vote to hand to the
    /// core (then [`vote_sent`](Self::vote_sent) once it took it; if it did
    /// not, the client should get `CS_ERR_TRY_AGAIN` and poll again).
    /// `ring` is the ring votequorum decides for now.
    pub fn handle(
        &mut self,
        now: Instant,
        ring: Option<RingId>,
        call: QdeviceCall,
    ) -> (i32, Option<DeviceVote>) {
        let timeout = match self.mode {
            QdeviceMode::Unconfigured => return (cs::ERR_ACCESS, None),
            QdeviceMode::Builtin => {
                let e = match call {
                    QdeviceCall::Register { .. } => cs::ERR_EXIST,
                    _ => cs::ERR_NOT_EXIST,
                };
                return (e, None);
            }
            QdeviceMode::External { timeout } => timeout,
        };
        if let QdeviceCall::Register { name } = call {
            return match &self.name {
                None => {
                    self.name = Some(name);
                    (cs::OK, None)
                }
                Some(n) if *n == name => (cs::OK, None),
                Some(_) => (cs::ERR_EXIST, None),
            };
        }
        let Some(registered) = self.name.clone() else {
            return (cs::ERR_NOT_EXIST, None);
        };
        match call {
            QdeviceCall::Register { .. } => (cs::OK, None),
            QdeviceCall::Unregister { name } => {
                if name != registered {
                    return (cs::ERR_INVALID_PARAM, None);
                }
                self.name = None;
                self.alive = false;
                self.cast = false;
                self.master_wins = false;
                self.deadline = None;
                (cs::OK, self.withdrawal())
            }
            QdeviceCall::Update { old, new } => {
                if old != registered {
                    return (cs::ERR_INVALID_PARAM, None);
                }
                self.name = Some(new);
                (cs::OK, None)
            }
            QdeviceCall::Poll {
                name,
                cast,
                rep,
                seq,
            } => {
                let polled = RingId { rep, seq };
                if ring != Some(polled) {
                    return (cs::ERR_MESSAGE_ERROR, None);
                }
                if name != registered {
                    return (cs::ERR_INVALID_PARAM, None);
                }
                self.alive = true;
                self.cast = cast;
                self.deadline = Some(now + timeout);
                let vote = DeviceVote { ring: polled, cast };
                let needed = match self.sent {
                    // A withdrawal for an older ring is no vote at all there.
                    None => cast,
                    Some(s) => s != vote && (cast || s.cast),
                };
                (cs::OK, needed.then_some(vote))
            }
            QdeviceCall::MasterWins { name, allow } => {
                if name != registered {
                    return (cs::ERR_INVALID_PARAM, None);
                }
                if allow {
                    // The votequorum core has no master-wins rule: refusing
                    // is honest, accepting would promise quorum it won't give.
                    return (cs::ERR_NOT_SUPPORTED, None);
                }
                self.master_wins = false;
                (cs::OK, None)
            }
        }
    }

    /// The core took `vote`.
    pub fn vote_sent(&mut self, vote: DeviceVote) {
        self.sent = Some(vote);
        self.retry_at = None;
    }

    /// The core did not take the withdrawal [`tick`](Self::tick) returned
    /// (queue full, node stopping): offered again after a pause, so the
    /// server does not spin.
    pub fn withdrawal_failed(&mut self, now: Instant) {
        self.retry_at = Some(now + RETRY);
    }

    /// The withdrawal of a cast vote the core still counts, if any.
    fn withdrawal(&self) -> Option<DeviceVote> {
        self.sent.filter(|s| s.cast).map(|s| DeviceVote {
            ring: s.ring,
            cast: false,
        })
    }

    /// The device's time is up (no poll within the timeout): it is no longer
    /// alive and its vote is withdrawn. Also returns a withdrawal the core did
    /// not take earlier. Call again after [`vote_sent`](Self::vote_sent).
    pub fn tick(&mut self, now: Instant) -> Option<DeviceVote> {
        if self.deadline.is_some_and(|d| now >= d) {
            self.deadline = None;
            self.alive = false;
            self.cast = false;
        }
        if self.cast || self.retry_at.is_some_and(|r| now < r) {
            return None;
        }
        self.withdrawal()
    }

    /// When [`tick`](Self::tick) has something to do: the poll deadline, or
    /// now if a withdrawal is still to be handed to the core.
    pub fn next_tick(&self, now: Instant) -> Option<Instant> {
        if !self.cast && self.withdrawal().is_some() {
            return Some(self.retry_at.unwrap_or(now));
        }
        self.deadline
    }

    /// The getinfo flags of the local node's device ([`vq_flags`]).
    pub fn flags(&self) -> u32 {
        if self.name.is_none() {
            return 0;
        }
        let mut f = vq_flags::QDEVICE_REGISTERED;
        if self.alive {
            f |= vq_flags::QDEVICE_ALIVE;
        }
        if self.cast {
            f |= vq_flags::QDEVICE_CAST_VOTE;
        }
        if self.master_wins {
            f |= vq_flags::QDEVICE_MASTER_WINS;
        }
        f
    }

    /// The registered device's name (empty when none).
    pub fn name(&self) -> &[u8] {
        self.name.as_deref().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RING: RingId = RingId { rep: 1, seq: 8 };

    fn slot() -> QdeviceSlot {
        QdeviceSlot::new(QdeviceMode::External {
            timeout: Duration::from_secs(10),
        })
    }

    fn reg(n: &[u8]) -> QdeviceCall {
        QdeviceCall::Register { name: n.to_vec() }
    }

    fn poll(n: &[u8], cast: bool, ring: RingId) -> QdeviceCall {
        QdeviceCall::Poll {
            name: n.to_vec(),
            cast,
            rep: ring.rep,
            seq: ring.seq,
        }
    }

    #[test]
    fn unconfigured_and_builtin_refuse() {
        let now = Instant::now();
        let mut s = QdeviceSlot::new(QdeviceMode::Unconfigured);
        assert_eq!(s.handle(now, Some(RING), reg(b"d")).0, cs::ERR_ACCESS);
        let mut s = QdeviceSlot::new(QdeviceMode::Builtin);
        assert_eq!(s.handle(now, Some(RING), reg(b"d")).0, cs::ERR_EXIST);
        assert_eq!(s.flags(), 0);
    }

    #[test]
    fn one_device_per_node_and_names_must_match() {
        let now = Instant::now();
        let mut s = slot();
        assert_eq!(
            s.handle(now, Some(RING), poll(b"a", true, RING)).0,
            cs::ERR_NOT_EXIST
        );
        assert_eq!(s.handle(now, Some(RING), reg(b"a")).0, cs::OK);
        assert_eq!(s.handle(now, Some(RING), reg(b"a")).0, cs::OK);
        assert_eq!(s.handle(now, Some(RING), reg(b"b")).0, cs::ERR_EXIST);
        assert_eq!(
            s.handle(now, Some(RING), poll(b"b", true, RING)).0,
            cs::ERR_INVALID_PARAM
        );
        let up = QdeviceCall::Update {
            old: b"a".to_vec(),
            new: b"c".to_vec(),
        };
        assert_eq!(s.handle(now, Some(RING), up).0, cs::OK);
        assert_eq!(s.name(), b"c");
        assert_eq!(s.flags(), vq_flags::QDEVICE_REGISTERED);
        let un = QdeviceCall::Unregister {
            name: b"a".to_vec(),
        };
        assert_eq!(s.handle(now, Some(RING), un).0, cs::ERR_INVALID_PARAM);
    }

    #[test]
    fn a_poll_for_another_ring_is_refused() {
        let now = Instant::now();
        let mut s = slot();
        s.handle(now, Some(RING), reg(b"a"));
        let old = RingId { rep: 1, seq: 4 };
        let (e, v) = s.handle(now, Some(RING), poll(b"a", true, old));
        assert_eq!((e, v), (cs::ERR_MESSAGE_ERROR, None));
        assert_eq!(s.flags() & vq_flags::QDEVICE_ALIVE, 0);
    }

    #[test]
    fn votes_are_sent_on_change_and_withdrawn() {
        let now = Instant::now();
        let mut s = slot();
        s.handle(now, Some(RING), reg(b"a"));
        // Not casting, nothing counted: nothing to send.
        assert_eq!(
            s.handle(now, Some(RING), poll(b"a", false, RING)),
            (cs::OK, None)
        );
        let (e, v) = s.handle(now, Some(RING), poll(b"a", true, RING));
        assert_eq!(e, cs::OK);
        let v = v.unwrap();
        // Not taken by the core: asked again at the next poll.
        assert!(
            s.handle(now, Some(RING), poll(b"a", true, RING))
                .1
                .is_some()
        );
        s.vote_sent(v);
        assert_eq!(s.handle(now, Some(RING), poll(b"a", true, RING)).1, None);
        assert_eq!(
            s.flags(),
            vq_flags::QDEVICE_REGISTERED | vq_flags::QDEVICE_ALIVE | vq_flags::QDEVICE_CAST_VOTE
        );
        // A new ring: the vote must be cast again.
        let next = RingId { rep: 1, seq: 12 };
        let v2 = s.handle(now, Some(next), poll(b"a", true, next)).1.unwrap();
        assert_eq!(v2.ring, next);
        s.vote_sent(v2);
        // Silence past the timeout: withdrawn, until the core takes it.
        assert_eq!(s.tick(now + Duration::from_secs(5)), None);
        let later = now + Duration::from_secs(11);
        let w = s.tick(later).unwrap();
        assert_eq!((w.ring, w.cast), (next, false));
        assert_eq!(s.next_tick(later), Some(later));
        s.withdrawal_failed(later);
        assert_eq!(s.tick(later), None, "not again at once");
        assert_eq!(s.next_tick(later), Some(later + RETRY));
        assert_eq!(s.tick(later + RETRY), Some(w));
        s.vote_sent(w);
        assert_eq!(s.tick(later), None);
        assert_eq!(s.next_tick(later), None);
        assert_eq!(s.flags(), vq_flags::QDEVICE_REGISTERED);
    }

    #[test]
    fn unregister_withdraws_and_master_wins_is_not_offered() {
        let now = Instant::now();
        let mut s = slot();
        s.handle(now, Some(RING), reg(b"a"));
        let mw = |allow| QdeviceCall::MasterWins {
            name: b"a".to_vec(),
            allow,
        };
        assert_eq!(s.handle(now, Some(RING), mw(true)).0, cs::ERR_NOT_SUPPORTED);
        assert_eq!(s.handle(now, Some(RING), mw(false)).0, cs::OK);
        let v = s.handle(now, Some(RING), poll(b"a", true, RING)).1.unwrap();
        s.vote_sent(v);
        let un = QdeviceCall::Unregister {
            name: b"a".to_vec(),
        };
        let (e, w) = s.handle(now, Some(RING), un);
        assert_eq!(e, cs::OK);
        assert_eq!(
            w,
            Some(DeviceVote {
                ring: RING,
                cast: false
            })
        );
        assert_eq!(s.flags(), 0);
    }
}
