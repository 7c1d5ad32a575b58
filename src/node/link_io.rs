//! The driver's link layer: the per-link sockets, the per-link crypto contexts and
//! the [`LinkMonitor`], between the totem core and the network.
//!
//! Sending: each totem datagram goes, per destination node, on the links the monitor
//! chooses (sealed once per link and datagram, not per receiver); datagrams for
//! several nodes go as one multicast on links that have a group. Receiving: a
//! datagram is attributed to the node owning its source address on that link,
//! opened (crypto), checked against its sealed sender, then handed to the monitor
//! (pings, pongs) or returned for totem.
//!
//! Each link has its own crypto context: link `k > 0` derives its keys from the
//! cluster name followed by `"\0link" k`, so links keep independent counters and
//! replay windows (a ping on a quiet link is never "too old" next to a busy one).

use super::CryptoOptions;
use super::link_options::LinkOptions;
use super::transport::{Transport, TransportStats};
use crate::link::{LinkEvent, LinkMonitor, PeerLinkStatus, wire};
use mio::{Interest, Registry, Token};
use phalanx_totem::crypto::{CryptoStats, DatagramCrypto};
use phalanx_totem::{Destination, NodeId, Time};
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// Tokens from here on are link sockets: `FIRST + 2 × slot` (unicast) and
/// `FIRST + 2 × slot + 1` (multicast group).
const FIRST: usize = 16;
/// Datagrams read from one socket before looking at the others (fairness: a
/// flood on one link must not starve the pongs of another).
const BUDGET: usize = 256;

/// Counters of the link layer that are not per (peer, link).
#[derive(Clone, Debug, Default)]
pub(crate) struct LinkLayerStats {
    pub(crate) transport: TransportStats,
    /// Authentic datagrams whose sealed sender does not own the source address.
    pub(crate) rx_spoofed: u64,
    /// Link datagrams (ping/pong) refused by the monitor.
    pub(crate) link_rx_dropped: u64,
}

/// What one read gave.
pub(crate) enum Recv<'a> {
    /// A totem datagram (opened).
    Totem(&'a [u8]),
    /// Consumed here (a ping, pong, or a datagram dropped and counted).
    Handled,
    /// The socket is drained.
    Empty,
}

pub(crate) struct LinkLayer {
    me: NodeId,
    transport: Transport,
    pub(crate) monitor: LinkMonitor,
    /// One per link slot; empty without crypto.
    crypto: Vec<DatagramCrypto>,
    sealed: Vec<Vec<u8>>,
    buf: Vec<u8>,
    opened: Vec<u8>,
    ctl: Vec<u8>,
    others: Vec<NodeId>,
    routes: Vec<(NodeId, u8)>,
    /// Sockets (by index `2 × slot + group`) that may hold more datagrams.
    ready: u32,
    pub(crate) stats: LinkLayerStats,
}

/// The crypto domain of link `number`: link 0 keeps the plain cluster name.
pub(crate) fn link_cluster_name(cluster: &str, number: u8) -> String {
    if number == 0 {
        cluster.to_string()
    } else {
        format!("{cluster}\0link{number}")
    }
}

