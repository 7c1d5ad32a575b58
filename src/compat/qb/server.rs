//! The server thread: listeners, handshakes, connections, and the dispatch of
//! requests and callbacks between them and the node's handles.

use super::cfg::{self, CfgCall};
use super::cfg_shutdown::{self, Effect, ShutdownVote};
use super::cmap::{CmapCall, CmapSession, CmapValue};
use super::cmap_runtime::{MemberKeys, votequorum_keys};
use super::cmap_stats::{self, Baseline};
use super::cmap_track::CmapChange;
use super::conn::{Channels, Conn, Gone, QueueLimits};
use super::cpg::{CpgSession, Handled};
use super::cpg_wire::CpgCall;
use super::handshake::{self, Client};
use super::qdevice::{QdeviceMode, QdeviceSlot};
use super::quorum::{QuorumSession, QuorumState, VotequorumSession};
use super::quorum_wire::{QuorumCall, VotequorumCall};
use super::shm;
use super::sockets::{abstract_addr, euid, peer_credentials};
use super::wire::{
    CONNECTION_REQUEST_LEN, ConnectionResponse, IpcError, IpcTransport, decode_connection_request,
    decode_request, encode_connection_response, response,
};
use super::{Service, cs};
use crate::node::{NodeHandle, QuorumChange};
use crossbeam_channel::{Receiver, RecvTimeoutError, bounded};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use phalanx_logsys::{Logger, monotonic_ns, record};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::os::fd::RawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Writes a warning to the node's flight recorder.
fn log_warn(logger: &Logger, msg: &str) {
    record!(logger, monotonic_ns(), 0, Warn, "qb-ipc", "{}", msg);
}

/// How the server runs.
#[derive(Clone, Debug)]
pub struct IpcOptions {
    /// Services to offer (default: all of [`Service::ALL`]).
    pub services: Vec<Service>,
    /// Users allowed besides root and the daemon's own user (Corosync's
    /// `uidgid { uid: ... }`).
    pub uids: Vec<u32>,
    /// Groups allowed (`uidgid { gid: ... }`); gid 0 always is.
    pub gids: Vec<u32>,
    /// The connection type announced to clients: shared memory (default, as
    /// Corosync) or sockets.
    pub transport: IpcTransport,
    /// Where connection directories, control files and rings go (libqb:
    /// /dev/shm; libqb clients need an absolute path).
    pub runtime_dir: PathBuf,
    /// Largest message on any channel (libcpg asks for 1 MiB).
    pub max_message: u32,
    /// Callback queue limit per connection, in messages.
    pub queue_messages: usize,
    /// Callback queue limit per connection, in bytes.
    pub queue_bytes: usize,
    /// Most connections at once (handshakes included).
    pub max_connections: usize,
    /// A handshake not completed within this is dropped.
    pub handshake_timeout: Duration,
    /// Where warnings go (refused clients, disconnections, bad requests).
    pub logger: Logger,
    /// The read-only cmap's keys (see [`keys_from_config`](super::keys_from_config));
    /// `runtime.votequorum.this_node_id` is added by the server.
    pub cmap: Vec<(String, CmapValue)>,
    /// Each node's IP addresses, for `corosync_cfg_get_node_addrs` (see
    /// [`node_addrs_from_config`](super::node_addrs_from_config)).
    pub node_addrs: BTreeMap<u32, Vec<IpAddr>>,
    /// The MTU `corosync_cfg_node_status_get` reports for every link.
    pub link_mtu: u32,
    /// The configuration file and the configuration the node runs, for
    /// `corosync-cfgtool -R` (none: reloads are refused).
    pub reload: Option<(PathBuf, crate::config::ClusterConfig)>,
    /// Set by `corosync-cfgtool -H` (`corosync_cfg_try_shutdown`): the daemon's
    /// stop flag (none: shutdown requests are refused).
    pub shutdown: Option<&'static AtomicBool>,
    /// Link status as Corosync reports it for knet (a link's two ends: this
    /// node's address and the other's) rather than for udpu/udp (only the
    /// other node's address); `corosync-cfgtool` prints what it gets.
    pub knet: bool,
    /// The node's quorum device as libvotequorum's `votequorum_qdevice_*`
    /// calls see it (see [`qdevice_mode_from_config`](super::qdevice_mode_from_config)).
    pub qdevice: QdeviceMode,
}

impl Default for IpcOptions {
    fn default() -> Self {
        IpcOptions {
            services: Service::ALL.to_vec(),
            uids: Vec::new(),
            gids: Vec::new(),
            transport: IpcTransport::Shm,
            runtime_dir: PathBuf::from("/dev/shm"),
            max_message: 1 << 20,
            // Above the node's own CPG send queue (4096 messages by default):
            // a sender slowed at a quarter of this still gets back everything
            // the node had already taken from it. Large enough that the byte
            // limit binds first for small messages: other nodes' senders are
            // not slowed by a slow client here, and on a loaded host a client
            // can stall for seconds (16384 callbacks of 64 bytes, under 0.5 s of
            // the rig's tputN, disconnected cpgperf clients at load 6; Corosync
            // queues without a bound).
            queue_messages: 262_144,
            queue_bytes: 32 << 20,
            max_connections: 1024,
            handshake_timeout: Duration::from_secs(5),
            logger: Logger::discard(),
            cmap: Vec::new(),
            node_addrs: BTreeMap::new(),
            link_mtu: 1500,
            knet: true,
            reload: None,
            shutdown: None,
            qdevice: QdeviceMode::Unconfigured,
        }
    }
}

