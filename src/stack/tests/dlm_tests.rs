//! The DLM service on two Stacks: lockspace groups over CPG, a remote lock, its
//! blocking notification and the hand-over, all through the ring.

use super::*;
use phalanx_dlm::{LockFlags, LockRequest, Mode, Owner, Status, UnlockRequest};
use phalanx_fence::Action;
use std::collections::BTreeMap;

fn with_dlm(id: NodeId) -> StackConfig {
    let mut cfg = config(id, &[1, 2]);
    cfg.dlm = Some(DlmSetup::default());
    cfg
}

fn dlm_pair() -> Pair {
    let mut p = Pair::new();
    p.stacks = [1, 2]
        .iter()
        .map(|&id| Stack::new(with_dlm(id), None, Time::ZERO, Logger::discard()).unwrap())
        .collect();
    p
}

fn dlm_events(events: &[StackEvent]) -> impl Iterator<Item = &DlmEvent> {
    events.iter().filter_map(|e| match e {
        StackEvent::Dlm(d) => Some(d),
        _ => None,
    })
}

fn granted(events: &[StackEvent], lock: phalanx_dlm::LockId, mode: Mode) -> bool {
    dlm_events(events).any(|e| {
        matches!(e, DlmEvent::Completion { completion, .. }
            if completion.lock == lock && completion.status == Status::Granted
                && completion.granted == Some(mode))
    })
}

fn both_members(p: &Pair) -> bool {
    p.events.iter().all(|ev| {
        dlm_events(ev).any(|e| matches!(e, DlmEvent::Members { members, .. } if members == &[1, 2]))
    })
}

/// Waits for the two-node ring, then both nodes join lockspace "ls".
fn join_both(p: &mut Pair) {
    p.run_until(|p| p.stacks.iter().all(|s| s.totem().members().len() == 2));
    for i in 0..2 {
        p.stacks[i]
            .dlm_request(
                p.now,
                DlmRequest::Join {
                    name: b"ls".to_vec(),
                },
            )
            .unwrap();
    }
}

#[test]
fn a_remote_lock_is_granted_blocked_notified_and_handed_over_through_the_ring() {
    let mut p = dlm_pair();
    join_both(&mut p);
    p.run_until(both_members);
    // Both nodes see the same epochs for the same views.
    let epochs = |ev: &[StackEvent]| -> Vec<u64> {
        dlm_events(ev)
            .filter_map(|e| match e {
                DlmEvent::Members { epoch, members, .. } if members == &[1, 2] => Some(*epoch),
                _ => None,
            })
            .collect()
    };
    assert_eq!(epochs(&p.events[0]), epochs(&p.events[1]));
    // The application's CPG members never see the service's groups.
    let leaked: Vec<_> = p
        .events
        .iter()
        .flatten()
        .filter(|e| matches!(e, StackEvent::Cpg(CpgEvent::Change(_))))
        .collect();
    assert!(leaked.is_empty(), "{leaked:?}");

    let a = p.stacks[0]
        .dlm_request(
            p.now,
            DlmRequest::Lock {
                lockspace: b"ls".to_vec(),
                request: LockRequest::new(Owner::new(1, 10), "r", Mode::Ex),
            },
        )
        .unwrap()
        .unwrap();
    p.run_until(|p| granted(&p.events[0], a, Mode::Ex));
    let b = p.stacks[1]
        .dlm_request(
            p.now,
            DlmRequest::Lock {
                lockspace: b"ls".to_vec(),
                request: LockRequest::new(Owner::new(2, 20), "r", Mode::Pr),
            },
        )
        .unwrap()
        .unwrap();
    p.run_until(|p| {
        dlm_events(&p.events[0])
            .any(|e| matches!(e, DlmEvent::Blocking { lock, mode: Mode::Pr, .. } if *lock == a))
    });
    assert!(!granted(&p.events[1], b, Mode::Pr), "not while A holds EX");
    p.stacks[0]
        .dlm_request(
            p.now,
            DlmRequest::Unlock {
                lockspace: b"ls".to_vec(),
                request: UnlockRequest::new(Owner::new(1, 10), a),
            },
        )
        .unwrap();
    p.run_until(|p| granted(&p.events[1], b, Mode::Pr));
    let s = p.stacks.iter().map(|s| s.dlm_stats().sent).sum::<u64>();
    assert!(s >= 2, "the lock crossed the ring ({s} messages)");

    // Leaving with a lock held is refused; after the unlock it completes.
    let busy = p.stacks[1].dlm_request(
        p.now,
        DlmRequest::Leave {
            name: b"ls".to_vec(),
        },
    );
    assert_eq!(busy, Err(InputError::Dlm(DlmServiceError::Busy)));
    p.stacks[1]
        .dlm_request(
            p.now,
            DlmRequest::Unlock {
                lockspace: b"ls".to_vec(),
                request: UnlockRequest::new(Owner::new(2, 20), b),
            },
        )
        .unwrap();
    p.run_until(|p| {
        dlm_events(&p.events[1]).any(|e| {
            matches!(e, DlmEvent::Completion { completion, .. }
                if completion.lock == b && completion.status == Status::Unlocked)
        })
    });
    p.stacks[1]
        .dlm_request(
            p.now,
            DlmRequest::Leave {
                name: b"ls".to_vec(),
            },
        )
        .unwrap();
    p.run_until(|p| dlm_events(&p.events[1]).any(|e| matches!(e, DlmEvent::Left { .. })));
    p.run_until(|p| {
        dlm_events(&p.events[0]).any(|e| {
            matches!(e, DlmEvent::Members { members, failed, .. }
            if members == &[1] && failed.is_empty())
        })
    });
    assert_eq!(p.stacks[1].dlm_lockspaces(), vec![]);
}

#[test]
fn dlm_requests_are_refused_typed() {
    let mut p = dlm_pair();
    let r = p.stacks[0].dlm_request(
        p.now,
        DlmRequest::Lock {
            lockspace: b"nope".to_vec(),
            request: LockRequest::new(Owner::new(1, 1), "r", Mode::Ex),
        },
    );
    assert_eq!(r, Err(InputError::Dlm(DlmServiceError::NotJoined)));
    let long = p.stacks[0].dlm_request(
        p.now,
        DlmRequest::Join {
            name: vec![b'x'; 65],
        },
    );
    assert_eq!(long, Err(InputError::Dlm(DlmServiceError::NameTooLong(65))));
    p.stacks[0]
        .dlm_request(
            p.now,
            DlmRequest::Join {
                name: b"a".to_vec(),
            },
        )
        .unwrap();
    let again = p.stacks[0].dlm_request(
        p.now,
        DlmRequest::Join {
            name: b"a".to_vec(),
        },
    );
    assert_eq!(again, Err(InputError::Dlm(DlmServiceError::Exist)));
    // Applications cannot take the service's CPG member id.
    let r = p.cpg(
        0,
        CpgRequest::Join {
            local: DLM_CPG_LOCAL,
            group: b"g".to_vec(),
        },
    );
    assert_eq!(r, Err(InputError::Cpg(CpgError::Exist)));
    let mut plain = Pair::new();
    let r = plain.stacks[0].dlm_request(
        plain.now,
        DlmRequest::Join {
            name: b"a".to_vec(),
        },
    );
    assert_eq!(r, Err(InputError::Dlm(DlmServiceError::NotConfigured)));
}

