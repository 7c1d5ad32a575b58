//! One benchmark process: a Phalanx node (or, for `raw`, a plain UDP socket) that
//! sends and/or delivers like cpgperf and prints one `RESULT` line.

use super::{Api, Scenario};
use crossbeam_channel::Receiver;
use phalanx::cpg::{CpgError, CpgEvent, ViewId};
use phalanx::crypto::Cipher;
use phalanx::node::udp_offload;
use phalanx::node::{
    CpgMember, CryptoOptions, Node, NodeEvent, NodeHandle, NodeOptions, NodeStats,
};
use phalanx::totem::{Config, ConfigKind, Guarantee, RingId, SendError};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::io::{BufRead, Write};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Size of cpgperf's message header.
pub const HDR: usize = 32;
/// Frame payload used on loopback unless `--max-frame` says otherwise.
pub const DEFAULT_MAX_FRAME: usize = 65_000;
const MAGIC: u32 = 0x4350_4750;
const T_DATA: u32 = 1;
const T_END: u32 = 2;
const T_PING: u32 = 3;
const T_HELLO: u32 = 4;
const T_ACK: u32 = 5;
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
/// The process group every `--api cpg` worker joins (one cluster per run, so
/// one fixed name is enough; cpgperf's `bench.sh` makes its names unique
/// because its daemons outlive a run).
pub const GROUP: &[u8] = b"cpgperf";
/// Socket buffers requested for nodes and raw sockets.
const SOCKET_BUFFER: usize = 32 << 20;

/// What one worker runs (passed on its command line).
pub struct Spec {
    pub id: u32,
    pub addrs: String,
    pub scenario: Scenario,
    pub size: usize,
    pub secs: f64,
    pub crypto: bool,
    pub safe: bool,
    pub label: String,
    pub max_frame: usize,
    pub wait_yield: bool,
    /// Receivers nap this long when nothing is queued, instead of blocking on
    /// the event channel (0: block).
    pub recv_nap_us: u64,
    /// A pinger polls for its own delivery this long before blocking.
    pub spin_us: u64,
    /// ChaCha20-Poly1305 instead of AES-256-GCM.
    pub chacha: bool,
    /// Print protocol and driver counters on stderr.
    pub stats: bool,
    /// Process groups (one member per worker) or raw totem messages.
    pub api: Api,
    /// `sendmmsg`/`recvmmsg` in the node's driver (off: one datagram per call).
    pub batch_io: bool,
    /// Segmentation offload (`UDP_SEGMENT` / `UDP_GRO`) in the node's driver.
    pub gso: bool,
    /// `NodeOptions::spin_before_park`, microseconds.
    pub driver_spin_us: u64,
    /// Totem's `max_messages` (0: the default).
    pub max_messages: u32,
    /// Totem's `send_hold`, microseconds (0: none).
    pub send_hold_us: u64,
}

impl Spec {
    /// How many arguments [`Spec::to_args`] gives.
    pub const ARGS: usize = 20;

    /// The worker's command line (after `--worker`).
    pub fn to_args(&self) -> Vec<String> {
        vec![
            self.id.to_string(),
            self.addrs.clone(),
            self.scenario.name().to_string(),
            self.size.to_string(),
            self.secs.to_string(),
            (self.crypto as u8).to_string(),
            (self.safe as u8).to_string(),
            self.label.clone(),
            self.max_frame.to_string(),
            (self.wait_yield as u8).to_string(),
            self.recv_nap_us.to_string(),
            self.spin_us.to_string(),
            (self.chacha as u8).to_string(),
            (self.stats as u8).to_string(),
            self.api.name().to_string(),
            (self.batch_io as u8).to_string(),
            (self.gso as u8).to_string(),
            self.driver_spin_us.to_string(),
            self.max_messages.to_string(),
            self.send_hold_us.to_string(),
        ]
    }

    pub fn from_args(a: &[String]) -> Option<Spec> {
        if a.len() != Self::ARGS {
            return None;
        }
        Some(Spec {
            id: a[0].parse().ok()?,
            addrs: a[1].clone(),
            scenario: Scenario::parse(&a[2])?,
            size: a[3].parse().ok().filter(|s| *s >= HDR)?,
            secs: a[4].parse().ok()?,
            crypto: a[5] == "1",
            safe: a[6] == "1",
            label: a[7].clone(),
            max_frame: a[8].parse().ok()?,
            wait_yield: a[9] == "1",
            recv_nap_us: a[10].parse().ok()?,
            spin_us: a[11].parse().ok()?,
            chacha: a[12] == "1",
            stats: a[13] == "1",
            api: Api::parse(&a[14])?,
            batch_io: a[15] == "1",
            gso: a[16] == "1",
            driver_spin_us: a[17].parse().ok()?,
            max_messages: a[18].parse().ok()?,
            send_hold_us: a[19].parse().ok()?,
        })
    }
}

