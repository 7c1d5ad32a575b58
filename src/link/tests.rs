//! The link state machine on a virtual clock: two monitors wired back to back,
//! links cut and restored by dropping their datagrams.

use super::*;
use crate::config::LinkMode;
use phalanx_totem::{Destination, Time};
use std::time::Duration;

const MS: Duration = Duration::from_millis(1);

fn specs(prios: &[u32]) -> Vec<LinkSpec> {
    let timing = LinkTiming::for_token(300 * MS);
    prios
        .iter()
        .enumerate()
        .map(|(i, p)| LinkSpec {
            number: i as u8,
            priority: *p,
            timing,
        })
        .collect()
}

/// Two nodes; `cut[slot]` drops everything on that link.
struct Pair {
    a: LinkMonitor,
    b: LinkMonitor,
    now: Time,
    cut: [bool; 8],
    buf: Vec<u8>,
}

impl Pair {
    fn new(prios: &[u32], mode: LinkMode) -> Pair {
        Pair {
            a: LinkMonitor::new(1, &[1, 2], specs(prios), mode, Time::ZERO).unwrap(),
            b: LinkMonitor::new(2, &[1, 2], specs(prios), mode, Time::ZERO).unwrap(),
            now: Time::ZERO,
            cut: [false; 8],
            buf: Vec::new(),
        }
    }

    /// Runs both monitors until `until`, 1 ms steps, 1 ms one-way latency
    /// (delivered at the next step).
    fn run(&mut self, until: Time) {
        while self.now < until {
            self.now = self.now + MS;
            let now = self.now;
            for (from_a, src) in [(true, 0), (false, 1)] {
                let _ = src;
                let m = if from_a { &mut self.a } else { &mut self.b };
                if m.poll_timeout().is_some_and(|t| t <= now) {
                    m.handle_timeout(now);
                }
            }
            // Exchange until quiet (pongs answer pings within the step).
            loop {
                let mut moved = false;
                while let Some(t) = self.a.poll_transmit() {
                    moved = true;
                    if !self.cut[t.slot] {
                        self.buf.clear();
                        t.msg.encode(&mut self.buf);
                        self.b.handle_datagram(now, 1, t.slot, &self.buf).unwrap();
                    }
                }
                while let Some(t) = self.b.poll_transmit() {
                    moved = true;
                    if !self.cut[t.slot] {
                        self.buf.clear();
                        t.msg.encode(&mut self.buf);
                        self.a.handle_datagram(now, 2, t.slot, &self.buf).unwrap();
                    }
                }
                if !moved {
                    break;
                }
            }
        }
    }

    fn at(ms: u64) -> Time {
        Time::from_nanos(ms * 1_000_000)
    }
}

#[test]
fn links_come_up_after_pong_count_pongs() {
    let mut p = Pair::new(&[0, 0], LinkMode::Passive);
    assert_eq!(p.a.route(2), 0b11, "nothing up: every link");
    p.run(Pair::at(1));
    // One ping round trip so far: one pong, pong_count is 2.
    assert_eq!(p.a.state(2, 0), Some(LinkState::Down));
    p.run(Pair::at(40));
    assert_eq!(p.a.state(2, 0), Some(LinkState::Up));
    assert_eq!(p.a.state(2, 1), Some(LinkState::Up));
    assert_eq!(
        p.a.route(2),
        0b01,
        "passive, equal priority: lowest link number"
    );
    let ev: Vec<_> = std::iter::from_fn(|| p.a.poll_event()).collect();
    assert_eq!(ev.len(), 2);
    assert!(ev.iter().all(|e| e.state == LinkState::Up && e.peer == 2));
    let st = p.a.status();
    assert_eq!(st.len(), 2);
    assert!(st[0].rtt.is_some());
    assert!(st[0].stats.pongs_rx >= 2);
}

