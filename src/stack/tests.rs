//! Two Stacks on a lossless, zero-latency network driven by hand.

use super::*;
use phalanx_cpg::{CpgConfig, GroupDelivery};
use phalanx_quorum::{QuorumConfig, QuorumError};
use phalanx_totem::{Config, Destination};
use std::time::Duration;

struct Pair {
    stacks: Vec<Stack>,
    now: Time,
    events: Vec<Vec<StackEvent>>,
}

impl Pair {
    fn new() -> Self {
        Self::with_quorum(|_| None)
    }

    /// Nodes 1 and 2 running, each with the quorum configuration `quorum(id)`.
    fn with_quorum(quorum: impl Fn(NodeId) -> Option<QuorumConfig>) -> Self {
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
                        quorum: quorum(id),
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

/// Nodes 1 and 2 of a configured 1, 2, 3: two of three votes.
fn two_of_three(id: NodeId) -> Option<QuorumConfig> {
    Some(QuorumConfig::new(id, &[1, 2, 3]))
}

fn quorum_events(events: &[StackEvent]) -> Vec<&phalanx_quorum::Event> {
    events
        .iter()
        .filter_map(|e| match e {
            StackEvent::Quorum(q) => Some(q),
            _ => None,
        })
        .collect()
}

fn quorate_event(events: &[StackEvent]) -> bool {
    quorum_events(events).iter().any(|e| {
        matches!(e, phalanx_quorum::Event::QuorumChanged { quorate: true, nodes, .. } if nodes.len() == 2)
    })
}

#[test]
fn quorum_runs_its_state_exchange_over_totem_and_reports_quorate() {
    let mut p = Pair::with_quorum(two_of_three);
    p.run_until(|p| (0..2).all(|i| quorate_event(&p.events[i])));
    for s in &p.stacks {
        let q = s.quorum().expect("configured");
        let info = q.info();
        assert!(info.quorate && info.synced);
        assert_eq!(info.members, vec![1, 2]);
        assert_eq!((info.expected_votes, info.total_votes), (3, 2));
        assert_eq!(info.ring, Some(s.totem().ring_id()));
        assert_eq!(s.stats(), &StackStats::default());
    }
    // The Stack is quiescent only once the exchange is done and nothing is queued.
    p.run_until(|p| p.stacks.iter().all(Stack::is_quiescent));
}

#[test]
fn a_stack_without_quorum_drops_and_counts_quorum_messages() {
    let mut p = Pair::new();
    p.run_until(|p| p.stacks.iter().all(|s| s.totem().is_operational()));
    assert!(p.stacks[0].quorum().is_none());
    let now = p.now;
    p.stacks[0]
        .totem
        .mcast(now, Guarantee::Agreed, &[ServiceId::Quorum as u8, 1, 2, 3])
        .unwrap();
    p.run_until(|p| p.stacks.iter().all(|s| s.stats().unknown_service == 1));
    assert!(quorum_events(&p.events[1]).is_empty());
    assert_eq!(
        p.stacks[0].quorum_cancel_wait_for_all(now),
        Err(QuorumRequestError::NotConfigured)
    );
}

#[test]
fn malformed_quorum_messages_are_counted_and_dropped() {
    let mut p = Pair::with_quorum(two_of_three);
    p.run_until(|p| (0..2).all(|i| quorate_event(&p.events[i])));
    let now = p.now;
    for bad in [
        &[ServiceId::Quorum as u8][..],
        &[ServiceId::Quorum as u8, 0xff, 0, 7],
    ] {
        p.stacks[1]
            .totem
            .mcast(now, Guarantee::Agreed, bad)
            .unwrap();
    }
    p.run_until(|p| p.stacks.iter().all(|s| s.stats().quorum_malformed == 2));
    for s in &p.stacks {
        let q = s.quorum().unwrap();
        assert_eq!(q.stats().decode_errors, 2);
        assert!(q.is_quorate(), "state untouched");
        assert_eq!(s.stats().unknown_service, 0);
    }
}

#[test]
fn quorum_requests_are_replicated_and_their_events_surface() {
    let mut p = Pair::with_quorum(two_of_three);
    p.run_until(|p| (0..2).all(|i| quorate_event(&p.events[i])));
    let now = p.now;
    assert_eq!(
        p.stacks[0].quorum_set_expected_votes(now, 1),
        Err(QuorumRequestError::Quorum(
            QuorumError::InvalidExpectedVotes {
                requested: 1,
                total: 2
            }
        ))
    );
    p.stacks[0].quorum_set_expected_votes(now, 4).unwrap();
    let changed = |e: &[StackEvent]| {
        quorum_events(e).contains(&&phalanx_quorum::Event::ExpectedVotesChanged(4))
    };
    p.run_until(|p| (0..2).all(|i| changed(&p.events[i])));
    for s in &p.stacks {
        let info = s.quorum().unwrap().info();
        assert_eq!(info.expected_votes, 4);
        assert!(!info.quorate, "2 of 4 votes");
    }
    p.stacks[1].quorum_set_votes(p.now, 2, 3).unwrap();
    p.run_until(|p| p.stacks.iter().all(|s| s.quorum().unwrap().is_quorate()));
    let ring = p.stacks[0].totem().ring_id();
    assert_eq!(
        p.stacks[0].quorum_set_device_vote(p.now, ring, true),
        Err(QuorumRequestError::Quorum(QuorumError::NoDevice))
    );
    p.stacks[0].quorum_cancel_wait_for_all(p.now).unwrap();
}

#[test]
fn the_quorum_timer_is_folded_into_the_stack_deadline() {
    let mut p = Pair::with_quorum(|id| {
        let mut q = QuorumConfig::new(id, &[1, 2, 3]);
        q.last_man_standing = true;
        q.last_man_standing_window = Duration::from_millis(300);
        Some(q)
    });
    // Quorate with 2 of 3: the last-man-standing window is armed.
    p.run_until(|p| {
        p.stacks
            .iter()
            .all(|s| s.quorum().unwrap().poll_timeout().is_some())
    });
    for s in &p.stacks {
        let q = s.quorum().unwrap().poll_timeout().unwrap();
        assert!(s.poll_timeout().is_some_and(|t| t <= q));
    }
    // When it fires, the cores lower expected votes to the members present.
    let lowered = |e: &[StackEvent]| {
        quorum_events(e).contains(&&phalanx_quorum::Event::ExpectedVotesChanged(2))
    };
    p.run_until(|p| (0..2).all(|i| lowered(&p.events[i])));
}

#[test]
fn a_bad_quorum_configuration_is_refused() {
    let build = |quorum| {
        Stack::new(
            StackConfig {
                totem: Config::new(1, vec![1, 2]),
                cpg: CpgConfig::default(),
                quorum: Some(quorum),
            },
            None,
            Time::ZERO,
            Logger::discard(),
        )
        .map(|_| ())
    };
    assert_eq!(
        build(QuorumConfig::new(2, &[1, 2])),
        Err(StackConfigError::QuorumNodeMismatch {
            totem: 1,
            quorum: 2
        })
    );
    let mut q = QuorumConfig::new(1, &[1, 2]);
    q.two_node = true;
    q.auto_tie_breaker = true;
    assert_eq!(
        build(q),
        Err(StackConfigError::Quorum(
            phalanx_quorum::ConfigError::TwoNodeWithAutoTieBreaker
        ))
    );
}
