//! One established connection: its channels (sockets or shared-memory rings),
//! its bounded callback queue and the service session behind it.

use super::Service;
use super::handshake::Resources;
use super::shm::ShmResources;
use super::sockets::recv_datagram;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::os::unix::net::UnixStream;

/// How requests, replies and callbacks travel.
pub enum Channels {
    /// Datagram sockets (`QB_IPC_SOCKET`).
    Socket {
        /// Sockets and control file.
        res: Resources,
        /// Whether the reply and callback sockets are connected to the client's.
        connected: bool,
    },
    /// Shared-memory rings (`QB_IPC_SHM`).
    Shm {
        /// The rings.
        res: ShmResources,
        /// Callbacks in the event ring whose notification byte is not yet
        /// written to the setup socket (it was full).
        owed: u64,
    },
}

/// Why a connection is being closed.
#[derive(Debug)]
pub enum Gone {
    /// The client closed its end (or its sockets vanished).
    Closed,
    /// The client stopped reading its callbacks (queue limit reached).
    SlowConsumer,
    /// The client broke the protocol (see the message).
    Protocol(String),
}

/// Limits of one connection's callback queue.
#[derive(Clone, Copy, Debug)]
pub struct QueueLimits {
    /// Most callbacks waiting.
    pub messages: usize,
    /// Most bytes waiting.
    pub bytes: usize,
}

/// An established connection.
pub struct Conn {
    /// The service.
    pub service: Service,
    /// The client's pid (from the kernel).
    pub pid: u32,
    /// The setup socket: notices the client going away, and carries the
    /// shared-memory transport's notification bytes.
    pub setup: UnixStream,
    /// Requests, replies and callbacks.
    pub channels: Channels,
    queue: VecDeque<Vec<u8>>,
    queued_bytes: usize,
    limits: QueueLimits,
    /// Requests are not read while true (a multicast waits for room).
    held: bool,
    /// The callback backlog passed a quarter of its limit: multicasts are
    /// refused at the client (flow control) until it drains to an eighth.
    throttled: bool,
    counters: ConnCounters,
}

/// What a connection did, for the cmap stats map (`stats.ipcs.*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnCounters {
    /// Requests read.
    pub requests: u64,
    /// Replies sent.
    pub responses: u64,
    /// Callbacks queued for the client.
    pub dispatched: u64,
    /// Callbacks waiting in the queue now.
    pub queued: u64,
    /// Bytes of those.
    pub queued_bytes: u64,
    /// Whether the client's multicasts are refused now (flow control).
    pub flow_control: bool,
}

impl std::fmt::Display for Gone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Gone::Closed => write!(f, "closed"),
            Gone::SlowConsumer => write!(f, "callback queue full (client not reading)"),
            Gone::Protocol(why) => write!(f, "protocol error: {why}"),
        }
    }
}

/// The client shrank a ring file under us (SIGBUS caught, see `sigbus`).
fn truncated() -> Gone {
    Gone::Protocol("shared-memory file truncated by the client".into())
}

fn gone(e: &io::Error) -> Gone {
    match e.kind() {
        io::ErrorKind::WouldBlock => Gone::SlowConsumer,
        _ => Gone::Closed,
    }
}

impl Conn {
    /// A connection over `setup` with `channels`.
    pub fn new(
        service: Service,
        pid: u32,
        setup: UnixStream,
        channels: Channels,
        limits: QueueLimits,
    ) -> Conn {
        Conn {
            service,
            pid,
            setup,
            channels,
            queue: VecDeque::new(),
            queued_bytes: 0,
            limits,
            held: false,
            throttled: false,
            counters: ConnCounters::default(),
        }
    }

    /// The connection's counters and queue, now.
    pub fn counters(&self) -> ConnCounters {
        ConnCounters {
            queued: self.queue.len() as u64,
            queued_bytes: self.queued_bytes as u64,
            flow_control: self.held || self.throttled,
            ..self.counters
        }
    }

