//! The totem wire codec.
//!
//! Every datagram is `header | body | crc32c`, all fields fixed-width little-endian,
//! every variable part preceded by an explicit count or length:
//!
//! ```text
//! header  magic u16 = 0x5850 ("PX") | version u8 = 1 | type u8 | sender u32
//! trailer crc32c u32 over header and body
//! ```
//!
//! Decoding is total: any byte string yields a [`Datagram`] or a [`DecodeError`],
//! never a panic, and a decoded datagram re-encodes to the same bytes.

use crate::NodeId;
use crate::config::limits;
use crate::error::DecodeError;
use std::fmt;

/// Magic number opening every datagram.
pub const MAGIC: u16 = 0x5850;
/// Protocol version spoken by this codec.
pub const VERSION: u8 = 1;
/// Bytes of header before the body.
pub const HEADER_LEN: usize = 8;
/// Bytes of checksum after the body.
pub const TRAILER_LEN: usize = 4;
/// Fixed bytes of an MCAST datagram besides its payload (header, body fields,
/// trailer) when not encapsulated.
pub const MCAST_OVERHEAD: usize = HEADER_LEN + 12 + 8 + 1 + 4 + TRAILER_LEN;
/// Extra bytes an encapsulated (recovered old-ring) MCAST carries.
pub const ENCAP_OVERHEAD: usize = 12 + 8 + 4 + 1;
/// Largest frame payload that always fits one datagram, even encapsulated.
pub const MAX_FRAME_PAYLOAD: usize = limits::MAX_DATAGRAM - MCAST_OVERHEAD - ENCAP_OVERHEAD;

/// A ring identifier: the representative (lowest node id) and a sequence number
/// that grows with every ring any member has known.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RingId {
    /// Sequence number, compared first.
    pub seq: u64,
    /// Node id of the representative.
    pub rep: NodeId,
}

impl fmt::Display for RingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.rep, self.seq)
    }
}

/// The ordering token (ORF token): sequence numbers, aru, flow control and
/// retransmission requests for one ring.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Token {
    /// Ring this token belongs to.
    pub ring: RingId,
    /// The token's own counter; a receiver ignores a token it has already seen.
    pub token_seq: u64,
    /// Highest message sequence number assigned on this ring.
    pub seq: u64,
    /// All-received-up-to: every member holds every message up to here (as far as
    /// this rotation has shown).
    pub aru: u64,
    /// The node that last lowered `aru`; 0 when nobody holds it back.
    pub aru_addr: NodeId,
    /// Frames sent during the last rotation (flow control).
    pub fcc: u32,
    /// Frames waiting to be sent, summed over the ring (backlog sharing).
    pub backlog: u32,
    /// The member that last marked having recovered old-ring frames left to send
    /// (RECOVERY); 0 when none. Only that member clears the mark.
    pub retrans_owner: NodeId,
    /// Sequence numbers some member is missing.
    pub rtr: Vec<u64>,
}

/// Delivery guarantee of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Guarantee {
    /// Delivered once every earlier message on the ring has been delivered.
    Agreed,
    /// Additionally delivered only once every member holds the message.
    Safe,
}

/// A recovered old-ring message carried inside a new-ring MCAST.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encapsulated {
    /// The ring the message was first ordered on.
    pub ring: RingId,
    /// Its sequence number there.
    pub seq: u64,
    /// Its original sender.
    pub sender: NodeId,
    /// Its guarantee.
    pub guarantee: Guarantee,
}

/// An ordered data frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mcast {
    /// Ring the frame is ordered on.
    pub ring: RingId,
    /// Its sequence number on that ring.
    pub seq: u64,
    /// Delivery guarantee of the frame's messages.
    pub guarantee: Guarantee,
    /// Set when the frame carries a recovered old-ring frame instead of new data.
    pub encapsulated: Option<Encapsulated>,
    /// The packed frame (see [`crate::frame`]).
    pub payload: Vec<u8>,
}

/// A membership proposal in GATHER.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Join {
    /// Highest ring sequence the sender has known.
    pub ring_seq: u64,
    /// The sender's current (old) ring.
    pub old_ring: RingId,
    /// Nodes the sender believes alive, sorted.
    pub procs: Vec<NodeId>,
    /// Nodes the sender has declared failed, sorted.
    pub failed: Vec<NodeId>,
}

