//! The poll loop: one thread per node owning the totem core and its socket.
//!
//! Every pass: wait for the link sockets, a command or the next deadline (the core's
//! or the link monitor's); feed the inputs (sending what each produces at once, so
//! tokens move without delay); then publish counters. The core never blocks; only
//! the event channel can (see `NodeOptions::event_capacity`). The sockets, crypto
//! and link choice live in [`super::link_io`].

use super::link_io::{LinkLayer, Recv};
use super::persist;
use super::transport::TransportStats;
use super::{Command, NodeEvent, NodeOptions, Shared};
use crate::link::{LinkState, PeerLinkStatus};
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use mio::{Events, Poll, Token, Waker};
use phalanx_logsys::{Logger, record};
use phalanx_totem::crypto::{CryptoStats, random_boot_id};
use phalanx_totem::{ConfigKind, Event, Time, Totem};
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
}

pub(crate) struct Driver {
    totem: Totem,
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
    /// Bytes in the core's send queue at the end of the previous pass.
    core_bytes: usize,
    send_queue_bytes: usize,
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
    ) -> io::Result<Driver> {
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
        let send_queue_bytes = opts.totem.send_queue_bytes;
        let logger = opts.logger.clone();
        let totem = Totem::new(opts.totem, persisted, Time::ZERO, opts.logger)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        *shared.membership.lock() = (totem.ring_id(), totem.members().to_vec());
        Ok(Driver {
            totem,
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
            core_bytes: 0,
            send_queue_bytes,
            left: false,
            last_publish: start,
            realtime_priority: opts.realtime_priority,
        })
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
                return Ok(());
            }
            self.publish(false);
            let busy = woke.elapsed();
            self.stats.max_busy = self.stats.max_busy.max(busy);
            let deadline = match (self.totem.poll_timeout(), self.links.monitor.poll_timeout()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let mut timeout = deadline.map(|t| {
                let now = self.now();
                if t <= now { Duration::ZERO } else { t - now }
            });
            if self.links.any_ready() {
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
            self.read_links()?;
            self.take_commands()?;
            let now = self.now();
            self.links.handle_timeout(now);
            if self.totem.poll_timeout().is_some_and(|t| t <= now) {
                self.totem.handle_timeout(now);
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
                        self.totem.handle_datagram(now, plain);
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
                    let now = self.now();
                    let len = data.len();
                    match self.totem.mcast_owned(now, g, data) {
                        Ok(()) => self.core_bytes += len,
                        Err(_) => {
                            self.stats.core_refusals += 1;
                            self.shared.queued.fetch_sub(len, Ordering::AcqRel);
                        }
                    }
                }
                Ok(Command::Leave) => {
                    let now = self.now();
                    self.totem.leave(now);
                    self.left = true;
                    return Ok(());
                }
                Err(TryRecvError::Empty) => return Ok(()),
                Err(TryRecvError::Disconnected) => {
                    // Every handle and the node are gone: leave quietly.
                    let now = self.now();
                    self.totem.leave(now);
                    self.left = true;
                    return Ok(());
                }
            }
        }
    }

    /// Persists, delivers and sends everything the core has produced.
    fn flush(&mut self) -> io::Result<()> {
        // Events first: a ring sequence must be on disk before the commit token
        // that carries it leaves.
        while let Some(e) = self.totem.poll_event() {
            match e {
                Event::PersistRingSeq(seq) => {
                    if let Some(dir) = &self.state_dir {
                        if persist::store(dir, self.totem.node_id(), seq).is_err() {
                            self.stats.persist_errors += 1;
                        }
                    }
                }
                Event::Deliver(d) => {
                    if self.events.send(NodeEvent::Deliver(d)).is_err() {
                        // The application dropped the node; nothing to deliver to.
                    }
                }
                Event::Config(c) => {
                    if c.kind == ConfigKind::Regular {
                        *self.shared.membership.lock() = (c.ring, c.members.clone());
                    }
                    let _ = self.events.send(NodeEvent::Config(c));
                }
            }
        }
        while let Some(t) = self.totem.poll_transmit() {
            self.links.send(&t.dest, &t.data);
        }
        let mut changed = false;
        while let Some(e) = self.links.poll_event() {
            changed = true;
            self.stats.link_changes += 1;
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
        }
        if changed {
            self.publish(true);
        }
        // Bytes that left the core's queue were sent on a ring: give handles room.
        let in_core = self.send_queue_bytes - self.totem.send_queue_room();
        if in_core < self.core_bytes {
            self.shared
                .queued
                .fetch_sub(self.core_bytes - in_core, Ordering::AcqRel);
        }
        self.core_bytes = in_core;
        Ok(())
    }

    fn publish(&mut self, force: bool) {
        self.shared
            .quiescent
            .store(self.totem.is_quiescent(), Ordering::Release);
        self.shared
            .operational
            .store(self.totem.is_operational(), Ordering::Release);
        if force || self.last_publish.elapsed() >= PUBLISH_EVERY {
            self.last_publish = Instant::now();
            self.stats.crypto = self.links.crypto_stats();
            self.stats.transport = self.links.stats.transport.clone();
            self.stats.rx_spoofed = self.links.stats.rx_spoofed;
            self.stats.link_rx_dropped = self.links.stats.link_rx_dropped;
            self.stats.link_stalls = self.links.monitor.stalls();
            *self.shared.stats.lock() = (self.totem.stats().clone(), self.stats.clone());
            self.links.status_into(&mut self.link_status);
            self.shared.links.lock().clone_from(&self.link_status);
        }
    }
}