/// cpgperf's header, native byte order; `pad` carries the sender's pid.
#[derive(Clone, Copy, Debug)]
struct Hdr {
    magic: u32,
    typ: u32,
    seq: u64,
    send_ns: u64,
    len: u32,
    pid: u32,
}

impl Hdr {
    fn read(b: &[u8]) -> Option<Hdr> {
        let b = b.get(..HDR)?;
        let u32at = |i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64at = |i: usize| u64::from_ne_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
        Some(Hdr {
            magic: u32at(0),
            typ: u32at(4),
            seq: u64at(8),
            send_ns: u64at(16),
            len: u32at(24),
            pid: u32at(28),
        })
    }

    fn write(&self, b: &mut [u8]) {
        b[0..4].copy_from_slice(&self.magic.to_ne_bytes());
        b[4..8].copy_from_slice(&self.typ.to_ne_bytes());
        b[8..16].copy_from_slice(&self.seq.to_ne_bytes());
        b[16..24].copy_from_slice(&self.send_ns.to_ne_bytes());
        b[24..28].copy_from_slice(&self.len.to_ne_bytes());
        b[28..32].copy_from_slice(&self.pid.to_ne_bytes());
    }
}

fn fnv(h: &mut u64, bytes: &[u8]) {
    for &c in bytes {
        *h ^= c as u64;
        *h = h.wrapping_mul(0x0100_0000_01b3);
    }
}

struct SenderState {
    next_seq: u64,
    ended: bool,
}

/// Delivery-side bookkeeping, as in cpgperf's deliver and confchg callbacks.
struct Stats {
    epoch: Instant,
    me: u32,
    pid: u32,
    members: usize,
    expect_ends: usize,
    cur_members: usize,
    started: bool,
    member_changes: u64,
    senders: BTreeMap<(u32, u32), SenderState>,
    ends_seen: usize,
    delivered: u64,
    delivered_bytes: u64,
    first_ns: u64,
    last_ns: u64,
    order_hash: u64,
    errors: u64,
    waiting_seq: u64,
    got_own: bool,
    own_ns: u64,
    /// Arrival time stamped on every delivery of a drained batch (one clock read
    /// per batch of queued events instead of one per message).
    t_batch: Option<u64>,
}

impl Stats {
    fn new(me: u32, members: usize, expect_ends: usize) -> Stats {
        Stats {
            epoch: Instant::now(),
            me,
            pid: std::process::id(),
            members,
            expect_ends,
            cur_members: 0,
            started: false,
            member_changes: 0,
            senders: BTreeMap::new(),
            ends_seen: 0,
            delivered: 0,
            delivered_bytes: 0,
            first_ns: 0,
            last_ns: 0,
            order_hash: FNV_OFFSET,
            errors: 0,
            waiting_seq: 0,
            got_own: false,
            own_ns: 0,
            t_batch: None,
        }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// A new view (totem: a regular configuration; CPG: a change of the
    /// benchmark group) with members on `nodes` distinct nodes.
    fn on_view(&mut self, nodes: usize, members: &dyn std::fmt::Debug) {
        self.cur_members = nodes;
        if self.started && self.ends_seen < self.expect_ends {
            self.member_changes += 1;
            eprintln!("warning: membership changed during the run: {members:?}");
        }
    }

    /// A totem ring formed again under the group (CPG): no group change when the
    /// nodes stay the same, but the same event as a totem regular configuration
    /// in `--api totem`, so it counts alike.
    fn on_reformation(&mut self, ring: RingId, members: &dyn std::fmt::Debug) {
        if self.started && self.ends_seen < self.expect_ends {
            self.member_changes += 1;
            eprintln!("warning: ring {ring:?} formed during the run: {members:?}");
        }
    }

    fn on_deliver(&mut self, nodeid: u32, data: &[u8]) {
        let t = self.t_batch.unwrap_or_else(|| self.now());
        let Some(h) = Hdr::read(data) else {
            self.errors += 1;
            return;
        };
        if h.magic != MAGIC || h.len as usize != data.len() {
            self.errors += 1;
            return;
        }
        fnv(&mut self.order_hash, &nodeid.to_ne_bytes());
        fnv(&mut self.order_hash, &h.pid.to_ne_bytes());
        fnv(&mut self.order_hash, &h.typ.to_ne_bytes());
        fnv(&mut self.order_hash, &h.seq.to_ne_bytes());
        let s = self.senders.entry((nodeid, h.pid)).or_insert(SenderState {
            next_seq: 1,
            ended: false,
        });
        if h.typ == T_END {
            if !s.ended {
                s.ended = true;
                self.ends_seen += 1;
            }
            return;
        }
        if h.seq != s.next_seq {
            self.errors += 1;
        }
        s.next_seq = h.seq.wrapping_add(1);
        if self.delivered == 0 {
            self.first_ns = t;
        }
        self.last_ns = t;
        self.delivered += 1;
        self.delivered_bytes += data.len() as u64;
        if h.typ == T_PING && nodeid == self.me && h.pid == self.pid && h.seq == self.waiting_seq {
            self.got_own = true;
            self.own_ns = t;
        }
    }
}

/// Entry point of `phalanx-bench --worker ...`; returns the exit status.
pub fn main(args: &[String]) -> i32 {
    let Some(spec) = Spec::from_args(args) else {
        eprintln!("phalanx-bench: bad worker arguments");
        return 1;
    };
    let mut addrs = BTreeMap::new();
    for kv in spec.addrs.split(',') {
        let parsed = kv
            .split_once('=')
            .and_then(|(k, v)| Some((k.parse::<u32>().ok()?, v.parse::<SocketAddr>().ok()?)));
        match parsed {
            Some((k, v)) => {
                addrs.insert(k, v);
            }
            None => {
                eprintln!("phalanx-bench: bad address {kv:?}");
                return 1;
            }
        }
    }
    // The parent closes our stdin when every node has reported: leave then.
    let release = Arc::new(AtomicBool::new(false));
    {
        let release = release.clone();
        std::thread::spawn(move || {
            let stdin = std::io::stdin();
            for line in stdin.lock().lines() {
                if line.is_err() {
                    break;
                }
            }
            release.store(true, Ordering::Release);
        });
    }
    let r = if spec.scenario.is_raw() {
        raw(&spec, &addrs, &release)
    } else {
        node(&spec, addrs, &release)
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("phalanx-bench worker {}: {e}", spec.id);
            1
        }
    }
}

