//! The service's messages, as carried (after reassembly, see
//! [`super::fragment`]) in totem's agreed order.
//!
//! ```text
//! Request: 0x01 | client u64 | call u64 | cib_command XML (ops::wire)
//! Offer:   0x02 | ring.seq u64 | ring.rep u32 | fingerprint | quorate_seq u64
//!          [| lineage version (admin_epoch, epoch, num_updates: i64 each), only
//!          when it differs from the fingerprint's version]
//! Sync:    0x03 | ring.seq u64 | ring.rep u32 | n u16 | n × fingerprint
//!               | CIB XML (compact, lossless escaping)
//! Quorum:  0x04 | ring.seq u64 | ring.rep u32 | quorate u8 (0 or 1)
//! ```
//!
//! fingerprint = admin_epoch i64 | epoch i64 | num_updates i64 | digest [16] |
//! configuration digest [16].
//!
//! Integers are big-endian. Decoding is total: any byte string gives a
//! message or a [`PayloadError`].

use phalanx_totem::RingId;
use thiserror::Error;

use crate::ops::{CibError, CibOp, OpContext, wire};
use crate::version::Version;
use crate::xml::{Element, Escaping, Style, XmlError, parse, to_string};

use super::fingerprint::{DIGEST_LEN, Digest, Fingerprint};

/// Most history entries a sync message may carry.
pub const MAX_HISTORY: usize = 1024;

const KIND_REQUEST: u8 = 1;
const KIND_OFFER: u8 = 2;
const KIND_SYNC: u8 = 3;
const KIND_QUORUM: u8 = 4;

/// A decoded service message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceMessage {
    /// A client's modifying request, to be applied by every node in order.
    Request {
        /// The originator's client handle (opaque to the others).
        client: u64,
        /// The client's call id.
        call: u64,
        /// The operation.
        op: CibOp,
        /// Who asked, and the inputs made up at the originator (time, groups).
        ctx: OpContext,
    },
    /// A node's state at the start of configuration `ring`.
    Offer {
        /// The configuration this offer belongs to.
        ring: RingId,
        /// The sender's state.
        state: Fingerprint,
        /// The newest configuration in which the sender's copy took writes
        /// with quorum (0: none; always 0 without `require_quorum`).
        quorate_seq: u64,
        /// How far the copy got in that lineage: the version of its last
        /// change there (its own version unless a sync raised it; see
        /// [`super::CibService::lineage_version`]).
        lineage: Version,
    },
    /// The winner's full CIB for configuration `ring`, and the states its copy
    /// went through (oldest first, its current state last).
    Sync {
        /// The configuration this sync belongs to.
        ring: RingId,
        /// Recent states of the winner's copy.
        history: Vec<Fingerprint>,
        /// The CIB (status included; versions to be kept).
        cib: Element,
    },
    /// The sender's votequorum verdict for configuration `ring` (sent with
    /// `require_quorum` when it changes).
    Quorum {
        /// The configuration.
        ring: RingId,
        /// Quorate or not.
        quorate: bool,
    },
}

