//! UDP unicast to every configured node: one non-blocking socket, addresses from
//! the node list, datagrams from unknown addresses dropped.

use mio::net::UdpSocket;
use phalanx_totem::{Destination, NodeId};
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

pub(crate) struct Transport {
    pub(crate) socket: UdpSocket,
    me: NodeId,
    addr_of: BTreeMap<NodeId, SocketAddr>,
    node_of: HashMap<SocketAddr, NodeId>,
}

/// Counters of the transport.
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
    /// Sends that failed (socket buffer full, unreachable): dropped, the protocol
    /// retransmits.
    pub tx_errors: u64,
    /// Datagrams from addresses outside the node list, dropped.
    pub rx_unknown_addr: u64,
}

impl Transport {
    pub(crate) fn bind(
        me: NodeId,
        addrs: &BTreeMap<NodeId, SocketAddr>,
        buffer: usize,
    ) -> io::Result<Self> {
        let local = *addrs.get(&me).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("no address for local node {me}"),
            )
        })?;
        let socket = UdpSocket::bind(local)?;
        set_socket_buffers(&socket, buffer);
        let node_of = addrs.iter().map(|(n, a)| (*a, *n)).collect();
        Ok(Transport {
            socket,
            me,
            addr_of: addrs.clone(),
            node_of,
        })
    }

    /// The node a datagram's source address belongs to.
    pub(crate) fn node_of(&self, addr: &SocketAddr) -> Option<NodeId> {
        self.node_of.get(addr).copied()
    }

    pub(crate) fn send(&self, dest: &Destination, data: &[u8], stats: &mut TransportStats) {
        match dest {
            Destination::Node(n) => self.send_to(*n, data, stats),
            Destination::Members(m) => {
                for n in m.iter() {
                    self.send_to(*n, data, stats);
                }
            }
            Destination::All => {
                for n in self.addr_of.keys().filter(|n| **n != self.me) {
                    self.send_to(*n, data, stats);
                }
            }
        }
    }

    fn send_to(&self, n: NodeId, data: &[u8], stats: &mut TransportStats) {
        let Some(addr) = self.addr_of.get(&n) else {
            return;
        };
        match self.socket.send_to(data, *addr) {
            Ok(_) => {
                stats.tx += 1;
                stats.tx_bytes += data.len() as u64;
            }
            Err(_) => stats.tx_errors += 1,
        }
    }
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