/// A running libqb IPC server; [`IpcServer::stop`] (or drop) ends it and
/// disconnects every client.
pub struct IpcServer {
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
    forwarder: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for IpcServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpcServer").finish_non_exhaustive()
    }
}

const WAKER: Token = Token(0);
/// Requests read from one connection before the others get their turn.
const REQUESTS_PER_TURN: usize = 64;
/// Connection tokens are `id << 3 | kind`; ids start at 1, so listener tokens
/// (1 + index of the service) never collide with them.
const KIND_SETUP: usize = 0;
const KIND_REQUEST: usize = 1;
const KIND_EVENT: usize = 2;
const KIND_MEMBER: usize = 3;

impl IpcServer {
    /// Binds the services' abstract sockets (in this process's network
    /// namespace) and starts serving `node`.
    pub fn start(node: NodeHandle, options: IpcOptions) -> io::Result<IpcServer> {
        // Connection directories a killed predecessor left behind.
        for (dir, why) in super::stale::remove_stale(&options.runtime_dir) {
            log_warn(
                &options.logger,
                &format!("removed {} left by a dead phalanxd ({why})", dir.display()),
            );
        }
        let marker = match super::stale::Marker::create(&options.runtime_dir) {
            Ok(m) => Some(m),
            Err(e) => {
                log_warn(
                    &options.logger,
                    &format!("cannot mark the runtime directory as ours: {e}"),
                );
                None
            }
        };
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let mut listeners = Vec::new();
        for (i, s) in options.services.iter().enumerate() {
            let l = UnixListener::bind_addr(&abstract_addr(s.socket_name())?).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "cannot serve libqb IPC `{}` (is corosync running in this network namespace?): {e}",
                        s.socket_name()
                    ),
                )
            })?;
            l.set_nonblocking(true)?;
            poll.registry().register(
                &mut SourceFd(&l.as_raw_fd()),
                Token(1 + i),
                Interest::READABLE,
            )?;
            listeners.push((*s, l));
        }
        let stop = Arc::new(AtomicBool::new(false));
        // Quorum changes arrive on a crossbeam stream; a small thread moves
        // them to the poll loop.
        let (qtx, qrx) = bounded::<QuorumChange>(64);
        let notifications = node.quorum().notifications();
        let (fstop, fwaker) = (stop.clone(), waker.clone());
        let forwarder = std::thread::Builder::new()
            .name("phalanx-qb-quorum".into())
            .spawn(move || {
                while !fstop.load(Ordering::SeqCst) {
                    match notifications.recv_timeout(Duration::from_millis(200)) {
                        Ok(c) => {
                            if qtx.send(c).is_err() {
                                return;
                            }
                            let _ = fwaker.wake();
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
            })?;
        let mut server = Server {
            node,
            options,
            poll,
            listeners,
            pending: BTreeMap::new(),
            conns: BTreeMap::new(),
            next_id: 1,
            quorum: qrx,
            stop: stop.clone(),
            buf: Vec::new(),
            cmap: BTreeMap::new(),
            more: BTreeSet::new(),
            member_keys: MemberKeys::default(),
            ring: None,
            vote: ShutdownVote::default(),
            cfg_effects: Vec::new(),
            closed: 0,
            baseline: Baseline::default(),
            qdevice: QdeviceSlot::default(),
            _marker: marker,
        };
        server.qdevice = QdeviceSlot::new(server.options.qdevice);
        server.cmap = server.options.cmap.iter().cloned().collect();
        server.cmap.insert(
            "runtime.votequorum.this_node_id".into(),
            CmapValue::U32(server.node.node_id()),
        );
        server.buf = vec![0u8; server.options.max_message as usize + 1];
        let thread = std::thread::Builder::new()
            .name("phalanx-qb-ipc".into())
            .spawn(move || server.run())?;
        Ok(IpcServer {
            stop,
            waker,
            thread: Some(thread),
            forwarder: Some(forwarder),
        })
    }

    /// Stops serving: every client is disconnected (CPG members of closed
    /// connections go down), the sockets are closed.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
        for t in [self.thread.take(), self.forwarder.take()]
            .into_iter()
            .flatten()
        {
            let _ = t.join();
        }
    }
}

impl Drop for IpcServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A connection whose request has not arrived yet.
struct Pending {
    service: Service,
    stream: UnixStream,
    got: Vec<u8>,
    since: Instant,
}

enum Session {
    Cmap(CmapSession),
    Cpg(Box<CpgSession>),
    Quorum(QuorumSession),
    Votequorum(VotequorumSession),
    Cfg,
}

