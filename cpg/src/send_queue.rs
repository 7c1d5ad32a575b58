//! The bounded queue of encoded messages waiting for totem to accept them.
//!
//! The state-exchange announcement (JOINLIST) has its own slot and goes first; the
//! application's messages wait while an exchange is in progress, so that they are
//! ordered after it.

use bytes::Bytes;
use phalanx_totem::Guarantee;
use std::collections::VecDeque;

#[derive(Debug)]
pub(crate) struct SendQueue {
    joinlist: Option<Vec<u8>>,
    /// Messages as `Bytes`: a handle may carve many out of one buffer.
    queue: VecDeque<(Guarantee, Bytes)>,
    bytes: usize,
    max_bytes: usize,
    max_messages: usize,
}

impl SendQueue {
    pub fn new(max_bytes: usize, max_messages: usize) -> Self {
        Self {
            joinlist: None,
            queue: VecDeque::new(),
            bytes: 0,
            max_bytes,
            max_messages: max_messages.max(1),
        }
    }

    /// Whether an application message of `len` encoded bytes may be queued. An empty
    /// queue takes any message, so a maximal message can always be sent.
    pub fn admits(&self, len: usize) -> bool {
        self.queue.is_empty()
            || (self.queue.len() < self.max_messages && self.bytes + len <= self.max_bytes)
    }

    /// Queues without the bound: for PROCDOWN, which cannot be refused (the handle is
    /// already gone) and is small and bounded by the member's group count.
    pub fn push(&mut self, guarantee: Guarantee, data: Bytes) {
        self.bytes += data.len();
        self.queue.push_back((guarantee, data));
    }

    /// Replaces any unsent announcement (an older ring's is useless).
    pub fn set_joinlist(&mut self, data: Vec<u8>) {
        self.joinlist = Some(data);
    }

    /// Room for application messages, in bytes (0 when the message count is full).
    pub fn room(&self) -> usize {
        if self.queue.len() >= self.max_messages {
            0
        } else {
            self.max_bytes.saturating_sub(self.bytes)
        }
    }

    /// Length of the next message to send, if any may go now.
    pub fn next_len(&self, hold: bool) -> Option<usize> {
        match &self.joinlist {
            Some(j) => Some(j.len()),
            None if hold => None,
            None => self.queue.front().map(|(_, d)| d.len()),
        }
    }

    pub fn pop(&mut self, hold: bool) -> Option<(Guarantee, Bytes)> {
        if let Some(j) = self.joinlist.take() {
            return Some((Guarantee::Agreed, Bytes::from(j)));
        }
        if hold {
            return None;
        }
        let (g, d) = self.queue.pop_front()?;
        self.bytes -= d.len();
        Some((g, d))
    }

    /// (bytes, messages) queued, the announcement excluded.
    pub fn usage(&self) -> (usize, usize) {
        (self.bytes, self.queue.len())
    }

    pub fn is_empty(&self) -> bool {
        self.joinlist.is_none() && self.queue.is_empty()
    }
}
