//! The CPG wire codec: what CPG puts inside totem messages.
//!
//! Every message starts with `version u8 (=1) | kind u8`, little-endian integers,
//! group names as `len u8 (1..=128) | bytes`:
//!
//! ```text
//! JOIN / LEAVE / PROCDOWN  local u32 | seq u64 | name
//! MCAST                    local u32 | name | payload (the rest)
//! JOINLIST                 ring.rep u32 | ring.seq u64 | incarnation u64 |
//!                          n u32 | n × (local u32 | name) |
//!                          d u32 | d × (local u32 | reason u8 | name)
//! ```
//!
//! The sender node is totem's. The decoder is total: any byte string gives a
//! [`Message`] or a [`DecodeError`], never a panic, and never allocates more than
//! the input justifies.

use crate::error::DecodeError;
use crate::types::{GroupName, MAX_GROUP_NAME, Reason};
use bytes::{Buf, Bytes};
use phalanx_totem::RingId;

/// Wire version written and accepted.
pub const VERSION: u8 = 1;
/// Largest header before an MCAST payload (prefix, version, kind, local, name).
pub const MAX_HEADER: usize = 1 + 2 + 4 + 1 + MAX_GROUP_NAME;

const KIND_JOIN: u8 = 0;
const KIND_LEAVE: u8 = 1;
const KIND_PROCDOWN: u8 = 2;
const KIND_MCAST: u8 = 3;
const KIND_JOINLIST: u8 = 4;

/// Which membership request a control message carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Add the member.
    Join,
    /// Remove the member (it asked).
    Leave,
    /// Remove the member (its handle went away).
    ProcDown,
}

/// One node's announcement of its own members during the state exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinList {
    /// The ring whose exchange this belongs to (other rings' lists are ignored).
    pub ring: RingId,
    /// The sender's incarnation ([`crate::CpgConfig::incarnation`]).
    pub incarnation: u64,
    /// The sender's members: (group, local id), ascending.
    pub members: Vec<(GroupName, u32)>,
    /// Members the sender removed by its own messages since its last completed
    /// exchange, with the reason, so the others report the right reason.
    pub departures: Vec<(GroupName, u32, Reason)>,
}

/// A decoded CPG message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// JOIN, LEAVE or PROCDOWN of one member.
    Control {
        /// Which.
        kind: Control,
        /// The member's local id on the sender node.
        local: u32,
        /// The sender's control sequence number (names the resulting view).
        seq: u64,
        /// The group.
        group: GroupName,
    },
    /// A group message.
    Mcast {
        /// The sending member's local id.
        local: u32,
        /// The group.
        group: GroupName,
        /// The payload (a slice of the received buffer, no copy).
        payload: Bytes,
    },
    /// A state-exchange announcement.
    JoinList(JoinList),
}

/// `name` must be 1..=128 bytes (callers hold a checked [`GroupName`] or its bytes).
fn put_name(out: &mut Vec<u8>, name: &[u8]) {
    out.push(name.len() as u8);
    out.extend_from_slice(name);
}

fn start(prefix: Option<u8>, kind: u8, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity + 3);
    if let Some(p) = prefix {
        out.push(p);
    }
    out.push(VERSION);
    out.push(kind);
    out
}

