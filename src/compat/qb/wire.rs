//! libqb IPC framing: the connection handshake and the request / response
//! headers, as the C library lays them out on this host (native byte order,
//! every header field 8-byte aligned). Pure functions, no IO: any byte string
//! decodes to a value or an [`IpcError`], never a panic.
//!
//! Layouts (x86-64 / any LP64 Linux; offsets checked against the C headers):
//!
//! ```text
//! request header   id i32 @0, size i32 @8                       (16 bytes)
//! response header  id i32 @0, size i32 @8, error i32 @16        (24 bytes)
//! connection request   request header (id -1) + max_msg_size u32 @16   (24)
//! connection response  response header (id -1) + connection_type i32 @24
//!                      + max_msg_size u32 @28 + connection u64 @32
//!                      + request[4096] @40 + response[4096] + event[4096]  (12328)
//! ```

use thiserror::Error;

/// Bytes of a request header (`struct qb_ipc_request_header`).
pub const REQUEST_HEADER_LEN: usize = 16;
/// Bytes of a response header (`struct qb_ipc_response_header`).
pub const RESPONSE_HEADER_LEN: usize = 24;
/// Header id of the connection request and response (`QB_IPC_MSG_AUTHENTICATE`).
pub const MSG_AUTHENTICATE: i32 = -1;
/// Bytes of the connection request (`struct qb_ipc_connection_request`).
pub const CONNECTION_REQUEST_LEN: usize = 24;
/// `PATH_MAX` of the name fields in the connection response.
pub const PATH_MAX: usize = 4096;
/// Bytes of the connection response (`struct qb_ipc_connection_response`).
pub const CONNECTION_RESPONSE_LEN: usize = 40 + 3 * PATH_MAX;
/// `QB_IPC_SOCKET`: the connection type we announce (three unix sockets).
pub const IPC_TYPE_SOCKET: i32 = 0;

/// A malformed message from a client. The connection that sent it is answered
/// with an error or dropped; nothing else changes.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum IpcError {
    /// Fewer bytes than the fixed part of the message.
    #[error("message of {len} bytes is shorter than the {need} its kind needs")]
    Truncated {
        /// Bytes received.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
    /// The header's size field disagrees with the bytes received.
    #[error("header says {declared} bytes, received {actual}")]
    SizeMismatch {
        /// The header's size.
        declared: i64,
        /// Bytes received.
        actual: usize,
    },
    /// Larger than the connection's maximum message size.
    #[error("message of {size} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// Bytes received.
        size: usize,
        /// The maximum.
        max: usize,
    },
    /// The connection request did not carry `QB_IPC_MSG_AUTHENTICATE`.
    #[error("connection request with header id {0}")]
    NotAuthenticate(i32),
    /// A request id the service does not know (or a negative one).
    #[error("unknown request id {0}")]
    UnknownRequest(i32),
    /// A field out of range (see the message).
    #[error("bad field: {0}")]
    BadField(&'static str),
}

/// A request as framed by libqb: its id (the service's function number) and
/// the whole message, header included, so that offsets match the C structs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// The function number (`MESSAGE_REQ_CPG_JOIN`, ...).
    pub id: i32,
    /// The whole message, header included.
    pub bytes: &'a [u8],
}

impl<'a> Request<'a> {
    /// The `u32` at `offset`, or `Truncated`.
    pub fn u32_at(&self, offset: usize) -> Result<u32, IpcError> {
        read_u32(self.bytes, offset)
    }

    /// The `u64` at `offset`, or `Truncated`.
    pub fn u64_at(&self, offset: usize) -> Result<u64, IpcError> {
        let b = self.slice(offset, 8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_ne_bytes(a))
    }

    /// `len` bytes at `offset`, or `Truncated`.
    pub fn slice(&self, offset: usize, len: usize) -> Result<&'a [u8], IpcError> {
        let end = offset.checked_add(len).ok_or(IpcError::Truncated {
            len: self.bytes.len(),
            need: usize::MAX,
        })?;
        self.bytes.get(offset..end).ok_or(IpcError::Truncated {
            len: self.bytes.len(),
            need: end,
        })
    }

    /// Fails with `Truncated` unless the message holds at least `need` bytes.
    pub fn require(&self, need: usize) -> Result<(), IpcError> {
        if self.bytes.len() < need {
            return Err(IpcError::Truncated {
                len: self.bytes.len(),
                need,
            });
        }
        Ok(())
    }
}

fn read_i32(buf: &[u8], offset: usize) -> Result<i32, IpcError> {
    read_u32(buf, offset).map(|v| v as i32)
}

