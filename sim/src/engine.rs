//! The event loop: virtual time, nodes, network, faults, phases.
//!
//! A run is a pure function of [`SimOptions`] (chiefly the seed) and the factory: one
//! thread, one ordered event queue with `(time, insertion counter)` keys, ordered maps
//! only, and every random choice taken from streams forked off the seed.

use crate::check::Violation;
use crate::clock::Clock;
use crate::faults::{FaultBounds, FaultPlan, draw_partition};
use crate::history::{ConfigKind, EventKind, Guarantee, History, Observation};
use crate::net::Network;
use crate::node::{Destination, Disk, NodeFactory, NodeId, PersistWrite, SimNode, Transmit, VTime};
use crate::rng::{Rng, mix};
use phalanx_logsys::{Logger, Record};
use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::fmt::Write as _;
use std::ops::RangeInclusive;
use std::rc::Rc;

/// How a run is set up. Everything not fixed here is drawn from `seed`.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// Number of nodes; they get ids `1..=nodes`.
    pub nodes: usize,
    /// The seed every random choice derives from.
    pub seed: u64,
    /// Range of the safety phase's duration (faults and workload on).
    pub safety_ns: RangeInclusive<VTime>,
    /// Duration of the liveness phase (faults off; the cluster must converge).
    pub liveness_ns: VTime,
    /// How long the workload keeps running into the liveness phase.
    pub workload_tail_ns: VTime,
    /// Bounds for the per-seed fault draw.
    pub faults: FaultBounds,
    /// Record a one-line-per-event trace.
    pub trace: bool,
    /// Per-node flight-recorder capacity; 0 gives nodes a discarding logger.
    pub flight_recorder_bytes: usize,
    /// Abort the run (reported as a violation) after this many events. Healthy runs
    /// take tens of thousands; a runaway node would otherwise stall a whole swarm.
    pub max_events: u64,
    /// How far past the liveness phase the run may go while waiting for every node
    /// to report quiescent.
    pub max_drain_ns: VTime,
    /// Keep at most this many trace lines (the rest are counted, not kept).
    pub max_trace_lines: usize,
    /// Run with this fault plan instead of drawing one from `faults` (scenario
    /// tests that want exactly one kind of fault). The seed still draws everything
    /// else: path parameters within the plan, fault times, victims, the workload.
    pub plan: Option<FaultPlan>,
}

impl SimOptions {
    /// Defaults for `nodes` nodes and `seed`: 1–4 s safety, 5 s liveness, default faults.
    pub fn new(nodes: usize, seed: u64) -> Self {
        Self {
            nodes,
            seed,
            safety_ns: 1_000_000_000..=4_000_000_000,
            liveness_ns: 5_000_000_000,
            workload_tail_ns: 300_000_000,
            faults: FaultBounds::default(),
            trace: false,
            flight_recorder_bytes: 0,
            max_events: 5_000_000,
            max_drain_ns: 60_000_000_000,
            max_trace_lines: 2_000_000,
            plan: None,
        }
    }
}

/// Counters for one run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events taken off the queue.
    pub events: u64,
    /// Datagrams sent (per destination).
    pub sent: u64,
    /// Datagrams handed to a node.
    pub delivered: u64,
    /// Extra copies created by duplication.
    pub duplicated: u64,
    /// Lost to partitions.
    pub dropped_partition: u64,
    /// Lost to random loss.
    pub dropped_loss: u64,
    /// Lost to MTU limits.
    pub dropped_mtu: u64,
    /// Arrived at a node that was down.
    pub dropped_down: u64,
    /// Arrived at a paused node whose socket buffer was full.
    pub dropped_overflow: u64,
    /// Crashes injected.
    pub crashes: u64,
    /// Restarts.
    pub restarts: u64,
    /// Pauses injected.
    pub pauses: u64,
    /// Clean leaves injected.
    pub leaves: u64,
    /// Partitions injected.
    pub partitions: u64,
    /// Lost to a cut link (one link, one direction).
    pub dropped_link: u64,
    /// Single-link cuts injected.
    pub link_cuts: u64,
    /// Replayed and forged datagrams injected.
    pub injected: u64,
    /// Injected datagrams the receiving node's link layer rejected.
    pub injected_rejected: u64,
    /// Durable writes that failed.
    pub persist_failed: u64,
    /// Durable writes that were slow.
    pub persist_slow: u64,
    /// Nodes that stopped themselves (after a failed write).
    pub stops: u64,
    /// Observations recorded.
    pub observations: u64,
}

/// One flight-recorder record placed on the virtual timeline.
#[derive(Clone, Debug, PartialEq)]
pub struct FlightRecord {
    /// The record's local `mono_ns` converted back to virtual time via the node's clock.
    pub vtime: VTime,
    /// The record.
    pub record: Record,
}

/// The outcome of a run.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// The seed.
    pub seed: u64,
    /// Number of nodes.
    pub nodes: usize,
    /// The fault parameters the seed drew.
    pub plan: FaultPlan,
    /// Everything observed.
    pub history: History,
    /// Every property that failed (empty = pass).
    pub violations: Vec<Violation>,
    /// Counters.
    pub stats: Stats,
    /// The per-event trace (empty unless [`SimOptions::trace`]).
    pub trace_lines: Vec<String>,
    /// Every node's flight-recorder records, merged in virtual-time order.
    pub flight: Vec<FlightRecord>,
}

