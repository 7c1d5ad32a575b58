//! The node-side quorum-device driver: one thread that keeps a TCP connection to a
//! `phalanx-qnetd` arbitrator, feeds the sans-IO [`QdeviceClient`], runs heuristics
//! on membership changes, and reports the vote.
//!
//! ```no_run
//! use phalanx::quorum::qdevice::client::ClientConfig;
//! use phalanx::quorum::{Algorithm, TieBreaker};
//! use phalanx::quorum_client::{QdeviceDriver, DriverConfig};
//! use phalanx::totem::RingId;
//! let client = ClientConfig {
//!     cluster: b"alpha".to_vec(), node: 1, key: std::fs::read("/etc/phalanx/authkey").unwrap(),
//!     algorithm: Algorithm::Ffsplit, tie_breaker: TieBreaker::Lowest,
//!     config_nodes: vec![1, 2, 3, 4], confirm_release: false,
//! };
//! let d = QdeviceDriver::start(DriverConfig::new("qnetd.example:5403", client), |_ev| {}).unwrap();
//! d.set_membership(RingId { seq: 4, rep: 1 }, vec![1, 2]);
//! println!("vote: {:?}", d.vote());
//! ```

mod from_config;
pub mod heuristics;

pub use from_config::{FromConfigError, qdevice_config, votequorum_config};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, unbounded};
use parking_lot::Mutex;
use phalanx_quorum::NodeId;
use phalanx_quorum::qdevice::Heuristics;
use phalanx_quorum::qdevice::client::{ClientConfig, ClientEvent, QdeviceClient};
use phalanx_totem::{RingId, Time};
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Driver settings.
#[derive(Clone, Debug)]
pub struct DriverConfig {
    /// `host:port` of the arbitrator.
    pub addr: String,
    /// The client core's settings.
    pub client: ClientConfig,
    /// Heuristics commands (`sh -c`), run on every membership change.
    pub heuristics: Vec<String>,
    /// Deadline for all heuristics commands. Default 5 s.
    pub heuristics_timeout: Duration,
    /// Delay between connection attempts. Default 200 ms.
    pub reconnect: Duration,
}

impl DriverConfig {
    /// Defaults for `addr` and `client`.
    pub fn new(addr: &str, client: ClientConfig) -> Self {
        DriverConfig {
            addr: addr.to_string(),
            client,
            heuristics: Vec::new(),
            heuristics_timeout: Duration::from_secs(5),
            reconnect: Duration::from_millis(200),
        }
    }
}

enum Cmd {
    Membership(RingId, Vec<NodeId>),
    Heuristics(RingId, Heuristics),
    ReleaseDone,
    Stop,
}

#[derive(Default)]
struct Shared {
    vote: Option<RingId>,
    connected: bool,
}

/// A running driver. Dropping it stops the thread.
pub struct QdeviceDriver {
    tx: Sender<Cmd>,
    shared: Arc<Mutex<Shared>>,
    thread: Option<JoinHandle<()>>,
}

impl QdeviceDriver {
    /// Starts the driver thread. `on_event` is called on the driver thread for every
    /// client event — before any frame that depends on it is written, so an observer
    /// sees a vote dropped before the arbitrator can hear it was released.
    pub fn start(
        cfg: DriverConfig,
        on_event: impl FnMut(&ClientEvent) + Send + 'static,
    ) -> io::Result<Self> {
        let (tx, rx) = unbounded();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (s2, tx2) = (shared.clone(), tx.clone());
        let thread = std::thread::Builder::new()
            .name(format!("qdevice-{}", cfg.client.node))
            .spawn(move || Loop::new(cfg, rx, tx2, s2, Box::new(on_event)).run())?;
        Ok(QdeviceDriver {
            tx,
            shared,
            thread: Some(thread),
        })
    }

    /// The node's totem membership changed.
    pub fn set_membership(&self, ring: RingId, members: Vec<NodeId>) {
        let _ = self.tx.send(Cmd::Membership(ring, members));
    }

    /// See [`ClientConfig::confirm_release`].
    pub fn release_done(&self) {
        let _ = self.tx.send(Cmd::ReleaseDone);
    }

    /// The ring the device currently casts its vote for.
    pub fn vote(&self) -> Option<RingId> {
        self.shared.lock().vote
    }

    /// Whether the arbitrator link is authenticated.
    pub fn is_connected(&self) -> bool {
        self.shared.lock().connected
    }
}

