//! The poll loop: one thread per node owning the totem core and its socket.
//!
//! Every pass: wait for the link sockets, a command or the next deadline (the core's
//! or the link monitor's); feed the inputs (sending what each produces at once, so
//! tokens move without delay); then publish counters. The core never blocks; only
//! the event channel can (see `NodeOptions::event_capacity`). The sockets, crypto
//! and link choice live in [`super::link_io`].

use super::cpg::{CpgCommand, MemberSink};
use super::link_io::{LinkLayer, Recv};
use super::persist;
use super::quorum::{QuorumCallError, QuorumChange, QuorumCommand};
use super::transport::TransportStats;
use super::{Command, NodeError, NodeEvent, NodeOptions, Shared};
use crate::link::{LinkState, PeerLinkStatus};
use crate::quorum_client::QdeviceDriver;
use crate::stack::{QuorumRequestError, Stack, StackConfig, StackEvent};
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use mio::{Events, Poll, Token, Waker};
use phalanx_cpg::{CpgEvent, Guarantee};
use phalanx_logsys::{Logger, record};
use phalanx_quorum::qdevice::client::ClientEvent;
use phalanx_totem::crypto::{CryptoStats, random_boot_id};
use phalanx_totem::{ConfigKind, Time};
use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{Ordering, fence};
use std::time::{Duration, Instant};

const WAKER: Token = Token(1);
/// Counters are published at most this often.
const PUBLISH_EVERY: Duration = Duration::from_millis(10);

/// Counters of the driver.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DriverStats {
    /// Socket counters.
    pub transport: TransportStats,
    /// Poll-loop passes.
    pub loops: u64,
    /// Longest time the loop was away from `poll` (a sign of CPU starvation).
    pub max_busy: Duration,
    /// Messages the core refused after a handle had accepted them (should be 0).
    pub core_refusals: u64,
    /// Ring-sequence writes that failed (the node keeps running; a restart may
    /// then reuse a ring id of its own).
    pub persist_errors: u64,
    /// Datagram authentication: opened, failed authentication, replayed, too
    /// old, from unknown nodes, malformed (all but `ok` dropped).
    pub crypto: CryptoStats,
    /// Authentic datagrams whose sealed sender does not own the source address
    /// (dropped).
    pub rx_spoofed: u64,
    /// The realtime priority asked for could not be set (no privilege).
    pub realtime_refused: bool,
    /// Pings and pongs refused by the link monitor (malformed, misaddressed,
    /// unexpected; per link in [`NodeHandle::links`](super::NodeHandle::links)).
    pub link_rx_dropped: u64,
    /// Link state changes (any peer, any link).
    pub link_changes: u64,
    /// Times the link monitor found the driver had not run for two ping intervals
    /// and held off judging links for one ping timeout.
    pub link_stalls: u64,
    /// Raw messages waiting in the driver because totem's queue was full (they
    /// go first when room appears).
    pub raw_pending: usize,
    /// Passes in which the driver stopped reading the network because a
    /// process-group member did not consume its events.
    pub stalled_on_members: u64,
}

/// One CPG member's event stream. The driver never blocks on it: events that do
/// not fit the channel wait in `backlog`, and while any backlog is a channel's
/// worth long the driver stops reading the network (so the node, not memory,
/// absorbs a member that does not consume; a join/leave reply still gets through).
struct Sink {
    member: MemberSink,
    backlog: VecDeque<CpgEvent>,
}

impl Sink {
    fn push(&mut self, ev: CpgEvent) {
        if self.backlog.is_empty() {
            match self.member.tx.try_send(ev) {
                Ok(()) => {
                    // Raise the fd only when the channel was empty: a consumer
                    // clears it before draining and drains until empty, so an event
                    // behind others is found by that drain (an eventfd write per
                    // event was ~9 % of the small-message profile).
                    if self.member.tx.len() <= 1 {
                        self.member.notify.raise();
                    }
                    return;
                }
                Err(crossbeam_channel::TrySendError::Full(ev)) => self.backlog.push_back(ev),
                // The member's handle is gone; its Down command follows.
                Err(crossbeam_channel::TrySendError::Disconnected(_)) => return,
            }
        } else {
            self.backlog.push_back(ev);
        }
        self.member.notify.raise();
    }

    fn drain(&mut self) {
        while let Some(ev) = self.backlog.pop_front() {
            match self.member.tx.try_send(ev) {
                Ok(()) => {}
                Err(crossbeam_channel::TrySendError::Full(ev)) => {
                    self.backlog.push_front(ev);
                    return;
                }
                Err(crossbeam_channel::TrySendError::Disconnected(_)) => {
                    self.backlog.clear();
                    return;
                }
            }
        }
    }
}