impl RunReport {
    /// The merged flight recorder as `<time> n<node> <LEVEL> <subsys> <message>` lines.
    pub fn flight_recorder_lines(&self) -> Vec<String> {
        self.flight
            .iter()
            .map(|f| {
                let r = &f.record;
                let level = format!("{:?}", r.level).to_uppercase();
                format!(
                    "{} n{} {} {} {}",
                    fmt_time(f.vtime),
                    r.node,
                    level,
                    r.subsystem,
                    r.message
                )
            })
            .collect()
    }
}

/// `  12.345678ms`: virtual time in milliseconds with nanosecond precision.
pub fn fmt_time(t: VTime) -> String {
    format!("{:>5}.{:06}ms", t / 1_000_000, t % 1_000_000)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Up,
    Paused,
    Down,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FaultKind {
    Partition,
    Crash,
    Pause,
    Leave,
    LinkCut,
    Replay,
    Forge,
}

/// An adversarial datagram: what the engine expects the receiver to do with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Injected {
    /// A copy of a datagram the receiver accepted in its current incarnation.
    Replay,
    /// Such a copy with bytes altered.
    Forge,
}

/// A datagram a node accepted, kept for replays and forgeries.
struct Capture {
    to: usize,
    from: NodeId,
    link: u8,
    incarnation: u32,
    data: Rc<[u8]>,
}

/// Captures kept per run.
const MAX_CAPTURES: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Safety,
    Liveness,
}

enum Ev {
    Packet {
        to: usize,
        from: NodeId,
        link: u8,
        data: Rc<[u8]>,
        injected: Option<Injected>,
    },
    LinkRestore {
        cut: (NodeId, NodeId, u8),
        epoch: u64,
    },
    PersistDone {
        node: usize,
        incarnation: u32,
        write: PersistWrite,
    },
    Timer {
        node: usize,
        epoch: u64,
    },
    Tick {
        node: usize,
        epoch: u64,
    },
    Restart {
        node: usize,
        epoch: u64,
    },
    Resume {
        node: usize,
        epoch: u64,
    },
    Fault,
    Heal {
        epoch: u64,
    },
    Liveness,
    WorkloadOff,
    End,
}

struct Entry {
    time: VTime,
    seq: u64,
    ev: Ev,
}
// Ordered by (time, insertion counter) only: ties break by scheduling order.
impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        (self.time, self.seq) == (o.time, o.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.time, self.seq).cmp(&(o.time, o.seq))
    }
}

/// A datagram waiting in a paused node's socket buffer.
struct Buffered {
    from: NodeId,
    link: u8,
    data: Rc<[u8]>,
    injected: Option<Injected>,
}

struct Slot {
    id: NodeId,
    node: Option<Box<dyn SimNode>>,
    state: State,
    incarnation: u32,
    clock: Clock,
    /// Bumped whenever the node's timer is re-armed; stale timer events are ignored.
    timer_gen: u64,
    timer_at: Option<VTime>,
    /// Bumped on crash/restart so an old workload tick chain dies.
    tick_gen: u64,
    /// Bumped on every lifecycle change so stale restart/resume events are ignored.
    life_gen: u64,
    buffer: VecDeque<Buffered>,
    disk: Disk,
    /// The node's disk completes writes in the order they were issued: none before
    /// this time (a slow write delays the ones behind it).
    disk_free_at: VTime,
    /// Writes the disk finished that the (paused) process has not yet been told of.
    writes_done: VecDeque<u64>,
    logger: Logger,
    app_rng: Rng,
}

/// Cap on outputs drained from a node per input, so a runaway node cannot hang a run.
const MAX_DRAIN: usize = 1_000_000;

/// One simulation run. Build with [`Sim::new`], consume with [`Sim::run`].
pub struct Sim<'f> {
    opts: SimOptions,
    factory: &'f mut dyn NodeFactory,
    plan: FaultPlan,
    now: VTime,
    seq: u64,
    queue: BinaryHeap<Reverse<Entry>>,
    slots: Vec<Slot>,
    all: Vec<NodeId>,
    net: Network,
    rng_net: Rng,
    rng_fault: Rng,
    rng_sched: Rng,
    history: History,
    stats: Stats,
    trace: Vec<String>,
    phase: Phase,
    workload: bool,
    partition_gen: u64,
    violations: Vec<Violation>,
    trace_dropped: u64,
    /// Links per node (from the factory).
    links: u8,
    /// Cut `(from, to, link)` with the epoch of the cut.
    link_cuts: BTreeMap<(NodeId, NodeId, u8), u64>,
    link_cut_gen: u64,
    captures: Vec<Capture>,
}

