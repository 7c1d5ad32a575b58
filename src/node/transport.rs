//! UDP to every configured node, one non-blocking socket per link, addresses from
//! the node list, datagrams from unknown addresses dropped; optionally one IP
//! multicast group per link for datagrams meant for several nodes.

use super::link_options::{LinkOptions, Multicast};
use mio::net::UdpSocket;
use phalanx_totem::NodeId;
use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;

/// One link's sockets and address book.
pub(crate) struct LinkSocket {
    /// Bound to this node's address on the link; sends everything.
    pub(crate) socket: UdpSocket,
    /// Bound to the multicast group (receive only), when the link multicasts.
    pub(crate) group_socket: Option<UdpSocket>,
    pub(crate) group: Option<SocketAddr>,
}

pub(crate) struct Transport {
    pub(crate) links: Vec<LinkSocket>,
}

/// Counters of the transport (all links together; per link and peer see
/// [`NodeHandle::links`](super::NodeHandle::links)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Datagrams sent.
    pub tx: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Datagrams received.
    pub rx: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Sends that failed (socket buffer full, unreachable, link down): dropped, the
    /// protocol retransmits.
    pub tx_errors: u64,
    /// Datagrams from addresses outside the node list, dropped.
    pub rx_unknown_addr: u64,
    /// Multicast datagrams sent (each counts once in `tx`, whatever the receivers).
    pub tx_multicast: u64,
    /// Own multicast datagrams looped back, dropped.
    pub rx_own: u64,
    /// Segmentation-offload sends (`UDP_SEGMENT`), each carrying several of the
    /// datagrams counted in `tx`.
    pub tx_gso_sends: u64,
    /// Times the kernel refused a segmentation-offload send (then the node sends
    /// datagram by datagram).
    pub tx_gso_refused: u64,
    /// Reads that returned several datagrams at once (`UDP_GRO`).
    pub rx_gro_reads: u64,
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

impl Transport {
    pub(crate) fn bind(
        me: NodeId,
        addrs: &BTreeMap<NodeId, SocketAddr>,
        links: &LinkOptions,
        buffer: usize,
    ) -> io::Result<Self> {
        let mut out = Vec::new();
        let all = std::iter::once((0u8, addrs, &links.link0))
            .chain(links.extra.iter().map(|l| (l.number, &l.addrs, &l.params)));
        for (number, addrs, params) in all {
            let local = *addrs.get(&me).ok_or_else(|| {
                invalid(format!("no address for local node {me} on link {number}"))
            })?;
            let socket = UdpSocket::bind(local).map_err(|e| {
                io::Error::new(e.kind(), format!("link {number}: bind {local}: {e}"))
            })?;
            set_socket_buffers(&socket, buffer);
            let (group_socket, group) = match &params.multicast {
                Some(m) => (Some(join_group(&socket, local, m, buffer)?), Some(m.group)),
                None => (None, None),
            };
            out.push(LinkSocket {
                socket,
                group_socket,
                group,
            });
        }
        Ok(Transport { links: out })
    }

    /// One datagram to `to` on link slot `slot` (a node's address or the link's
    /// multicast group).
    pub(crate) fn send_addr(
        &self,
        slot: usize,
        to: SocketAddr,
        data: &[u8],
        stats: &mut TransportStats,
    ) -> bool {
        let Some(link) = self.links.get(slot) else {
            stats.tx_errors += 1;
            return false;
        };
        let ok = count(link.socket.send_to(data, to), data.len(), stats);
        if ok && link.group == Some(to) {
            stats.tx_multicast += 1;
        }
        ok
    }
}

fn count(r: io::Result<usize>, len: usize, stats: &mut TransportStats) -> bool {
    match r {
        Ok(_) => {
            stats.tx += 1;
            stats.tx_bytes += len as u64;
            true
        }
        Err(_) => {
            stats.tx_errors += 1;
            false
        }
    }
}

