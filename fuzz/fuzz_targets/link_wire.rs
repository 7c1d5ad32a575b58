//! Link-layer datagrams (ping/pong): any bytes yield a message or an error, never a
//! panic; a decoded message re-encodes to the same bytes (tried raw and with the
//! CRC fixed up); and a link monitor fed arbitrary datagrams on arbitrary links
//! never panics and keeps its queue bounded.
//!
//! For the monitor the input is a list of records (`phalanx_fuzz::records`): the
//! control byte picks the sending peer (`ctl % 4`, 0 and 3 being strangers), the
//! link slot (`(ctl >> 2) % 3`, slot 2 does not exist) and whether the CRC is
//! fixed up first (bit 7), so that mutated pings and pongs reach the monitor.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phalanx::config::LinkMode;
use phalanx::link::{LinkMonitor, LinkSpec, LinkTiming, wire::LinkMsg};
use phalanx::totem::Time;
use phalanx_fuzz::{fix_link_crc, records};
use std::time::Duration;

fn round_trip(data: &[u8]) {
    if let Ok(m) = LinkMsg::decode(data) {
        let mut b = Vec::new();
        m.encode(&mut b);
        assert_eq!(b, data);
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip(data);
    let mut fixed = data.to_vec();
    fix_link_crc(&mut fixed);
    round_trip(&fixed);
    let timing = LinkTiming::for_token(Duration::from_millis(300));
    let links = (0..2)
        .map(|n| LinkSpec {
            number: n,
            priority: 0,
            timing,
        })
        .collect();
    let mut m = LinkMonitor::new(1, &[1, 2, 3], links, LinkMode::Passive, Time::ZERO).unwrap();
    m.handle_timeout(Time::ZERO);
    let mut dg = Vec::new();
    for (i, r) in records(data, 256).into_iter().enumerate() {
        let now = Time::from_nanos(i as u64 * 1_000_000);
        let peer = u32::from(r.ctl % 4);
        let slot = usize::from((r.ctl >> 2) % 3);
        dg.clear();
        dg.extend_from_slice(r.bytes);
        if r.ctl & 0x80 != 0 {
            fix_link_crc(&mut dg);
        }
        let _ = m.handle_datagram(now, peer, slot, &dg);
        m.handle_timeout(now);
        let _ = m.route(peer);
    }
    assert!(std::iter::from_fn(|| m.poll_transmit()).count() < 10_000);
});