/// Recovery messages list every mastered name: a node mastering 18 000 names of
/// 64 bytes sends a joining node a `RecoverNames` of about 1.2 MB, above CPG's
/// largest message (1 MiB). It goes in pieces and the newcomer finishes recovery
/// and finds the names' master (without the pieces CPG refuses the message and
/// the lockspace never leaves recovery).
#[test]
fn a_recovery_message_above_cpgs_limit_goes_in_pieces() {
    let mut p = dlm_pair();
    p.run_until(|p| p.stacks.iter().all(|s| s.totem().members().len() == 2));
    let join = |p: &mut Pair, i: usize| {
        p.stacks[i]
            .dlm_request(
                p.now,
                DlmRequest::Join {
                    name: b"ls".to_vec(),
                },
            )
            .unwrap();
    };
    join(&mut p, 0);
    p.run_until(|p| dlm_events(&p.events[0]).any(|e| matches!(e, DlmEvent::Recovered { .. })));
    // Node 1 alone: every name is mastered here, no message.
    let names = 18_000u32;
    let name = |i: u32| format!("{i:0>64}").into_bytes();
    for i in 0..names {
        p.stacks[0]
            .dlm_request(
                p.now,
                DlmRequest::Lock {
                    lockspace: b"ls".to_vec(),
                    request: LockRequest::new(Owner::new(1, 10), name(i), Mode::Nl),
                },
            )
            .unwrap();
    }
    let core_bytes = names as usize * 66;
    assert!(core_bytes > phalanx_cpg::CpgConfig::default().max_message_size);
    for e in &mut p.events {
        e.clear();
    }
    join(&mut p, 1);
    p.run_until(|p| {
        dlm_events(&p.events[1]).any(|e| matches!(e, DlmEvent::Recovered { .. })) && both_members(p)
    });
    assert!(
        p.stacks[0].dlm_stats().sent >= (core_bytes / MAX_DLM_FRAGMENT) as u64,
        "the names went in several pieces"
    );
    // Node 2 knows node 1 masters them: a lock there is granted through node 1.
    let probe = p.stacks[1]
        .dlm_request(
            p.now,
            DlmRequest::Lock {
                lockspace: b"ls".to_vec(),
                request: LockRequest::new(Owner::new(2, 20), name(names - 1), Mode::Pr),
            },
        )
        .unwrap()
        .unwrap();
    p.run_until(|p| granted(&p.events[1], probe, Mode::Pr));
    let dump = p.stacks[1].dlm().unwrap();
    let id = lockspace_id(b"ls");
    assert_eq!(
        dump.locks(id)
            .iter()
            .find(|l| l.id == probe.get())
            .and_then(|l| l.master),
        Some(1)
    );
}

/// `DlmSetup::direct`: the same lock, block, BAST and hand-over, with the lock
/// traffic point-to-point over the links — no CPG message after the joins'
/// recovery.
#[test]
fn with_the_direct_path_lock_traffic_bypasses_the_ring() {
    let mut p = direct_pair_joined();
    let ring_sent: u64 = p.stacks.iter().map(|s| s.dlm_stats().sent).sum();
    let lock = |p: &mut Pair, i: usize, pid: u32, name: &str, mode: Mode| {
        p.stacks[i]
            .dlm_request(
                p.now,
                DlmRequest::Lock {
                    lockspace: b"ls".to_vec(),
                    request: LockRequest::new(Owner::new(i as u32 + 1, pid), name, mode),
                },
            )
            .unwrap()
            .unwrap()
    };
    // Names whose directory is either node: lookups cross too.
    let mut held = Vec::new();
    for r in ["r", "s", "t", "u"] {
        let a = lock(&mut p, 0, 10, r, Mode::Ex);
        p.run_until(|p| granted(&p.events[0], a, Mode::Ex));
        held.push(a);
    }
    let b = lock(&mut p, 1, 20, "r", Mode::Pr);
    p.run_until(|p| {
        dlm_events(&p.events[0]).any(
            |e| matches!(e, DlmEvent::Blocking { lock, mode: Mode::Pr, .. } if *lock == held[0]),
        )
    });
    assert!(
        !granted(&p.events[1], b, Mode::Pr),
        "not while node 1 holds EX"
    );
    p.stacks[0]
        .dlm_request(
            p.now,
            DlmRequest::Unlock {
                lockspace: b"ls".to_vec(),
                request: UnlockRequest::new(Owner::new(1, 10), held[0]),
            },
        )
        .unwrap();
    p.run_until(|p| granted(&p.events[1], b, Mode::Pr));
    let after: u64 = p.stacks.iter().map(|s| s.dlm_stats().sent).sum();
    assert_eq!(after, ring_sent, "no lock traffic on the ring");
    let received: u64 = p.stacks.iter().map(|s| s.dlm_stats().received).sum();
    assert!(
        received >= 2,
        "the request and its grant came direct ({received})"
    );
}

/// Routes every DLM event node `i` has produced so far (what the Node's driver
/// does after handing each to its handles).
fn route_all(p: &mut Pair, i: usize, routed: &mut usize) {
    let n = dlm_events(&p.events[i]).count();
    for _ in *routed..n {
        p.stacks[i].dlm_routed();
    }
    *routed = n;
}

fn fast_lock(fast: &DlmFastPath, request: LockRequest) -> FastCall {
    fast.call(b"ls", FastRequest::Lock(request), |_, _| {})
}

fn fast_unlock(fast: &DlmFastPath, request: UnlockRequest) -> FastCall {
    fast.call(b"ls", FastRequest::Unlock(request), |_, _| {})
}

