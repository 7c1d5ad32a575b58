//! The poll loop: one thread per node owning the totem core and its socket.
//!
//! Every pass: wait for the link sockets, a command or the next deadline (the core's
//! or the link monitor's); feed the inputs (sending what each produces at once, so
//! tokens move without delay); then publish counters. The core never blocks; only
//! the event channel can (see `NodeOptions::event_capacity`). The sockets, crypto
//! and link choice live in [`super::link_io`].

use super::cib_handle::{CIB_HANDLE_CLIENT, CibAnswer, CibCallError, CibStatus};
use super::cpg::{CpgGroup, MemberSink};
use super::dlm_handle::{DlmCallError, DlmCommand, DlmRoutes};
use super::dlm_marker::{DlmMarker, DlmPredecessor, Predecessor};
use super::fence_handle::{
    FenceAnswer, FenceCallError, FenceNodeState, FenceStatus, HANDLE_CLIENT, state_name,
};
use super::fencing::{FenceCompletion, FenceRunner};
use super::persist;
use super::quorum::{QuorumCallError, QuorumChange, QuorumInfo};
use super::snapshot::{Membership, NodeStats};
use super::sockets::{BUDGET, Sockets};
use super::transport::TransportStats;
use super::watchdog::NodeWatchdog;
use super::{Command, NodeError, NodeEvent, NodeOptions, Reply, Shared};
use crate::crypto::{CryptoStats, random_boot_id};
use crate::link::{LinkAddrs, LinkCrypto, PeerLinkStatus};
use crate::quorum_client::QdeviceDriver;
use crate::stack::{
    CibSetup, CpgRequest, FenceNotice, Input, InputError, Output, PersistFailed, PersistItem,
    QuorumRequestError, Request, Stack, StackConfig, StackEvent, StopReason,
};
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use mio::{Events, Poll, Token, Waker};
use phalanx_cib::service::CibEvent;
use phalanx_cpg::{CpgError, CpgEvent, Guarantee};
use phalanx_fence::core::FenceEvent;
use phalanx_logsys::{Logger, record};
use phalanx_totem::{ConfigKind, Time};
use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{Ordering, fence};
use std::time::{Duration, Instant};

