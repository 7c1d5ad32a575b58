//! The wire form of [`PeerMessage`], for the Stack to carry over CPG.
//!
//! Layout: magic `"FN"`, version 2, a type byte, then fixed little-endian fields;
//! strings are a `u16` length and UTF-8 bytes (at most [`MAX_NAME_LEN`], or
//! [`MAX_REASON_LEN`] for an exit reason); a history is a `u16` count (at most
//! [`HARD_MAX_HISTORY`]) of entries. Version 2 added the target's incarnation
//! (an optional ring id: flag byte, then `seq` u64 and `rep` u32) to started
//! operations and history entries. Types 4 and 5 (`Execute`, `Executed`: an
//! `on_target` action run by the target's fencer) came later within version 2:
//! a fencer that predates them rejects them as an unknown type and changes
//! nothing. Type 6 (`Present`, one byte 0 or 1) came later still, the same
//! way. Type 7 (`Present` with the sender's first ring: the byte, then an
//! optional ring id as above) came last; type 6 decodes as a `Present` that
//! does not say it, and is still what one without it encodes to. The decoder
//! is total — any byte string gives a message or an error, never a panic —
//! and `decode(&encode(m)) == Ok(m)`.

use super::history::{Delegate, HARD_MAX_HISTORY, HistoryEntry, OpId, OpState};
use super::io::{CallId, CallOutcome, MAX_NAME_LEN, PeerMessage};
use crate::Action;
use phalanx_totem::{RingId, Time};
use thiserror::Error;

const MAGIC: [u8; 2] = *b"FN";
const VERSION: u8 = 2;
const T_STARTED: u8 = 1;
const T_RESULT: u8 = 2;
const T_HISTORY: u8 = 3;
const T_EXECUTE: u8 = 4;
const T_EXECUTED: u8 = 5;
const T_PRESENT: u8 = 6;
const T_PRESENT_RING: u8 = 7;

/// Longest exit reason carried.
pub const MAX_REASON_LEN: usize = 1024;

/// Why bytes are not a fencer message. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum WireError {
    /// Shorter than its fields say.
    #[error("truncated fencer message")]
    Truncated,
    /// Not `"FN"`.
    #[error("not a fencer message")]
    BadMagic,
    /// A version we do not speak.
    #[error("unsupported fencer message version {0}")]
    BadVersion(u8),
    /// An unknown message type, action, state or delegate tag.
    #[error("bad {what} tag {tag}")]
    BadTag {
        /// Which field.
        what: &'static str,
        /// Its value.
        tag: u8,
    },
    /// A string that is not UTF-8, empty where it must not be, or too long.
    #[error("bad string field {0}")]
    BadString(&'static str),
    /// More history entries than allowed.
    #[error("too many history entries")]
    TooMany,
    /// Bytes left after the message.
    #[error("trailing bytes after a fencer message")]
    Trailing,
}

/// Encodes a message (messages built by the fencer always fit the limits;
/// over-long strings from elsewhere are cut at a character boundary).
pub fn encode(msg: &PeerMessage) -> Vec<u8> {
    let mut w = Vec::with_capacity(64);
    w.extend_from_slice(&MAGIC);
    w.push(VERSION);
    match msg {
        PeerMessage::Started {
            id,
            target,
            action,
            client,
            total_timeout_s,
            target_joined,
        } => {
            w.push(T_STARTED);
            put_id(&mut w, id);
            put_str(&mut w, target, MAX_NAME_LEN);
            w.push(action_tag(*action));
            put_str(&mut w, client, MAX_NAME_LEN);
            w.extend_from_slice(&total_timeout_s.to_le_bytes());
            put_ring(&mut w, *target_joined);
        }
        PeerMessage::Result(e) => {
            w.push(T_RESULT);
            put_entry(&mut w, e);
        }
        PeerMessage::History(entries) => {
            w.push(T_HISTORY);
            let n = entries.len().min(HARD_MAX_HISTORY);
            w.extend_from_slice(&(n as u16).to_le_bytes());
            for e in &entries[..n] {
                put_entry(&mut w, e);
            }
        }
        PeerMessage::Execute {
            id,
            call,
            device,
            target,
            action,
            timeout_ms,
        } => {
            w.push(T_EXECUTE);
            put_id(&mut w, id);
            w.extend_from_slice(&call.0.to_le_bytes());
            put_str(&mut w, device, MAX_NAME_LEN);
            put_str(&mut w, target, MAX_NAME_LEN);
            w.push(action_tag(*action));
            w.extend_from_slice(&timeout_ms.to_le_bytes());
        }
        PeerMessage::Present {
            unclean,
            first_ring,
        } => {
            w.push(if first_ring.is_some() {
                T_PRESENT_RING
            } else {
                T_PRESENT
            });
            w.push(u8::from(*unclean));
            if first_ring.is_some() {
                put_ring(&mut w, *first_ring);
            }
        }
        PeerMessage::Executed { id, call, outcome } => {
            w.push(T_EXECUTED);
            put_id(&mut w, id);
            w.extend_from_slice(&call.0.to_le_bytes());
            match outcome {
                CallOutcome::Success { output } => {
                    w.push(0);
                    put_str(&mut w, output, MAX_REASON_LEN);
                }
                CallOutcome::Failed { exit_code, reason } => {
                    w.push(1);
                    match exit_code {
                        None => w.push(0),
                        Some(c) => {
                            w.push(1);
                            w.extend_from_slice(&c.to_le_bytes());
                        }
                    }
                    put_str(&mut w, reason, MAX_REASON_LEN);
                }
                CallOutcome::TimedOut => w.push(2),
            }
        }
    }
    w
}

