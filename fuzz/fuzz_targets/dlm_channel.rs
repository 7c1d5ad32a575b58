//! The DLM direct path's channel datagrams (`phalanx_dlm::channel`) from
//! untrusted bytes: a datagram is taken or refused `Malformed`, never a panic,
//! and the channel's bounds hold whatever arrives.
//!
//! The input is a list of records (`phalanx_fuzz::records`); `ctl % 4` says what
//! each one is: 0 a datagram from the network (the fuzzer's bytes), 1 a record
//! this side sends, 2 time passing (the first two bytes, in tens of µs, then
//! both sides' timers), 3 a record a genuine peer channel sends. The two
//! channels' own datagrams go to each other after every record, so forged
//! datagrams land among acks, retransmissions and in-order deliveries.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phalanx_dlm::channel::{ChannelConfig, ChannelOutput, MAX_RECORD, PeerChannel};
use phalanx_fuzz::records;

const WINDOW: usize = 8;

fuzz_target!(|data: &[u8]| {
    let cfg = ChannelConfig {
        window: WINDOW,
        ..ChannelConfig::default()
    };
    let mut ours = PeerChannel::new(5, cfg.clone());
    let mut peer = PeerChannel::new(7, cfg);
    let mut now = 0u64;
    for r in records(data, 256) {
        match r.ctl % 4 {
            0 => {
                let _ = ours.datagram(now, r.bytes);
            }
            1 => {
                let _ = ours.send(now, r.bytes.to_vec());
            }
            2 => {
                let step = r.bytes.iter().take(2).fold(0u64, |a, b| a * 256 + u64::from(*b));
                now = now.saturating_add(step * 10_000);
                ours.tick(now);
                peer.tick(now);
            }
            _ => {
                let _ = peer.send(now, r.bytes.to_vec());
            }
        }
        // Carry the genuine traffic both ways until quiet (bounded: each pass
        // answers the last one's datagrams, acks end it).
        for _ in 0..16 {
            // `|`, not `||`: both directions are drained on every pass.
            let moved = carry(&mut ours, &mut peer, now) | carry(&mut peer, &mut ours, now);
            if !moved {
                break;
            }
        }
        assert!(ours.unacknowledged() <= WINDOW && peer.unacknowledged() <= WINDOW);
    }
});

/// Hands `from`'s datagrams to `to` (deliveries checked against the record
/// bound); whether any moved.
fn carry(from: &mut PeerChannel, to: &mut PeerChannel, now: u64) -> bool {
    let mut moved = false;
    while let Some(o) = from.poll_output() {
        match o {
            ChannelOutput::Transmit(d) => {
                moved = true;
                let _ = to.datagram(now, &d);
            }
            ChannelOutput::Deliver(rec) => assert!(rec.len() <= MAX_RECORD),
        }
    }
    moved
}
