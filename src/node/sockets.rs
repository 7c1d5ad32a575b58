//! The driver's sockets: one UDP socket per link (plus a multicast receive socket
//! where the link has a group), read when mio says they are readable and written
//! with the Stack's [`LinkTransmit`]s. Everything above the bytes — attribution,
//! crypto, ping/pong — is the Stack's link layer.

use super::gso;
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
    /// Part of a read that returned at least two full-sized datagrams (a
    /// segmentation-offload run of frames): the sender is sending in bulk. One
    /// frame with the shorter token behind it (the sender's offload sends the
    /// two as one run) is not a burst: holding that frame's delivery behind
    /// the token's forwarding made every ping wait for it.
    pub(crate) burst: bool,
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
    /// Runs of equal-sized datagrams to one peer go out as one `UDP_SEGMENT`
    /// send (held until [`Sockets::send_held`]); off after the kernel refused one.
    gso: bool,
    /// Per address family (0 IPv4, 1 IPv6): the smallest segment size the kernel
    /// refused to segment — a datagram larger than the path MTU allows (it would
    /// go out fragmented, which GSO does not do). Runs of such datagrams go
    /// datagram by datagram.
    gso_too_big: [usize; 2],
    /// Sockets (by index) with `UDP_GRO` on: a read may hold several datagrams.
    gro: u32,
    /// The rest of the last GRO read: (socket index, sender, segment size, next
    /// offset in `buf`, end).
    gro_rest: Option<(usize, SocketAddr, usize, usize, usize)>,
}

impl Sockets {
    pub(crate) fn bind(
        me: NodeId,
        addrs: &BTreeMap<NodeId, SocketAddr>,
        links: &LinkOptions,
        buffer: usize,
        batch_io: bool,
        offload: bool,
    ) -> io::Result<Sockets> {
        let transport = Transport::bind(me, addrs, links, buffer)?;
        let sockets = 2 * transport.links.len();
        let mut gro = 0u32;
        if offload && !batch_io {
            for (slot, l) in transport.links.iter().enumerate() {
                // A kernel without UDP_GRO reads datagram by datagram, as before.
                if gso::enable_gro(l.socket.as_raw_fd()).is_ok() {
                    gro |= 1 << (2 * slot);
                }
                if let Some(g) = &l.group_socket
                    && gso::enable_gro(g.as_raw_fd()).is_ok()
                {
                    gro |= 1 << (2 * slot + 1);
                }
            }
        }
        Ok(Sockets {
            transport,
            buf: vec![0u8; 65_536],
            ready: 0,
            stats: TransportStats::default(),
            batch_io,
            held: Vec::new(),
            batches: (0..sockets).map(|_| None).collect(),
            gso: offload && !batch_io,
            gso_too_big: [usize::MAX; 2],
            gro,
            gro_rest: None,
        })
    }