/// Decodes a message.
pub fn decode(bytes: &[u8]) -> Result<PeerMessage, WireError> {
    let mut r = Reader { b: bytes };
    if r.take(2)? != MAGIC {
        return Err(WireError::BadMagic);
    }
    let v = r.u8()?;
    if v != VERSION {
        return Err(WireError::BadVersion(v));
    }
    let msg = match r.u8()? {
        T_STARTED => PeerMessage::Started {
            id: r.id()?,
            target: r.string("target", MAX_NAME_LEN, false)?,
            action: r.action()?,
            client: r.string("client", MAX_NAME_LEN, true)?,
            total_timeout_s: r.u64()?,
            target_joined: r.ring()?,
        },
        T_RESULT => PeerMessage::Result(r.entry()?),
        T_HISTORY => {
            let n = usize::from(r.u16()?);
            if n > HARD_MAX_HISTORY {
                return Err(WireError::TooMany);
            }
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(r.entry()?);
            }
            PeerMessage::History(v)
        }
        T_EXECUTE => PeerMessage::Execute {
            id: r.id()?,
            call: CallId(r.u64()?),
            device: r.string("device", MAX_NAME_LEN, false)?,
            target: r.string("target", MAX_NAME_LEN, false)?,
            action: r.action()?,
            timeout_ms: r.u64()?,
        },
        T_EXECUTED => PeerMessage::Executed {
            id: r.id()?,
            call: CallId(r.u64()?),
            outcome: r.outcome()?,
        },
        t @ (T_PRESENT | T_PRESENT_RING) => PeerMessage::Present {
            unclean: match r.u8()? {
                0 => false,
                1 => true,
                tag => {
                    return Err(WireError::BadTag {
                        what: "unclean",
                        tag,
                    });
                }
            },
            first_ring: if t == T_PRESENT_RING { r.ring()? } else { None },
        },
        tag => {
            return Err(WireError::BadTag {
                what: "message",
                tag,
            });
        }
    };
    if !r.b.is_empty() {
        return Err(WireError::Trailing);
    }
    Ok(msg)
}

fn action_tag(a: Action) -> u8 {
    Action::ALL.iter().position(|x| *x == a).unwrap_or(0) as u8
}

fn put_id(w: &mut Vec<u8>, id: &OpId) {
    w.extend_from_slice(&id.origin.to_le_bytes());
    w.extend_from_slice(&id.incarnation.to_le_bytes());
    w.extend_from_slice(&id.seq.to_le_bytes());
}

fn put_str(w: &mut Vec<u8>, s: &str, max: usize) {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    w.extend_from_slice(&(end as u16).to_le_bytes());
    w.extend_from_slice(&s.as_bytes()[..end]);
}

fn put_ring(w: &mut Vec<u8>, ring: Option<RingId>) {
    match ring {
        None => w.push(0),
        Some(r) => {
            w.push(1);
            w.extend_from_slice(&r.seq.to_le_bytes());
            w.extend_from_slice(&r.rep.to_le_bytes());
        }
    }
}

