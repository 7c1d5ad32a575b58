//! Fragmentation: every service message travels as one or more frames of at
//! most a configured size, so a whole-CIB sync of megabytes never needs a
//! totem message larger than that and interleaves with other services.
//!
//! ```text
//! frame: 0xC1 | flags u8 (bit 0 first, bit 1 last) | message id u32 | payload
//! ```
//!
//! Totem delivers one sender's frames in the order sent, so reassembly keeps
//! one partial message per sender. A configuration change discards every
//! partial message on every member alike (a member that joined has not seen
//! the first frames), so a message cut by a configuration change is dropped
//! everywhere; its later frames arrive as orphans and are counted.

use std::collections::BTreeMap;

use phalanx_totem::NodeId;
use thiserror::Error;

/// First byte of every frame.
pub const FRAME_MAGIC: u8 = 0xC1;
/// Bytes of frame header.
pub const FRAME_HEADER: usize = 6;
const FIRST: u8 = 1;
const LAST: u8 = 2;

/// Why a frame was not taken.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// Shorter than the header.
    #[error("frame of {0} bytes is shorter than its header")]
    Short(usize),
    /// Wrong first byte.
    #[error("bad frame magic {0:#04x}")]
    Magic(u8),
    /// Unknown flag bits.
    #[error("bad frame flags {0:#04x}")]
    Flags(u8),
    /// A continuation without the frames before it (cut by a configuration
    /// change, or out of order).
    #[error("orphan frame of message {id} from node {sender}")]
    Orphan {
        /// The sender.
        sender: NodeId,
        /// Its message id.
        id: u32,
    },
    /// The reassembled message would exceed the limit.
    #[error("message {id} from node {sender} exceeds {max} bytes")]
    TooLarge {
        /// The sender.
        sender: NodeId,
        /// Its message id.
        id: u32,
        /// The limit.
        max: usize,
    },
}

/// Splits `payload` into frames of at most `frame_size` bytes (header
/// included; at least one payload byte per frame).
pub fn split(id: u32, payload: &[u8], frame_size: usize) -> Vec<Vec<u8>> {
    let chunk = frame_size.saturating_sub(FRAME_HEADER).max(1);
    let n = payload.len().div_ceil(chunk).max(1);
    (0..n)
        .map(|i| {
            let part =
                &payload[(i * chunk).min(payload.len())..((i + 1) * chunk).min(payload.len())];
            let mut flags = 0;
            if i == 0 {
                flags |= FIRST;
            }
            if i + 1 == n {
                flags |= LAST;
            }
            let mut f = Vec::with_capacity(FRAME_HEADER + part.len());
            f.push(FRAME_MAGIC);
            f.push(flags);
            f.extend_from_slice(&id.to_be_bytes());
            f.extend_from_slice(part);
            f
        })
        .collect()
}

/// The message id of a frame, if its header is readable.
pub fn frame_id(frame: &[u8]) -> Option<u32> {
    frame
        .get(2..FRAME_HEADER)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

#[derive(Debug)]
struct Partial {
    id: u32,
    data: Vec<u8>,
}

/// Per-sender reassembly.
#[derive(Debug, Default)]
pub struct Reassembler {
    partial: BTreeMap<NodeId, Partial>,
    max_message: usize,
}

impl Reassembler {
    /// Reassembly of messages up to `max_message` bytes.
    pub fn new(max_message: usize) -> Self {
        Reassembler {
            partial: BTreeMap::new(),
            max_message,
        }
    }

    /// Takes one frame; a complete message comes back with its id.
    pub fn push(
        &mut self,
        sender: NodeId,
        frame: &[u8],
    ) -> Result<Option<(u32, Vec<u8>)>, FrameError> {
        if frame.len() < FRAME_HEADER {
            return Err(FrameError::Short(frame.len()));
        }
        if frame[0] != FRAME_MAGIC {
            return Err(FrameError::Magic(frame[0]));
        }
        let flags = frame[1];
        if flags & !(FIRST | LAST) != 0 {
            return Err(FrameError::Flags(flags));
        }
        let id = frame_id(frame).unwrap_or_default();
        let body = &frame[FRAME_HEADER..];
        if flags & FIRST != 0 {
            // A new message from this sender replaces any partial one (whose
            // remaining frames were cut off).
            self.partial.remove(&sender);
            if body.len() > self.max_message {
                return Err(self.too_large(sender, id));
            }
            if flags & LAST != 0 {
                return Ok(Some((id, body.to_vec())));
            }
            self.partial.insert(
                sender,
                Partial {
                    id,
                    data: body.to_vec(),
                },
            );
            return Ok(None);
        }
        let Some(p) = self.partial.get_mut(&sender).filter(|p| p.id == id) else {
            return Err(FrameError::Orphan { sender, id });
        };
        if p.data.len() + body.len() > self.max_message {
            self.partial.remove(&sender);
            return Err(self.too_large(sender, id));
        }
        p.data.extend_from_slice(body);
        if flags & LAST != 0 {
            let p = self
                .partial
                .remove(&sender)
                .map(|p| p.data)
                .unwrap_or_default();
            return Ok(Some((id, p)));
        }
        Ok(None)
    }

    fn too_large(&self, sender: NodeId, id: u32) -> FrameError {
        FrameError::TooLarge {
            sender,
            id,
            max: self.max_message,
        }
    }

    /// Drops every partial message (a configuration change).
    pub fn clear(&mut self) {
        self.partial.clear();
    }

    /// Whether some message is half received.
    pub fn is_empty(&self) -> bool {
        self.partial.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_and_reassemble_interleaved_senders() {
        let a: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let b = b"short".to_vec();
        let fa = split(1, &a, 100);
        assert!(fa.len() > 10 && fa.iter().all(|f| f.len() <= 100));
        let fb = split(9, &b, 100);
        assert_eq!(fb.len(), 1);
        let mut r = Reassembler::new(4096);
        let mut done = Vec::new();
        for (i, f) in fa.iter().enumerate() {
            if let Some(m) = r.push(1, f).unwrap() {
                done.push(m);
            }
            if i == 3 {
                done.push(r.push(2, &fb[0]).unwrap().unwrap());
            }
        }
        assert_eq!(done, vec![(9, b), (1, a)]);
        assert!(r.is_empty());
        assert_eq!(split(0, &[], 100).len(), 1, "an empty message is one frame");
    }

    #[test]
    fn cut_messages_leave_orphans_and_limits_hold() {
        let a = vec![7u8; 500];
        let f = split(4, &a, 100);
        let mut r = Reassembler::new(300);
        assert_eq!(r.push(1, &f[0]), Ok(None));
        r.clear();
        assert_eq!(
            r.push(1, &f[1]),
            Err(FrameError::Orphan { sender: 1, id: 4 })
        );
        assert_eq!(r.push(1, &f[0]), Ok(None));
        for g in &f[1..3] {
            assert_eq!(r.push(1, g), Ok(None));
        }
        assert!(matches!(
            r.push(1, &f[3]),
            Err(FrameError::TooLarge { id: 4, .. })
        ));
        assert!(r.is_empty());
    }
}