    /// A second descriptor of each link's sending socket, for threads other
    /// than the driver's (the DLM direct path's application threads).
    pub(crate) fn send_clones(&self) -> io::Result<Vec<std::net::UdpSocket>> {
        use std::os::fd::AsFd;
        self.transport
            .links
            .iter()
            .map(|l| {
                Ok(std::net::UdpSocket::from(
                    l.socket.as_fd().try_clone_to_owned()?,
                ))
            })
            .collect()
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
        if self.gro & (1 << idx) != 0 {
            return self.recv_gro(idx);
        }
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
                        burst: false,
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
                        burst: false,
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

    /// Reads one datagram from a socket with GRO on: the next piece of the last
    /// read if it held several, else a new read.
    fn recv_gro(&mut self, idx: usize) -> io::Result<Option<Datagram<'_>>> {
        let slot = idx / 2;
        loop {
            // The rest of a run goes first, whichever socket it came from (the read
            // budget may have moved the driver on to another socket): a datagram
            // names its own link, so nothing is dropped or mixed up.
            if let Some((i, from, seg, off, end)) = self.gro_rest {
                let next = (off + seg).min(end);
                self.gro_rest = (next < end).then_some((i, from, seg, next, end));
                self.stats.rx += 1;
                self.stats.rx_bytes += (next - off) as u64;
                return Ok(Some(Datagram {
                    link: (i / 2) as u8,
                    from,
                    data: &self.buf[off..next],
                    burst: end >= 2 * seg,
                }));
            }
            let link = &self.transport.links[slot];
            let sock = if idx % 2 == 0 {
                link.socket.as_raw_fd()
            } else {
                match &link.group_socket {
                    Some(g) => g.as_raw_fd(),
                    None => {
                        self.ready &= !(1 << idx);
                        return Ok(None);
                    }
                }
            };
            let r = match gso::recv(sock, &mut self.buf) {
                Ok(Some(r)) => r,
                Ok(None) => {
                    self.ready &= !(1 << idx);
                    return Ok(None);
                }
                Err(e) if ignorable(&e) => continue,
                Err(e) => return Err(e),
            };
            // A source that is not an IP address cannot be a node: skipped.
            let Some(from) = r.from else { continue };
            let seg = r.seg.filter(|s| *s > 0).unwrap_or(r.len.max(1));
            if r.seg.is_some() {
                self.stats.rx_gro_reads += 1;
            }
            self.gro_rest = Some((idx, from, seg, 0, r.len));
        }
    }

