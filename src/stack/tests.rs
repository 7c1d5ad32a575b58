//! Stacks on a lossless, zero-latency network driven by hand through
//! `handle_input` / `poll_output`.

use super::*;
use crate::crypto::Cipher;
use crate::link::{DatagramDrop, LinkCrypto};
use phalanx_cpg::{CpgConfig, CpgError, CpgEvent, GroupDelivery};
use phalanx_quorum::{QuorumConfig, QuorumError};
use phalanx_totem::Config;
use std::net::SocketAddr;
use std::time::Duration;

fn addr(id: NodeId) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 5400 + id as u16))
}

fn config(id: NodeId, ids: &[NodeId]) -> StackConfig {
    let mut cfg = StackConfig::new(
        Config::new(id, ids.to_vec()),
        ids.iter().map(|&n| (n, addr(n))).collect(),
    );
    cfg.cpg.incarnation = 7;
    cfg
}

struct Pair {
    stacks: Vec<Stack>,
    now: Time,
    events: Vec<Vec<StackEvent>>,
    /// Persist requests not yet reported, per node (answered by `run_until` unless
    /// `hold_persists`).
    persists: Vec<Vec<Persist>>,
    /// CIB writes asked for, per node (all answered `Ok` by `run_until`).
    cib_writes: Vec<usize>,
    hold_persists: bool,
    stopped: Vec<Option<StopReason>>,
}

impl Pair {
    fn new() -> Self {
        Self::with(|_| None, None)
    }

    fn with_quorum(quorum: impl Fn(NodeId) -> Option<QuorumConfig>) -> Self {
        Self::with(quorum, None)
    }

    /// Nodes 1 and 2 running, each with the quorum configuration `quorum(id)`.
    fn with(quorum: impl Fn(NodeId) -> Option<QuorumConfig>, cipher: Option<Cipher>) -> Self {
        let ids = [1, 2];
        let stacks = ids
            .iter()
            .map(|&id| {
                let mut cfg = config(id, &ids);
                cfg.quorum = quorum(id);
                cfg.crypto = cipher.map(|cipher| LinkCrypto {
                    key: vec![9; 32],
                    cluster_name: "pair".into(),
                    cipher,
                    boot_id: u64::from(id) * 1000,
                });
                Stack::new(cfg, None, Time::ZERO, Logger::discard()).unwrap()
            })
            .collect();
        Self {
            stacks,
            now: Time::ZERO,
            events: vec![Vec::new(), Vec::new()],
            persists: vec![Vec::new(), Vec::new()],
            cib_writes: vec![0, 0],
            hold_persists: false,
            stopped: vec![None, None],
        }
    }

    /// Drains node `i`'s outputs; returns its datagrams as (to node, bytes).
    fn drain(&mut self, i: usize) -> Vec<(usize, Vec<u8>)> {
        let mut wire = Vec::new();
        loop {
            match self.stacks[i].poll_output() {
                Output::Transmit(t) => {
                    let to = usize::from(t.to.port() - 5401);
                    wire.push((to, t.data.to_vec()));
                }
                Output::Event(e) => self.events[i].push(e),
                Output::Persist(p) => self.persists[i].push(p),
                Output::Stopped(r) => self.stopped[i] = Some(r),
                Output::FenceAgent(c) => panic!("no fencing is configured here, yet {c:?}"),
                Output::FenceMetadata { agent } => {
                    panic!("no fencing is configured here, yet metadata of {agent}")
                }
                Output::CibPersist(p) => {
                    self.cib_writes[i] += 1;
                    let input = Input::CibPersisted {
                        id: p.id,
                        result: Ok(()),
                    };
                    self.stacks[i].handle_input(self.now, input).unwrap();
                }
                Output::Timeout(_) => return wire,
            }
        }
    }

    fn answer_persists(&mut self, i: usize) {
        for p in std::mem::take(&mut self.persists[i]) {
            let input = Input::Persisted {
                id: p.id,
                result: Ok(()),
            };
            self.stacks[i].handle_input(self.now, input).unwrap();
        }
    }

