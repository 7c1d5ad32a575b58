//! Messages of one ring, indexed by sequence number, kept until every member holds
//! them (for retransmission and recovery).

use crate::NodeId;
use crate::wire::{Encapsulated, Guarantee};
use bytes::Bytes;
use std::collections::VecDeque;

/// One ordered frame as stored.
#[derive(Clone, Debug)]
pub(crate) struct Stored {
    pub(crate) sender: NodeId,
    pub(crate) guarantee: Guarantee,
    /// Set for recovered old-ring frames carried on a new ring.
    pub(crate) encapsulated: Option<Encapsulated>,
    /// Shared with the messages delivered from it: a delivery is a slice of the
    /// frame, not a copy (see `Delivery::data`).
    pub(crate) payload: Bytes,
}

/// Frames by sequence number from `base` up. Sequence numbers start at 1.
#[derive(Clone, Debug)]
pub(crate) struct SeqStore {
    /// Sequence number of `slots[0]`; everything below it has been released.
    base: u64,
    slots: VecDeque<Option<Stored>>,
    /// Highest sequence number ever inserted.
    high: u64,
}

impl Default for SeqStore {
    fn default() -> Self {
        SeqStore {
            base: 1,
            slots: VecDeque::new(),
            high: 0,
        }
    }
}

impl SeqStore {
    /// Inserts a frame; returns false if it was already held or released.
    pub(crate) fn insert(&mut self, seq: u64, frame: Stored) -> bool {
        if seq < self.base {
            return false;
        }
        let idx = (seq - self.base) as usize;
        if idx >= self.slots.len() {
            self.slots.resize(idx + 1, None);
        }
        let slot = &mut self.slots[idx];
        if slot.is_some() {
            return false;
        }
        *slot = Some(frame);
        self.high = self.high.max(seq);
        true
    }

    pub(crate) fn get(&self, seq: u64) -> Option<&Stored> {
        if seq < self.base {
            return None;
        }
        self.slots
            .get((seq - self.base) as usize)
            .and_then(|s| s.as_ref())
    }

    /// Whether `seq` is held, or was released (and so was held by everyone).
    pub(crate) fn has(&self, seq: u64) -> bool {
        seq < self.base || self.get(seq).is_some()
    }

    /// Highest contiguous sequence number held (the aru), scanning on from `from`.
    pub(crate) fn contiguous_from(&self, from: u64) -> u64 {
        let mut s = from.max(self.base - 1);
        while self.has(s + 1) && s < self.high {
            s += 1;
        }
        s
    }

    /// Drops frames up to and including `seq`.
    pub(crate) fn release_through(&mut self, seq: u64) {
        while self.base <= seq {
            if self.slots.pop_front().is_none() {
                // Nothing stored that far: jump the base.
                self.base = seq + 1;
                return;
            }
            self.base += 1;
        }
    }

    pub(crate) fn high(&self) -> u64 {
        self.high
    }

    pub(crate) fn released_through(&self) -> u64 {
        self.base - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f() -> Stored {
        Stored {
            sender: 1,
            guarantee: Guarantee::Agreed,
            encapsulated: None,
            payload: Bytes::new(),
        }
    }

    #[test]
    fn contiguous_release_and_duplicates() {
        let mut s = SeqStore::default();
        assert!(s.insert(1, f()));
        assert!(s.insert(3, f()));
        assert!(!s.insert(3, f()));
        assert_eq!(s.contiguous_from(0), 1);
        assert!(s.insert(2, f()));
        assert_eq!(s.contiguous_from(0), 3);
        s.release_through(2);
        assert!(s.has(1) && s.get(1).is_none() && s.get(3).is_some());
        assert!(!s.insert(2, f()));
        s.release_through(10);
        assert_eq!(s.released_through(), 10);
        assert!(s.insert(11, f()));
        assert_eq!(s.contiguous_from(10), 11);
    }
}