#[test]
fn the_fast_path_completes_local_calls_at_once_and_leaves_everything_else_to_the_driver() {
    let mut p = dlm_pair();
    join_both(&mut p);
    p.run_until(both_members);
    p.run_until(|p| {
        p.stacks
            .iter()
            .all(|s| s.dlm().unwrap().is_recovering(lockspace_id(b"ls")) == Some(false))
    });
    let fast = p.stacks[0].dlm_fast_path().unwrap();
    // A name whose directory node is node 1: the lookup, the mastery and the
    // grant all happen here.
    let name = (0..)
        .map(|i| format!("r{i}").into_bytes())
        .find(|n| phalanx_dlm::cluster::directory_node(&[1, 2], n) == Some(1))
        .unwrap();
    let owner = Owner::new(1, 10);

    // The membership events are not routed yet: nothing runs here, and the
    // handle's advisory check says so without the service's lock.
    assert!(fast.events_in_flight());
    assert!(matches!(
        fast_lock(&fast, LockRequest::new(owner, name.clone(), Mode::Ex)),
        FastCall::NotRun(_)
    ));
    let mut routed = 0;
    route_all(&mut p, 0, &mut routed);
    assert!(!fast.events_in_flight());

    // Uncontended: the call's own completion, nothing for the driver.
    let FastCall::Completed(Some(a), c) =
        fast_lock(&fast, LockRequest::new(owner, name.clone(), Mode::Ex))
    else {
        panic!("an uncontended local lock completes on the caller's thread");
    };
    assert_eq!(
        (c.lock, c.status, c.granted),
        (a, Status::Granted, Some(Mode::Ex))
    );
    assert_eq!(p.stacks[0].dlm().unwrap().pending_outputs(), 0);

    // NOQUEUE and not grantable: refused the same way, still only its own AST.
    let nq = LockRequest::new(owner, name.clone(), Mode::Ex).with_flags(LockFlags::NOQUEUE);
    let FastCall::Completed(Some(_), c) = fast_lock(&fast, nq) else {
        panic!("a NOQUEUE refusal is the call's own completion");
    };
    assert_eq!((c.status, c.granted), (Status::WouldBlock, None));

    // Contended: the request waits and A gets a BAST — not the caller's own
    // output, so it stays in the core for the driver.
    let FastCall::Accepted(Some(b)) =
        fast_lock(&fast, LockRequest::new(owner, name.clone(), Mode::Pr))
    else {
        panic!("a request that blocks leaves its outputs to the driver");
    };
    assert!(p.stacks[0].dlm().unwrap().pending_outputs() > 0);
    // While that BAST is in flight nothing runs here.
    assert!(matches!(
        fast_unlock(&fast, UnlockRequest::new(owner, a)),
        FastCall::NotRun(_)
    ));
    p.stacks[0].dlm_flush(p.now);
    p.run_until(|p| {
        dlm_events(&p.events[0])
            .any(|e| matches!(e, DlmEvent::Blocking { lock, mode: Mode::Pr, .. } if *lock == a))
    });
    route_all(&mut p, 0, &mut routed);

    // The unlock grants B: two completions, handed to the driver in order.
    assert!(matches!(
        fast_unlock(&fast, UnlockRequest::new(owner, a)),
        FastCall::Accepted(None)
    ));
    p.stacks[0].dlm_flush(p.now);
    p.run_until(|p| granted(&p.events[0], b, Mode::Pr));
    let order: Vec<(phalanx_dlm::LockId, Status)> = dlm_events(&p.events[0])
        .filter_map(|e| match e {
            DlmEvent::Completion { completion, .. } => Some((completion.lock, completion.status)),
            _ => None,
        })
        .collect();
    assert_eq!(
        order,
        vec![(a, Status::Unlocked), (b, Status::Granted)],
        "the driver's events carry only what the fast path did not complete itself"
    );
    route_all(&mut p, 0, &mut routed);

    // Refusals are the driver's answers: an unknown lock, a lockspace not joined.
    assert!(matches!(
        fast_unlock(&fast, UnlockRequest::new(owner, a)),
        FastCall::Refused(DlmServiceError::Lock(_))
    ));
    let other = FastRequest::Lock(LockRequest::new(owner, name.clone(), Mode::Ex));
    assert!(matches!(
        fast.call(b"nope", other, |_, _| {}),
        FastCall::NotRun(_)
    ));
}

/// Nodes 1 and 2 of a two-node cluster with the DLM, votequorum and fencing
/// (no devices: nothing can actually be fenced), or without fencing.
fn dlm_stack(id: NodeId, fencing: bool) -> Stack {
    let mut cfg = with_dlm(id);
    cfg.quorum = Some(QuorumConfig::new(id, &[1, 2]));
    if fencing {
        let names: BTreeMap<NodeId, String> = [(1, "n1".into()), (2, "n2".into())].into();
        cfg.fencing = Some(FencingSetup {
            fencer: phalanx_fence::core::FencerConfig::new(id, &names[&id], 1, 9),
            decision: phalanx_fence::core::DecisionConfig::new(id, [1, 2]),
            devices: Vec::new(),
            levels: Vec::new(),
            names,
            unclean_start: false,
            ring_seq_durable: false,
        });
    }
    Stack::new(cfg, None, Time::ZERO, Logger::discard()).unwrap()
}

/// Runs one Stack alone from `from_ms` to `to_ms` virtual milliseconds (its
/// datagrams go nowhere, its persists succeed) and returns its events.
fn alone(s: &mut Stack, from_ms: u64, to_ms: u64) -> Vec<StackEvent> {
    let mut events = Vec::new();
    for t in from_ms..to_ms {
        let now = Time::ZERO + Duration::from_millis(t);
        let _ = s.handle_input(now, Input::Timeout);
        loop {
            match s.poll_output() {
                Output::Event(e) => events.push(e),
                Output::Persist(p) => {
                    let done = Input::Persisted {
                        id: p.id,
                        result: Ok(()),
                    };
                    s.handle_input(now, done).unwrap();
                }
                Output::Timeout(_) => break,
                _ => {}
            }
        }
    }
    events
}

/// A node alone joins a lockspace at once without fencing; with fencing it
/// waits while the other configured node was never seen (it might be running
/// in a partition, holding locks of the lockspace: found by phalanx-nemesis,
/// where a lone node mastered and granted what others held) — and joins as
/// soon as the other node shows up.
#[test]
fn a_lockspace_join_waits_while_a_configured_node_is_in_doubt() {
    let join = |s: &mut Stack, ms: u64| {
        s.dlm_request(
            Time::ZERO + Duration::from_millis(ms),
            DlmRequest::Join {
                name: b"ls".to_vec(),
            },
        )
        .unwrap();
    };
    let joined = |ev: &[StackEvent]| dlm_events(ev).any(|e| matches!(e, DlmEvent::Joined { .. }));

    let mut open = dlm_stack(1, false);
    alone(&mut open, 0, 5000);
    join(&mut open, 5000);
    let ev = alone(&mut open, 5000, 10_000);
    assert!(
        joined(&ev),
        "no fencing: joined alone (members {:?}): {ev:?}",
        open.totem().members()
    );

    let mut gated = dlm_stack(1, true);
    alone(&mut gated, 0, 5000);
    join(&mut gated, 5000);
    let ev = alone(&mut gated, 5000, 10_000);
    assert_eq!(gated.totem().members(), &[1], "it formed a ring alone");
    assert_eq!(gated.fence_decision().map(|f| f.in_doubt()), Some(vec![2]));
    assert!(!joined(&ev), "joined although node 2 is in doubt");
    assert!(gated.dlm_lockspaces().is_empty());

    // Node 2 shows up: no doubt left, the join goes ahead on both.
    let mut p = Pair::new();
    p.stacks = vec![dlm_stack(1, true), dlm_stack(2, true)];
    for s in p.stacks.iter_mut() {
        join(s, 0);
    }
    p.run_until(both_members);
    assert!(p.events.iter().all(|ev| joined(ev)));
}

/// A cluster of Stacks with the DLM, votequorum and fencing by one power switch
/// (`fence_test`, all nodes), on a lossless network the test cuts into
/// partitions. Fence agent calls are answered by the harness: a reboot or off
/// that succeeds stops the target's Stack (its host went down); while
/// `fail_fencing` holds, every reboot or off fails.
struct Net {
    ids: Vec<NodeId>,
    stacks: Vec<Option<Stack>>,
    now: Time,
    events: Vec<Vec<StackEvent>>,
    /// Partition of each node (nodes talk only within one).
    side: Vec<u8>,
    fail_fencing: bool,
    /// While set, reboot/off agent calls wait in `held` (a slow agent).
    hold_fencing: bool,
    held: Vec<(usize, phalanx_fence::core::AgentCall)>,
    /// Every reboot/off agent call: (the executing node, target name).
    fencings: Vec<(NodeId, String)>,
    /// Restarts so far (each gives a new CPG and fencer incarnation).
    starts: u64,
    /// Per node, the ring sequence its processes made durable (its state
    /// directory's `ringseq` file).
    ring_seqs: Vec<Option<u64>>,
}