fn timeout_s(spec: &Spec) -> f64 {
    spec.secs * 3.0 + 60.0
}

/// How a worker sends and receives: raw totem messages through the node handle,
/// or one CPG member in the benchmark group. Generic (not `dyn`) so the send and
/// delivery loops stay monomorphic.
trait Endpoint {
    type Event;
    /// Queues one message: `Ok(true)` accepted, `Ok(false)` flow control
    /// (TryAgain), `Err` anything else.
    fn mcast(&self, g: Guarantee, data: &[u8]) -> Result<bool, String>;
    fn try_recv(&self) -> Option<Self::Event>;
    fn recv_timeout(&self, t: Duration) -> Option<Self::Event>;
    /// Bytes that can be queued right now, if the API says (for `--wait yield`).
    fn send_room(&self) -> Option<usize>;
    /// Feeds one event to the cpgperf bookkeeping.
    fn apply(&self, st: &mut Stats, ev: Self::Event);
    /// Housekeeping outside the measured loops (barrier, linger).
    fn idle(&self) {}
}

/// `--api totem`: `NodeHandle::mcast` and the node's `NodeEvent`s.
struct TotemEndpoint<'a> {
    h: NodeHandle,
    ev: &'a Receiver<NodeEvent>,
}

impl Endpoint for TotemEndpoint<'_> {
    type Event = NodeEvent;

    #[inline]
    fn mcast(&self, g: Guarantee, data: &[u8]) -> Result<bool, String> {
        match self.h.mcast(g, data) {
            Ok(()) => Ok(true),
            Err(SendError::TryAgain) => Ok(false),
            Err(e) => Err(format!("mcast: {e}")),
        }
    }

    #[inline]
    fn try_recv(&self) -> Option<NodeEvent> {
        self.ev.try_recv().ok()
    }

    fn recv_timeout(&self, t: Duration) -> Option<NodeEvent> {
        self.ev.recv_timeout(t).ok()
    }

    fn send_room(&self) -> Option<usize> {
        Some(self.h.send_room())
    }

    #[inline]
    fn apply(&self, st: &mut Stats, ev: NodeEvent) {
        match ev {
            NodeEvent::Deliver(d) => st.on_deliver(d.sender, &d.data),
            NodeEvent::Config(c, _) if c.kind == ConfigKind::Regular => {
                st.on_view(c.members.len(), &c.members);
            }
            // Transitional configurations; benchmarks run without fencing.
            _ => {}
        }
    }
}

/// `--api cpg` (the default): one member in [`GROUP`], like one cpgperf process
/// in its group.
struct CpgEndpoint<'a> {
    m: CpgMember,
    /// The ring of the latest group view or totem configuration seen.
    ring: Cell<Option<RingId>>,
    /// The node's own event stream still carries totem configurations: kept
    /// empty outside the measured loops (it holds only a few).
    node_events: &'a Receiver<NodeEvent>,
}

