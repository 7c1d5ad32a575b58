//! Packing many application messages into one frame, and fragmenting large ones.
//!
//! A frame (the payload of one MCAST) is a sequence of chunks:
//!
//! ```text
//! chunk   flags u8 (FIRST = 1, LAST = 2) | len u32 | len bytes
//! ```
//!
//! A message that fits is one chunk with FIRST|LAST; a larger one is split over
//! consecutive frames of its sender. Because a sender's frames are delivered in its
//! sending order, reassembly needs one buffer per sender. A message is never split
//! across rings: a sender restarts a partly sent message on the next ring, and
//! receivers drop unfinished reassemblies when a regular configuration is installed,
//! so every member of a configuration delivers the same whole messages.

use crate::NodeId;
use crate::error::DecodeError;
use crate::wire::Guarantee;
use bytes::Bytes;
use std::collections::{BTreeMap, VecDeque};

const FIRST: u8 = 1;
const LAST: u8 = 2;
/// Bytes of chunk header.
pub const CHUNK_HEADER: usize = 5;

/// An application message waiting to be sent.
#[derive(Clone, Debug)]
pub(crate) struct Pending {
    /// Shared, not owned: a handle may carve many messages out of one buffer
    /// (one allocation, freed once, instead of one per message).
    pub(crate) data: Bytes,
    pub(crate) guarantee: Guarantee,
    /// Bytes already placed in frames on the current ring.
    pub(crate) offset: usize,
}

/// The send queue: whole messages, bounded in bytes.
#[derive(Clone, Debug, Default)]
pub(crate) struct SendQueue {
    pub(crate) queue: VecDeque<Pending>,
    pub(crate) bytes: usize,
}

impl SendQueue {
    pub(crate) fn push(&mut self, data: Bytes, guarantee: Guarantee) {
        self.bytes += data.len();
        self.queue.push_back(Pending {
            data,
            guarantee,
            offset: 0,
        });
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// A ring ended: a message partly placed in frames starts over on the next ring.
    pub(crate) fn restart_partial(&mut self) {
        if let Some(head) = self.queue.front_mut() {
            head.offset = 0;
        }
    }

    /// Frames needed to send everything queued (an estimate for backlog sharing).
    pub(crate) fn frames_estimate(&self, max_frame: usize) -> u32 {
        let per = max_frame.saturating_sub(CHUNK_HEADER).max(1);
        (self.bytes.div_ceil(per) as u32).max(self.queue.len().min(1) as u32)
    }

    /// Fills `out` with one frame of at most `max_frame` bytes from the head of the
    /// queue; all its messages share one guarantee. Returns that guarantee, or
    /// `None` if the queue is empty.
    pub(crate) fn pack(&mut self, max_frame: usize, out: &mut Vec<u8>) -> Option<Guarantee> {
        let guarantee = self.queue.front()?.guarantee;
        out.clear();
        while let Some(head) = self.queue.front_mut() {
            if head.guarantee != guarantee {
                break;
            }
            let room = max_frame.saturating_sub(out.len());
            if room <= CHUNK_HEADER {
                break;
            }
            let left = head.data.len() - head.offset;
            let take = left.min(room - CHUNK_HEADER);
            // Do not open a message with a tiny fragment when a fresh frame would
            // hold all of it: keeps small messages whole.
            if take < left
                && head.offset == 0
                && !out.is_empty()
                && left + CHUNK_HEADER <= max_frame
            {
                break;
            }
            let mut flags = 0;
            if head.offset == 0 {
                flags |= FIRST;
            }
            if take == left {
                flags |= LAST;
            }
            out.push(flags);
            out.extend_from_slice(&(take as u32).to_le_bytes());
            out.extend_from_slice(&head.data[head.offset..head.offset + take]);
            head.offset += take;
            if head.offset == head.data.len() {
                self.bytes -= head.data.len();
                self.queue.pop_front();
            } else {
                break;
            }
        }
        Some(guarantee)
    }
}

/// One chunk of a received frame.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Chunk<'a> {
    pub(crate) first: bool,
    pub(crate) last: bool,
    pub(crate) data: &'a [u8],
}

/// Splits a frame into chunks. Total: malformed frames give an error, and
/// then no chunk of them is taken (the whole frame is checked first).
pub(crate) fn chunks(frame: &[u8]) -> Result<Chunks<'_>, DecodeError> {
    let mut rest = frame;
    while let Some(parsed) = next_chunk(rest) {
        rest = parsed?.1;
    }
    Ok(Chunks { rest: frame })
}

/// The next chunk of `rest` and what follows it; `None` at the end.
fn next_chunk(rest: &[u8]) -> Option<Result<(Chunk<'_>, &[u8]), DecodeError>> {
    if rest.is_empty() {
        return None;
    }
    if rest.len() < CHUNK_HEADER {
        return Some(Err(DecodeError::Truncated));
    }
    let flags = rest[0];
    if flags & !(FIRST | LAST) != 0 {
        return Some(Err(DecodeError::Malformed));
    }
    let len = u32::from_le_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
    let body = &rest[CHUNK_HEADER..];
    if body.len() < len {
        return Some(Err(DecodeError::Truncated));
    }
    let chunk = Chunk {
        first: flags & FIRST != 0,
        last: flags & LAST != 0,
        data: &body[..len],
    };
    Some(Ok((chunk, &body[len..])))
}