/// Why a reassembled message did not decode.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PayloadError {
    /// No bytes at all.
    #[error("empty message")]
    Empty,
    /// An unknown message kind.
    #[error("unknown message kind {0}")]
    UnknownKind(u8),
    /// The message ends inside a fixed field.
    #[error("message truncated")]
    Truncated,
    /// A sync message claims more history than allowed.
    #[error("sync history of {0} entries exceeds {MAX_HISTORY}")]
    HistoryTooLong(usize),
    /// A flag byte other than 0 or 1.
    #[error("flag byte {0} is neither 0 nor 1")]
    BadFlag(u8),
    /// Fixed-size message with bytes after its end.
    #[error("{0} trailing bytes")]
    Trailing(usize),
    /// The XML part is not UTF-8.
    #[error("XML part is not UTF-8")]
    NotUtf8,
    /// The CIB of a sync message did not parse.
    #[error("sync CIB: {0}")]
    Xml(#[from] XmlError),
    /// The CIB of a sync message is not a `<cib>` element.
    #[error("sync carries <{0}>, not <cib>")]
    NotACib(String),
    /// The request did not decode.
    #[error("request: {0}")]
    Request(#[from] CibError),
}

impl ServiceMessage {
    /// The message as bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            ServiceMessage::Request {
                client,
                call,
                op,
                ctx,
            } => {
                out.push(KIND_REQUEST);
                out.extend_from_slice(&client.to_be_bytes());
                out.extend_from_slice(&call.to_be_bytes());
                out.extend_from_slice(wire::encode(op, ctx).as_bytes());
            }
            ServiceMessage::Offer {
                ring,
                state,
                quorate_seq,
                lineage,
            } => {
                out.push(KIND_OFFER);
                put_ring(&mut out, *ring);
                put_fingerprint(&mut out, state);
                out.extend_from_slice(&quorate_seq.to_be_bytes());
                // Only when a sync raised the version past it (rare): the usual
                // offer keeps its size.
                if *lineage != state.version {
                    for c in lineage.components() {
                        out.extend_from_slice(&c.to_be_bytes());
                    }
                }
            }
            ServiceMessage::Quorum { ring, quorate } => {
                out.push(KIND_QUORUM);
                put_ring(&mut out, *ring);
                out.push(u8::from(*quorate));
            }
            ServiceMessage::Sync { ring, history, cib } => {
                out.push(KIND_SYNC);
                put_ring(&mut out, *ring);
                let n = history.len().min(MAX_HISTORY);
                out.extend_from_slice(&(n as u16).to_be_bytes());
                for f in &history[history.len() - n..] {
                    put_fingerprint(&mut out, f);
                }
                out.extend_from_slice(to_string(cib, Style::Compact, Escaping::Xml).as_bytes());
            }
        }
        out
    }

    /// Decodes a message; never panics.
    pub fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
        let (&kind, rest) = bytes.split_first().ok_or(PayloadError::Empty)?;
        let mut r = Reader(rest);
        match kind {
            KIND_REQUEST => {
                let client = r.u64()?;
                let call = r.u64()?;
                let (op, ctx) = wire::decode(r.0)?;
                Ok(ServiceMessage::Request {
                    client,
                    call,
                    op,
                    ctx,
                })
            }
            KIND_OFFER => {
                let ring = r.ring()?;
                let state = r.fingerprint()?;
                let quorate_seq = r.u64()?;
                let lineage = if r.0.is_empty() {
                    state.version
                } else {
                    let mut c = [0i64; 3];
                    for v in &mut c {
                        *v = i64::from_be_bytes(r.array()?);
                    }
                    Version::from_components(c)
                };
                r.end()?;
                Ok(ServiceMessage::Offer {
                    ring,
                    state,
                    quorate_seq,
                    lineage,
                })
            }
            KIND_QUORUM => {
                let ring = r.ring()?;
                let quorate = match r.array::<1>()? {
                    [0] => false,
                    [1] => true,
                    [b] => return Err(PayloadError::BadFlag(b)),
                };
                r.end()?;
                Ok(ServiceMessage::Quorum { ring, quorate })
            }
            KIND_SYNC => {
                let ring = r.ring()?;
                let n = usize::from(u16::from_be_bytes(r.array()?));
                if n > MAX_HISTORY {
                    return Err(PayloadError::HistoryTooLong(n));
                }
                let history = (0..n)
                    .map(|_| r.fingerprint())
                    .collect::<Result<Vec<_>, _>>()?;
                let text = std::str::from_utf8(r.0).map_err(|_| PayloadError::NotUtf8)?;
                let cib = parse(text)?;
                if cib.name() != "cib" {
                    return Err(PayloadError::NotACib(cib.name().to_string()));
                }
                Ok(ServiceMessage::Sync { ring, history, cib })
            }
            other => Err(PayloadError::UnknownKind(other)),
        }
    }
}

fn put_ring(out: &mut Vec<u8>, ring: RingId) {
    out.extend_from_slice(&ring.seq.to_be_bytes());
    out.extend_from_slice(&ring.rep.to_be_bytes());
}