/// Sets up multicast sending on `socket` (interface of `local`, ttl, loop on so
/// that other nodes on this host hear it) and returns a receive socket bound to the
/// group (address reuse on, so several nodes on one host can share the group).
fn join_group(
    socket: &UdpSocket,
    local: SocketAddr,
    m: &Multicast,
    buffer: usize,
) -> io::Result<UdpSocket> {
    let err = |what: &str, e: io::Error| {
        io::Error::new(e.kind(), format!("multicast {}: {what}: {e}", m.group))
    };
    match (m.group.ip(), local.ip()) {
        (IpAddr::V4(g), IpAddr::V4(l)) => {
            if !g.is_multicast() {
                return Err(invalid(format!("{g} is not a multicast address")));
            }
            socket
                .set_multicast_ttl_v4(m.ttl)
                .map_err(|e| err("ttl", e))?;
            socket
                .set_multicast_loop_v4(true)
                .map_err(|e| err("loop", e))?;
            set_multicast_if_v4(socket, l).map_err(|e| err("interface", e))?;
            let r = reusable_udp(m.group).map_err(|e| err("bind", e))?;
            r.join_multicast_v4(&g, &l).map_err(|e| err("join", e))?;
            set_socket_buffers(&r, buffer);
            Ok(r)
        }
        (IpAddr::V6(g), IpAddr::V6(l)) => {
            if !g.is_multicast() {
                return Err(invalid(format!("{g} is not a multicast address")));
            }
            // IPv6 multicast is per interface: the one holding our address.
            let ifindex = interface_index(IpAddr::V6(l)).map_err(|e| err("interface", e))?;
            socket
                .set_multicast_loop_v6(true)
                .map_err(|e| err("loop", e))?;
            let fd = socket.as_raw_fd();
            let hops = m.ttl.min(255) as libc::c_int;
            set_int_opt(fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS, hops)
                .map_err(|e| err("hops", e))?;
            set_int_opt(
                fd,
                libc::IPPROTO_IPV6,
                libc::IPV6_MULTICAST_IF,
                ifindex as libc::c_int,
            )
            .map_err(|e| err("interface", e))?;
            // Interface- and link-local groups need the interface as scope to bind.
            let scoped = matches!(g.segments()[0] & 0x000f, 1 | 2);
            let bind_to = SocketAddr::V6(std::net::SocketAddrV6::new(
                g,
                m.group.port(),
                0,
                if scoped { ifindex } else { 0 },
            ));
            let r = reusable_udp(bind_to).map_err(|e| err("bind", e))?;
            r.join_multicast_v6(&g, ifindex)
                .map_err(|e| err("join", e))?;
            set_socket_buffers(&r, buffer);
            Ok(r)
        }
        _ => Err(invalid(format!(
            "multicast group {} and address {local} are of different IP families",
            m.group
        ))),
    }
}

fn set_int_opt(
    fd: libc::c_int,
    level: libc::c_int,
    name: libc::c_int,
    v: libc::c_int,
) -> io::Result<()> {
    // SAFETY: valid socket; the option value is a c_int of the given length.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Index of the network interface that holds `ip` (getifaddrs).
fn interface_index(ip: IpAddr) -> io::Result<u32> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut found = None;
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, alive until
        // freeifaddrs; ifa_addr, when set, points to a sockaddr of its family.
        unsafe {
            let ifa = &*cur;
            let sa = ifa.ifa_addr;
            if !sa.is_null() {
                let here = match i32::from((*sa).sa_family) {
                    libc::AF_INET6 => {
                        let s6 = &*(sa as *const libc::sockaddr_in6);
                        Some(IpAddr::from(s6.sin6_addr.s6_addr))
                    }
                    libc::AF_INET => {
                        let s4 = &*(sa as *const libc::sockaddr_in);
                        Some(IpAddr::from(s4.sin_addr.s_addr.to_ne_bytes()))
                    }
                    _ => None,
                };
                if here == Some(ip) {
                    found = Some(libc::if_nametoindex(ifa.ifa_name));
                    break;
                }
            }
            cur = ifa.ifa_next;
        }
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    match found {
        Some(i) if i != 0 => Ok(i),
        _ => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no network interface holds {ip}"),
        )),
    }
}

/// A non-blocking UDP socket with SO_REUSEADDR, bound to `addr`.
fn reusable_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let family = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain socket(2) call; the descriptor is owned below.
    let fd = unsafe {
        libc::socket(
            family,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh socket we own.
    let std_sock = unsafe {
        use std::os::fd::FromRawFd;
        std::net::UdpSocket::from_raw_fd(fd)
    };
    let one: libc::c_int = 1;
    // SAFETY: valid socket and option value.
    if unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    let (storage, len) = sockaddr(addr);
    // SAFETY: storage holds a valid sockaddr of `len` bytes for this family.
    if unsafe { libc::bind(fd, (&storage as *const libc::sockaddr_storage).cast(), len) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(UdpSocket::from_std(std_sock))
}

fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
            (
                storage,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_in6 fits in sockaddr_storage.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            (
                storage,
                std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        }
    }
}

fn set_multicast_if_v4(socket: &UdpSocket, local: Ipv4Addr) -> io::Result<()> {
    let addr = libc::in_addr {
        s_addr: u32::from_ne_bytes(local.octets()),
    };
    // SAFETY: valid socket; the option value is an in_addr.
    let r = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_IF,
            (&addr as *const libc::in_addr).cast(),
            std::mem::size_of::<libc::in_addr>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Asks for socket buffers of `bytes` each way (SO_*BUFFORCE when privileged,
/// else the plain options, which the kernel caps at rmem_max/wmem_max).
pub fn set_socket_buffers(socket: &impl AsRawFd, bytes: usize) {
    let fd = socket.as_raw_fd();
    let v = bytes.min(i32::MAX as usize) as libc::c_int;
    let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    for (force, plain) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
    ] {
        // SAFETY: fd is a valid socket for the lifetime of `socket`; the option
        // value is a c_int of the given length.
        unsafe {
            if libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                force,
                (&v as *const libc::c_int).cast(),
                len,
            ) != 0
            {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    plain,
                    (&v as *const libc::c_int).cast(),
                    len,
                );
            }
        }
    }
}