    /// Connects the reply and callback sockets to the client's, which exist
    /// once it sent its first request. False while they do not exist yet.
    /// Always true for shared memory.
    pub fn connect(&mut self) -> bool {
        match &mut self.channels {
            Channels::Shm { .. } => true,
            Channels::Socket {
                connected: true, ..
            } => true,
            Channels::Socket { res, connected } => {
                let ok = res
                    .request
                    .connect_addr(&res.response_peer)
                    .and_then(|()| res.event.connect_addr(&res.event_peer));
                *connected = ok.is_ok();
                *connected
            }
        }
    }

    /// Sends a reply. A client waits for each reply before its next request,
    /// so a full reply queue means a client that does not: it is dropped.
    pub fn reply(&mut self, bytes: &[u8]) -> Result<(), Gone> {
        if !self.connect() {
            return Err(Gone::Closed);
        }
        let unread = || Gone::Protocol("requests sent without reading the replies".into());
        self.counters.responses += 1;
        match &self.channels {
            Channels::Socket { res, .. } => match res.request.send(bytes) {
                Ok(_) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(unread()),
                Err(e) => Err(gone(&e)),
            },
            Channels::Shm { res, .. } if res.damaged() => Err(truncated()),
            Channels::Shm { res, .. } => match res.response.write(bytes) {
                Ok(true) if res.damaged() => Err(truncated()),
                Ok(true) => Ok(()),
                Ok(false) => Err(unread()),
                Err(e) => Err(Gone::Protocol(e.to_string())),
            },
        }
    }

    /// The next request, into `buf` (`buf[..n]`); `None` when none waits.
    /// A request above `max` bytes is a protocol error.
    pub fn next_request(&mut self, buf: &mut Vec<u8>, max: usize) -> Result<Option<usize>, Gone> {
        let got = self.read_request(buf, max);
        if let Ok(Some(_)) = got {
            self.counters.requests += 1;
        }
        got
    }

    fn read_request(&mut self, buf: &mut Vec<u8>, max: usize) -> Result<Option<usize>, Gone> {
        match &self.channels {
            Channels::Socket { res, .. } => {
                buf.resize(max + 1, 0);
                loop {
                    match recv_datagram(&res.request, buf) {
                        Ok(n) if n > max => {
                            return Err(Gone::Protocol(format!(
                                "message of {n} bytes above the maximum {max}"
                            )));
                        }
                        Ok(n) => return Ok(Some(n)),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => return Err(Gone::Closed),
                    }
                }
            }
            // The ring's maximum is the negotiated one (<= max).
            Channels::Shm { res, .. } => {
                let got = res.request.read(buf);
                if res.damaged() {
                    return Err(truncated());
                }
                got.map_err(|e| Gone::Protocol(e.to_string()))
            }
        }
    }

    /// Reads what the client wrote on the setup socket: nothing expected for
    /// sockets, one wake-up byte per request for shared memory (the requests
    /// themselves are read from the ring). `Err(Closed)` at EOF.
    pub fn drain_setup(&mut self) -> Result<(), Gone> {
        let mut b = [0u8; 256];
        loop {
            match self.setup.read(&mut b) {
                Ok(0) => return Err(Gone::Closed),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(Gone::Closed),
            }
        }
    }

    /// Whether this connection uses shared memory.
    pub fn is_shm(&self) -> bool {
        matches!(self.channels, Channels::Shm { .. })
    }

    /// Queues a callback and sends what the client's socket takes.
    pub fn push_event(&mut self, bytes: Vec<u8>) -> Result<(), Gone> {
        if self.queue.len() >= self.limits.messages
            || self.queued_bytes + bytes.len() > self.limits.bytes
        {
            return Err(Gone::SlowConsumer);
        }
        self.queued_bytes += bytes.len();
        self.queue.push_back(bytes);
        self.counters.dispatched += 1;
        self.flush_events()
    }

