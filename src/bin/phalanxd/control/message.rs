//! The messages a controlled node multicasts, and the running hash of the order
//! it delivers them in.
//!
//! Every message starts with a 21-byte header, little endian: origin node (4),
//! incarnation (4), sequence number (8), kind (1: 0 = generated load, 1 = text),
//! and a CRC32C of the header's first 17 bytes xor the body's (4). A receiver can
//! so name each message (origin, incarnation, seq) and tell whether it arrived
//! intact, whatever its size.

use phalanx::totem::NodeId;

/// Header length.
pub const HEADER: usize = 21;

const KIND_LOAD: u8 = 0;
const KIND_TEXT: u8 = 1;

/// What a message carries after its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body<'a> {
    /// A generated payload of this many bytes.
    Load(usize),
    /// Text given by the controller.
    Text(&'a [u8]),
}

/// A message from `origin` (`incarnation`) with sequence number `seq`.
pub fn encode(origin: NodeId, incarnation: u32, seq: u64, body: Body<'_>) -> Vec<u8> {
    let (kind, len) = match body {
        Body::Load(n) => (KIND_LOAD, n),
        Body::Text(t) => (KIND_TEXT, t.len()),
    };
    let mut d = Vec::with_capacity(HEADER + len);
    d.extend_from_slice(&origin.to_le_bytes());
    d.extend_from_slice(&incarnation.to_le_bytes());
    d.extend_from_slice(&seq.to_le_bytes());
    d.push(kind);
    d.extend_from_slice(&[0; 4]);
    match body {
        // A pattern that differs per message, so a mixed-up body fails the CRC.
        Body::Load(n) => d.extend((0..n).map(|i| (seq as usize).wrapping_add(i) as u8)),
        Body::Text(t) => d.extend_from_slice(t),
    }
    let crc = checksum(&d);
    d[17..HEADER].copy_from_slice(&crc.to_le_bytes());
    d
}

fn checksum(d: &[u8]) -> u32 {
    crc32c::crc32c(&d[..17]) ^ crc32c::crc32c(&d[HEADER..])
}

/// A delivered message, as far as its header tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// The incarnation of the sending process.
    pub incarnation: u32,
    /// The sender's sequence number.
    pub seq: u64,
    /// The text, for a text message.
    pub text: Option<&'a [u8]>,
    /// The header names the node totem says sent it, and the CRC matches.
    pub intact: bool,
}

/// Reads the header of a message totem delivered from `from`; `None` when it is
/// too short to have one.
pub fn decode(data: &[u8], from: NodeId) -> Option<Decoded<'_>> {
    if data.len() < HEADER {
        return None;
    }
    let u32_at = |i: usize| u32::from_le_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&data[8..16]);
    let kind = data[16];
    let intact =
        u32_at(0) == from && matches!(kind, KIND_LOAD | KIND_TEXT) && checksum(data) == u32_at(17);
    Some(Decoded {
        incarnation: u32_at(4),
        seq: u64::from_le_bytes(seq),
        text: (kind == KIND_TEXT).then(|| &data[HEADER..]),
        intact,
    })
}

/// The deliveries since the latest regular configuration and a hash chained over
/// them (sender and bytes, in order): two members of one ring that report the same
/// count and hash delivered the same messages in the same order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderHash {
    /// Deliveries counted.
    pub count: u64,
    /// The chained hash (FNV-1a, 64 bit).
    pub hash: u64,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

impl Default for OrderHash {
    fn default() -> Self {
        OrderHash {
            count: 0,
            hash: FNV_OFFSET,
        }
    }
}

impl OrderHash {
    /// Chains one delivery.
    pub fn add(&mut self, from: NodeId, data: &[u8]) {
        let mut h = self.hash;
        for &b in from
            .to_le_bytes()
            .iter()
            .chain(&(data.len() as u64).to_le_bytes())
        {
            h = (h ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        }
        for &b in data {
            h = (h ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        }
        self.hash = h;
        self.count += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let m = encode(3, 1, 77, Body::Load(100));
        let d = decode(&m, 3).unwrap();
        assert_eq!(
            (d.incarnation, d.seq, d.text, d.intact),
            (1, 77, None, true)
        );
        assert!(!decode(&m, 2).unwrap().intact, "another sender");
        let mut bad = m.clone();
        bad[HEADER + 5] ^= 1;
        assert!(!decode(&bad, 3).unwrap().intact, "damaged body");
        let t = encode(2, 0, 5, Body::Text(b"hi there"));
        let d = decode(&t, 2).unwrap();
        assert_eq!((d.text, d.intact), (Some(&b"hi there"[..]), true));
        assert!(decode(&t[..HEADER - 1], 2).is_none());
    }

    #[test]
    fn the_order_hash_depends_on_order_and_sender() {
        let mut a = OrderHash::default();
        let mut b = OrderHash::default();
        a.add(1, b"x");
        a.add(2, b"y");
        b.add(2, b"y");
        b.add(1, b"x");
        assert_ne!(a, b);
        let mut c = OrderHash::default();
        c.add(2, b"x");
        c.add(2, b"y");
        assert_ne!(a, c);
    }
}