fn read_u32(buf: &[u8], offset: usize) -> Result<u32, IpcError> {
    let end = offset.saturating_add(4);
    let b = buf.get(offset..end).ok_or(IpcError::Truncated {
        len: buf.len(),
        need: end,
    })?;
    Ok(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

/// Decodes one request datagram: a header whose size equals the datagram's
/// length and a non-negative id (negative ids are libqb's own control
/// messages, which never travel on the request channel).
pub fn decode_request(buf: &[u8]) -> Result<Request<'_>, IpcError> {
    if buf.len() < REQUEST_HEADER_LEN {
        return Err(IpcError::Truncated {
            len: buf.len(),
            need: REQUEST_HEADER_LEN,
        });
    }
    let id = read_i32(buf, 0)?;
    let size = read_i32(buf, 8)?;
    if i64::from(size) != buf.len() as i64 {
        return Err(IpcError::SizeMismatch {
            declared: size.into(),
            actual: buf.len(),
        });
    }
    if id < 0 {
        return Err(IpcError::UnknownRequest(id));
    }
    Ok(Request { id, bytes: buf })
}

/// Decodes the connection request read from the setup socket; returns the
/// maximum message size the client asks for.
pub fn decode_connection_request(buf: &[u8]) -> Result<u32, IpcError> {
    if buf.len() < CONNECTION_REQUEST_LEN {
        return Err(IpcError::Truncated {
            len: buf.len(),
            need: CONNECTION_REQUEST_LEN,
        });
    }
    let id = read_i32(buf, 0)?;
    if id != MSG_AUTHENTICATE {
        return Err(IpcError::NotAuthenticate(id));
    }
    let size = read_i32(buf, 8)?;
    if size as i64 != CONNECTION_REQUEST_LEN as i64 {
        return Err(IpcError::SizeMismatch {
            declared: size.into(),
            actual: CONNECTION_REQUEST_LEN,
        });
    }
    read_u32(buf, 16)
}

/// What the server tells a client in the connection response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionResponse {
    /// 0, or a negative errno (the client's connect then fails with it).
    pub error: i32,
    /// Maximum message size on every channel of this connection.
    pub max_msg_size: u32,
    /// An opaque connection number (libqb uses it only for shared memory).
    pub connection: u64,
    /// What the client's `request`, `response` and `event` channels are.
    pub transport: IpcTransport,
    /// Socket: the control file the client maps (absolute path). Shared
    /// memory: the request ring's name (`<name>-header`, `<name>-data`).
    pub request: String,
    /// Socket: the base name of the connection's sockets (`<base>-request`,
    /// ...). Shared memory: the response ring's name.
    pub response: String,
    /// Shared memory: the event ring's name (unused by sockets).
    pub event: String,
}

/// libqb's connection types (`enum qb_ipc_type`) this server announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum IpcTransport {
    /// `QB_IPC_SOCKET` (0): datagram sockets per channel; the client's poll fd
    /// is its event socket.
    Socket,
    /// `QB_IPC_SHM` (1): shared-memory rings in `/dev/shm`, notifications as
    /// single bytes on the setup stream socket, which is then the client's
    /// poll fd — what Corosync announces, and what lets Pacemaker check the
    /// daemon's uid with `SO_PEERCRED` on that fd.
    #[default]
    Shm,
}

impl IpcTransport {
    /// The `connection_type` value.
    pub fn wire_value(self) -> u32 {
        match self {
            IpcTransport::Socket => 0,
            IpcTransport::Shm => 1,
        }
    }
}

/// Encodes the connection response (always [`CONNECTION_RESPONSE_LEN`] bytes;
/// names longer than `PATH_MAX - 1` are refused).
pub fn encode_connection_response(r: &ConnectionResponse) -> Result<Vec<u8>, IpcError> {
    let mut out = response(MSG_AUTHENTICATE, r.error, CONNECTION_RESPONSE_LEN);
    if r.error == 0 {
        put_u32(&mut out, 24, r.transport.wire_value());
        put_u32(&mut out, 28, r.max_msg_size);
        out[32..40].copy_from_slice(&r.connection.to_ne_bytes());
        for (i, name) in [&r.request, &r.response, &r.event].into_iter().enumerate() {
            let b = name.as_bytes();
            if b.len() >= PATH_MAX || b.contains(&0) {
                return Err(IpcError::BadField("socket or file name"));
            }
            let at = 40 + i * PATH_MAX;
            out[at..at + b.len()].copy_from_slice(b);
        }
    }
    Ok(out)
}

/// A zeroed message of `len` bytes (at least a response header) with the
/// response header filled in.
pub fn response(id: i32, error: i32, len: usize) -> Vec<u8> {
    let len = len.max(RESPONSE_HEADER_LEN);
    let mut out = vec![0u8; len];
    put_u32(&mut out, 0, id as u32);
    put_u32(&mut out, 8, len as u32);
    put_u32(&mut out, 16, error as u32);
    out
}