impl Endpoint for CpgEndpoint<'_> {
    type Event = CpgEvent;

    #[inline]
    fn mcast(&self, g: Guarantee, data: &[u8]) -> Result<bool, String> {
        match self.m.mcast(GROUP, g, data) {
            Ok(()) => Ok(true),
            Err(CpgError::TryAgain) => Ok(false),
            Err(e) => Err(format!("cpg mcast: {e}")),
        }
    }

    #[inline]
    fn try_recv(&self) -> Option<CpgEvent> {
        self.m.events().try_recv().ok()
    }

    fn recv_timeout(&self, t: Duration) -> Option<CpgEvent> {
        self.m.events().recv_timeout(t).ok()
    }

    fn send_room(&self) -> Option<usize> {
        None
    }

    #[inline]
    fn apply(&self, st: &mut Stats, ev: CpgEvent) {
        match ev {
            CpgEvent::Deliver(d) if d.group.as_bytes() == GROUP => {
                st.on_deliver(d.sender.node, &d.data)
            }
            CpgEvent::Change(c) if c.group.as_bytes() == GROUP => {
                match c.view {
                    ViewId::Sync(r) | ViewId::Message { ring: r, .. } => self.ring.set(Some(r)),
                    _ => {}
                }
                let nodes = c.members.iter().map(|m| m.node).collect::<BTreeSet<_>>();
                st.on_view(nodes.len(), &c.members);
            }
            // The regular configuration of the ring the start barrier's view was
            // installed on may follow that view (it comes after its state
            // exchange's group changes): only another ring is a re-formation.
            CpgEvent::Totem(t) if t.kind == ConfigKind::Regular => {
                let before = self.ring.replace(Some(t.ring));
                if before != Some(t.ring) {
                    st.on_reformation(t.ring, &t.members);
                }
            }
            // No other group exists.
            _ => {}
        }
    }

    fn idle(&self) {
        while self.node_events.try_recv().is_ok() {}
    }
}

fn node(
    spec: &Spec,
    addrs: BTreeMap<u32, SocketAddr>,
    release: &AtomicBool,
) -> Result<i32, String> {
    let n = addrs.len();
    let ids: Vec<u32> = addrs.keys().copied().collect();
    let mut cfg = Config::new(spec.id, ids);
    cfg.max_frame = spec.max_frame;
    if spec.max_messages > 0 {
        cfg.max_messages = spec.max_messages;
        cfg.window_size = cfg.window_size.max(spec.max_messages * 2);
    }
    cfg.send_hold = Duration::from_micros(spec.send_hold_us);
    let mut opts = NodeOptions::new(cfg, addrs);
    opts.socket_buffer = SOCKET_BUFFER;
    opts.batch_io = spec.batch_io;
    opts.segmentation_offload = spec.gso;
    opts.spin_before_park = Duration::from_micros(spec.driver_spin_us);
    if spec.crypto {
        opts.crypto = Some(CryptoOptions {
            key: (0..64u8).map(|i| i.wrapping_mul(37) ^ 0xa5).collect(),
            cluster_name: "phalanx-bench".into(),
            cipher: if spec.chacha {
                Cipher::ChaCha20Poly1305
            } else {
                Cipher::Aes256Gcm
            },
        });
    }
    let node = Node::start(opts).map_err(|e| format!("node start: {e}"))?;
    let h = node.handle();
    let code = match spec.api {
        Api::Totem => {
            let ep = TotemEndpoint {
                h: h.clone(),
                ev: node.events(),
            };
            run(spec, n, &h, &ep, release)?
        }
        Api::Cpg => {
            let m = node
                .cpg()
                .member()
                .map_err(|e| format!("cpg member: {e}"))?;
            // As cpgperf: retry a join the node cannot take yet.
            let deadline = Instant::now() + Duration::from_secs_f64(timeout_s(spec));
            loop {
                match m.join(GROUP) {
                    Ok(()) => break,
                    Err(CpgError::TryAgain | CpgError::Busy) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    Err(e) => return Err(format!("cpg join: {e}")),
                }
            }
            let ep = CpgEndpoint {
                m,
                ring: Cell::new(None),
                node_events: node.events(),
            };
            run(spec, n, &h, &ep, release)?
        }
    };
    let _ = node.leave();
    Ok(code)
}