#[test]
fn passive_fails_over_within_the_ping_timeout_and_fails_back() {
    let mut p = Pair::new(&[0, 0], LinkMode::Passive);
    p.run(Pair::at(100));
    assert_eq!(p.a.route(2), 0b01);
    while p.a.poll_event().is_some() {}
    let cut_at = p.now;
    p.cut[0] = true;
    p.run(Pair::at(300));
    let down = p.a.poll_event().expect("link 0 goes down");
    assert_eq!((down.link, down.state), (0, LinkState::Down));
    let took = down.at.saturating_since(cut_at);
    let t = LinkTiming::for_token(300 * MS);
    // The last pong came at most one interval before the cut.
    assert!(
        took >= t.ping_timeout - t.ping_interval - 2 * MS && took <= t.ping_timeout + 2 * MS,
        "detected after {took:?}"
    );
    assert!(
        took < 143 * MS,
        "must beat totem's second token retransmission"
    );
    assert_eq!(p.a.route(2), 0b10, "fail-over to link 1");
    assert_eq!(p.b.route(1), 0b10);
    // Restore: back on link 0 after pong_count pongs.
    p.cut[0] = false;
    let back_at = p.now;
    p.run(Pair::at(500));
    let up = p.a.poll_event().expect("link 0 comes back");
    assert_eq!((up.link, up.state), (0, LinkState::Up));
    assert!(up.at.saturating_since(back_at) <= 3 * t.ping_interval);
    assert_eq!(p.a.route(2), 0b01, "fail-back");
    let st = p.a.status();
    assert_eq!((st[0].stats.downs, st[0].stats.ups), (1, 2));
}

#[test]
fn passive_prefers_highest_priority() {
    let mut p = Pair::new(&[1, 5, 5], LinkMode::Passive);
    p.run(Pair::at(100));
    assert_eq!(
        p.a.route(2),
        0b010,
        "priority 5, lowest number among equals"
    );
    p.cut[1] = true;
    p.run(Pair::at(300));
    assert_eq!(p.a.route(2), 0b100);
    p.cut[2] = true;
    p.run(Pair::at(500));
    assert_eq!(p.a.route(2), 0b001);
    p.cut[0] = true;
    p.run(Pair::at(700));
    assert_eq!(p.a.route(2), 0b111, "nothing up: every link");
}

#[test]
fn active_uses_every_up_link_and_rr_takes_turns() {
    let mut p = Pair::new(&[0, 0], LinkMode::Active);
    p.run(Pair::at(100));
    assert_eq!(p.a.route(2), 0b11);
    p.cut[1] = true;
    p.run(Pair::at(300));
    assert_eq!(p.a.route(2), 0b01);

    let mut r = Pair::new(&[0, 0], LinkMode::Rr);
    r.run(Pair::at(100));
    let turns: Vec<u8> = (0..4).map(|_| r.a.route(2)).collect();
    assert_eq!(turns, [0b01, 0b10, 0b01, 0b10]);
    r.cut[0] = true;
    r.run(Pair::at(300));
    assert_eq!((r.a.route(2), r.a.route(2)), (0b10, 0b10));
}

#[test]
fn flapping_pongs_do_not_bring_a_link_up() {
    let mut p = Pair::new(&[0], LinkMode::Passive);
    // Let exactly one pong through per 200 ms: never pong_count in a row within
    // the timeout.
    for k in 0..5u64 {
        p.cut[0] = false;
        p.run(Pair::at(200 * k + 1));
        p.cut[0] = true;
        p.run(Pair::at(200 * k + 199));
    }
    assert_eq!(p.a.state(2, 0), Some(LinkState::Down));
    assert_eq!(p.a.status()[0].stats.ups, 0);
}

