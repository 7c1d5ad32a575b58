//! The fencer state machine, scenario by scenario (the cts-fencing scenarios
//! restated as structured assertions on the agent calls and results).

mod core_support;

use core_support::{Harness, Mode, device, dummy_caps, secs};
use phalanx_fence::Action;
use phalanx_fence::core::{
    AgentCapabilities, Delegate, FenceEvent, FenceRequest, Fencer, FencerConfig, FencerError,
    FencerInput, FencerOutput, HistoryEntry, OpId, OpState, PeerMessage,
};
use std::collections::BTreeSet;
use std::time::Duration;

const ALL3: &str = "node1 node2 node3";
const MINUTE: Duration = Duration::from_secs(60);

fn calls(v: &[(&str, Action)]) -> Vec<(String, Action)> {
    v.iter().map(|(d, a)| (d.to_string(), *a)).collect()
}

fn six_devices(h: &mut Harness) {
    for (id, mode) in [
        ("true1", Mode::Pass),
        ("true2", Mode::Pass),
        ("true3", Mode::Pass),
        ("true4", Mode::Pass),
        ("false1", Mode::Fail),
        ("false2", Mode::Fail),
    ] {
        h.add(device(id, &[("pcmk_host_list", ALL3)], dummy_caps()), mode);
    }
}

#[test]
fn topology_multi_level_fails_falls_through_levels() {
    let mut h = Harness::new(1);
    six_devices(&mut h);
    h.level("node3", 1, &["false1", "true1"]);
    h.level("node3", 2, &["true2", "false2"]);
    h.level("node3", 3, &["true3", "true4"]);
    h.request("node3", Action::Off, 3, None);
    h.run(MINUTE);
    use Action::Off;
    // Each failing device is tried twice (pcmk_off_retries defaults to 2); the
    // first failure of a level moves to the next level.
    assert_eq!(
        h.fence_calls(),
        calls(&[
            ("false1", Off),
            ("false1", Off),
            ("true2", Off),
            ("false2", Off),
            ("false2", Off),
            ("true3", Off),
            ("true4", Off)
        ])
    );
    assert_eq!(h.outcome(), Some(true));
    let e = h.f.history().entries().next().expect("one entry");
    assert_eq!(
        (e.state, e.delegate),
        (OpState::Done, Some(Delegate::Node(1)))
    );
}

#[test]
fn topology_missing_devices_skips_the_level() {
    let mut h = Harness::new(1);
    for (id, mode) in [
        ("true2", Mode::Pass),
        ("true3", Mode::Pass),
        ("true4", Mode::Pass),
        ("false2", Mode::Fail),
    ] {
        h.add(device(id, &[("pcmk_host_list", ALL3)], dummy_caps()), mode);
    }
    h.level("node3", 1, &["false1", "true1"]); // neither is registered
    h.level("node3", 2, &["true2", "false2"]);
    h.level("node3", 3, &["true3", "true4"]);
    h.request("node3", Action::Off, 5, None);
    h.run(MINUTE);
    use Action::Off;
    assert_eq!(
        h.fence_calls(),
        calls(&[
            ("true2", Off),
            ("false2", Off),
            ("false2", Off),
            ("true3", Off),
            ("true4", Off)
        ])
    );
    assert_eq!(h.outcome(), Some(true));
}

#[test]
fn without_topology_devices_are_alternatives() {
    // fence_device_failure_rollover: the first success wins.
    let mut h = Harness::new(1);
    for (id, mode) in [
        ("false1", Mode::Fail),
        ("true1", Mode::Pass),
        ("false2", Mode::Fail),
    ] {
        h.add(device(id, &[("pcmk_host_list", ALL3)], dummy_caps()), mode);
    }
    h.request("node3", Action::Off, 5, None);
    h.run(MINUTE);
    use Action::Off;
    assert_eq!(
        h.fence_calls(),
        calls(&[
            ("false1", Off),
            ("false1", Off),
            ("false2", Off),
            ("false2", Off),
            ("true1", Off)
        ])
    );
    assert_eq!(h.outcome(), Some(true));

    // fence_multi_device_failure: every device fails → the operation fails.
    let mut h = Harness::new(1);
    for id in ["false1", "false2", "false3"] {
        h.add(
            device(id, &[("pcmk_host_list", ALL3)], dummy_caps()),
            Mode::Fail,
        );
    }
    h.request("node3", Action::Off, 2, None);
    h.run(MINUTE);
    assert_eq!(h.fence_calls().len(), 6);
    assert_eq!(h.outcome(), Some(false));
    assert_eq!(h.f.in_flight(), 0);
}