impl<'f> Sim<'f> {
    /// Draws the seed's parameters and prepares (but does not start) the nodes.
    pub fn new(mut opts: SimOptions, factory: &'f mut dyn NodeFactory) -> Self {
        opts.nodes = opts.nodes.min(crate::swarm::MAX_NODES);
        let mut master = Rng::new(opts.seed);
        // Independent streams, so e.g. a change in the workload does not reshuffle the
        // network's decisions for the same seed.
        let mut rng_plan = master.fork();
        let mut rng_paths = master.fork();
        let mut rng_clock = master.fork();
        let mut rng_apps = master.fork();
        let rng_net = master.fork();
        let rng_fault = master.fork();
        let rng_sched = master.fork();
        factory.begin_run(opts.seed);
        let links = factory.links().clamp(1, 8);
        let drawn = FaultPlan::draw(&opts.faults, &opts.safety_ns, &mut rng_plan);
        let plan = opts.plan.clone().unwrap_or(drawn);
        let n = opts.nodes;
        let net = Network::new(n, &plan, &mut rng_paths);
        let all: Vec<NodeId> = (1..=n as NodeId).collect();
        let slots = all
            .iter()
            .map(|&id| {
                let ppm = i64::from(plan.drift_ppm);
                let drift_ppb =
                    rng_clock.gen_range(0..=(2 * ppm * 1000) as u64) as i64 - ppm * 1000;
                let offset = rng_clock.gen_range(0..=plan.clock_offset_max_ns);
                Slot {
                    id,
                    node: None,
                    state: State::Down,
                    incarnation: 0,
                    clock: Clock::new(offset, drift_ppb),
                    timer_gen: 0,
                    timer_at: None,
                    tick_gen: 0,
                    life_gen: 0,
                    buffer: VecDeque::new(),
                    disk: Disk::new(),
                    disk_free_at: 0,
                    writes_done: VecDeque::new(),
                    logger: if opts.flight_recorder_bytes > 0 {
                        Logger::memory(opts.flight_recorder_bytes)
                    } else {
                        Logger::discard()
                    },
                    app_rng: rng_apps.fork(),
                }
            })
            .collect();
        Self {
            history: History::new(all.clone()),
            opts,
            factory,
            plan,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            slots,
            all,
            net,
            rng_net,
            rng_fault,
            rng_sched,
            stats: Stats::default(),
            trace: Vec::new(),
            phase: Phase::Safety,
            workload: true,
            partition_gen: 0,
            violations: Vec::new(),
            trace_dropped: 0,
            links,
            link_cuts: BTreeMap::new(),
            link_cut_gen: 0,
            captures: Vec::new(),
        }
    }

    /// The parameters this seed drew.
    pub fn plan(&self) -> &FaultPlan {
        &self.plan
    }

    /// Runs both phases and the checkers.
    pub fn run(mut self) -> RunReport {
        let safety_end = self.plan.safety_ns;
        let end = safety_end.saturating_add(self.opts.liveness_ns);
        if self.opts.trace {
            self.trace.push(format!(
                "seed {} nodes {} plan {:?}",
                self.opts.seed, self.opts.nodes, self.plan
            ));
        }
        for i in 0..self.slots.len() {
            self.start_node(i, false);
        }
        self.history.quiet_network = self.plan.quiet();
        if self.plan.weights.total() > 0 {
            let dt = self.rng_sched.gen_exp(self.plan.fault_interval_ns);
            if dt < safety_end {
                self.push(dt, Ev::Fault);
            }
        }
        self.push(safety_end, Ev::Liveness);
        self.push(
            safety_end.saturating_add(self.opts.workload_tail_ns),
            Ev::WorkloadOff,
        );
        self.push(end, Ev::End);
        while let Some(Reverse(e)) = self.queue.pop() {
            self.now = e.time;
            self.stats.events += 1;
            if self.stats.events > self.opts.max_events {
                self.violations.push(Violation::new(
                    "engine",
                    format!(
                        "event budget of {} exceeded at {}",
                        self.opts.max_events,
                        fmt_time(self.now)
                    ),
                ));
                break;
            }
            if matches!(e.ev, Ev::End) {
                let settled = self
                    .slots
                    .iter()
                    .all(|s| s.node.as_ref().is_none_or(|n| n.status().quiescent));
                if !settled && self.now < end.saturating_add(self.opts.max_drain_ns) {
                    // Messages are still queued or undelivered: let them drain.
                    self.push(self.now + 100_000_000, Ev::End);
                    continue;
                }
                if !settled {
                    self.violations.push(Violation::new(
                        "liveness",
                        format!(
                            "not quiescent {} after the liveness phase",
                            fmt_time(self.opts.max_drain_ns)
                        ),
                    ));
                }
                self.tr(|| "END".to_string());
                break;
            }
            self.dispatch(e.ev);
        }
        self.finish()
    }

    fn finish(mut self) -> RunReport {
        self.history.end = self.now;
        self.history.final_status = self
            .slots
            .iter()
            .map(|s| {
                (
                    s.id,
                    if s.state == State::Down {
                        None
                    } else {
                        s.node.as_ref().map(|n| n.status())
                    },
                )
            })
            .collect();
        let mut flight: Vec<FlightRecord> = self
            .slots
            .iter()
            .flat_map(|s| {
                let clock = s.clock;
                s.logger.records().into_iter().map(move |r| FlightRecord {
                    vtime: clock.to_vtime(r.mono_ns),
                    record: r,
                })
            })
            .collect();
        flight.sort_by_key(|f| (f.vtime, f.record.node));
        if self.trace_dropped > 0 {
            self.trace.push(format!(
                "({} more trace lines not kept)",
                self.trace_dropped
            ));
        }
        let mut violations = std::mem::take(&mut self.violations);
        violations.extend(self.factory.check(&self.history));
        RunReport {
            seed: self.opts.seed,
            nodes: self.opts.nodes,
            plan: self.plan,
            history: self.history,
            violations,
            stats: self.stats,
            trace_lines: self.trace,
            flight,
        }
    }

