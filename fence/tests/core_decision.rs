//! "Who fences": unclean nodes, the quorum gate, the coordinator, results and
//! rejoin (the decision table of §2.6 reduced to membership and quorum).

use phalanx_fence::Action;
use phalanx_fence::core::{
    DecisionConfig, DecisionOutput, FenceDecision, NoQuorumPolicy, NodeFenceState,
};
use phalanx_quorum::{Event, NodeState, NodeStatus};
use phalanx_totem::RingId;
use std::collections::BTreeSet;

fn set(v: &[u32]) -> BTreeSet<u32> {
    v.iter().copied().collect()
}

fn drain(d: &mut FenceDecision) -> Vec<DecisionOutput> {
    std::iter::from_fn(|| d.poll()).collect()
}

fn fence(node: u32, loss: u64) -> DecisionOutput {
    DecisionOutput::Fence {
        node,
        action: Action::Reboot,
        loss,
        delay: None,
    }
}

fn decision(local: u32, n: u32) -> FenceDecision {
    let mut d = FenceDecision::new(DecisionConfig::new(local, 1..=n));
    d.membership(&(1..=n).collect(), true);
    d
}

#[test]
fn quorate_coordinator_requests_each_loss_once() {
    let mut d1 = decision(1, 3);
    let mut d2 = decision(2, 3);
    assert!(drain(&mut d1).is_empty());
    d1.membership(&set(&[1, 2]), true);
    d2.membership(&set(&[1, 2]), true);
    assert_eq!(drain(&mut d1), [fence(3, 1)]);
    assert!(
        drain(&mut d2).is_empty(),
        "only the coordinator (lowest id) requests"
    );
    assert_eq!(d2.unclean(), [3], "but every member knows 3 is unclean");
    // The same membership again does not request again.
    d1.membership(&set(&[1, 2]), true);
    assert!(drain(&mut d1).is_empty());
    // Success: fenced, for everyone that hears the result.
    d1.fenced(3);
    d2.fenced(3);
    assert_eq!(
        drain(&mut d1),
        [DecisionOutput::NodeFenced { node: 3, loss: 1 }]
    );
    assert!(d1.is_fenced_since_lost(3) && d2.is_fenced_since_lost(3));
    // Rejoin clears; the next loss is a new one.
    d1.membership(&set(&[1, 2, 3]), true);
    assert_eq!(d1.state(3), NodeFenceState::Member);
    assert!(!d1.is_fenced_since_lost(3));
    d1.membership(&set(&[1, 2]), true);
    assert_eq!(drain(&mut d1), [fence(3, 2)]);
}

#[test]
fn an_inquorate_partition_never_requests() {
    let mut d = decision(1, 3);
    d.membership(&set(&[1]), false);
    assert!(drain(&mut d).is_empty());
    assert_eq!(d.unclean(), [2, 3]);
    assert!(!d.is_fenced_since_lost(2), "gone is not fenced");
    // Quorum comes back (e.g. a device vote) with 2 and 3 still missing: now it may.
    d.membership(&set(&[1]), true);
    assert_eq!(drain(&mut d), [fence(2, 1), fence(3, 1)]);

    // no-quorum-policy=ignore lifts the gate.
    let mut cfg = DecisionConfig::new(1, 1..=3);
    cfg.no_quorum_policy = NoQuorumPolicy::Ignore;
    let mut d = FenceDecision::new(cfg);
    d.membership(&set(&[1, 2, 3]), true);
    d.membership(&set(&[1]), false);
    assert_eq!(drain(&mut d), [fence(2, 1), fence(3, 1)]);
}