    /// Sends one datagram the Stack produced — with batching or segmentation
    /// offload, holds it for [`send_held`](Self::send_held), which the driver calls
    /// at the end of every pass over an input.
    pub(crate) fn send(&mut self, t: &LinkTransmit) {
        if !self.batch_io && !self.gso {
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
        if self.gso {
            return self.send_held_segmented();
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

impl Sockets {
    /// Sends the held datagrams with segmentation offload: per link and
    /// destination, in the order the destinations first appear, runs of
    /// equal-sized datagrams (the last may be shorter) go out in one `sendmsg`.
    /// Each destination's datagrams keep their order; across destinations the
    /// order of a pass is not kept (UDP never promised it), except that a
    /// destination's datagrams all go before the next destination's, so a token
    /// produced last goes after the frames of the pass to its receiver.
    fn send_held_segmented(&mut self) {
        let held = std::mem::take(&mut self.held);
        let slots = self.transport.links.len();
        let mut done = vec![false; held.len()];
        for first in 0..held.len() {
            if done[first] {
                continue;
            }
            let (slot, to) = (usize::from(held[first].link), held[first].to);
            let mine: Vec<usize> = (first..held.len())
                .filter(|&i| !done[i] && usize::from(held[i].link) == slot && held[i].to == to)
                .collect();
            for &i in &mine {
                done[i] = true;
            }
            if slot >= slots {
                self.stats.tx_errors += mine.len() as u64;
                continue;
            }
            let lens: Vec<usize> = mine.iter().map(|&i| held[i].data.len()).collect();
            for (start, count) in gso::runs(&lens) {
                let run: Vec<&[u8]> = mine[start..start + count]
                    .iter()
                    .map(|&i| &held[i].data[..])
                    .collect();
                self.send_run(slot, to, &run);
            }
        }
        self.held = held;
        self.held.clear();
    }

    /// One run to one destination: a GSO send, or datagram by datagram when the
    /// run is one datagram or the kernel cannot segment it.
    fn send_run(&mut self, slot: usize, to: SocketAddr, run: &[&[u8]]) {
        let link = &self.transport.links[slot];
        let multicast = link.group == Some(to);
        let family = usize::from(to.is_ipv6());
        // Runs to an IPv6 multicast group were lost (the looped-back copies never
        // arrived: `tests/transport.rs`), so those go datagram by datagram.
        let segmentable = !(multicast && to.is_ipv6()) && run[0].len() < self.gso_too_big[family];
        if run.len() > 1 && self.gso && segmentable {
            match gso::send_run(link.socket.as_raw_fd(), &to, run) {
                Ok(()) => {
                    self.stats.tx_gso_sends += 1;
                    for d in run {
                        self.stats.tx += 1;
                        self.stats.tx_bytes += d.len() as u64;
                        self.stats.tx_multicast += u64::from(multicast);
                    }
                    return;
                }
                // No checksum offload on the device (EIO), a kernel without
                // UDP_SEGMENT: never again on this node.
                Err(e) if gso_unsupported(&e) => {
                    self.gso = false;
                    self.stats.tx_gso_refused += 1;
                }
                // Segments too large for the path MTU (EMSGSIZE for IPv6, EINVAL
                // for IPv4): sent one by one they are fragmented by the kernel,
                // so they still arrive. Datagrams this large never try GSO again;
                // were this run treated as lost instead, every retransmission of
                // it would be lost too and the ring would break (as it did over
                // IPv6 with 1 500-byte datagrams at MTU 1 500).
                Err(e) if gso_segment_too_large(&e) => {
                    self.gso_too_big[family] = run[0].len();
                    self.stats.tx_gso_refused += 1;
                    if self.gso_too_big[family] < MIN_GSO_SEGMENT {
                        self.gso = false;
                    }
                }
                // A full socket buffer or an unreachable peer: the run is lost as
                // its datagrams would be, and the protocol retransmits.
                Err(_) => {
                    self.stats.tx_errors += run.len() as u64;
                    return;
                }
            }
        }
        for d in run {
            self.transport.send_addr(slot, to, d, &mut self.stats);
        }
    }
}

/// Below this segment size a refusal means the kernel cannot segment at all
/// (every IP path carries 576-byte packets), so offload is turned off.
const MIN_GSO_SEGMENT: usize = 512;

/// Errors by which the kernel says it cannot segment at all.
fn gso_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EIO | libc::ENOPROTOOPT | libc::EOPNOTSUPP)
    )
}

/// Errors by which the kernel says these segments are too large to send
/// unfragmented.
fn gso_segment_too_large(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMSGSIZE | libc::EINVAL))
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

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::mem::size_of;
    use std::net::UdpSocket;

    fn two_nodes(offload: [bool; 2]) -> (Sockets, Sockets) {
        two_nodes_on("127.0.0.1:0", offload)
    }

    fn two_nodes_on(any_port: &str, offload: [bool; 2]) -> (Sockets, Sockets) {
        // Ports picked by the kernel, then released for the sockets to bind.
        let addrs: BTreeMap<NodeId, SocketAddr> = (1..=2)
            .map(|id| {
                let s = UdpSocket::bind(any_port).unwrap();
                (id, s.local_addr().unwrap())
            })
            .collect();
        let links = LinkOptions::default();
        let a = Sockets::bind(1, &addrs, &links, 1 << 20, false, offload[0]).unwrap();
        let b = Sockets::bind(2, &addrs, &links, 1 << 20, false, offload[1]).unwrap();
        (a, b)
    }

    fn frames() -> Vec<Bytes> {
        // Three full frames, a shorter one, then a token-sized one: two runs.
        [1400, 1400, 1400, 900, 120]
            .iter()
            .enumerate()
            .map(|(i, len)| Bytes::from(vec![i as u8; *len]))
            .collect()
    }

    fn read_all(s: &mut Sockets, want: usize) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        while got.len() < want {
            match s.recv(0).unwrap() {
                Some(d) => got.push(d.data.to_vec()),
                None => {
                    let fd = s.transport.links[0].socket.as_raw_fd();
                    assert!(
                        crate::node::gso::wait_readable(fd, 5_000),
                        "{} of {want} datagrams arrived",
                        got.len()
                    );
                }
            }
        }
        assert!(s.recv(0).unwrap().is_none(), "more than was sent");
        got
    }

    /// A pass's datagrams to one peer go out as GSO runs and arrive as the same
    /// datagrams, in order — through GRO when the receiver has it, split by the
    /// kernel when it does not.
    #[test]
    fn held_datagrams_go_out_as_runs_and_arrive_unchanged() {
        for receiver_offload in [true, false] {
            let (mut a, mut b) = two_nodes([true, receiver_offload]);
            let to = b.transport.links[0].socket.local_addr().unwrap();
            for data in frames() {
                a.send(&LinkTransmit { link: 0, to, data });
            }
            assert_eq!(a.stats.tx, 0, "held until the end of the pass");
            a.send_held();
            assert_eq!(a.stats.tx, 5);
            // 1400×3 + 900 in one send; the 120-byte one alone, a plain send.
            assert_eq!(a.stats.tx_gso_sends, 1);
            assert_eq!(a.stats.tx_gso_refused, 0);
            let got = read_all(&mut b, 5);
            let want: Vec<Vec<u8>> = frames().iter().map(|f| f.to_vec()).collect();
            assert_eq!(got, want, "receiver offload {receiver_offload}");
            assert_eq!(b.stats.rx, 5);
            if receiver_offload {
                assert!(b.stats.rx_gro_reads >= 1, "{:?}", b.stats);
            } else {
                assert_eq!(b.stats.rx_gro_reads, 0);
            }
        }
    }

    /// Without offload every datagram is its own send, at once.
    #[test]
    fn without_offload_each_datagram_is_sent_at_once() {
        let (mut a, mut b) = two_nodes([false, false]);
        let to = b.transport.links[0].socket.local_addr().unwrap();
        for data in frames() {
            a.send(&LinkTransmit { link: 0, to, data });
        }
        assert_eq!(a.stats.tx, 5);
        assert_eq!(a.stats.tx_gso_sends, 0);
        let want: Vec<Vec<u8>> = frames().iter().map(|f| f.to_vec()).collect();
        assert_eq!(read_all(&mut b, 5), want);
    }

    /// Datagrams larger than the path MTU cannot be segmented (the kernel would
    /// have to fragment them): the run still goes out, datagram by datagram and
    /// fragmented, and datagrams that large never try segmentation again while
    /// smaller ones still do. Before, such a run was counted lost, and so was each
    /// of its retransmissions: over IPv6 at MTU 1 500 the ring broke.
    #[test]
    fn datagrams_above_the_path_mtu_fall_back_to_one_by_one() {
        let (mut a, mut b) = two_nodes_on("[::1]:0", [true, true]);
        // A path MTU of 1 280 for a's sends (IPv6's minimum).
        let mtu: libc::c_int = 1280;
        let fd = a.transport.links[0].socket.as_raw_fd();
        // SAFETY: valid socket; the option value is a c_int of the given length.
        let r = unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_IPV6,
                libc::IPV6_MTU,
                (&mtu as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(r, 0, "IPV6_MTU: {}", io::Error::last_os_error());
        let to = b.transport.links[0].socket.local_addr().unwrap();
        let want: Vec<Vec<u8>> = frames().iter().map(|f| f.to_vec()).collect();
        for pass in 0..2 {
            for data in frames() {
                a.send(&LinkTransmit { link: 0, to, data });
            }
            a.send_held();
            assert_eq!(read_all(&mut b, 5), want, "pass {pass}");
            // Refused once, in the first pass; never tried again for 1 400 bytes.
            assert_eq!(a.stats.tx_gso_refused, 1, "pass {pass}");
            assert_eq!(a.stats.tx_gso_sends, 0, "pass {pass}");
            assert_eq!(a.stats.tx_errors, 0, "pass {pass}");
        }
        // Datagrams that fit the path MTU still go out as a run.
        let small: Vec<Bytes> = (0..4u8).map(|i| Bytes::from(vec![i; 1000])).collect();
        for data in small.iter().cloned() {
            a.send(&LinkTransmit { link: 0, to, data });
        }
        a.send_held();
        assert_eq!(a.stats.tx_gso_sends, 1);
        let want: Vec<Vec<u8>> = small.iter().map(|f| f.to_vec()).collect();
        assert_eq!(read_all(&mut b, 4), want);
    }
}
