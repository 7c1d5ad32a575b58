//! Watchdog fencing in the decision (`fencing-watchdog-timeout`): a lost node no
//! device can fence is assumed self-fenced after the timeout, by every member of a
//! partition that may fence, with no request to the fencer.

use phalanx_fence::Action;
use phalanx_fence::core::{DecisionConfig, DecisionOutput, FenceDecision, NodeFenceState};
use phalanx_totem::Time;
use std::collections::BTreeSet;

fn set(v: &[u32]) -> BTreeSet<u32> {
    v.iter().copied().collect()
}

fn drain(d: &mut FenceDecision) -> Vec<DecisionOutput> {
    std::iter::from_fn(|| d.poll()).collect()
}

fn at(ms: u64) -> Time {
    Time::from_nanos(ms * 1_000_000)
}

/// Node `local` of 1..=3, all members and quorate at time 0; node 3 is fenced
/// by its watchdog only (timeout 2000 ms), 1 and 2 by a device.
fn decision(local: u32, timeout_ms: u64) -> FenceDecision {
    let mut cfg = DecisionConfig::new(local, 1..=3);
    cfg.watchdog_timeout_ms = timeout_ms;
    cfg.watchdog_only = set(&[3]);
    let mut d = FenceDecision::new(cfg);
    d.advance(at(0));
    d.membership(&set(&[1, 2, 3]), true);
    d
}

const FENCED_3: DecisionOutput = DecisionOutput::NodeFenced { node: 3, loss: 1 };

#[test]
fn a_watchdog_only_node_is_assumed_fenced_after_the_timeout_by_every_member() {
    let mut d1 = decision(1, 2000);
    let mut d2 = decision(2, 2000);
    for d in [&mut d1, &mut d2] {
        d.advance(at(500));
        d.membership(&set(&[1, 2]), true);
        assert!(drain(d).is_empty(), "no request for a watchdog-only node");
        assert_eq!(d.state(3), NodeFenceState::Unclean { loss: 1 });
        assert_eq!(d.poll_timeout(), Some(at(2500)));
        d.advance(at(2499));
        assert!(drain(d).is_empty(), "not before the timeout");
        assert!(!d.is_fenced_since_lost(3));
        d.advance(at(2500));
        assert_eq!(drain(d), [FENCED_3]);
        assert!(d.is_fenced_since_lost(3));
        assert!(d.fenced_by_watchdog(3));
        assert_eq!(d.poll_timeout(), None);
    }
}

#[test]
fn a_node_a_device_can_fence_is_requested_as_before() {
    let mut d1 = decision(1, 2000);
    d1.advance(at(500));
    d1.membership(&set(&[1, 3]), true);
    assert_eq!(
        drain(&mut d1),
        [DecisionOutput::Fence {
            node: 2,
            action: Action::Reboot,
            loss: 1,
            delay: None
        }]
    );
    assert_eq!(d1.poll_timeout(), None);
    d1.advance(at(10_000));
    assert!(
        !d1.is_fenced_since_lost(2),
        "never assumed: a device fences it"
    );
}

#[test]
fn without_the_timeout_a_watchdog_only_node_is_requested_from_the_fencer() {
    let mut d1 = decision(1, 0);
    d1.advance(at(500));
    d1.membership(&set(&[1, 2]), true);
    assert!(matches!(
        drain(&mut d1)[..],
        [DecisionOutput::Fence { node: 3, .. }]
    ));
    d1.advance(at(100_000));
    assert!(!d1.is_fenced_since_lost(3));
}

#[test]
fn an_inquorate_partition_assumes_nothing_and_the_countdown_restarts_with_quorum() {
    let mut d2 = decision(2, 2000);
    d2.advance(at(100));
    d2.membership(&set(&[2]), false);
    assert_eq!(d2.poll_timeout(), None);
    d2.advance(at(10_000));
    assert!(drain(&mut d2).is_empty());
    assert!(!d2.is_fenced_since_lost(3));
    // Node 1 comes back: quorate again, the countdown starts now.
    d2.advance(at(10_000));
    d2.membership(&set(&[1, 2]), true);
    assert_eq!(d2.poll_timeout(), Some(at(12_000)));
    // Quorum lost again before the end: stopped; regained: restarted.
    d2.advance(at(11_000));
    d2.membership(&set(&[2]), false);
    assert_eq!(d2.poll_timeout(), None);
    d2.advance(at(11_500));
    d2.membership(&set(&[1, 2]), true);
    assert_eq!(d2.poll_timeout(), Some(at(13_500)));
    d2.advance(at(13_500));
    assert_eq!(drain(&mut d2), [FENCED_3]);
}