/// One member's entry in the commit token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitEntry {
    /// The member.
    pub node: NodeId,
    /// The ring it is leaving.
    pub old_ring: RingId,
    /// Its aru on that ring.
    pub aru: u64,
    /// Highest sequence it received on that ring.
    pub high_seq: u64,
    /// Highest sequence it delivered on that ring.
    pub high_delivered: u64,
    /// Whether the member has filled this entry yet.
    pub filled: bool,
}

/// The commit token that installs a new ring in two rotations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit {
    /// The new ring.
    pub ring: RingId,
    /// 1 on the first rotation (members fill entries), 2 on the second.
    pub rotation: u8,
    /// New members in ring order (ascending node id) with their old-ring state.
    pub entries: Vec<CommitEntry>,
}

/// Every message type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Ordering token.
    Token(Token),
    /// Ordered data.
    Mcast(Mcast),
    /// Membership proposal.
    Join(Join),
    /// Commit token.
    Commit(Commit),
    /// "My ring exists": probes for foreign rings to merge with.
    MergeDetect {
        /// The sender's ring.
        ring: RingId,
    },
    /// Asks the representative to stop holding the token.
    HoldCancel {
        /// The ring whose token is held.
        ring: RingId,
    },
    /// The sender leaves the cluster cleanly.
    Leave {
        /// The ring it leaves.
        ring: RingId,
    },
}

impl Message {
    fn type_code(&self) -> u8 {
        match self {
            Message::Token(_) => 1,
            Message::Mcast(_) => 2,
            Message::Join(_) => 3,
            Message::Commit(_) => 4,
            Message::MergeDetect { .. } => 5,
            Message::HoldCancel { .. } => 6,
            Message::Leave { .. } => 7,
        }
    }
}

/// A decoded datagram: who sent it and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Datagram {
    /// Node id the sender claims (checked against the node list by the core).
    pub sender: NodeId,
    /// The message.
    pub message: Message,
}

const FLAG_SAFE: u8 = 1;
const FLAG_ENCAP: u8 = 2;

/// Appends the encoding of `message` from `sender` to `out`.
pub fn encode(sender: NodeId, message: &Message, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.push(VERSION);
    out.push(message.type_code());
    put_u32(out, sender);
    match message {
        Message::Token(t) => {
            put_ring(out, t.ring);
            put_u64(out, t.token_seq);
            put_u64(out, t.seq);
            put_u64(out, t.aru);
            put_u32(out, t.aru_addr);
            put_u32(out, t.fcc);
            put_u32(out, t.backlog);
            put_u32(out, t.retrans_owner);
            put_u16(out, t.rtr.len() as u16);
            for s in &t.rtr {
                put_u64(out, *s);
            }
        }
        Message::Mcast(m) => encode_mcast_body(
            out,
            m.ring,
            m.seq,
            m.guarantee,
            m.encapsulated.as_ref(),
            &m.payload,
        ),
        Message::Join(j) => {
            put_u64(out, j.ring_seq);
            put_ring(out, j.old_ring);
            put_ids(out, &j.procs);
            put_ids(out, &j.failed);
        }
        Message::Commit(c) => {
            put_ring(out, c.ring);
            out.push(c.rotation);
            put_u16(out, c.entries.len() as u16);
            for e in &c.entries {
                put_u32(out, e.node);
                put_ring(out, e.old_ring);
                put_u64(out, e.aru);
                put_u64(out, e.high_seq);
                put_u64(out, e.high_delivered);
                out.push(e.filled as u8);
            }
        }
        Message::MergeDetect { ring } | Message::HoldCancel { ring } | Message::Leave { ring } => {
            put_ring(out, *ring)
        }
    }
    let crc = crc32c::crc32c(&out[start..]);
    put_u32(out, crc);
}

/// Encodes an MCAST without building a [`Mcast`] value (the send hot path).
pub fn encode_mcast(
    sender: NodeId,
    ring: RingId,
    seq: u64,
    guarantee: Guarantee,
    encapsulated: Option<&Encapsulated>,
    payload: &[u8],
    out: &mut Vec<u8>,
) {
    let start = out.len();
    out.reserve(MCAST_OVERHEAD + ENCAP_OVERHEAD + payload.len());
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.push(VERSION);
    out.push(2);
    put_u32(out, sender);
    encode_mcast_body(out, ring, seq, guarantee, encapsulated, payload);
    let crc = crc32c::crc32c(&out[start..]);
    put_u32(out, crc);
}

