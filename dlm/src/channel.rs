//! A reliable, ordered point-to-point stream to one peer over datagrams: the
//! building block of the direct lock-traffic path designed in `docs/dlm.md`
//! ("Design: a point-to-point path for lock traffic"); the Stack keeps one per
//! peer when lock traffic takes that path (`DlmSetup::direct`, the default).
//!
//! Sans-IO: records go in with [`PeerChannel::send`], datagrams come out as
//! [`ChannelOutput::Transmit`] for the driver to carry (over the links, inside
//! their crypto); the peer's datagrams go in with [`PeerChannel::datagram`] and
//! its records come out, in order and once each, as [`ChannelOutput::Deliver`].
//! Time is an input (`now`, nanoseconds of any monotonic clock): the driver calls
//! [`PeerChannel::tick`] at [`PeerChannel::deadline`].
//!
//! * **Order and loss.** Every record gets the next sequence number of the
//!   sender's stream; the receiver delivers in sequence order, keeps at most
//!   `window` records that arrived early, and drops duplicates.
//! * **Acks.** Cumulative: every datagram carries the highest sequence number
//!   delivered from the peer's stream, so reverse traffic acknowledges for free;
//!   without it, an ack goes alone `ack_delay` after the first unacknowledged
//!   delivery.
//! * **Retransmission.** The oldest unacknowledged record goes again after `rto`,
//!   doubling up to `max_rto` while nothing is acknowledged. At most `window`
//!   records are unacknowledged; [`PeerChannel::send`] refuses more
//!   ([`ChannelError::Full`]) — bounded queues, the caller holds its messages.
//! * **Streams.** A stream is named by the id the driver gives at creation, higher
//!   for every new channel to the same peer (the Stack uses the totem ring
//!   sequence in which it created the channel: a restarted or re-merged peer makes
//!   a new one in a later ring): a datagram of a higher peer stream than the one
//!   in progress starts a new receive stream; lower ids are stale and dropped.
//!   The driver drops a channel when its peer leaves (records it had not
//!   acknowledged were for a process that is gone) and makes a new one after.
//!
//! ```
//! use phalanx_dlm::channel::{ChannelConfig, ChannelOutput, PeerChannel};
//!
//! let cfg = ChannelConfig::default();
//! let (mut a, mut b) = (PeerChannel::new(1, cfg.clone()), PeerChannel::new(7, cfg));
//! a.send(0, b"request".to_vec()).unwrap();
//! let ChannelOutput::Transmit(datagram) = a.poll_output().unwrap() else { panic!() };
//! b.datagram(10, &datagram).unwrap();
//! assert_eq!(b.poll_output(), Some(ChannelOutput::Deliver(b"request".to_vec())));
//! // b's answer carries the ack of a's record: nothing is retransmitted.
//! b.send(20, b"ast".to_vec()).unwrap();
//! let ChannelOutput::Transmit(answer) = b.poll_output().unwrap() else { panic!() };
//! a.datagram(30, &answer).unwrap();
//! assert_eq!(a.poll_output(), Some(ChannelOutput::Deliver(b"ast".to_vec())));
//! assert_eq!(a.unacknowledged(), 0);
//! ```

use std::collections::{BTreeMap, VecDeque};

use thiserror::Error;

/// The two bytes that open every channel datagram (beside totem's `"PX"` and the
/// link monitor's `"PL"`).
pub const MAGIC: [u8; 2] = *b"PD";
/// Wire version written and accepted.
pub const VERSION: u8 = 1;
/// Header length: magic, version, stream, peer stream acked, ack, seq.
pub const HEADER: usize = 2 + 1 + 8 + 8 + 8 + 8;
/// Largest record (a DLM request with a 64-byte name and a 256-byte value block
/// is far below; the links carry about 1400 bytes a datagram).
pub const MAX_RECORD: usize = 1200;

/// Timers and bounds of a [`PeerChannel`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelConfig {
    /// Most records sent and not acknowledged; also the most early records kept.
    pub window: usize,
    /// First retransmission timeout (ns).
    pub rto: u64,
    /// Largest retransmission timeout (ns).
    pub max_rto: u64,
    /// How long a delivery waits for reverse traffic to carry its ack (ns).
    pub ack_delay: u64,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        ChannelConfig {
            window: 256,
            rto: 2_000_000,
            max_rto: 200_000_000,
            ack_delay: 200_000,
        }
    }
}

/// What the channel asks its driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelOutput {
    /// Carry this datagram to the peer.
    Transmit(Vec<u8>),
    /// A record of the peer's, in order.
    Deliver(Vec<u8>),
}