#[test]
fn no_capable_device_fails_at_once() {
    let mut h = Harness::new(1);
    h.add(
        device("true1", &[("pcmk_host_list", "node1")], dummy_caps()),
        Mode::Pass,
    );
    h.request("node3", Action::Off, 5, None);
    assert_eq!(h.outcome(), Some(false));
    assert!(h.calls.is_empty());
}

#[test]
fn reboot_remapping() {
    use Action::{Off, On, Reboot};
    // remap_simple: a multi-device level reboots as off on all, then on on all.
    let mut h = Harness::new(1);
    for id in ["true1", "true2"] {
        h.add(
            device(id, &[("pcmk_host_list", "node_fake")], dummy_caps()),
            Mode::Pass,
        );
    }
    h.level("node_fake", 1, &["true1", "true2"]);
    h.request("node_fake", Reboot, 5, None);
    h.run(MINUTE);
    assert_eq!(
        h.fence_calls(),
        calls(&[("true1", Off), ("true2", Off), ("true1", On), ("true2", On)])
    );
    assert_eq!(h.outcome(), Some(true));

    // An `on` failure after a successful off is ignored; automatic unfencing skips on.
    let mut h = Harness::new(1);
    h.add(
        device("true1", &[("pcmk_host_list", "node_fake")], dummy_caps()),
        Mode::FailOn,
    );
    let auto = AgentCapabilities {
        on_automatic: true,
        ..dummy_caps()
    };
    h.add(
        device("fabric", &[("pcmk_host_list", "node_fake")], auto),
        Mode::Pass,
    );
    h.level("node_fake", 1, &["true1", "fabric"]);
    h.request("node_fake", Reboot, 5, None);
    h.run(MINUTE);
    // (`on` is retried like any action, then its failure is ignored.)
    assert_eq!(
        h.fence_calls(),
        calls(&[
            ("true1", Off),
            ("fabric", Off),
            ("true1", On),
            ("true1", On)
        ])
    );
    assert_eq!(h.outcome(), Some(true));

    // A single device: reboot if the agent has it, off if it does not.
    for (caps, want) in [
        (dummy_caps(), Reboot),
        (
            AgentCapabilities {
                reboot: false,
                ..dummy_caps()
            },
            Off,
        ),
    ] {
        let mut h = Harness::new(1);
        h.add(
            device("d", &[("pcmk_host_list", "node3")], caps),
            Mode::Pass,
        );
        h.request("node3", Reboot, 5, None);
        h.run(MINUTE);
        assert_eq!(h.fence_calls(), calls(&[("d", want)]));
    }
}

#[test]
fn agent_call_carries_port_action_and_params() {
    let mut h = Harness::new(1);
    h.add(
        device(
            "ipmi",
            &[
                ("pcmk_host_map", "node3:3;node4:4,5"),
                ("pcmk_off_action", "power-off"),
                ("ipaddr", "10.0.0.9"),
                ("pcmk_off_timeout", "7"),
            ],
            dummy_caps(),
        ),
        Mode::Pass,
    );
    h.request("node4", Action::Off, 60, None);
    let c = &h.calls[0].call;
    assert_eq!(c.agent_action, "power-off");
    assert_eq!(c.port, Some(("port".to_string(), "4,5".to_string())));
    assert_eq!(c.target.as_deref(), Some("node4"));
    assert_eq!(c.timeout, Duration::from_secs(7));
    assert_eq!(c.params.get("ipaddr").map(String::as_str), Some("10.0.0.9"));
    assert!(!c.params.contains_key("pcmk_host_map"));
}