pub(crate) struct Driver {
    stack: Stack,
    /// The quorum-device client thread, if a device is configured.
    qdevice: Option<QdeviceDriver>,
    /// The quorum state as last published to the handles.
    quorum_published: Option<phalanx_quorum::ClusterInfo>,
    /// Raw messages totem could not take yet, in order (bounded by the handles'
    /// budget, which they still count against).
    raw_pending: VecDeque<(Guarantee, Vec<u8>)>,
    sinks: BTreeMap<u32, Sink>,
    event_capacity: usize,
    /// The CPG core's send-queue (bytes, messages) as last mirrored to handles.
    cpg_usage: (usize, usize),
    /// Reservations of CPG messages the core has taken since the last sync.
    cpg_released: (usize, usize),
    /// Group membership changed since it was last published.
    groups_dirty: bool,
    links: LinkLayer,
    poll: Poll,
    waker: Arc<Waker>,
    commands: Receiver<Command>,
    events: Sender<NodeEvent>,
    shared: Arc<Shared>,
    start: Instant,
    state_dir: Option<PathBuf>,
    stats: DriverStats,
    logger: Logger,
    link_status: Vec<PeerLinkStatus>,
    left: bool,
    last_publish: Instant,
    realtime_priority: Option<i32>,
}

impl Driver {
    pub(crate) fn new(
        opts: NodeOptions,
        commands: Receiver<Command>,
        events: Sender<NodeEvent>,
        shared: Arc<Shared>,
    ) -> Result<Driver, NodeError> {
        let me = opts.totem.node_id;
        let persisted = match &opts.state_dir {
            Some(dir) => persist::load(dir, me)?,
            None => None,
        };
        let buffer = if opts.socket_buffer > 0 {
            opts.socket_buffer
        } else {
            // A window of frames from every member, twice over.
            (opts.totem.window_size as usize * (opts.totem.max_frame + 64) * 2).max(4 << 20)
        };
        let boot_id = match &opts.crypto {
            Some(_) => random_boot_id()?,
            None => 0,
        };
        let mut links = LinkLayer::new(
            me,
            &opts.addrs,
            &opts.links,
            buffer,
            opts.totem.token_timeout,
            opts.crypto.as_ref().map(|c| (c, boot_id)),
            Time::ZERO,
        )?;
        let poll = Poll::new()?;
        links.register(poll.registry())?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let start = Instant::now();
        let logger = opts.logger.clone();
        let mut cpg = opts.cpg.clone();
        // A fresh incarnation per start, so the others tell a fast restart apart.
        cpg.incarnation = random_boot_id()?;
        let stack = Stack::new(
            StackConfig {
                totem: opts.totem,
                cpg,
                quorum: opts.quorum,
            },
            persisted,
            Time::ZERO,
            opts.logger,
        )?;
        *shared.membership.lock() = (stack.totem().ring_id(), stack.totem().members().to_vec());
        let mut driver = Driver {
            stack,
            quorum_published: None,
            qdevice: None,
            raw_pending: VecDeque::new(),
            sinks: BTreeMap::new(),
            event_capacity: opts.event_capacity.max(1),
            cpg_usage: (0, 0),
            cpg_released: (0, 0),
            groups_dirty: false,
            links,
            poll,
            waker,
            commands,
            events,
            shared,
            start,
            state_dir: opts.state_dir,
            stats: DriverStats::default(),
            logger,
            link_status: Vec::new(),
            left: false,
            last_publish: start,
            realtime_priority: opts.realtime_priority,
        };
        driver.publish_quorum();
        Ok(driver)
    }

    /// Hands the quorum-device client to the driver (started by the node, which
    /// routes its events back here as commands).
    pub(crate) fn set_qdevice(&mut self, q: QdeviceDriver) {
        self.qdevice = Some(q);
    }

    fn publish_quorum(&mut self) {
        if let Some(q) = self.stack.quorum() {
            let info = q.info();
            *self.shared.quorum.info.lock() = Some((info.clone(), q.nodes()));
            self.quorum_published = Some(info);
        }
    }

    /// Republishes the quorum state when it changed without a quorum event: a
    /// delivered device vote changes the votes counted (`total_votes`,
    /// `device_cast`) without changing `quorate` or the node list.
    fn refresh_quorum(&mut self) {
        if !self.stack.take_quorum_input() {
            return;
        }
        let changed = match self.stack.quorum() {
            Some(q) => self.quorum_published.as_ref() != Some(&q.info()),
            None => false,
        };
        if changed {
            self.publish_quorum();
        }
    }

