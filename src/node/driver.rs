//! The poll loop: one thread per node owning the totem core and its socket.
//!
//! Every pass: wait for the socket, a command or the core's next deadline; feed the
//! inputs (sending what each produces at once, so tokens move without delay); then
//! publish counters. The core never blocks; only the event channel can (see
//! `NodeOptions::event_capacity`).

use super::persist;
use super::transport::{Transport, TransportStats};
use super::{Command, NodeEvent, NodeOptions, Shared};
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use mio::{Events, Interest, Poll, Token, Waker};
use phalanx_totem::crypto::{CryptoStats, DatagramCrypto, random_boot_id};
use phalanx_totem::{ConfigKind, Event, Time, Totem};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const SOCKET: Token = Token(0);
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
}

pub(crate) struct Driver {
    totem: Totem,
    transport: Transport,
    poll: Poll,
    waker: Arc<Waker>,
    commands: Receiver<Command>,
    events: Sender<NodeEvent>,
    shared: Arc<Shared>,
    start: Instant,
    state_dir: Option<PathBuf>,
    stats: DriverStats,
    buf: Vec<u8>,
    /// Bytes in the core's send queue at the end of the previous pass.
    core_bytes: usize,
    send_queue_bytes: usize,
    left: bool,
    last_publish: Instant,
    crypto: Option<DatagramCrypto>,
    realtime_priority: Option<i32>,
    /// Reused buffers for sealing and opening.
    sealed: Vec<u8>,
    opened: Vec<u8>,
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
        let mut transport = Transport::bind(me, &opts.addrs, buffer)?;
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut transport.socket, SOCKET, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let start = Instant::now();
        let send_queue_bytes = opts.totem.send_queue_bytes;
        let crypto = match &opts.crypto {
            Some(c) => {
                let nodes: Vec<u32> = opts.addrs.keys().copied().collect();
                Some(
                    DatagramCrypto::new(
                        &c.key,
                        &c.cluster_name,
                        me,
                        &nodes,
                        c.cipher,
                        random_boot_id()?,
                    )
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?,
                )
            }
            None => None,
        };
        let totem = Totem::new(opts.totem, persisted, Time::ZERO, opts.logger)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        *shared.membership.lock() = (totem.ring_id(), totem.members().to_vec());
        Ok(Driver {
            totem,
            transport,
            poll,
            waker,
            commands,
            events,
            shared,
            start,
            state_dir: opts.state_dir,
            stats: DriverStats::default(),
            buf: vec![0u8; 65_536],
            core_bytes: 0,
            send_queue_bytes,
            left: false,
            last_publish: start,
            crypto,
            realtime_priority: opts.realtime_priority,
            sealed: Vec::with_capacity(65_536),
            opened: Vec::with_capacity(65_536),
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
            let timeout = self.totem.poll_timeout().map(|t| {
                let now = self.now();
                if t <= now { Duration::ZERO } else { t - now }
            });
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            woke = Instant::now();
            self.stats.loops += 1;
            for ev in events.iter() {
                if ev.token() == SOCKET {
                    self.read_socket()?;
                }
            }
            self.take_commands()?;
            let now = self.now();
            if self.totem.poll_timeout().is_some_and(|t| t <= now) {
                self.totem.handle_timeout(now);
            }
        }
    }

    fn read_socket(&mut self) -> io::Result<()> {
        loop {
            match self.transport.socket.recv_from(&mut self.buf) {
                Ok((len, from)) => {
                    self.stats.transport.rx += 1;
                    self.stats.transport.rx_bytes += len as u64;
                    let Some(owner) = self.transport.node_of(&from) else {
                        self.stats.transport.rx_unknown_addr += 1;
                        continue;
                    };
                    let now = self.now();
                    match &mut self.crypto {
                        None => self.totem.handle_datagram(now, &self.buf[..len]),
                        Some(c) => {
                            // Authenticate (and reject replays) first, then check
                            // the sealed sender owns the address it came from.
                            let Ok((sender, plain)) = c.open(&self.buf[..len], &mut self.opened)
                            else {
                                continue;
                            };
                            if sender != owner {
                                self.stats.rx_spoofed += 1;
                                continue;
                            }
                            self.totem.handle_datagram(now, plain);
                        }
                    }
                    // Send what this datagram produced (a token, above all) at once.
                    self.flush()?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // ICMP errors from a peer that is down surface here; not ours.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                Err(e) => return Err(e),
            }
        }
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
            match &mut self.crypto {
                None => self
                    .transport
                    .send(&t.dest, &t.data, &mut self.stats.transport),
                Some(c) => {
                    // One seal per datagram, whatever the number of receivers: each
                    // keeps its own replay window for us.
                    self.sealed.clear();
                    if c.seal(&t.data, &mut self.sealed).is_ok() {
                        self.transport
                            .send(&t.dest, &self.sealed, &mut self.stats.transport);
                    } else {
                        self.stats.transport.tx_errors += 1;
                    }
                }
            }
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
            if let Some(c) = &self.crypto {
                self.stats.crypto = c.stats();
            }
            *self.shared.stats.lock() = (self.totem.stats().clone(), self.stats.clone());
        }
    }
}