/// The measurement proper (cpgperf's main loop) over either API.
fn run<E: Endpoint>(
    spec: &Spec,
    n: usize,
    h: &NodeHandle,
    ep: &E,
    release: &AtomicBool,
) -> Result<i32, String> {
    let senders = spec.scenario.senders(n as u32) as usize;
    let sending = spec.id == 1 || senders > 1;
    let mut st = Stats::new(spec.id, n, senders);
    let g = if spec.safe {
        Guarantee::Safe
    } else {
        Guarantee::Agreed
    };

    // Start barrier: a view with every node (totem: a regular configuration;
    // CPG: a group change listing a member on every node), delivered at the same
    // point of the agreed order everywhere.
    let bar_deadline = Instant::now() + Duration::from_secs_f64(timeout_s(spec));
    while st.cur_members < n {
        if Instant::now() > bar_deadline {
            return Err(format!(
                "timeout waiting for {n} members (have {})",
                st.cur_members
            ));
        }
        if let Some(e) = ep.recv_timeout(Duration::from_millis(100)) {
            ep.apply(&mut st, e);
        }
        ep.idle();
    }
    st.started = true;
    let t0 = st.now();
    let deadline = t0 + (timeout_s(spec) * 1e9) as u64;
    let send_end = t0 + (spec.secs * 1e9) as u64;

    let mut buf = vec![0u8; spec.size];
    for (i, b) in buf.iter_mut().enumerate().skip(HDR) {
        *b = (i as u32).wrapping_mul(131) as u8;
    }
    let mut hdr = Hdr {
        magic: MAGIC,
        typ: T_DATA,
        seq: 0,
        send_ns: 0,
        len: spec.size as u32,
        pid: st.pid,
    };
    let mut sent = 0u64;
    let mut tryagain = 0u64;
    let mut t_send_done = t0;
    let mut rtt: Vec<u64> = Vec::new();
    let batch_us = Duration::from_micros(spec.recv_nap_us);
    let spin_ns = spec.spin_us * 1000;
    let is_lat = matches!(
        spec.scenario,
        Scenario::Lat1 | Scenario::Lat1Idle | Scenario::LatN
    );
    // Takes every queued event; the batch shares one arrival time (taken when
    // its first event is found).
    let drain = |st: &mut Stats| {
        while let Some(e) = ep.try_recv() {
            if st.t_batch.is_none() {
                st.t_batch = Some(st.now());
            }
            ep.apply(st, e);
        }
        st.t_batch = None;
    };
    // Wait for send room after TryAgain.
    let wait_room = |st: &mut Stats, need: usize| {
        if spec.wait_yield {
            if ep.send_room().is_some() {
                let t = Instant::now();
                while ep.send_room().is_some_and(|room| room < need)
                    && t.elapsed() < Duration::from_millis(1)
                {
                    drain(st);
                    std::thread::yield_now();
                }
            } else {
                // CPG tells no room figure: one drain and one yield, then the
                // caller retries (cpgperf's busy retry, `-b 0`).
                drain(st);
                std::thread::yield_now();
            }
        } else if let Some(e) = ep.recv_timeout(Duration::from_micros(1000)) {
            ep.apply(st, e);
        }
        drain(st);
    };
    let mcast = |st: &mut Stats, buf: &[u8], tryagain: &mut u64| -> Result<(), String> {
        loop {
            if ep.mcast(g, buf)? {
                return Ok(());
            }
            *tryagain += 1;
            if st.now() > deadline {
                return Err("timeout: flow control never released".into());
            }
            wait_room(st, buf.len());
        }
    };

    if sending && !is_lat {
        hdr.typ = T_DATA;
        loop {
            let t = st.now();
            if t >= send_end {
                break;
            }
            hdr.seq = sent + 1;
            hdr.send_ns = t;
            hdr.write(&mut buf);
            if ep.mcast(g, &buf)? {
                sent += 1;
                drain(&mut st);
            } else {
                tryagain += 1;
                wait_room(&mut st, buf.len());
            }
        }
        t_send_done = st.now();
    } else if sending {
        hdr.typ = T_PING;
        let pause = if spec.scenario == Scenario::Lat1Idle {
            Duration::from_millis(10)
        } else {
            Duration::ZERO
        };
        while st.now() < send_end {
            hdr.seq = sent + 1;
            st.waiting_seq = hdr.seq;
            st.got_own = false;
            let ts = st.now();
            hdr.send_ns = ts;
            hdr.write(&mut buf);
            mcast(&mut st, &buf, &mut tryagain)?;
            sent += 1;
            drain(&mut st);
            let spin_until = st.now() + spin_ns;
            while !st.got_own {
                if let Some(e) = ep.try_recv() {
                    ep.apply(&mut st, e);
                    continue;
                }
                let t = st.now();
                if t > deadline {
                    return Err("timeout waiting for own message".into());
                }
                if t < spin_until {
                    std::thread::yield_now();
                } else if let Some(e) = ep.recv_timeout(Duration::from_millis(100)) {
                    ep.apply(&mut st, e);
                }
            }
            rtt.push(st.own_ns - ts);
            if !pause.is_zero() {
                std::thread::sleep(pause);
                drain(&mut st);
            }
        }
        t_send_done = st.now();
    }
    if sending {
        let end = Hdr {
            magic: MAGIC,
            typ: T_END,
            seq: 0,
            send_ns: st.now(),
            len: HDR as u32,
            pid: st.pid,
        };
        let mut b = [0u8; HDR];
        end.write(&mut b);
        mcast(&mut st, &b, &mut tryagain)?;
    }
    while st.ends_seen < st.expect_ends {
        if st.now() > deadline {
            return Err(format!(
                "timeout: {} of {} END messages delivered",
                st.ends_seen, st.expect_ends
            ));
        }
        if !batch_us.is_zero() {
            // Batching receiver: take everything queued, then nap instead of
            // being woken for each delivery.
            let before = st.delivered + st.ends_seen as u64;
            drain(&mut st);
            if st.delivered + st.ends_seen as u64 == before {
                std::thread::sleep(batch_us);
            }
        } else if let Some(e) = ep.recv_timeout(Duration::from_millis(100)) {
            ep.apply(&mut st, e);
            drain(&mut st);
        }
    }
    let t_end = st.now();
    let mode = if !sending {
        "recv"
    } else if is_lat {
        "lat"
    } else {
        "tput"
    };
    let line = result_line(
        spec,
        &st,
        mode,
        sent,
        tryagain,
        t0,
        t_send_done,
        t_end,
        &mut rtt,
    );
    if spec.stats {
        let NodeStats {
            totem: ts,
            driver: ds,
            ..
        } = h.stats();
        let secs = (t_end - t0) as f64 / 1e9;
        eprintln!(
            "node {} stats: api={} tokens_rx/s={:.0} tokens_tx={} token_retransmits={} mcast_tx={} mcast_rx={} mcast_retransmits={} holds={} hold_cancels={} send_holds={} send_hold_frames={} loops={} tx={} rx={} tx_errors={} gso_sends={} gro_reads={} max_busy={:?} stalled_on_members={} held_bursts={} raw_pending={}",
            spec.id,
            spec.api.name(),
            ts.tokens_rx as f64 / secs,
            ts.tokens_tx,
            ts.token_retransmits,
            ts.mcast_tx,
            ts.mcast_rx,
            ts.mcast_retransmits,
            ts.token_holds,
            ts.hold_cancels_tx,
            ts.send_holds,
            ts.send_hold_frames,
            ds.loops,
            ds.transport.tx,
            ds.transport.rx,
            ds.transport.tx_errors,
            ds.transport.tx_gso_sends,
            ds.transport.rx_gro_reads,
            ds.max_busy,
            ds.stalled_on_members,
            ds.held_bursts,
            ds.raw_pending
        );
    }
    emit(&line);
    // Stay a member (so that peers can still recover anything from us) until the
    // parent has every node's result.
    let linger = Instant::now();
    while !release.load(Ordering::Acquire) && linger.elapsed() < Duration::from_secs(60) {
        if let Some(e) = ep.recv_timeout(Duration::from_millis(10)) {
            st.started = false;
            ep.apply(&mut st, e);
        }
        ep.idle();
    }
    Ok(if st.errors > 0 { 2 } else { 0 })
}