/// Why a call was refused; nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ChannelError {
    /// `window` records are unacknowledged: send again after acks came.
    #[error("the channel's window is full")]
    Full,
    /// A record above [`MAX_RECORD`] bytes.
    #[error("record of {0} bytes is above the limit")]
    TooLarge(usize),
    /// Not a channel datagram of this version, or truncated.
    #[error("not a channel datagram")]
    Malformed,
}

/// One direction's unacknowledged record.
#[derive(Debug, Clone)]
struct Sent {
    seq: u64,
    record: Vec<u8>,
}

/// A reliable ordered stream to one peer and the peer's stream to us.
#[derive(Debug, Clone)]
pub struct PeerChannel {
    config: ChannelConfig,
    /// Our stream's id (the driver's incarnation of this node).
    stream: u64,
    next_seq: u64,
    unacked: VecDeque<Sent>,
    rto: u64,
    retransmit_at: Option<u64>,
    /// The peer's stream in progress and what was delivered of it.
    peer_stream: u64,
    delivered: u64,
    early: BTreeMap<u64, Vec<u8>>,
    ack_at: Option<u64>,
    outputs: VecDeque<ChannelOutput>,
}

impl PeerChannel {
    /// A channel whose sending stream is named `stream` (higher after every
    /// restart of this node).
    pub fn new(stream: u64, config: ChannelConfig) -> PeerChannel {
        PeerChannel {
            rto: config.rto,
            config,
            stream,
            next_seq: 1,
            unacked: VecDeque::new(),
            retransmit_at: None,
            peer_stream: 0,
            delivered: 0,
            early: BTreeMap::new(),
            ack_at: None,
            outputs: VecDeque::new(),
        }
    }

    /// Records sent and not acknowledged yet.
    pub fn unacknowledged(&self) -> usize {
        self.unacked.len()
    }

    /// Whether [`PeerChannel::send`] takes a record now (the window has room).
    pub fn has_room(&self) -> bool {
        self.unacked.len() < self.config.window
    }

    /// The next output, oldest first.
    pub fn poll_output(&mut self) -> Option<ChannelOutput> {
        self.outputs.pop_front()
    }

