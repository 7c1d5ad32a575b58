//! Unix-socket details libqb depends on: abstract names padded to the whole
//! `sun_path` (libqb binds and connects with `sizeof(struct sockaddr_un)`, so
//! the trailing zero bytes are part of the name), peer credentials, datagram
//! sizes.

use std::io;
use std::os::fd::AsRawFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::SocketAddr;

/// Bytes of an abstract name after the leading NUL (`sun_path` is 108).
const ABSTRACT_LEN: usize = 107;
/// Longest name libqb writes (`snprintf` into 107 bytes leaves one for NUL).
pub const MAX_NAME: usize = 106;

/// The abstract address libqb uses for `name`: the name, then zeros up to the
/// end of `sun_path`.
pub fn abstract_addr(name: &str) -> io::Result<SocketAddr> {
    let b = name.as_bytes();
    if b.len() > MAX_NAME || b.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("socket name too long for libqb: {name}"),
        ));
    }
    let mut padded = [0u8; ABSTRACT_LEN];
    padded[..b.len()].copy_from_slice(b);
    SocketAddr::from_abstract_name(padded)
}

/// The peer's (pid, uid, gid) as the kernel recorded them at connect.
pub fn peer_credentials(sock: &impl AsRawFd) -> io::Result<(u32, u32, u32)> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: SO_PEERCRED writes at most `len` bytes into `cred`, which lives
    // across the call; the fd is a valid socket owned by the caller.
    let r = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((cred.pid as u32, cred.uid, cred.gid))
}

/// Lets datagrams of `bytes` through: send and receive buffers at least that
/// big (forced past the system limits when we are allowed to, as libqb's
/// server does not but a daemon serving 1 MiB messages must).
pub fn size_buffers(sock: &impl AsRawFd, bytes: usize) {
    let want = bytes.min(i32::MAX as usize / 2) as libc::c_int;
    for (force, plain) in [
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
    ] {
        for opt in [force, plain] {
            // SAFETY: setsockopt reads one c_int from `want`, which outlives the call.
            let r = unsafe {
                libc::setsockopt(
                    sock.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    (&want as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if r == 0 {
                break;
            }
        }
    }
}

/// Receives one datagram into `buf`; returns its real length, which exceeds
/// `buf.len()` when the datagram was larger (and cut).
pub fn recv_datagram(sock: &impl AsRawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: recv writes at most `buf.len()` bytes into `buf`; MSG_TRUNC only
    // changes the returned length.
    let n = unsafe {
        libc::recv(
            sock.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_TRUNC | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// This process's effective uid.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abstract_names_are_padded_to_sun_path() {
        let a = abstract_addr("cpg").unwrap();
        let name = a.as_abstract_name().unwrap();
        assert_eq!(name.len(), ABSTRACT_LEN);
        assert_eq!(&name[..4], b"cpg\0");
        assert!(abstract_addr(&"x".repeat(MAX_NAME + 1)).is_err());
        assert!(abstract_addr("a\0b").is_err());
    }
}

/// A user name or numeric id as a uid (the password database, via libc).
pub fn resolve_user(name: &str) -> io::Result<u32> {
    resolve(name, true)
}

/// A group name or numeric id as a gid (the group database, via libc).
pub fn resolve_group(name: &str) -> io::Result<u32> {
    resolve(name, false)
}

fn resolve(name: &str, user: bool) -> io::Result<u32> {
    if let Ok(id) = name.parse::<u32>() {
        return Ok(id);
    }
    let what = if user { "user" } else { "group" };
    let unknown = || io::Error::new(io::ErrorKind::NotFound, format!("unknown {what} {name:?}"));
    let c = std::ffi::CString::new(name).map_err(|_| unknown())?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    if user {
        // SAFETY: passwd is plain data (all zeroes valid); getpwnam_r writes
        // into `pwd` and `buf` (whose length it is given), both outliving the
        // call, and sets `found` to null or to `&pwd`.
        unsafe {
            let mut pwd: libc::passwd = std::mem::zeroed();
            let mut found: *mut libc::passwd = std::ptr::null_mut();
            let r = libc::getpwnam_r(
                c.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr(),
                buf.len(),
                &mut found,
            );
            if r != 0 || found.is_null() {
                return Err(unknown());
            }
            Ok(pwd.pw_uid)
        }
    } else {
        // SAFETY: as above, with getgrnam_r and a group record.
        unsafe {
            let mut grp: libc::group = std::mem::zeroed();
            let mut found: *mut libc::group = std::ptr::null_mut();
            let r = libc::getgrnam_r(
                c.as_ptr(),
                &mut grp,
                buf.as_mut_ptr(),
                buf.len(),
                &mut found,
            );
            if r != 0 || found.is_null() {
                return Err(unknown());
            }
            Ok(grp.gr_gid)
        }
    }
}

#[cfg(test)]
mod resolve_tests {
    use super::*;

    #[test]
    fn names_and_numbers_resolve() {
        assert_eq!(resolve_user("root").unwrap(), 0);
        assert_eq!(resolve_group("root").unwrap(), 0);
        assert_eq!(resolve_user("4242").unwrap(), 4242);
        assert!(resolve_user("no-such-user-phalanx").is_err());
        assert!(resolve_group("no\0such").is_err());
    }
}
