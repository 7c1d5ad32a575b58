//! The Stack: the one sans-IO composition — link layer, totem, CPG, votequorum —
//! that the mio driver and the simulator drive alike.
//!
//! ```text
//!   Input::Datagram{link, from, data} | Input::Timeout | Input::Request(..)
//!   | Input::Persisted{id, result}
//!        │ handle_input(now, input) -> Result<(), InputError>
//!        ▼
//!   links (attribute, open, ping/pong) → totem → cpg / quorum / raw
//!        │
//!        ▼ poll_output() until Output::Timeout
//!   Output::Transmit{link, to, data} | Output::Event(..) | Output::Persist(..)
//!   | Output::Stopped(..) | Output::Timeout(deadline)
//! ```
//!
//! **The run-loop contract** (the shape of str0m's `handle_input` / `poll_output`):
//! after every [`Stack::handle_input`], call [`Stack::poll_output`] until it returns
//! [`Output::Timeout`]; act on each output in the order given; feed
//! [`Input::Timeout`] once that deadline has passed (or any input earlier). A
//! [`Output::Persist`] must be written and reported with [`Input::Persisted`]:
//! the datagrams produced after it are held back until then (persist before you
//! send), and a failed write stops the Stack ([`Output::Stopped`]).
//!
//! ```
//! use phalanx::stack::{Input, Output, Request, Stack, StackConfig};
//! use phalanx::logsys::Logger;
//! use phalanx::totem::{Config, Guarantee, Time};
//! use std::collections::BTreeMap;
//!
//! // A one-node cluster: its ring forms without any peer.
//! let addrs = BTreeMap::from([(1, "127.0.0.1:5405".parse().unwrap())]);
//! let cfg = StackConfig::new(Config::new(1, vec![1]), addrs);
//! let mut stack = Stack::new(cfg, None, Time::ZERO, Logger::discard()).unwrap();
//! let mut now = Time::ZERO;
//! let mut delivered = Vec::new();
//! stack
//!     .handle_input(now, Input::Request(Request::Mcast { guarantee: Guarantee::Agreed, msg: b"_hi".to_vec() }))
//!     .unwrap();
//! while delivered.is_empty() {
//!     let deadline = loop {
//!         match stack.poll_output() {
//!             Output::Timeout(t) => break t.expect("a running stack has a deadline"),
//!             Output::Persist(p) => {
//!                 // Write p.item durably, then report it.
//!                 stack.handle_input(now, Input::Persisted { id: p.id, result: Ok(()) }).unwrap();
//!             }
//!             Output::Event(phalanx::stack::StackEvent::Deliver(d)) => delivered.push(d.data),
//!             _ => {} // transmits: none to send in a one-node cluster but pings to self
//!         }
//!     };
//!     now = deadline;
//!     stack.handle_input(now, Input::Timeout).unwrap();
//! }
//! assert_eq!(&delivered[0][..], b"hi");
//! ```
//!
//! Totem carries every service's messages in one total order; the first byte of
//! each message is its [`ServiceId`]. CPG's and quorum's queued messages are handed
//! to totem only when totem has room for them (quorum's first: they are few, small,
//! and decide whether the partition may act), so each service's bounded queue is the
//! one applications see (`TryAgain` + [`Stack::cpg_send_room`]).
//!
//! Adding a service: a [`ServiceId`], a field for its core, request variants in
//! [`Request`], a branch in `route_delivery`, config changes fed in `pump_totem`,
//! its sends in `pump_sends`, its timer in `poll_timeout` / `on_timeout`, its events
//! as [`StackEvent`] variants. See `docs/architecture.md`.

mod cib;
mod config;
mod dlm;
mod fence;
pub(crate) mod fence_cib;
mod io;
mod quorum;
mod service;
#[cfg(test)]
mod tests;