/// A node's Stack in [`Net`]: `persisted`, the ring sequence its previous
/// process made durable (kept by the harness as a state directory would).
fn net_stack(
    id: NodeId,
    ids: &[NodeId],
    incarnation: u64,
    now: Time,
    unclean: bool,
    persisted: Option<u64>,
) -> Stack {
    let mut cfg = config(id, ids);
    cfg.cpg.incarnation = incarnation;
    cfg.dlm = Some(DlmSetup::default());
    cfg.quorum = Some(QuorumConfig::new(id, ids));
    let names: BTreeMap<NodeId, String> = ids.iter().map(|n| (*n, format!("n{n}"))).collect();
    let hosts = names.values().cloned().collect::<Vec<_>>().join(",");
    let params = BTreeMap::from([("pcmk_host_list".to_string(), hosts)]);
    let device = phalanx_fence::core::Device::new(
        "switch",
        "fence_test",
        params,
        phalanx_fence::core::AgentCapabilities::power_switch(),
        0,
    )
    .unwrap();
    cfg.fencing = Some(FencingSetup {
        fencer: phalanx_fence::core::FencerConfig::new(id, &names[&id], incarnation, 9),
        decision: phalanx_fence::core::DecisionConfig::new(id, ids.iter().copied()),
        devices: vec![device],
        levels: Vec::new(),
        names,
        unclean_start: unclean,
        ring_seq_durable: true,
    });
    Stack::new(cfg, persisted, now, Logger::discard()).unwrap()
}

impl Net {
    fn new(n: NodeId) -> Net {
        let ids: Vec<NodeId> = (1..=n).collect();
        let stacks = ids
            .iter()
            .map(|&id| Some(net_stack(id, &ids, u64::from(id), Time::ZERO, false, None)))
            .collect();
        Net {
            stacks,
            now: Time::ZERO,
            events: vec![Vec::new(); ids.len()],
            side: vec![0; ids.len()],
            fail_fencing: false,
            hold_fencing: false,
            held: Vec::new(),
            fencings: Vec::new(),
            starts: 0,
            ring_seqs: vec![None; ids.len()],
            ids,
        }
    }

    /// `n` nodes in one ring, every one a member of lockspace `ls`.
    fn with_lockspace(n: NodeId) -> Net {
        let mut net = Net::new(n);
        let size = n as usize;
        net.run_until(10_000, "the ring of every node", |net| {
            net.stacks
                .iter()
                .all(|s| s.as_ref().unwrap().totem().members().len() == size)
        });
        for id in 1..=n {
            net.join(id);
        }
        let all: Vec<NodeId> = (1..=n).collect();
        net.run_until(10_000, "the lockspace of every node", |net| {
            (1..=n).all(|i| ls_members(net.events(i)).is_some_and(|m| m == all.as_slice()))
        });
        net
    }

    fn stack(&mut self, id: NodeId) -> &mut Stack {
        self.stacks[id as usize - 1]
            .as_mut()
            .expect("node is running")
    }

    fn running(&self, id: NodeId) -> bool {
        self.stacks[id as usize - 1].is_some()
    }

    /// Node `id`'s process dies (its host stays up).
    fn kill(&mut self, id: NodeId) {
        self.stacks[id as usize - 1] = None;
    }

    /// Node `id` starts again: a new process, with new incarnations.
    fn restart(&mut self, id: NodeId) {
        self.start_process(id, false);
    }

    /// Node `id` starts again and finds its predecessor's DLM marker of this
    /// boot (`FencingSetup::unclean_start`).
    fn restart_unclean(&mut self, id: NodeId) {
        self.start_process(id, true);
    }

    fn start_process(&mut self, id: NodeId, unclean: bool) {
        self.starts += 1;
        let incarnation = 1000 + self.starts;
        let persisted = self.ring_seqs[id as usize - 1];
        self.stacks[id as usize - 1] = Some(net_stack(
            id,
            &self.ids,
            incarnation,
            self.now,
            unclean,
            persisted,
        ));
        self.events[id as usize - 1].clear();
    }

    fn join(&mut self, id: NodeId) {
        let now = self.now;
        self.stack(id)
            .dlm_request(
                now,
                DlmRequest::Join {
                    name: b"ls".to_vec(),
                },
            )
            .unwrap();
    }

    fn lock(&mut self, id: NodeId, pid: u32, name: &str, mode: Mode) -> phalanx_dlm::LockId {
        let now = self.now;
        self.stack(id)
            .dlm_request(
                now,
                DlmRequest::Lock {
                    lockspace: b"ls".to_vec(),
                    request: LockRequest::new(Owner::new(id, pid), name, mode),
                },
            )
            .unwrap()
            .unwrap()
    }

    fn events(&self, id: NodeId) -> &[StackEvent] {
        &self.events[id as usize - 1]
    }

    /// One pass: every running Stack's outputs, agent calls answered, datagrams
    /// delivered within partitions.
    fn step(&mut self) {
        let mut wire = Vec::new();
        let mut calls = Vec::new();
        for i in 0..self.stacks.len() {
            let Some(s) = self.stacks[i].as_mut() else {
                continue;
            };
            loop {
                match s.poll_output() {
                    Output::Transmit(t) => {
                        let to = usize::from(t.to.port() - 5401);
                        wire.push((i, to, t.data.to_vec()));
                    }
                    Output::Event(e) => self.events[i].push(e),
                    Output::Persist(p) => {
                        if let PersistItem::RingSeq(seq) = p.item {
                            self.ring_seqs[i] = Some(seq);
                        }
                        let done = Input::Persisted {
                            id: p.id,
                            result: Ok(()),
                        };
                        s.handle_input(self.now, done).unwrap();
                    }
                    Output::FenceAgent(c) => calls.push((i, c)),
                    Output::Timeout(_) => break,
                    _ => {}
                }
            }
        }
        if !self.hold_fencing {
            calls.append(&mut self.held);
        }
        for (i, c) in calls {
            let kills = matches!(c.action, Action::Reboot | Action::Off);
            if kills && self.hold_fencing {
                self.held.push((i, c));
                continue;
            }
            let outcome = if kills && self.fail_fencing {
                phalanx_fence::core::CallOutcome::Failed {
                    exit_code: Some(1),
                    reason: "switch unreachable".into(),
                }
            } else {
                phalanx_fence::core::CallOutcome::Success {
                    output: self
                        .ids
                        .iter()
                        .map(|n| format!("n{n}\n"))
                        .collect::<String>(),
                }
            };
            if kills && !self.fail_fencing {
                let target = c.target.clone().unwrap_or_default();
                self.fencings.push((i as NodeId + 1, target.clone()));
                if let Some(n) = target
                    .strip_prefix('n')
                    .and_then(|n| n.parse::<usize>().ok())
                {
                    self.stacks[n - 1] = None;
                }
            }
            if let Some(s) = self.stacks[i].as_mut() {
                let _ = s.handle_input(
                    self.now,
                    Input::FenceAgentDone {
                        call: c.call,
                        outcome,
                    },
                );
            }
        }
        for (from, to, d) in wire {
            if self.side[from] != self.side[to] {
                continue;
            }
            if let Some(s) = self.stacks[to].as_mut() {
                let input = Input::Datagram {
                    link: 0,
                    from: addr(from as NodeId + 1),
                    data: &d,
                };
                let _ = s.handle_input(self.now, input);
            }
        }
        self.now = self.now + Duration::from_millis(1);
        for s in self.stacks.iter_mut().flatten() {
            let _ = s.handle_input(self.now, Input::Timeout);
        }
    }