fn encode_mcast_body(
    out: &mut Vec<u8>,
    ring: RingId,
    seq: u64,
    guarantee: Guarantee,
    encapsulated: Option<&Encapsulated>,
    payload: &[u8],
) {
    put_ring(out, ring);
    put_u64(out, seq);
    let mut flags = if guarantee == Guarantee::Safe {
        FLAG_SAFE
    } else {
        0
    };
    if encapsulated.is_some() {
        flags |= FLAG_ENCAP;
    }
    out.push(flags);
    if let Some(e) = encapsulated {
        put_ring(out, e.ring);
        put_u64(out, e.seq);
        put_u32(out, e.sender);
        out.push(if e.guarantee == Guarantee::Safe {
            FLAG_SAFE
        } else {
            0
        });
    }
    put_u32(out, payload.len() as u32);
    out.extend_from_slice(payload);
}

/// Decodes one datagram. Total: never panics, whatever `bytes` holds.
pub fn decode(bytes: &[u8]) -> Result<Datagram, DecodeError> {
    if bytes.len() < HEADER_LEN + TRAILER_LEN {
        return Err(DecodeError::Truncated);
    }
    if bytes.len() > limits::MAX_DATAGRAM {
        return Err(DecodeError::TooLarge);
    }
    let (body, trailer) = bytes.split_at(bytes.len() - TRAILER_LEN);
    let mut r = Reader { buf: body };
    if r.u16()? != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    let version = r.u8()?;
    if version != VERSION {
        return Err(DecodeError::BadVersion(version));
    }
    let ty = r.u8()?;
    let sender = r.u32()?;
    let crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    if crc32c::crc32c(body) != crc {
        return Err(DecodeError::BadChecksum);
    }
    let message = match ty {
        1 => {
            let ring = r.ring()?;
            let token_seq = r.u64()?;
            let seq = r.u64()?;
            let aru = r.u64()?;
            let aru_addr = r.u32()?;
            let fcc = r.u32()?;
            let backlog = r.u32()?;
            let retrans_owner = r.u32()?;
            let n = r.u16()? as usize;
            if n > limits::MAX_RTR_ENTRIES {
                return Err(DecodeError::TooLarge);
            }
            let mut rtr = Vec::with_capacity(n);
            for _ in 0..n {
                rtr.push(r.u64()?);
            }
            Message::Token(Token {
                ring,
                token_seq,
                seq,
                aru,
                aru_addr,
                fcc,
                backlog,
                retrans_owner,
                rtr,
            })
        }
        2 => {
            let ring = r.ring()?;
            let seq = r.u64()?;
            let flags = r.u8()?;
            if flags & !(FLAG_SAFE | FLAG_ENCAP) != 0 {
                return Err(DecodeError::Malformed);
            }
            let guarantee = guarantee_of(flags);
            let encapsulated = if flags & FLAG_ENCAP != 0 {
                let ring = r.ring()?;
                let seq = r.u64()?;
                let sender = r.u32()?;
                let f = r.u8()?;
                if f & !FLAG_SAFE != 0 {
                    return Err(DecodeError::Malformed);
                }
                Some(Encapsulated {
                    ring,
                    seq,
                    sender,
                    guarantee: guarantee_of(f),
                })
            } else {
                None
            };
            let len = r.u32()? as usize;
            let payload = r.take(len)?.to_vec();
            Message::Mcast(Mcast {
                ring,
                seq,
                guarantee,
                encapsulated,
                payload,
            })
        }
        3 => {
            let ring_seq = r.u64()?;
            let old_ring = r.ring()?;
            let procs = r.ids()?;
            let failed = r.ids()?;
            Message::Join(Join {
                ring_seq,
                old_ring,
                procs,
                failed,
            })
        }
        4 => {
            let ring = r.ring()?;
            let rotation = r.u8()?;
            if rotation != 1 && rotation != 2 {
                return Err(DecodeError::Malformed);
            }
            let n = r.u16()? as usize;
            if n == 0 || n > limits::MAX_NODES {
                return Err(DecodeError::TooLarge);
            }
            let mut entries = Vec::with_capacity(n);
            for _ in 0..n {
                entries.push(CommitEntry {
                    node: r.u32()?,
                    old_ring: r.ring()?,
                    aru: r.u64()?,
                    high_seq: r.u64()?,
                    high_delivered: r.u64()?,
                    filled: r.bool()?,
                });
            }
            if !entries.windows(2).all(|w| w[0].node < w[1].node) {
                return Err(DecodeError::Malformed);
            }
            Message::Commit(Commit {
                ring,
                rotation,
                entries,
            })
        }
        5 => Message::MergeDetect { ring: r.ring()? },
        6 => Message::HoldCancel { ring: r.ring()? },
        7 => Message::Leave { ring: r.ring()? },
        other => return Err(DecodeError::BadType(other)),
    };
    if !r.buf.is_empty() {
        return Err(DecodeError::Malformed);
    }
    Ok(Datagram { sender, message })
}