    fn on_quorum(&mut self, ev: phalanx_quorum::Event) {
        use phalanx_quorum::Event;
        match ev {
            Event::QuorumChanged {
                quorate,
                ring,
                nodes,
            } => {
                record!(
                    self.logger,
                    self.now().as_nanos(),
                    self.stack.totem().node_id(),
                    Notice,
                    "quorum",
                    "ring {}: {}",
                    ring.seq,
                    if quorate { "quorate" } else { "NOT quorate" }
                );
                self.publish_quorum();
                self.shared.quorum.notify(QuorumChange {
                    quorate,
                    ring,
                    nodes,
                });
            }
            Event::ExpectedVotesChanged(_) => self.publish_quorum(),
            Event::DeviceReleased { .. } => {
                if let Some(q) = &self.qdevice {
                    q.release_done();
                }
            }
            Event::PersistExpectedVotes(n) => {
                if let Some(dir) = &self.state_dir {
                    let file = dir.join(format!("expected_votes_{}", self.stack.totem().node_id()));
                    if std::fs::write(file, n.to_string()).is_err() {
                        self.stats.persist_errors += 1;
                    }
                }
            }
        }
    }

    fn quorum_command(&mut self, c: QuorumCommand) {
        let now = self.now();
        let map = |r: Result<(), QuorumRequestError>| {
            r.map_err(|e| match e {
                QuorumRequestError::NotConfigured => QuorumCallError::NotConfigured,
                other => QuorumCallError::Refused(other.to_string()),
            })
        };
        match c {
            QuorumCommand::SetExpectedVotes(v, reply) => {
                let _ = reply.send(map(self.stack.quorum_set_expected_votes(now, v)));
            }
            QuorumCommand::SetVotes(node, v, reply) => {
                let _ = reply.send(map(self.stack.quorum_set_votes(now, node, v)));
            }
            QuorumCommand::CancelWaitForAll(reply) => {
                let _ = reply.send(map(self.stack.quorum_cancel_wait_for_all(now)));
            }
            QuorumCommand::Device(ClientEvent::Vote { ring, cast }) => {
                // A vote for a ring we are no longer on is refused by the core; the
                // device follows up for the current ring.
                let _ = self.stack.quorum_set_device_vote(now, ring, cast);
            }
            QuorumCommand::Device(_) => {}
        }
        self.publish_quorum();
    }

    pub(crate) fn waker(&self) -> Arc<Waker> {
        self.waker.clone()
    }

    fn now(&self) -> Time {
        Time::from_nanos(self.start.elapsed().as_nanos() as u64)
    }