    /// Steps until `done` (panics after `ms` virtual milliseconds).
    fn run_until(&mut self, ms: u64, what: &str, done: impl Fn(&Net) -> bool) {
        for _ in 0..ms {
            if done(self) {
                return;
            }
            self.step();
        }
        panic!("{what}: not within {ms} ms (fencings {:?})", self.fencings);
    }

    /// Steps for `ms` virtual milliseconds.
    fn run_for(&mut self, ms: u64) {
        for _ in 0..ms {
            self.step();
        }
    }
}

fn ls_members(ev: &[StackEvent]) -> Option<&Vec<NodeId>> {
    dlm_events(ev)
        .filter_map(|e| match e {
            DlmEvent::Members { members, .. } => Some(members),
            _ => None,
        })
        .last()
}

fn recovered_count(ev: &[StackEvent]) -> usize {
    dlm_events(ev)
        .filter(|e| matches!(e, DlmEvent::Recovered { .. }))
        .count()
}

/// DLM fencing requests in `id`'s fencer history: targets.
fn dlm_fence_targets(net: &mut Net, id: NodeId) -> Vec<String> {
    net.stack(id)
        .fencer()
        .map(|f| {
            f.history()
                .entries()
                .filter(|h| h.client == DLM_FENCE_CLIENT && h.origin == id)
                .map(|h| h.target.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// Node 3 takes EX on `r`, then node 2 asks for EX and waits: node 2's lock.
fn node_3_holds_r_and_node_2_waits(net: &mut Net) -> phalanx_dlm::LockId {
    let held = net.lock(3, 30, "r", Mode::Ex);
    net.run_until(5_000, "node 3 holds r", |n| {
        granted(n.events(3), held, Mode::Ex)
    });
    let wanted = net.lock(2, 20, "r", Mode::Ex);
    net.run_for(200);
    assert!(
        !granted(net.events(2), wanted, Mode::Ex),
        "r is held by node 3"
    );
    wanted
}

/// Gap (a) of issue 14, found by phalanx-nemesis on real processes: node 3's
/// process dies holding EX on `r`; the decision's fencing of node 3 fails and
/// node 3 is restarted and rejoins the ring before anyone fenced it. The rejoin
/// clears the loss in the fence decision, but the lockspace must not take it as
/// a fencing (the host was never power-cycled): nodes 1 and 2 keep waiting, the
/// fence actor (node 1) asks for the fencing of node 3 itself, and only then
/// does the lockspace recover and grant node 2's EX.
#[test]
fn a_node_restarted_before_it_was_fenced_is_still_fenced_and_recovery_waits_for_it() {
    let mut net = Net::with_lockspace(3);
    // Node 3 holds EX on `r` (mastered wherever the directory says).
    let wanted = node_3_holds_r_and_node_2_waits(&mut net);

    // Node 3's process dies; its fencing fails for now.
    net.fail_fencing = true;
    net.kill(3);
    net.run_until(10_000, "lockspace waits for node 3's fencing", |n| {
        dlm_events(n.events(1)).any(|e| matches!(e, DlmEvent::AwaitFencing { node: 3 }))
    });
    let failed_at = net.stack(1).fence_decision().unwrap().incarnation(3);
    // Restarted before any fencing: it rejoins the ring and the lockspace.
    net.restart(3);
    net.join(3);
    net.run_until(10_000, "node 3 back: the decision cleared its loss", |n| {
        n.stacks[0]
            .as_ref()
            .unwrap()
            .fence_decision()
            .unwrap()
            .state(3)
            == phalanx_fence::core::NodeFenceState::Member
    });
    net.run_for(3_000);
    assert!(
        !granted(net.events(2), wanted, Mode::Ex),
        "granted what node 3's first process held, with nobody fencing node 3"
    );
    assert!(
        !net.stack(1)
            .fence_decision()
            .unwrap()
            .is_fenced_since(3, failed_at)
    );
    // The switch works again: the fence actor's request goes through.
    net.fail_fencing = false;
    net.run_until(10_000, "node 3 fenced and r granted to node 2", |n| {
        granted(n.events(2), wanted, Mode::Ex)
    });
    assert!(
        !net.running(3),
        "the fencing stopped node 3's second process"
    );
    // As the nemesis judges it: the grant comes after node 2's fence decision
    // reported node 3 fenced (the fencing of a member counts once it left).
    let ev = net.events(2);
    let fenced_at = ev
        .iter()
        .rposition(|e| {
            matches!(
                e,
                StackEvent::Fence(FenceNotice::NodeFenced { node: 3, .. })
            )
        })
        .expect("node 2 recorded node 3 fenced");
    let granted_at = ev
        .iter()
        .position(|e| {
            matches!(e, StackEvent::Dlm(DlmEvent::Completion { completion, .. })
                if completion.lock == wanted && completion.status == Status::Granted)
        })
        .unwrap();
    assert!(
        fenced_at < granted_at,
        "granted before the fencing was recorded"
    );
    // Failed requests were asked again (one at a time, within the decision's
    // max attempts), then the working one: all of node 3.
    let asked = dlm_fence_targets(&mut net, 1);
    assert!(
        !asked.is_empty() && asked.len() <= 10 && asked.iter().all(|t| t == "n3"),
        "{asked:?}"
    );
    assert!(
        dlm_fence_targets(&mut net, 2).is_empty(),
        "node 1 is the actor"
    );
    assert!(
        net.fencings.iter().all(|(_, t)| t == "n3"),
        "{:?}",
        net.fencings
    );
    assert!(net.running(1) && net.running(2));
}

/// The gap the nemesis left open (docs/dlm.md, "Fence time ≥ failure time"):
/// node 3 dies holding EX and every process that saw it die is gone too, so
/// nothing running remembers its lock. Its next process finds its marker of
/// this boot and says so: nobody joins the lockspace — not even with joins
/// asked for at the first ring, before node 3 has spoken — until node 3 is
/// fenced (by node 1, the lowest other member); then node 1 gets the EX.
#[test]
fn a_process_that_restarts_unclean_is_fenced_before_any_lockspace_forms() {
    let mut net = Net::with_lockspace(3);
    let held = net.lock(3, 30, "r", Mode::Ex);
    net.run_until(5_000, "node 3 holds r", |n| {
        granted(n.events(3), held, Mode::Ex)
    });
    // Every process dies; the fresh ones know nothing of `r`.
    for id in [1, 2, 3] {
        net.kill(id);
    }
    net.run_for(100);
    net.restart(1);
    net.restart(2);
    net.restart_unclean(3);
    net.join(1);
    net.join(2);
    net.run_until(20_000, "node 3 fenced", |n| !n.running(3));
    for id in [1, 2] {
        assert!(
            !dlm_events(net.events(id)).any(|e| matches!(e, DlmEvent::Joined { .. })),
            "node {id} joined the lockspace before node 3 was fenced"
        );
    }
    assert_eq!(net.fencings, vec![(1, "n3".to_string())]);
    net.run_until(10_000, "the lockspace of nodes 1 and 2", |n| {
        ls_members(n.events(1)).is_some_and(|m| m == [1, 2].as_slice())
    });
    let wanted = net.lock(1, 10, "r", Mode::Ex);
    net.run_until(10_000, "r granted to node 1", |n| {
        granted(n.events(1), wanted, Mode::Ex)
    });
    // Node 3's next process (a new boot: no marker) takes part again.
    net.restart(3);
    net.join(3);
    net.run_until(10_000, "node 3 in the lockspace", |n| {
        ls_members(n.events(3)).is_some_and(|m| m == [1, 2, 3].as_slice())
    });
    assert_eq!(net.fencings.len(), 1, "{:?}", net.fencings);
}

/// Node 3 restarts unclean at once, and the fencing of its loss fails until
/// it is a member again (the decision then clears the loss). At every step
/// from the first ring that has its new process until the fencing stops it,
/// node 1 counts it in doubt. (How many of those steps the decision alone
/// would have let through, before node 3's `Present` arrived, is printed: in
/// this harness none — its word comes before votequorum reports the ring —
/// so the "word of this configuration" rule is not what makes this pass.)
#[test]
fn a_restarted_member_is_in_doubt_until_its_word_is_delivered() {
    let mut net = Net::with_lockspace(3);
    let old_ring = net.stack(1).totem().ring_id();
    // The fencing of its loss fails at first, so that it rejoins before it
    // is fenced (the decision then clears the loss: a member again).
    net.fail_fencing = true;
    net.kill(3);
    net.restart_unclean(3);
    let mut window = 0;
    let mut member_steps = 0;
    for _ in 0..20_000 {
        net.step();
        let running3 = net.running(3);
        let s1 = net.stack(1);
        let d = s1.fence_decision().unwrap();
        // Node 3's new process: a member of a ring formed since the restart.
        let new_process = s1.totem().ring_id() != old_ring && s1.totem().members().contains(&3);
        if !new_process || d.state(3) != phalanx_fence::core::NodeFenceState::Member {
            continue;
        }
        member_steps += 1;
        if member_steps == 200 {
            net.fail_fencing = false;
        }
        let s1 = net.stack(1);
        let d = s1.fence_decision().unwrap();
        if !d.in_doubt().contains(&3) {
            // The decision alone would let a join through here.
            window += 1;
        }
        assert!(
            s1.fence_in_doubt().contains(&3),
            "node 3 out of doubt on node 1 before it was fenced: running {}, decision in doubt {:?}, fenced member {}, ring {:?}, {}",
            running3,
            d.in_doubt(),
            d.is_fenced_member(3),
            s1.totem().members(),
            s1.fence_debug()
        );
        if !running3 {
            break;
        }
    }
    assert!(!net.running(3), "node 3 was not fenced");
    assert!(member_steps > 0);
    eprintln!("steps with node 3 a member: {member_steps}, of them before its word: {window}");
}

/// Gap (b) of issue 14: four nodes split into {1,2} and {3,4}, neither
/// quorate, so nobody fences; each side's lockspace waits for the other's
/// nodes. They merge: the decision clears every loss (a rejoin), but the same
/// processes came back with their state. Before, the lockspace waited for ever.
/// Now the lowest id of the merged lockspace (node 1) fences the others' nodes
/// (3 and 4), nodes 3 and 4 fence nobody, and recovery completes on 1 and 2:
/// node 1 gets the EX node 3 held.
#[test]
fn a_merge_of_inquorate_partitions_fences_the_high_side_and_recovers() {
    let mut net = Net::with_lockspace(4);
    let held = net.lock(3, 30, "r", Mode::Ex);
    net.run_until(5_000, "node 3 holds r", |n| {
        granted(n.events(3), held, Mode::Ex)
    });
    net.side = vec![0, 0, 1, 1];
    net.run_until(10_000, "both sides wait for fencing", |n| {
        dlm_events(n.events(1)).any(|e| matches!(e, DlmEvent::AwaitFencing { node: 3 }))
            && dlm_events(n.events(3)).any(|e| matches!(e, DlmEvent::AwaitFencing { node: 1 }))
    });
    let wanted = net.lock(1, 10, "r", Mode::Ex);
    net.run_for(2_000);
    assert!(net.fencings.is_empty(), "inquorate sides fence nobody");
    let recovered_before = recovered_count(net.events(1));
    // The merge.
    net.side = vec![0; 4];
    net.run_until(15_000, "recovery on node 1 after the merge", |n| {
        granted(n.events(1), wanted, Mode::Ex)
    });
    assert!(recovered_count(net.events(1)) > recovered_before);
    assert!(
        !net.running(3) && !net.running(4),
        "node 1 fenced the other side"
    );
    assert!(
        net.running(1) && net.running(2),
        "nobody fenced node 1's side"
    );
    let mut targets = dlm_fence_targets(&mut net, 1);
    targets.sort();
    assert_eq!(targets, ["n3", "n4"]);
    assert!(
        net.fencings.iter().all(|(_, t)| t == "n3" || t == "n4"),
        "{:?}",
        net.fencings
    );
    assert_eq!(
        ls_members(net.events(2)).map(|m| m.as_slice()),
        Some(&[1, 2][..])
    );
}

/// Found by phalanx-nemesis after the fixes above: a fresh process asks to join
/// a lockspace in a quorate ring with nobody in doubt, but its CPG join is
/// delivered after the ring broke — its first view shows it alone, nobody
/// left, and it mastered and granted what the others held. The join now
/// waits at its first view for the nodes in doubt then: no grant while alone;
/// once they are members again (and CPG's exchange is over), recovery runs
/// with them and the grant waits for the holder as usual.
#[test]
fn a_join_that_completes_after_the_ring_broke_waits_for_the_nodes_in_doubt() {
    let mut net = Net::new(3);
    net.run_until(10_000, "ring of three", |n| {
        (1..=3).all(|i| {
            n.stacks[i - 1]
                .as_ref()
                .unwrap()
                .fence_decision()
                .unwrap()
                .in_doubt()
                .is_empty()
                && n.stacks[i - 1].as_ref().unwrap().totem().members().len() == 3
        })
    });
    for id in 1..=2 {
        net.join(id);
    }
    net.run_until(10_000, "lockspace of two", |n| {
        (1..=2).all(|i| ls_members(n.events(i)).is_some_and(|m| m == &[1, 2]))
    });
    let held = net.lock(1, 10, "r", Mode::Ex);
    net.run_until(5_000, "node 1 holds r", |n| {
        granted(n.events(1), held, Mode::Ex)
    });
    // Node 3 asks to join with nobody in doubt; the ring breaks at once.
    net.join(3);
    net.fail_fencing = true;
    net.side = vec![0, 0, 1];
    net.run_until(10_000, "node 3's join completes alone", |n| {
        ls_members(n.events(3)).is_some_and(|m| m == &[3])
    });
    let wanted = net.lock(3, 30, "r", Mode::Ex);
    net.run_for(3_000);
    assert!(
        !granted(net.events(3), wanted, Mode::Ex),
        "node 3 alone granted EX on r, which node 1 holds"
    );
    assert!(
        dlm_events(net.events(3)).any(|e| matches!(e, DlmEvent::AwaitFencing { node: 1 })),
        "it waits for node 1"
    );
    // The partition heals: one lockspace again, the grant waits for node 1.
    net.side = vec![0; 3];
    net.run_until(10_000, "one lockspace of three", |n| {
        (1..=3).all(|i| ls_members(n.events(i)).is_some_and(|m| m == &[1, 2, 3]))
    });
    net.run_for(1_000);
    assert!(
        !granted(net.events(3), wanted, Mode::Ex),
        "node 1 still holds r"
    );
    let now = net.now;
    net.stack(1)
        .dlm_request(
            now,
            DlmRequest::Unlock {
                lockspace: b"ls".to_vec(),
                request: UnlockRequest::new(Owner::new(1, 10), held),
            },
        )
        .unwrap();
    net.run_until(10_000, "node 3 granted after node 1's unlock", |n| {
        granted(n.events(3), wanted, Mode::Ex)
    });
    assert!(
        net.fencings.is_empty(),
        "nobody was fenced: {:?}",
        net.fencings
    );
}

/// Two Stacks with the direct path, joined to lockspace "ls" and recovered.
fn direct_pair_joined() -> Pair {
    let mut p = Pair::new();
    p.stacks = [1, 2]
        .iter()
        .map(|&id| {
            let mut cfg = with_dlm(id);
            cfg.dlm = Some(DlmSetup {
                direct: true,
                ..DlmSetup::default()
            });
            Stack::new(cfg, None, Time::ZERO, Logger::discard()).unwrap()
        })
        .collect();
    join_both(&mut p);
    p.run_until(|p| {
        both_members(p)
            && p.stacks
                .iter()
                .all(|s| s.dlm().unwrap().is_recovering(lockspace_id(b"ls")) == Some(false))
    });
    p
}

/// Node `i` (index) asks for `request` in lockspace "ls"; its lock id.
fn lock_on(p: &mut Pair, i: usize, request: LockRequest) -> phalanx_dlm::LockId {
    p.stacks[i]
        .dlm_request(
            p.now,
            DlmRequest::Lock {
                lockspace: b"ls".to_vec(),
                request,
            },
        )
        .unwrap()
        .unwrap()
}

/// A name both of whose roles (directory, master) are node 2's — node 2 asks
/// first, so masters it — and node 2's lock on it in `mode`, granted.
fn mastered_by_node_2(p: &mut Pair, mode: Mode) -> (Vec<u8>, phalanx_dlm::LockId) {
    let name = (0..)
        .map(|i| format!("r{i}").into_bytes())
        .find(|n| phalanx_dlm::cluster::directory_node(&[1, 2], n) == Some(2))
        .unwrap();
    let held = lock_on(
        p,
        1,
        LockRequest::new(Owner::new(2, 20), name.clone(), mode),
    );
    p.run_until(|p| granted(&p.events[1], held, mode));
    (name, held)
}

/// The direct path from the caller's thread: a fast-path call whose request
/// goes to a remote master leaves its datagrams for the calling thread
/// (`take_transmits`), sealed and addressed as the driver's; the peer grants
/// from them alone, and the driver has nothing left to send for the call.
#[test]
fn an_application_thread_sends_the_direct_path_datagrams_itself() {
    let mut p = direct_pair_joined();
    let (name, _) = mastered_by_node_2(&mut p, Mode::Nl);
    let mut routed = 0;
    route_all(&mut p, 0, &mut routed);
    let fast = p.stacks[0].dlm_fast_path().unwrap();
    let FastCall::Accepted(Some(a)) =
        fast_lock(&fast, LockRequest::new(Owner::new(1, 10), name, Mode::Ex))
    else {
        panic!("a lock mastered elsewhere is accepted, not completed");
    };
    let transmits = fast.take_transmits(p.now);
    assert!(!transmits.is_empty(), "the lookup goes from this thread");
    assert!(transmits.iter().all(|t| t.to == addr(2) && t.link == 0));
    assert_eq!(p.stacks[0].dlm().unwrap().pending_outputs(), 0);
    assert_eq!(
        fast.driver_wanted_by().map(|t| t > p.now.as_nanos()),
        Some(true),
        "only the channel's timer is left for the driver"
    );
    // The driver's pump finds nothing more to send for it.
    p.stacks[0].dlm_flush(p.now);
    let driver_sent: Vec<(usize, Vec<u8>)> = p.drain(0);
    assert!(
        driver_sent
            .iter()
            .all(|(_, d)| !d.starts_with(&phalanx_dlm::channel::MAGIC)),
        "no channel datagram left for the driver"
    );
    let sent = transmits.len() as u64;
    for t in transmits {
        let input = Input::Datagram {
            link: 0,
            from: addr(1),
            data: &t.data,
        };
        p.stacks[1].handle_input(p.now, input).unwrap();
    }
    assert!(p.stacks[0].dlm_stats().app_thread_datagrams >= sent);
    // The lookup's answer, then the request (again from here), then the grant.
    p.run_until(|p| granted(&p.events[0], a, Mode::Ex));
    assert_eq!(p.stacks[0].dlm_stats().app_thread_send_errors, 0);
}

/// A request to a remote master leaves the node awaiting its answer (what
/// the driver polls for instead of sleeping); the grant ends the wait, and
/// holding the lock awaits nothing. A BAST to a holder awaits its unlock.
#[test]
fn a_request_to_a_remote_master_awaits_its_answer_until_the_grant() {
    let mut p = direct_pair_joined();
    let (name, held) = mastered_by_node_2(&mut p, Mode::Pr);
    assert!(!p.stacks[0].dlm_awaits_peers() && !p.stacks[1].dlm_awaits_peers());
    let mine = lock_on(
        &mut p,
        0,
        LockRequest::new(Owner::new(1, 10), name, Mode::Pr),
    );
    assert!(p.stacks[0].dlm_awaits_peers(), "a lookup went to node 2");
    p.run_until(|p| granted(&p.events[0], mine, Mode::Pr));
    assert!(!p.stacks[0].dlm_awaits_peers(), "the grant answered it");
    assert!(!p.stacks[1].dlm_awaits_peers(), "the master awaits nothing");
    // Node 2 wants EX: its master (itself) sends node 1 a BAST and awaits the
    // holder's answer.
    let conv = lock_on(
        &mut p,
        1,
        LockRequest::convert(Owner::new(2, 20), held, Mode::Ex),
    );
    assert_eq!(conv, held);
    assert!(p.stacks[1].dlm_awaits_peers(), "a BAST went to node 1");
    p.stacks[0]
        .dlm_request(
            p.now,
            DlmRequest::Unlock {
                lockspace: b"ls".to_vec(),
                request: UnlockRequest::new(Owner::new(1, 10), mine),
            },
        )
        .unwrap();
    p.run_until(|p| granted(&p.events[1], held, Mode::Ex));
    assert!(
        !p.stacks[1].dlm_awaits_peers(),
        "the unlock answered the BAST"
    );
    assert!(
        !p.stacks[0].dlm_awaits_peers(),
        "the unlock's AST answered it"
    );
}

/// While a ring-sequence write is outstanding no datagram may leave (the
/// persist gate): the caller's thread takes none either.
#[test]
fn the_caller_s_thread_sends_nothing_while_the_persist_gate_holds() {
    let mut p = direct_pair_joined();
    let name = (0..)
        .map(|i| format!("r{i}").into_bytes())
        .find(|n| phalanx_dlm::cluster::directory_node(&[1, 2], n) == Some(2))
        .unwrap();
    let mut routed = 0;
    route_all(&mut p, 0, &mut routed);
    let fast = p.stacks[0].dlm_fast_path().unwrap();
    assert!(matches!(
        fast_lock(&fast, LockRequest::new(Owner::new(1, 10), name, Mode::Ex)),
        FastCall::Accepted(_)
    ));
    p.stacks[0].dlm_set_gated(true);
    assert!(fast.take_transmits(p.now).is_empty());
    assert_eq!(fast.driver_wanted_by(), None, "the driver must send them");
    p.stacks[0].dlm_set_gated(false);
    assert!(!fast.take_transmits(p.now).is_empty());
}

/// The gate's state reaches the DLM service: a ring being formed with its
/// sequence write held gates the caller's thread until the write is reported.
#[test]
fn a_held_ring_sequence_write_gates_the_caller_s_thread() {
    let mut p = direct_pair_joined();
    p.hold_persists = true;
    // Node 1 is cut off (its datagrams lost, none reach it): it forms a ring
    // of its own, writing the ring's sequence first.
    let before = p.stacks[0].stats().persist_requests;
    assert!(!p.stacks[0].dlm_gated());
    for _ in 0..10_000 {
        if p.stacks[0].stats().persist_requests > before {
            break;
        }
        p.now = p.now + Duration::from_millis(1);
        p.stacks[0].handle_input(p.now, Input::Timeout).unwrap();
        let _lost = p.drain(0);
    }
    assert!(p.stacks[0].stats().persist_requests > before);
    assert!(p.stacks[0].dlm_gated());
    p.hold_persists = false;
    p.run_until(|p| !p.stacks[0].dlm_gated());
}

/// A restart faster than the token timeout after a fencing of a member: an
/// administrator fences node 3, the agent stops its process and the next one
/// starts at once. Totem shows that as a leave (the new process is not of the
/// old ring) and a join; the fence decision reports the first process's loss
/// fenced and numbers the second a new incarnation. The lockspace's view lags:
/// it sees the first process fail only after the decision saw the second
/// join, and dated the failure to the decision's *current* incarnation — the
/// healthy second process — so the fence actor had node 3 fenced again (found
/// by this test). The failure is now dated to the incarnation of the ring of
/// the view that last showed it (`FenceDecision::incarnation_in`): no second
/// fencing, the new process joins. Then that process takes EX on `r` and dies
/// with fencing failing for now: the first fencing must not cover it, so node
/// 2 gets the EX only after a fencing of the second process.
#[test]
fn a_process_restarted_faster_than_the_token_after_a_fencing_is_not_fenced_again_nor_covered() {
    let mut net = Net::with_lockspace(3);
    let first = net.stack(1).fence_decision().unwrap().incarnation(3);
    let now = net.now;
    let admin = phalanx_fence::core::FenceRequest::new("n3", Action::Reboot, "admin", 1);
    net.stack(1)
        .handle_input(
            now,
            Input::Request(Request::Fence(FenceCommand::Fence(admin))),
        )
        .unwrap();
    net.run_until(10_000, "the administrator's fencing stopped node 3", |n| {
        !n.running(3)
    });
    // The next process, at once: nobody sees node 3 leave the ring.
    net.restart(3);
    net.join(3);
    net.run_until(20_000, "node 3's new process in the lockspace", |n| {
        ls_members(n.events(3)).is_some_and(|m| m == [1, 2, 3].as_slice())
    });
    assert_eq!(net.fencings, vec![(1, "n3".to_string())]);
    let second = net.stack(1).fence_decision().unwrap().incarnation(3);
    assert!(
        second > first,
        "node 1's decision took the new process for the fenced one ({first} → {second})"
    );
    let wanted = node_3_holds_r_and_node_2_waits(&mut net);
    // The second process dies; its fencing fails for now.
    net.fail_fencing = true;
    net.kill(3);
    net.run_for(5_000);
    assert!(
        !granted(net.events(2), wanted, Mode::Ex),
        "granted what node 3's second process held on the strength of the first one's fencing"
    );
    net.fail_fencing = false;
    net.run_until(20_000, "node 3 fenced again and r granted to node 2", |n| {
        granted(n.events(2), wanted, Mode::Ex)
    });
    assert_eq!(net.fencings.len(), 2, "{:?}", net.fencings);
    assert!(
        net.fencings.iter().all(|(_, t)| t == "n3"),
        "{:?}",
        net.fencings
    );
}

/// The race of a CI failure of `tests/dlm_cluster.rs` (2026-12-07), replayed
/// with a slow agent: node 3's process restarts unclean while node 1 is down;
/// node 2, the lowest other member, asks for node 3's fencing and the agent
/// takes its time. Node 1's next process joins meanwhile: it sees node 3 join
/// in a ring the request does not name, waits for the pending operation, and
/// — before processes said their first ring — did not count its success and
/// asked again, the second fencing stopping node 3's *next* process, started
/// clean right after the first. Now the request names node 3's first ring,
/// which node 3's word told node 1: one fencing, and node 3's next process
/// stays up.
#[test]
fn a_node_that_joins_while_a_member_s_fencing_runs_counts_it_and_asks_no_second_one() {
    let mut net = Net::new(3);
    net.run_until(10_000, "every node a member in every fence decision", |n| {
        n.stacks.iter().all(|s| {
            let d = s.as_ref().unwrap().fence_decision().unwrap();
            (1..=3).all(|m| d.state(m) == phalanx_fence::core::NodeFenceState::Member)
        })
    });
    // Node 1's process dies; nodes 2 and 3 fence it (the harness's agent).
    net.kill(1);
    net.run_until(10_000, "node 1 fenced", |n| {
        n.fencings.iter().any(|(_, t)| t == "n1")
    });
    // Node 3's process restarts unclean; its fencing is slow.
    net.hold_fencing = true;
    net.kill(3);
    net.restart_unclean(3);
    net.run_until(10_000, "node 2 asked for node 3's fencing", |n| {
        !n.held.is_empty()
    });
    // Node 1's next process joins while that fencing runs.
    net.restart(1);
    net.run_until(10_000, "node 1 in a ring with nodes 2 and 3", |n| {
        n.stacks[0]
            .as_ref()
            .is_some_and(|s| s.totem().members().len() == 3)
    });
    net.run_for(500);
    assert_eq!(net.held.len(), 1, "node 1 asked as well: {:?}", net.held);
    // The agent finishes: node 3's process is stopped and its next one
    // (a power-cycled host: no marker) starts at once.
    net.hold_fencing = false;
    net.run_until(1_000, "node 3 stopped", |n| !n.running(3));
    net.restart(3);
    net.run_for(5_000);
    let of_3: Vec<_> = net.fencings.iter().filter(|(_, t)| t == "n3").collect();
    assert_eq!(of_3.len(), 1, "{:?}", net.fencings);
    assert!(net.running(3), "node 3's next process was fenced");
    let d = net.stack(1).fence_decision().unwrap();
    assert!(d.in_doubt().is_empty(), "{:?}", d.in_doubt());
}