struct Live {
    conn: Conn,
    session: Session,
}

struct Server {
    node: NodeHandle,
    options: IpcOptions,
    poll: Poll,
    listeners: Vec<(Service, UnixListener)>,
    pending: BTreeMap<u64, Pending>,
    conns: BTreeMap<u64, Live>,
    next_id: u64,
    quorum: Receiver<QuorumChange>,
    stop: Arc<AtomicBool>,
    buf: Vec<u8>,
    cmap: BTreeMap<String, CmapValue>,
    /// Connections with requests left unread after their turn.
    more: BTreeSet<u64>,
    /// What the `runtime.members.*` keys say.
    member_keys: MemberKeys,
    /// The ring the `runtime.members.*` keys were last brought up to date for.
    ring: Option<phalanx_totem::RingId>,
    /// cfg shutdown tracking and the vote in progress.
    vote: ShutdownVote,
    /// What the vote asks of the server, not done yet.
    cfg_effects: Vec<Effect>,
    /// Connections closed since the start (`stats.ipcs.global.closed`).
    closed: u64,
    /// Counter values at the last `stats.clear.*`.
    baseline: Baseline,
    /// The node's quorum device, for libvotequorum's qdevice calls.
    qdevice: QdeviceSlot,
    /// Removes this server's marker from the runtime directory when dropped.
    _marker: Option<super::stale::Marker>,
}

/// What request handling reads besides the connection.
struct Ctx<'a> {
    logger: &'a Logger,
    node: &'a NodeHandle,
    cmap: &'a mut BTreeMap<String, CmapValue>,
    /// cmap changes clients made, for every connection's trackings.
    changes: &'a mut Vec<CmapChange>,
    node_addrs: &'a BTreeMap<u32, Vec<IpAddr>>,
    link_mtu: u32,
    knet: bool,
    reload: Option<&'a (PathBuf, crate::config::ClusterConfig)>,
    shutdown: Option<&'static AtomicBool>,
    /// The cfg shutdown vote, and what it asks the server to do.
    vote: &'a mut ShutdownVote,
    effects: &'a mut Vec<Effect>,
    /// A stats-map connection: the stats map's IPC part, as of now.
    ipc_stats: Option<Vec<(String, CmapValue)>>,
    baseline: &'a mut Baseline,
    qdevice: &'a mut QdeviceSlot,
}

/// The shutdown vote's timeout: `cfg.shutdown_timeout` (ms) in cmap, as in
/// Corosync, else 5 s.
fn shutdown_timeout(cmap: &BTreeMap<String, CmapValue>) -> Duration {
    let ms = match cmap.get("cfg.shutdown_timeout") {
        Some(CmapValue::U32(ms)) => *ms,
        _ => cfg_shutdown::DEFAULT_TIMEOUT_MS,
    };
    Duration::from_millis(u64::from(ms))
}

/// Node `n`'s status as `corosync-cfgtool -s` shows it: reachable when a member
/// of the current ring; per configured link, this node's and its address (knet;
/// udpu: only its address, as source), and connected when the link to it is up
/// (always, for this node itself).
fn node_status(ctx: &Ctx<'_>, n: u32) -> Option<cfg::NodeStatus> {
    let theirs = ctx.node_addrs.get(&n)?;
    let local = ctx.node.node_id();
    let ours = ctx.node_addrs.get(&local);
    let up = ctx.node.links();
    let links = theirs
        .iter()
        .enumerate()
        .take(cfg::MAX_LINKS)
        .map(|(l, addr)| {
            let link = l as u8;
            let connected = n == local
                || up.iter().any(|s| {
                    s.peer == n && s.link == link && s.state == crate::node::LinkState::Up
                });
            let mine = ours
                .and_then(|a| a.get(l))
                .map(ToString::to_string)
                .unwrap_or_default();
            let (src, dst) = if ctx.knet {
                (mine, addr.to_string())
            } else {
                (addr.to_string(), String::new())
            };
            cfg::LinkStatus {
                link,
                enabled: true,
                connected,
                mtu: ctx.link_mtu,
                src,
                dst,
            }
        })
        .collect();
    Some(cfg::NodeStatus {
        node_id: n,
        reachable: ctx.node.membership().members.contains(&n),
        links,
    })
}

/// `corosync-cfgtool -R`: re-reads the file; the answer of
/// [`reload::verdict`](super::reload::verdict) (what changed is logged).
fn reload_check(ctx: &Ctx<'_>) -> i32 {
    let Some((path, running)) = ctx.reload else {
        return cs::ERR_NOT_SUPPORTED;
    };
    match crate::config::load(path) {
        Ok(l) => {
            let (error, changed) = super::reload::verdict(running, &l.config);
            if error != cs::OK {
                let msg = format!(
                    "reload refused: {} changed in {}; Phalanx applies them on a restart (the running configuration is kept)",
                    changed.join(", "),
                    path.display()
                );
                log_warn(ctx.logger, &msg);
            } else if !changed.is_empty() {
                let msg = "reload: only logging changed; phalanxd logs to its flight recorder and stderr whatever it says, nothing to apply";
                log_warn(ctx.logger, msg);
            }
            error
        }
        Err(e) => {
            log_warn(ctx.logger, &format!("reload: {e}"));
            cs::ERR_INVALID_PARAM
        }
    }
}