fn emit(lines: &[String]) {
    let out = std::io::stdout();
    let mut out = out.lock();
    for l in lines {
        let _ = writeln!(out, "{l}");
    }
    let _ = out.flush();
}

#[allow(clippy::too_many_arguments)]
fn result_line(
    spec: &Spec,
    st: &Stats,
    mode: &str,
    sent: u64,
    tryagain: u64,
    t0: u64,
    t_send_done: u64,
    t_end: u64,
    rtt: &mut [u64],
) -> Vec<String> {
    let send_s = (t_send_done - t0) as f64 / 1e9;
    let span_s = if st.delivered > 1 {
        (st.last_ns - st.first_ns) as f64 / 1e9
    } else {
        0.0
    };
    let dmsgs = if span_s > 0.0 {
        (st.delivered - 1) as f64 / span_s
    } else {
        0.0
    };
    let avg_len = if st.delivered > 0 {
        st.delivered_bytes as f64 / st.delivered as f64
    } else {
        0.0
    };
    let smsgs = if send_s > 0.0 {
        sent as f64 / send_s
    } else {
        0.0
    };
    let mut line = format!(
        "RESULT label={} mode={mode} node={} pid={} size={} members={} senders={} sent={sent} send_s={send_s:.3} sent_msgs_s={smsgs:.1} tryagain={tryagain} delivered={} span_s={span_s:.3} deliv_msgs_s={dmsgs:.1} deliv_MB_s={:.3} total_s={:.3} errors={} member_changes={} order_hash={:016x}",
        spec.label,
        spec.id,
        st.pid,
        spec.size,
        st.members,
        st.expect_ends,
        st.delivered,
        dmsgs * avg_len / 1e6,
        (t_end - t0) as f64 / 1e9,
        st.errors,
        st.member_changes,
        st.order_hash,
    );
    let mut out = Vec::new();
    if mode == "lat" {
        rtt.sort_unstable();
        let n = rtt.len();
        let pct = |p: f64| -> f64 {
            if n == 0 {
                return 0.0;
            }
            let i = ((p / 100.0 * (n - 1) as f64 + 0.5) as usize).min(n - 1);
            rtt[i] as f64 / 1000.0
        };
        let mean = if n > 0 {
            rtt.iter().map(|&v| v as f64).sum::<f64>() / n as f64 / 1000.0
        } else {
            0.0
        };
        line.push_str(&format!(
            " pings={n} rtt_min_us={:.1} rtt_p50_us={:.1} rtt_p90_us={:.1} rtt_p99_us={:.1} rtt_max_us={:.1} rtt_mean_us={mean:.1}",
            pct(0.0),
            pct(50.0),
            pct(90.0),
            pct(99.0),
            pct(100.0)
        ));
        let q: Vec<String> = (0..=200)
            .map(|i| format!("{:.1}", pct(i as f64 / 2.0)))
            .collect();
        out.push(line);
        out.push(format!(
            "RTTQ label={} node={} q={}",
            spec.label,
            spec.id,
            q.join(",")
        ));
    } else {
        out.push(line);
    }
    out
}

