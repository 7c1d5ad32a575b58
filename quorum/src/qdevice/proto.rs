//! The qdevice ↔ qnetd wire protocol: length-prefixed frames over TCP.
//!
//! A frame is `u32 length (LE) | body | tag`; the 32-byte HMAC tag is present once the
//! connection is authenticated (after `Auth` from the client, `Welcome` from the
//! server). A body is magic `"QN"`, version 1, type, fixed little-endian fields. The
//! decoder is total (fuzz target `quorum_wire`) and `decode(encode(m)) == m`.

use super::algo::Heuristics;
use crate::NodeId;
use crate::codec::{Reader, Writer};
use crate::config::{Algorithm, TieBreaker};
use crate::error::DecodeError;
use crate::limits::MAX_NODES;
use phalanx_totem::RingId;

use super::auth::LEN;

const MAGIC: [u8; 2] = *b"QN";
const VERSION: u8 = 1;
/// Largest frame (length field value) accepted.
pub const MAX_FRAME: usize = 16 * 1024;
/// Longest cluster name.
pub const MAX_CLUSTER_NAME: usize = 255;

/// The arbitrator's answer to a status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// You hold the vote for the ring you reported, for one lease from when you sent
    /// that status.
    Ack,
    /// You do not hold the vote; drop it now if you held it.
    Nack,
    /// Undecided (unstable membership, a hand-over in progress, restart quarantine);
    /// keep what you hold until its lease ends.
    Wait,
}

/// Why the server closes a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// Proof did not verify.
    AuthFailed,
    /// No key configured for this cluster name.
    UnknownCluster,
    /// Algorithm, tie-breaker or node list differs from the cluster's other clients.
    ConfigMismatch,
    /// Too many clients.
    TooManyClients,
    /// An unexpected message.
    Protocol,
}

/// A node's report: sent on every membership or heuristics change and as heartbeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// Increasing per client; the server's vote echoes it.
    pub seq: u64,
    /// Algorithm the cluster is configured with.
    pub algorithm: Algorithm,
    /// Tie-breaker the cluster is configured with.
    pub tie_breaker: TieBreaker,
    /// Configured node ids, ascending.
    pub config_nodes: Vec<NodeId>,
    /// The node's current ring.
    pub ring: RingId,
    /// Its members, ascending.
    pub members: Vec<NodeId>,
    /// The node's heuristics result for this membership.
    pub heuristics: Heuristics,
    /// The ring this node holds the vote for, if it holds it.
    pub holding: Option<RingId>,
}

/// A protocol message (both directions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Msg {
    /// client → server: who I am.
    Hello {
        /// Cluster name (selects the key).
        cluster: Vec<u8>,
        /// Node id.
        node: NodeId,
        /// Client nonce.
        nonce: [u8; LEN],
    },
    /// server → client: server nonce and proof of the key.
    Challenge {
        /// Server nonce.
        nonce: [u8; LEN],
        /// Server proof.
        proof: [u8; LEN],
    },
    /// client → server: client proof.
    Auth {
        /// Client proof.
        proof: [u8; LEN],
    },
    /// server → client: authenticated; lease and heartbeat to use.
    Welcome {
        /// Lease of a granted vote, in milliseconds.
        lease_ms: u32,
        /// Send a status at least this often.
        heartbeat_ms: u32,
    },
    /// client → server: membership, heuristics, what I hold.
    Status(Status),
    /// server → client: the vote.
    Vote {
        /// Echo of the status this answers.
        seq: u64,
        /// The ring the decision is for.
        ring: RingId,
        /// Ack, nack or wait.
        decision: Decision,
    },
    /// server → client: fatal error; the server closes.
    Error(ErrorCode),
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

