//! The link layer as a sans-IO part of the [`Stack`](crate::stack::Stack): address
//! attribution, per-link AEAD with replay windows, the [`LinkMonitor`] (pings,
//! pongs, link choice) — everything between totem's datagrams and the sockets,
//! without the sockets.
//!
//! Receiving: a datagram on link slot `s` from address `a` is attributed to the
//! node owning `a` on that link, opened (with crypto), checked against its sealed
//! sender, then handed to the monitor (pings, pongs) or returned for totem. Every
//! drop has a [`DatagramDrop`] reason and a counter.
//!
//! Sending: each totem datagram goes, per destination node, on the links the
//! monitor chooses, sealed once per link (not per receiver); datagrams for several
//! nodes go as one datagram to the link's multicast group where it has one.
//!
//! Each link has its own crypto context: link `k > 0` derives its keys from the
//! cluster name followed by `"\0link" k`, so links keep independent counters and
//! replay windows (a ping on a quiet link is never "too old" next to a busy one).

use super::monitor::{LinkConfigError, LinkEvent, LinkMonitor, LinkSpec};
use super::send_table::SendTable;
use super::stats::PeerLinkStatus;
use super::wire;
use crate::config::LinkMode;
use crate::crypto::{Cipher, CryptoError, CryptoStats, DatagramCrypto, OpenError};
use bytes::Bytes;
use phalanx_totem::{Destination, NodeId, Time};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use thiserror::Error;

/// One link of the node: its number, monitor settings and address book.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkAddrs {
    /// Number, priority and ping timing.
    pub spec: LinkSpec,
    /// Every configured node's address on this link, this node's included.
    pub addrs: BTreeMap<NodeId, SocketAddr>,
    /// The link's IP multicast group, when datagrams for several nodes go as one.
    pub group: Option<SocketAddr>,
}

/// The cluster key, as the link layer uses it.
#[derive(Clone)]
pub struct LinkCrypto {
    /// The key file's bytes.
    pub key: Vec<u8>,
    /// Mixed into the derived keys (clusters sharing a key cannot talk).
    pub cluster_name: String,
    /// The AEAD.
    pub cipher: Cipher,
    /// Fresh random per process start (the driver draws it; the simulator derives
    /// it from the seed): reusing one with the same key would reuse nonces.
    pub boot_id: u64,
}

impl std::fmt::Debug for LinkCrypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkCrypto")
            .field("key", &format_args!("<{} bytes>", self.key.len()))
            .field("cluster_name", &self.cluster_name)
            .field("cipher", &self.cipher)
            .field("boot_id", &format_args!("{:#018x}", self.boot_id))
            .finish()
    }
}