pub use cib::{CibRequest, CibSetup};
pub use config::{QuorumRequestError, StackConfig, StackConfigError};
pub use dlm::{
    DLM_CPG_LOCAL, DLM_FENCE_CLIENT, DLM_GROUP_PREFIX, DlmEvent, DlmFastPath, DlmRequest,
    DlmServiceError, DlmServiceStats, DlmSetup, FastCall, FastRequest, MAX_DLM_FRAGMENT,
    MAX_DLM_MESSAGE, MAX_LOCKSPACE_NAME, lockspace_id,
};
pub use fence::{DECISION_CLIENT, FenceCommand, FenceNotice, FenceServiceStats, FencingSetup};
pub use io::{
    CpgRequest, Input, InputError, Output, Persist, PersistFailed, PersistId, PersistItem,
    QuorumRequest, Request, StackEvent, StopReason,
};
pub use service::ServiceId;

use crate::link::{LinkLayer, LinkState, Received};
use bytes::{Buf, Bytes};
use phalanx_cpg::Cpg;
use phalanx_logsys::{Logger, record};
use phalanx_quorum::Votequorum;
use phalanx_totem::{Event, Guarantee, NodeId, SendError, Time, Totem};
use std::collections::{BTreeMap, VecDeque};

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

/// Counters of the composition itself (the link layer's are in
/// [`Stack::links`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StackStats {
    /// Messages with an unknown or not-running service id, or empty (dropped).
    pub unknown_service: u64,
    /// Quorum messages that did not decode (dropped; the core counts them too).
    pub quorum_malformed: u64,
    /// Datagrams and events held back at some point behind a ring-sequence write.
    pub outputs_held: u64,
    /// Persist writes requested.
    pub persist_requests: u64,
}

/// Transmits waiting for durable writes, and the writes outstanding.
#[derive(Debug, Default)]
struct PersistGate {
    outstanding: BTreeMap<PersistId, PersistItem>,
    /// Outstanding writes that hold transmits back.
    gating: usize,
    /// Totem's datagrams and every service event produced while `gating > 0`.
    held: VecDeque<Output>,
    next: u64,
}

impl PersistGate {
    /// Queues `o`, or holds it while a ring-sequence write is outstanding: neither
    /// a datagram nor an event may reveal a ring this node could forget in a crash
    /// (a one-node ring installs without any datagram, so events wait too).
    fn emit(&mut self, out: &mut VecDeque<Output>, stats: &mut StackStats, o: Output) {
        if self.gating > 0 {
            stats.outputs_held += 1;
            self.held.push_back(o);
        } else {
            out.push_back(o);
        }
    }
}

/// Link layer + totem + CPG (+ votequorum) as one sans-IO state machine.
#[derive(Debug)]
pub struct Stack {
    /// Set by [`Stack::hold_deliveries`]: totem's deliveries and configuration
    /// changes wait in its queue until [`Stack::release_deliveries`].
    deliveries_held: bool,
    totem: Totem,
    cpg: Cpg,
    quorum: Option<Votequorum>,
    fence: Option<fence::FenceService>,
    cib: Option<phalanx_cib::service::CibService>,
    dlm: Option<std::sync::Arc<dlm::DlmShared>>,
    links: LinkLayer,
    /// A quorum message taken from the core and waiting for room in totem (the core
    /// has no peek), already prefixed with its service byte.
    quorum_out: Option<Vec<u8>>,
    /// The quorum core took an input since [`Stack::take_quorum_input`] last ran.
    quorum_input: bool,
    out: VecDeque<Output>,
    gate: PersistGate,
    stopped: Option<StopReason>,
    stats: StackStats,
    now: Time,
    logger: Logger,
}

