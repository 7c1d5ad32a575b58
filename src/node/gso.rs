//! UDP segmentation offload at the kernel boundary: one `sendmsg` carries a run of
//! equal-sized datagrams to one peer (`UDP_SEGMENT`), and one `recvmsg` may return
//! a run the kernel kept together (`UDP_GRO`), split here into its datagrams.
//!
//! Why: at MTU 1500 a ring's cost is per datagram — a system call and a trip
//! through the network stack (veth, bridge, netfilter hooks) for every frame to
//! every peer. With GSO the kernel builds one large packet and splits it as late as
//! possible (on a veth + bridge path, not at all before the receiving socket); with
//! GRO on the receiving socket the run arrives in one read. The datagrams on the
//! wire are the same as without: every segment is an ordinary UDP datagram, so
//! peers without GRO (or Corosync-era tools watching the wire) see no difference.
//!
//! The kernel's rule: every segment of one call has the segment size except the
//! last, which may be shorter. [`runs`] cuts a destination's datagrams into such
//! runs. Linux only, as the node is; a kernel or device that refuses GSO makes the
//! caller fall back to one datagram per call.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::SocketAddr;
use std::os::fd::RawFd;

/// `UDP_SEGMENT` from `<linux/udp.h>`: the segment size of a GSO send (u16 cmsg).
const UDP_SEGMENT: libc::c_int = 103;
/// `UDP_GRO` from `<linux/udp.h>`: socket option, and the cmsg with the segment size.
const UDP_GRO: libc::c_int = 104;
/// Segments in one GSO send: the kernel's `UDP_MAX_SEGMENTS` is 64 on older
/// kernels (128 on newer ones); 64 works everywhere.
pub(crate) const MAX_SEGMENTS: usize = 64;
/// Bytes in one GSO send: an IPv4 UDP payload's limit (65 535 − 20 − 8), which is
/// below IPv6's.
pub(crate) const MAX_BYTES: usize = 65_507;

/// Cuts `lens` (datagram sizes, in send order) into runs that one GSO call can
/// carry: each run is `(start, count)`; all its datagrams but the last have the
/// size of the first, the last is no longer, and the run stays within
/// [`MAX_SEGMENTS`] and [`MAX_BYTES`]. A run of one is an ordinary send.
pub(crate) fn runs(lens: &[usize]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < lens.len() {
        let seg = lens[start];
        let mut count = 1;
        let mut bytes = seg;
        while start + count < lens.len() && count < MAX_SEGMENTS {
            let next = lens[start + count];
            if next > seg || bytes + next > MAX_BYTES || seg == 0 {
                break;
            }
            bytes += next;
            count += 1;
            if next < seg {
                // A shorter datagram can only end a run.
                break;
            }
        }
        out.push((start, count));
        start += count;
    }
    out
}