const WAKER: Token = Token(1);
/// Longest a driver polls awake for the end of totem's send hold before it
/// sleeps on `poll`'s timer instead.
const MAX_HOLD_SPIN: Duration = Duration::from_millis(1);
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
    /// Writes of persisted values that failed. A failed ring-sequence write
    /// stops the node (it could otherwise reuse a ring id after a restart).
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
    /// Read passes whose deliveries were held until every socket was read,
    /// because a burst of frames came in (`Stack::hold_deliveries`).
    pub held_bursts: u64,
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
    /// The current step: the inputs fed since the last pass that took the
    /// Stack's outputs (`flush`), and the outputs the next pass takes. Stamped
    /// on configurations and quorum changes, so that readers of the two streams
    /// can order them as the Stack reported them (`QuorumChange::step`).
    step: u64,
    /// Raw messages totem could not take yet, in order (bounded by the handles'
    /// budget, which they still count against).
    raw_pending: VecDeque<(Guarantee, Vec<u8>)>,
    sinks: BTreeMap<u32, Sink>,
    event_capacity: usize,
    /// The CPG core's send-queue (bytes, messages) as last mirrored to handles.
    cpg_usage: (usize, usize),
    /// Reservations of CPG messages the core has taken since the last sync.
    cpg_released: (usize, usize),
    sockets: Sockets,
    /// The sockets' second descriptors that the DLM handles send from; closed
    /// when the driver goes (so that the ports are free again).
    direct_sockets: Option<std::sync::Arc<super::dlm_handle::DirectSockets>>,
    /// The Stack's next deadline, from its last `Output::Timeout`.
    deadline: Option<Time>,
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
    /// A notice callback made DLM calls whose outputs wait in the core: moved
    /// at the next pass, after the sockets were read (a callback that locks
    /// again at each grant must not keep the driver from its input).
    dlm_calls_waiting: bool,
    last_publish: Instant,
    realtime_priority: Option<i32>,
    /// See `NodeOptions::spin_before_park`.
    spin_before_park: Duration,
    /// Poll awake this long for a peer's answer (`NodeOptions::dlm_answer_spin`).
    dlm_answer_spin: Duration,
    /// The end of the current wait for a remote master's answer.
    dlm_reply_wait_until: Option<Instant>,
    /// Runs fence agents off this thread (when fencing is configured).
    fence_runner: Option<FenceRunner>,
    /// Fence handles waiting for their operation, by call id.
    fence_waiters: BTreeMap<u64, FenceAnswer>,
    /// CIB handles waiting for their request, by call id.
    cib_waiters: BTreeMap<u64, CibAnswer>,
    /// The node's watchdog, fed from this loop (see `super::watchdog`).
    watchdog: Option<NodeWatchdog>,
    /// DLM handles' locks, joins and leaves waiting for the service.
    dlm: DlmRoutes,
    /// This node's DLM marker (with the DLM, fencing and a state directory):
    /// armed before the first lockspace join, removed at a clean leave.
    dlm_marker: Option<DlmMarker>,
    /// What the marker said at start.
    pub(crate) dlm_predecessor: DlmPredecessor,
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
        let mut sockets = Sockets::bind(
            me,
            &opts.addrs,
            &opts.links,
            buffer,
            opts.batch_io,
            opts.segmentation_offload,
        )?;
        let poll = Poll::new()?;
        sockets.register(poll.registry())?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let start = Instant::now();
        let logger = opts.logger.clone();
        let mut cpg = opts.cpg.clone();
        // A fresh incarnation per start, so the others tell a fast restart apart.
        cpg.incarnation = random_boot_id()?;
        let crypto = match &opts.crypto {
            Some(c) => Some(LinkCrypto {
                key: c.key.clone(),
                cluster_name: c.cluster_name.clone(),
                cipher: c.cipher,
                boot_id: random_boot_id()?,
            }),
            None => None,
        };
        let specs = opts.links.specs(opts.totem.token_timeout);
        let link_addrs = std::iter::once((&opts.addrs, &opts.links.link0))
            .chain(opts.links.extra.iter().map(|l| (&l.addrs, &l.params)))
            .zip(specs)
            .map(|((addrs, params), spec)| LinkAddrs {
                spec,
                addrs: addrs.clone(),
                group: params.multicast.map(|m| m.group),
            })
            .collect();
        let cib = if opts.cib {
            let (initial, (quorate_seq, lineage_version)) = match &opts.state_dir {
                Some(d) => {
                    let dir = super::cib_store::dir(d, me);
                    let loaded = super::cib_store::load(&dir)?;
                    let lineage = super::cib_store::load_quorate_seq(&dir, &loaded);
                    (loaded.cib, lineage)
                }
                None => (phalanx_cib::persist::load(|_| None).cib, (0, None)),
            };
            let validator = match &opts.cib_schemas {
                Some(dir) => Some(std::sync::Arc::new(
                    crate::relaxng::PacemakerSchemas::open(dir).map_err(NodeError::CibSchemas)?,
                )
                    as std::sync::Arc<dyn phalanx_cib::schema::SchemaValidator>),
                None => None,
            };
            Some(CibSetup {
                service: phalanx_cib::service::CibServiceConfig::new(me),
                initial,
                validator,
                require_quorum: opts.cib_require_quorum,
                quorate_seq,
                lineage_version,
            })
        } else {
            None
        };
        let mut fencing = opts.fencing.as_ref().map(|f| {
            let mut setup = f.setup.clone();
            // `persist` keeps the ring sequence only with a state directory.
            setup.ring_seq_durable = opts.state_dir.is_some();
            setup
        });
        let mut dlm_predecessor = DlmPredecessor::None;
        let dlm_marker = match (&opts.state_dir, fencing.as_mut(), &opts.dlm) {
            (Some(dir), Some(setup), Some(_)) if setup.decision.fencing_enabled => {
                let (marker, predecessor) = DlmMarker::open(dir, me, &opts.boot_id_file)?;
                dlm_predecessor = match &predecessor {
                    Predecessor::Clean => DlmPredecessor::None,
                    Predecessor::PowerCycled => DlmPredecessor::PowerCycled,
                    Predecessor::Unclean { .. } => DlmPredecessor::Unclean,
                };
                if let Predecessor::Unclean { path, pid } = predecessor {
                    setup.unclean_start = true;
                    record!(
                        logger,
                        0,
                        me,
                        Warn,
                        "dlm",
                        "the previous process of node {} (pid {}) ended on this boot while it could hold DLM locks ({} remains): the cluster fences this node before any lockspace is joined; remove that file before starting only if you know that process's writes are done",
                        me,
                        pid.map_or_else(|| "unknown".to_string(), |p| p.to_string()),
                        path.display().to_string()
                    );
                }
                Some(marker)
            }
            _ => None,
        };
        let stack = Stack::new(
            StackConfig {
                totem: opts.totem,
                cpg,
                quorum: opts.quorum,
                links: link_addrs,
                link_mode: opts.links.mode,
                crypto,
                fencing,
                cib,
                dlm: opts.dlm.clone(),
            },
            persisted,
            Time::ZERO,
            opts.logger,
        )?;
        *shared.membership.lock() =
            Membership::new(stack.totem().ring_id(), stack.totem().members().to_vec());
        let fence_runner = match &opts.fencing {
            Some(f) => Some(FenceRunner::new(f, Arc::clone(&waker))?),
            None => None,
        };
        let watchdog = match &opts.watchdog {
            Some(w) => Some(NodeWatchdog::start(w, logger.clone(), me)?),
            None => None,
        };
        let mut driver = Driver {
            stack,
            quorum_published: None,
            step: 0,
            qdevice: None,
            raw_pending: VecDeque::new(),
            sinks: BTreeMap::new(),
            event_capacity: opts.event_capacity.max(1),
            cpg_usage: (0, 0),
            cpg_released: (0, 0),
            direct_sockets: None,
            sockets,
            deadline: None,
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
            dlm_calls_waiting: false,
            last_publish: start,
            realtime_priority: opts.realtime_priority,
            spin_before_park: opts.spin_before_park,
            dlm_answer_spin: opts.dlm_answer_spin,
            dlm_reply_wait_until: None,
            fence_runner,
            fence_waiters: BTreeMap::new(),
            cib_waiters: BTreeMap::new(),
            watchdog,
            dlm: DlmRoutes::default(),
            dlm_marker,
            dlm_predecessor,
        };
        driver.publish_fence();
        driver.publish_cib();
        driver.publish_quorum();
        Ok(driver)
    }

    /// What the DLM handles need to run calls on their own threads.
    pub(crate) fn dlm_fast(&mut self) -> Option<super::dlm_handle::DlmFast> {
        // Without them the application threads leave every datagram to the
        // driver, as before.
        if self.direct_sockets.is_none() && self.stack.dlm_fast_path().is_some() {
            self.direct_sockets = self.sockets.send_clones().ok().map(|sockets| {
                std::sync::Arc::new(super::dlm_handle::DirectSockets::new(sockets, self.start))
            });
        }
        self.stack
            .dlm_fast_path()
            .map(|path| super::dlm_handle::DlmFast {
                path,
                routes: self.dlm.table(),
                tx: self.direct_sockets.clone(),
            })
    }

    /// Hands the quorum-device client to the driver (started by the node, which
    /// routes its votes back here as commands).
    pub(crate) fn set_qdevice(&mut self, q: QdeviceDriver) {
        self.qdevice = Some(q);
    }

    fn publish_quorum(&mut self) {
        if let Some(q) = self.stack.quorum() {
            let info = q.info();
            *self.shared.quorum.info.lock() = Some(QuorumInfo {
                cluster: info.clone(),
                nodes: q.nodes(),
                step: self.step,
            });
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
                let now = self.now();
                if let Some(w) = &mut self.watchdog {
                    w.quorum(now, quorate);
                }
                self.publish_quorum();
                self.shared.quorum.notify(QuorumChange {
                    quorate,
                    ring,
                    nodes,
                    step: self.step,
                });
            }
            Event::ExpectedVotesChanged(_) => self.publish_quorum(),
            Event::DeviceReleased { .. } => {
                if let Some(q) = &self.qdevice {
                    q.release_done();
                }
            }
            // Persisting is the Stack's `Output::Persist`.
            _ => {}
        }
    }

    /// Writes a value the Stack asked to persist; `Err` carries why it failed.
    fn persist(&mut self, item: PersistItem) -> Result<(), PersistFailed> {
        let Some(dir) = &self.state_dir else {
            // No state directory: memory only (tests), by the caller's choice.
            return Ok(());
        };
        let node = self.stack.totem().node_id();
        let r = match item {
            PersistItem::RingSeq(seq) => persist::store(dir, node, seq),
            PersistItem::ExpectedVotes(n) => {
                std::fs::write(dir.join(format!("expected_votes_{node}")), n.to_string())
            }
        };
        r.map_err(|e| {
            self.stats.persist_errors += 1;
            PersistFailed(format!("{}: {e}", dir.display()))
        })
    }

    pub(crate) fn waker(&self) -> Arc<Waker> {
        self.waker.clone()
    }

    fn now(&self) -> Time {
        Time::from_nanos(self.start.elapsed().as_nanos() as u64)
    }

    /// How long to poll awake (yielding) before sleeping, when something is due
    /// within microseconds that a sleep would only delay:
    ///
    /// * totem keeps the token for more of this node's messages (send hold):
    ///   the next one is the application's answer to a delivery just handed
    ///   out, and the hold must end on time, not on `poll`'s millisecond timer
    ///   (nothing else on the ring moves meanwhile);
    /// * a lock-manager message that calls for an answer went to a peer: the
    ///   answer is a hop and the peer's work away — polled for once per wait,
    ///   at most `dlm_answer_spin`.
    fn awake_poll(&mut self, timeout: Option<Duration>) -> Option<Duration> {
        if timeout.is_some_and(|t| t.is_zero()) {
            return None;
        }
        if self.stack.totem().holds_token_for_sending() {
            return Some(timeout.map_or(MAX_HOLD_SPIN, |t| t.min(MAX_HOLD_SPIN)));
        }
        if self.dlm_answer_spin.is_zero() || !self.stack.dlm_awaits_peers() {
            self.dlm_reply_wait_until = None;
            return None;
        }
        let now = Instant::now();
        let until = *self
            .dlm_reply_wait_until
            .get_or_insert(now + self.dlm_answer_spin);
        let left = until.checked_duration_since(now).filter(|d| !d.is_zero())?;
        Some(timeout.map_or(left, |t| t.min(left)))
    }

    pub(crate) fn run(mut self) -> io::Result<()> {
        super::dlm_handle::mark_driver_thread(&self.shared);
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
                if let Some(w) = &mut self.watchdog {
                    w.leave();
                }
                // A clean stop: the lockspaces ended with the leave.
                if let Some(m) = &mut self.dlm_marker
                    && let Err(e) = m.disarm()
                {
                    let me = self.stack.totem().node_id();
                    record!(
                        self.logger,
                        self.now().as_nanos(),
                        me,
                        Warn,
                        "dlm",
                        "cannot remove the DLM marker: {}",
                        e.to_string()
                    );
                }
                self.publish(true);
                // Ends the notification streams (and `Quorum::on_change` threads).
                self.shared.quorum.close();
                return Ok(());
            }
            self.publish(false);
            let busy = woke.elapsed();
            self.stats.max_busy = self.stats.max_busy.max(busy);
            let mut timeout = self.deadline.map(|t| {
                let now = self.now();
                if t <= now { Duration::ZERO } else { t - now }
            });
            let stalled = self.stalled_on_members();
            if stalled {
                // Look again soon: the member's consumer gives no wake-up.
                timeout = Some(timeout.map_or(Duration::from_millis(1), |t| {
                    t.min(Duration::from_millis(1))
                }));
            } else if self.sockets.any_ready() || self.dlm_calls_waiting {
                timeout = Some(Duration::ZERO);
            }
            // Fed here, each pass, while the policy allows; wake for the next feed.
            let now = self.now();
            if let Some(next) = self.watchdog.as_mut().and_then(|w| w.pass(now)) {
                timeout = Some(timeout.map_or(next, |t| t.min(next)));
            }
            // No lost wake-up (handles wake the driver only while it is parked, see
            // `NodeHandle::mcast`): we publish `parked` and then, after a SeqCst fence,
            // look at the command queue; a handle pushes its command and then, after
            // a SeqCst fence, reads `parked`. By the fences' total order, either our
            // look at the queue comes after its push (we see the command and do not
            // sleep), or its read of `parked` comes after our store (it sees `true`
            // and wakes us; the eventfd stays readable until `poll` reports it, so a
            // wake between our check and `poll` is not lost either).
            let awake_poll = self.awake_poll(timeout);
            let spin = awake_poll.unwrap_or(self.spin_before_park);
            if timeout != Some(Duration::ZERO) && !spin.is_zero() {
                // Spin (not parked: handles do not wake us, we look at their queue).
                let until = Instant::now() + spin;
                loop {
                    if !self.commands.is_empty() {
                        timeout = Some(Duration::ZERO);
                        break;
                    }
                    match self.poll.poll(&mut events, Some(Duration::ZERO)) {
                        Ok(()) if !events.is_empty() => {
                            timeout = Some(Duration::ZERO);
                            break;
                        }
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                    if Instant::now() >= until {
                        break;
                    }
                    if awake_poll.is_some() {
                        // What this poll waits for comes from a thread that is
                        // most likely runnable on this CPU (the application our
                        // delivery just woke: the scheduler places a wakee
                        // beside its waker): let it run now.
                        std::thread::yield_now();
                    } else {
                        std::hint::spin_loop();
                    }
                }
                for ev in events.iter() {
                    self.sockets.mark_ready(ev.token());
                }
                if awake_poll.is_some() && awake_poll == timeout {
                    // Polled to the deadline (the hold's end): its timer is due now.
                    timeout = Some(Duration::ZERO);
                }
            }
            // Never earlier than the wake-up `poll` will have (its timeout is
            // at most the deadline's).
            let until = self.deadline.map_or(u64::MAX, Time::as_nanos);
            self.shared.parked_until.store(until, Ordering::SeqCst);
            self.shared.parked.store(true, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            if !self.commands.is_empty()
                || self
                    .fence_runner
                    .as_ref()
                    .is_some_and(FenceRunner::has_completions)
            {
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
                self.sockets.mark_ready(ev.token());
            }
            if stalled {
                self.stats.stalled_on_members += 1;
            } else {
                self.read_sockets()?;
            }
            self.take_commands()?;
            self.take_fence_completions();
            if std::mem::take(&mut self.dlm_calls_waiting) {
                let now = self.now();
                self.stack.dlm_flush(now);
            }
            let now = self.now();
            if self.deadline.is_some_and(|t| t <= now) {
                self.input(now, Input::Timeout);
            }
        }
    }

    /// Feeds one input; a refusal needs no action here (datagram drops are
    /// counted by the Stack, a stopped Stack is handled by `flush`).
    fn input(&mut self, now: Time, input: Input<'_>) {
        let _ = self.stack.handle_input(now, input);
    }

    /// Reads every socket that may hold datagrams, at most a budget from each.
    ///
    /// A burst (a segmentation-offload run: a busy sender's frames) has its
    /// deliveries held until every socket was read (`Stack::hold_deliveries`):
    /// the token that follows the burst goes on before the burst's messages
    /// are handed out. Single datagrams (a quiet ring, a ping) are delivered
    /// at once, so latency does not pay for it.
    fn read_sockets(&mut self) -> io::Result<()> {
        let mut held = false;
        let r = self.read_sockets_holding(&mut held);
        if held {
            self.stats.held_bursts += 1;
            let now = self.now();
            self.stack.release_deliveries(now);
            self.flush()?;
        }
        r
    }

    fn read_sockets_holding(&mut self, held: &mut bool) -> io::Result<()> {
        for idx in self.sockets.ready_sockets() {
            for _ in 0..BUDGET {
                let now = self.now();
                let Some(d) = self.sockets.recv(idx)? else {
                    break;
                };
                if d.burst && !*held {
                    *held = true;
                    self.stack.hold_deliveries();
                }
                let input = Input::Datagram {
                    link: d.link,
                    from: d.from,
                    data: d.data,
                };
                let _ = self.stack.handle_input(now, input);
                // Send what this datagram produced (a token, above all) at once.
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Feeds every finished fence agent call back to the Stack.
    fn take_fence_completions(&mut self) {
        while let Some(done) = self.fence_runner.as_ref().and_then(FenceRunner::try_recv) {
            let now = self.now();
            let input = match done {
                FenceCompletion::Call(call, outcome) => Input::FenceAgentDone { call, outcome },
                FenceCompletion::Metadata(agent, result) => Input::FenceMetadata { agent, result },
            };
            let metadata = matches!(input, Input::FenceMetadata { .. });
            self.input(now, input);
            if metadata {
                // The device that waited for it is registered now.
                self.publish_fence();
            }
        }
    }

    fn take_commands(&mut self) -> io::Result<()> {
        // One clock read per run of commands, renewed every `CLOCK_EVERY`: a
        // read per message was ~1 % of the CPG 64-byte profile, and a few
        // dozen requests take microseconds, far below any timer's grain.
        const CLOCK_EVERY: u32 = 32;
        let mut now = self.now();
        let mut since_clock = 0u32;
        loop {
            since_clock += 1;
            if since_clock == CLOCK_EVERY {
                since_clock = 0;
                now = self.now();
            }
            match self.commands.try_recv() {
                Ok(Command::CpgRegister { local, sink }) => {
                    self.sinks.insert(
                        local,
                        Sink {
                            member: sink,
                            backlog: VecDeque::new(),
                        },
                    );
                }
                Ok(Command::Stack(request, reply)) => self.stack_request(now, request, reply),
                Ok(Command::Dlm(c)) => {
                    if let DlmCommand::Join { answer, .. } = &c
                        && let Some(m) = &mut self.dlm_marker
                        && let Err(e) = m.arm()
                    {
                        let _ = answer.send(Err(DlmCallError::Marker(e.to_string())));
                        continue;
                    }
                    self.dlm.command(&mut self.stack, now, c);
                }
                Err(TryRecvError::Empty) => {
                    self.sync_cpg_usage();
                    return Ok(());
                }
                Err(TryRecvError::Disconnected) => {
                    // Every handle and the node are gone: leave quietly.
                    self.stack_request(now, Request::Leave, Reply::None);
                    return Ok(());
                }
            }
            if self.left {
                return Ok(());
            }
        }
    }

    /// Feeds a handle's request to the Stack and answers it.
    fn stack_request(&mut self, now: Time, request: Request, reply: Reply) {
        match (request, reply) {
            (Request::Mcast { guarantee, msg }, _) => {
                // Raw messages wait here, in order, until totem has room.
                self.raw_pending.push_back((guarantee, msg));
                self.push_raw(now);
            }
            (Request::Leave, _) => {
                self.input(now, Input::Request(Request::Leave));
                self.left = true;
            }
            (request, Reply::CpgBudget(reserved)) => {
                // The handle admitted it against a budget that covers the core's
                // queue, so the core takes it; a refusal would be a bug, counted.
                if self
                    .stack
                    .handle_input(now, Input::Request(request))
                    .is_err()
                {
                    self.stats.core_refusals += 1;
                }
                // Released with the next usage sync, in one atomic update per pass
                // rather than four per message (the handles' cores contend for it).
                self.cpg_released.0 += reserved;
                self.cpg_released.1 += 1;
            }
            (request, Reply::FenceAccepted(tx)) => {
                let r = self.stack.handle_input(now, Input::Request(request));
                let _ = tx.send(r.map_err(fence_refusal));
                self.publish_fence();
            }
            (request, Reply::CibDone { call, answer }) => {
                match self.stack.handle_input(now, Input::Request(request)) {
                    Ok(()) => {
                        self.cib_waiters.insert(call, answer);
                    }
                    Err(e) => {
                        let _ = answer.send(Err(match e {
                            InputError::CibNotConfigured => CibCallError::NotConfigured,
                            InputError::Cib(phalanx_cib::service::CibServiceError::NoQuorum) => {
                                CibCallError::NoQuorum
                            }
                            InputError::Stopped(_) => CibCallError::NotRunning,
                            other => CibCallError::Refused(other.to_string()),
                        }));
                    }
                }
            }
            (request, Reply::FenceDone { call, answer }) => {
                match self.stack.handle_input(now, Input::Request(request)) {
                    Ok(()) => {
                        self.fence_waiters.insert(call, answer);
                    }
                    Err(e) => {
                        let _ = answer.send(Err(fence_refusal(e)));
                    }
                }
            }
            (request, reply) => {
                if let Request::Cpg(CpgRequest::MemberDown { local }) = &request {
                    self.sinks.remove(local);
                }
                let quorum = matches!(request, Request::Quorum(_));
                let r = self.stack.handle_input(now, Input::Request(request));
                match reply {
                    Reply::Cpg(tx) => {
                        let _ = tx.send(r.map_err(|e| match e {
                            InputError::Cpg(e) => e,
                            _ => CpgError::NotRunning,
                        }));
                    }
                    Reply::Quorum(tx) => {
                        let _ = tx.send(r.map_err(|e| match e {
                            InputError::Quorum(QuorumRequestError::NotConfigured) => {
                                QuorumCallError::NotConfigured
                            }
                            InputError::Quorum(other) => {
                                QuorumCallError::Refused(other.to_string())
                            }
                            _ => QuorumCallError::NotRunning,
                        }));
                    }
                    _ => {}
                }
                if quorum {
                    self.publish_quorum();
                }
                self.sync_cpg_usage();
            }
        }
    }

    /// Hands waiting raw messages to totem, in order, while it takes them. A
    /// message leaves the handles' budget when totem accepts it.
    fn push_raw(&mut self, now: Time) {
        while let Some((g, data)) = self.raw_pending.pop_front() {
            if data.len() > self.stack.send_room() {
                // Keep it, and its budget, until totem has room (CPG traffic
                // shares totem's queue).
                self.raw_pending.push_front((g, data));
                return;
            }
            let len = data.len().saturating_sub(1);
            let request = Request::Mcast {
                guarantee: g,
                msg: data,
            };
            if self
                .stack
                .handle_input(now, Input::Request(request))
                .is_err()
            {
                // Room was checked: only a node that left refuses.
                self.stats.core_refusals += 1;
            }
            self.shared.queued.fetch_sub(len, Ordering::AcqRel);
        }
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
                // Published before the event reaches any member: a query made
                // after an event must reflect that event (`Cpg::groups` after a
                // join's `Change`).
                self.publish_groups();
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

    fn publish_groups(&mut self) {
        let groups = self
            .stack
            .cpg()
            .groups()
            .map(|(g, m)| CpgGroup::new(g.clone(), m.iter().copied().collect()))
            .collect();
        *self.shared.cpg.groups.lock() = groups;
    }

    /// Acts on everything the Stack has produced, in order, until it has nothing
    /// more (its next deadline is kept for `poll`); raw messages waiting for room
    /// go in as room appears.
    fn flush(&mut self) -> io::Result<()> {
        let mut links_changed = false;
        loop {
            loop {
                match self.stack.poll_output() {
                    Output::Timeout(t) => {
                        self.deadline = t;
                        break;
                    }
                    o => links_changed |= self.act(o)?,
                }
            }
            let before = self.raw_pending.len();
            if before == 0 {
                break;
            }
            let now = self.now();
            self.push_raw(now);
            if self.raw_pending.len() == before {
                break;
            }
        }
        // Everything this pass produced goes out now, a system call per link.
        self.sockets.send_held();
        self.refresh_quorum();
        self.sync_cpg_usage();
        if links_changed {
            self.publish(true);
        }
        // What is fed from here on is the next step.
        self.step += 1;
        Ok(())
    }

    /// Acts on one output; true if a link changed state. A stop other than a
    /// leave ends the driver with an error.
    fn act(&mut self, o: Output) -> io::Result<bool> {
        match o {
            Output::Transmit(t) => self.sockets.send(&t),
            Output::Persist(p) => {
                let result = self.persist(p.item);
                let now = self.now();
                self.input(now, Input::Persisted { id: p.id, result });
            }
            Output::Event(StackEvent::Deliver(d)) => {
                // An error means the application dropped the node: nobody to
                // deliver to.
                let _ = self.events.send(NodeEvent::Deliver(d));
            }
            Output::Event(StackEvent::Config(c)) => {
                if c.kind == ConfigKind::Regular {
                    *self.shared.membership.lock() = Membership::new(c.ring, c.members.clone());
                    if let Some(q) = &self.qdevice {
                        q.set_membership(c.ring, c.members.clone());
                    }
                }
                let _ = self.events.send(NodeEvent::Config(c, self.step));
            }
            Output::Event(StackEvent::Cpg(ev)) => self.route_cpg(ev),
            Output::Event(StackEvent::Quorum(ev)) => {
                self.on_quorum(ev);
                // The decision's node states follow quorum's membership.
                self.publish_fence();
            }
            Output::Event(StackEvent::Link(_)) => {
                // Logged by the Stack; the driver counts and republishes.
                self.stats.link_changes += 1;
                return Ok(true);
            }
            Output::FenceAgent(call) => {
                let refused = match &self.fence_runner {
                    Some(r) => r.submit(&call).err(),
                    None => Some(phalanx_fence::core::CallOutcome::Failed {
                        exit_code: None,
                        reason: "no agent runner".into(),
                    }),
                };
                if let Some(outcome) = refused {
                    let now = self.now();
                    self.input(
                        now,
                        Input::FenceAgentDone {
                            call: call.call,
                            outcome,
                        },
                    );
                }
            }
            Output::FenceMetadata { agent } => {
                let refused = match &self.fence_runner {
                    Some(r) => r.submit_metadata(&agent).err(),
                    None => Some("no agent runner".to_string()),
                };
                if let Some(why) = refused {
                    let now = self.now();
                    self.input(
                        now,
                        Input::FenceMetadata {
                            agent,
                            result: Err(why),
                        },
                    );
                }
            }
            Output::CibPersist(p) => {
                let result = match &self.state_dir {
                    Some(d) => {
                        let dir = super::cib_store::dir(d, self.stack.totem().node_id());
                        super::cib_store::write(&dir, &p, &super::cib_store::ctime_now())
                            .map_err(|e| format!("{}: {e}", dir.display()))
                    }
                    None => Ok(()),
                };
                if result.is_err() {
                    self.stats.persist_errors += 1;
                }
                let now = self.now();
                self.input(now, Input::CibPersisted { id: p.id, result });
            }
            Output::Event(StackEvent::Cib(e)) => {
                if let CibEvent::Reply {
                    client: CIB_HANDLE_CLIENT,
                    call,
                    result,
                } = &e
                    && let Some(w) = self.cib_waiters.remove(call)
                {
                    let _ = w.send(result.clone().map_err(CibCallError::Failed));
                }
                self.publish_cib();
                // A CIB change may have changed the fencing devices it defines.
                self.publish_fence();
                let _ = self.events.send(NodeEvent::Cib(e));
            }
            Output::Event(StackEvent::Fence(n)) => {
                if let FenceNotice::NodeFenced { node, .. } = &n {
                    self.dlm.fence_recorded(*node);
                }
                if let FenceNotice::Fencer(FenceEvent::RequestDone {
                    client,
                    call,
                    result,
                    ..
                }) = &n
                    && client == HANDLE_CLIENT
                    && let Some(w) = self.fence_waiters.remove(call)
                {
                    let _ = w.send(match result {
                        Ok(d) => Ok(Some(*d)),
                        Err(f) => Err(FenceCallError::Failed(f.reason.clone())),
                    });
                }
                self.publish_fence();
                let _ = self.events.send(NodeEvent::Fence(n));
            }
            Output::Event(StackEvent::Dlm(e)) => {
                self.dlm.event(&self.stack, e);
                self.stack.dlm_routed();
                // A callback's own calls: their outputs follow the events
                // already queued, at the next pass.
                self.dlm_calls_waiting |= super::dlm_handle::take_called_on_driver();
            }
            Output::Stopped(StopReason::Left) => self.left = true,
            Output::Stopped(reason) => {
                record!(
                    self.logger,
                    self.now().as_nanos(),
                    self.stack.totem().node_id(),
                    Error,
                    "node",
                    "stopping: {}",
                    reason.to_string()
                );
                self.publish(true);
                self.shared.quorum.close();
                return Err(io::Error::other(format!("node stopped: {reason}")));
            }
            _ => {}
        }
        Ok(false)
    }

    /// Publishes the CIB's version and digest for handles and tools.
    fn publish_cib(&self) {
        let Some(c) = self.stack.cib() else { return };
        let v = c.version();
        *self.shared.cib.status.lock() = Some(CibStatus {
            version: (v.admin_epoch, v.epoch, v.num_updates),
            digest: format!("{}", c.digest()),
            synced: c.is_synced(),
        });
    }

    /// Publishes the fencing state for handles and tools (after every fencing
    /// event; the history is bounded by the fencer).
    fn publish_fence(&self) {
        let (Some(f), Some(d)) = (self.stack.fencer(), self.stack.fence_decision()) else {
            return;
        };
        let names = self.stack.fence_names();
        let now = self.now();
        let status = FenceStatus {
            devices: f
                .registry()
                .devices()
                .map(|d| (d.id().to_string(), d.agent().to_string()))
                .collect(),
            history: f.history().entries().cloned().collect(),
            nodes: names
                .iter()
                .map(|(&id, name)| FenceNodeState {
                    id,
                    name: name.clone(),
                    state: state_name(d.state(id)),
                    devices: f
                        .registry()
                        .candidates(name, phalanx_fence::Action::Off, now)
                        .into_iter()
                        .map(|(dev, e)| (dev, eligibility_name(e)))
                        .collect(),
                    unfenced: self.stack.fence_is_unfenced(id),
                })
                .collect(),
        };
        *self.shared.fence.status.lock() = Some(status);
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
            let links = self.stack.links();
            let ls = links.stats();
            self.stats.crypto = links.crypto_stats();
            self.stats.transport = TransportStats {
                rx_unknown_addr: ls.rx_unknown_addr,
                rx_own: ls.rx_own,
                ..self.sockets.stats.clone()
            };
            self.stats.rx_spoofed = ls.rx_spoofed;
            self.stats.link_rx_dropped = ls.link_rx_dropped;
            self.stats.link_stalls = links.monitor().stalls();
            self.stats.raw_pending = self.raw_pending.len();
            *self.shared.stats.lock() = NodeStats::new(
                self.stack.totem().stats().clone(),
                self.stats.clone(),
                self.stack.fence_stats(),
            );
            links.status_into(&mut self.link_status);
            self.shared.links.lock().clone_from(&self.link_status);
        }
    }
}

/// A refused fencing request as the handle reports it.
fn fence_refusal(e: InputError) -> FenceCallError {
    match e {
        InputError::Fence(phalanx_fence::core::FencerError::BadRequest(m))
            if m.contains("not configured") =>
        {
            FenceCallError::NotConfigured
        }
        InputError::Fence(e) => FenceCallError::Refused(e.to_string()),
        InputError::Stopped(_) => FenceCallError::NotRunning,
        other => FenceCallError::Refused(other.to_string()),
    }
}

/// How `--query` words a device's eligibility for a target.
fn eligibility_name(e: phalanx_fence::core::Eligibility) -> &'static str {
    use phalanx_fence::core::Eligibility;
    match e {
        Eligibility::Yes => "yes",
        Eligibility::NeedsList => "if listed",
        Eligibility::NeedsStatus => "if status",
        Eligibility::No => "no",
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Handles may outlive the node: their descriptors must not keep its
        // ports bound.
        if let Some(d) = &self.direct_sockets {
            d.close();
        }
    }
}
