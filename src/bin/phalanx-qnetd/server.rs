//! The arbitrator's IO: one mio poll loop over a TCP listener and its connections,
//! feeding the sans-IO [`Qnetd`] core.

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use phalanx_quorum::qdevice::server::{Qnetd, ServerConfig};
use phalanx_totem::Time;
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

const LISTENER: Token = Token(usize::MAX);
/// Unsent bytes allowed per connection before it is dropped (a reader that stalls).
const MAX_WBUF: usize = 1 << 20;

struct Conn {
    stream: TcpStream,
    wbuf: Vec<u8>,
}

/// Serves until an IO error on the listener.
pub fn run(addr: &str, cfg: ServerConfig) -> io::Result<()> {
    let addr = addr
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{addr}: {e}")))?;
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(addr)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let names: Vec<String> = cfg
        .keys
        .keys()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    eprintln!(
        "phalanx-qnetd: serving {} (lease {} ms)",
        names.join(", "),
        cfg.lease.as_millis()
    );
    // Tests and scripts read this line to learn the port. Nothing else goes to
    // stdout (a reader may close the pipe after this line).
    println!("phalanx-qnetd listening on {}", listener.local_addr()?);
    io::stdout().flush()?;
    let start = Instant::now();
    let now = || Time::from_nanos(u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX));
    let mut core = Qnetd::new(cfg, now());
    let mut conns: BTreeMap<u64, Conn> = BTreeMap::new();
    let mut next_id: u64 = 0;
    let mut events = Events::with_capacity(256);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let t = now();
        let timeout = core
            .poll_timeout()
            .map_or(Duration::from_secs(1), |d| d.saturating_since(t))
            .min(Duration::from_secs(1));
        if let Err(e) = poll.poll(&mut events, Some(timeout)) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for ev in events.iter() {
            if ev.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            let id = next_id;
                            next_id += 1;
                            let _ = stream.set_nodelay(true);
                            poll.registry().register(
                                &mut stream,
                                Token(id as usize),
                                Interest::READABLE | Interest::WRITABLE,
                            )?;
                            conns.insert(
                                id,
                                Conn {
                                    stream,
                                    wbuf: Vec::new(),
                                },
                            );
                            core.accept(now(), id, nonce()?);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        // Per-connection accept failures (e.g. EMFILE) must not stop us.
                        Err(_) => break,
                    }
                }
                continue;
            }
            let id = ev.token().0 as u64;
            let mut dead = false;
            if let Some(c) = conns.get_mut(&id) {
                if ev.is_readable() {
                    loop {
                        match c.stream.read(&mut buf) {
                            Ok(0) => {
                                dead = true;
                                break;
                            }
                            Ok(n) => core.handle_bytes(now(), id, &buf[..n]),
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                            Err(_) => {
                                dead = true;
                                break;
                            }
                        }
                    }
                }
                if ev.is_writable() && !dead {
                    dead = flush(c).is_err();
                }
            }
            if dead {
                remove(&mut poll, &mut conns, id);
                core.closed(now(), id);
            }
        }
        core.handle_timeout(now());
        while let Some((id, bytes)) = core.poll_transmit() {
            if let Some(c) = conns.get_mut(&id) {
                c.wbuf.extend_from_slice(&bytes);
                if c.wbuf.len() > MAX_WBUF || flush(c).is_err() {
                    remove(&mut poll, &mut conns, id);
                    core.closed(now(), id);
                }
            }
        }
        while let Some(id) = core.poll_close() {
            if let Some(c) = conns.get_mut(&id) {
                // Best effort: the error frame, if any, goes out before the close.
                let _ = flush(c);
            }
            remove(&mut poll, &mut conns, id);
        }
    }
}

fn flush(c: &mut Conn) -> io::Result<()> {
    while !c.wbuf.is_empty() {
        match c.stream.write(&c.wbuf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                c.wbuf.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn remove(poll: &mut Poll, conns: &mut BTreeMap<u64, Conn>, id: u64) {
    if let Some(mut c) = conns.remove(&id) {
        let _ = poll.registry().deregister(&mut c.stream);
    }
}

/// 32 bytes from the operating system's generator (one per connection).
fn nonce() -> io::Result<[u8; 32]> {
    let mut n = [0u8; 32];
    for c in n.chunks_mut(8) {
        c.copy_from_slice(&phalanx::crypto::random_boot_id()?.to_le_bytes());
    }
    Ok(n)
}