/// The chunks of a frame [`chunks`] checked, in order (no allocation: a
/// `Vec` per frame, grown three times for a frame of small messages, was
/// ~5 % of a receiving driver's profile).
pub(crate) struct Chunks<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Chunks<'a> {
    type Item = Chunk<'a>;

    fn next(&mut self) -> Option<Chunk<'a>> {
        // Checked whole by `chunks`: every step parses.
        let (chunk, rest) = next_chunk(self.rest)?.ok()?;
        self.rest = rest;
        Some(chunk)
    }
}

/// Per-sender reassembly of fragmented messages.
#[derive(Clone, Debug, Default)]
pub(crate) struct Reassembly {
    partial: BTreeMap<NodeId, Vec<u8>>,
}

/// What one chunk produced.
pub(crate) enum Assembled {
    /// A whole message.
    Message(Bytes),
    /// Part of a message; nothing to deliver yet.
    Partial,
    /// A chunk that cannot belong to any message (counted by the caller).
    Orphan,
}

impl Reassembly {
    /// Takes the next chunk of `sender`'s messages; `frame` is the buffer the
    /// chunk's data lies in.
    pub(crate) fn push(
        &mut self,
        sender: NodeId,
        frame: &Bytes,
        chunk: &Chunk<'_>,
        max_message: usize,
    ) -> Assembled {
        if chunk.first {
            if chunk.last {
                // The common case: a whole message in one chunk, handed out as a
                // slice of the frame (no allocation or copy per message).
                return Assembled::Message(frame.slice_ref(chunk.data));
            }
            self.partial.insert(sender, chunk.data.to_vec());
            return Assembled::Partial;
        }
        let Some(buf) = self.partial.get_mut(&sender) else {
            return Assembled::Orphan;
        };
        if buf.len() + chunk.data.len() > max_message {
            self.partial.remove(&sender);
            return Assembled::Orphan;
        }
        buf.extend_from_slice(chunk.data);
        if chunk.last {
            return Assembled::Message(Bytes::from(
                self.partial.remove(&sender).unwrap_or_default(),
            ));
        }
        Assembled::Partial
    }

    /// A regular configuration was installed: unfinished messages can never finish.
    pub(crate) fn clear(&mut self) -> usize {
        let n = self.partial.len();
        self.partial.clear();
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(q: &mut SendQueue, max: usize) -> Vec<Vec<u8>> {
        let mut r = Reassembly::default();
        let mut got = Vec::new();
        let mut frame = Vec::new();
        while q.pack(max, &mut frame).is_some() {
            assert!(frame.len() <= max);
            let shared = Bytes::copy_from_slice(&frame);
            for c in chunks(&shared).unwrap() {
                if let Assembled::Message(m) = r.push(1, &shared, &c, 1 << 20) {
                    got.push(m.to_vec());
                }
            }
        }
        got
    }

    #[test]
    fn packs_small_and_fragments_large() {
        let mut q = SendQueue::default();
        let msgs: Vec<Vec<u8>> = vec![
            vec![1; 10],
            vec![2; 3000],
            vec![3; 0],
            vec![4; 700],
            vec![5; 256],
        ];
        for m in &msgs {
            q.push(m.clone().into(), Guarantee::Agreed);
        }
        assert_eq!(drain(&mut q, 512), msgs);
        assert_eq!(q.bytes, 0);
    }

    #[test]
    fn guarantees_never_share_a_frame() {
        let mut q = SendQueue::default();
        q.push(vec![1; 4].into(), Guarantee::Agreed);
        q.push(vec![2; 4].into(), Guarantee::Safe);
        let mut f = Vec::new();
        assert_eq!(q.pack(1000, &mut f), Some(Guarantee::Agreed));
        assert_eq!(chunks(&f).unwrap().count(), 1);
        assert_eq!(q.pack(1000, &mut f), Some(Guarantee::Safe));
    }

    #[test]
    fn a_frame_with_one_bad_chunk_yields_none() {
        let mut q = SendQueue::default();
        q.push(Bytes::from_static(b"first"), Guarantee::Agreed);
        q.push(Bytes::from_static(b"second"), Guarantee::Agreed);
        let mut frame = Vec::new();
        q.pack(1400, &mut frame).unwrap();
        let whole: Vec<&[u8]> = chunks(&frame).unwrap().map(|c| c.data).collect();
        assert_eq!(whole, [&b"first"[..], &b"second"[..]]);
        // The second chunk cut short, then given an unknown flag.
        let cut = &frame[..frame.len() - 1];
        assert_eq!(chunks(cut).err(), Some(DecodeError::Truncated));
        let mut flagged = frame.clone();
        flagged[CHUNK_HEADER + 5] = 0x80;
        assert_eq!(chunks(&flagged).err(), Some(DecodeError::Malformed));
        let mut short_header = frame.clone();
        short_header.extend_from_slice(&[FIRST | LAST, 0]);
        assert_eq!(chunks(&short_header).err(), Some(DecodeError::Truncated));
    }

    #[test]
    fn orphan_continuations_are_reported() {
        let mut r = Reassembly::default();
        let c = Chunk {
            first: false,
            last: true,
            data: b"x",
        };
        assert!(matches!(
            r.push(3, &Bytes::from_static(b"x"), &c, 100),
            Assembled::Orphan
        ));
    }
}
