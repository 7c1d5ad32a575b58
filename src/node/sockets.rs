//! The driver's sockets: one UDP socket per link (plus a multicast receive socket
//! where the link has a group), read when mio says they are readable and written
//! with the Stack's [`LinkTransmit`]s. Everything above the bytes — attribution,
//! crypto, ping/pong — is the Stack's link layer.

use super::link_options::LinkOptions;
use super::mmsg::{self, RecvBatch};
use super::transport::{Transport, TransportStats};
use crate::link::LinkTransmit;
use mio::{Interest, Registry, Token};
use phalanx_totem::NodeId;
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

/// Tokens from here on are link sockets: `FIRST + 2 × slot` (unicast) and
/// `FIRST + 2 × slot + 1` (multicast group).
const FIRST: usize = 16;
/// Datagrams read from one socket before looking at the others (fairness: a
/// flood on one link must not starve the pongs of another).
pub(crate) const BUDGET: usize = 256;
/// Transmits held for one `sendmmsg` pass at most (then sent at once).
const MAX_HELD: usize = 256;

/// One datagram read.
pub(crate) struct Datagram<'a> {
    pub(crate) link: u8,
    pub(crate) from: SocketAddr,
    pub(crate) data: &'a [u8],
}

pub(crate) struct Sockets {
    transport: Transport,
    buf: Vec<u8>,
    /// Sockets (by index `2 × slot + group`) that may hold more datagrams.
    ready: u32,
    pub(crate) stats: TransportStats,
    /// Many datagrams per system call (`sendmmsg` / `recvmmsg`), or one each.
    batch_io: bool,
    /// Transmits held for [`Sockets::send_held`].
    held: Vec<LinkTransmit>,
    /// Per socket index, what its last `recvmmsg` read.
    batches: Vec<Option<Box<RecvBatch>>>,
}

impl Sockets {
    pub(crate) fn bind(
        me: NodeId,
        addrs: &BTreeMap<NodeId, SocketAddr>,
        links: &LinkOptions,
        buffer: usize,
        batch_io: bool,
    ) -> io::Result<Sockets> {
        let transport = Transport::bind(me, addrs, links, buffer)?;
        let sockets = 2 * transport.links.len();
        Ok(Sockets {
            transport,
            buf: vec![0u8; 65_536],
            ready: 0,
            stats: TransportStats::default(),
            batch_io,
            held: Vec::new(),
            batches: (0..sockets).map(|_| None).collect(),
        })
    }

    pub(crate) fn register(&mut self, registry: &Registry) -> io::Result<()> {
        for (slot, l) in self.transport.links.iter_mut().enumerate() {
            registry.register(&mut l.socket, Token(FIRST + 2 * slot), Interest::READABLE)?;
            if let Some(g) = &mut l.group_socket {
                registry.register(g, Token(FIRST + 2 * slot + 1), Interest::READABLE)?;
            }
        }
        // Whatever arrived before registration is read on the first pass.
        self.ready = u32::MAX >> (32 - 2 * self.transport.links.len());
        Ok(())
    }

    /// Marks the socket behind a poll token readable; false if not ours.
    pub(crate) fn mark_ready(&mut self, token: Token) -> bool {
        let Some(i) = token.0.checked_sub(FIRST) else {
            return false;
        };
        if i >= 2 * self.transport.links.len() {
            return false;
        }
        self.ready |= 1 << i;
        true
    }

    /// Whether a socket may still hold datagrams (poll without waiting).
    pub(crate) fn any_ready(&self) -> bool {
        self.ready != 0
    }

    /// Indices of the sockets that may hold datagrams.
    pub(crate) fn ready_sockets(&self) -> impl Iterator<Item = usize> + use<> {
        let r = self.ready;
        (0..32).filter(move |i| r & (1 << i) != 0)
    }

    /// Reads one datagram from socket `idx`; `None` when it is drained.
    pub(crate) fn recv(&mut self, idx: usize) -> io::Result<Option<Datagram<'_>>> {
        let slot = idx / 2;
        let link = &self.transport.links[slot];
        let sock = if idx % 2 == 0 {
            &link.socket
        } else {
            match &link.group_socket {
                Some(g) => g,
                None => {
                    self.ready &= !(1 << idx);
                    return Ok(None);
                }
            }
        };
        if self.batch_io {
            let fd = sock.as_raw_fd();
            let batch = self.batches[idx].get_or_insert_with(|| Box::new(RecvBatch::new()));
            loop {
                // A source that is not an IP address cannot be a node: skipped.
                batch.skip_foreign();
                if !batch.is_empty() {
                    break;
                }
                match batch.fill(fd) {
                    Ok(0) => {
                        self.ready &= !(1 << idx);
                        return Ok(None);
                    }
                    Ok(_) => {}
                    Err(e) if ignorable(&e) => {}
                    Err(e) => return Err(e),
                }
            }
            return Ok(match batch.pop() {
                Some((Some(from), data)) => {
                    self.stats.rx += 1;
                    self.stats.rx_bytes += data.len() as u64;
                    Some(Datagram {
                        link: slot as u8,
                        from,
                        data,
                    })
                }
                // Not reached: skip_foreign left an IP-sourced datagram first.
                _ => None,
            });
        }
        loop {
            match sock.recv_from(&mut self.buf) {
                Ok((len, from)) => {
                    self.stats.rx += 1;
                    self.stats.rx_bytes += len as u64;
                    return Ok(Some(Datagram {
                        link: slot as u8,
                        from,
                        data: &self.buf[..len],
                    }));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.ready &= !(1 << idx);
                    return Ok(None);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted || ignorable(&e) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends one datagram the Stack produced — with batching, holds it for
    /// [`send_held`](Self::send_held), which the driver calls before it waits.
    pub(crate) fn send(&mut self, t: &LinkTransmit) {
        if !self.batch_io {
            self.transport
                .send_addr(usize::from(t.link), t.to, &t.data, &mut self.stats);
            return;
        }
        self.held.push(t.clone());
        if self.held.len() >= MAX_HELD {
            self.send_held();
        }
    }

    /// Sends the held datagrams, a `sendmmsg` per link socket, in the order
    /// they were produced on each.
    pub(crate) fn send_held(&mut self) {
        if self.held.is_empty() {
            return;
        }
        let held = std::mem::take(&mut self.held);
        for (slot, link) in self.transport.links.iter().enumerate() {
            let mine: Vec<(SocketAddr, &[u8])> = held
                .iter()
                .filter(|t| usize::from(t.link) == slot)
                .map(|t| (t.to, &t.data[..]))
                .collect();
            if mine.is_empty() {
                continue;
            }
            let mut failed = vec![false; mine.len()];
            mmsg::send_many(link.socket.as_raw_fd(), &mine, |i, _| failed[i] = true);
            for ((to, data), bad) in mine.iter().zip(&failed) {
                if *bad {
                    self.stats.tx_errors += 1;
                    continue;
                }
                self.stats.tx += 1;
                self.stats.tx_bytes += data.len() as u64;
                if link.group == Some(*to) {
                    self.stats.tx_multicast += 1;
                }
            }
        }
        // Datagrams for a link slot that does not exist are errors, as one by one.
        let slots = self.transport.links.len();
        self.stats.tx_errors += held.iter().filter(|t| usize::from(t.link) >= slots).count() as u64;
        self.held = held;
        self.held.clear();
    }
}

/// ICMP errors from a peer that is down surface on receive; they are not ours.
fn ignorable(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
    )
}
