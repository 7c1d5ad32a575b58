//! The Stack: the one sans-IO composition of the protocol cores that both the mio
//! driver and the simulator drive.
//!
//! ```text
//! handle_datagram(now, bytes) | handle_timeout(now) | requests (mcast, cpg_join, ...)
//!     → poll_transmit()   datagrams for the network (totem's)
//!     → poll_event()      StackEvent: raw deliveries/configs, CPG and quorum events,
//!                         PersistRingSeq
//!     → poll_timeout()    the single next deadline (totem's or quorum's)
//! ```
//!
//! Build it from a [`StackConfig`]: totem, CPG, and optionally votequorum.
//!
//! Totem carries every service's messages in one total order; the first byte of each
//! message is its [`ServiceId`]. CPG's and quorum's queued messages are handed to
//! totem only when totem has room for them (quorum's first: they are few, small, and
//! decide whether the partition may act), so each service's bounded queue is the one
//! applications see (`TryAgain` + [`Stack::cpg_send_room`]).
//!
//! Quorum ([`phalanx_quorum::Votequorum`], service 2) gets every configuration change
//! and its own service's deliveries (including this node's own, which totem delivers
//! back) in the total order; its events come out as [`StackEvent::Quorum`]. A
//! malformed quorum message is counted ([`StackStats::quorum_malformed`]) and dropped.
//!
//! Adding a service: a [`ServiceId`], a field for its core, a branch in
//! `route_delivery`, config changes fed in `pump_totem`, its sends in `pump_sends`,
//! its timer in `poll_timeout` / `handle_timeout`.

mod config;
mod quorum;
mod service;
#[cfg(test)]
mod tests;

pub use config::{QuorumRequestError, StackConfig, StackConfigError};
pub use service::ServiceId;

use bytes::{Buf, Bytes};
use phalanx_cpg::{Cpg, CpgError, CpgEvent};
use phalanx_logsys::Logger;
use phalanx_quorum::Votequorum;
use phalanx_totem::{ConfigChange, Event, Guarantee, NodeId, SendError, Time, Totem, Transmit};
use std::collections::VecDeque;

/// A raw application message (service 0) in agreed or safe order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawDelivery {
    /// The node that sent it.
    pub sender: NodeId,
    /// Its guarantee.
    pub guarantee: Guarantee,
    /// The message (the service byte stripped without a copy).
    pub data: Bytes,
}

/// Something the driver must act on or hand to applications, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StackEvent {
    /// A raw application message.
    Deliver(RawDelivery),
    /// A totem configuration change (for raw-message applications).
    Config(ConfigChange),
    /// A CPG event for local members.
    Cpg(CpgEvent),
    /// A votequorum event (quorum changes, expected votes, device release, values to
    /// persist). Only from a Stack built with quorum.
    Quorum(phalanx_quorum::Event),
    /// Persist this ring sequence before sending further datagrams (see
    /// [`phalanx_totem::Event::PersistRingSeq`]).
    PersistRingSeq(u64),
}

/// Counters of the composition itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StackStats {
    /// Messages with an unknown or not-running service id, or empty (dropped).
    pub unknown_service: u64,
    /// Quorum messages that did not decode (dropped; the core counts them too).
    pub quorum_malformed: u64,
}

/// Totem + CPG (+ votequorum) as one sans-IO state machine.
#[derive(Debug)]
pub struct Stack {
    totem: Totem,
    cpg: Cpg,
    quorum: Option<Votequorum>,
    /// A quorum message taken from the core and waiting for room in totem (the core
    /// has no peek), already prefixed with its service byte.
    quorum_out: Option<Vec<u8>>,
    /// The quorum core took an input since [`Stack::take_quorum_input`] last ran.
    quorum_input: bool,
    events: VecDeque<StackEvent>,
    stats: StackStats,
    now: Time,
}

