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
    // The request carried the requester's view of 3's incarnation.
    let joined = d1.joined_ring(3);
    assert!(joined.is_some());
    d1.fenced(3, joined);
    d2.fenced(3, joined);
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
    d.fenced(2, d.joined_ring(2));
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

#[test]
fn a_late_result_about_an_earlier_incarnation_fences_nothing_later() {
    let mut d = decision(1, 3);
    d.membership(&set(&[1, 2]), true);
    assert_eq!(drain(&mut d), [fence(3, 1)]);
    // The request is about the incarnation of 3 that joined in this ring.
    let asked_about = d.joined_ring(3);
    // 3 reboots (by this very request, say) and rejoins before the result comes.
    d.membership(&set(&[1, 2, 3]), true);
    assert_ne!(
        d.joined_ring(3),
        asked_about,
        "a rejoin is a new incarnation"
    );
    d.fenced(3, asked_about);
    assert!(drain(&mut d).is_empty());
    // Its next loss is owed a fencing of its own: the old result does not stand.
    d.membership(&set(&[1, 2]), true);
    assert_eq!(drain(&mut d), [fence(3, 2)]);
    assert_eq!(d.state(3), NodeFenceState::Unclean { loss: 2 });
    // Nor does a result whose requester never saw 3 as a member.
    d.fenced(3, None);
    assert!(drain(&mut d).is_empty());
    // A result about this incarnation does.
    d.fenced(3, d.joined_ring(3));
    assert_eq!(
        drain(&mut d),
        [DecisionOutput::NodeFenced { node: 3, loss: 2 }]
    );
}

#[test]
fn a_result_for_a_member_counts_only_for_its_current_incarnation() {
    let mut d = decision(1, 3);
    let before = d.joined_ring(2);
    // 2 goes and comes back: a new incarnation.
    d.membership(&set(&[1, 3]), true);
    d.fenced(2, before); // the old incarnation is fenced (loss 1)
    d.membership(&set(&[1, 2, 3]), true);
    drain(&mut d);
    d.fenced(2, before); // a stale duplicate of that result arrives now
    d.membership(&set(&[1, 3]), true);
    assert_eq!(
        drain(&mut d),
        [fence(2, 2)],
        "the new incarnation is owed fencing"
    );
}

/// A quorate votequorum event for ring `ring` with `members` (one vote each).
fn quorate_in(ring: RingId, members: &[u32]) -> Event {
    Event::QuorumChanged {
        quorate: true,
        ring,
        nodes: members
            .iter()
            .map(|&n| NodeStatus {
                node: n,
                state: NodeState::Member,
                votes: 1,
                expected: 3,
            })
            .collect(),
    }
}

#[test]
fn members_fed_the_same_quorum_events_agree_on_incarnations() {
    let ev = |seq, members: &[u32]| quorate_in(RingId { seq, rep: 1 }, members);
    let mut d1 = decision(1, 3);
    let mut d2 = FenceDecision::new(DecisionConfig::new(2, 1..=3));
    for e in [ev(4, &[1, 2, 3]), ev(8, &[1, 2]), ev(12, &[1, 2, 3])] {
        d1.handle_quorum_event(&e);
        d2.handle_quorum_event(&e);
    }
    assert_eq!(d1.joined_ring(3), Some(RingId { seq: 12, rep: 1 }));
    assert_eq!(d1.joined_ring(3), d2.joined_ring(3));
}

#[test]
fn a_late_joiner_counts_an_operation_it_saw_start_after_the_target_joined() {
    use phalanx_fence::core::OpId;
    // Node 2 saw 3 join in ring 4; node 1 joined later (ring 8), when 3 was there.
    let ev = |seq, members: &[u32]| quorate_in(RingId { seq, rep: 2 }, members);
    let mut d1 = FenceDecision::new(DecisionConfig::new(1, 1..=3));
    let mut d2 = FenceDecision::new(DecisionConfig::new(2, 1..=3));
    d2.handle_quorum_event(&ev(4, &[2, 3]));
    for d in [&mut d1, &mut d2] {
        d.handle_quorum_event(&ev(8, &[1, 2, 3]));
    }
    let asked_by_2 = d2.joined_ring(3);
    assert_ne!(
        asked_by_2,
        d1.joined_ring(3),
        "they saw 3 join in different rings"
    );
    // An administrator on node 2 fences member 3; both see the start delivered.
    let op = OpId {
        origin: 2,
        incarnation: 1,
        seq: 1,
    };
    d1.operation_started(op, 3);
    d2.operation_started(op, 3);
    d1.operation_fenced(3, op, asked_by_2);
    d2.operation_fenced(3, op, asked_by_2);
    for d in [&mut d1, &mut d2] {
        d.handle_quorum_event(&ev(12, &[1, 2]));
        assert!(d.is_fenced_since_lost(3), "3 went because it was fenced");
    }

    // Without having seen the start, node 1 cannot tell: it waits for a fencing.
    let mut d1 = FenceDecision::new(DecisionConfig::new(1, 1..=3));
    d1.handle_quorum_event(&ev(8, &[1, 2, 3]));
    let op = OpId { seq: 2, ..op };
    d1.operation_fenced(3, op, asked_by_2);
    d1.handle_quorum_event(&ev(12, &[1, 2]));
    assert_eq!(d1.state(3), NodeFenceState::Unclean { loss: 1 });

    // A start seen before 3 rejoined says nothing about the rejoined 3.
    let mut d1 = decision(1, 3);
    d1.membership(&set(&[1, 2]), true);
    drain(&mut d1);
    let op = OpId { seq: 3, ..op };
    d1.operation_started(op, 3);
    d1.membership(&set(&[1, 2, 3]), true);
    d1.operation_fenced(3, op, None);
    d1.membership(&set(&[1, 2]), true);
    assert_eq!(drain(&mut d1), [fence(3, 2)]);
}