/// Encodes a body (no length, no tag).
pub fn encode_frame_body(m: &Msg) -> Vec<u8> {
    let mut w = Writer::default();
    w.0.extend_from_slice(&MAGIC);
    w.u8(VERSION);
    match m {
        Msg::Hello {
            cluster,
            node,
            nonce,
        } => {
            w.u8(1).bytes(cluster).u32(*node);
            w.0.extend_from_slice(nonce);
        }
        Msg::Challenge { nonce, proof } => {
            w.u8(2);
            w.0.extend_from_slice(nonce);
            w.0.extend_from_slice(proof);
        }
        Msg::Auth { proof } => {
            w.u8(3);
            w.0.extend_from_slice(proof);
        }
        Msg::Welcome {
            lease_ms,
            heartbeat_ms,
        } => {
            w.u8(4).u32(*lease_ms).u32(*heartbeat_ms);
        }
        Msg::Status(s) => {
            w.u8(5).u64(s.seq);
            w.u8(match s.algorithm {
                Algorithm::Ffsplit => 1,
                Algorithm::Lms => 2,
            });
            match &s.tie_breaker {
                TieBreaker::Lowest => w.u8(1),
                TieBreaker::Highest => w.u8(2),
                TieBreaker::Nodes(l) => w.u8(3).ids(l),
            };
            w.ids(&s.config_nodes);
            ring(&mut w, s.ring);
            w.ids(&s.members);
            w.u8(match s.heuristics {
                Heuristics::Undefined => 0,
                Heuristics::Pass => 1,
                Heuristics::Fail => 2,
                Heuristics::Pending => 3,
            });
            match s.holding {
                None => {
                    w.u8(0);
                }
                Some(r) => {
                    w.u8(1);
                    ring(&mut w, r);
                }
            }
        }
        Msg::Vote {
            seq,
            ring: r,
            decision,
        } => {
            w.u8(6).u64(*seq);
            ring(&mut w, *r);
            w.u8(match decision {
                Decision::Ack => 1,
                Decision::Nack => 2,
                Decision::Wait => 3,
            });
        }
        Msg::Error(c) => {
            w.u8(7).u8(match c {
                ErrorCode::AuthFailed => 1,
                ErrorCode::UnknownCluster => 2,
                ErrorCode::ConfigMismatch => 3,
                ErrorCode::TooManyClients => 4,
                ErrorCode::Protocol => 5,
            });
        }
    }
    w.0
}

/// Decodes a body; any byte string yields a message or an error.
pub fn decode_frame_body(b: &[u8]) -> Result<Msg, DecodeError> {
    let mut r = Reader(b);
    if r.fixed::<2>()? != MAGIC || r.u8()? != VERSION {
        return Err(DecodeError::BadHeader);
    }
    let m = match r.u8()? {
        1 => {
            let cluster = r.bytes(MAX_CLUSTER_NAME)?.to_vec();
            let node = r.u32()?;
            Msg::Hello {
                cluster,
                node,
                nonce: r.fixed()?,
            }
        }
        2 => Msg::Challenge {
            nonce: r.fixed()?,
            proof: r.fixed()?,
        },
        3 => Msg::Auth { proof: r.fixed()? },
        4 => Msg::Welcome {
            lease_ms: r.u32()?,
            heartbeat_ms: r.u32()?,
        },
        5 => {
            let seq = r.u64()?;
            let algorithm = match r.u8()? {
                1 => Algorithm::Ffsplit,
                2 => Algorithm::Lms,
                t => return Err(DecodeError::BadType(t)),
            };
            let tie_breaker = match r.u8()? {
                1 => TieBreaker::Lowest,
                2 => TieBreaker::Highest,
                3 => TieBreaker::Nodes(r.ids(MAX_NODES)?),
                t => return Err(DecodeError::BadType(t)),
            };
            let config_nodes = r.ids(MAX_NODES)?;
            let ring = read_ring(&mut r)?;
            let members = r.ids(MAX_NODES)?;
            let heuristics = match r.u8()? {
                0 => Heuristics::Undefined,
                1 => Heuristics::Pass,
                2 => Heuristics::Fail,
                3 => Heuristics::Pending,
                t => return Err(DecodeError::BadType(t)),
            };
            let holding = match r.u8()? {
                0 => None,
                1 => Some(read_ring(&mut r)?),
                t => return Err(DecodeError::BadType(t)),
            };
            Msg::Status(Status {
                seq,
                algorithm,
                tie_breaker,
                config_nodes,
                ring,
                members,
                heuristics,
                holding,
            })
        }
        6 => Msg::Vote {
            seq: r.u64()?,
            ring: read_ring(&mut r)?,
            decision: match r.u8()? {
                1 => Decision::Ack,
                2 => Decision::Nack,
                3 => Decision::Wait,
                t => return Err(DecodeError::BadType(t)),
            },
        },
        7 => Msg::Error(match r.u8()? {
            1 => ErrorCode::AuthFailed,
            2 => ErrorCode::UnknownCluster,
            3 => ErrorCode::ConfigMismatch,
            4 => ErrorCode::TooManyClients,
            5 => ErrorCode::Protocol,
            t => return Err(DecodeError::BadType(t)),
        }),
        t => return Err(DecodeError::BadType(t)),
    };
    r.end()?;
    Ok(m)
}