    pub(crate) fn run(mut self) -> io::Result<()> {
        if let Some(prio) = self.realtime_priority {
            let param = libc::sched_param {
                sched_priority: prio.clamp(1, 99),
            };
            // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param.
            if unsafe { libc::sched_setscheduler(0, libc::SCHED_RR, &param) } != 0 {
                self.stats.realtime_refused = true;
            }
        }
        let mut events = Events::with_capacity(64);
        let mut woke = Instant::now();
        loop {
            self.flush()?;
            if self.left {
                self.publish(true);
                // Ends the notification streams (and `Quorum::on_change` threads).
                self.shared.quorum.subscribers.lock().clear();
                return Ok(());
            }
            self.publish(false);
            let busy = woke.elapsed();
            self.stats.max_busy = self.stats.max_busy.max(busy);
            let deadline = match (self.stack.poll_timeout(), self.links.monitor.poll_timeout()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let mut timeout = deadline.map(|t| {
                let now = self.now();
                if t <= now { Duration::ZERO } else { t - now }
            });
            let stalled = self.stalled_on_members();
            if stalled {
                // Look again soon: the member's consumer gives no wake-up.
                timeout = Some(timeout.map_or(Duration::from_millis(1), |t| {
                    t.min(Duration::from_millis(1))
                }));
            } else if self.links.any_ready() {
                timeout = Some(Duration::ZERO);
            }
            // No lost wake-up (handles wake the driver only while it is parked, see
            // `NodeHandle::mcast`): we publish `parked` and then, after a SeqCst fence,
            // look at the command queue; a handle pushes its command and then, after
            // a SeqCst fence, reads `parked`. By the fences' total order, either our
            // look at the queue comes after its push (we see the command and do not
            // sleep), or its read of `parked` comes after our store (it sees `true`
            // and wakes us; the eventfd stays readable until `poll` reports it, so a
            // wake between our check and `poll` is not lost either).
            self.shared.parked.store(true, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            if !self.commands.is_empty() {
                timeout = Some(Duration::ZERO);
            }
            let polled = self.poll.poll(&mut events, timeout);
            self.shared.parked.store(false, Ordering::SeqCst);
            match polled {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            woke = Instant::now();
            self.stats.loops += 1;
            for ev in events.iter() {
                self.links.mark_ready(ev.token());
            }
            if stalled {
                self.stats.stalled_on_members += 1;
            } else {
                self.read_links()?;
            }
            self.take_commands()?;
            let now = self.now();
            self.links.handle_timeout(now);
            if self.stack.poll_timeout().is_some_and(|t| t <= now) {
                self.stack.handle_timeout(now);
            }
        }
    }

    /// Reads every socket that may hold datagrams, at most a budget from each.
    fn read_links(&mut self) -> io::Result<()> {
        for idx in self.links.ready_sockets() {
            for _ in 0..self.links.budget() {
                let now = self.now();
                match self.links.recv(now, idx)? {
                    Recv::Totem(plain) => {
                        self.stack.handle_datagram(now, plain);
                        // Send what this datagram produced (a token, above all) at once.
                        self.flush()?;
                    }
                    Recv::Handled => {}
                    Recv::Empty => break,
                }
            }
        }
        Ok(())
    }

    fn take_commands(&mut self) -> io::Result<()> {
        loop {
            match self.commands.try_recv() {
                Ok(Command::Mcast(g, data)) => {
                    self.raw_pending.push_back((g, data));
                    self.push_raw();
                }
                Ok(Command::Cpg(c)) => self.cpg_command(c),
                Ok(Command::Quorum(c)) => self.quorum_command(c),
                Ok(Command::Leave) => {
                    let now = self.now();
                    self.stack.leave(now);
                    self.left = true;
                    return Ok(());
                }
                Err(TryRecvError::Empty) => {
                    self.sync_cpg_usage();
                    return Ok(());
                }
                Err(TryRecvError::Disconnected) => {
                    // Every handle and the node are gone: leave quietly.
                    let now = self.now();
                    self.stack.leave(now);
                    self.left = true;
                    return Ok(());
                }
            }
        }
    }

    /// Hands waiting raw messages to totem, in order, while it takes them. A
    /// message leaves the handles' budget when totem accepts it.
    fn push_raw(&mut self) {
        while let Some((g, data)) = self.raw_pending.pop_front() {
            if data.len() > self.stack.send_room() {
                // Keep it, and its budget, until totem has room (CPG traffic
                // shares totem's queue).
                self.raw_pending.push_front((g, data));
                return;
            }
            let now = self.now();
            let len = data.len().saturating_sub(1);
            if self.stack.mcast_owned(now, g, data).is_err() {
                // Room was checked: only a node that left refuses.
                self.stats.core_refusals += 1;
            }
            self.shared.queued.fetch_sub(len, Ordering::AcqRel);
        }
    }

    fn cpg_command(&mut self, c: CpgCommand) {
        let now = self.now();
        match c {
            CpgCommand::Register { local, sink } => {
                self.sinks.insert(
                    local,
                    Sink {
                        member: sink,
                        backlog: VecDeque::new(),
                    },
                );
            }
            CpgCommand::Join {
                local,
                group,
                reply,
            } => {
                let _ = reply.send(self.stack.cpg_join(now, local, &group));
            }
            CpgCommand::Leave {
                local,
                group,
                reply,
            } => {
                let _ = reply.send(self.stack.cpg_leave(now, local, &group));
            }
            CpgCommand::Mcast {
                local,
                guarantee,
                encoded,
                reserved,
            } => {
                // The handle admitted it against a budget that covers the core's
                // queue, so the core takes it; a refusal would be a bug, counted.
                if self
                    .stack
                    .cpg_mcast_encoded(now, local, guarantee, encoded)
                    .is_err()
                {
                    self.stats.core_refusals += 1;
                }
                // Released with the next usage sync, in one atomic update per pass
                // rather than four per message (the handles' cores contend for it).
                self.cpg_released.0 += reserved;
                self.cpg_released.1 += 1;
                return;
            }
            CpgCommand::Down { local } => {
                self.stack.cpg_member_down(now, local);
                self.sinks.remove(&local);
            }
        }
        self.sync_cpg_usage();
    }

    /// Mirrors the CPG core's send-queue change, and the reservations of the
    /// messages taken since the last sync, into the handles' budget. One update:
    /// the budget never drops below what is really queued in between.
    fn sync_cpg_usage(&mut self) {
        let now = self.stack.cpg().send_queue_usage();
        let (db, dm) = (
            now.0 as isize - self.cpg_usage.0 as isize - self.cpg_released.0 as isize,
            now.1 as isize - self.cpg_usage.1 as isize - self.cpg_released.1 as isize,
        );
        self.cpg_usage = now;
        self.cpg_released = (0, 0);
        if db != 0 || dm != 0 {
            self.shared.cpg.adjust(db, dm);
        }
    }

    fn stalled_on_members(&mut self) -> bool {
        let cap = self.event_capacity;
        let mut stalled = false;
        for sink in self.sinks.values_mut() {
            sink.drain();
            stalled |= sink.backlog.len() >= cap;
        }
        stalled
    }

    fn route_cpg(&mut self, ev: CpgEvent) {
        let recipients = match &ev {
            CpgEvent::Change(c) => {
                self.groups_dirty = true;
                Some(c.recipients.clone())
            }
            CpgEvent::Deliver(d) => Some(d.recipients.clone()),
            _ => None,
        };
        match recipients {
            Some(to) => {
                // Clones for all recipients but the last, which takes the event.
                if let Some((last, rest)) = to.split_last() {
                    for local in rest {
                        if let Some(sink) = self.sinks.get_mut(local) {
                            sink.push(ev.clone());
                        }
                    }
                    if let Some(sink) = self.sinks.get_mut(last) {
                        sink.push(ev);
                    }
                }
            }
            None => {
                for sink in self.sinks.values_mut() {
                    sink.push(ev.clone());
                }
            }
        }
    }

    /// Persists, delivers and sends everything the core has produced.
    fn flush(&mut self) -> io::Result<()> {
        // Events first: a ring sequence must be on disk before the commit token
        // that carries it leaves.
        while let Some(e) = self.stack.poll_event() {
            match e {
                StackEvent::PersistRingSeq(seq) => {
                    if let Some(dir) = &self.state_dir {
                        if persist::store(dir, self.stack.totem().node_id(), seq).is_err() {
                            self.stats.persist_errors += 1;
                        }
                    }
                }
                StackEvent::Deliver(d) => {
                    if self.events.send(NodeEvent::Deliver(d)).is_err() {
                        // The application dropped the node; nothing to deliver to.
                    }
                }
                StackEvent::Config(c) => {
                    if c.kind == ConfigKind::Regular {
                        *self.shared.membership.lock() = (c.ring, c.members.clone());
                        if let Some(q) = &self.qdevice {
                            q.set_membership(c.ring, c.members.clone());
                        }
                    }
                    let _ = self.events.send(NodeEvent::Config(c));
                }
                StackEvent::Cpg(ev) => self.route_cpg(ev),
                StackEvent::Quorum(ev) => self.on_quorum(ev),
            }
        }
        self.refresh_quorum();
        if self.groups_dirty {
            self.groups_dirty = false;
            let groups = self
                .stack
                .cpg()
                .groups()
                .map(|(g, m)| (g.clone(), m.iter().copied().collect()))
                .collect();
            *self.shared.cpg.groups.lock() = groups;
        }
        if !self.raw_pending.is_empty() {
            self.push_raw();
        }
        self.sync_cpg_usage();
        while let Some(t) = self.stack.poll_transmit() {
            self.links.send(&t.dest, &t.data);
        }
        let mut changed = false;
        while let Some(e) = self.links.poll_event() {
            changed = true;
            self.stats.link_changes += 1;
            record!(
                self.logger,
                e.at.as_nanos(),
                self.stack.totem().node_id(),
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
        }
        if changed {
            self.publish(true);
        }
        Ok(())
    }

    fn publish(&mut self, force: bool) {
        self.shared.quiescent.store(
            self.stack.is_quiescent() && self.raw_pending.is_empty(),
            Ordering::Release,
        );
        self.shared
            .operational
            .store(self.stack.totem().is_operational(), Ordering::Release);
        if force || self.last_publish.elapsed() >= PUBLISH_EVERY {
            self.last_publish = Instant::now();
            self.stats.crypto = self.links.crypto_stats();
            self.stats.transport = self.links.stats.transport.clone();
            self.stats.rx_spoofed = self.links.stats.rx_spoofed;
            self.stats.link_rx_dropped = self.links.stats.link_rx_dropped;
            self.stats.link_stalls = self.links.monitor.stalls();
            self.stats.raw_pending = self.raw_pending.len();
            *self.shared.stats.lock() = (self.stack.totem().stats().clone(), self.stats.clone());
            self.links.status_into(&mut self.link_status);
            self.shared.links.lock().clone_from(&self.link_status);
        }
    }
}