/// Why the link layer cannot be built.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkLayerError {
    /// The monitor refused the links.
    #[error(transparent)]
    Monitor(#[from] LinkConfigError),
    /// A link has no address for this node.
    #[error("no address for local node {node} on link {link}")]
    NoLocalAddress {
        /// This node.
        node: NodeId,
        /// The link number.
        link: u8,
    },
    /// A link lists other nodes than link 0.
    #[error("link {0} does not list the same nodes as link 0")]
    NodesDiffer(u8),
    /// Two nodes share an address on one link.
    #[error("address {addr} is given to two nodes on link {link}")]
    SharedAddress {
        /// The address.
        addr: SocketAddr,
        /// The link number.
        link: u8,
    },
    /// The crypto configuration was refused.
    #[error("crypto: {0}")]
    Crypto(#[from] CryptoError),
}

/// Why a received datagram was dropped (each reason has a counter in
/// [`LinkLayerStats`] or [`CryptoStats`]). The Stack never panics on input.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DatagramDrop {
    /// No such link slot.
    #[error("no link slot {0}")]
    NoSuchLink(u8),
    /// The source address belongs to no configured node on that link.
    #[error("source address {0} is not in the node list")]
    UnknownSource(SocketAddr),
    /// Our own datagram, looped back (multicast).
    #[error("own datagram looped back")]
    Own,
    /// Crypto refused it (malformed, unknown node, authentication, replay, too old).
    #[error(transparent)]
    Crypto(#[from] OpenError),
    /// Authentic, but sealed by another node than the owner of its source address.
    #[error("sealed by node {sealed} but sent from node {owner}'s address")]
    Spoofed {
        /// The authenticated sender.
        sealed: NodeId,
        /// The owner of the source address.
        owner: NodeId,
    },
    /// A ping or pong the monitor refused.
    #[error("link datagram refused: {0}")]
    Link(#[from] super::LinkRxError),
}

/// Counters of the link layer that are not per (peer, link).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkLayerStats {
    /// Datagrams handed in.
    pub rx: u64,
    /// Bytes of those.
    pub rx_bytes: u64,
    /// Datagrams from addresses outside the node list (dropped).
    pub rx_unknown_addr: u64,
    /// Own multicast datagrams looped back (dropped).
    pub rx_own: u64,
    /// Authentic datagrams whose sealed sender does not own the source address
    /// (dropped).
    pub rx_spoofed: u64,
    /// Pings and pongs refused by the monitor.
    pub link_rx_dropped: u64,
    /// Datagrams for a link slot that does not exist (dropped).
    pub rx_bad_link: u64,
    /// Datagrams not sent because sealing failed.
    pub seal_errors: u64,
}

/// A datagram to put on the wire: `data` to `to` on link slot `link`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkTransmit {
    /// The link slot (index in the node's link list, link 0 first).
    pub link: u8,
    /// The destination: a node's address on that link, or the link's group.
    pub to: SocketAddr,
    /// The bytes (sealed, with crypto). Shared between the destinations of one
    /// datagram: cloning is a reference count.
    pub data: Bytes,
}

/// What a received datagram was.
#[derive(Debug, PartialEq, Eq)]
pub enum Received<'a> {
    /// A totem datagram (opened) from `from`.
    Totem {
        /// The authenticated (or, without crypto, address-attributed) sender.
        from: NodeId,
        /// The plaintext.
        data: &'a [u8],
    },
    /// A ping or pong, consumed by the monitor.
    Link,
}

#[derive(Debug)]
struct Slot {
    addr_of: BTreeMap<NodeId, SocketAddr>,
    node_of: BTreeMap<SocketAddr, NodeId>,
    group: Option<SocketAddr>,
    crypto: Option<DatagramCrypto>,
}

/// The sans-IO link layer (see the module docs).
#[derive(Debug)]
pub struct LinkLayer {
    me: NodeId,
    monitor: LinkMonitor,
    slots: Vec<Slot>,
    others: Vec<NodeId>,
    routes: Vec<(NodeId, u8)>,
    opened: Vec<u8>,
    ctl: Vec<u8>,
    stats: LinkLayerStats,
}

/// The crypto domain of link `number`: link 0 keeps the plain cluster name.
pub fn link_cluster_name(cluster: &str, number: u8) -> String {
    if number == 0 {
        cluster.to_string()
    } else {
        format!("{cluster}\0link{number}")
    }
}

/// IPv4-mapped IPv6 sources (a dual-stack socket) compare as IPv4.
fn normalise(a: &SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => *a,
        },
        SocketAddr::V4(_) => *a,
    }
}

impl LinkLayer {
    /// The layer for node `me` over `links` (link 0 first; every link lists the
    /// same nodes), with crypto when `crypto` is given. Every link starts down, first
    /// pings due at `now`.
    pub fn new(
        me: NodeId,
        links: &[LinkAddrs],
        mode: LinkMode,
        crypto: Option<&LinkCrypto>,
        now: Time,
    ) -> Result<LinkLayer, LinkLayerError> {
        let nodes: Vec<NodeId> = links
            .first()
            .map(|l| l.addrs.keys().copied().collect())
            .unwrap_or_default();
        let mut slots = Vec::with_capacity(links.len());
        for l in links {
            let number = l.spec.number;
            if !l.addrs.contains_key(&me) {
                return Err(LinkLayerError::NoLocalAddress {
                    node: me,
                    link: number,
                });
            }
            if l.addrs.keys().ne(nodes.iter()) {
                return Err(LinkLayerError::NodesDiffer(number));
            }
            let mut node_of = BTreeMap::new();
            for (n, a) in &l.addrs {
                if node_of.insert(normalise(a), *n).is_some() {
                    return Err(LinkLayerError::SharedAddress {
                        addr: *a,
                        link: number,
                    });
                }
            }
            let crypto = match crypto {
                None => None,
                Some(c) => Some(DatagramCrypto::new(
                    &c.key,
                    &link_cluster_name(&c.cluster_name, number),
                    me,
                    &nodes,
                    c.cipher,
                    c.boot_id,
                )?),
            };
            slots.push(Slot {
                addr_of: l.addrs.clone(),
                node_of,
                group: l.group,
                crypto,
            });
        }
        let specs: Vec<LinkSpec> = links.iter().map(|l| l.spec).collect();
        let monitor = LinkMonitor::new(me, &nodes, specs, mode, now)?;
        Ok(LinkLayer {
            me,
            monitor,
            slots,
            others: nodes.into_iter().filter(|n| *n != me).collect(),
            routes: Vec::new(),
            opened: Vec::with_capacity(65_536),
            ctl: Vec::with_capacity(64),
            stats: LinkLayerStats::default(),
        })
    }