/// Turns UDP GRO on for `fd`: a read may then return several datagrams of one
/// sender at once, see [`recv`].
pub(crate) fn enable_gro(fd: RawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: valid socket; the option value is a c_int of the given length.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_UDP,
            UDP_GRO,
            (&on as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sends `datagrams` (all to `to`) with one `sendmsg`: as one GSO run of segment
/// size `datagrams[0].len()` when there are several, else as a plain datagram.
/// The caller cut them with [`runs`]. The bytes are gathered by the kernel from
/// the slices (no copy here).
pub(crate) fn send_run(fd: RawFd, to: &SocketAddr, datagrams: &[&[u8]]) -> io::Result<()> {
    let (mut name, name_len) = super::mmsg::to_raw(to);
    let mut iovs: Vec<libc::iovec> = datagrams
        .iter()
        .map(|d| libc::iovec {
            iov_base: d.as_ptr() as *mut libc::c_void,
            iov_len: d.len(),
        })
        .collect();
    // Room for one cmsg carrying a u16, aligned as the kernel expects.
    let mut control = [0u64; 4];
    // SAFETY: msghdr is plain data; all-zero is a valid (empty) value.
    let mut hdr: libc::msghdr = unsafe { zeroed() };
    hdr.msg_name = (&mut name as *mut libc::sockaddr_storage).cast();
    hdr.msg_namelen = name_len;
    hdr.msg_iov = iovs.as_mut_ptr();
    hdr.msg_iovlen = iovs.len();
    if datagrams.len() > 1 {
        let seg = u16::try_from(datagrams[0].len())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: CMSG_SPACE is a pure size computation.
        let space = unsafe { libc::CMSG_SPACE(size_of::<u16>() as u32) } as usize;
        debug_assert!(space <= size_of::<[u64; 4]>());
        hdr.msg_control = control.as_mut_ptr().cast();
        hdr.msg_controllen = space;
        // SAFETY: `hdr` points at `control`, which is large enough for one cmsg
        // with a u16 (checked above) and 8-byte aligned, so CMSG_FIRSTHDR returns a
        // valid, aligned header inside it and CMSG_DATA a valid place for the u16.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&hdr);
            (*cmsg).cmsg_level = libc::SOL_UDP;
            (*cmsg).cmsg_type = UDP_SEGMENT;
            (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<u16>(), seg);
        }
    }
    loop {
        // SAFETY: `hdr`'s name, iovec and control pointers point into `name`,
        // `iovs` (which point into the callers' slices) and `control`, all alive and
        // unmoved for the call.
        let n = unsafe { libc::sendmsg(fd, &hdr, libc::MSG_DONTWAIT) };
        if n >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// One read: the bytes in `buf[..len]`, the sender, and the segment size when the
/// kernel returned a GRO run (then the datagrams are consecutive `seg`-byte pieces,
/// the last possibly shorter). `Ok(None)` when nothing is waiting.
pub(crate) fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<Option<Received>> {
    // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
    let mut name: libc::sockaddr_storage = unsafe { zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = [0u64; 8];
    // SAFETY: msghdr is plain data; all-zero is a valid (empty) value.
    let mut hdr: libc::msghdr = unsafe { zeroed() };
    hdr.msg_name = (&mut name as *mut libc::sockaddr_storage).cast();
    hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    hdr.msg_iov = &mut iov;
    hdr.msg_iovlen = 1;
    hdr.msg_control = control.as_mut_ptr().cast();
    hdr.msg_controllen = size_of::<[u64; 8]>();
    let len = loop {
        // SAFETY: `hdr` points into `name`, `iov` (into `buf`) and `control`, all
        // alive and exclusively borrowed for the call.
        let n = unsafe { libc::recvmsg(fd, &mut hdr, libc::MSG_DONTWAIT) };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return Ok(None),
            _ => return Err(e),
        }
    };
    let mut seg = None;
    // SAFETY: the kernel filled `control` up to `msg_controllen`; the CMSG macros
    // walk only within it, and a UDP_GRO cmsg carries a c_int.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&hdr);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_UDP && (*cmsg).cmsg_type == UDP_GRO {
                let v = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>());
                if v > 0 {
                    seg = Some(v as usize);
                }
            }
            cmsg = libc::CMSG_NXTHDR(&hdr, cmsg);
        }
    }
    Ok(Some(Received {
        len,
        from: super::mmsg::from_raw(&name),
        seg,
    }))
}

/// The same offload for a caller's own `UdpSocket` — what the benchmark's raw
/// ceiling uses, so that "% of raw" compares the ring with the best the kernel can
/// do on the same path rather than with one datagram per call.
///
/// ```
/// use phalanx::node::udp_offload;
/// use std::net::UdpSocket;
///
/// let rx = UdpSocket::bind("127.0.0.1:0")?;
/// udp_offload::enable_gro(&rx)?;
/// let tx = UdpSocket::bind("127.0.0.1:0")?;
/// let frames = [[7u8; 1000], [8u8; 1000]];
/// udp_offload::send_segments(&tx, &rx.local_addr()?, &[&frames[0], &frames[1]])?;
/// let mut buf = vec![0u8; 65_536];
/// if let Some(read) = udp_offload::recv_segments(&rx, &mut buf)? {
///     let datagrams = buf[..read.len].chunks(read.segment_size.unwrap_or(read.len));
///     assert!(datagrams.count() >= 1);
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
pub mod public {
    use std::io;
    use std::net::{SocketAddr, UdpSocket};
    use std::os::fd::AsRawFd;

    /// Most datagrams one [`send_segments`] call may carry.
    pub const MAX_SEGMENTS: usize = super::MAX_SEGMENTS;
    /// Most bytes one [`send_segments`] call may carry.
    pub const MAX_BYTES: usize = super::MAX_BYTES;

    /// Turns UDP GRO on for `sock`: a read may return several datagrams of one
    /// sender at once.
    pub fn enable_gro(sock: &UdpSocket) -> io::Result<()> {
        super::enable_gro(sock.as_raw_fd())
    }