/// Encodes a JOIN / LEAVE / PROCDOWN.
pub fn encode_control(
    prefix: Option<u8>,
    kind: Control,
    local: u32,
    seq: u64,
    group: &[u8],
) -> Vec<u8> {
    let k = match kind {
        Control::Join => KIND_JOIN,
        Control::Leave => KIND_LEAVE,
        Control::ProcDown => KIND_PROCDOWN,
    };
    let mut out = start(prefix, k, 13 + group.len());
    out.extend_from_slice(&local.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    put_name(&mut out, group);
    out
}

/// Encodes an MCAST: the payload is copied once, into the returned buffer.
pub fn encode_mcast(prefix: Option<u8>, local: u32, group: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = start(prefix, KIND_MCAST, 5 + group.len() + payload.len());
    out.extend_from_slice(&local.to_le_bytes());
    put_name(&mut out, group);
    out.extend_from_slice(payload);
    out
}

/// [`encode_mcast`] appended to `out`: the same bytes, written where the
/// caller keeps them (a handle carves many messages out of one buffer).
pub fn encode_mcast_into(
    prefix: Option<u8>,
    local: u32,
    group: &[u8],
    payload: &[u8],
    out: &mut bytes::BytesMut,
) {
    out.reserve(3 + 5 + group.len() + payload.len());
    if let Some(p) = prefix {
        out.extend_from_slice(&[p]);
    }
    out.extend_from_slice(&[VERSION, KIND_MCAST]);
    out.extend_from_slice(&local.to_le_bytes());
    out.extend_from_slice(&[group.len() as u8]);
    out.extend_from_slice(group);
    out.extend_from_slice(payload);
}

/// The group name inside a message made by [`encode_mcast`] with the same
/// `prefix` (`None` if `msg` is not such a message).
pub fn mcast_group(prefix: Option<u8>, msg: &[u8]) -> Option<&[u8]> {
    let p = usize::from(prefix.is_some());
    if msg.get(p..p + 2)? != [VERSION, KIND_MCAST] {
        return None;
    }
    let len = usize::from(*msg.get(p + 6)?);
    msg.get(p + 7..p + 7 + len)
}

/// Encodes a JOINLIST.
pub fn encode_joinlist(prefix: Option<u8>, list: &JoinList) -> Vec<u8> {
    let mut out = start(prefix, KIND_JOINLIST, 28 + list.members.len() * 16);
    out.extend_from_slice(&list.ring.rep.to_le_bytes());
    out.extend_from_slice(&list.ring.seq.to_le_bytes());
    out.extend_from_slice(&list.incarnation.to_le_bytes());
    out.extend_from_slice(&(list.members.len() as u32).to_le_bytes());
    for (g, local) in &list.members {
        out.extend_from_slice(&local.to_le_bytes());
        put_name(&mut out, g.as_bytes());
    }
    out.extend_from_slice(&(list.departures.len() as u32).to_le_bytes());
    for (g, local, reason) in &list.departures {
        out.extend_from_slice(&local.to_le_bytes());
        out.push(*reason as u8);
        put_name(&mut out, g.as_bytes());
    }
    out
}

/// Encodes any message (what [`decode`] returns encodes back to the same bytes).
pub fn encode(prefix: Option<u8>, msg: &Message) -> Vec<u8> {
    match msg {
        Message::Control {
            kind,
            local,
            seq,
            group,
        } => encode_control(prefix, *kind, *local, *seq, group.as_bytes()),
        Message::Mcast {
            local,
            group,
            payload,
        } => encode_mcast(prefix, *local, group.as_bytes(), payload),
        Message::JoinList(list) => encode_joinlist(prefix, list),
    }
}

/// A cursor over a received buffer: every read checks the length first.
struct Reader {
    buf: Bytes,
}

impl Reader {
    fn need(&self, n: usize) -> Result<(), DecodeError> {
        if self.buf.remaining() < n {
            Err(DecodeError::Truncated)
        } else {
            Ok(())
        }
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        self.need(1)?;
        Ok(self.buf.get_u8())
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        self.need(4)?;
        Ok(self.buf.get_u32_le())
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        self.need(8)?;
        Ok(self.buf.get_u64_le())
    }
    fn name(&mut self) -> Result<GroupName, DecodeError> {
        let len = self.u8()? as usize;
        if len == 0 || len > MAX_GROUP_NAME {
            return Err(DecodeError::BadName(len));
        }
        self.need(len)?;
        Ok(GroupName::from_checked(self.buf.split_to(len)))
    }
    fn end(&self) -> Result<(), DecodeError> {
        if self.buf.has_remaining() {
            Err(DecodeError::Trailing)
        } else {
            Ok(())
        }
    }
}

/// Decodes one message (the wire prefix, if any, already stripped). Slices of
/// `buf` are kept, not copied.
pub fn decode(buf: Bytes) -> Result<Message, DecodeError> {
    let mut r = Reader { buf };
    let version = r.u8()?;
    if version != VERSION {
        return Err(DecodeError::BadVersion(version));
    }
    let kind = r.u8()?;
    let msg = match kind {
        KIND_JOIN | KIND_LEAVE | KIND_PROCDOWN => {
            let local = r.u32()?;
            let seq = r.u64()?;
            let group = r.name()?;
            let kind = match kind {
                KIND_JOIN => Control::Join,
                KIND_LEAVE => Control::Leave,
                _ => Control::ProcDown,
            };
            Message::Control {
                kind,
                local,
                seq,
                group,
            }
        }
        KIND_MCAST => {
            let local = r.u32()?;
            let group = r.name()?;
            let payload = std::mem::take(&mut r.buf);
            Message::Mcast {
                local,
                group,
                payload,
            }
        }
        KIND_JOINLIST => {
            let rep = r.u32()?;
            let seq = r.u64()?;
            let incarnation = r.u64()?;
            let n = r.u32()? as usize;
            // Each entry takes at least 6 bytes: never reserve more than that allows.
            let mut members = Vec::with_capacity(n.min(r.buf.remaining() / 6));
            for _ in 0..n {
                let local = r.u32()?;
                members.push((r.name()?, local));
            }
            let d = r.u32()? as usize;
            let mut departures = Vec::with_capacity(d.min(r.buf.remaining() / 7));
            for _ in 0..d {
                let local = r.u32()?;
                let reason = r.u8()?;
                let reason = Reason::from_u8(reason).ok_or(DecodeError::BadReason(reason))?;
                departures.push((r.name()?, local, reason));
            }
            Message::JoinList(JoinList {
                ring: RingId { seq, rep },
                incarnation,
                members,
                departures,
            })
        }
        k => return Err(DecodeError::BadKind(k)),
    };
    r.end()?;
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(s: &str) -> GroupName {
        GroupName::new(s).unwrap()
    }

    fn strip(prefix: Option<u8>, v: Vec<u8>) -> Bytes {
        let mut b = Bytes::from(v);
        if prefix.is_some() {
            b.advance(1);
        }
        b
    }

    #[test]
    fn encoding_into_a_shared_buffer_writes_the_same_bytes() {
        let mut buf = bytes::BytesMut::with_capacity(16);
        for prefix in [None, Some(1)] {
            for (local, group, payload) in [
                (3u32, &b"x"[..], &b"payload"[..]),
                (u32::MAX, &[b'g'; MAX_GROUP_NAME][..], &[][..]),
            ] {
                encode_mcast_into(prefix, local, group, payload, &mut buf);
                let carved = buf.split().freeze();
                assert_eq!(carved[..], encode_mcast(prefix, local, group, payload)[..]);
                assert_eq!(mcast_group(prefix, &carved), Some(group));
            }
        }
    }

    #[test]
    fn round_trips() {
        for prefix in [None, Some(1)] {
            let c = encode_control(prefix, Control::Leave, 7, 99, b"grp");
            assert_eq!(
                decode(strip(prefix, c)).unwrap(),
                Message::Control {
                    kind: Control::Leave,
                    local: 7,
                    seq: 99,
                    group: g("grp")
                }
            );
            let m = encode_mcast(prefix, 3, b"x", b"payload");
            assert_eq!(
                decode(strip(prefix, m)).unwrap(),
                Message::Mcast {
                    local: 3,
                    group: g("x"),
                    payload: Bytes::from_static(b"payload")
                }
            );
            let list = JoinList {
                ring: RingId { seq: 5, rep: 2 },
                incarnation: 77,
                members: vec![(g("a"), 1), (g("b"), 2)],
                departures: vec![(g("a"), 9, Reason::ProcDown)],
            };
            let j = encode_joinlist(prefix, &list);
            assert_eq!(decode(strip(prefix, j)).unwrap(), Message::JoinList(list));
        }
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(decode(Bytes::new()), Err(DecodeError::Truncated));
        assert_eq!(
            decode(Bytes::from_static(&[2, 0])),
            Err(DecodeError::BadVersion(2))
        );
        assert_eq!(
            decode(Bytes::from_static(&[1, 9])),
            Err(DecodeError::BadKind(9))
        );
        let mut c = encode_control(None, Control::Join, 1, 1, b"a");
        c.push(0);
        assert_eq!(decode(Bytes::from(c)), Err(DecodeError::Trailing));
        let c = encode_control(None, Control::Join, 1, 1, b"abc");
        assert_eq!(
            decode(Bytes::from(c[..c.len() - 1].to_vec())),
            Err(DecodeError::Truncated)
        );
        // Name length 0 and 129.
        let mut z = vec![1, KIND_MCAST, 0, 0, 0, 0, 0];
        assert_eq!(decode(Bytes::from(z.clone())), Err(DecodeError::BadName(0)));
        z[6] = 129;
        assert_eq!(decode(Bytes::from(z)), Err(DecodeError::BadName(129)));
        // A JOINLIST claiming 4 billion members in a few bytes.
        let mut j = vec![1, KIND_JOINLIST];
        j.extend_from_slice(&[0; 20]);
        j.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(Bytes::from(j)), Err(DecodeError::Truncated));
    }

    #[test]
    fn every_prefix_of_a_valid_message_is_an_error_not_a_panic() {
        let list = JoinList {
            ring: RingId { seq: 5, rep: 2 },
            incarnation: 1,
            members: vec![(g("abc"), 1)],
            departures: vec![(g("abc"), 2, Reason::Leave)],
        };
        let j = encode_joinlist(None, &list);
        for n in 0..j.len() {
            assert!(decode(Bytes::from(j[..n].to_vec())).is_err());
        }
    }
}