/// Waits up to `ms` milliseconds for `sock` to become readable.
fn wait_readable(sock: &UdpSocket, ms: i32) -> bool {
    use std::os::fd::AsRawFd;
    let mut p = libc::pollfd {
        fd: sock.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, alive for the duration of the call.
    unsafe { libc::poll(&mut p, 1, ms) == 1 }
}

/// The raw UDP ceiling: node 1 sends `size`-byte datagrams to every other node as
/// fast as it can; the others count what arrives (losses are not errors here).
/// `rawgso` sends each peer runs of frame-sized datagrams (at most `max_frame`
/// bytes) with one `UDP_SEGMENT` call and reads with `UDP_GRO`; a kernel that refuses either fails the run (no silent fallback:
/// the figure would not be what it says).
fn raw(
    spec: &Spec,
    addrs: &BTreeMap<u32, SocketAddr>,
    release: &AtomicBool,
) -> Result<i32, String> {
    let me = *addrs.get(&spec.id).ok_or("no address for this node")?;
    let sock = UdpSocket::bind(me).map_err(|e| format!("bind {me}: {e}"))?;
    phalanx::node::set_socket_buffers(&sock, SOCKET_BUFFER);
    let gso = spec.scenario == Scenario::RawGso;
    if gso && spec.id != 1 {
        udp_offload::enable_gro(&sock).map_err(|e| format!("UDP_GRO refused: {e}"))?;
    }
    let peers: Vec<SocketAddr> = addrs
        .iter()
        .filter(|(id, _)| **id != spec.id)
        .map(|(_, a)| *a)
        .collect();
    let n = addrs.len();
    let mut st = Stats::new(spec.id, n, 1);
    let pid = st.pid;
    // `rawgso` moves its bytes in datagrams that fit one frame (`max_frame`, so the
    // link's MTU), as the ring does; `raw` sends `size`-byte datagrams, which the
    // kernel fragments past the MTU.
    let dsize = if spec.scenario == Scenario::RawGso {
        spec.size.min(spec.max_frame).max(HDR)
    } else {
        spec.size.max(HDR)
    };
    let mut rbuf = vec![0u8; 65_536];
    let timeout = Duration::from_secs_f64(timeout_s(spec));
    let started = Instant::now();
    let mut sent = 0u64;
    let (mut t0, mut t_send_done) = (0u64, 0u64);
    let mut lost = 0u64;
    let mode;
    if spec.id == 1 {
        mode = "tput";
        // Handshake: every receiver must be bound and answering.
        let mut acked = std::collections::BTreeSet::new();
        sock.set_read_timeout(Some(Duration::from_millis(5)))
            .map_err(|e| e.to_string())?;
        let hello = Hdr {
            magic: MAGIC,
            typ: T_HELLO,
            seq: 0,
            send_ns: 0,
            len: HDR as u32,
            pid,
        };
        let mut hb = [0u8; HDR];
        hello.write(&mut hb);
        while acked.len() < peers.len() {
            if started.elapsed() > timeout {
                return Err("raw: receivers never answered".into());
            }
            for p in &peers {
                if !acked.contains(p) {
                    let _ = sock.send_to(&hb, p);
                }
            }
            while let Ok((len, from)) = sock.recv_from(&mut rbuf) {
                if Hdr::read(&rbuf[..len]).is_some_and(|h| h.magic == MAGIC && h.typ == T_ACK) {
                    acked.insert(from);
                }
            }
        }
        st.started = true;
        t0 = st.now();
        let send_end = t0 + (spec.secs * 1e9) as u64;
        let mut hdr = Hdr {
            magic: MAGIC,
            typ: T_DATA,
            seq: 0,
            send_ns: 0,
            len: dsize as u32,
            pid,
        };
        // Datagrams per sendmsg: one without offload, else as many as one
        // segmentation run may carry.
        let per_call = if gso {
            (udp_offload::MAX_BYTES / dsize).clamp(1, udp_offload::MAX_SEGMENTS)
        } else {
            1
        };
        let mut batch = vec![0u8; dsize * per_call];
        loop {
            let t = st.now();
            if t >= send_end {
                break;
            }
            for (i, d) in batch.chunks_mut(dsize).enumerate() {
                hdr.seq = sent + 1 + i as u64;
                hdr.send_ns = t;
                hdr.write(d);
            }
            if gso {
                let run: Vec<&[u8]> = batch.chunks(dsize).collect();
                for p in &peers {
                    match udp_offload::send_segments(&sock, p, &run) {
                        Ok(()) => {}
                        // A full buffer: the run is lost, as in UDP.
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(format!("UDP_SEGMENT send refused: {e}")),
                    }
                }
            } else {
                for p in &peers {
                    // An error is a full buffer: the datagram is lost, as in UDP.
                    let _ = sock.send_to(&batch, p);
                }
            }
            sent += per_call as u64;
        }
        t_send_done = st.now();
        // The sender "delivers" what it sent, so its line reads like the others'.
        st.delivered = sent;
        st.delivered_bytes = sent * dsize as u64;
        st.first_ns = t0;
        st.last_ns = t_send_done;
        let end = Hdr {
            typ: T_END,
            seq: 0,
            len: HDR as u32,
            ..hdr
        };
        let mut eb = [0u8; HDR];
        end.write(&mut eb);
        for _ in 0..50 {
            for p in &peers {
                let _ = sock.send_to(&eb, p);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    } else {
        mode = "recv";
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .map_err(|e| e.to_string())?;
        let mut next = 1u64;
        let mut last_rx = Instant::now();
        loop {
            if started.elapsed() > timeout {
                return Err("raw: no END from the sender".into());
            }
            let read = if gso {
                match udp_offload::recv_segments(&sock, &mut rbuf) {
                    Ok(Some(r)) => Ok((r.len, r.from, r.segment_size.unwrap_or(r.len))),
                    Ok(None) if wait_readable(&sock, 100) => continue,
                    Ok(None) => Err(std::io::ErrorKind::WouldBlock.into()),
                    Err(e) => Err(e),
                }
            } else {
                sock.recv_from(&mut rbuf)
                    .map(|(len, from)| (len, Some(from), len))
            };
            match read {
                Ok((len, from, seg)) => {
                    let mut ended = false;
                    for d in rbuf[..len].chunks(seg.max(1)) {
                        let Some(h) = Hdr::read(d).filter(|h| h.magic == MAGIC) else {
                            st.errors += 1;
                            continue;
                        };
                        match h.typ {
                            T_HELLO => {
                                let ack = Hdr { typ: T_ACK, ..h };
                                let mut ab = [0u8; HDR];
                                ack.write(&mut ab);
                                if let Some(from) = from {
                                    let _ = sock.send_to(&ab, from);
                                }
                                if !st.started {
                                    st.started = true;
                                    t0 = st.now();
                                }
                            }
                            T_END => {
                                ended = true;
                                break;
                            }
                            T_DATA => {
                                let t = st.now();
                                if h.seq < next {
                                    st.errors += 1; // duplicate or reordered
                                } else {
                                    lost += h.seq - next;
                                }
                                next = h.seq + 1;
                                if st.delivered == 0 {
                                    st.first_ns = t;
                                }
                                st.last_ns = t;
                                st.delivered += 1;
                                st.delivered_bytes += d.len() as u64;
                                last_rx = Instant::now();
                            }
                            _ => st.errors += 1,
                        }
                    }
                    if ended {
                        break;
                    }
                }
                Err(_) => {
                    // A lost END: give up after a quiet second once data flowed.
                    if st.delivered > 0 && last_rx.elapsed() > Duration::from_secs(1) {
                        break;
                    }
                }
            }
        }
    }
    let t_end = st.now();
    let mut lines = result_line(
        spec,
        &st,
        mode,
        sent,
        0,
        t0,
        t_send_done.max(t0),
        t_end,
        &mut [],
    );
    if mode == "recv" {
        if let Some(l) = lines.first_mut() {
            l.push_str(&format!(" lost={lost}"));
        }
    }
    emit(&lines);
    let linger = Instant::now();
    while !release.load(Ordering::Acquire) && linger.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(if st.errors > 0 { 2 } else { 0 })
}