    /// Sends `datagrams` to `to` in one non-blocking `sendmsg` (one `UDP_SEGMENT`
    /// run): every datagram but the last must have the first's size, the last may
    /// be shorter, at most [`MAX_SEGMENTS`] datagrams and [`MAX_BYTES`] bytes —
    /// otherwise `InvalidInput`. A kernel that refuses segmentation answers
    /// `EIO`, `ENOPROTOOPT`, `EOPNOTSUPP`, `EINVAL` or `EMSGSIZE`.
    pub fn send_segments(sock: &UdpSocket, to: &SocketAddr, datagrams: &[&[u8]]) -> io::Result<()> {
        let lens: Vec<usize> = datagrams.iter().map(|d| d.len()).collect();
        if datagrams.is_empty() || super::runs(&lens) != vec![(0, datagrams.len())] {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not one segmentation run (sizes, count or total bytes)",
            ));
        }
        super::send_run(sock.as_raw_fd(), to, datagrams)
    }

    /// One non-blocking read into `buf`; `Ok(None)` when nothing is waiting.
    pub fn recv_segments(sock: &UdpSocket, buf: &mut [u8]) -> io::Result<Option<SegmentedRead>> {
        Ok(super::recv(sock.as_raw_fd(), buf)?.map(|r| SegmentedRead {
            len: r.len,
            from: r.from,
            segment_size: r.seg,
        }))
    }

    /// What [`recv_segments`] read.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct SegmentedRead {
        /// Bytes read into the buffer.
        pub len: usize,
        /// The sender (`None`: not an IP address).
        pub from: Option<SocketAddr>,
        /// The GRO segment size when the read holds several datagrams: they are
        /// consecutive pieces of this size, the last possibly shorter.
        pub segment_size: Option<usize>,
    }
}

/// Waits up to `ms` milliseconds for `fd` to become readable (tests).
#[cfg(test)]
pub(crate) fn wait_readable(fd: RawFd, ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    unsafe { libc::poll(&mut p, 1, ms) == 1 }
}

/// What [`recv`] read.
pub(crate) struct Received {
    /// Bytes read into the buffer.
    pub(crate) len: usize,
    /// The sender (`None`: not an IP address).
    pub(crate) from: Option<SocketAddr>,
    /// The GRO segment size, when the read holds several datagrams.
    pub(crate) seg: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    #[test]
    fn runs_follow_the_kernels_segment_rule() {
        assert_eq!(runs(&[]), vec![]);
        assert_eq!(runs(&[100]), vec![(0, 1)]);
        // Equal sizes, then a shorter one ends the run; a longer one starts a new one.
        assert_eq!(runs(&[100, 100, 60, 100]), vec![(0, 3), (3, 1)]);
        assert_eq!(runs(&[60, 100, 100]), vec![(0, 1), (1, 2)]);
        // Segment count limit.
        let many = vec![10; MAX_SEGMENTS + 3];
        assert_eq!(runs(&many), vec![(0, MAX_SEGMENTS), (MAX_SEGMENTS, 3)]);
        // Byte limit: 1 400-byte frames, at most 46 of them fit 65 507 bytes.
        let frames = vec![1400; 50];
        assert_eq!(runs(&frames), vec![(0, 46), (46, 4)]);
        // Empty datagrams never form runs.
        assert_eq!(runs(&[0, 0]), vec![(0, 1), (1, 1)]);
    }

    /// A GSO run over loopback arrives as the same datagrams — as one GRO read
    /// when the receiver asked for GRO, or one by one when it did not.
    #[test]
    fn a_run_arrives_as_its_datagrams() {
        for gro in [true, false] {
            let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
            rx.set_nonblocking(true).unwrap();
            if gro {
                enable_gro(rx.as_raw_fd()).unwrap();
            }
            let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
            let frames: Vec<Vec<u8>> = (0..5u8)
                .map(|i| vec![i; if i == 4 { 300 } else { 1000 }])
                .collect();
            let slices: Vec<&[u8]> = frames.iter().map(|f| &f[..]).collect();
            send_run(tx.as_raw_fd(), &rx.local_addr().unwrap(), &slices).unwrap();
            let mut got: Vec<Vec<u8>> = Vec::new();
            let mut buf = vec![0u8; 65_536];
            while got.len() < frames.len() {
                let Some(r) = recv(rx.as_raw_fd(), &mut buf).unwrap() else {
                    assert!(
                        wait_readable(rx.as_raw_fd(), 5_000),
                        "only {} of {} datagrams arrived",
                        got.len(),
                        frames.len()
                    );
                    continue;
                };
                assert_eq!(r.from, Some(tx.local_addr().unwrap()));
                let seg = r.seg.unwrap_or(r.len);
                got.extend(buf[..r.len].chunks(seg).map(<[u8]>::to_vec));
            }
            assert_eq!(got, frames, "gro {gro}");
        }
    }
}