    /// When [`PeerChannel::tick`] has something to do.
    pub fn deadline(&self) -> Option<u64> {
        match (self.retransmit_at, self.ack_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Sends a record (it carries the ack of the peer's stream too).
    pub fn send(&mut self, now: u64, record: Vec<u8>) -> Result<(), ChannelError> {
        if record.len() > MAX_RECORD {
            return Err(ChannelError::TooLarge(record.len()));
        }
        if self.unacked.len() >= self.config.window {
            return Err(ChannelError::Full);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.transmit(seq, &record);
        self.unacked.push_back(Sent { seq, record });
        if self.retransmit_at.is_none() {
            self.retransmit_at = Some(now + self.rto);
        }
        Ok(())
    }

    /// Retransmits and sends a delayed ack when their time has come.
    pub fn tick(&mut self, now: u64) {
        if self.ack_at.is_some_and(|t| t <= now) {
            self.transmit(0, &[]);
        }
        if self.retransmit_at.is_some_and(|t| t <= now) {
            if let Some(oldest) = self.unacked.front().cloned() {
                self.transmit(oldest.seq, &oldest.record);
                self.rto = (self.rto * 2).min(self.config.max_rto);
                self.retransmit_at = Some(now + self.rto);
            } else {
                self.retransmit_at = None;
            }
        }
    }

    /// A datagram from the peer.
    pub fn datagram(&mut self, now: u64, bytes: &[u8]) -> Result<(), ChannelError> {
        let h = Header::decode(bytes)?;
        let record = &bytes[HEADER..];
        // A stale stream of a former incarnation of the peer.
        if h.stream < self.peer_stream {
            return Ok(());
        }
        if h.stream > self.peer_stream {
            self.peer_stream = h.stream;
            self.delivered = 0;
            self.early.clear();
        }
        if h.acked_stream == self.stream {
            self.acknowledge(now, h.ack);
        }
        if h.seq == 0 {
            return Ok(());
        }
        if h.seq <= self.delivered || self.early.contains_key(&h.seq) {
            // A duplicate: its ack may have been lost, so ack again soon.
            self.ack_soon(now);
            return Ok(());
        }
        if h.seq != self.delivered + 1 {
            if self.early.len() < self.config.window {
                self.early.insert(h.seq, record.to_vec());
            }
            return Ok(());
        }
        self.outputs
            .push_back(ChannelOutput::Deliver(record.to_vec()));
        self.delivered = h.seq;
        while let Some(next) = self.early.remove(&(self.delivered + 1)) {
            self.outputs.push_back(ChannelOutput::Deliver(next));
            self.delivered += 1;
        }
        self.ack_soon(now);
        Ok(())
    }

    fn ack_soon(&mut self, now: u64) {
        if self.ack_at.is_none() {
            self.ack_at = Some(now + self.config.ack_delay);
        }
    }

    fn acknowledge(&mut self, now: u64, ack: u64) {
        let before = self.unacked.len();
        while self.unacked.front().is_some_and(|s| s.seq <= ack) {
            self.unacked.pop_front();
        }
        if self.unacked.len() < before {
            // Progress: back to the first timeout, counted from now.
            self.rto = self.config.rto;
            self.retransmit_at = (!self.unacked.is_empty()).then_some(now + self.rto);
        }
    }

    /// One datagram: `seq` 0 is an ack alone. Every datagram acks the peer's stream,
    /// so a pending delayed ack is no longer needed.
    fn transmit(&mut self, seq: u64, record: &[u8]) {
        let mut d = Vec::with_capacity(HEADER + record.len());
        d.extend_from_slice(&MAGIC);
        d.push(VERSION);
        d.extend_from_slice(&self.stream.to_be_bytes());
        d.extend_from_slice(&self.peer_stream.to_be_bytes());
        d.extend_from_slice(&self.delivered.to_be_bytes());
        d.extend_from_slice(&seq.to_be_bytes());
        d.extend_from_slice(record);
        self.ack_at = None;
        self.outputs.push_back(ChannelOutput::Transmit(d));
    }
}

struct Header {
    stream: u64,
    acked_stream: u64,
    ack: u64,
    seq: u64,
}

impl Header {
    fn decode(bytes: &[u8]) -> Result<Header, ChannelError> {
        if bytes.len() < HEADER || bytes[..2] != MAGIC || bytes[2] != VERSION {
            return Err(ChannelError::Malformed);
        }
        if bytes.len() - HEADER > MAX_RECORD {
            return Err(ChannelError::TooLarge(bytes.len() - HEADER));
        }
        let u = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            u64::from_be_bytes(b)
        };
        Ok(Header {
            stream: u(3),
            acked_stream: u(11),
            ack: u(19),
            seq: u(27),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// splitmix64: the tests' own seeded choices.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
    }

    /// Moves a channel's outputs: datagrams onto `wire` (to `to`), deliveries into
    /// `got`.
    fn drain(
        c: &mut PeerChannel,
        to: usize,
        wire: &mut Vec<(usize, Vec<u8>)>,
        got: &mut Vec<Vec<u8>>,
    ) {
        while let Some(o) = c.poll_output() {
            match o {
                ChannelOutput::Transmit(d) => wire.push((to, d)),
                ChannelOutput::Deliver(r) => got.push(r),
            }
        }
    }

    /// Both directions send `n` records each through a network that drops,
    /// duplicates and reorders; everything arrives once, in order, and nothing
    /// stays unacknowledged.
    fn lossy_run(seed: u64, n: u32) {
        let mut rng = Rng(seed);
        let cfg = ChannelConfig {
            window: 16,
            ..ChannelConfig::default()
        };
        let mut ch = [PeerChannel::new(5, cfg.clone()), PeerChannel::new(9, cfg)];
        let mut got: [Vec<Vec<u8>>; 2] = [Vec::new(), Vec::new()];
        let mut wire: Vec<(usize, Vec<u8>)> = Vec::new();
        let mut next = [0u32; 2];
        let mut now = 0u64;
        for _ in 0..200_000 {
            now += 50_000;
            for side in 0..2 {
                if next[side] < n && rng.next() % 3 == 0 {
                    let record = format!("{side}:{}", next[side]).into_bytes();
                    if ch[side].send(now, record).is_ok() {
                        next[side] += 1;
                    }
                }
                ch[side].tick(now);
                let (mut w, mut g) = (Vec::new(), Vec::new());
                drain(&mut ch[side], 1 - side, &mut w, &mut g);
                wire.extend(w);
                got[1 - side].extend(g);
            }
            // Deliver a few datagrams in random order; drop 20 %, duplicate 10 %.
            for _ in 0..wire.len().min(4) {
                let i = (rng.next() % wire.len() as u64) as usize;
                let (to, d) = wire.swap_remove(i);
                let fate = rng.next() % 10;
                if fate < 2 {
                    continue;
                }
                if fate == 2 {
                    wire.push((to, d.clone()));
                }
                ch[to].datagram(now, &d).unwrap();
                let (mut w, mut g) = (Vec::new(), Vec::new());
                drain(&mut ch[to], 1 - to, &mut w, &mut g);
                wire.extend(w);
                got[to].extend(g);
            }
            let done = next == [n, n]
                && got.iter().all(|g| g.len() == n as usize)
                && ch.iter().all(|c| c.unacknowledged() == 0);
            if done {
                break;
            }
        }
        for (side, g) in got.iter().enumerate() {
            let from = 1 - side;
            let expected: Vec<Vec<u8>> =
                (0..n).map(|i| format!("{from}:{i}").into_bytes()).collect();
            assert_eq!(
                g, &expected,
                "seed {seed}: side {side} got its peer's records"
            );
        }
        assert!(ch.iter().all(|c| c.unacknowledged() == 0), "seed {seed}");
    }

    #[test]
    fn records_arrive_once_and_in_order_through_loss_duplication_and_reordering() {
        for seed in 0..50 {
            lossy_run(seed, 200);
        }
    }

    #[test]
    fn a_full_window_refuses_and_acks_make_room() {
        let cfg = ChannelConfig {
            window: 2,
            ..ChannelConfig::default()
        };
        let (mut a, mut b) = (PeerChannel::new(1, cfg.clone()), PeerChannel::new(2, cfg));
        a.send(0, vec![1]).unwrap();
        a.send(0, vec![2]).unwrap();
        assert_eq!(a.send(0, vec![3]), Err(ChannelError::Full));
        let mut wire = Vec::new();
        let mut got = Vec::new();
        drain(&mut a, 1, &mut wire, &mut got);
        for (_, d) in &wire {
            b.datagram(1, d).unwrap();
        }
        drain(&mut b, 0, &mut Vec::new(), &mut got);
        assert_eq!(got, vec![vec![1], vec![2]]);
        // No reverse traffic: the ack goes alone after ack_delay.
        assert_eq!(b.deadline(), Some(1 + ChannelConfig::default().ack_delay));
        b.tick(1 + ChannelConfig::default().ack_delay);
        let Some(ChannelOutput::Transmit(ack)) = b.poll_output() else {
            panic!("an ack")
        };
        a.datagram(2, &ack).unwrap();
        assert_eq!(a.unacknowledged(), 0);
        a.send(3, vec![3]).unwrap();
    }

    #[test]
    fn a_lost_record_is_retransmitted_after_the_timeout_with_backoff() {
        let cfg = ChannelConfig::default();
        let mut a = PeerChannel::new(1, cfg.clone());
        a.send(0, vec![7]).unwrap();
        let _lost = a.poll_output();
        assert_eq!(a.deadline(), Some(cfg.rto));
        a.tick(cfg.rto - 1);
        assert_eq!(a.poll_output(), None, "not before the timeout");
        a.tick(cfg.rto);
        assert!(matches!(a.poll_output(), Some(ChannelOutput::Transmit(_))));
        assert_eq!(a.deadline(), Some(cfg.rto + 2 * cfg.rto), "doubled");
    }

    #[test]
    fn a_restarted_peer_starts_a_new_stream_and_the_old_one_is_dropped() {
        let cfg = ChannelConfig::default();
        let mut b = PeerChannel::new(2, cfg.clone());
        let mut old = PeerChannel::new(10, cfg.clone());
        old.send(0, vec![1]).unwrap();
        old.send(0, vec![2]).unwrap();
        let mut got = Vec::new();
        let mut wire = Vec::new();
        drain(&mut old, 1, &mut wire, &mut got);
        b.datagram(1, &wire[0].1).unwrap();
        // The peer restarts (a higher stream id) before its second record arrived.
        let mut new = PeerChannel::new(11, cfg);
        new.send(2, vec![9]).unwrap();
        let mut wire2 = Vec::new();
        drain(&mut new, 1, &mut wire2, &mut got);
        b.datagram(3, &wire2[0].1).unwrap();
        b.datagram(4, &wire[1].1).unwrap(); // stale: the old incarnation's
        drain(&mut b, 0, &mut Vec::new(), &mut got);
        assert_eq!(got, vec![vec![1], vec![9]]);
    }

    #[test]
    fn malformed_datagrams_are_refused() {
        let mut b = PeerChannel::new(2, ChannelConfig::default());
        assert_eq!(b.datagram(0, b"PX"), Err(ChannelError::Malformed));
        let mut d = vec![0u8; HEADER];
        d[..2].copy_from_slice(b"PL");
        assert_eq!(b.datagram(0, &d), Err(ChannelError::Malformed));
        assert_eq!(
            PeerChannel::new(1, ChannelConfig::default()).send(0, vec![0; MAX_RECORD + 1]),
            Err(ChannelError::TooLarge(MAX_RECORD + 1))
        );
    }
}