#[test]
fn failures_are_requested_again_up_to_the_limit() {
    let mut cfg = DecisionConfig::new(1, 1..=3);
    cfg.max_attempts = 3;
    let mut d = FenceDecision::new(cfg);
    d.membership(&set(&[1, 2, 3]), true);
    d.membership(&set(&[1, 2]), true);
    let mut requests = drain(&mut d).len();
    for _ in 0..5 {
        d.request_failed(3, 1);
        requests += drain(&mut d).len();
    }
    assert_eq!(requests, 3);
    assert_eq!(d.unclean(), [3]);

    // A failure of some other operation does not re-request while ours runs.
    let mut d = decision(1, 3);
    d.membership(&set(&[1, 2]), true);
    assert_eq!(drain(&mut d).len(), 1);
    d.request_failed(3, 0); // a request for an earlier loss
    assert!(drain(&mut d).is_empty());
    d.request_failed(2, 1); // a member is owed nothing
    assert!(drain(&mut d).is_empty());
    d.request_failed(3, 1);
    assert_eq!(drain(&mut d), [fence(3, 1)]);
}

#[test]
fn clean_leave_disabled_fencing_and_fenced_while_member() {
    let mut d = decision(1, 3);
    d.leaving(3);
    d.membership(&set(&[1, 2]), true);
    assert!(drain(&mut d).is_empty());
    assert_eq!(d.state(3), NodeFenceState::Down);

    // Fenced by an administrator while still a member: its loss needs no fencing.
    let mut d = decision(1, 3);
    d.fenced(2);
    d.membership(&set(&[1, 3]), true);
    assert_eq!(
        drain(&mut d),
        [DecisionOutput::NodeFenced { node: 2, loss: 1 }]
    );
    assert!(d.is_fenced_since_lost(2));

    let mut cfg = DecisionConfig::new(1, 1..=3);
    cfg.fencing_enabled = false;
    let mut d = FenceDecision::new(cfg);
    d.membership(&set(&[1, 2, 3]), true);
    d.membership(&set(&[1, 2]), true);
    assert_eq!(
        drain(&mut d),
        [DecisionOutput::NodeFenced { node: 3, loss: 1 }]
    );
}

#[test]
fn a_new_coordinator_takes_over() {
    let mut d2 = decision(2, 5);
    d2.membership(&set(&[2, 3, 4]), true);
    assert_eq!(d2.coordinator(), Some(2));
    assert_eq!(drain(&mut d2), [fence(1, 1), fence(5, 1)]);
}

#[test]
fn priority_fencing_delay_rides_on_the_request() {
    let mut cfg = DecisionConfig::new(1, [1, 2]);
    cfg.priority_fencing_delay_ms = 5000;
    cfg.priorities.insert(2, 10);
    let mut d = FenceDecision::new(cfg.clone());
    d.membership(&set(&[1, 2]), true);
    d.membership(&set(&[1]), true); // two_node: still quorate
    assert_eq!(
        drain(&mut d),
        [DecisionOutput::Fence {
            node: 2,
            action: Action::Reboot,
            loss: 1,
            delay: Some(5)
        }]
    );
    // The node with the lower priority gets no delay (but still a requested 0).
    cfg.priorities.clear();
    cfg.priorities.insert(1, 10);
    let mut d = FenceDecision::new(cfg);
    d.membership(&set(&[1, 2]), true);
    d.membership(&set(&[1]), true);
    assert_eq!(
        drain(&mut d),
        [DecisionOutput::Fence {
            node: 2,
            action: Action::Reboot,
            loss: 1,
            delay: Some(0)
        }]
    );
}

#[test]
fn quorum_events_adapt() {
    let mut d = decision(1, 3);
    let status = |node, state| NodeStatus {
        node,
        state,
        votes: 1,
        expected: 3,
    };
    let ev = Event::QuorumChanged {
        quorate: true,
        ring: RingId { rep: 1, seq: 8 },
        nodes: vec![
            status(1, NodeState::Member),
            status(2, NodeState::Leaving),
            status(3, NodeState::Dead),
        ],
    };
    d.handle_quorum_event(&ev);
    assert_eq!(drain(&mut d), [fence(3, 1)]);
    // 2 announced leaving, so its loss is clean.
    let ev = Event::QuorumChanged {
        quorate: true,
        ring: RingId { rep: 1, seq: 12 },
        nodes: vec![
            status(1, NodeState::Member),
            status(2, NodeState::Dead),
            status(3, NodeState::Dead),
        ],
    };
    d.handle_quorum_event(&ev);
    assert!(drain(&mut d).is_empty());
    assert_eq!(d.state(2), NodeFenceState::Down);
}