#[test]
fn bad_link_datagrams_are_counted_and_dropped() {
    let mut a =
        LinkMonitor::new(1, &[1, 2], specs(&[0, 0]), LinkMode::Passive, Time::ZERO).unwrap();
    let now = Time::from_nanos(5);
    assert!(matches!(
        a.handle_datagram(now, 2, 0, b"PL garbage"),
        Err(LinkRxError::Wire(_))
    ));
    let mut b = Vec::new();
    let ping = wire::LinkMsg {
        kind: wire::Kind::Ping,
        link: 1, // claims link 1, arrives on slot 0
        sender: 2,
        target: 1,
        seq: 1,
        stamp: 0,
    };
    ping.encode(&mut b);
    assert_eq!(
        a.handle_datagram(now, 2, 0, &b),
        Err(LinkRxError::Misaddressed)
    );
    // A pong for a ping never sent.
    b.clear();
    wire::LinkMsg {
        kind: wire::Kind::Pong,
        link: 0,
        ..ping
    }
    .encode(&mut b);
    assert_eq!(
        a.handle_datagram(now, 2, 0, &b),
        Err(LinkRxError::UnexpectedPong)
    );
    // Unknown peer and slot.
    assert_eq!(
        a.handle_datagram(now, 9, 0, &b),
        Err(LinkRxError::Misaddressed)
    );
    assert_eq!(
        a.handle_datagram(now, 2, 7, &b),
        Err(LinkRxError::Misaddressed)
    );
    let st = a.status();
    assert_eq!(st[0].stats.rx_invalid, 2);
    assert_eq!(st[0].stats.pongs_unexpected, 1);
    assert_eq!(st[0].state, LinkState::Down);
}

#[test]
fn pong_flood_is_bounded() {
    let mut a = LinkMonitor::new(1, &[1, 2], specs(&[0]), LinkMode::Passive, Time::ZERO).unwrap();
    let mut b = Vec::new();
    wire::LinkMsg {
        kind: wire::Kind::Ping,
        link: 0,
        sender: 2,
        target: 1,
        seq: 1,
        stamp: 0,
    }
    .encode(&mut b);
    let mut full = 0;
    for _ in 0..10_000 {
        if a.handle_datagram(Time::ZERO, 2, 0, &b) == Err(LinkRxError::QueueFull) {
            full += 1;
        }
    }
    assert!(full > 9_000);
    assert!(std::iter::from_fn(|| a.poll_transmit()).count() < 200);
}

#[test]
fn bad_configurations_are_refused() {
    let t = LinkTiming::for_token(300 * MS);
    let l = |n| LinkSpec {
        number: n,
        priority: 0,
        timing: t,
    };
    let mk = |v| LinkMonitor::new(1, &[1, 2], v, LinkMode::Passive, Time::ZERO).err();
    assert_eq!(mk(vec![]), Some(LinkConfigError::Links));
    assert_eq!(mk(vec![l(0), l(0)]), Some(LinkConfigError::Links));
    assert_eq!(mk(vec![l(8)]), Some(LinkConfigError::Links));
    let mut bad = l(0);
    bad.timing.ping_timeout = bad.timing.ping_interval;
    assert_eq!(mk(vec![bad]), Some(LinkConfigError::Timing));
    assert_eq!(t.ping_interval, Duration::from_micros(37_500));
    assert_eq!(t.ping_timeout, 75 * MS);
}

#[test]
fn a_stalled_node_does_not_blame_its_links() {
    let mut p = Pair::new(&[0, 0], LinkMode::Passive);
    p.run(Pair::at(100));
    assert_eq!(p.a.route(2), 0b01);
    while p.a.poll_event().is_some() {}
    // Node 1 does not run for 300 ms (its pongs would be waiting in its socket).
    let late = Pair::at(400);
    p.a.handle_timeout(late);
    assert_eq!(p.a.stalls(), 1);
    assert_eq!(
        p.a.state(2, 0),
        Some(LinkState::Up),
        "no verdict right after a stall"
    );
    assert!(p.a.poll_timeout().unwrap() > late);
    // It runs again and the peer answers: nothing went down.
    p.now = late;
    p.run(Pair::at(600));
    assert!(p.a.poll_event().is_none(), "no link changed");
    // A real failure after the stall is still found.
    p.cut[0] = true;
    p.run(Pair::at(800));
    assert_eq!(p.a.state(2, 0), Some(LinkState::Down));
    assert_eq!(p.a.stalls(), 1);
}