    /// Runs until `done` holds (or panics after 20 s of virtual time).
    fn run_until(&mut self, done: impl Fn(&Self) -> bool) {
        for _ in 0..20_000 {
            let mut wire = Vec::new();
            for i in 0..self.stacks.len() {
                if !self.hold_persists {
                    self.answer_persists(i);
                }
                for (to, d) in self.drain(i) {
                    wire.push((i, to, d));
                }
            }
            for (from, to, d) in wire {
                let input = Input::Datagram {
                    link: 0,
                    from: addr(from as NodeId + 1),
                    data: &d,
                };
                let _ = self.stacks[to].handle_input(self.now, input);
            }
            if done(self) {
                return;
            }
            self.now = self.now + Duration::from_millis(1);
            for s in self.stacks.iter_mut() {
                let _ = s.handle_input(self.now, Input::Timeout);
            }
        }
        panic!("did not converge: {:?}", self.events);
    }

    fn request(&mut self, i: usize, r: Request) -> Result<(), InputError> {
        self.stacks[i].handle_input(self.now, Input::Request(r))
    }

    fn cpg(&mut self, i: usize, r: CpgRequest) -> Result<(), InputError> {
        self.request(i, Request::Cpg(r))
    }

    fn quorum(&mut self, i: usize, r: QuorumRequest) -> Result<(), InputError> {
        self.request(i, Request::Quorum(r))
    }
}

