//! Link-layer datagrams (ping/pong): any bytes yield a message or an error, never a
//! panic; a decoded message re-encodes to the same bytes; and a link monitor fed
//! arbitrary datagrams on arbitrary links never panics and keeps its queue bounded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phalanx::config::LinkMode;
use phalanx::link::{LinkMonitor, LinkSpec, LinkTiming, wire::LinkMsg};
use phalanx::totem::Time;
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = LinkMsg::decode(data) {
        let mut b = Vec::new();
        m.encode(&mut b);
        assert_eq!(b, data);
    }
    let timing = LinkTiming::for_token(Duration::from_millis(300));
    let links = (0..2)
        .map(|n| LinkSpec { number: n, priority: 0, timing })
        .collect();
    let mut m = LinkMonitor::new(1, &[1, 2, 3], links, LinkMode::Passive, Time::ZERO).unwrap();
    m.handle_timeout(Time::ZERO);
    for (i, chunk) in data.chunks(37).enumerate() {
        let now = Time::from_nanos(i as u64 * 1_000_000);
        let peer = u32::from(chunk.first().copied().unwrap_or(0) % 4);
        let slot = usize::from(chunk.get(1).copied().unwrap_or(0) % 3);
        let _ = m.handle_datagram(now, peer, slot, chunk);
        m.handle_timeout(now);
        let _ = m.route(peer);
    }
    assert!(std::iter::from_fn(|| m.poll_transmit()).count() < 10_000);
});
