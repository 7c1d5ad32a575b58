//! Two Stacks on a lossless, zero-latency network driven by hand.

use super::*;
use phalanx_cpg::{CpgConfig, GroupDelivery};
use phalanx_totem::{Config, Destination};
use std::time::Duration;

struct Pair {
    stacks: Vec<Stack>,
    now: Time,
    events: Vec<Vec<StackEvent>>,
}

impl Pair {
    fn new() -> Self {
        let ids = vec![1, 2];
        let stacks = ids
            .iter()
            .map(|&id| {
                Stack::new(
                    StackConfig {
                        totem: Config::new(id, ids.clone()),
                        cpg: CpgConfig {
                            incarnation: 7,
                            ..CpgConfig::default()
                        },
                        quorum: None,
                    },
                    None,
                    Time::ZERO,
                    Logger::discard(),
                )
                .unwrap()
            })
            .collect();
        Self {
            stacks,
            now: Time::ZERO,
            events: vec![Vec::new(), Vec::new()],
        }
    }

    /// Runs until `done` holds (or panics after 20 s of virtual time).
    fn run_until(&mut self, done: impl Fn(&Self) -> bool) {
        for _ in 0..20_000 {
            let mut wire = Vec::new();
            for (i, s) in self.stacks.iter_mut().enumerate() {
                while let Some(t) = s.poll_transmit() {
                    let to: Vec<usize> = match &t.dest {
                        Destination::Node(d) => vec![*d as usize - 1],
                        Destination::Members(m) => m.iter().map(|d| *d as usize - 1).collect(),
                        Destination::All => vec![1 - i],
                    };
                    for j in to {
                        wire.push((j, t.data.clone()));
                    }
                }
                while let Some(e) = s.poll_event() {
                    self.events[i].push(e);
                }
            }
            for (j, d) in wire {
                self.stacks[j].handle_datagram(self.now, &d);
            }
            if done(self) {
                return;
            }
            self.now = self.now + Duration::from_millis(1);
            for s in self.stacks.iter_mut() {
                s.handle_timeout(self.now);
            }
        }
        panic!("did not converge: {:?}", self.events);
    }
}

fn raw(events: &[StackEvent]) -> Vec<&[u8]> {
    events
        .iter()
        .filter_map(|e| match e {
            StackEvent::Deliver(d) => Some(&d.data[..]),
            _ => None,
        })
        .collect()
}

fn cpg_deliveries(events: &[StackEvent]) -> Vec<&GroupDelivery> {
    events
        .iter()
        .filter_map(|e| match e {
            StackEvent::Cpg(CpgEvent::Deliver(d)) => Some(d),
            _ => None,
        })
        .collect()
}

#[test]
fn raw_and_cpg_messages_share_the_ring_and_arrive_unwrapped() {
    let mut p = Pair::new();
    p.run_until(|p| {
        p.stacks
            .iter()
            .all(|s| s.cpg().is_quiescent() && s.totem().is_operational())
    });
    let now = p.now;
    p.stacks[0]
        .mcast(now, Guarantee::Agreed, b"raw one")
        .unwrap();
    p.stacks[1].cpg_join(now, 3, b"grp").unwrap();
    p.stacks[1]
        .cpg_mcast(now, 3, b"grp", Guarantee::Safe, b"to the group")
        .unwrap();
    let mut owned = vec![0xAA];
    owned.extend_from_slice(b"raw two");
    p.stacks[0]
        .mcast_owned(now, Guarantee::Agreed, owned)
        .unwrap();
    p.run_until(|p| raw(&p.events[1]).len() == 2 && !cpg_deliveries(&p.events[1]).is_empty());
    for i in 0..2 {
        assert_eq!(raw(&p.events[i]), vec![&b"raw one"[..], b"raw two"]);
    }
    let d = cpg_deliveries(&p.events[1]);
    assert_eq!(&d[0].data[..], b"to the group");
    assert_eq!(&d[0].recipients[..], &[3]);
    assert!(
        cpg_deliveries(&p.events[0]).is_empty(),
        "node 1 has no member"
    );
    assert_eq!(p.stacks[0].cpg().membership(b"grp").len(), 1);
    assert_eq!(p.stacks[0].stats().unknown_service, 0);
}

#[test]
fn totem_limits_are_raised_to_hold_a_maximal_cpg_message() {
    let s = Stack::new(
        StackConfig {
            totem: Config::new(1, vec![1]),
            cpg: CpgConfig::default(),
            quorum: None,
        },
        None,
        Time::ZERO,
        Logger::discard(),
    )
    .unwrap();
    let needed = CpgConfig::default().max_message_size + phalanx_cpg::wire::MAX_HEADER;
    assert!(s.totem().config().max_message_size >= needed);
    assert!(s.totem().config().send_queue_bytes >= needed);
}