    fn push(&mut self, time: VTime, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse(Entry {
            time,
            seq: self.seq,
            ev,
        }));
    }

    /// Adds a trace line; the closure keeps formatting off the fast path.
    fn tr(&mut self, line: impl FnOnce() -> String) {
        if self.opts.trace && self.trace.len() >= self.opts.max_trace_lines {
            self.trace_dropped += 1;
        } else if self.opts.trace {
            let mut s = fmt_time(self.now);
            s.push(' ');
            s.push_str(&line());
            self.trace.push(s);
        }
    }

    fn local(&self, i: usize) -> u64 {
        self.slots[i].clock.local(self.now)
    }

    fn dispatch(&mut self, ev: Ev) {
        match ev {
            Ev::Packet {
                to,
                from,
                link,
                data,
                injected,
            } => self.arrive(to, from, link, data, injected),
            Ev::LinkRestore { cut, epoch } => {
                if self.link_cuts.get(&cut) == Some(&epoch) {
                    self.link_cuts.remove(&cut);
                    self.tr(|| format!("link {} {}->{} restored", cut.2, cut.0, cut.1));
                }
            }
            Ev::PersistDone {
                node,
                incarnation,
                write,
            } => {
                let s = &mut self.slots[node];
                let id = s.id;
                // The disk finishes the write whatever the process does; a crashed
                // process never hears of it, a paused one when it resumes.
                s.disk.insert(write.file.clone(), write.bytes);
                let current = incarnation == s.incarnation && s.state != State::Down;
                self.tr(|| {
                    let stale = if current { "" } else { " (process gone)" };
                    format!("n{id} write {} done{stale}", write.file)
                });
                if current {
                    self.slots[node].writes_done.push_back(write.id);
                    if self.slots[node].state == State::Up {
                        self.drain(node);
                    }
                }
            }
            Ev::Timer { node, epoch } => {
                let s = &mut self.slots[node];
                if epoch != s.timer_gen {
                    return;
                }
                s.timer_at = None;
                // A paused node's expired timer is handled (late) when it resumes.
                if s.state == State::Up {
                    let id = s.id;
                    self.tr(|| format!("n{id} timeout"));
                    let now = self.local(node);
                    if let Some(n) = self.slots[node].node.as_mut() {
                        n.handle_timeout(now);
                    }
                    self.drain(node);
                }
            }
            Ev::Tick { node, epoch } => {
                if epoch != self.slots[node].tick_gen || !self.workload {
                    return;
                }
                if self.slots[node].state == State::Up {
                    let now = self.local(node);
                    let s = &mut self.slots[node];
                    if let Some(n) = s.node.as_mut() {
                        n.app_tick(now, &mut s.app_rng);
                    }
                    self.drain(node);
                }
                self.schedule_tick(node);
            }
            Ev::Restart { node, epoch } => {
                if epoch == self.slots[node].life_gen && self.slots[node].state == State::Down {
                    self.start_node(node, true);
                }
            }
            Ev::Resume { node, epoch } => {
                if epoch == self.slots[node].life_gen && self.slots[node].state == State::Paused {
                    self.resume(node);
                }
            }
            Ev::Fault => self.inject_fault(),
            Ev::Heal { epoch } => {
                if epoch == self.partition_gen && self.net.is_partitioned() {
                    self.heal();
                }
            }
            Ev::Liveness => self.enter_liveness(),
            Ev::WorkloadOff => {
                self.workload = false;
                self.tr(|| "workload off".to_string());
            }
            Ev::End => {}
        }
    }

    fn schedule_tick(&mut self, i: usize) {
        if !self.workload {
            return;
        }
        let dt = self.rng_sched.gen_exp(self.plan.app_tick_ns).max(1);
        let epoch = self.slots[i].tick_gen;
        self.push(self.now.saturating_add(dt), Ev::Tick { node: i, epoch });
    }

    /// Creates node `i` (a new incarnation if `restart`) and lets it speak.
    fn start_node(&mut self, i: usize, restart: bool) {
        let now = self.local(i);
        let s = &mut self.slots[i];
        if restart {
            s.incarnation += 1;
        }
        s.life_gen += 1;
        s.tick_gen += 1;
        s.timer_gen += 1;
        s.timer_at = None;
        s.state = State::Up;
        s.buffer.clear();
        s.writes_done.clear();
        let seed = mix(&[self.opts.seed, u64::from(s.id), u64::from(s.incarnation)]);
        let node = self.factory.create(
            s.id,
            &self.all,
            s.incarnation,
            seed,
            now,
            &mut s.disk,
            s.logger.clone(),
        );
        s.node = Some(node);
        let (id, inc) = (s.id, s.incarnation);
        if restart {
            self.stats.restarts += 1;
            self.history.push(self.now, id, inc, EventKind::Restart);
            self.tr(|| format!("n{id} RESTART incarnation {inc}"));
        }
        self.drain(i);
        self.schedule_tick(i);
    }

    /// Drops node `i`'s object (volatile state lost; disk kept) and schedules a restart.
    fn stop_node(&mut self, i: usize, kind: EventKind) {
        let s = &mut self.slots[i];
        s.node = None;
        s.state = State::Down;
        s.life_gen += 1;
        s.tick_gen += 1;
        s.timer_gen += 1;
        s.timer_at = None;
        s.buffer.clear();
        let (id, inc, epoch) = (s.id, s.incarnation, s.life_gen);
        let what = if kind == EventKind::Crash {
            "CRASH"
        } else {
            "LEAVE"
        };
        self.history.push(self.now, id, inc, kind);
        self.tr(|| format!("n{id} {what}"));
        let b = &self.opts.faults.restart_delay_ns;
        let delay = self.rng_fault.gen_range(*b.start()..=*b.end());
        self.push(
            self.now.saturating_add(delay),
            Ev::Restart { node: i, epoch },
        );
    }

    fn resume(&mut self, i: usize) {
        let now = self.local(i);
        let s = &mut self.slots[i];
        s.state = State::Up;
        s.life_gen += 1;
        let (id, inc) = (s.id, s.incarnation);
        self.history.push(self.now, id, inc, EventKind::Resume);
        let queued = self.slots[i].buffer.len();
        self.tr(|| format!("n{id} RESUME ({queued} queued)"));
        // First the timeout that expired while paused, late, then the queued datagrams:
        // the order a process sees after a long scheduling stall.
        if let Some(n) = self.slots[i].node.as_mut()
            && n.poll_timeout().is_some_and(|d| d <= now)
        {
            n.handle_timeout(now);
        }
        self.drain(i);
        while let Some(b) = self.slots[i].buffer.pop_front() {
            self.stats.delivered += 1;
            self.hand_over(i, now, b.from, b.link, b.data, b.injected);
            self.drain(i);
        }
    }

    /// Drains node `i`'s transmits and observations, then re-arms its timer.
    fn drain(&mut self, i: usize) {
        let Some(mut node) = self.slots[i].node.take() else {
            return;
        };
        node.persist(&mut self.slots[i].disk);
        loop {
            // Writes first: the transmits they hold back come out once they are done.
            let mut wrote = false;
            let now = self.local(i);
            while let Some(id) = self.slots[i].writes_done.pop_front() {
                node.persist_done(now, id, true);
                wrote = true;
            }
            while let Some(w) = node.poll_persist() {
                wrote |= self.persist(i, &mut *node, w);
            }
            let mut budget = MAX_DRAIN;
            while let Some(tx) = node.poll_transmit() {
                self.send(i, tx);
                budget -= 1;
                if budget == 0 {
                    self.runaway(i);
                    break;
                }
            }
            let mut budget = MAX_DRAIN;
            while let Some(obs) = node.poll_observation() {
                self.observe(i, obs);
                budget -= 1;
                if budget == 0 {
                    self.runaway(i);
                    break;
                }
            }
            if !wrote {
                break;
            }
        }
        if node.stopped() {
            let id = self.slots[i].id;
            self.stats.stops += 1;
            self.tr(|| format!("n{id} STOPPED itself"));
            self.stop_node(i, EventKind::Crash);
            return;
        }
        let s = &mut self.slots[i];
        let deadline = node
            .poll_timeout()
            .map(|l| s.clock.to_vtime(l).max(self.now));
        s.node = Some(node);
        if deadline != s.timer_at {
            s.timer_gen += 1;
            s.timer_at = deadline;
            if let Some(t) = deadline {
                let epoch = s.timer_gen;
                self.push(t, Ev::Timer { node: i, epoch });
            }
        }
    }

    /// Performs one durable write as the plan draws: done at once (true), failed,
    /// or slow (done by a later event). Writes complete in the order issued.
    fn persist(&mut self, i: usize, node: &mut dyn SimNode, w: PersistWrite) -> bool {
        let now = self.local(i);
        let id = self.slots[i].id;
        if self.plan.persist_fail > 0.0 && self.rng_fault.gen_bool(self.plan.persist_fail) {
            self.stats.persist_failed += 1;
            self.tr(|| format!("n{id} write {} FAILED", w.file));
            node.persist_done(now, w.id, false);
            return true;
        }
        let mut delay = 0;
        if self.plan.persist_slow > 0.0 && self.rng_fault.gen_bool(self.plan.persist_slow) {
            self.stats.persist_slow += 1;
            let b = &self.opts.faults.persist_slow_ns;
            delay = self.rng_fault.gen_range(*b.start()..=*b.end());
        }
        let done_at = self
            .now
            .max(self.slots[i].disk_free_at)
            .saturating_add(delay);
        self.slots[i].disk_free_at = done_at;
        if done_at == self.now {
            let wid = w.id;
            self.slots[i].disk.insert(w.file, w.bytes);
            node.persist_done(now, wid, true);
            return true;
        }
        let wait = fmt_time(done_at - self.now);
        self.tr(|| {
            format!(
                "n{id} write {} {:?} done in {}",
                w.file,
                w.bytes,
                wait.trim()
            )
        });
        let incarnation = self.slots[i].incarnation;
        self.push(
            done_at,
            Ev::PersistDone {
                node: i,
                incarnation,
                write: w,
            },
        );
        false
    }

    fn runaway(&mut self, i: usize) {
        let id = self.slots[i].id;
        self.violations.push(Violation::new(
            "engine",
            format!("n{id} produced over {MAX_DRAIN} outputs for one input"),
        ));
    }

    fn send(&mut self, i: usize, tx: Transmit) {
        let from = self.slots[i].id;
        let len = tx.data.len();
        let data: Rc<[u8]> = Rc::from(tx.data);
        match tx.dest {
            Destination::Node(to) => {
                self.tr(|| format!("n{from} send to n{to} {len}B"));
                match self.all.binary_search(&to) {
                    Ok(j) => self.route(from, j, tx.link, &data),
                    Err(_) => self.tr(|| format!("n{from}->n{to} drop unknown")),
                }
            }
            Destination::AllNodes => {
                self.tr(|| format!("n{from} send all {len}B"));
                for j in 0..self.slots.len() {
                    if j != i {
                        self.route(from, j, tx.link, &data);
                    }
                }
            }
        }
    }

    fn route(&mut self, from: NodeId, j: usize, link: u8, data: &Rc<[u8]>) {
        self.stats.sent += 1;
        let to = self.slots[j].id;
        if link >= self.links || self.link_cuts.contains_key(&(from, to, link)) {
            self.stats.dropped_link += 1;
            self.tr(|| format!("n{from}->n{to} drop link {link} cut"));
            return;
        }
        match self.net.route(&mut self.rng_net, from, to, data.len()) {
            Ok((d, dup)) => {
                self.push(
                    self.now.saturating_add(d),
                    Ev::Packet {
                        to: j,
                        from,
                        link,
                        data: data.clone(),
                        injected: None,
                    },
                );
                if let Some(d2) = dup {
                    self.stats.duplicated += 1;
                    self.push(
                        self.now.saturating_add(d2),
                        Ev::Packet {
                            to: j,
                            from,
                            link,
                            data: data.clone(),
                            injected: None,
                        },
                    );
                }
            }
            Err(reason) => {
                match reason {
                    crate::net::DropReason::Partition => self.stats.dropped_partition += 1,
                    crate::net::DropReason::Loss => self.stats.dropped_loss += 1,
                    crate::net::DropReason::Mtu => self.stats.dropped_mtu += 1,
                }
                self.tr(|| format!("n{from}->n{to} drop {}", reason.name()));
            }
        }
    }

    fn arrive(
        &mut self,
        j: usize,
        from: NodeId,
        link: u8,
        data: Rc<[u8]>,
        injected: Option<Injected>,
    ) {
        let id = self.slots[j].id;
        match self.slots[j].state {
            State::Down => {
                self.stats.dropped_down += 1;
                self.tr(|| format!("n{id} down, drop from n{from}"));
            }
            State::Paused => {
                if self.slots[j].buffer.len() < self.opts.faults.socket_buffer {
                    self.slots[j].buffer.push_back(Buffered {
                        from,
                        link,
                        data,
                        injected,
                    });
                } else {
                    self.stats.dropped_overflow += 1;
                    self.tr(|| format!("n{id} paused, buffer full, drop from n{from}"));
                }
            }
            State::Up => {
                self.stats.delivered += 1;
                let len = data.len();
                self.tr(|| format!("n{id} recv from n{from} link {link} {len}B"));
                let now = self.local(j);
                self.hand_over(j, now, from, link, data, injected);
                self.drain(j);
            }
        }
    }

    /// Gives node `j` a datagram and judges its verdict on injected ones: a node
    /// that authenticates must reject every replay and forgery. Accepted genuine
    /// datagrams are captured for later injections.
    fn hand_over(
        &mut self,
        j: usize,
        now: u64,
        from: NodeId,
        link: u8,
        data: Rc<[u8]>,
        injected: Option<Injected>,
    ) {
        let s = &mut self.slots[j];
        let Some(n) = s.node.as_mut() else {
            return;
        };
        let accepted = n.handle_datagram(now, from, link, &data);
        let authenticates = n.authenticates();
        let (id, incarnation) = (s.id, s.incarnation);
        match injected {
            Some(kind) if !accepted => {
                self.stats.injected_rejected += 1;
                self.tr(|| format!("n{id} rejected {kind:?} from n{from}"));
            }
            Some(kind) if authenticates => {
                self.violations.push(Violation::new(
                    "link_authentication",
                    format!(
                        "n{id} accepted a {kind:?} datagram from n{from} on link {link} at {}",
                        fmt_time(self.now)
                    ),
                ));
            }
            Some(_) => {}
            None if accepted && self.phase == Phase::Safety => {
                let c = Capture {
                    to: j,
                    from,
                    link,
                    incarnation,
                    data,
                };
                if self.captures.len() < MAX_CAPTURES {
                    self.captures.push(c);
                } else {
                    let k = self.rng_fault.gen_range(0..MAX_CAPTURES as u64) as usize;
                    self.captures[k] = c;
                }
            }
            None => {}
        }
    }

    fn observe(&mut self, i: usize, obs: Observation) {
        let (id, inc) = (self.slots[i].id, self.slots[i].incarnation);
        self.stats.observations += 1;
        if self.opts.trace {
            let g = |g: Guarantee| {
                if g == Guarantee::Safe {
                    "safe"
                } else {
                    "agreed"
                }
            };
            let line = match &obs {
                Observation::Sent { msg, guarantee } => {
                    format!("n{id} sent {msg} {}", g(*guarantee))
                }
                Observation::Deliver {
                    msg,
                    guarantee,
                    intact,
                } => {
                    format!(
                        "n{id} deliver {msg} {}{}",
                        g(*guarantee),
                        if *intact { "" } else { " CORRUPT" }
                    )
                }
                Observation::Config {
                    kind,
                    ring,
                    old_ring,
                    members,
                } => {
                    let mut s = match kind {
                        ConfigKind::Regular => format!("n{id} config REG {}.{}", ring.0, ring.1),
                        ConfigKind::Transitional => {
                            format!("n{id} config TRANS {}.{}", ring.0, ring.1)
                        }
                    };
                    if let Some(o) = old_ring {
                        let _ = write!(s, "<-{}.{}", o.0, o.1);
                    }
                    let m: Vec<String> = members.iter().map(|m| m.to_string()).collect();
                    let _ = write!(s, " [{}]", m.join(","));
                    s
                }
                Observation::CpgView {
                    group,
                    receiver,
                    view,
                    members,
                    left,
                    joined,
                } => format!(
                    "n{id}/{receiver} cpg view {} {view} members {members:?} left {left:?} joined {joined:?}",
                    group.escape_ascii()
                ),
                Observation::CpgDeliver {
                    group,
                    receiver,
                    sender,
                    msg,
                    intact,
                } => format!(
                    "n{id}/{receiver} cpg deliver {} {msg} from {}/{}{}",
                    group.escape_ascii(),
                    sender.0,
                    sender.1,
                    if *intact { "" } else { " CORRUPT" }
                ),
                Observation::CpgSent { group, sender, msg } => {
                    format!("n{id}/{sender} cpg sent {} {msg}", group.escape_ascii())
                }
                Observation::CpgRequest {
                    group,
                    local,
                    request,
                } => format!("n{id}/{local} cpg {request:?} {}", group.escape_ascii()),
                Observation::Cib(o) => format!("n{id} cib {o:?}"),
                Observation::Quorum {
                    quorate,
                    ring,
                    members,
                } => format!(
                    "n{id} quorum {} {}.{} {members:?}",
                    if *quorate { "QUORATE" } else { "inquorate" },
                    ring.0,
                    ring.1
                ),
            };
            self.tr(|| line);
        }
        self.history.observe(self.now, id, inc, obs);
    }

    fn inject_fault(&mut self) {
        let mut w = self.plan.weights;
        if self.links < 2 {
            w.link_cut = 0;
        }
        if self.phase != Phase::Safety || w.total() == 0 {
            return;
        }
        let mut r = self.rng_fault.gen_range(0..u64::from(w.total())) as u32;
        let mut kind = FaultKind::Leave;
        for (weight, k) in [
            (w.partition, FaultKind::Partition),
            (w.crash, FaultKind::Crash),
            (w.pause, FaultKind::Pause),
            (w.leave, FaultKind::Leave),
            (w.link_cut, FaultKind::LinkCut),
            (w.replay, FaultKind::Replay),
            (w.forge, FaultKind::Forge),
        ] {
            if r < weight {
                kind = k;
                break;
            }
            r -= weight;
        }
        let candidates: Vec<usize> = (0..self.slots.len())
            .filter(|&i| match kind {
                FaultKind::Crash => self.slots[i].state != State::Down,
                _ => self.slots[i].state == State::Up,
            })
            .collect();
        let victim = (!candidates.is_empty())
            .then(|| candidates[self.rng_fault.gen_range(0..candidates.len() as u64) as usize]);
        match (kind, victim) {
            (FaultKind::Partition, _) => self.partition(),
            (FaultKind::LinkCut, _) => self.cut_link(),
            (FaultKind::Replay, _) => self.inject(Injected::Replay),
            (FaultKind::Forge, _) => self.inject(Injected::Forge),
            (FaultKind::Crash, Some(i)) => {
                self.stats.crashes += 1;
                self.stop_node(i, EventKind::Crash);
            }
            (FaultKind::Pause, Some(i)) => self.pause(i),
            (FaultKind::Leave, Some(i)) => {
                let now = self.local(i);
                if let Some(n) = self.slots[i].node.as_mut() {
                    n.leave(now);
                }
                // Let the leaving node say goodbye before it goes.
                self.drain(i);
                self.stats.leaves += 1;
                self.stop_node(i, EventKind::Leave);
            }
            (_, None) => {}
        }
        let dt = self.rng_sched.gen_exp(self.plan.fault_interval_ns).max(1);
        if self.now.saturating_add(dt) < self.plan.safety_ns {
            self.push(self.now + dt, Ev::Fault);
        }
    }

    fn pause(&mut self, i: usize) {
        let b = &self.opts.faults.pause_ns;
        let d = self.rng_fault.gen_range(*b.start()..=*b.end());
        let s = &mut self.slots[i];
        s.state = State::Paused;
        s.life_gen += 1;
        let (id, inc, epoch) = (s.id, s.incarnation, s.life_gen);
        self.stats.pauses += 1;
        self.history.push(self.now, id, inc, EventKind::Pause);
        self.tr(|| format!("n{id} PAUSE for {}", fmt_time(d).trim()));
        self.push(self.now.saturating_add(d), Ev::Resume { node: i, epoch });
    }

    /// Cuts one link in one direction, never the last uncut link of that direction.
    fn cut_link(&mut self) {
        let n = self.slots.len() as u64;
        if n < 2 {
            return;
        }
        let from = self.rng_fault.gen_range(1..=n) as NodeId;
        let mut to = self.rng_fault.gen_range(1..n) as NodeId;
        if to >= from {
            to += 1;
        }
        let link = self.rng_fault.gen_range(0..u64::from(self.links)) as u8;
        let uncut = (0..self.links)
            .filter(|l| !self.link_cuts.contains_key(&(from, to, *l)))
            .count();
        if uncut < 2 || self.link_cuts.contains_key(&(from, to, link)) {
            return;
        }
        self.link_cut_gen += 1;
        let epoch = self.link_cut_gen;
        self.link_cuts.insert((from, to, link), epoch);
        self.stats.link_cuts += 1;
        let b = &self.opts.faults.link_cut_ns;
        let d = self.rng_fault.gen_range(*b.start()..=*b.end());
        self.tr(|| format!("link {link} {from}->{to} CUT for {}", fmt_time(d).trim()));
        self.push(
            self.now.saturating_add(d),
            Ev::LinkRestore {
                cut: (from, to, link),
                epoch,
            },
        );
    }

    /// Sends a captured datagram again (altered, for a forgery) to the node that
    /// accepted it, if that node still runs the same incarnation.
    fn inject(&mut self, kind: Injected) {
        if self.captures.is_empty() {
            return;
        }
        let k = self.rng_fault.gen_range(0..self.captures.len() as u64) as usize;
        let c = &self.captures[k];
        let (to, from, link) = (c.to, c.from, c.link);
        if self.slots[to].incarnation != c.incarnation || self.slots[to].state == State::Down {
            return;
        }
        let mut data = c.data.to_vec();
        if kind == Injected::Forge && !data.is_empty() {
            let flips = 1 + self.rng_fault.gen_range(0..3);
            for _ in 0..flips {
                let at = self.rng_fault.gen_range(0..data.len() as u64) as usize;
                data[at] ^= 1 << self.rng_fault.gen_range(0..8);
            }
        }
        self.stats.injected += 1;
        let id = self.slots[to].id;
        self.tr(|| format!("inject {kind:?} n{from}->n{id} link {link}"));
        let d = self.rng_fault.gen_range(0..=1_000_000);
        self.push(
            self.now.saturating_add(d),
            Ev::Packet {
                to,
                from,
                link,
                data: Rc::from(data),
                injected: Some(kind),
            },
        );
    }

    fn partition(&mut self) {
        let (kind, blocked) = draw_partition(&mut self.rng_fault, self.slots.len());
        self.net.set_blocked(&blocked);
        self.partition_gen += 1;
        self.stats.partitions += 1;
        let b = &self.opts.faults.partition_ns;
        let d = self.rng_fault.gen_range(*b.start()..=*b.end());
        let epoch = self.partition_gen;
        self.push(self.now.saturating_add(d), Ev::Heal { epoch });
        let n = self.slots.len();
        self.tr(|| format!("partition {kind:?} {}", describe_partition(n, &blocked)));
        self.history
            .push(self.now, 0, 0, EventKind::PartitionChange { blocked });
    }

    fn heal(&mut self) {
        self.net.set_blocked(&[]);
        self.partition_gen += 1;
        self.tr(|| "partition healed".to_string());
        self.history.push(
            self.now,
            0,
            0,
            EventKind::PartitionChange {
                blocked: Vec::new(),
            },
        );
    }

    fn enter_liveness(&mut self) {
        self.phase = Phase::Liveness;
        self.tr(|| "LIVENESS phase: heal, resume, restart, network faults off".to_string());
        if self.net.is_partitioned() {
            self.heal();
        }
        self.link_cuts.clear();
        // Disks heal too: writes neither fail nor stall from now on.
        self.plan.persist_fail = 0.0;
        self.plan.persist_slow = 0.0;
        self.net.calm();
        for i in 0..self.slots.len() {
            match self.slots[i].state {
                State::Paused => self.resume(i),
                State::Down => self.start_node(i, true),
                State::Up => {}
            }
        }
    }
}