fn guarantee_of(flags: u8) -> Guarantee {
    if flags & FLAG_SAFE != 0 {
        Guarantee::Safe
    } else {
        Guarantee::Agreed
    }
}

fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put_ring(out: &mut Vec<u8>, r: RingId) {
    put_u32(out, r.rep);
    put_u64(out, r.seq);
}
fn put_ids(out: &mut Vec<u8>, ids: &[NodeId]) {
    put_u16(out, ids.len() as u16);
    for id in ids {
        put_u32(out, *id);
    }
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::Malformed),
        }
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn ring(&mut self) -> Result<RingId, DecodeError> {
        let rep = self.u32()?;
        let seq = self.u64()?;
        Ok(RingId { seq, rep })
    }
    /// A sorted, duplicate-free list of non-zero node ids.
    fn ids(&mut self) -> Result<Vec<NodeId>, DecodeError> {
        let n = self.u16()? as usize;
        if n > limits::MAX_NODES {
            return Err(DecodeError::TooLarge);
        }
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            ids.push(self.u32()?);
        }
        if ids.first() == Some(&0) || !ids.windows(2).all(|w| w[0] < w[1]) {
            return Err(DecodeError::Malformed);
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(m: Message) {
        let mut buf = Vec::new();
        encode(9, &m, &mut buf);
        let d = decode(&buf).expect("decodes");
        assert_eq!(d.sender, 9);
        assert_eq!(d.message, m);
        // Every truncation and every single-bit flip is rejected, never a panic.
        for cut in 0..buf.len() {
            assert!(decode(&buf[..cut]).is_err());
        }
        for i in 0..buf.len() {
            let mut b = buf.clone();
            b[i] ^= 0x10;
            assert!(decode(&b).is_err(), "flip at {i} accepted");
        }
    }

    #[test]
    fn every_message_roundtrips() {
        let ring = RingId { rep: 1, seq: 77 };
        roundtrip(Message::Token(Token {
            ring,
            token_seq: 5,
            seq: 9,
            aru: 8,
            aru_addr: 2,
            fcc: 3,
            backlog: 4,
            retrans_owner: 3,
            rtr: vec![7, 8],
        }));
        roundtrip(Message::Mcast(Mcast {
            ring,
            seq: 3,
            guarantee: Guarantee::Safe,
            encapsulated: None,
            payload: vec![1, 2, 3],
        }));
        roundtrip(Message::Mcast(Mcast {
            ring,
            seq: 3,
            guarantee: Guarantee::Agreed,
            encapsulated: Some(Encapsulated {
                ring: RingId { rep: 2, seq: 70 },
                seq: 11,
                sender: 4,
                guarantee: Guarantee::Safe,
            }),
            payload: vec![],
        }));
        roundtrip(Message::Join(Join {
            ring_seq: 80,
            old_ring: ring,
            procs: vec![1, 2, 3],
            failed: vec![3],
        }));
        roundtrip(Message::Commit(Commit {
            ring,
            rotation: 2,
            entries: vec![
                CommitEntry {
                    node: 1,
                    old_ring: ring,
                    aru: 1,
                    high_seq: 2,
                    high_delivered: 1,
                    filled: true,
                },
                CommitEntry {
                    node: 5,
                    ..Default::default()
                },
            ],
        }));
        roundtrip(Message::MergeDetect { ring });
        roundtrip(Message::HoldCancel { ring });
        roundtrip(Message::Leave { ring });
    }

    #[test]
    fn unsorted_id_lists_are_malformed() {
        let m = Message::Join(Join {
            ring_seq: 1,
            old_ring: RingId::default(),
            procs: vec![2, 1],
            failed: vec![],
        });
        let mut buf = Vec::new();
        encode(1, &m, &mut buf);
        assert_eq!(decode(&buf), Err(DecodeError::Malformed));
    }
}