impl Stack {
    /// Builds the layers. `persisted_seq`: the last ring sequence this node made
    /// durable ([`PersistItem::RingSeq`]) before a restart, `None` on first start.
    /// CPG's wire prefix is set to [`ServiceId::Cpg`]; totem's `max_message_size`
    /// and `send_queue_bytes` are raised, if needed, to hold CPG's maximal message
    /// plus its header ([`phalanx_cpg::wire::MAX_HEADER`]). `cfg.cpg.incarnation`
    /// must differ on every start of the node (the driver draws it at random).
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
            links,
            link_mode,
            crypto,
            fencing,
            cib,
            dlm,
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
        let mut nodes = totem.nodes.clone();
        nodes.sort_unstable();
        nodes.dedup();
        if links
            .first()
            .is_none_or(|l| !l.addrs.keys().copied().eq(nodes.iter().copied()))
        {
            return Err(StackConfigError::LinkNodesDiffer);
        }
        let fence = match fencing {
            Some(_) if quorum.is_none() => return Err(StackConfigError::FencingNeedsQuorum),
            Some(setup) => Some(fence::FenceService::new(setup, now)?),
            None => None,
        };
        let dlm = match dlm {
            Some(setup) => Some(std::sync::Arc::new(dlm::DlmShared::new(
                dlm::DlmService::new(node, setup)?,
            ))),
            None => None,
        };
        let cib = match cib {
            Some(c) => {
                let mut service_cfg = c.service;
                // Writes only with quorum: by default exactly when quorum runs.
                service_cfg.require_quorum = match c.require_quorum {
                    Some(true) if quorum.is_none() => {
                        return Err(StackConfigError::CibQuorumNeedsQuorum);
                    }
                    Some(on) => on,
                    None => quorum.is_some(),
                };
                let mut service = phalanx_cib::service::CibService::new(service_cfg, c.initial);
                service.set_validator(c.validator);
                service.restore_lineage(c.quorate_seq, c.lineage_version);
                Some(service)
            }
            None => None,
        };
        let links = LinkLayer::new(node, &links, link_mode, crypto.as_ref(), now)?;
        let totem = Totem::new(totem, persisted_seq, now, logger.clone())?;
        let mut stack = Self {
            deliveries_held: false,
            totem,
            cpg: Cpg::new(node, cpg),
            quorum,
            fence,
            cib,
            dlm,
            links,
            quorum_out: None,
            quorum_input: false,
            out: VecDeque::new(),
            gate: PersistGate::default(),
            stopped: None,
            stats: StackStats::default(),
            now,
            logger,
        };
        stack.pump();
        Ok(stack)
    }

    /// Takes one input (see the module docs for the run-loop contract). Requests
    /// answer here: `Ok` when taken, a typed error when refused (nothing changed).
    /// A dropped datagram is counted and reported as [`InputError::Dropped`]; the
    /// driver needs to do nothing about it.
    pub fn handle_input(&mut self, now: Time, input: Input<'_>) -> Result<(), InputError> {
        if let Some(r) = &self.stopped {
            return Err(InputError::Stopped(r.clone()));
        }
        self.now = now;
        let r = match input {
            Input::Datagram { link, from, data } => self.on_datagram(now, link, from, data),
            Input::Timeout => {
                self.on_timeout(now);
                Ok(())
            }
            Input::Request(r) => self.on_request(now, r),
            Input::Persisted { id, result } => self.on_persisted(id, result),
            Input::CibPersisted { id, result } => {
                self.on_cib_persisted(id, result);
                Ok(())
            }
            Input::FenceAgentDone { call, outcome } => {
                self.on_fence_agent_done(call, outcome);
                Ok(())
            }
            Input::FenceMetadata { agent, result } => {
                self.on_fence_metadata(&agent, result);
                Ok(())
            }
        };
        self.pump();
        r
    }

    /// Holds totem's deliveries and configuration changes back — in order, in
    /// totem's queue — while the caller feeds a burst of datagrams; everything
    /// else (a token above all) still goes out at once.
    ///
    /// Why: a burst of a busy sender's frames is followed by its token. Handing
    /// every frame's messages to the services and applications first (the bulk
    /// of a receiving node's work) kept the token waiting behind them at every
    /// hop; storing them, passing the token on, and then delivering lets the
    /// next node start while this one delivers. Call
    /// [`Stack::release_deliveries`] when the burst is read.
    pub fn hold_deliveries(&mut self) {
        self.deliveries_held = true;
    }

    /// Ends [`Stack::hold_deliveries`] and moves what waited (outputs follow as
    /// after any input).
    pub fn release_deliveries(&mut self, now: Time) {
        if !std::mem::take(&mut self.deliveries_held) {
            return;
        }
        self.now = now;
        self.pump();
    }

    /// The next output; [`Output::Timeout`] when there is nothing more until the
    /// next input.
    pub fn poll_output(&mut self) -> Output {
        match self.out.pop_front() {
            Some(o) => o,
            None => Output::Timeout(self.poll_timeout()),
        }
    }

    fn on_datagram(
        &mut self,
        now: Time,
        link: u8,
        from: std::net::SocketAddr,
        data: &[u8],
    ) -> Result<(), InputError> {
        let direct = self.dlm_direct();
        let out = &mut self.out;
        let received = self.links.receive(now, link, from, data, &mut |t| {
            out.push_back(Output::Transmit(t))
        })?;
        if let Received::Totem { from, data } = received {
            if direct && data.starts_with(&phalanx_dlm::channel::MAGIC) {
                let data = data.to_vec();
                self.dlm_direct_datagram(now, from, &data);
            } else {
                self.totem.handle_datagram(now, data);
            }
        }
        Ok(())
    }

    fn on_timeout(&mut self, now: Time) {
        let out = &mut self.out;
        self.links
            .handle_timeout(now, &mut |t| out.push_back(Output::Transmit(t)));
        if self.totem.poll_timeout().is_some_and(|t| t <= now) {
            self.totem.handle_timeout(now);
        }
        if let Some(q) = self.quorum.as_mut()
            && q.poll_timeout().is_some_and(|t| t <= now)
        {
            q.handle_timeout(now);
            self.quorum_input = true;
        }
        self.fence_timeout(now);
        self.dlm_timeout(now);
    }

    fn on_request(&mut self, now: Time, r: Request) -> Result<(), InputError> {
        match r {
            Request::Mcast { guarantee, mut msg } => {
                match msg.first_mut() {
                    Some(b) => *b = ServiceId::Raw as u8,
                    None => msg.push(ServiceId::Raw as u8),
                }
                self.totem.mcast_owned(now, guarantee, msg)?;
            }
            Request::Leave => {
                self.totem.leave(now);
                // The leave message goes out with this input's outputs; then stop.
                self.pump();
                self.stop(StopReason::Left);
            }
            Request::Cpg(c) => self.on_cpg_request(c)?,
            Request::Quorum(q) => self.on_quorum_request(q)?,
            Request::Fence(f) => self.on_fence_command(f)?,
            Request::Cib(c) => self.on_cib_request(*c)?,
            Request::Dlm(d) => {
                self.on_dlm_request(*d).map_err(InputError::Dlm)?;
            }
        }
        Ok(())
    }

    fn on_cpg_request(&mut self, r: CpgRequest) -> Result<(), InputError> {
        // The DLM service's member id is not the applications'.
        if let CpgRequest::Join { local, .. } = &r
            && *local == DLM_CPG_LOCAL
        {
            return Err(InputError::Cpg(phalanx_cpg::CpgError::Exist));
        }
        match r {
            CpgRequest::Join { local, group } => self.cpg.join(local, &group)?,
            CpgRequest::Leave { local, group } => self.cpg.leave(local, &group)?,
            CpgRequest::MemberDown { local } => self.cpg.member_down(local),
            CpgRequest::Mcast {
                local,
                group,
                guarantee,
                data,
            } => self.cpg.mcast(local, &group, guarantee, &data)?,
            CpgRequest::McastEncoded {
                local,
                guarantee,
                encoded,
            } => self.cpg.mcast_encoded(local, guarantee, encoded)?,
        }
        Ok(())
    }

    fn on_persisted(
        &mut self,
        id: PersistId,
        result: Result<(), PersistFailed>,
    ) -> Result<(), InputError> {
        let Some(item) = self.gate.outstanding.remove(&id) else {
            return Err(InputError::UnknownPersist(id));
        };
        if let Err(error) = result {
            self.stop(StopReason::PersistFailed { item, error });
            return Ok(());
        }
        if item.gates_transmits() {
            self.gate.gating -= 1;
            if self.gate.gating == 0 {
                self.out.extend(self.gate.held.drain(..));
                self.dlm_set_gated(false);
            }
        }
        Ok(())
    }

    /// Queues a datagram or event of the protocol (see [`PersistGate::emit`]).
    fn emit(&mut self, o: Output) {
        self.gate.emit(&mut self.out, &mut self.stats, o);
    }

    /// Stops for good: nothing held is sent, the reason is the last output.
    fn stop(&mut self, reason: StopReason) {
        self.gate.held.clear();
        self.out.push_back(Output::Stopped(reason.clone()));
        self.stopped = Some(reason);
        self.dlm_stopped();
    }

    fn request_persist(&mut self, item: PersistItem) {
        let id = PersistId(self.gate.next);
        self.gate.next += 1;
        self.gate.outstanding.insert(id, item);
        if item.gates_transmits() {
            self.gate.gating += 1;
            // Before the DLM can learn of the ring being persisted.
            self.dlm_set_gated(true);
        }
        self.stats.persist_requests += 1;
        self.out.push_back(Output::Persist(Persist { id, item }));
    }

    /// The single next deadline (links', totem's, quorum's); `None` once stopped.
    pub fn poll_timeout(&self) -> Option<Time> {
        if self.stopped.is_some() {
            return None;
        }
        let quorum = self.quorum.as_ref().and_then(Votequorum::poll_timeout);
        [
            self.totem.poll_timeout(),
            quorum,
            self.links.poll_timeout(),
            self.fence_deadline(),
            self.dlm_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Bytes totem can still queue now (raw messages count their service byte).
    pub fn send_room(&self) -> usize {
        self.totem.send_queue_room()
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

    /// The link layer (queries: link states, counters, crypto counters).
    pub fn links(&self) -> &LinkLayer {
        &self.links
    }

    /// Counters of the composition.
    pub fn stats(&self) -> &StackStats {
        &self.stats
    }

    /// Datagrams and events held back behind an outstanding ring-sequence write.
    pub fn held_outputs(&self) -> usize {
        self.gate.held.len()
    }

    /// Why the Stack stopped, once it has.
    pub fn stopped(&self) -> Option<&StopReason> {
        self.stopped.as_ref()
    }

    /// Nothing queued anywhere and no exchange in progress (quorum's included: its
    /// state exchange for the current ring is complete).
    pub fn is_quiescent(&self) -> bool {
        self.totem.is_quiescent()
            && self.cpg.is_quiescent()
            && self.gate.held.is_empty()
            && self.quorum_is_quiescent()
            && self.fence_is_quiescent()
            && self.cib_is_quiescent()
            && self.dlm_is_quiescent()
    }

    /// Moves outputs between the layers until nothing moves, then puts totem's
    /// datagrams on the links.
    fn pump(&mut self) {
        if self.stopped.is_some() {
            return;
        }
        // Events a request or timer produced without a totem event.
        self.drain_quorum_events();
        loop {
            let moved_events = !self.deliveries_held && self.pump_totem();
            self.cib_follow_quorum();
            // The CIB first: a change may register fencing devices, whose
            // requests (unfencing) the fence pass then moves in the same pump.
            self.drain_cib();
            self.pump_fence();
            self.drain_dlm();
            let moved_sends = self.pump_sends();
            if !moved_events && !moved_sends {
                break;
            }
        }
        while let Some(t) = self.totem.poll_transmit() {
            let (out, gate, stats) = (&mut self.out, &mut self.gate, &mut self.stats);
            self.links.send(&t.dest, t.data, &mut |lt| {
                gate.emit(out, stats, Output::Transmit(lt));
            });
        }
        for (to, data) in self.take_dlm_datagrams() {
            let (out, gate, stats) = (&mut self.out, &mut self.gate, &mut self.stats);
            self.links
                .send(&phalanx_totem::Destination::Node(to), data, &mut |lt| {
                    gate.emit(out, stats, Output::Transmit(lt));
                });
        }
        while let Some(e) = self.links.poll_event() {
            record!(
                self.logger,
                e.at.as_nanos(),
                self.totem.node_id(),
                Notice,
                "link",
                "link {} to node {} is {}",
                e.link,
                e.peer,
                if e.state == LinkState::Up {
                    "up"
                } else {
                    "down"
                }
            );
            self.out.push_back(Output::Event(StackEvent::Link(e)));
        }
        self.publish_dlm_send_table();
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
                    if c.kind == phalanx_totem::ConfigKind::Transitional {
                        self.cib_transitional();
                    }
                    if c.kind == phalanx_totem::ConfigKind::Regular {
                        self.dlm_new_ring(c.ring.seq, &c.members);
                        self.fence_config(c.ring, &c.members);
                        self.cib_config(&c.members, &c.joined, &c.left, c.ring);
                    }
                    if let Some(q) = self.quorum.as_mut() {
                        q.handle_config(self.now, &c);
                        self.quorum_input = true;
                    }
                    self.emit(Output::Event(StackEvent::Config(c)));
                }
                Event::PersistRingSeq(s) => self.request_persist(PersistItem::RingSeq(s)),
            }
            while let Some(e) = self.cpg.poll_event() {
                if let Some(e) = self.dlm_filter_cpg(e) {
                    self.emit(Output::Event(StackEvent::Cpg(e)));
                }
            }
            self.drain_quorum_events();
        }
        any
    }

    fn route_delivery(&mut self, sender: NodeId, guarantee: Guarantee, mut data: Bytes) {
        let service = data.first().copied().and_then(ServiceId::from_u8);
        // The message is a slice of its totem frame; `advance` strips the service
        // byte by moving a pointer.
        match service {
            Some(ServiceId::Raw) => {
                data.advance(1);
                self.emit(Output::Event(StackEvent::Deliver(RawDelivery {
                    sender,
                    guarantee,
                    data,
                })));
            }
            Some(ServiceId::Cpg) => {
                self.dlm_note_cpg_delivery(&data);
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
            Some(ServiceId::Fence) => self.on_fence_message(sender, &data[1..]),
            Some(ServiceId::Cib) => self.on_cib_message(sender, &data[1..]),
            None => self.stats.unknown_service += 1,
        }
    }

    /// Feeds quorum's, then CPG's, queued messages to totem while totem has room;
    /// true if any moved.
    fn pump_sends(&mut self) -> bool {
        let mut any = self.pump_quorum_sends();
        any |= self.pump_fence_sends();
        any |= self.pump_cib_sends();
        any |= self.pump_dlm_sends();
        while let Some(len) = self.cpg.next_send_len() {
            if len > self.totem.send_queue_room() {
                break;
            }
            let Some((guarantee, msg)) = self.cpg.poll_send() else {
                break;
            };
            // Room was checked, and CPG's maximum fits totem's (checked in `new`), so
            // this is accepted unless totem has left, when dropping is right.
            let _: Result<(), SendError> = self.totem.mcast_owned(self.now, guarantee, msg);
            any = true;
        }
        any
    }
}