fn put_fingerprint(out: &mut Vec<u8>, f: &Fingerprint) {
    for c in f.version.components() {
        out.extend_from_slice(&c.to_be_bytes());
    }
    out.extend_from_slice(&f.digest.0);
    out.extend_from_slice(&f.config.0);
}

/// A cursor over fixed-size fields.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn array<const N: usize>(&mut self) -> Result<[u8; N], PayloadError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(PayloadError::Truncated)?;
        self.0 = rest;
        Ok(*head)
    }

    /// Nothing may follow a fixed-size message.
    fn end(&self) -> Result<(), PayloadError> {
        match self.0.len() {
            0 => Ok(()),
            n => Err(PayloadError::Trailing(n)),
        }
    }

    fn u64(&mut self) -> Result<u64, PayloadError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn ring(&mut self) -> Result<RingId, PayloadError> {
        let seq = self.u64()?;
        let rep = u32::from_be_bytes(self.array()?);
        Ok(RingId { seq, rep })
    }

    fn fingerprint(&mut self) -> Result<Fingerprint, PayloadError> {
        let mut c = [0i64; 3];
        for v in &mut c {
            *v = i64::from_be_bytes(self.array()?);
        }
        let digest = Digest(self.array::<DIGEST_LEN>()?);
        let config = Digest(self.array::<DIGEST_LEN>()?);
        Ok(Fingerprint {
            version: Version::from_components(c),
            digest,
            config,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{CallOptions, Scope, empty_cib};

    #[test]
    fn every_kind_round_trips() {
        let cib = empty_cib(3);
        let state = Fingerprint::of(&cib);
        let ring = RingId { seq: 12, rep: 7 };
        let messages = [
            ServiceMessage::Request {
                client: u64::MAX,
                call: 5,
                op: CibOp::Modify {
                    scope: Scope::section("resources"),
                    input: Element::new("primitive").with_attr("id", "a\tb"),
                    options: CallOptions {
                        can_create: true,
                        ..Default::default()
                    },
                },
                ctx: OpContext {
                    user: Some("alice".into()),
                    now: Some("Sun Dec  6 05:00:00 2026".into()),
                    ..Default::default()
                },
            },
            ServiceMessage::Offer {
                ring,
                state,
                quorate_seq: 9,
                lineage: Version::new(0, 7, 2),
            },
            ServiceMessage::Offer {
                ring,
                state,
                quorate_seq: 9,
                lineage: state.version,
            },
            ServiceMessage::Quorum {
                ring,
                quorate: true,
            },
            ServiceMessage::Quorum {
                ring,
                quorate: false,
            },
            ServiceMessage::Sync {
                ring,
                history: vec![state, Fingerprint::default()],
                cib,
            },
        ];
        for m in messages {
            assert_eq!(ServiceMessage::decode(&m.encode()), Ok(m));
        }
    }

    #[test]
    fn truncations_are_errors() {
        let m = ServiceMessage::Offer {
            ring: RingId { seq: 1, rep: 1 },
            state: Fingerprint::default(),
            quorate_seq: 0,
            lineage: Version::default(),
        }
        .encode();
        let mut marker = ServiceMessage::Quorum {
            ring: RingId { seq: 1, rep: 1 },
            quorate: true,
        }
        .encode();
        if let Some(flag) = marker.last_mut() {
            *flag = 2;
        }
        assert_eq!(
            ServiceMessage::decode(&marker),
            Err(PayloadError::BadFlag(2))
        );
        for n in 0..m.len() {
            assert!(ServiceMessage::decode(&m[..n]).is_err(), "{n}");
        }
        // An offer's optional lineage version is all or nothing.
        let mut long = m.clone();
        long.push(0);
        assert!(ServiceMessage::decode(&long).is_err());
        long.extend_from_slice(&[0; 24]);
        assert_eq!(
            ServiceMessage::decode(&long),
            Err(PayloadError::Trailing(1))
        );
        let mut sync = vec![KIND_SYNC];
        sync.extend_from_slice(&[0; 12]);
        sync.extend_from_slice(&u16::MAX.to_be_bytes());
        assert_eq!(
            ServiceMessage::decode(&sync),
            Err(PayloadError::HistoryTooLong(usize::from(u16::MAX)))
        );
    }
}