#[test]
fn rejoin_or_a_device_result_cancels_the_countdown() {
    let mut d1 = decision(1, 2000);
    d1.advance(at(0));
    d1.membership(&set(&[1, 2]), true);
    d1.advance(at(1000));
    d1.membership(&set(&[1, 2, 3]), true);
    assert_eq!(d1.poll_timeout(), None);
    d1.advance(at(5000));
    assert!(drain(&mut d1).is_empty());
    assert_eq!(d1.state(3), NodeFenceState::Member);
    // Lost again (loss 2), then fenced by an administrator's device action.
    d1.membership(&set(&[1, 2]), true);
    assert_eq!(d1.poll_timeout(), Some(at(7000)));
    d1.fenced(3, d1.joined_ring(3));
    assert_eq!(
        drain(&mut d1),
        [DecisionOutput::NodeFenced { node: 3, loss: 2 }]
    );
    assert_eq!(d1.poll_timeout(), None);
    d1.advance(at(8000));
    assert!(drain(&mut d1).is_empty(), "reported once");
}

#[test]
fn devices_registered_later_change_the_watchdog_only_set() {
    use phalanx_fence::core::{AgentCapabilities, Device, watchdog_only_nodes};
    use std::collections::BTreeMap;
    let names: BTreeMap<u32, String> = (1..=3).map(|i| (i, format!("n{i}"))).collect();
    let listed = |id: &str, hosts: &str| {
        let params = BTreeMap::from([("pcmk_host_list".to_string(), hosts.to_string())]);
        Device::new(id, "fence_x", params, AgentCapabilities::power_switch(), 0).unwrap()
    };
    let a = listed("a", "n1,n2");
    assert_eq!(watchdog_only_nodes([&a], &names), BTreeSet::from([3]));
    let b = listed("b", "n3");
    assert!(watchdog_only_nodes([&a, &b], &names).is_empty());
    // A device without a static list may fence anyone.
    let any = Device::new(
        "any",
        "fence_x",
        BTreeMap::new(),
        AgentCapabilities::power_switch(),
        0,
    )
    .unwrap();
    assert!(watchdog_only_nodes([&any], &names).is_empty());

    // Node 3 lost while only `a` exists: a countdown, no request.
    let mut cfg = DecisionConfig::new(1, 1..=3);
    cfg.watchdog_timeout_ms = 2000;
    cfg.watchdog_only = watchdog_only_nodes([&a], &names);
    let mut d = FenceDecision::new(cfg);
    d.advance(Time::ZERO);
    d.membership(&BTreeSet::from([1, 2, 3]), true);
    d.membership(&BTreeSet::from([1, 2]), true);
    assert!(std::iter::from_fn(|| d.poll()).next().is_none());
    assert!(d.poll_timeout().is_some());
    // The CIB adds `b`, which can fence node 3: the countdown stops, a request goes out.
    d.set_watchdog_only(watchdog_only_nodes([&a, &b], &names));
    let out: Vec<DecisionOutput> = std::iter::from_fn(|| d.poll()).collect();
    assert!(
        matches!(
            out.as_slice(),
            [DecisionOutput::Fence {
                node: 3,
                loss: 1,
                ..
            }]
        ),
        "{out:?}"
    );
    assert_eq!(d.poll_timeout(), None);
    assert!(!d.fenced_by_watchdog(3));
    // `b` goes again while the request runs: the countdown starts anew.
    d.set_watchdog_only(watchdog_only_nodes([&a], &names));
    assert!(d.poll_timeout().is_some());
    d.advance(Time::ZERO + std::time::Duration::from_millis(2000));
    let out: Vec<DecisionOutput> = std::iter::from_fn(|| d.poll()).collect();
    assert_eq!(out, [DecisionOutput::NodeFenced { node: 3, loss: 1 }]);
}