/// Nodes 1 and 2 on two links (slot 1 preferred in passive mode), crypto on.
fn layers(mode: LinkMode) -> (LinkLayer, LinkLayer) {
    let link = |n: u8| LinkAddrs {
        spec: specs(&[1, 2])[usize::from(n)],
        addrs: [1, 2]
            .into_iter()
            .map(|id| {
                let ip = std::net::Ipv4Addr::new(10, 0, n, id as u8);
                (id, std::net::SocketAddr::from((ip, 5405)))
            })
            .collect(),
        group: None,
    };
    let crypto = |boot_id| LinkCrypto {
        key: vec![9; 64],
        cluster_name: "table".into(),
        cipher: crate::crypto::Cipher::default(),
        boot_id,
    };
    let a = LinkLayer::new(1, &[link(0), link(1)], mode, Some(&crypto(11)), Time::ZERO).unwrap();
    let b = LinkLayer::new(2, &[link(0), link(1)], mode, Some(&crypto(22)), Time::ZERO).unwrap();
    (a, b)
}

/// A datagram sent through a [`SendTable`] goes where the layer's own `send`
/// would put it, and the peer opens it like the layer's: same key, and the two
/// draw from one counter (no datagram refused as a replay).
#[test]
fn the_send_table_sends_as_the_layer_does() {
    for mode in [LinkMode::Passive, LinkMode::Active, LinkMode::Rr] {
        let (mut a, mut b) = layers(mode);
        let table = a.send_table();
        assert!(table.reaches(2) && !table.reaches(1) && !table.reaches(3));
        let mut by_layer = Vec::new();
        a.send(&Destination::Node(2), b"first".to_vec(), &mut |t| {
            by_layer.push(t)
        });
        let mut by_table = Vec::new();
        assert!(table.send(2, b"second", &mut |t| by_table.push(t)));
        let mut after = Vec::new();
        a.send(&Destination::Node(2), b"third".to_vec(), &mut |t| {
            after.push(t)
        });
        let places = |v: &[LinkTransmit]| v.iter().map(|t| (t.link, t.to)).collect::<Vec<_>>();
        if mode == LinkMode::Rr {
            // The table takes the first link of a turn, the layer turns.
            assert_eq!(places(&by_table), [(0, places(&by_layer)[0].1)]);
        } else {
            assert_eq!(places(&by_table), places(&by_layer), "{mode:?}");
        }
        for (t, want) in [
            (&by_layer, "first"),
            (&by_table, "second"),
            (&after, "third"),
        ]
        .into_iter()
        .flat_map(|(v, w)| v.iter().map(move |t| (t, w)))
        {
            let from = std::net::SocketAddr::from(([10, 0, t.link, 1], 5405));
            let got = b
                .receive(Time::ZERO, t.link, from, &t.data, &mut |_| {})
                .unwrap();
            assert!(
                matches!(got, Received::Totem { from: 1, data } if data == want.as_bytes()),
                "{mode:?}: {want}"
            );
        }
    }
}

/// The table changes with the routes: once a link's state changes, the
/// generation moves and the fixed route follows the monitor's choice.
#[test]
fn the_route_generation_moves_with_the_routes() {
    let mut p = Pair::new(&[1, 2], LinkMode::Passive);
    let g0 = p.a.route_generation();
    assert_eq!(
        p.a.route_fixed(2),
        Some(0b11),
        "every link while none is up"
    );
    assert_eq!(p.a.route_fixed(3), None);
    // Only link 0 carries pongs: it comes up and is the route.
    p.cut[1] = true;
    p.run(Pair::at(5_000));
    assert_eq!(p.a.route_fixed(2), Some(0b01));
    let g1 = p.a.route_generation();
    assert!(g1 > g0);
    // Link 1 (higher priority) comes up too: the route moves to it.
    p.cut[1] = false;
    p.run(Pair::at(10_000));
    assert_eq!(p.a.route_fixed(2), Some(0b10));
    assert!(p.a.route_generation() > g1);
    // Nothing changes: neither does the generation.
    let g2 = p.a.route_generation();
    p.run(Pair::at(12_000));
    assert_eq!(p.a.route_generation(), g2);
}