    /// Attributes, opens and classifies one received datagram. Pings are answered
    /// (the pongs go to `out`).
    pub fn receive<'a>(
        &'a mut self,
        now: Time,
        link: u8,
        from: SocketAddr,
        data: &'a [u8],
        out: &mut impl FnMut(LinkTransmit),
    ) -> Result<Received<'a>, DatagramDrop> {
        let slot = usize::from(link);
        let Some(s) = self.slots.get_mut(slot) else {
            self.stats.rx_bad_link += 1;
            return Err(DatagramDrop::NoSuchLink(link));
        };
        self.stats.rx += 1;
        self.stats.rx_bytes += data.len() as u64;
        let Some(&owner) = s.node_of.get(&normalise(&from)) else {
            self.stats.rx_unknown_addr += 1;
            return Err(DatagramDrop::UnknownSource(from));
        };
        if owner == self.me {
            self.stats.rx_own += 1;
            return Err(DatagramDrop::Own);
        }
        let crypto = s.crypto.is_some();
        if let Some(c) = s.crypto.as_mut() {
            // Authenticate (and reject replays) first, then check the sealed
            // sender owns the address it came from.
            let (sealed, _) = c.open(data, &mut self.opened)?;
            if sealed != owner {
                self.stats.rx_spoofed += 1;
                return Err(DatagramDrop::Spoofed { sealed, owner });
            }
        }
        let plain: &[u8] = if crypto { &self.opened } else { data };
        self.monitor.count_rx(owner, slot, data.len());
        if wire::is_link_datagram(plain) {
            let r = self.monitor.handle_datagram(now, owner, slot, plain);
            self.flush_control(out);
            return match r {
                Ok(()) => Ok(Received::Link),
                Err(e) => {
                    self.stats.link_rx_dropped += 1;
                    Err(e.into())
                }
            };
        }
        let plain: &[u8] = if crypto { &self.opened } else { data };
        Ok(Received::Totem {
            from: owner,
            data: plain,
        })
    }

    /// Puts one totem datagram for `dest` on the links the monitor chooses.
    pub fn send(&mut self, dest: &Destination, data: Vec<u8>, out: &mut impl FnMut(LinkTransmit)) {
        self.routes.clear();
        match dest {
            Destination::Node(n) => {
                if *n != self.me {
                    let r = self.monitor.route(*n);
                    self.routes.push((*n, r));
                }
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
        let several = self.routes.len() > 1;
        // Without crypto every link carries the same bytes: one buffer, shared.
        let mut plain = None;
        let mut data = Some(data);
        for slot in (0..self.slots.len()).filter(|s| union & (1 << s) != 0) {
            let s = &mut self.slots[slot];
            let bytes = match s.crypto.as_mut() {
                Some(c) => {
                    let src = data.as_deref().unwrap_or_default();
                    let mut sealed = Vec::with_capacity(src.len() + crate::crypto::OVERHEAD);
                    if c.seal(src, &mut sealed).is_err() {
                        self.stats.seal_errors += 1;
                        continue;
                    }
                    Bytes::from(sealed)
                }
                None => plain
                    .get_or_insert_with(|| Bytes::from(data.take().unwrap_or_default()))
                    .clone(),
            };
            if several && let Some(group) = s.group {
                for (n, r) in &self.routes {
                    if r & (1 << slot) != 0 {
                        self.monitor.count_tx(*n, slot, bytes.len());
                    }
                }
                out(LinkTransmit {
                    link: slot as u8,
                    to: group,
                    data: bytes,
                });
                continue;
            }
            for (n, r) in &self.routes {
                if r & (1 << slot) != 0
                    && let Some(addr) = s.addr_of.get(n)
                {
                    self.monitor.count_tx(*n, slot, bytes.len());
                    out(LinkTransmit {
                        link: slot as u8,
                        to: *addr,
                        data: bytes.clone(),
                    });
                }
            }
        }
    }

    /// Changes whenever [`send_table`](Self::send_table) would give another table.
    pub fn route_generation(&self) -> u64 {
        self.monitor.route_generation()
    }

    /// How a datagram to each peer goes out now (as [`send`](Self::send) with a
    /// [`Destination::Node`], rr mode taking the first link of its turn), for a
    /// thread other than this layer's owner.
    pub fn send_table(&self) -> SendTable {
        let peers = self
            .others
            .iter()
            .map(|n| {
                let mask = self.monitor.route_fixed(*n).unwrap_or(0);
                let routes = (0..self.slots.len())
                    .filter(|slot| mask & (1 << slot) != 0)
                    .filter_map(|slot| {
                        let addr = self.slots[slot].addr_of.get(n)?;
                        Some((slot as u8, *addr))
                    })
                    .collect();
                (*n, routes)
            })
            .collect();
        let sealers = self
            .slots
            .iter()
            .map(|s| s.crypto.as_ref().map(DatagramCrypto::sealer))
            .collect();
        SendTable { peers, sealers }
    }

    /// Runs the monitor's timers if due; the pings go to `out`.
    pub fn handle_timeout(&mut self, now: Time, out: &mut impl FnMut(LinkTransmit)) {
        if self.monitor.poll_timeout().is_some_and(|t| t <= now) {
            self.monitor.handle_timeout(now);
            self.flush_control(out);
        }
    }

    /// Encodes and seals the pings and pongs the monitor has queued.
    fn flush_control(&mut self, out: &mut impl FnMut(LinkTransmit)) {
        while let Some(t) = self.monitor.poll_transmit() {
            let s = &mut self.slots[t.slot];
            let Some(addr) = s.addr_of.get(&t.peer).copied() else {
                continue;
            };
            self.ctl.clear();
            t.msg.encode(&mut self.ctl);
            let bytes = match s.crypto.as_mut() {
                None => Bytes::copy_from_slice(&self.ctl),
                Some(c) => {
                    let mut sealed = Vec::with_capacity(self.ctl.len() + crate::crypto::OVERHEAD);
                    if c.seal(&self.ctl, &mut sealed).is_err() {
                        self.stats.seal_errors += 1;
                        continue;
                    }
                    Bytes::from(sealed)
                }
            };
            out(LinkTransmit {
                link: t.slot as u8,
                to: addr,
                data: bytes,
            });
        }
    }

    /// The monitor's next deadline.
    pub fn poll_timeout(&self) -> Option<Time> {
        self.monitor.poll_timeout()
    }

    /// Next link state change.
    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        self.monitor.poll_event()
    }

    /// The monitor (state, routes, counters per peer and link).
    pub fn monitor(&self) -> &LinkMonitor {
        &self.monitor
    }

    /// State and counters of every (peer, link) into `out`.
    pub fn status_into(&self, out: &mut Vec<PeerLinkStatus>) {
        self.monitor.status_into(out);
    }

    /// Counters not kept per (peer, link).
    pub fn stats(&self) -> &LinkLayerStats {
        &self.stats
    }

    /// Crypto counters of all links together (zero without crypto).
    pub fn crypto_stats(&self) -> CryptoStats {
        let mut s = CryptoStats::default();
        for t in self.slots.iter().filter_map(|s| s.crypto.as_ref()) {
            let t = t.stats();
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

    /// Number of link slots.
    pub fn links(&self) -> usize {
        self.slots.len()
    }
}