fn put_entry(w: &mut Vec<u8>, e: &HistoryEntry) {
    put_id(w, &e.id);
    put_str(w, &e.target, MAX_NAME_LEN);
    w.push(action_tag(e.action));
    w.extend_from_slice(&e.origin.to_le_bytes());
    match e.delegate {
        None => w.push(0),
        Some(Delegate::Node(n)) => {
            w.push(1);
            w.extend_from_slice(&n.to_le_bytes());
        }
        Some(Delegate::Manual) => w.push(2),
    }
    put_str(w, &e.client, MAX_NAME_LEN);
    w.push(match e.state {
        OpState::Pending => 0,
        OpState::Done => 1,
        OpState::Failed => 2,
    });
    match e.completed {
        None => w.push(0),
        Some(t) => {
            w.push(1);
            w.extend_from_slice(&t.as_nanos().to_le_bytes());
        }
    }
    match &e.exit_reason {
        None => w.push(0),
        Some(r) => {
            w.push(1);
            put_str(w, r, MAX_REASON_LEN);
        }
    }
    put_ring(w, e.target_joined);
}

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.b.len() < n {
            return Err(WireError::Truncated);
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, WireError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }

    fn u64(&mut self) -> Result<u64, WireError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }

    fn id(&mut self) -> Result<OpId, WireError> {
        Ok(OpId {
            origin: self.u32()?,
            incarnation: self.u64()?,
            seq: self.u64()?,
        })
    }

    fn string(
        &mut self,
        what: &'static str,
        max: usize,
        empty_ok: bool,
    ) -> Result<String, WireError> {
        let n = usize::from(self.u16()?);
        if n > max || (n == 0 && !empty_ok) {
            return Err(WireError::BadString(what));
        }
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| WireError::BadString(what))
    }

    fn action(&mut self) -> Result<Action, WireError> {
        let tag = self.u8()?;
        Action::ALL
            .get(usize::from(tag))
            .copied()
            .ok_or(WireError::BadTag {
                what: "action",
                tag,
            })
    }

    fn flag(&mut self, what: &'static str) -> Result<bool, WireError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            tag => Err(WireError::BadTag { what, tag }),
        }
    }

    fn ring(&mut self) -> Result<Option<RingId>, WireError> {
        Ok(if self.flag("target joined")? {
            Some(RingId {
                seq: self.u64()?,
                rep: self.u32()?,
            })
        } else {
            None
        })
    }

    fn outcome(&mut self) -> Result<CallOutcome, WireError> {
        Ok(match self.u8()? {
            0 => CallOutcome::Success {
                output: self.string("output", MAX_REASON_LEN, true)?,
            },
            1 => CallOutcome::Failed {
                exit_code: if self.flag("exit code")? {
                    Some(self.u32()? as i32)
                } else {
                    None
                },
                reason: self.string("reason", MAX_REASON_LEN, true)?,
            },
            2 => CallOutcome::TimedOut,
            tag => {
                return Err(WireError::BadTag {
                    what: "outcome",
                    tag,
                });
            }
        })
    }

    fn entry(&mut self) -> Result<HistoryEntry, WireError> {
        let id = self.id()?;
        let target = self.string("target", MAX_NAME_LEN, false)?;
        let action = self.action()?;
        let origin = self.u32()?;
        let delegate = match self.u8()? {
            0 => None,
            1 => Some(Delegate::Node(self.u32()?)),
            2 => Some(Delegate::Manual),
            tag => {
                return Err(WireError::BadTag {
                    what: "delegate",
                    tag,
                });
            }
        };
        let client = self.string("client", MAX_NAME_LEN, true)?;
        let state = match self.u8()? {
            0 => OpState::Pending,
            1 => OpState::Done,
            2 => OpState::Failed,
            tag => return Err(WireError::BadTag { what: "state", tag }),
        };
        let completed = if self.flag("completed")? {
            Some(Time::from_nanos(self.u64()?))
        } else {
            None
        };
        let exit_reason = if self.flag("exit reason")? {
            Some(self.string("exit reason", MAX_REASON_LEN, true)?)
        } else {
            None
        };
        Ok(HistoryEntry {
            id,
            target,
            action,
            origin,
            delegate,
            client,
            state,
            completed,
            exit_reason,
            target_joined: self.ring()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::rng::SeededRng;

    fn entry(seq: u64, state: OpState) -> HistoryEntry {
        HistoryEntry {
            id: OpId {
                origin: 3,
                incarnation: 9,
                seq,
            },
            target: "nöde-2".into(),
            action: Action::Reboot,
            origin: 3,
            delegate: Some(Delegate::Node(4)),
            client: String::new(),
            state,
            completed: (state != OpState::Pending).then(|| Time::from_nanos(12_345)),
            exit_reason: (state == OpState::Failed).then(|| "device pdu off: timed out".into()),
            target_joined: (seq % 2 == 1).then_some(RingId {
                seq: 1 << 40 | seq,
                rep: 7,
            }),
        }
    }

    fn samples() -> Vec<PeerMessage> {
        vec![
            PeerMessage::Started {
                id: OpId {
                    origin: 1,
                    incarnation: 2,
                    seq: 3,
                },
                target: "node3".into(),
                action: Action::Off,
                client: "stonith_admin.123".into(),
                total_timeout_s: 4807,
                target_joined: Some(RingId { seq: 96, rep: 2 }),
            },
            PeerMessage::Started {
                id: OpId {
                    origin: 1,
                    incarnation: 2,
                    seq: 4,
                },
                target: "node9".into(),
                action: Action::Reboot,
                client: "phalanx-fence".into(),
                total_timeout_s: 0,
                target_joined: None,
            },
            PeerMessage::Result(entry(1, OpState::Done)),
            PeerMessage::Result(HistoryEntry {
                delegate: Some(Delegate::Manual),
                ..entry(2, OpState::Done)
            }),
            PeerMessage::Result(HistoryEntry {
                delegate: None,
                ..entry(3, OpState::Failed)
            }),
            PeerMessage::History(vec![]),
            PeerMessage::Present {
                unclean: false,
                first_ring: None,
            },
            PeerMessage::Present {
                unclean: true,
                first_ring: Some(RingId { seq: 12, rep: 3 }),
            },
            PeerMessage::Execute {
                id: OpId {
                    origin: 2,
                    incarnation: 5,
                    seq: 8,
                },
                call: CallId(17),
                device: "scsi".into(),
                target: "node3".into(),
                action: Action::On,
                timeout_ms: 72_000,
            },
            PeerMessage::Executed {
                id: OpId {
                    origin: 2,
                    incarnation: 5,
                    seq: 8,
                },
                call: CallId(17),
                outcome: CallOutcome::Success {
                    output: "Success: Powered ON\n".into(),
                },
            },
            PeerMessage::Executed {
                id: OpId {
                    origin: 2,
                    incarnation: 5,
                    seq: 9,
                },
                call: CallId(18),
                outcome: CallOutcome::Failed {
                    exit_code: Some(-1),
                    reason: "Failed: no key".into(),
                },
            },
            PeerMessage::Executed {
                id: OpId {
                    origin: 2,
                    incarnation: 5,
                    seq: 9,
                },
                call: CallId(19),
                outcome: CallOutcome::Failed {
                    exit_code: None,
                    reason: String::new(),
                },
            },
            PeerMessage::Executed {
                id: OpId {
                    origin: 2,
                    incarnation: 5,
                    seq: 10,
                },
                call: CallId(20),
                outcome: CallOutcome::TimedOut,
            },
            PeerMessage::History(
                (0..50)
                    .map(|i| {
                        entry(
                            i,
                            [OpState::Pending, OpState::Done, OpState::Failed][i as usize % 3],
                        )
                    })
                    .collect(),
            ),
        ]
    }

    #[test]
    fn roundtrip() {
        for m in samples() {
            assert_eq!(decode(&encode(&m)), Ok(m.clone()), "{m:?}");
        }
    }

    #[test]
    fn every_prefix_and_corruption_is_an_error_not_a_panic() {
        let mut rng = SeededRng::new(5);
        for m in samples() {
            let bytes = encode(&m);
            for cut in 0..bytes.len() {
                assert!(decode(&bytes[..cut]).is_err(), "prefix {cut} of {m:?}");
            }
            let mut long = bytes.clone();
            long.push(0);
            assert_eq!(decode(&long), Err(WireError::Trailing));
            for _ in 0..200 {
                let mut b = bytes.clone();
                let i = rng.up_to(b.len() as u64 - 1) as usize;
                b[i] ^= 1 << rng.up_to(7);
                let _ = decode(&b); // must not panic
            }
        }
        for _ in 0..2000 {
            let len = rng.up_to(64) as usize;
            let mut b: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            if b.len() >= 4 && rng.up_to(1) == 0 {
                b[..3].copy_from_slice(b"FN\x02");
            }
            let _ = decode(&b);
        }
        assert_eq!(decode(b"XX\x02\x01"), Err(WireError::BadMagic));
        assert_eq!(decode(b"FN\x01\x01"), Err(WireError::BadVersion(1)));
        assert_eq!(
            decode(b"FN\x02\x09"),
            Err(WireError::BadTag {
                what: "message",
                tag: 9
            })
        );
        assert_eq!(
            decode(b"FN\x02\x06\x02"),
            Err(WireError::BadTag {
                what: "unclean",
                tag: 2
            })
        );
        let mut many = b"FN\x02\x03".to_vec();
        many.extend_from_slice(&u16::MAX.to_le_bytes());
        assert_eq!(decode(&many), Err(WireError::TooMany));
    }

    #[test]
    fn over_long_strings_are_cut_on_encode() {
        let m = PeerMessage::Result(HistoryEntry {
            exit_reason: Some("é".repeat(MAX_REASON_LEN)),
            ..entry(1, OpState::Failed)
        });
        let PeerMessage::Result(e) = decode(&encode(&m)).expect("decodes") else {
            panic!()
        };
        let r = e.exit_reason.expect("reason");
        assert!(r.len() <= MAX_REASON_LEN && r.chars().all(|c| c == 'é'));
    }
}
