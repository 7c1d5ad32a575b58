//! A scheduled network for membership scenarios: every directed link has its own
//! latency (plus jitter, first-in first-out per link), links are cut and restored
//! per direction at chosen virtual times, the first datagrams after a restore can be
//! dropped (as neighbour resolution does on a re-plugged cable), and a node can be
//! stalled (a loaded machine not scheduling the process). A run is a pure function
//! of the seed and the schedule, so a failing seed replays exactly, with a trace of
//! every membership datagram, configuration and core log record.

#![allow(dead_code)]

use phalanx_logsys::Logger;
use phalanx_totem::wire::{self, Message};
use phalanx_totem::{
    Config, ConfigChange, ConfigKind, Destination, Event, Guarantee, NodeId, Time, Totem,
};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// SplitMix64: enough randomness for latencies, and stable for replay.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A stream that is a function of `seed` only.
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5EED_0F4E_A15E)
    }

    /// Next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Packet {
    at: u64,
    seq: u64,
    to: usize,
    from: usize,
    data: Vec<u8>,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Change {
    /// The link `from → to` comes back; its first `drop_first` datagrams are lost.
    LinkUp {
        from: usize,
        to: usize,
        drop_first: u32,
    },
    /// Node `node` stops until `until`.
    Stall { node: usize, until: u64 },
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Scheduled {
    at: u64,
    seq: u64,
    change: Change,
}

/// A regular or transitional configuration a node installed, and when.
#[derive(Clone, Debug)]
pub struct Installed {
    /// Virtual time in ns.
    pub at: u64,
    /// The configuration.
    pub change: ConfigChange,
}

/// Nodes `1..=n` on scheduled links.
pub struct LinkNet {
    /// The cores, node id `i + 1` at index `i`.
    pub nodes: Vec<Totem>,
    /// Virtual time in ns.
    pub now: u64,
    n: usize,
    base_ns: Vec<u64>,
    jitter_ns: u64,
    up: Vec<bool>,
    drop_first: Vec<u32>,
    /// Datagrams sent on each cut link, kept for delivery when it comes back.
    held: Vec<VecDeque<(u64, Vec<u8>)>>,
    /// How old a held datagram may be when its link comes back (0: none held).
    hold_while_down_ns: u64,
    /// Arrival time of the last datagram queued on each directed link (FIFO links).
    last_arrival: Vec<u64>,
    packets: BinaryHeap<Reverse<Packet>>,
    changes: BinaryHeap<Reverse<Scheduled>>,
    stalled_until: Vec<u64>,
    seq: u64,
    rng: Rng,
    /// Every configuration each node installed.
    pub configs: Vec<Vec<Installed>>,
    /// Messages each node delivered.
    pub delivered: Vec<u64>,
    loggers: Vec<Logger>,
    trace: Option<Vec<(u64, String)>>,
}

impl LinkNet {
    /// `n` nodes configured by `cfg`, every directed link's latency drawn from
    /// `latency_ns` (plus up to `jitter_ns` per datagram). With `trace`, membership
    /// datagrams, configurations and the cores' log records are kept for
    /// [`LinkNet::trace_lines`].
    pub fn new(
        n: usize,
        cfg: impl Fn(NodeId, Vec<NodeId>) -> Config,
        seed: u64,
        latency_ns: (u64, u64),
        jitter_ns: u64,
        trace: bool,
    ) -> Self {
        let mut rng = Rng::new(seed);
        let ids: Vec<NodeId> = (1..=n as NodeId).collect();
        let loggers: Vec<Logger> = ids
            .iter()
            .map(|_| {
                if trace {
                    Logger::memory(64 << 20)
                } else {
                    Logger::discard()
                }
            })
            .collect();
        let nodes = ids
            .iter()
            .zip(&loggers)
            .map(|(&id, log)| {
                Totem::new(cfg(id, ids.clone()), None, Time::ZERO, log.clone())
                    .expect("valid config")
            })
            .collect();
        let base_ns = (0..n * n)
            .map(|_| rng.range(latency_ns.0, latency_ns.1))
            .collect();
        let mut net = LinkNet {
            nodes,
            now: 0,
            n,
            base_ns,
            jitter_ns,
            up: vec![true; n * n],
            drop_first: vec![0; n * n],
            held: vec![VecDeque::new(); n * n],
            hold_while_down_ns: 0,
            last_arrival: vec![0; n * n],
            packets: BinaryHeap::new(),
            changes: BinaryHeap::new(),
            stalled_until: vec![0; n],
            seq: 0,
            rng,
            configs: vec![Vec::new(); n],
            delivered: vec![0; n],
            loggers,
            trace: trace.then(Vec::new),
        };
        for i in 0..n {
            net.drain(i);
        }
        net
    }

    fn link(&self, from: usize, to: usize) -> usize {
        from * self.n + to
    }

    fn note(&mut self, line: impl FnOnce() -> String) {
        if let Some(t) = &mut self.trace {
            t.push((self.now, line()));
        }
    }

    /// Node `id` multicasts `data` now (agreed order).
    pub fn mcast(&mut self, id: NodeId, data: &[u8]) {
        let i = id as usize - 1;
        self.nodes[i]
            .mcast(Time::from_nanos(self.now), Guarantee::Agreed, data)
            .expect("room in the send queue");
        self.drain(i);
    }

    /// Cuts or restores the link `from → to` (node ids) now.
    pub fn set_link(&mut self, from: NodeId, to: NodeId, up: bool) {
        let l = self.link(from as usize - 1, to as usize - 1);
        self.up[l] = up;
        self.note(|| format!("link {from}->{to} {}", if up { "UP" } else { "DOWN" }));
    }

    /// Datagrams sent on a cut link are kept, and those at most `window_ns` old
    /// are delivered (before anything newer) when the link comes back: a sender's
    /// neighbour-resolution queue, which holds datagrams for an unresolved
    /// address for seconds and flushes them once the peer answers again.
    pub fn hold_while_down(&mut self, window_ns: u64) {
        self.hold_while_down_ns = window_ns;
    }

    /// Cuts every link between `a` and `b`, both directions, now.
    pub fn partition(&mut self, a: &[NodeId], b: &[NodeId]) {
        for &x in a {
            for &y in b {
                self.set_link(x, y, false);
                self.set_link(y, x, false);
            }
        }
    }

    /// Restores the link `from → to` at `at`; its first `drop_first` datagrams
    /// after that are lost.
    pub fn schedule_up(&mut self, at: u64, from: NodeId, to: NodeId, drop_first: u32) {
        self.schedule(
            at,
            Change::LinkUp {
                from: from as usize - 1,
                to: to as usize - 1,
                drop_first,
            },
        );
    }

    /// From `at`, node `id` neither receives nor runs timers for `duration_ns`
    /// (its datagrams wait, as in a socket buffer): a process not scheduled on a
    /// loaded machine.
    pub fn schedule_stall(&mut self, at: u64, id: NodeId, duration_ns: u64) {
        self.schedule(
            at,
            Change::Stall {
                node: id as usize - 1,
                until: at + duration_ns,
            },
        );
    }

    fn schedule(&mut self, at: u64, change: Change) {
        self.seq += 1;
        self.changes.push(Reverse(Scheduled {
            at,
            seq: self.seq,
            change,
        }));
    }

    /// Moves node `i`'s outputs onto the links and its configurations into the log.
    fn drain(&mut self, i: usize) {
        while let Some(t) = self.nodes[i].poll_transmit() {
            let dests: Vec<usize> = match &t.dest {
                Destination::Node(d) => vec![*d as usize - 1],
                Destination::Members(m) => m.iter().map(|d| *d as usize - 1).collect(),
                Destination::All => (0..self.n).filter(|j| *j != i).collect(),
            };
            for j in dests {
                let l = self.link(i, j);
                if !self.up[l] {
                    if self.hold_while_down_ns > 0 {
                        self.held[l].push_back((self.now, t.data.clone()));
                        let oldest = self.now.saturating_sub(self.hold_while_down_ns);
                        while self.held[l].front().is_some_and(|(at, _)| *at < oldest) {
                            self.held[l].pop_front();
                        }
                    }
                    continue;
                }
                if self.drop_first[l] > 0 {
                    self.drop_first[l] -= 1;
                    let what = describe(&t.data);
                    self.note(|| format!("n{}->n{} DROPPED {what}", i + 1, j + 1));
                    continue;
                }
                self.transmit(i, j, t.data.clone());
            }
        }
        while let Some(e) = self.nodes[i].poll_event() {
            if let Event::Deliver(_) = e {
                self.delivered[i] += 1;
            }
            if let Event::Config(c) = e {
                let kind = match c.kind {
                    ConfigKind::Regular => "REG",
                    ConfigKind::Transitional => "TRANS",
                };
                let line = format!("n{} CONFIG {kind} {} {:?}", i + 1, c.ring, c.members);
                self.note(|| line);
                self.configs[i].push(Installed {
                    at: self.now,
                    change: c,
                });
            }
        }
    }

    /// Puts a datagram on the link `from → to` (indices), behind what is on it.
    fn transmit(&mut self, from: usize, to: usize, data: Vec<u8>) {
        let l = self.link(from, to);
        let jitter = self.rng.range(0, self.jitter_ns);
        let at = (self.now + self.base_ns[l] + jitter).max(self.last_arrival[l]);
        self.last_arrival[l] = at;
        self.seq += 1;
        self.packets.push(Reverse(Packet {
            at,
            seq: self.seq,
            to,
            from,
            data,
        }));
    }

    /// Runs one event (link change, datagram or timer, in that order on ties).
    /// Returns false when nothing is left to happen.
    pub fn step(&mut self) -> bool {
        let t_change = self.changes.peek().map(|c| c.0.at);
        let t_packet = self.packets.peek().map(|p| p.0.at);
        let t_timer = (0..self.n)
            .filter_map(|i| {
                self.nodes[i]
                    .poll_timeout()
                    .map(|t| (t.as_nanos().max(self.stalled_until[i]), i))
            })
            .min();
        let next = [t_change, t_packet, t_timer.map(|t| t.0)]
            .into_iter()
            .flatten()
            .min();
        let Some(next) = next else {
            return false;
        };
        self.now = self.now.max(next);
        if t_change == Some(next) {
            let Reverse(c) = self.changes.pop().expect("peeked");
            match c.change {
                Change::LinkUp {
                    from,
                    to,
                    drop_first,
                } => {
                    let l = self.link(from, to);
                    self.up[l] = true;
                    self.drop_first[l] = drop_first;
                    let oldest = self.now.saturating_sub(self.hold_while_down_ns);
                    let held: Vec<(u64, Vec<u8>)> = self.held[l].drain(..).collect();
                    for (sent, data) in held.into_iter().filter(|(at, _)| *at >= oldest) {
                        let what = describe(&data);
                        let age = self.now - sent;
                        self.note(|| {
                            format!(
                                "n{}->n{} FLUSHED ({}) {what}",
                                from + 1,
                                to + 1,
                                fmt_ns(age)
                            )
                        });
                        self.transmit(from, to, data);
                    }
                    let (f, t) = (from + 1, to + 1);
                    self.note(|| format!("link {f}->{t} UP (first {drop_first} dropped)"));
                }
                Change::Stall { node, until } => {
                    self.stalled_until[node] = self.stalled_until[node].max(until);
                    self.note(|| format!("n{} STALL until {}", node + 1, fmt_ns(until)));
                }
            }
        } else if t_packet == Some(next) {
            let Reverse(p) = self.packets.pop().expect("peeked");
            if self.stalled_until[p.to] > self.now {
                self.seq += 1;
                let at = self.stalled_until[p.to];
                self.packets.push(Reverse(Packet {
                    at,
                    seq: self.seq,
                    ..p
                }));
                return true;
            }
            if self.trace.is_some() && is_membership(&p.data) {
                let what = describe(&p.data);
                self.note(|| format!("n{}->n{} {what}", p.from + 1, p.to + 1));
            }
            self.nodes[p.to].handle_datagram(Time::from_nanos(self.now), &p.data);
            self.drain(p.to);
        } else if let Some((_, i)) = t_timer {
            self.nodes[i].handle_timeout(Time::from_nanos(self.now));
            self.drain(i);
        }
        true
    }

    /// Steps until `done` holds or virtual time passes `deadline_ns`; returns
    /// whether `done` held.
    pub fn run_until(&mut self, deadline_ns: u64, mut done: impl FnMut(&LinkNet) -> bool) -> bool {
        loop {
            if done(self) {
                return true;
            }
            if self.now > deadline_ns || !self.step() {
                return done(self);
            }
        }
    }

    /// Steps until virtual time reaches `until_ns`.
    pub fn run_to(&mut self, until_ns: u64) {
        while self.next_event().is_some_and(|t| t <= until_ns) {
            self.step();
        }
        self.now = self.now.max(until_ns);
    }

    fn next_event(&self) -> Option<u64> {
        let t_timer = (0..self.n)
            .filter_map(|i| {
                self.nodes[i]
                    .poll_timeout()
                    .map(|t| t.as_nanos().max(self.stalled_until[i]))
            })
            .min();
        [
            self.changes.peek().map(|c| c.0.at),
            self.packets.peek().map(|p| p.0.at),
            t_timer,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Whether the nodes `ids` are operational on one ring whose members are
    /// exactly `ids`.
    pub fn formed(&self, ids: &[NodeId]) -> bool {
        let first = &self.nodes[ids[0] as usize - 1];
        ids.iter().all(|&id| {
            let t = &self.nodes[id as usize - 1];
            t.is_operational() && t.ring_id() == first.ring_id() && t.members() == ids
        })
    }

    /// Regular configurations node `id` installed at or after `since_ns`.
    pub fn regulars_since(&self, id: NodeId, since_ns: u64) -> Vec<&ConfigChange> {
        self.configs[id as usize - 1]
            .iter()
            .filter(|c| c.at >= since_ns && c.change.kind == ConfigKind::Regular)
            .map(|c| &c.change)
            .collect()
    }

    /// The trace (membership datagrams, link changes, configurations) merged with
    /// every core's log records, in virtual-time order, from `since_ns` on.
    pub fn trace_lines(&self, since_ns: u64) -> Vec<String> {
        let mut all: Vec<(u64, String)> = self.trace.clone().unwrap_or_default();
        for l in &self.loggers {
            for r in l.records() {
                all.push((
                    r.mono_ns,
                    format!("n{} {} {}", r.node, r.subsystem, r.message),
                ));
            }
        }
        all.sort_by_key(|(t, _)| *t);
        all.into_iter()
            .filter(|(t, _)| *t >= since_ns)
            .map(|(t, s)| format!("{} {s}", fmt_ns(t)))
            .collect()
    }
}

/// `12.345678ms`.
pub fn fmt_ns(t: u64) -> String {
    format!("{:>6}.{:06}ms", t / 1_000_000, t % 1_000_000)
}

fn is_membership(data: &[u8]) -> bool {
    !matches!(
        wire::decode(data).map(|d| d.message),
        Ok(Message::Token(_) | Message::Mcast(_) | Message::HoldCancel { .. })
    )
}

/// One line naming a datagram (membership ones in full).
pub fn describe(data: &[u8]) -> String {
    match wire::decode(data).map(|d| d.message) {
        Ok(Message::Join(j)) => format!(
            "JOIN ring_seq {} old {} procs {:?} failed {:?}",
            j.ring_seq, j.old_ring, j.procs, j.failed
        ),
        Ok(Message::Commit(c)) => format!(
            "COMMIT {} rot {} members {:?}",
            c.ring,
            c.rotation,
            c.entries.iter().map(|e| e.node).collect::<Vec<_>>()
        ),
        Ok(Message::MergeDetect { ring }) => format!("MERGE_DETECT {ring}"),
        Ok(Message::Leave { ring }) => format!("LEAVE {ring}"),
        Ok(Message::Token(t)) => format!("TOKEN {} #{}", t.ring, t.token_seq),
        Ok(Message::Mcast(m)) => format!("MCAST {} seq {}", m.ring, m.seq),
        Ok(Message::HoldCancel { ring }) => format!("HOLD_CANCEL {ring}"),
        Err(e) => format!("undecodable: {e}"),
    }
}
