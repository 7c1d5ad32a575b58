//! Votequorum's own messages, multicast by the Stack in agreed order.
//!
//! Layout: magic `"VQ"`, version 1, type, then fixed little-endian fields. The
//! decoder is total (fuzz target `quorum_wire`) and `decode(encode(m)) == m`.

use crate::NodeId;
use crate::codec::{Reader, Writer};
use crate::error::DecodeError;
use crate::limits::MAX_NODES;
use phalanx_totem::RingId;

const MAGIC: [u8; 2] = *b"VQ";
const VERSION: u8 = 1;

/// Flag bits announced in [`NodeInfo::flags`].
pub mod flags {
    /// The node still waits for all nodes (wait_for_all not yet satisfied).
    pub const WFA_WAITING: u16 = 1;
    /// The node was quorate in its previous configuration.
    pub const QUORATE: u16 = 2;
    /// The node announced a clean leave.
    pub const LEAVING: u16 = 4;
    /// The node has a quorum device registered.
    pub const DEVICE: u16 = 8;
    /// Every bit a decoder accepts.
    pub const ALL: u16 = WFA_WAITING | QUORATE | LEAVING | DEVICE;
}

/// State announced by every member at every regular configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    /// The ring this announcement belongs to (stale ones are ignored).
    pub ring: RingId,
    /// The sender's votes.
    pub votes: u32,
    /// The sender's expected votes.
    pub expected: u32,
    /// [`flags`] bits.
    pub flags: u16,
    /// Members of the sender's previous regular configuration (for the
    /// `auto_tie_breaker` node-list rule), ascending.
    pub prev_members: Vec<NodeId>,
}

/// A runtime change, applied by every member at delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reconfigure {
    /// Set the cluster's expected votes.
    SetExpected(u32),
    /// Set a node's votes.
    SetVotes {
        /// The node.
        node: NodeId,
        /// Its new votes.
        votes: u32,
    },
    /// Stop waiting for all nodes.
    CancelWaitForAll,
}

/// A votequorum message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// State exchange.
    NodeInfo(NodeInfo),
    /// Runtime change.
    Reconfigure(Reconfigure),
    /// The sender's quorum device casts (or stops casting) its vote for `ring`.
    DeviceVote {
        /// The ring the vote was granted for.
        ring: RingId,
        /// Whether the device casts its vote.
        cast: bool,
    },
    /// The sender's last-man-standing window expired on `ring`.
    LmsExpired {
        /// The ring the timer was armed on.
        ring: RingId,
    },
    /// The sender leaves cleanly (for `allow_downscale`).
    Leaving,
}

fn ring(w: &mut Writer, r: RingId) {
    w.u64(r.seq).u32(r.rep);
}

fn read_ring(r: &mut Reader<'_>) -> Result<RingId, DecodeError> {
    Ok(RingId {
        seq: r.u64()?,
        rep: r.u32()?,
    })
}

/// Encodes a message.
pub fn encode(m: &Message) -> Vec<u8> {
    let mut w = Writer::default();
    w.0.extend_from_slice(&MAGIC);
    w.u8(VERSION);
    match m {
        Message::NodeInfo(n) => {
            w.u8(1);
            ring(&mut w, n.ring);
            w.u32(n.votes)
                .u32(n.expected)
                .u16(n.flags)
                .ids(&n.prev_members);
        }
        Message::Reconfigure(Reconfigure::SetExpected(e)) => {
            w.u8(2).u8(1).u32(*e);
        }
        Message::Reconfigure(Reconfigure::SetVotes { node, votes }) => {
            w.u8(2).u8(2).u32(*node).u32(*votes);
        }
        Message::Reconfigure(Reconfigure::CancelWaitForAll) => {
            w.u8(2).u8(3);
        }
        Message::DeviceVote { ring: r, cast } => {
            w.u8(3);
            ring(&mut w, *r);
            w.u8(u8::from(*cast));
        }
        Message::LmsExpired { ring: r } => {
            w.u8(4);
            ring(&mut w, *r);
        }
        Message::Leaving => {
            w.u8(5);
        }
    }
    w.0
}

/// Decodes a message; any byte string yields a message or an error.
pub fn decode(b: &[u8]) -> Result<Message, DecodeError> {
    let mut r = Reader(b);
    if r.fixed::<2>()? != MAGIC || r.u8()? != VERSION {
        return Err(DecodeError::BadHeader);
    }
    let m = match r.u8()? {
        1 => {
            let ring = read_ring(&mut r)?;
            let votes = r.u32()?;
            let expected = r.u32()?;
            let flags = r.u16()?;
            if flags & !flags::ALL != 0 {
                return Err(DecodeError::Malformed);
            }
            let prev_members = r.ids(MAX_NODES)?;
            Message::NodeInfo(NodeInfo {
                ring,
                votes,
                expected,
                flags,
                prev_members,
            })
        }
        2 => Message::Reconfigure(match r.u8()? {
            1 => Reconfigure::SetExpected(r.u32()?),
            2 => Reconfigure::SetVotes {
                node: r.u32()?,
                votes: r.u32()?,
            },
            3 => Reconfigure::CancelWaitForAll,
            t => return Err(DecodeError::BadType(t)),
        }),
        3 => Message::DeviceVote {
            ring: read_ring(&mut r)?,
            cast: r.bool()?,
        },
        4 => Message::LmsExpired {
            ring: read_ring(&mut r)?,
        },
        5 => Message::Leaving,
        t => return Err(DecodeError::BadType(t)),
    };
    r.end()?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let ring = RingId { seq: 9, rep: 2 };
        let msgs = [
            Message::NodeInfo(NodeInfo {
                ring,
                votes: 1,
                expected: 5,
                flags: flags::WFA_WAITING | flags::DEVICE,
                prev_members: vec![1, 2, 7],
            }),
            Message::Reconfigure(Reconfigure::SetExpected(3)),
            Message::Reconfigure(Reconfigure::SetVotes { node: 4, votes: 2 }),
            Message::Reconfigure(Reconfigure::CancelWaitForAll),
            Message::DeviceVote { ring, cast: true },
            Message::LmsExpired { ring },
            Message::Leaving,
        ];
        for m in msgs {
            let b = encode(&m);
            assert_eq!(decode(&b), Ok(m.clone()));
            for cut in 0..b.len() {
                assert!(decode(&b[..cut]).is_err(), "{m:?} cut at {cut}");
            }
            let mut long = b.clone();
            long.push(0);
            assert_eq!(decode(&long), Err(DecodeError::Malformed));
        }
    }

    #[test]
    fn rejects_unsorted_ids_and_unknown_flags() {
        let mut b = encode(&Message::NodeInfo(NodeInfo {
            ring: RingId::default(),
            votes: 1,
            expected: 1,
            flags: 0,
            prev_members: vec![1, 2],
        }));
        let n = b.len();
        b[n - 8..n - 4].copy_from_slice(&5u32.to_le_bytes());
        assert_eq!(decode(&b), Err(DecodeError::Malformed));
        let mut f = encode(&Message::NodeInfo(NodeInfo {
            ring: RingId::default(),
            votes: 1,
            expected: 1,
            flags: 0,
            prev_members: vec![],
        }));
        let at = 2 + 1 + 1 + 12 + 8;
        f[at] = 0x80;
        assert_eq!(decode(&f), Err(DecodeError::Malformed));
    }
}