/// Writes `v` at `offset` (native order). The caller sized the buffer.
pub fn put_u32(out: &mut [u8], offset: usize, v: u32) {
    out[offset..offset + 4].copy_from_slice(&v.to_ne_bytes());
}

/// Writes `v` at `offset` (native order). The caller sized the buffer.
pub fn put_u64(out: &mut [u8], offset: usize, v: u64) {
    out[offset..offset + 8].copy_from_slice(&v.to_ne_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(id: i32, size: i32, extra: usize) -> Vec<u8> {
        let mut b = vec![0u8; REQUEST_HEADER_LEN + extra];
        b[0..4].copy_from_slice(&id.to_ne_bytes());
        b[8..12].copy_from_slice(&size.to_ne_bytes());
        b
    }

    #[test]
    fn request_with_matching_size_decodes() {
        let b = header(3, 24, 8);
        let r = decode_request(&b).unwrap();
        assert_eq!((r.id, r.bytes.len()), (3, 24));
    }

    #[test]
    fn short_datagram_is_truncated() {
        assert_eq!(
            decode_request(&[0u8; 15]),
            Err(IpcError::Truncated { len: 15, need: 16 })
        );
    }

    #[test]
    fn size_field_must_match_datagram() {
        let b = header(0, 100, 0);
        assert_eq!(
            decode_request(&b),
            Err(IpcError::SizeMismatch {
                declared: 100,
                actual: 16
            })
        );
        let b = header(0, -16, 0);
        assert!(matches!(
            decode_request(&b),
            Err(IpcError::SizeMismatch { .. })
        ));
    }

    #[test]
    fn negative_ids_are_refused() {
        let b = header(-3, 16, 0);
        assert_eq!(decode_request(&b), Err(IpcError::UnknownRequest(-3)));
    }

    #[test]
    fn connection_request_carries_max_size() {
        let mut b = header(MSG_AUTHENTICATE, 24, 8);
        b[16..20].copy_from_slice(&(1u32 << 20).to_ne_bytes());
        assert_eq!(decode_connection_request(&b), Ok(1 << 20));
        let mut wrong = b.clone();
        wrong[0..4].copy_from_slice(&0i32.to_ne_bytes());
        assert_eq!(
            decode_connection_request(&wrong),
            Err(IpcError::NotAuthenticate(0))
        );
        assert!(decode_connection_request(&b[..20]).is_err());
    }

    #[test]
    fn connection_response_layout() {
        let r = ConnectionResponse {
            error: 0,
            max_msg_size: 65536,
            connection: 7,
            transport: IpcTransport::Socket,
            request: "/dev/shm/x/qb-control-cpg".into(),
            response: "/dev/shm/x/qb-cpg".into(),
            event: String::new(),
        };
        let b = encode_connection_response(&r).unwrap();
        assert_eq!(b.len(), 12328);
        assert_eq!(read_i32(&b, 0), Ok(-1));
        assert_eq!(read_i32(&b, 8), Ok(12328));
        assert_eq!(read_i32(&b, 16), Ok(0));
        assert_eq!(read_i32(&b, 24), Ok(IPC_TYPE_SOCKET));
        assert_eq!(read_u32(&b, 28), Ok(65536));
        assert_eq!(&b[40..40 + r.request.len()], r.request.as_bytes());
        assert_eq!(b[40 + r.request.len()], 0);
        let at = 40 + PATH_MAX;
        assert_eq!(&b[at..at + r.response.len()], r.response.as_bytes());
        let refused = ConnectionResponse {
            error: -13,
            ..r.clone()
        };
        let b = encode_connection_response(&refused).unwrap();
        assert_eq!(read_i32(&b, 16), Ok(-13));
        assert_eq!(read_u32(&b, 28), Ok(0));
        let shm = ConnectionResponse {
            transport: IpcTransport::Shm,
            event: "/dev/shm/x/qb-event-cpg".into(),
            ..r.clone()
        };
        let b = encode_connection_response(&shm).unwrap();
        assert_eq!(read_i32(&b, 24), Ok(1), "QB_IPC_SHM");
        let at = 40 + 2 * PATH_MAX;
        assert_eq!(&b[at..at + shm.event.len()], shm.event.as_bytes());
        let too_long = ConnectionResponse {
            request: "x".repeat(PATH_MAX),
            ..r
        };
        assert!(encode_connection_response(&too_long).is_err());
    }

    #[test]
    fn request_field_reads_are_bounded() {
        let b = header(0, 16, 0);
        let r = decode_request(&b).unwrap();
        assert!(r.u32_at(14).is_err());
        assert!(r.u64_at(usize::MAX - 2).is_err());
        assert!(r.slice(10, usize::MAX).is_err());
        assert_eq!(r.u32_at(8), Ok(16));
    }
}
