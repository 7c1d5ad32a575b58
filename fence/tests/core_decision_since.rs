//! "Fenced since the failure of incarnation i" (`FenceDecision::incarnation`,
//! `is_fenced_since`): what the DLM waits for, which a rejoin must not satisfy
//! (issue 14: a process restarted, or a partition merged, before anyone fenced
//! the node; the decision's own loss state is cleared by the rejoin).

use phalanx_fence::core::{DecisionConfig, FenceDecision, NodeFenceState};
use std::collections::BTreeSet;

fn set(v: &[u32]) -> BTreeSet<u32> {
    v.iter().copied().collect()
}

fn decision(local: u32, n: u32) -> FenceDecision {
    let mut d = FenceDecision::new(DecisionConfig::new(local, 1..=n));
    d.membership(&(1..=n).collect(), true);
    while d.poll().is_some() {}
    d
}

#[test]
fn incarnations_count_joins_and_survive_losses() {
    let mut d = decision(1, 3);
    assert_eq!(d.incarnation(3), 1);
    d.membership(&set(&[1, 2]), true);
    assert_eq!(d.incarnation(3), 1, "a loss is no new incarnation");
    d.membership(&set(&[1, 2, 3]), true);
    assert_eq!(d.incarnation(3), 2);
    assert_eq!(d.incarnation(9), 0, "never seen");
}

#[test]
fn a_rejoin_is_no_fencing_but_a_fencing_of_the_new_incarnation_covers_the_old_failure() {
    let mut d = decision(1, 3);
    let failed = d.incarnation(3);
    d.membership(&set(&[1, 2]), true);
    assert!(!d.is_fenced_since(3, failed));
    // Restarted before the fencing: the decision forgets the loss ...
    d.membership(&set(&[1, 2, 3]), true);
    assert_eq!(d.state(3), NodeFenceState::Member);
    assert!(d.unclean().is_empty() && d.in_doubt().is_empty());
    // ... the query does not.
    assert!(!d.is_fenced_since(3, failed), "a rejoin satisfied it");
    // A fencing of the current incarnation power-cycled the host after the
    // old one ran: it covers that failure and the current incarnation.
    d.fenced(3, d.joined_ring(3));
    assert!(d.is_fenced_since(3, failed));
    assert!(d.is_fenced_since(3, d.incarnation(3)));
    assert!(!d.is_fenced_since(3, d.incarnation(3) + 1));
}

#[test]
fn a_late_result_for_the_old_incarnation_covers_its_failure_only() {
    let mut d = decision(1, 3);
    let old_ring = d.joined_ring(3);
    let failed = d.incarnation(3);
    d.membership(&set(&[1, 2]), true);
    d.membership(&set(&[1, 2, 3]), true);
    let current = d.incarnation(3);
    // The fencing asked for the first loss completes after the rejoin.
    d.fenced(3, old_ring);
    assert!(
        d.is_fenced_since(3, failed),
        "it came after the old incarnation ran"
    );
    assert!(
        !d.is_fenced_since(3, current),
        "it may predate the new incarnation"
    );
    assert_eq!(
        d.state(3),
        NodeFenceState::Member,
        "and does not mark the member fenced"
    );
    // A result naming a ring nobody saw node 3 join in covers nothing.
    let mut e = decision(1, 3);
    e.membership(&set(&[1, 2]), true);
    e.fenced(3, Some(phalanx_totem::RingId { seq: 999, rep: 7 }));
    assert!(!e.is_fenced_since(3, 1));
}

#[test]
fn a_fencing_seen_to_start_under_an_incarnation_covers_it() {
    let mut d = decision(1, 3);
    let failed = d.incarnation(3);
    let op = phalanx_fence::core::OpId {
        origin: 2,
        incarnation: 1,
        seq: 1,
    };
    d.operation_started(op, 3);
    d.membership(&set(&[1, 2]), true);
    d.membership(&set(&[1, 2, 3]), true);
    // Its requester named no incarnation we know, but we saw it start while
    // the failed incarnation was there.
    d.operation_fenced(3, op, None);
    assert!(d.is_fenced_since(3, failed));
    assert!(!d.is_fenced_since(3, d.incarnation(3)));
}

#[test]
fn watchdog_and_disabled_fencing_answer_too() {
    let mut cfg = DecisionConfig::new(1, [1, 2, 3]);
    cfg.fencing_enabled = false;
    let mut d = FenceDecision::new(cfg);
    d.membership(&set(&[1, 2, 3]), true);
    d.membership(&set(&[1, 2]), true);
    d.membership(&set(&[1, 2, 3]), true);
    assert!(
        d.is_fenced_since(3, 1),
        "without fencing nothing is waited for"
    );

    let mut cfg = DecisionConfig::new(1, [1, 2, 3]);
    cfg.watchdog_timeout_ms = 1000;
    cfg.watchdog_only = [3].into();
    let mut d = FenceDecision::new(cfg);
    let t0 = phalanx_totem::Time::ZERO;
    d.advance(t0);
    d.membership(&set(&[1, 2, 3]), true);
    d.membership(&set(&[1, 2]), true);
    d.advance(t0 + std::time::Duration::from_millis(500));
    assert!(!d.is_fenced_since(3, 1));
    d.advance(t0 + std::time::Duration::from_millis(1500));
    assert!(d.is_fenced_since(3, 1), "its watchdog fired");
}