impl Stack {
    /// Builds the cores. `persisted_seq` as for [`Totem::new`]. CPG's wire prefix is
    /// set to [`ServiceId::Cpg`]; totem's `max_message_size` and `send_queue_bytes`
    /// are raised, if needed, to hold CPG's maximal message plus its header
    /// ([`phalanx_cpg::wire::MAX_HEADER`]). `cfg.cpg.incarnation` must differ on every
    /// start of the node (the driver draws it at random). With `cfg.quorum`, its
    /// `local` must be `cfg.totem.node_id`.
    pub fn new(
        cfg: StackConfig,
        persisted_seq: Option<u64>,
        now: Time,
        logger: Logger,
    ) -> Result<Self, StackConfigError> {
        let StackConfig {
            mut totem,
            mut cpg,
            quorum,
        } = cfg;
        // A CPG message of the maximal size must fit in one totem message and in
        // totem's queue (CPG waits for room; one that never fits would block every
        // later one), so totem's limits are raised to CPG's if lower.
        let needed = cpg.max_message_size + phalanx_cpg::wire::MAX_HEADER;
        totem.max_message_size = totem.max_message_size.max(needed);
        totem.send_queue_bytes = totem.send_queue_bytes.max(needed);
        cpg.wire_prefix = Some(ServiceId::Cpg as u8);
        let node = totem.node_id;
        let quorum = match quorum {
            Some(q) if q.local != node => {
                return Err(StackConfigError::QuorumNodeMismatch {
                    totem: node,
                    quorum: q.local,
                });
            }
            Some(q) => Some(Votequorum::new(q)?),
            None => None,
        };
        let totem = Totem::new(totem, persisted_seq, now, logger)?;
        let mut stack = Self {
            totem,
            cpg: Cpg::new(node, cpg),
            quorum,
            quorum_out: None,
            quorum_input: false,
            events: VecDeque::new(),
            stats: StackStats::default(),
            now,
        };
        stack.pump();
        Ok(stack)
    }

    /// A datagram arrived.
    pub fn handle_datagram(&mut self, now: Time, data: &[u8]) {
        self.now = now;
        self.totem.handle_datagram(now, data);
        self.pump();
    }

    /// The deadline from [`poll_timeout`](Self::poll_timeout) passed.
    pub fn handle_timeout(&mut self, now: Time) {
        self.now = now;
        self.totem.handle_timeout(now);
        if let Some(q) = self.quorum.as_mut() {
            q.handle_timeout(now);
            self.quorum_input = true;
        }
        self.pump();
    }

