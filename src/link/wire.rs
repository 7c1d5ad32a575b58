//! The link layer's own datagrams: ping and pong.
//!
//! They travel on the link they test, inside the same crypto envelope as totem
//! datagrams (so they are authenticated and encrypted when crypto is on), and are
//! told apart from totem datagrams by their magic: totem datagrams start with
//! `"PX"` (`0x50 0x58`), link datagrams with `"PL"` (`0x50 0x4C`). Totem datagrams
//! carry no link header at all, so the data path pays nothing for links.
//!
//! ```text
//! offset size field (little-endian)
//!      0    2 magic   "PL"
//!      2    1 version 1
//!      3    1 kind    1 = ping, 2 = pong
//!      4    1 link    link number the datagram was sent on
//!      5    3 zero
//!      8    4 sender  node id
//!     12    4 target  node id
//!     16    8 seq     the ping's sequence number (echoed by the pong)
//!     24    8 stamp   the pinger's clock in ns (echoed by the pong)
//!     32    4 crc32c  over bytes 0..32
//! ```
//!
//! Decoding is total: any byte string gives a [`LinkMsg`] or a [`LinkWireError`].

use phalanx_totem::NodeId;
use thiserror::Error;

/// The two bytes that open every link datagram.
pub const MAGIC: [u8; 2] = *b"PL";
/// Wire version written and accepted.
pub const VERSION: u8 = 1;
/// Length of every link datagram.
pub const LEN: usize = 36;

/// Whether `datagram` (already opened, when crypto is on) is a link datagram
/// rather than a totem one.
pub fn is_link_datagram(datagram: &[u8]) -> bool {
    datagram.starts_with(&MAGIC)
}

/// Ping or pong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Asks the target to answer on the same link.
    Ping,
    /// The answer, echoing the ping's `seq` and `stamp`.
    Pong,
}

/// A decoded link datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkMsg {
    /// Ping or pong.
    pub kind: Kind,
    /// Link number it was sent on.
    pub link: u8,
    /// Sending node.
    pub sender: NodeId,
    /// Node it is meant for.
    pub target: NodeId,
    /// Ping sequence number.
    pub seq: u64,
    /// The pinger's clock (ns) when it sent the ping.
    pub stamp: u64,
}

/// Why a link datagram was refused.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkWireError {
    /// Not [`LEN`] bytes long.
    #[error("link datagram of {0} bytes, expected 36")]
    Length(usize),
    /// Wrong magic or version.
    #[error("not a link datagram of version 1")]
    Version,
    /// Unknown kind byte.
    #[error("unknown link datagram kind {0}")]
    Kind(u8),
    /// Checksum mismatch.
    #[error("link datagram checksum mismatch")]
    Checksum,
    /// The three reserved bytes after the link number are not zero (the encoder
    /// writes zeros; accepting others would make two encodings of one message).
    #[error("link datagram reserved bytes are not zero")]
    Reserved,
}

impl LinkMsg {
    /// Appends the encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(match self.kind {
            Kind::Ping => 1,
            Kind::Pong => 2,
        });
        out.push(self.link);
        out.extend_from_slice(&[0; 3]);
        out.extend_from_slice(&self.sender.to_le_bytes());
        out.extend_from_slice(&self.target.to_le_bytes());
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.stamp.to_le_bytes());
        let crc = crc32c::crc32c(&out[start..]);
        out.extend_from_slice(&crc.to_le_bytes());
    }

    /// Decodes one link datagram.
    pub fn decode(b: &[u8]) -> Result<LinkMsg, LinkWireError> {
        if b.len() != LEN {
            return Err(LinkWireError::Length(b.len()));
        }
        if b[..2] != MAGIC || b[2] != VERSION {
            return Err(LinkWireError::Version);
        }
        let crc = u32::from_le_bytes([b[32], b[33], b[34], b[35]]);
        if crc32c::crc32c(&b[..32]) != crc {
            return Err(LinkWireError::Checksum);
        }
        let kind = match b[3] {
            1 => Kind::Ping,
            2 => Kind::Pong,
            k => return Err(LinkWireError::Kind(k)),
        };
        if b[5..8] != [0; 3] {
            return Err(LinkWireError::Reserved);
        }
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(a)
        };
        Ok(LinkMsg {
            kind,
            link: b[4],
            sender: u32_at(8),
            target: u32_at(12),
            seq: u64_at(16),
            stamp: u64_at(24),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `link_wire` fuzz target: a datagram with non-zero reserved
    /// bytes (and a valid checksum) decoded, and re-encoded differently.
    #[test]
    fn non_zero_reserved_bytes_are_refused() {
        let ping = LinkMsg {
            kind: Kind::Ping,
            link: 1,
            sender: 2,
            target: 3,
            seq: 4,
            stamp: 5,
        };
        let mut b = Vec::new();
        ping.encode(&mut b);
        assert_eq!(LinkMsg::decode(&b), Ok(ping));
        for at in 5..8 {
            let mut bad = b.clone();
            bad[at] = 0xF7;
            let crc = crc32c::crc32c(&bad[..32]);
            bad[32..].copy_from_slice(&crc.to_le_bytes());
            assert_eq!(
                LinkMsg::decode(&bad),
                Err(LinkWireError::Reserved),
                "byte {at}"
            );
        }
    }

    #[test]
    fn round_trip_and_total_decoder() {
        let m = LinkMsg {
            kind: Kind::Pong,
            link: 3,
            sender: 7,
            target: 9,
            seq: 42,
            stamp: 123_456_789,
        };
        let mut b = Vec::new();
        m.encode(&mut b);
        assert_eq!(b.len(), LEN);
        assert!(is_link_datagram(&b));
        assert_eq!(LinkMsg::decode(&b), Ok(m));
        // Every truncation and every single-byte corruption is refused, never a panic.
        for n in 0..b.len() {
            assert!(LinkMsg::decode(&b[..n]).is_err());
        }
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x40;
            assert!(LinkMsg::decode(&c).is_err(), "corrupted byte {i} accepted");
        }
        // Totem datagrams ("PX") are not link datagrams.
        assert!(!is_link_datagram(&[0x50, 0x58, 1, 0]));
    }
}