impl Drop for QdeviceDriver {
    fn drop(&mut self) {
        let _ = self.tx.send(Cmd::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Longest blocking read before commands are looked at again.
const TICK: Duration = Duration::from_millis(20);

struct Loop {
    cfg: DriverConfig,
    client: QdeviceClient,
    rx: Receiver<Cmd>,
    tx: Sender<Cmd>,
    shared: Arc<Mutex<Shared>>,
    on_event: Box<dyn FnMut(&ClientEvent) + Send>,
    start: Instant,
    stream: Option<TcpStream>,
    next_connect: Instant,
    ring: Option<RingId>,
}

impl Loop {
    fn new(
        cfg: DriverConfig,
        rx: Receiver<Cmd>,
        tx: Sender<Cmd>,
        shared: Arc<Mutex<Shared>>,
        on_event: Box<dyn FnMut(&ClientEvent) + Send>,
    ) -> Self {
        Loop {
            client: QdeviceClient::new(cfg.client.clone()),
            cfg,
            rx,
            tx,
            shared,
            on_event,
            start: Instant::now(),
            stream: None,
            next_connect: Instant::now(),
            ring: None,
        }
    }

    fn now(&self) -> Time {
        Time::from_nanos(u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    fn run(mut self) {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            loop {
                match self.rx.try_recv() {
                    Ok(Cmd::Stop) => return,
                    Ok(c) => self.command(c),
                    Err(_) => break,
                }
            }
            // Connect only once there is a membership to report: the arbitrator
            // drops connections that stay silent.
            if self.stream.is_none() && self.ring.is_some() && Instant::now() >= self.next_connect {
                self.connect();
            }
            let now = self.now();
            let wait = self
                .client
                .poll_timeout()
                .map_or(TICK, |t| t.saturating_since(now))
                .clamp(Duration::from_millis(1), TICK);
            match self.stream.as_mut() {
                Some(s) => {
                    let _ = s.set_read_timeout(Some(wait));
                    match s.read(&mut buf) {
                        Ok(0) => self.drop_link(),
                        Ok(n) => {
                            let now = self.now();
                            self.client.handle_bytes(now, &buf[..n]);
                        }
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::WouldBlock
                                    | io::ErrorKind::TimedOut
                                    | io::ErrorKind::Interrupted
                            ) => {}
                        Err(_) => self.drop_link(),
                    }
                }
                None => match self.rx.recv_timeout(wait) {
                    Ok(Cmd::Stop) => return,
                    Ok(c) => self.command(c),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                },
            }
            let now = self.now();
            self.client.handle_timeout(now);
            self.flush();
        }
    }

    fn command(&mut self, c: Cmd) {
        let now = self.now();
        match c {
            Cmd::Membership(ring, members) => {
                self.ring = Some(ring);
                if !self.cfg.heuristics.is_empty() {
                    self.client.heuristics_pending();
                }
                self.client.set_membership(now, ring, &members);
                if !self.cfg.heuristics.is_empty() {
                    let (cmds, t, tx) = (
                        self.cfg.heuristics.clone(),
                        self.cfg.heuristics_timeout,
                        self.tx.clone(),
                    );
                    // Results for an older membership are dropped when they arrive.
                    let _ = std::thread::Builder::new()
                        .name("qdevice-heuristics".into())
                        .spawn(move || {
                            let _ = tx.send(Cmd::Heuristics(ring, heuristics::run(&cmds, t)));
                        });
                }
            }
            Cmd::Heuristics(ring, h) => {
                if self.ring == Some(ring) {
                    self.client.set_heuristics(now, h);
                }
            }
            Cmd::ReleaseDone => self.client.release_done(now),
            Cmd::Stop => {}
        }
    }

    fn connect(&mut self) {
        self.next_connect = Instant::now() + self.cfg.reconnect;
        let Some(addr) = self
            .cfg
            .addr
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
        else {
            return;
        };
        let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
            return;
        };
        let _ = s.set_nodelay(true);
        let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
        let Ok(nonce) = nonce() else { return };
        self.stream = Some(s);
        let now = self.now();
        self.client.connected(now, nonce);
    }

    fn drop_link(&mut self) {
        self.stream = None;
        let now = self.now();
        self.client.disconnected(now);
        self.shared.lock().connected = false;
    }

    /// Events first (so observers see a dropped vote before its release is sent),
    /// then frames.
    fn flush(&mut self) {
        while let Some(e) = self.client.poll_event() {
            {
                let mut sh = self.shared.lock();
                match &e {
                    ClientEvent::Vote { ring, cast } => {
                        sh.vote = if *cast { Some(*ring) } else { None };
                    }
                    ClientEvent::Connected => sh.connected = true,
                    ClientEvent::Refused(_) | ClientEvent::ProtocolError => sh.connected = false,
                }
            }
            (self.on_event)(&e);
            if matches!(e, ClientEvent::Refused(_) | ClientEvent::ProtocolError) {
                self.stream = None;
            }
        }
        while let Some(b) = self.client.poll_transmit() {
            let ok = self
                .stream
                .as_mut()
                .is_some_and(|s| s.write_all(&b).is_ok());
            if !ok {
                if self.stream.is_some() {
                    self.drop_link();
                }
                break;
            }
        }
    }
}

/// 32 bytes from the operating system's generator.
fn nonce() -> io::Result<[u8; 32]> {
    let mut n = [0u8; 32];
    for c in n.chunks_mut(8) {
        c.copy_from_slice(&crate::crypto::random_boot_id()?.to_le_bytes());
    }
    Ok(n)
}