    /// Next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.totem.poll_transmit()
    }

    /// Next event.
    pub fn poll_event(&mut self) -> Option<StackEvent> {
        self.events.pop_front()
    }

    /// The single next deadline.
    pub fn poll_timeout(&self) -> Option<Time> {
        let quorum = self.quorum.as_ref().and_then(Votequorum::poll_timeout);
        match (self.totem.poll_timeout(), quorum) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Multicasts a raw application message (service 0) to every node, in total
    /// order with every other service's messages. One copy, as `Totem::mcast`.
    pub fn mcast(&mut self, now: Time, guarantee: Guarantee, data: &[u8]) -> Result<(), SendError> {
        let mut msg = Vec::with_capacity(1 + data.len());
        msg.push(ServiceId::Raw as u8);
        msg.extend_from_slice(data);
        self.mcast_raw_message(now, guarantee, msg)
    }

    /// [`mcast`](Self::mcast) without copying: the caller builds the message with
    /// one spare byte in front (`msg[0]`), which is overwritten with the service id.
    /// An empty `msg` is sent as an empty raw message.
    pub fn mcast_owned(
        &mut self,
        now: Time,
        guarantee: Guarantee,
        mut msg: Vec<u8>,
    ) -> Result<(), SendError> {
        match msg.first_mut() {
            Some(b) => *b = ServiceId::Raw as u8,
            None => msg.push(ServiceId::Raw as u8),
        }
        self.mcast_raw_message(now, guarantee, msg)
    }

    fn mcast_raw_message(
        &mut self,
        now: Time,
        guarantee: Guarantee,
        msg: Vec<u8>,
    ) -> Result<(), SendError> {
        self.now = now;
        let r = self.totem.mcast_owned(now, guarantee, msg);
        self.pump();
        r
    }

    /// Bytes totem can still queue now (raw messages count their service byte).
    pub fn send_room(&self) -> usize {
        self.totem.send_queue_room()
    }

    /// Leaves the cluster cleanly (see [`Totem::leave`]).
    pub fn leave(&mut self, now: Time) {
        self.now = now;
        self.totem.leave(now);
        self.pump();
    }

    /// CPG: `local` joins `group` (see [`Cpg::join`]).
    pub fn cpg_join(&mut self, now: Time, local: u32, group: &[u8]) -> Result<(), CpgError> {
        self.now = now;
        let r = self.cpg.join(local, group);
        self.pump();
        r
    }

    /// CPG: `local` leaves `group` (see [`Cpg::leave`]).
    pub fn cpg_leave(&mut self, now: Time, local: u32, group: &[u8]) -> Result<(), CpgError> {
        self.now = now;
        let r = self.cpg.leave(local, group);
        self.pump();
        r
    }

    /// CPG: the handle of `local` went away (see [`Cpg::member_down`]).
    pub fn cpg_member_down(&mut self, now: Time, local: u32) {
        self.now = now;
        self.cpg.member_down(local);
        self.pump();
    }

    /// CPG: multicast to a joined group (see [`Cpg::mcast`]).
    pub fn cpg_mcast(
        &mut self,
        now: Time,
        local: u32,
        group: &[u8],
        guarantee: Guarantee,
        data: &[u8],
    ) -> Result<(), CpgError> {
        self.now = now;
        let r = self.cpg.mcast(local, group, guarantee, data);
        self.pump();
        r
    }

    /// CPG: multicast a message already encoded by the caller (see
    /// [`Cpg::mcast_encoded`]; prefix [`ServiceId::Cpg`]).
    pub fn cpg_mcast_encoded(
        &mut self,
        now: Time,
        local: u32,
        guarantee: Guarantee,
        encoded: Vec<u8>,
    ) -> Result<(), CpgError> {
        self.now = now;
        let r = self.cpg.mcast_encoded(local, guarantee, encoded);
        self.pump();
        r
    }

    /// Bytes of CPG messages that can be queued now (0 = wait).
    pub fn cpg_send_room(&self) -> usize {
        self.cpg.send_room()
    }

    /// The totem core (queries: ring, members, stats).
    pub fn totem(&self) -> &Totem {
        &self.totem
    }

    /// The CPG core (queries: membership, groups, local node, stats).
    pub fn cpg(&self) -> &Cpg {
        &self.cpg
    }

    /// Counters of the composition.
    pub fn stats(&self) -> &StackStats {
        &self.stats
    }

    /// Nothing queued anywhere and no exchange in progress (quorum's included: its
    /// state exchange for the current ring is complete).
    pub fn is_quiescent(&self) -> bool {
        self.totem.is_quiescent()
            && self.cpg.is_quiescent()
            && self.events.is_empty()
            && self.quorum_is_quiescent()
    }

    /// Moves outputs between the cores until nothing moves.
    fn pump(&mut self) {
        // Events a request or timer produced without a totem event.
        self.drain_quorum_events();
        loop {
            let moved_events = self.pump_totem();
            let moved_sends = self.pump_sends();
            if !moved_events && !moved_sends {
                break;
            }
        }
    }

    /// Routes totem's events; true if there were any.
    fn pump_totem(&mut self) -> bool {
        let mut any = false;
        while let Some(e) = self.totem.poll_event() {
            any = true;
            match e {
                Event::Deliver(d) => self.route_delivery(d.sender, d.guarantee, d.data),
                Event::Config(c) => {
                    self.cpg.handle_config(&c);
                    if let Some(q) = self.quorum.as_mut() {
                        q.handle_config(self.now, &c);
                        self.quorum_input = true;
                    }
                    self.events.push_back(StackEvent::Config(c));
                }
                Event::PersistRingSeq(s) => self.events.push_back(StackEvent::PersistRingSeq(s)),
            }
            while let Some(e) = self.cpg.poll_event() {
                self.events.push_back(StackEvent::Cpg(e));
            }
            self.drain_quorum_events();
        }
        any
    }

    fn route_delivery(&mut self, sender: NodeId, guarantee: Guarantee, data: Vec<u8>) {
        let service = data.first().copied().and_then(ServiceId::from_u8);
        // `Bytes::from(Vec)` takes the buffer over; `advance` strips the service
        // byte by moving a pointer.
        let mut data = Bytes::from(data);
        match service {
            Some(ServiceId::Raw) => {
                data.advance(1);
                self.events.push_back(StackEvent::Deliver(RawDelivery {
                    sender,
                    guarantee,
                    data,
                }));
            }
            Some(ServiceId::Cpg) => {
                data.advance(1);
                self.cpg.handle_deliver(sender, guarantee, data);
            }
            Some(ServiceId::Quorum) => match self.quorum.as_mut() {
                Some(q) => {
                    self.quorum_input = true;
                    if q.handle_message(self.now, sender, &data[1..]).is_err() {
                        self.stats.quorum_malformed += 1;
                    }
                }
                None => self.stats.unknown_service += 1,
            },
            None => self.stats.unknown_service += 1,
        }
    }

    /// Feeds quorum's, then CPG's, queued messages to totem while totem has room;
    /// true if any moved.
    fn pump_sends(&mut self) -> bool {
        let mut any = self.pump_quorum_sends();
        while let Some(len) = self.cpg.next_send_len() {
            if len > self.totem.send_queue_room() {
                break;
            }
            let Some((guarantee, msg)) = self.cpg.poll_send() else {
                break;
            };
            // Room was checked, and CPG's maximum fits totem's (checked in `new`), so
            // this is accepted unless totem has left, when dropping is right.
            let _ = self.totem.mcast_owned(self.now, guarantee, msg);
            any = true;
        }
        any
    }
}