    /// Raises or lowers the client's flow control as the backlog crosses its
    /// watermarks: a client that sends faster than it reads its own
    /// deliveries is slowed (`CS_ERR_TRY_AGAIN`) before it would be dropped.
    fn watermarks(&mut self) {
        let (n, b) = (self.queue.len(), self.queued_bytes);
        let high = n * 4 >= self.limits.messages || b * 4 >= self.limits.bytes;
        let low = n * 8 <= self.limits.messages && b * 8 <= self.limits.bytes;
        if high != self.throttled && (high || low) {
            self.throttled = high;
            self.update_flow_control();
        }
    }

    /// Whether a multicast waits for room in the node (requests are not read).
    pub fn is_held(&self) -> bool {
        self.held
    }

    /// A multicast waits for room: stop reading requests, refuse multicasts.
    pub fn hold(&mut self) {
        self.held = true;
        self.update_flow_control();
    }

    /// The held multicast is gone.
    pub fn release(&mut self) {
        self.held = false;
        self.update_flow_control();
    }

    fn update_flow_control(&self) {
        self.set_flow_control(self.held || self.throttled);
    }

    /// Sends queued callbacks until the client's socket (or event ring) is
    /// full.
    pub fn flush_events(&mut self) -> Result<(), Gone> {
        if !self.connect() {
            // Before the first request; sent once it comes (or on a tick).
            return Ok(());
        }
        match &mut self.channels {
            Channels::Socket { res, .. } => {
                while let Some(front) = self.queue.front() {
                    match res.event.send(front) {
                        Ok(_) => {
                            self.queued_bytes -= front.len();
                            self.queue.pop_front();
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(gone(&e)),
                    }
                }
            }
            Channels::Shm { res, owed } => {
                while let Some(front) = self.queue.front() {
                    match res.event.write(front) {
                        Ok(true) => {
                            self.queued_bytes -= front.len();
                            self.queue.pop_front();
                            *owed += 1;
                        }
                        // The client has not read enough yet; retried on a tick.
                        Ok(false) => break,
                        Err(e) => return Err(Gone::Protocol(e.to_string())),
                    }
                }
                if res.damaged() {
                    return Err(truncated());
                }
                // One byte per callback on the setup socket: the client polls
                // it and reads one byte per callback it takes.
                const ZEROS: [u8; 512] = [0; 512];
                while *owed > 0 {
                    let n = (*owed).min(ZEROS.len() as u64) as usize;
                    match self.setup.write(&ZEROS[..n]) {
                        Ok(0) => return Err(Gone::Closed),
                        Ok(w) => *owed -= w as u64,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => return Err(Gone::Closed),
                    }
                }
            }
        }
        self.watermarks();
        Ok(())
    }

    /// Whether callbacks (or their notifications) wait to be sent.
    pub fn has_backlog(&self) -> bool {
        !self.queue.is_empty() || matches!(self.channels, Channels::Shm { owed: 1.., .. })
    }

    /// Raises or lowers libqb's request flow control: while raised, the
    /// client's multicasts fail with `CS_ERR_TRY_AGAIN` before reaching us
    /// (value 2 = `QB_IPCS_RATE_OFF_2`, which blocks only multicasts).
    fn set_flow_control(&self, on: bool) {
        let v: i32 = if on { 2 } else { 0 };
        match &self.channels {
            // The request pair's flow_control field is at offset 4.
            Channels::Socket { res, .. } => {
                let _ = res.control.write_at(&v.to_ne_bytes(), 4);
            }
            // The request ring's user data.
            Channels::Shm { res, .. } => res.request.set_flow_control(v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::handshake::{self, Client};
    use super::*;
    use std::os::unix::net::UnixDatagram;

    /// A connection's resources under a private directory, with the client's
    /// reply and callback sockets bound (as libqb does after the handshake).
    fn connection(limits: QueueLimits) -> (Conn, UnixDatagram, UnixDatagram, tempdir::Dir) {
        let dir = tempdir::Dir::new();
        let client = Client {
            service: "cpg",
            pid: std::process::id(),
            uid: super::super::sockets::euid(),
            gid: 0,
            serial: dir.serial,
            max_msg_size: 65536,
        };
        let res = handshake::create(&dir.path, &client).unwrap();
        let base = res.answer.response.clone();
        let addr = |suffix: &str| {
            super::super::sockets::abstract_addr(&format!("{base}-{suffix}")).unwrap()
        };
        let response = UnixDatagram::bind_addr(&addr("response")).unwrap();
        response.connect_addr(&addr("request")).unwrap();
        let event = UnixDatagram::bind_addr(&addr("event")).unwrap();
        event.connect_addr(&addr("event-tx")).unwrap();
        let (setup, _other) = UnixStream::pair().unwrap();
        let channels = Channels::Socket {
            res,
            connected: false,
        };
        (
            Conn::new(Service::Cpg, client.pid, setup, channels, limits),
            response,
            event,
            dir,
        )
    }

    /// A directory of its own per test, removed afterwards.
    mod tempdir {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(1);

        pub struct Dir {
            pub path: std::path::PathBuf,
            pub serial: u64,
        }

        impl Dir {
            pub fn new() -> Dir {
                let serial = NEXT.fetch_add(1, Ordering::Relaxed);
                let path = std::env::temp_dir()
                    .join(format!("phalanx-qb-conn-{}-{serial}", std::process::id()));
                std::fs::create_dir_all(&path).unwrap();
                Dir { path, serial }
            }
        }

        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.path);
            }
        }
    }

    fn flow_control(conn: &Conn) -> i32 {
        match &conn.channels {
            Channels::Socket { res, .. } => {
                let mut b = [0u8; 4];
                res.control.read_exact_at(&mut b, 4).unwrap();
                i32::from_ne_bytes(b)
            }
            Channels::Shm { res, .. } => res.request.flow_control(),
        }
    }

    #[test]
    fn a_client_that_never_reads_is_slowed_then_dropped() {
        let limits = QueueLimits {
            messages: 64,
            bytes: 1 << 20,
        };
        let (mut conn, _response, _event, _dir) = connection(limits);
        assert_eq!(flow_control(&conn), 0);
        let mut pushed = 0;
        let outcome = loop {
            match conn.push_event(vec![7u8; 4096]) {
                Ok(()) => pushed += 1,
                Err(e) => break e,
            }
            if pushed > 10_000 {
                panic!("the queue never filled");
            }
        };
        assert!(matches!(outcome, Gone::SlowConsumer), "{outcome}");
        assert_eq!(flow_control(&conn), 2, "slowed before it was dropped");
    }

    #[test]
    fn a_reading_client_gets_its_callbacks_in_order_and_is_released() {
        let limits = QueueLimits {
            messages: 64,
            bytes: 1 << 20,
        };
        let (mut conn, _response, event, _dir) = connection(limits);
        event.set_nonblocking(true).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 8192];
        for i in 0..1000u32 {
            conn.push_event(i.to_ne_bytes().repeat(512)).unwrap();
            while let Ok(n) = event.recv(&mut buf) {
                got.push(u32::from_ne_bytes(buf[..4].try_into().unwrap()));
                assert_eq!(n, 2048);
            }
            conn.flush_events().unwrap();
        }
        // Everything queued is in the kernel or in our queue: drain both.
        for _ in 0..10_000 {
            if !conn.has_backlog() && got.len() == 1000 {
                break;
            }
            conn.flush_events().unwrap();
            while event.recv(&mut buf).is_ok() {
                got.push(u32::from_ne_bytes(buf[..4].try_into().unwrap()));
            }
        }
        assert_eq!(got, (0..1000).collect::<Vec<_>>());
        assert_eq!(flow_control(&conn), 0, "released once drained");
    }

    #[test]
    fn replies_reach_the_clients_response_socket() {
        let limits = QueueLimits {
            messages: 4,
            bytes: 1 << 16,
        };
        let (mut conn, response, _event, _dir) = connection(limits);
        conn.reply(b"0123456789abcdef01234567").unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(response.recv(&mut buf).unwrap(), 24);
        conn.hold();
        assert_eq!(flow_control(&conn), 2);
        conn.release();
        assert_eq!(flow_control(&conn), 0);
    }
}