/// A request of a connection on the stats map: the map is read now (node
/// counters, then the IPC part), less the counters' values at their last clear;
/// a `stats.clear.*` write moves that baseline.
fn stats_call(ctx: &mut Ctx<'_>, c: &mut CmapSession, call: CmapCall) -> Vec<u8> {
    let mut raw: BTreeMap<String, CmapValue> =
        cmap_stats::from_node(&ctx.node.stat_keys(), ctx.link_mtu)
            .into_iter()
            .collect();
    raw.extend(ctx.ipc_stats.take().unwrap_or_default());
    let mut seen = ctx.baseline.apply(&raw);
    let mut clears = Vec::new();
    let reply = c.handle_stats_call(&mut seen, call, &mut clears);
    for key in clears {
        if let Some(prefixes) = cmap_stats::clear_prefixes(&key) {
            ctx.baseline.clear(&raw, prefixes);
        }
    }
    reply
}

fn token(id: u64, kind: usize) -> Token {
    Token(((id as usize) << 3) | kind)
}

impl Server {
    fn warn(&self, msg: String) {
        log_warn(&self.options.logger, &msg);
    }

    fn run(&mut self) {
        let mut events = Events::with_capacity(256);
        while !self.stop.load(Ordering::SeqCst) {
            let timeout = self.timeout();
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                self.warn(format!("poll failed, stopping: {e}"));
                break;
            }
            for ev in events.iter() {
                let t = ev.token().0;
                if t == WAKER.0 {
                    continue;
                }
                if t < 8 {
                    self.accept(t - 1);
                    continue;
                }
                let id = (t >> 3) as u64;
                match t & 7 {
                    KIND_SETUP if self.pending.contains_key(&id) => self.handshake(id),
                    KIND_SETUP => self.liveness(id),
                    KIND_REQUEST => self.requests(id),
                    KIND_EVENT => self.with_conn(id, |_, l| l.conn.flush_events()),
                    KIND_MEMBER => self.member_events(id),
                    _ => {}
                }
            }
            // Connections that used up their turn last round.
            for id in std::mem::take(&mut self.more) {
                self.requests(id);
            }
            while let Ok(change) = self.quorum.try_recv() {
                self.quorum_change(&change);
            }
            self.runtime_keys();
            self.tick();
            self.apply_cfg_effects();
        }
        let ids: Vec<u64> = self.conns.keys().copied().collect();
        for id in ids {
            self.close(id, &Gone::Closed);
        }
    }

    /// Poll timeout: handshake expiry, held multicasts and callbacks waiting
    /// for a client's first request need a look now and then.
    fn timeout(&self) -> Option<Duration> {
        if !self.more.is_empty() || !self.cfg_effects.is_empty() {
            return Some(Duration::ZERO);
        }
        let now = Instant::now();
        let vote = [self.vote.deadline(), self.qdevice.next_tick(now)]
            .into_iter()
            .flatten()
            .min()
            .map(|d| d.saturating_duration_since(now));
        let busy = !self.pending.is_empty()
            || self
                .conns
                .values()
                .any(|l| l.conn.is_held() || l.conn.has_backlog());
        let wait = if busy {
            Duration::from_millis(10)
        } else {
            Duration::from_millis(500)
        };
        Some(vote.map_or(wait, |v| v.min(wait)))
    }

    fn tick(&mut self) {
        let timed_out = self.vote.tick(Instant::now());
        self.cfg_effects.extend(timed_out);
        // A quorum device that stopped polling loses its vote.
        if let Some(v) = self.qdevice.tick(Instant::now()) {
            match self.node.quorum().set_device_vote(v.ring, v.cast) {
                Ok(()) => self.qdevice.vote_sent(v),
                Err(e) => {
                    self.qdevice.withdrawal_failed(Instant::now());
                    self.warn(format!("quorum device vote withdrawal not taken: {e}"));
                }
            }
        }
        let limit = self.options.handshake_timeout;
        let stale: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.since.elapsed() > limit)
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            self.drop_pending(id);
        }
        let ids: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, l)| l.conn.is_held() || l.conn.has_backlog())
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.with_conn(id, |_, l| {
                if l.conn.is_held() {
                    if let Session::Cpg(c) = &mut l.session {
                        if c.retry_pending() {
                            l.conn.release();
                        }
                    }
                }
                l.conn.flush_events()
            });
            // Requests that waited behind the held multicast.
            if self.conns.get(&id).is_some_and(|l| !l.conn.is_held()) {
                self.requests(id);
            }
        }
    }

    fn accept(&mut self, index: usize) {
        let Some((service, _)) = self.listeners.get(index) else {
            return;
        };
        let service = *service;
        loop {
            let accepted = self.listeners[index].1.accept();
            let stream = match accepted {
                Ok((s, _)) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    self.warn(format!("accept on {}: {e}", service.socket_name()));
                    return;
                }
            };
            if self.pending.len() + self.conns.len() >= self.options.max_connections {
                self.warn("connection limit reached, refusing a client".into());
                continue;
            }
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let id = self.next_id;
            self.next_id += 1;
            let registered = self.poll.registry().register(
                &mut SourceFd(&stream.as_raw_fd()),
                token(id, KIND_SETUP),
                Interest::READABLE,
            );
            if registered.is_ok() {
                self.pending.insert(
                    id,
                    Pending {
                        service,
                        stream,
                        got: Vec::with_capacity(CONNECTION_REQUEST_LEN),
                        since: Instant::now(),
                    },
                );
                // Data may have arrived before registration (edge-triggered).
                self.handshake(id);
            }
        }
    }

    fn drop_pending(&mut self, id: u64) {
        if let Some(p) = self.pending.remove(&id) {
            let _ = self
                .poll
                .registry()
                .deregister(&mut SourceFd(&p.stream.as_raw_fd()));
        }
    }

    /// Reads the connection request; once whole, answers it.
    fn handshake(&mut self, id: u64) {
        let Some(p) = self.pending.get_mut(&id) else {
            return;
        };
        let mut chunk = [0u8; CONNECTION_REQUEST_LEN];
        loop {
            let want = CONNECTION_REQUEST_LEN - p.got.len();
            if want == 0 {
                break;
            }
            match p.stream.read(&mut chunk[..want]) {
                Ok(0) => return self.drop_pending(id),
                Ok(n) => p.got.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.drop_pending(id),
            }
        }
        let max = match decode_connection_request(&p.got) {
            Ok(m) => m,
            Err(e) => {
                let msg = format!("bad connection request on {}: {e}", p.service.socket_name());
                self.warn(msg);
                return self.drop_pending(id);
            }
        };
        let Some(p) = self.pending.remove(&id) else {
            return;
        };
        let _ = self
            .poll
            .registry()
            .deregister(&mut SourceFd(&p.stream.as_raw_fd()));
        self.establish(id, p, max);
    }

    fn allowed(&self, uid: u32, gid: u32) -> bool {
        uid == 0
            || gid == 0
            || uid == euid()
            || self.options.uids.contains(&uid)
            || self.options.gids.contains(&gid)
            || CmapSession::admits(&self.cmap, uid, gid)
    }

    fn refuse(mut stream: UnixStream, errno: i32) {
        let r = ConnectionResponse {
            error: -errno,
            max_msg_size: 0,
            connection: 0,
            transport: IpcTransport::Socket,
            request: String::new(),
            response: String::new(),
            event: String::new(),
        };
        // Into an empty socket buffer it goes at once; never wait for it.
        if let Ok(b) = encode_connection_response(&r) {
            let _ = stream.write_all(&b);
        }
    }

    fn establish(&mut self, id: u64, p: Pending, asked: u32) {
        let (pid, uid, gid) = match peer_credentials(&p.stream) {
            Ok(c) => c,
            Err(_) => return,
        };
        if !self.allowed(uid, gid) {
            self.warn(format!(
                "denied {} connection from uid {uid} gid {gid}",
                p.service.socket_name()
            ));
            return Self::refuse(p.stream, libc::EACCES);
        }
        // A ring takes no message above its size, and CPG deliveries come in
        // fragments of up to 128 KiB + header: shared-memory connections get at
        // least 256 KiB whatever the client asked (libqb's server also gives
        // the larger of its own size and the client's).
        let floor: u32 = match self.options.transport {
            IpcTransport::Shm => 256 * 1024,
            IpcTransport::Socket => 64 * 1024,
        };
        let max = asked.clamp(
            floor.min(self.options.max_message),
            self.options.max_message,
        );
        let client = Client {
            service: p.service.socket_name(),
            pid,
            uid,
            gid,
            serial: id,
            max_msg_size: max,
        };
        let created = match self.options.transport {
            IpcTransport::Socket => {
                handshake::create(&self.options.runtime_dir, &client).map(|res| Channels::Socket {
                    res,
                    connected: false,
                })
            }
            IpcTransport::Shm => shm::create(&self.options.runtime_dir, &client)
                .map(|res| Channels::Shm { res, owed: 0 }),
        };
        let channels = match created {
            Ok(r) => r,
            Err(e) => {
                self.warn(format!("cannot set up a connection: {e}"));
                return Self::refuse(p.stream, e.raw_os_error().unwrap_or(libc::EIO));
            }
        };
        let session = match p.service {
            Service::Cpg => match CpgSession::new(&self.node, pid) {
                Ok(s) => Session::Cpg(Box::new(s)),
                Err(e) => {
                    self.warn(format!("no cpg member for pid {pid}: {e}"));
                    return Self::refuse(p.stream, libc::EAGAIN);
                }
            },
            Service::Quorum => Session::Quorum(QuorumSession::default()),
            Service::Votequorum => Session::Votequorum(VotequorumSession::default()),
            Service::Cfg => Session::Cfg,
            Service::Cmap => Session::Cmap(CmapSession::default()),
        };
        let answer = match &channels {
            Channels::Socket { res, .. } => encode_connection_response(&res.answer),
            Channels::Shm { res, .. } => encode_connection_response(&res.answer),
        };
        let answer = match answer {
            Ok(b) => b,
            Err(_) => return,
        };
        let mut stream = p.stream;
        // 12 KiB into an empty socket buffer: written at once; a client that
        // cannot take it is not worth waiting for.
        if stream.write_all(&answer).is_err() {
            return;
        }
        let limits = QueueLimits {
            messages: self.options.queue_messages,
            bytes: self.options.queue_bytes,
        };
        let conn = Conn::new(p.service, pid, stream, channels, limits);
        let reg = self.poll.registry();
        let mut ok = true;
        for (fd, kind, interest) in Self::conn_fds(&conn) {
            ok &= reg
                .register(&mut SourceFd(&fd), token(id, kind), interest)
                .is_ok();
        }
        if let Session::Cpg(c) = &session {
            ok &= reg
                .register(
                    &mut SourceFd(&c.fd()),
                    token(id, KIND_MEMBER),
                    Interest::READABLE,
                )
                .is_ok();
        }
        self.conns.insert(id, Live { conn, session });
        if !ok {
            self.close(id, &Gone::Protocol("cannot poll the connection".into()));
            return;
        }
        // Callbacks may already wait (the member's first totem view).
        self.member_events(id);
        // A shared-memory client may have written a request already.
        if self.conns.get(&id).is_some_and(|l| l.conn.is_shm()) {
            self.requests(id);
        }
    }

    /// The descriptors a connection is polled on. Sockets: the setup socket
    /// (EOF), the request socket, the callback socket (room to send). Shared
    /// memory: only the setup socket — wake-up bytes in, room for
    /// notification bytes out.
    fn conn_fds(conn: &Conn) -> Vec<(RawFd, usize, Interest)> {
        let setup = conn.setup.as_raw_fd();
        match &conn.channels {
            Channels::Socket { res, .. } => vec![
                (setup, KIND_SETUP, Interest::READABLE),
                (res.request.as_raw_fd(), KIND_REQUEST, Interest::READABLE),
                (res.event.as_raw_fd(), KIND_EVENT, Interest::WRITABLE),
            ],
            Channels::Shm { .. } => {
                vec![(setup, KIND_SETUP, Interest::READABLE | Interest::WRITABLE)]
            }
        }
    }

    fn close(&mut self, id: u64, why: &Gone) {
        let Some(l) = self.conns.remove(&id) else {
            return;
        };
        self.closed += 1;
        if matches!(l.session, Session::Cfg) {
            // A tracker gone says yes; a requester gone cancels its vote.
            let after = self.vote.closed(id);
            self.cfg_effects.extend(after);
        }
        match why {
            Gone::Closed => {}
            other => self.warn(format!(
                "disconnecting {} client pid {}: {other}",
                l.conn.service.socket_name(),
                l.conn.pid
            )),
        }
        let reg = self.poll.registry();
        for (fd, _, _) in Self::conn_fds(&l.conn) {
            let _ = reg.deregister(&mut SourceFd(&fd));
        }
        if let Session::Cpg(c) = &l.session {
            let _ = reg.deregister(&mut SourceFd(&c.fd()));
        }
        let _ = l.conn.setup.shutdown(std::net::Shutdown::Both);
        // Dropping the session drops the CPG member: PROCDOWN for its group.
    }

    /// Runs `f` on connection `id`; closes it if `f` says so.
    fn with_conn(&mut self, id: u64, f: impl FnOnce(&NodeHandle, &mut Live) -> Result<(), Gone>) {
        let Some(l) = self.conns.get_mut(&id) else {
            return;
        };
        if let Err(g) = f(&self.node, l) {
            self.close(id, &g);
        }
    }

    /// The setup socket is ready: the client closed, or (shared memory) it
    /// announced requests, or there is room for owed notification bytes.
    fn liveness(&mut self, id: u64) {
        self.with_conn(id, |_, l| l.conn.drain_setup());
        if self.conns.get(&id).is_some_and(|l| l.conn.is_shm()) {
            self.requests(id);
            self.with_conn(id, |_, l| l.conn.flush_events());
        }
    }

    fn member_events(&mut self, id: u64) {
        self.with_conn(id, |node, l| {
            if let Session::Cpg(c) = &mut l.session {
                let mut out = Vec::new();
                c.drain(node, &mut out);
                for e in out {
                    l.conn.push_event(e)?;
                }
            }
            Ok(())
        });
    }

    /// Brings `runtime.members.*` up to date when the ring changed (looked at
    /// every round: at most a poll timeout late) and tells the trackers.
    fn runtime_keys(&mut self) {
        let m = self.node.membership();
        if self.ring == Some(m.ring) {
            return;
        }
        self.ring = Some(m.ring);
        let changes = self
            .member_keys
            .update(&mut self.cmap, &m.members, &self.options.node_addrs);
        self.notify(&changes);
    }

    /// Sends every cmap connection the notifications `changes` owe it.
    fn notify(&mut self, changes: &[CmapChange]) {
        if changes.is_empty() {
            return;
        }
        let ids: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, l)| matches!(l.session, Session::Cmap(_)))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.with_conn(id, |_, l| {
                let Session::Cmap(c) = &l.session else {
                    return Ok(());
                };
                for change in changes {
                    for e in c.notifications(change) {
                        l.conn.push_event(e)?;
                    }
                }
                Ok(())
            });
        }
    }

    fn quorum_change(&mut self, change: &QuorumChange) {
        if let Some(info) = self.node.quorum().info() {
            let changes = votequorum_keys(&mut self.cmap, &info.cluster);
            self.notify(&changes);
        }
        let s = QuorumState::from_change(change);
        let ids: Vec<u64> = self.conns.keys().copied().collect();
        for id in ids {
            self.with_conn(id, |_, l| {
                let out = match &mut l.session {
                    Session::Quorum(q) => q.on_change(&s),
                    Session::Votequorum(v) => v.on_change(&s),
                    _ => Vec::new(),
                };
                for e in out {
                    l.conn.push_event(e)?;
                }
                Ok(())
            });
        }
    }

    /// Reads and answers the requests waiting on connection `id`.
    fn requests(&mut self, id: u64) {
        let mut buf = std::mem::take(&mut self.buf);
        let mut changes = Vec::new();
        let mut budget = REQUESTS_PER_TURN;
        loop {
            let stats_client = matches!(
                self.conns.get(&id).map(|l| &l.session),
                Some(Session::Cmap(c)) if c.uses_stats()
            );
            let ipc_stats = stats_client.then(|| self.ipc_stat_keys());
            let Some(l) = self.conns.get_mut(&id) else {
                break;
            };
            if l.conn.is_held() {
                break;
            }
            if budget == 0 {
                // Others' turn; this connection's socket is read again in the
                // next round (edge-triggered: no new readiness would come).
                self.more.insert(id);
                break;
            }
            budget -= 1;
            let n = match l
                .conn
                .next_request(&mut buf, self.options.max_message as usize)
            {
                Ok(Some(n)) => n,
                Ok(None) => break,
                Err(g) => {
                    self.close(id, &g);
                    break;
                }
            };
            let mut ctx = Ctx {
                logger: &self.options.logger,
                node: &self.node,
                cmap: &mut self.cmap,
                changes: &mut changes,
                node_addrs: &self.options.node_addrs,
                link_mtu: self.options.link_mtu,
                knet: self.options.knet,
                reload: self.options.reload.as_ref(),
                shutdown: self.options.shutdown,
                vote: &mut self.vote,
                effects: &mut self.cfg_effects,
                ipc_stats,
                baseline: &mut self.baseline,
                qdevice: &mut self.qdevice,
            };
            let outcome = Self::dispatch(&mut ctx, id, l, &buf[..n]);
            if let Err(g) = outcome {
                self.close(id, &g);
                break;
            }
        }
        self.buf = buf;
        self.notify(&changes);
        self.apply_cfg_effects();
    }

    /// Does what the shutdown vote asked: callbacks to trackers, the answer
    /// to a waiting requester, stopping the node. A connection closed on the
    /// way (it stopped reading) adds its own effects: done until none remain.
    fn apply_cfg_effects(&mut self) {
        while !self.cfg_effects.is_empty() {
            for e in std::mem::take(&mut self.cfg_effects) {
                match e {
                    Effect::Ask {
                        conns,
                        flags,
                        error,
                    } => {
                        let callback = cfg::test_shutdown_callback(flags, error);
                        for id in conns {
                            self.with_conn(id, |_, l| l.conn.push_event(callback.clone()));
                        }
                    }
                    Effect::Answer { conn, error } => {
                        let reply = cfg::shutdown_reply(error);
                        self.with_conn(conn, |_, l| {
                            l.conn.reply(&reply)?;
                            l.conn.flush_events()
                        });
                        if error != cs::OK {
                            self.warn(format!(
                                "shutdown refused by the cfg trackers (error {error})"
                            ));
                        }
                    }
                    Effect::Stop => {
                        if let Some(stop) = self.options.shutdown {
                            self.warn("shutdown agreed: stopping the node".into());
                            stop.store(true, Ordering::SeqCst);
                        }
                    }
                }
            }
        }
    }

    /// The stats map's IPC part: `stats.ipcs.global.{active,closed}` and per
    /// connection `stats.ipcs.service<S>.<pid>.<conn>.*`.
    fn ipc_stat_keys(&self) -> Vec<(String, CmapValue)> {
        let mut out = vec![
            (
                "stats.ipcs.global.active".to_string(),
                CmapValue::u64(self.conns.len() as u64),
            ),
            (
                "stats.ipcs.global.closed".to_string(),
                CmapValue::u64(self.closed),
            ),
        ];
        for (id, l) in &self.conns {
            let c = l.conn.counters();
            let p = format!(
                "stats.ipcs.service{}.{}.{id}",
                l.conn.service as u32, l.conn.pid
            );
            let procname = std::fs::read_to_string(format!("/proc/{}/comm", l.conn.pid))
                .map(|s| s.trim_end().to_string())
                .unwrap_or_default();
            let u32_of = |n: u64| CmapValue::U32(u32::try_from(n).unwrap_or(u32::MAX));
            out.extend([
                (format!("{p}.procname"), CmapValue::Str(procname)),
                (format!("{p}.requests"), CmapValue::u64(c.requests)),
                (format!("{p}.responses"), CmapValue::u64(c.responses)),
                (format!("{p}.dispatched"), CmapValue::u64(c.dispatched)),
                (format!("{p}.queued"), u32_of(c.queued)),
                (format!("{p}.queued_bytes"), CmapValue::u64(c.queued_bytes)),
                (
                    format!("{p}.flow_control"),
                    u32_of(u64::from(c.flow_control)),
                ),
            ]);
        }
        out
    }

    /// Decodes and handles one request of connection `l`.
    fn dispatch(ctx: &mut Ctx<'_>, id: u64, l: &mut Live, bytes: &[u8]) -> Result<(), Gone> {
        let (logger, node) = (ctx.logger, ctx.node);
        let req = match decode_request(bytes) {
            Ok(r) => r,
            Err(e) => return Self::invalid(logger, l, &e, false),
        };
        let mut events = Vec::new();
        let reply = match &mut l.session {
            Session::Cpg(c) => match CpgCall::decode(&req) {
                Err(e) => {
                    return Self::invalid(logger, l, &e, req.id == super::cpg_wire::req::MCAST);
                }
                Ok(call) => match c.handle(node, call) {
                    Handled::Reply(r) => Some(r),
                    Handled::NoReply => None,
                    Handled::Held => {
                        l.conn.hold();
                        None
                    }
                },
            },
            Session::Quorum(q) => match QuorumCall::decode(&req) {
                Err(e) => return Self::invalid(logger, l, &e, false),
                Ok(call) => Some(q.handle(node, call, &mut events)),
            },
            Session::Votequorum(v) => match VotequorumCall::decode(&req) {
                Err(e) => return Self::invalid(logger, l, &e, false),
                Ok(call) => Some(v.handle(node, call, ctx.qdevice, &mut events)),
            },
            Session::Cmap(c) => match CmapCall::decode(&req) {
                Err(e) => return Self::invalid(logger, l, &e, false),
                Ok(call) if c.uses_stats() => Some(stats_call(ctx, c, call)),
                Ok(call) => Some(c.handle_call(&mut *ctx.cmap, call, ctx.changes)),
            },
            Session::Cfg => match CfgCall::decode(&req) {
                Err(e) => return Self::invalid(logger, l, &e, false),
                Ok(CfgCall::ReloadConfig) => Some(cfg::reload_reply(reload_check(ctx))),
                Ok(CfgCall::TryShutdown { flags }) => match ctx.shutdown {
                    Some(_) => {
                        let msg = format!(
                            "shutdown requested (flags {flags}) by cfg client pid {}",
                            l.conn.pid
                        );
                        log_warn(logger, &msg);
                        let timeout = shutdown_timeout(ctx.cmap);
                        let vote = ctx.vote.try_shutdown(id, flags, Instant::now(), timeout);
                        // Answered through the effects: at once, or after the vote.
                        ctx.effects.extend(vote);
                        None
                    }
                    None => Some(cfg::shutdown_reply(cs::ERR_NOT_SUPPORTED)),
                },
                Ok(CfgCall::TrackStart) => {
                    ctx.effects.extend(ctx.vote.track_start(id));
                    Some(cfg::track_reply(true))
                }
                Ok(CfgCall::TrackStop) => {
                    ctx.effects.extend(ctx.vote.track_stop(id));
                    Some(cfg::track_reply(false))
                }
                Ok(CfgCall::ReplyToShutdown { yes }) => {
                    let (error, after) = ctx.vote.reply(id, yes);
                    ctx.effects.extend(after);
                    Some(cfg::reply_to_shutdown_reply(error))
                }
                Ok(call) => Some(cfg::reply(call, node.node_id(), ctx.node_addrs, |n| {
                    node_status(ctx, n)
                })),
            },
        };
        if let Some(r) = reply {
            l.conn.reply(&r)?;
        }
        for e in events {
            l.conn.push_event(e)?;
        }
        // The client's sockets exist now: send callbacks that waited.
        l.conn.flush_events()
    }

    /// A malformed request: answered `CS_ERR_INVALID_PARAM` as Corosync does
    /// (not for one-way requests, whose sender reads no reply).
    fn invalid(logger: &Logger, l: &mut Live, e: &IpcError, one_way: bool) -> Result<(), Gone> {
        let msg = format!(
            "invalid request from {} client pid {}: {e}",
            l.conn.service.socket_name(),
            l.conn.pid
        );
        log_warn(logger, &msg);
        if one_way {
            return Ok(());
        }
        l.conn.reply(&response(0, cs::ERR_INVALID_PARAM, 24))
    }
}