/// `{1,2}|{3}` when the cut is symmetric (connected groups), otherwise the cut
/// directed links, `1->2 3->1`.
fn describe_partition(n: usize, blocked: &[(NodeId, NodeId)]) -> String {
    let symmetric = blocked
        .iter()
        .all(|&(a, b)| blocked.binary_search(&(b, a)).is_ok());
    if !symmetric {
        let parts: Vec<String> = blocked.iter().map(|(a, b)| format!("{a}->{b}")).collect();
        return parts.join(" ");
    }
    // Group nodes by reachability over uncut links (union of a simple flood fill).
    let mut group = vec![usize::MAX; n];
    let mut groups: Vec<Vec<NodeId>> = Vec::new();
    for start in 0..n {
        if group[start] != usize::MAX {
            continue;
        }
        let g = groups.len();
        let mut stack = vec![start];
        group[start] = g;
        let mut members = Vec::new();
        while let Some(x) = stack.pop() {
            members.push(x as NodeId + 1);
            for (y, gy) in group.iter_mut().enumerate() {
                let cut = blocked
                    .binary_search(&(x as NodeId + 1, y as NodeId + 1))
                    .is_ok();
                if *gy == usize::MAX && y != x && !cut {
                    *gy = g;
                    stack.push(y);
                }
            }
        }
        members.sort_unstable();
        groups.push(members);
    }
    let parts: Vec<String> = groups
        .iter()
        .map(|g| {
            format!(
                "{{{}}}",
                g.iter()
                    .map(|m| m.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            )
        })
        .collect();
    parts.join("|")
}
