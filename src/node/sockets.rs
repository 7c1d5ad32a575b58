//! The driver's sockets: one UDP socket per link (plus a multicast receive socket
//! where the link has a group), read when mio says they are readable and written
//! with the Stack's [`LinkTransmit`]s. Everything above the bytes — attribution,
//! crypto, ping/pong — is the Stack's link layer.

use super::link_options::LinkOptions;
use super::transport::{Transport, TransportStats};
use crate::link::LinkTransmit;
use mio::{Interest, Registry, Token};
use phalanx_totem::NodeId;
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;

/// Tokens from here on are link sockets: `FIRST + 2 × slot` (unicast) and
/// `FIRST + 2 × slot + 1` (multicast group).
const FIRST: usize = 16;
/// Datagrams read from one socket before looking at the others (fairness: a
/// flood on one link must not starve the pongs of another).
pub(crate) const BUDGET: usize = 256;

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
}

impl Sockets {
    pub(crate) fn bind(
        me: NodeId,
        addrs: &BTreeMap<NodeId, SocketAddr>,
        links: &LinkOptions,
        buffer: usize,
    ) -> io::Result<Sockets> {
        Ok(Sockets {
            transport: Transport::bind(me, addrs, links, buffer)?,
            buf: vec![0u8; 65_536],
            ready: 0,
            stats: TransportStats::default(),
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
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // ICMP errors from a peer that is down surface here; not ours.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionRefused
                            | io::ErrorKind::HostUnreachable
                            | io::ErrorKind::NetworkUnreachable
                    ) =>
                {
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends one datagram the Stack produced.
    pub(crate) fn send(&mut self, t: &LinkTransmit) {
        self.transport
            .send_addr(usize::from(t.link), t.to, &t.data, &mut self.stats);
    }
}