/// Builds a frame: length, body, optional tag.
pub fn frame(body: &[u8], tag: Option<&[u8; LEN]>) -> Vec<u8> {
    let len = body.len() + tag.map_or(0, |t| t.len());
    let mut out = Vec::with_capacity(4 + len);
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(body);
    if let Some(t) = tag {
        out.extend_from_slice(t);
    }
    out
}

/// Splits a byte stream into frames, with a bounded buffer.
#[derive(Debug, Default)]
pub struct Deframer {
    buf: Vec<u8>,
}

impl Deframer {
    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete frame's contents (body, plus tag when authenticated), or an
    /// error for an oversized length (the connection must be closed).
    pub fn next_frame(&mut self) -> Option<Result<Vec<u8>, DecodeError>> {
        if self.buf.len() < 4 {
            return None;
        }
        let len = u32::from_le_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
        if len > MAX_FRAME {
            return Some(Err(DecodeError::TooLarge));
        }
        if self.buf.len() < 4 + len {
            return None;
        }
        let f = self.buf[4..4 + len].to_vec();
        self.buf.drain(..4 + len);
        Some(Ok(f))
    }
}

/// Splits an authenticated frame into body and tag.
pub fn split_tag(f: &[u8]) -> Result<(&[u8], [u8; LEN]), DecodeError> {
    if f.len() < LEN {
        return Err(DecodeError::Truncated);
    }
    let (b, t) = f.split_at(f.len() - LEN);
    let mut tag = [0u8; LEN];
    tag.copy_from_slice(t);
    Ok((b, tag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let ring = RingId { seq: 4, rep: 1 };
        let msgs = vec![
            Msg::Hello {
                cluster: b"alpha".to_vec(),
                node: 3,
                nonce: [7; LEN],
            },
            Msg::Challenge {
                nonce: [1; LEN],
                proof: [2; LEN],
            },
            Msg::Auth { proof: [3; LEN] },
            Msg::Welcome {
                lease_ms: 4000,
                heartbeat_ms: 1000,
            },
            Msg::Status(Status {
                seq: 9,
                algorithm: Algorithm::Lms,
                tie_breaker: TieBreaker::Nodes(vec![2, 5]),
                config_nodes: vec![1, 2, 3, 4],
                ring,
                members: vec![1, 2],
                heuristics: Heuristics::Fail,
                holding: Some(ring),
            }),
            Msg::Vote {
                seq: 9,
                ring,
                decision: Decision::Wait,
            },
            Msg::Error(ErrorCode::ConfigMismatch),
        ];
        for m in msgs {
            let b = encode_frame_body(&m);
            assert_eq!(decode_frame_body(&b), Ok(m.clone()));
            for cut in 0..b.len() {
                assert!(decode_frame_body(&b[..cut]).is_err());
            }
        }
    }

    #[test]
    fn deframer_bounds() {
        let mut d = Deframer::default();
        let f = frame(b"abc", None);
        d.push(&f[..2]);
        assert!(d.next_frame().is_none());
        d.push(&f[2..]);
        assert_eq!(d.next_frame(), Some(Ok(b"abc".to_vec())));
        d.push(&u32::MAX.to_le_bytes());
        assert_eq!(d.next_frame(), Some(Err(DecodeError::TooLarge)));
    }
}