fn mcast(data: &[u8]) -> Request {
    let mut msg = vec![0];
    msg.extend_from_slice(data);
    Request::Mcast {
        guarantee: Guarantee::Agreed,
        msg,
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
    p.request(0, mcast(b"raw one")).unwrap();
    let grp = b"grp".to_vec();
    p.cpg(
        1,
        CpgRequest::Join {
            local: 3,
            group: grp.clone(),
        },
    )
    .unwrap();
    p.cpg(
        1,
        CpgRequest::Mcast {
            local: 3,
            group: grp.clone(),
            guarantee: Guarantee::Safe,
            data: b"to the group".to_vec(),
        },
    )
    .unwrap();
    // A member that never joined is refused, typed, and nothing is sent.
    assert_eq!(
        p.cpg(
            1,
            CpgRequest::Mcast {
                local: 4,
                group: grp,
                guarantee: Guarantee::Agreed,
                data: vec![]
            }
        ),
        Err(InputError::Cpg(CpgError::NotExist))
    );
    // The spare first byte is overwritten with the service id.
    let mut owned = vec![0xAA];
    owned.extend_from_slice(b"raw two");
    p.request(
        0,
        Request::Mcast {
            guarantee: Guarantee::Agreed,
            msg: owned,
        },
    )
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
fn held_deliveries_wait_in_order_while_the_token_goes_on() {
    let mut p = Pair::new();
    p.run_until(|p| p.stacks.iter().all(|s| s.totem().is_operational()));
    p.stacks[1].hold_deliveries();
    let sent: Vec<Vec<u8>> = (0..3u8).map(|i| vec![b'm', i]).collect();
    for m in &sent {
        let mut msg = vec![0];
        msg.extend_from_slice(m);
        let safe = Request::Mcast {
            guarantee: Guarantee::Safe,
            msg,
        };
        p.request(0, safe).unwrap();
    }
    // Safe delivery on node 1's peer needs node 1 to have stored every frame
    // and passed the token on: it does so while its own deliveries wait.
    p.run_until(|p| raw(&p.events[0]).len() == sent.len());
    assert_eq!(raw(&p.events[0]), sent);
    assert!(raw(&p.events[1]).is_empty(), "held: {:?}", p.events[1]);
    p.stacks[1].release_deliveries(p.now);
    p.drain(1);
    assert_eq!(raw(&p.events[1]), sent, "released, in order");
    // Released once: a second release changes nothing, and a later message
    // is delivered at once.
    p.stacks[1].release_deliveries(p.now);
    p.request(0, mcast(b"after")).unwrap();
    p.run_until(|p| raw(&p.events[1]).len() == sent.len() + 1);
    assert_eq!(raw(&p.events[1])[sent.len()], b"after");
}

#[test]
fn totem_limits_are_raised_to_hold_a_maximal_cpg_message() {
    let s = Stack::new(config(1, &[1]), None, Time::ZERO, Logger::discard()).unwrap();
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
        assert_eq!(
            (s.stats().unknown_service, s.stats().quorum_malformed),
            (0, 0)
        );
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
        p.quorum(0, QuorumRequest::CancelWaitForAll),
        Err(InputError::Quorum(QuorumRequestError::NotConfigured))
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
    assert_eq!(
        p.quorum(0, QuorumRequest::SetExpectedVotes(1)),
        Err(InputError::Quorum(QuorumRequestError::Quorum(
            QuorumError::InvalidExpectedVotes {
                requested: 1,
                total: 2
            }
        )))
    );
    p.quorum(0, QuorumRequest::SetExpectedVotes(4)).unwrap();
    let changed = |e: &[StackEvent]| {
        quorum_events(e).contains(&&phalanx_quorum::Event::ExpectedVotesChanged(4))
    };
    p.run_until(|p| (0..2).all(|i| changed(&p.events[i])));
    for s in &p.stacks {
        let info = s.quorum().unwrap().info();
        assert_eq!(info.expected_votes, 4);
        assert!(!info.quorate, "2 of 4 votes");
    }
    p.quorum(1, QuorumRequest::SetVotes { node: 2, votes: 3 })
        .unwrap();
    p.run_until(|p| p.stacks.iter().all(|s| s.quorum().unwrap().is_quorate()));
    let ring = p.stacks[0].totem().ring_id();
    assert_eq!(
        p.quorum(0, QuorumRequest::DeviceVote { ring, cast: true }),
        Err(InputError::Quorum(QuorumRequestError::Quorum(
            QuorumError::NoDevice
        )))
    );
    p.quorum(0, QuorumRequest::CancelWaitForAll).unwrap();
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
        let mut cfg = config(1, &[1, 2]);
        cfg.quorum = Some(quorum);
        Stack::new(cfg, None, Time::ZERO, Logger::discard()).map(|_| ())
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

#[test]
fn link_addresses_must_match_totems_node_list() {
    let mut cfg = config(1, &[1, 2]);
    cfg.links[0].addrs.remove(&2);
    assert_eq!(
        Stack::new(cfg, None, Time::ZERO, Logger::discard()).map(|_| ()),
        Err(StackConfigError::LinkNodesDiffer)
    );
}

/// Formation needs a ring-sequence write at each node; while it is not reported,
/// no totem datagram leaves (pings may: they carry no ring state).
#[test]
fn transmits_wait_for_the_ring_sequence_write() {
    let mut p = Pair::new();
    p.hold_persists = true;
    p.run_until(|p| p.persists.iter().any(|v| !v.is_empty()));
    let i = (0..2).find(|&i| !p.persists[i].is_empty()).unwrap();
    assert!(matches!(p.persists[i][0].item, PersistItem::RingSeq(_)));
    let held_before = p.stacks[i].stats().outputs_held;
    // Time passes, inputs come; nothing of totem's leaves node i.
    for _ in 0..50 {
        p.now = p.now + Duration::from_millis(1);
        p.stacks[i].handle_input(p.now, Input::Timeout).unwrap();
        for (_, d) in p.drain(i) {
            assert!(
                crate::link::wire::is_link_datagram(&d),
                "a totem datagram left before its ring sequence was durable"
            );
        }
    }
    assert!(p.stacks[i].stats().outputs_held > held_before || held_before > 0);
    assert!(!p.stacks[i].totem().is_operational());
    // Reported: the held datagrams go, and the ring forms.
    p.hold_persists = false;
    p.run_until(|p| p.stacks.iter().all(|s| s.totem().is_operational()));
    assert_eq!(
        p.stacks[i].handle_input(
            p.now,
            Input::Persisted {
                id: PersistId(999),
                result: Ok(())
            }
        ),
        Err(InputError::UnknownPersist(PersistId(999)))
    );
}

#[test]
fn a_failed_ring_sequence_write_stops_the_stack() {
    let mut p = Pair::new();
    p.hold_persists = true;
    p.run_until(|p| p.persists.iter().any(|v| !v.is_empty()));
    let i = (0..2).find(|&i| !p.persists[i].is_empty()).unwrap();
    let w = p.persists[i].remove(0);
    let failed = PersistFailed("disk full".into());
    p.stacks[i]
        .handle_input(
            p.now,
            Input::Persisted {
                id: w.id,
                result: Err(failed.clone()),
            },
        )
        .unwrap();
    let wire = p.drain(i);
    assert!(wire.is_empty(), "nothing held may leave after the failure");
    let want = StopReason::PersistFailed {
        item: w.item,
        error: failed,
    };
    assert_eq!(p.stopped[i], Some(want.clone()));
    assert_eq!(p.stacks[i].stopped(), Some(&want));
    assert_eq!(p.stacks[i].poll_output(), Output::Timeout(None));
    assert_eq!(
        p.stacks[i].handle_input(p.now, Input::Timeout),
        Err(InputError::Stopped(want))
    );
}

#[test]
fn datagrams_from_strangers_or_forged_are_dropped_and_counted() {
    let mut p = Pair::with(|_| None, Some(Cipher::Aes256Gcm));
    p.run_until(|p| p.stacks.iter().all(|s| s.totem().is_operational()));
    p.request(0, mcast(b"sealed")).unwrap();
    // Capture one of node 1's datagrams to node 2 on the wire.
    let mut captured = None;
    p.run_until(|p| raw(&p.events[1]).contains(&&b"sealed"[..]));
    for _ in 0..20 {
        p.now = p.now + Duration::from_millis(1);
        let _ = p.stacks[0].handle_input(p.now, Input::Timeout);
        if let Some((_, d)) = p.drain(0).into_iter().next() {
            captured = Some(d);
            break;
        }
    }
    let d = captured.expect("node 1 sends pings at least");
    let from1 = addr(1);
    let stranger = SocketAddr::from(([127, 0, 0, 1], 9));
    let s = &mut p.stacks[1];
    let mut input =
        |from, link, data: &[u8]| s.handle_input(p.now, Input::Datagram { link, from, data });
    assert!(input(from1, 0, &d).is_ok());
    assert!(matches!(
        input(from1, 0, &d),
        Err(InputError::Dropped(DatagramDrop::Crypto(
            crate::crypto::OpenError::Replayed { .. }
        )))
    ));
    // A fresh counter (so the replay window lets it through) without the key: the
    // tag cannot verify.
    let mut forged = d.clone();
    forged[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        input(from1, 0, &forged),
        Err(InputError::Dropped(DatagramDrop::Crypto(
            crate::crypto::OpenError::AuthFailed { .. }
        )))
    ));
    assert_eq!(
        input(stranger, 0, &d),
        Err(InputError::Dropped(DatagramDrop::UnknownSource(stranger)))
    );
    assert_eq!(
        input(from1, 3, &d),
        Err(InputError::Dropped(DatagramDrop::NoSuchLink(3)))
    );
    // Node 2's own address: a looped-back datagram.
    assert_eq!(
        input(addr(2), 0, &d),
        Err(InputError::Dropped(DatagramDrop::Own))
    );
    let stats = p.stacks[1].links().stats();
    assert_eq!(
        (stats.rx_unknown_addr, stats.rx_own, stats.rx_bad_link),
        (1, 1, 1)
    );
    let c = p.stacks[1].links().crypto_stats();
    assert_eq!((c.replayed, c.auth_failed), (1, 1));
}

#[test]
fn leave_stops_the_stack_after_saying_goodbye() {
    let mut p = Pair::new();
    p.run_until(|p| p.stacks.iter().all(|s| s.totem().is_operational()));
    p.request(0, Request::Leave).unwrap();
    let wire = p.drain(0);
    assert!(!wire.is_empty(), "the leave message goes out");
    assert_eq!(p.stopped[0], Some(StopReason::Left));
    assert_eq!(
        p.request(0, mcast(b"late")),
        Err(InputError::Stopped(StopReason::Left))
    );
}

#[test]
fn the_cib_requires_quorum_exactly_when_quorum_runs_unless_told() {
    let built = |quorum: bool, require: Option<bool>| {
        let mut cfg = with_cib(1);
        if quorum {
            cfg.quorum = Some(QuorumConfig::new(1, &[1, 2]));
        }
        if let Some(c) = cfg.cib.as_mut() {
            c.require_quorum = require;
        }
        Stack::new(cfg, None, Time::ZERO, Logger::discard())
            .map(|s| s.cib().is_some_and(|c| c.requires_quorum()))
    };
    assert_eq!(built(false, None), Ok(false));
    assert_eq!(built(true, None), Ok(true));
    assert_eq!(built(true, Some(false)), Ok(false));
    assert_eq!(
        built(false, Some(true)),
        Err(StackConfigError::CibQuorumNeedsQuorum)
    );
}

fn with_cib(id: NodeId) -> StackConfig {
    let mut cfg = config(id, &[1, 2]);
    let empty = phalanx_cib::persist::load(|_| None).cib;
    cfg.cib = Some(CibSetup {
        service: phalanx_cib::service::CibServiceConfig::new(id),
        initial: empty,
        validator: None,
        require_quorum: None,
        quorate_seq: 0,
        lineage_version: None,
    });
    cfg
}

fn cib_synced(events: &[StackEvent]) -> bool {
    events.iter().any(|e| {
        matches!(
            e,
            StackEvent::Cib(phalanx_cib::service::CibEvent::Synced { .. })
        )
    })
}

#[test]
fn cib_requests_are_applied_by_every_node_in_total_order() {
    use phalanx_cib::ops::{CallOptions, CibOp, OpContext, Scope};
    use phalanx_cib::service::CibEvent;
    let mut p = Pair::new();
    p.stacks = [1, 2]
        .iter()
        .map(|&id| Stack::new(with_cib(id), None, Time::ZERO, Logger::discard()).unwrap())
        .collect();
    p.run_until(|p| p.events.iter().all(|e| cib_synced(e)));
    let input = phalanx_cib::xml::parse(
        r#"<cluster_property_set id="o"><nvpair id="o-x" name="x" value="1"/></cluster_property_set>"#,
    )
    .unwrap();
    let op = CibOp::Create {
        scope: Scope::Section("crm_config".into()),
        input,
        options: CallOptions::default(),
    };
    let ctx = OpContext {
        now: Some("Sun Dec  6 05:00:00 2026".into()),
        ..OpContext::default()
    };
    p.request(
        0,
        Request::Cib(Box::new(CibRequest {
            client: 9,
            call: 1,
            op,
            ctx,
        })),
    )
    .unwrap();
    p.run_until(|p| {
        let replied = p.events[0].iter().any(|e| {
            matches!(
                e,
                StackEvent::Cib(CibEvent::Reply {
                    client: 9,
                    call: 1,
                    result: Ok(_)
                })
            )
        });
        let diffs = p.events[1]
            .iter()
            .any(|e| matches!(e, StackEvent::Cib(CibEvent::Diff { .. })));
        replied && diffs
    });
    let (a, b) = (p.stacks[0].cib().unwrap(), p.stacks[1].cib().unwrap());
    assert_eq!(a.digest(), b.digest(), "both copies are the same");
    assert_eq!(a.version(), b.version());
    assert!(
        p.cib_writes.iter().all(|&n| n > 0),
        "each node wrote its CIB"
    );
    // Without the service, a CIB request is refused, typed.
    let mut plain = Pair::new();
    let r = plain.request(
        0,
        Request::Cib(Box::new(CibRequest {
            client: 1,
            call: 1,
            op: CibOp::Bump,
            ctx: OpContext::default(),
        })),
    );
    assert_eq!(r, Err(InputError::CibNotConfigured));
}

mod dlm_tests;
