//! Many datagrams per system call: `sendmmsg(2)` for the datagrams one pass of
//! the driver produced on a socket (every frame to every peer), `recvmmsg(2)` for
//! the datagrams waiting on one. The per-datagram cost of a ring at MTU 1500 is
//! mostly the system call (see `docs/performance.md`); these cut the calls, not
//! the datagrams. Linux only, as the node is.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// Datagrams handed to one `sendmmsg` / read by one `recvmmsg`.
pub(crate) const BATCH: usize = 16;
/// Receive buffer per datagram: the largest UDP payload.
const RECV_BUF: usize = 65_536;

/// A socket address in the kernel's layout.
pub(crate) fn to_raw(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in, sin) };
            size_of::<libc::sockaddr_in>()
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
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in6, sin6) };
            size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// A kernel socket address back to a [`SocketAddr`] (`None`: not IP).
pub(crate) fn from_raw(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin = unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6 = unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Sends `datagrams` (destination, bytes) on `fd`, at most [`BATCH`] per call.
/// Returns how many went out; each failed one is skipped (reported through
/// `failed`) and the rest still sent, as separate `sendto`s would.
pub(crate) fn send_many(
    fd: RawFd,
    datagrams: &[(SocketAddr, &[u8])],
    mut failed: impl FnMut(usize, io::Error),
) -> usize {
    let mut sent = 0;
    let mut start = 0;
    while start < datagrams.len() {
        let chunk = &datagrams[start..(start + BATCH).min(datagrams.len())];
        let mut names: Vec<(libc::sockaddr_storage, libc::socklen_t)> =
            chunk.iter().map(|(to, _)| to_raw(to)).collect();
        let mut iovs: Vec<libc::iovec> = chunk
            .iter()
            .map(|(_, data)| libc::iovec {
                iov_base: data.as_ptr() as *mut libc::c_void,
                iov_len: data.len(),
            })
            .collect();
        let mut msgs: Vec<libc::mmsghdr> = names
            .iter_mut()
            .zip(iovs.iter_mut())
            .map(|((name, len), iov)| {
                // SAFETY: msghdr is plain data; all-zero is a valid (empty) value.
                let mut hdr: libc::msghdr = unsafe { zeroed() };
                hdr.msg_name = name as *mut _ as *mut libc::c_void;
                hdr.msg_namelen = *len;
                hdr.msg_iov = iov;
                hdr.msg_iovlen = 1;
                libc::mmsghdr {
                    msg_hdr: hdr,
                    msg_len: 0,
                }
            })
            .collect();
        // SAFETY: `msgs` holds `chunk.len()` headers whose name and iovec pointers
        // point into `names`, `iovs` and the callers' byte slices, all alive and
        // unmoved for the duration of the call.
        let n = unsafe {
            libc::sendmmsg(
                fd,
                msgs.as_mut_ptr(),
                msgs.len() as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // The first datagram of the chunk failed: skip it, go on.
            failed(start, e);
            start += 1;
        } else {
            let n = n as usize;
            sent += n;
            start += n.max(1).min(chunk.len());
            if n == 0 {
                failed(start - 1, io::Error::from(io::ErrorKind::WriteZero));
            }
        }
    }
    sent
}

/// Received datagrams of one `recvmmsg`, read one by one.
pub(crate) struct RecvBatch {
    bufs: Vec<u8>,
    lens: [usize; BATCH],
    from: [Option<SocketAddr>; BATCH],
    count: usize,
    next: usize,
}

impl RecvBatch {
    pub(crate) fn new() -> RecvBatch {
        RecvBatch {
            bufs: vec![0u8; BATCH * RECV_BUF],
            lens: [0; BATCH],
            from: [None; BATCH],
            count: 0,
            next: 0,
        }
    }

    /// Whether every datagram read has been popped.
    pub(crate) fn is_empty(&self) -> bool {
        self.next >= self.count
    }

    /// Passes over datagrams whose source is not an IP address (no node sends
    /// them).
    pub(crate) fn skip_foreign(&mut self) {
        while self.next < self.count && self.from[self.next].is_none() {
            self.next += 1;
        }
    }

    /// The next datagram already read, if any: (source, bytes); `None` as the
    /// source when it was not an IP address.
    pub(crate) fn pop(&mut self) -> Option<(Option<SocketAddr>, &[u8])> {
        if self.next >= self.count {
            return None;
        }
        let i = self.next;
        self.next += 1;
        let start = i * RECV_BUF;
        Some((self.from[i], &self.bufs[start..start + self.lens[i]]))
    }

    /// Reads up to [`BATCH`] datagrams from `fd` (without blocking). `Ok(0)`:
    /// nothing waits. Only call when [`pop`](Self::pop) has nothing left.
    pub(crate) fn fill(&mut self, fd: RawFd) -> io::Result<usize> {
        // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
        let mut names: [libc::sockaddr_storage; BATCH] = unsafe { zeroed() };
        let mut iovs: Vec<libc::iovec> = self
            .bufs
            .chunks_exact_mut(RECV_BUF)
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr() as *mut libc::c_void,
                iov_len: RECV_BUF,
            })
            .collect();
        let mut msgs: Vec<libc::mmsghdr> = names
            .iter_mut()
            .zip(iovs.iter_mut())
            .map(|(name, iov)| {
                // SAFETY: msghdr is plain data; all-zero is a valid (empty) value.
                let mut hdr: libc::msghdr = unsafe { zeroed() };
                hdr.msg_name = name as *mut _ as *mut libc::c_void;
                hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                hdr.msg_iov = iov;
                hdr.msg_iovlen = 1;
                libc::mmsghdr {
                    msg_hdr: hdr,
                    msg_len: 0,
                }
            })
            .collect();
        loop {
            // SAFETY: `msgs` holds BATCH headers whose name and iovec pointers
            // point into `names`, `iovs` and `self.bufs`, alive and unmoved for
            // the call; a null timeout with MSG_DONTWAIT never blocks.
            let n = unsafe {
                libc::recvmmsg(
                    fd,
                    msgs.as_mut_ptr(),
                    BATCH as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock => {
                        self.count = 0;
                        self.next = 0;
                        return Ok(0);
                    }
                    _ => return Err(e),
                }
            }
            let n = n as usize;
            for (i, m) in msgs.iter().take(n).enumerate() {
                self.lens[i] = m.msg_len as usize;
                self.from[i] = from_raw(&names[i]);
            }
            self.count = n;
            self.next = 0;
            return Ok(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_batch_goes_out_and_comes_back_in_order_with_its_sources() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rx.local_addr().unwrap();
        let payloads: Vec<Vec<u8>> = (0..70u8)
            .map(|i| vec![i; 1 + usize::from(i) * 20])
            .collect();
        let datagrams: Vec<(SocketAddr, &[u8])> =
            payloads.iter().map(|p| (to, p.as_slice())).collect();
        let sent = send_many(tx.as_raw_fd(), &datagrams, |i, e| panic!("{i}: {e}"));
        assert_eq!(sent, 70);
        let mut batch = RecvBatch::new();
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while got.len() < 70 {
            assert!(std::time::Instant::now() < deadline, "got {}", got.len());
            if batch.fill(rx.as_raw_fd()).unwrap() == 0 {
                continue; // nothing yet: poll again until the deadline
            }
            while let Some((from, data)) = batch.pop() {
                assert_eq!(from, Some(tx.local_addr().unwrap()));
                got.push(data.to_vec());
            }
        }
        assert_eq!(got, payloads);
        assert_eq!(batch.fill(rx.as_raw_fd()).unwrap(), 0, "nothing more");
    }

    #[test]
    fn a_failing_datagram_is_skipped_and_the_rest_sent() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rx.local_addr().unwrap();
        // An IPv6 destination on an IPv4 socket fails (EAFNOSUPPORT/EINVAL).
        let bad: SocketAddr = "[::1]:9".parse().unwrap();
        let a = [1u8; 10];
        let datagrams = [(to, &a[..]), (bad, &a[..]), (to, &a[..])];
        let mut failures = Vec::new();
        let sent = send_many(tx.as_raw_fd(), &datagrams, |i, _| failures.push(i));
        assert_eq!((sent, failures), (2, vec![1]));
    }

    #[test]
    fn addresses_round_trip_through_the_kernel_layout() {
        for a in ["10.78.0.3:5405", "[fe80::1%2]:5405", "[2001:db8::7]:1"] {
            let a: SocketAddr = a.parse().unwrap();
            assert_eq!(from_raw(&to_raw(&a).0), Some(a));
        }
    }
}