impl LinkLayer {
    pub(crate) fn new(
        me: NodeId,
        addrs: &BTreeMap<NodeId, SocketAddr>,
        links: &LinkOptions,
        buffer: usize,
        token: Duration,
        crypto: Option<(&CryptoOptions, u64)>,
        now: Time,
    ) -> io::Result<LinkLayer> {
        let transport = Transport::bind(me, addrs, links, buffer)?;
        let nodes: Vec<NodeId> = addrs.keys().copied().collect();
        for l in &links.extra {
            if l.addrs.keys().ne(addrs.keys()) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("link {} does not list the same nodes as link 0", l.number),
                ));
            }
        }
        let monitor = LinkMonitor::new(me, &nodes, links.specs(token), links.mode, now)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let crypto = match crypto {
            None => Vec::new(),
            Some((c, boot_id)) => monitor
                .links()
                .iter()
                .map(|l| {
                    let name = link_cluster_name(&c.cluster_name, l.number);
                    DatagramCrypto::new(&c.key, &name, me, &nodes, c.cipher, boot_id)
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))
                })
                .collect::<io::Result<Vec<_>>>()?,
        };
        let n = monitor.links().len();
        Ok(LinkLayer {
            me,
            transport,
            monitor,
            crypto,
            sealed: vec![Vec::with_capacity(65_536); n],
            buf: vec![0u8; 65_536],
            opened: Vec::with_capacity(65_536),
            ctl: Vec::with_capacity(64),
            others: nodes.into_iter().filter(|n| *n != me).collect(),
            routes: Vec::new(),
            ready: 0,
            stats: LinkLayerStats::default(),
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

    pub(crate) fn budget(&self) -> usize {
        BUDGET
    }

    /// Reads and classifies one datagram from socket `idx`.
    pub(crate) fn recv(&mut self, now: Time, idx: usize) -> io::Result<Recv<'_>> {
        let slot = idx / 2;
        let link = &self.transport.links[slot];
        let sock = if idx % 2 == 0 {
            &link.socket
        } else {
            match &link.group_socket {
                Some(g) => g,
                None => {
                    self.ready &= !(1 << idx);
                    return Ok(Recv::Empty);
                }
            }
        };
        let (len, from) = match sock.recv_from(&mut self.buf) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.ready &= !(1 << idx);
                return Ok(Recv::Empty);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(Recv::Handled),
            // ICMP errors from a peer that is down surface here; not ours.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionRefused
                        | io::ErrorKind::HostUnreachable
                        | io::ErrorKind::NetworkUnreachable
                ) =>
            {
                return Ok(Recv::Handled);
            }
            Err(e) => return Err(e),
        };
        self.stats.transport.rx += 1;
        self.stats.transport.rx_bytes += len as u64;
        let Some(owner) = self.transport.node_of(slot, &from) else {
            self.stats.transport.rx_unknown_addr += 1;
            return Ok(Recv::Handled);
        };
        if owner == self.me {
            self.stats.transport.rx_own += 1;
            return Ok(Recv::Handled);
        }
        let plain: &[u8] = match self.crypto.get_mut(slot) {
            None => &self.buf[..len],
            Some(c) => {
                // Authenticate (and reject replays) first, then check the sealed
                // sender owns the address it came from.
                let Ok((sender, plain)) = c.open(&self.buf[..len], &mut self.opened) else {
                    return Ok(Recv::Handled);
                };
                if sender != owner {
                    self.stats.rx_spoofed += 1;
                    return Ok(Recv::Handled);
                }
                plain
            }
        };
        self.monitor.count_rx(owner, slot, len);
        if wire::is_link_datagram(plain) {
            if self
                .monitor
                .handle_datagram(now, owner, slot, plain)
                .is_err()
            {
                self.stats.link_rx_dropped += 1;
            }
            self.send_control();
            return Ok(Recv::Handled);
        }
        // Reborrow through the field the slice came from (crypto or not).
        let plain: &[u8] = if self.crypto.is_empty() {
            &self.buf[..len]
        } else {
            &self.opened
        };
        Ok(Recv::Totem(plain))
    }

    /// Sends one totem datagram to `dest` on the links the monitor chooses.
    pub(crate) fn send(&mut self, dest: &Destination, data: &[u8]) {
        self.routes.clear();
        match dest {
            Destination::Node(n) => {
                let r = self.monitor.route(*n);
                self.routes.push((*n, r));
            }
            Destination::Members(m) => {
                for n in m.iter().filter(|n| **n != self.me) {
                    let r = self.monitor.route(*n);
                    self.routes.push((*n, r));
                }
            }
            Destination::All => {
                for n in &self.others {
                    let r = self.monitor.route(*n);
                    self.routes.push((*n, r));
                }
            }
        }
        let union = self.routes.iter().fold(0u8, |u, (_, r)| u | r);
        // Seal once per link used.
        if !self.crypto.is_empty() {
            for slot in (0..self.crypto.len()).filter(|s| union & (1 << s) != 0) {
                self.sealed[slot].clear();
                if self.crypto[slot]
                    .seal(data, &mut self.sealed[slot])
                    .is_err()
                {
                    self.stats.transport.tx_errors += 1;
                    return;
                }
            }
        }
        let several = self.routes.len() > 1;
        for slot in (0..self.sealed.len()).filter(|s| union & (1 << s) != 0) {
            let bytes: &[u8] = if self.crypto.is_empty() {
                data
            } else {
                &self.sealed[slot]
            };
            if several && self.transport.multicasts(slot) {
                self.transport
                    .send_group(slot, bytes, &mut self.stats.transport);
                for (n, r) in &self.routes {
                    if r & (1 << slot) != 0 {
                        self.monitor.count_tx(*n, slot, bytes.len());
                    }
                }
                continue;
            }
            for (n, r) in &self.routes {
                if r & (1 << slot) != 0
                    && self
                        .transport
                        .send_to(slot, *n, bytes, &mut self.stats.transport)
                {
                    self.monitor.count_tx(*n, slot, bytes.len());
                }
            }
        }
    }

    /// Sends the pings and pongs the monitor has queued.
    pub(crate) fn send_control(&mut self) {
        while let Some(t) = self.monitor.poll_transmit() {
            self.ctl.clear();
            t.msg.encode(&mut self.ctl);
            let bytes: &[u8] = match self.crypto.get_mut(t.slot) {
                None => &self.ctl,
                Some(c) => {
                    self.sealed[t.slot].clear();
                    if c.seal(&self.ctl, &mut self.sealed[t.slot]).is_err() {
                        self.stats.transport.tx_errors += 1;
                        continue;
                    }
                    &self.sealed[t.slot]
                }
            };
            self.transport
                .send_to(t.slot, t.peer, bytes, &mut self.stats.transport);
        }
    }

    /// Runs the monitor's timers if due and sends the pings.
    pub(crate) fn handle_timeout(&mut self, now: Time) {
        if self.monitor.poll_timeout().is_some_and(|t| t <= now) {
            self.monitor.handle_timeout(now);
            self.send_control();
        }
    }

    pub(crate) fn poll_event(&mut self) -> Option<LinkEvent> {
        self.monitor.poll_event()
    }

    pub(crate) fn status_into(&self, out: &mut Vec<PeerLinkStatus>) {
        self.monitor.status_into(out);
    }

    /// Crypto counters of all links together.
    pub(crate) fn crypto_stats(&self) -> CryptoStats {
        let mut s = CryptoStats::default();
        for c in &self.crypto {
            let t = c.stats();
            s.sealed += t.sealed;
            s.ok += t.ok;
            s.auth_failed += t.auth_failed;
            s.replayed += t.replayed;
            s.unknown_node += t.unknown_node;
            s.malformed += t.malformed;
            s.too_old += t.too_old;
        }
        s
    }
}