#[test]
fn duplicate_requests_merge_and_share_the_result() {
    let mut h = Harness::new(1);
    h.add(
        device("true1", &[("pcmk_host_list", ALL3)], dummy_caps()),
        Mode::Pass,
    );
    h.input(FencerInput::Request(FenceRequest::new(
        "node3",
        Action::Reboot,
        "controller",
        1,
    )));
    h.input(FencerInput::Request(FenceRequest::new(
        "node3",
        Action::Reboot,
        "dlm",
        7,
    )));
    assert_eq!(h.f.stats().merged, 1);
    h.run(MINUTE);
    assert_eq!(h.fence_calls().len(), 1, "one execution for both");
    let done: Vec<(String, bool)> = h
        .events
        .iter()
        .filter_map(|e| match e {
            FenceEvent::RequestDone { client, result, .. } => {
                Some((client.clone(), result.is_ok()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        done,
        [("controller".to_string(), true), ("dlm".to_string(), true)]
    );
    assert_eq!(h.f.history().len(), 2, "each request has its own entry");

    // The same client twice is not merged; a different action is not merged.
    let mut h = Harness::new(1);
    h.add(
        device("true1", &[("pcmk_host_list", ALL3)], dummy_caps()),
        Mode::Pass,
    );
    h.input(FencerInput::Request(FenceRequest::new(
        "node3",
        Action::Reboot,
        "c",
        1,
    )));
    h.input(FencerInput::Request(FenceRequest::new(
        "node3",
        Action::Reboot,
        "c",
        2,
    )));
    h.input(FencerInput::Request(FenceRequest::new(
        "node3",
        Action::Off,
        "d",
        3,
    )));
    assert_eq!(h.f.stats().merged, 0);
    h.run(MINUTE);
    assert_eq!(h.fence_calls().len(), 3);
}

#[test]
fn action_limit_bounds_concurrency_per_device() {
    for (limit, concurrent) in [("1", 1), ("2", 2), ("-1", 3)] {
        let mut h = Harness::new(1);
        h.add(
            device(
                "pdu",
                &[("pcmk_host_list", "n2 n3 n4"), ("pcmk_action_limit", limit)],
                dummy_caps(),
            ),
            Mode::Pass,
        );
        for (i, t) in ["n2", "n3", "n4"].into_iter().enumerate() {
            h.input(FencerInput::Request(FenceRequest::new(
                t,
                Action::Off,
                "c",
                i as u64,
            )));
        }
        assert_eq!(
            h.calls.len(),
            concurrent,
            "limit {limit}: calls started before any finished"
        );
        h.run(MINUTE);
        assert_eq!(h.fence_calls().len(), 3);
        assert!(
            h.events
                .iter()
                .filter(|e| matches!(e, FenceEvent::RequestDone { result: Ok(_), .. }))
                .count()
                == 3
        );
    }
}

#[test]
fn retries_stop_at_the_limit_and_after_a_timeout() {
    let mut h = Harness::new(1);
    h.add(
        device(
            "f",
            &[("pcmk_host_list", "node3"), ("pcmk_off_retries", "4")],
            dummy_caps(),
        ),
        Mode::Fail,
    );
    h.request("node3", Action::Off, 60, None);
    h.run(MINUTE * 5);
    assert_eq!(h.fence_calls().len(), 4);
    let attempts: Vec<u32> = h.calls.iter().map(|c| c.call.attempt).collect();
    assert_eq!(attempts, [1, 2, 3, 4]);
    // Attempts are spaced by the pause, and each gets the remaining time only.
    assert_eq!(h.calls[1].at, secs(0) + Duration::from_millis(1100));
    assert!(h.calls[1].call.timeout < Duration::from_secs(60));

    let mut h = Harness::new(1);
    h.add(
        device("t", &[("pcmk_host_list", "node3")], dummy_caps()),
        Mode::Timeout,
    );
    h.request("node3", Action::Off, 10, None);
    h.run(MINUTE);
    assert_eq!(
        h.fence_calls().len(),
        1,
        "a timed-out attempt is not retried"
    );
    assert_eq!(h.outcome(), Some(false));
}

#[test]
fn total_timeout_ends_the_operation_and_the_slot_stays_taken() {
    let mut h = Harness::new(1);
    h.add(
        device("hang", &[("pcmk_host_list", "node2 node3")], dummy_caps()),
        Mode::Hang,
    );
    h.request("node3", Action::Off, 5, None);
    h.run(MINUTE);
    // Total 6 s: the operation times out while the agent call is still out.
    let failure = h.events.iter().find_map(|e| match e {
        FenceEvent::RequestDone { result: Err(f), .. } => Some(f.clone()),
        _ => None,
    });
    let failure = failure.expect("failed");
    assert!(failure.timed_out, "{failure:?}");
    assert_eq!(
        h.f.history().entries().next().map(|e| e.completed),
        Some(Some(secs(6)))
    );
    // The guard (timeout 5 s + grace 10 s) frees the slot for the next request.
    assert_eq!(
        h.f.calls_outstanding(),
        0,
        "guard expired by the end of run()"
    );
    let late = h.calls[0].call.call;
    h.input(FencerInput::AgentDone {
        call: late,
        outcome: phalanx_fence::core::CallOutcome::TimedOut,
    });
    assert_eq!(h.f.stats().stale_results, 1);
}

#[test]
fn dynamic_list_and_status_checks_run_the_agent_first() {
    let mut h = Harness::new(1);
    h.add(
        device("dl", &[], dummy_caps()),
        Mode::List("1,node2\n2,node3\n"),
    );
    h.request("node3", Action::Off, 5, None);
    h.run(MINUTE);
    let actions: Vec<Action> = h.calls.iter().map(|c| c.call.action).collect();
    assert_eq!(actions, [Action::List, Action::Off]);
    assert_eq!(h.outcome(), Some(true));
    // Within a minute the list is reused.
    h.request("node2", Action::Off, 5, None);
    h.run(MINUTE);
    assert_eq!(h.calls.last().map(|c| c.call.action), Some(Action::Off));
    assert_eq!(h.calls.len(), 3);

    let status_only = AgentCapabilities {
        list: false,
        ..dummy_caps()
    };
    let mut h = Harness::new(1);
    h.add(device("st", &[], status_only), Mode::StatusOff);
    h.request("node3", Action::Off, 5, None);
    h.run(MINUTE);
    let actions: Vec<Action> = h.calls.iter().map(|c| c.call.action).collect();
    assert_eq!(
        actions,
        [Action::Status, Action::Off],
        "status exit 2 = reachable"
    );
    assert_eq!(h.calls[0].call.target.as_deref(), Some("node3"));
}

#[test]
fn manual_confirmation_marks_fenced_without_an_agent() {
    let mut h = Harness::new(1);
    h.input(FencerInput::Confirm {
        target: "node3".into(),
        client: "admin".into(),
        call: 9,
        target_joined: None,
    });
    assert!(h.calls.is_empty());
    assert!(h.events.iter().any(|e| matches!(
        e,
        FenceEvent::Fenced(HistoryEntry {
            delegate: Some(Delegate::Manual),
            ..
        })
    )));
    assert!(h.events.iter().any(|e| matches!(
        e,
        FenceEvent::RequestDone {
            call: 9,
            result: Ok(Delegate::Manual),
            ..
        }
    )));
    assert!(
        h.broadcasts
            .iter()
            .any(|m| matches!(m, PeerMessage::Result(e) if e.state == OpState::Done))
    );
}

#[test]
fn refusals_are_typed_and_change_nothing() {
    let mut cfg = FencerConfig::new(1, "node1", 1, 0);
    cfg.max_ops = 2;
    let mut f = Fencer::new(cfg);
    let t = secs(0);
    assert_eq!(
        f.handle(
            t,
            FencerInput::Request(FenceRequest::new("node1", Action::Off, "c", 1))
        ),
        Err(FencerError::SelfFencing)
    );
    assert!(matches!(
        f.handle(
            t,
            FencerInput::Request(FenceRequest::new("", Action::Off, "c", 1))
        ),
        Err(FencerError::BadRequest(_))
    ));
    assert!(matches!(
        f.handle(
            t,
            FencerInput::Request(FenceRequest::new("n2", Action::Status, "c", 1))
        ),
        Err(FencerError::BadRequest(_))
    ));
    // No devices: each request fails at once, so fill with hanging ones instead.
    let d = device("hang", &[("pcmk_host_check", "none")], dummy_caps());
    f.handle(t, FencerInput::RegisterDevice(d)).unwrap();
    for (i, n) in ["n2", "n3"].into_iter().enumerate() {
        f.handle(
            t,
            FencerInput::Request(FenceRequest::new(n, Action::Off, "c", i as u64)),
        )
        .unwrap();
    }
    assert_eq!(
        f.handle(
            t,
            FencerInput::Request(FenceRequest::new("n4", Action::Off, "c", 3))
        ),
        Err(FencerError::TryAgain)
    );
    assert_eq!(f.in_flight(), 2);
    let mut own = FenceRequest::new("node1", Action::Off, "c", 4);
    own.allow_self = false;
    assert!(f.handle(t, FencerInput::Request(own)).is_err());
}

fn peer_started(id: OpId, target: &str) -> FencerInput {
    FencerInput::Peer {
        from: id.origin,
        msg: PeerMessage::Started {
            id,
            target: target.into(),
            action: Action::Reboot,
            client: "controller@2".into(),
            total_timeout_s: 72,
            target_joined: None,
        },
    }
}

#[test]
fn a_local_request_merges_into_a_peer_operation() {
    let mut h = Harness::new(1);
    h.add(
        device("true1", &[("pcmk_host_list", ALL3)], dummy_caps()),
        Mode::Pass,
    );
    h.input(FencerInput::Members(BTreeSet::from([1, 2])));
    let id = OpId {
        origin: 2,
        incarnation: 5,
        seq: 1,
    };
    h.input(peer_started(id, "node3"));
    h.input(FencerInput::Request(FenceRequest::new(
        "node3",
        Action::Reboot,
        "dlm",
        3,
    )));
    assert_eq!(h.f.stats().merged, 1);
    assert!(h.calls.is_empty(), "the peer fences, not us");
    let done = HistoryEntry {
        id,
        target: "node3".into(),
        action: Action::Reboot,
        origin: 2,
        delegate: Some(Delegate::Node(2)),
        client: "controller@2".into(),
        state: OpState::Done,
        completed: Some(secs(3)),
        exit_reason: None,
        target_joined: None,
    };
    h.input(FencerInput::Peer {
        from: 2,
        msg: PeerMessage::Result(done),
    });
    assert!(h.events.iter().any(|e| matches!(
        e,
        FenceEvent::RequestDone {
            call: 3,
            result: Ok(Delegate::Node(2)),
            ..
        }
    )));
    assert_eq!(h.f.in_flight(), 0);

    // The originator leaving fails the peer operation and the merged duplicate.
    let mut h = Harness::new(1);
    h.add(
        device("true1", &[("pcmk_host_list", ALL3)], dummy_caps()),
        Mode::Pass,
    );
    h.input(FencerInput::Members(BTreeSet::from([1, 2])));
    h.input(peer_started(id, "node3"));
    h.input(FencerInput::Request(FenceRequest::new(
        "node3",
        Action::Reboot,
        "dlm",
        3,
    )));
    h.input(FencerInput::Members(BTreeSet::from([1])));
    assert!(h.events.iter().any(|e| matches!(
        e,
        FenceEvent::RequestDone {
            call: 3,
            result: Err(_),
            ..
        }
    )));
    assert_eq!(
        h.f.history().get(&id).map(|e| e.state),
        Some(OpState::Failed)
    );
}

#[test]
fn history_is_sent_when_a_node_joins_and_merged_on_receipt() {
    let mut h = Harness::new(1);
    h.input(FencerInput::Confirm {
        target: "node3".into(),
        client: "admin".into(),
        call: 1,
        target_joined: None,
    });
    h.broadcasts.clear();
    h.input(FencerInput::Members(BTreeSet::from([1, 2])));
    let sent = h.broadcasts.iter().find_map(|m| match m {
        PeerMessage::History(v) => Some(v.clone()),
        _ => None,
    });
    assert_eq!(sent.map(|v| v.len()), Some(1));
    // A peer's history: its pending entry of ours from an earlier incarnation is
    // presumed failed and broadcast back.
    let stale = HistoryEntry {
        id: OpId {
            origin: 1,
            incarnation: 0,
            seq: 1,
        },
        target: "node2".into(),
        action: Action::Off,
        origin: 1,
        delegate: None,
        client: "old".into(),
        state: OpState::Pending,
        completed: None,
        exit_reason: None,
        target_joined: None,
    };
    h.broadcasts.clear();
    h.input(FencerInput::Peer {
        from: 2,
        msg: PeerMessage::History(vec![stale.clone()]),
    });
    assert_eq!(
        h.f.history().get(&stale.id).map(|e| e.state),
        Some(OpState::Failed)
    );
    assert!(matches!(&h.broadcasts[..], [PeerMessage::Result(e)] if e.id == stale.id));
    // Our own broadcasts coming back are ignored.
    let before = h.f.history().len();
    h.input(FencerInput::Peer {
        from: 1,
        msg: PeerMessage::History(vec![]),
    });
    assert_eq!(h.f.history().len(), before);
}

#[test]
fn poll_output_ends_with_the_next_deadline() {
    let mut h = Harness::new(1);
    h.add(
        device("hang", &[("pcmk_host_list", "node3")], dummy_caps()),
        Mode::Hang,
    );
    h.f.handle(
        secs(0),
        FencerInput::Request(FenceRequest::new("node3", Action::Off, "c", 1)),
    )
    .unwrap();
    let last = loop {
        if let FencerOutput::Timeout(t) = h.f.poll_output() {
            break t;
        }
    };
    // Default timeout 60 s → total 72 s; the call guard is 70 s.
    assert_eq!(last, Some(secs(70)));
}

#[test]
fn a_duplicate_made_while_the_original_plans_waits_for_it() {
    // The original needs a `list` first (slow agent), so the duplicate arrives
    // before the total timeout is known; it must not time out on the query bound.
    let mut h = Harness::new(1);
    h.latency = Duration::from_secs(8);
    h.add(device("dl", &[], dummy_caps()), Mode::List("node3\n"));
    for (client, call) in [("a", 1), ("b", 2)] {
        // Query bound 12 s; list 8 s + off 8 s = 16 s; total after planning 12 s.
        let mut r = FenceRequest::new("node3", Action::Off, client, call);
        r.timeout = Some(Duration::from_secs(10));
        h.input(FencerInput::Request(r));
    }
    assert_eq!(h.f.stats().merged, 1);
    h.run(MINUTE * 5);
    let ok: Vec<u64> = h
        .events
        .iter()
        .filter_map(|e| match e {
            FenceEvent::RequestDone {
                call,
                result: Ok(_),
                ..
            } => Some(*call),
            _ => None,
        })
        .collect();
    assert_eq!(ok, [1, 2], "both succeed");
    assert_eq!(h.f.stats().calls, 2, "one list, one off");
}

#[test]
fn a_device_removed_while_its_call_waits_fails_that_step() {
    let mut h = Harness::new(1);
    h.add(
        device("pdu", &[("pcmk_host_list", "n2 n3")], dummy_caps()),
        Mode::Hang,
    );
    h.add(
        device("spare", &[("pcmk_host_list", "n3")], dummy_caps()),
        Mode::Pass,
    );
    h.input(FencerInput::Request(FenceRequest::new(
        "n2",
        Action::Off,
        "c",
        1,
    )));
    h.input(FencerInput::Request(FenceRequest::new(
        "n3",
        Action::Off,
        "c",
        2,
    )));
    // n3's call on pdu waits behind n2's (limit 1); the device goes away.
    h.input(FencerInput::RemoveDevice("pdu".into()));
    h.run(MINUTE * 5);
    assert!(h.events.iter().any(|e| matches!(
        e,
        FenceEvent::RequestDone {
            call: 2,
            result: Ok(_),
            ..
        }
    )));
    assert!(
        h.fence_calls()
            .contains(&("spare".to_string(), Action::Off))
    );
}

#[test]
fn pattern_and_attribute_levels_select_targets() {
    use phalanx_fence::core::LevelTarget;
    use std::collections::BTreeMap;
    let mut h = Harness::new(1);
    h.add(
        device("true", &[("pcmk_host_list", ALL3)], dummy_caps()),
        Mode::Pass,
    );
    h.add(
        device("rackpdu", &[("pcmk_host_check", "none")], dummy_caps()),
        Mode::Pass,
    );
    // topology_level_pattern: '@node.*' → pattern "node.*".
    h.input(FencerInput::RegisterLevel {
        target: LevelTarget::Pattern("node.*".into()),
        index: 1,
        devices: vec!["true".into()],
    });
    h.input(FencerInput::RegisterLevel {
        target: LevelTarget::Attribute {
            name: "rack".into(),
            value: "r7".into(),
        },
        index: 1,
        devices: vec!["rackpdu".into()],
    });
    h.input(FencerInput::NodeAttributes {
        node: "db1".into(),
        attributes: BTreeMap::from([("rack".to_string(), "r7".to_string())]),
    });
    h.request("node3", Action::Off, 5, None);
    h.request("db1", Action::Off, 5, None);
    h.run(MINUTE);
    assert_eq!(
        h.fence_calls(),
        calls(&[("true", Action::Off), ("rackpdu", Action::Off)])
    );
}

#[test]
fn host_list_delimiters() {
    for list in [
        "node1 node2 node3",
        "node1,node2,node3",
        "node1;node2;node3",
    ] {
        let mut h = Harness::new(1);
        h.add(
            device("true", &[("pcmk_host_list", list)], dummy_caps()),
            Mode::Pass,
        );
        h.request("node2", Action::Off, 5, None);
        h.run(MINUTE);
        assert_eq!(h.outcome(), Some(true), "{list:?}");
    }
}

#[test]
fn malformed_peer_entries_are_dropped() {
    let mut h = Harness::new(1);
    h.input(FencerInput::Members(BTreeSet::from([1, 2])));
    let good = HistoryEntry {
        id: OpId {
            origin: 2,
            incarnation: 1,
            seq: 1,
        },
        target: "node3".into(),
        action: Action::Off,
        origin: 2,
        delegate: Some(Delegate::Node(2)),
        client: "c".into(),
        state: OpState::Done,
        completed: Some(secs(1)),
        exit_reason: None,
        target_joined: None,
    };
    let bad_target = HistoryEntry {
        target: "x".repeat(10_000),
        id: OpId { seq: 2, ..good.id },
        ..good.clone()
    };
    let bad_origin = HistoryEntry {
        origin: 9,
        id: OpId { seq: 3, ..good.id },
        ..good.clone()
    };
    h.input(FencerInput::Peer {
        from: 2,
        msg: PeerMessage::History(vec![good.clone(), bad_target, bad_origin]),
    });
    assert_eq!(h.f.history().len(), 1);
    assert!(h.f.history().get(&good.id).is_some());
}

#[test]
fn last_fenced_and_in_progress_queries() {
    let mut h = Harness::new(1);
    h.add(
        device("true1", &[("pcmk_host_list", ALL3)], dummy_caps()),
        Mode::Pass,
    );
    assert_eq!(h.f.last_fenced("node3"), None);
    h.request("node3", Action::Off, 5, None);
    assert!(h.f.fencing_in_progress("NODE3"));
    h.run(MINUTE);
    assert!(!h.f.fencing_in_progress("node3"));
    assert_eq!(h.f.last_fenced("node3"), Some(secs(0) + h.latency));
    assert_eq!(h.f.last_fenced("node2"), None);
}
