//! Startup fencing (`startup-fencing`, `dc-deadtime`) and pending members
//! (`node-pending-timeout`) in the "who fences" decision (§2.6 and §2.10 of the
//! fencing reference).

use phalanx_fence::Action;
use phalanx_fence::core::{DecisionConfig, DecisionOutput, FenceDecision, NodeFenceState};
use phalanx_totem::{RingId, Time};
use std::collections::BTreeSet;
use std::time::Duration;

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

fn at(ms: u64) -> Time {
    Time::ZERO + Duration::from_millis(ms)
}

fn ring(seq: u64) -> RingId {
    RingId { seq, rep: 1 }
}

/// A decision started at `t0` (its first advance) with `members` quorate or not.
fn started(cfg: DecisionConfig, t0: u64, members: &[u32], quorate: bool) -> FenceDecision {
    let mut d = FenceDecision::new(cfg);
    d.advance(at(t0));
    d.configuration(ring(1), &set(members), quorate);
    d
}

#[test]
fn never_seen_nodes_are_fenced_once_the_dead_time_is_over() {
    // 5 configured, 1..=3 up and quorate; 4 and 5 never seen.
    let mut cfg = DecisionConfig::new(1, 1..=5);
    cfg.startup_deadtime_ms = 20_000;
    let mut d = started(cfg, 1000, &[1, 2, 3], true);
    assert!(
        drain(&mut d).is_empty(),
        "within the dead time nothing happens"
    );
    assert_eq!(d.state(4), NodeFenceState::Down);
    assert_eq!(d.poll_timeout(), Some(at(21_000)));
    d.advance(at(20_999));
    assert!(drain(&mut d).is_empty());
    d.advance(at(21_000));
    assert_eq!(drain(&mut d), [fence(4, 1), fence(5, 1)]);
    assert_eq!(d.unclean(), [4, 5]);
    assert_eq!(d.poll_timeout(), None, "decided once");
    // Nobody knows an incarnation of 4: the result (target_joined None) counts.
    assert_eq!(d.joined_ring(4), None);
    d.fenced(4, None);
    assert_eq!(
        drain(&mut d),
        [DecisionOutput::NodeFenced { node: 4, loss: 1 }]
    );
    assert!(d.is_fenced_since_lost(4));
    // 5 joins before its fencing succeeded: a member again, nothing owed.
    d.configuration(ring(2), &set(&[1, 2, 3, 5]), true);
    assert_eq!(d.state(5), NodeFenceState::Member);
    assert_eq!(d.unclean(), Vec::<u32>::new());
    // Later advances never decide again.
    d.advance(at(100_000));
    assert!(drain(&mut d).is_empty());
}

#[test]
fn a_node_seen_before_the_dead_time_ends_is_not_startup_fenced() {
    let mut d = started(DecisionConfig::new(1, 1..=3), 0, &[1, 2], true);
    d.advance(at(5000));
    d.configuration(ring(2), &set(&[1, 2, 3]), true);
    d.advance(at(30_000));
    assert!(drain(&mut d).is_empty());
    // It leaves cleanly: down, never unclean — startup fencing is over.
    d.leaving(3);
    d.configuration(ring(3), &set(&[1, 2]), true);
    d.advance(at(60_000));
    assert!(drain(&mut d).is_empty());
    assert_eq!(d.state(3), NodeFenceState::Down);
}

#[test]
fn startup_fencing_waits_for_quorum_and_asks_only_the_coordinator() {
    // Node 2 alone of 3: inquorate after the dead time — nothing.
    let mut d2 = started(DecisionConfig::new(2, 1..=3), 0, &[2], false);
    d2.advance(at(25_000));
    assert!(drain(&mut d2).is_empty());
    assert_eq!(
        d2.state(3),
        NodeFenceState::Down,
        "not decided while inquorate"
    );
    // Node 1 joins: quorate {1,2}; node 2 is not the coordinator.
    d2.configuration(ring(2), &set(&[1, 2]), true);
    assert!(drain(&mut d2).is_empty());
    assert_eq!(d2.unclean(), [3], "but it knows 3 is owed fencing");
    // Node 1's own decision started later: its own dead time counts.
    let mut d1 = started(DecisionConfig::new(1, 1..=3), 24_000, &[1, 2], true);
    d1.advance(at(43_999));
    assert!(drain(&mut d1).is_empty());
    d1.advance(at(44_000));
    assert_eq!(drain(&mut d1), [fence(3, 1)]);
    // A failure is asked again (attempts remain).
    d1.request_failed(3, 1);
    assert_eq!(drain(&mut d1), [fence(3, 1)]);
}

#[test]
fn startup_fencing_off_or_fencing_disabled_leaves_never_seen_nodes_alone() {
    let mut off = DecisionConfig::new(1, 1..=3);
    off.startup_fencing = false;
    let mut d = started(off, 0, &[1, 2], true);
    d.advance(at(60_000));
    assert!(drain(&mut d).is_empty());
    assert_eq!(d.poll_timeout(), None);
    let mut disabled = DecisionConfig::new(1, 1..=3);
    disabled.fencing_enabled = false;
    let mut d = started(disabled, 0, &[1, 2], true);
    d.advance(at(60_000));
    assert!(drain(&mut d).is_empty());
    assert_eq!(d.state(3), NodeFenceState::Down);
}

#[test]
fn a_pending_member_is_fenced_after_node_pending_timeout() {
    let mut cfg = DecisionConfig::new(1, 1..=3);
    cfg.node_pending_timeout_ms = 10_000;
    let mut d = started(cfg, 0, &[1, 2], true);
    d.online(2);
    d.advance(at(1000));
    d.configuration(ring(2), &set(&[1, 2, 3]), true);
    assert!(d.is_pending(3) && !d.is_pending(2));
    assert_eq!(d.poll_timeout(), Some(at(11_000)));
    d.advance(at(10_999));
    assert!(drain(&mut d).is_empty());
    d.advance(at(11_000));
    // Its coming loss (its second: it never left before) is what this fencing is for.
    assert_eq!(drain(&mut d), [fence(3, 1)]);
    assert!(drain(&mut d).is_empty(), "asked once");
    // A failure asks again.
    d.request_failed(3, 1);
    assert_eq!(drain(&mut d), [fence(3, 1)]);
    // Success fences this incarnation: its loss is then already fenced.
    let joined = d.joined_ring(3);
    d.fenced(3, joined);
    d.request_failed(3, 1); // the Stack reports every finished request
    assert!(
        drain(&mut d).is_empty(),
        "a fenced member is not asked again"
    );
    d.configuration(ring(3), &set(&[1, 2]), true);
    assert_eq!(
        drain(&mut d),
        [DecisionOutput::NodeFenced { node: 3, loss: 1 }]
    );
}

#[test]
fn a_member_that_comes_online_in_time_is_never_pending_fenced() {
    let mut cfg = DecisionConfig::new(1, 1..=3);
    cfg.node_pending_timeout_ms = 10_000;
    let mut d = started(cfg, 0, &[1, 2, 3], true);
    d.online(2);
    d.advance(at(9_000));
    d.online(3);
    d.advance(at(60_000));
    assert!(drain(&mut d).is_empty());
    assert_eq!(d.poll_timeout(), None);
    // Rejoining is a new incarnation: pending again until online.
    d.configuration(ring(2), &set(&[1, 2]), true);
    assert_eq!(drain(&mut d), [fence(3, 1)]);
    d.fenced(3, d.joined_ring(3));
    drain(&mut d);
    d.configuration(ring(3), &set(&[1, 2, 3]), true);
    assert!(d.is_pending(3));
    assert_eq!(d.poll_timeout(), Some(at(70_000)));
}

#[test]
fn pending_members_are_left_alone_by_default_by_non_coordinators_and_inquorate_partitions() {
    // Default: off.
    let mut d = started(DecisionConfig::new(1, 1..=3), 0, &[1, 2, 3], true);
    d.advance(at(600_000));
    assert!(drain(&mut d).is_empty());
    assert!(d.is_pending(3), "pending, but node-pending-timeout is 0");
    // Not the coordinator.
    let mut cfg = DecisionConfig::new(2, 1..=3);
    cfg.node_pending_timeout_ms = 1000;
    let mut d = started(cfg.clone(), 0, &[1, 2, 3], true);
    d.advance(at(5000));
    assert!(drain(&mut d).is_empty());
    // Inquorate.
    cfg.local = 1;
    let mut d = started(cfg, 0, &[1, 3], false);
    d.advance(at(5000));
    assert!(drain(&mut d).is_empty());
}

#[test]
fn nodes_in_doubt_are_the_unclean_and_until_startup_is_decided_the_never_seen() {
    // 5 configured, 1..=3 up and quorate; 4 and 5 never seen.
    let mut d = started(DecisionConfig::new(1, 1..=5), 0, &[1, 2, 3], true);
    assert_eq!(d.in_doubt(), [4, 5], "never seen, startup not decided");
    // 5 shows up: no doubt about it any more.
    d.configuration(ring(2), &set(&[1, 2, 3, 5]), true);
    assert_eq!(d.in_doubt(), [4]);
    // Startup decided: 4 is unclean (still in doubt) until fenced.
    d.advance(at(20_000));
    assert_eq!(drain(&mut d), [fence(4, 1)]);
    assert_eq!(d.in_doubt(), [4]);
    d.fenced(4, None);
    drain(&mut d);
    assert_eq!(d.in_doubt(), Vec::<u32>::new());
    // 3 is lost: in doubt until fenced, then not.
    d.configuration(ring(3), &set(&[1, 2, 5]), true);
    assert_eq!(d.in_doubt(), [3]);
    d.fenced(3, d.joined_ring(3));
    drain(&mut d);
    assert_eq!(d.in_doubt(), Vec::<u32>::new());

    // Startup fencing off: never-seen nodes are trusted down.
    let mut off = DecisionConfig::new(1, 1..=3);
    off.startup_fencing = false;
    let d = started(off, 0, &[1, 2], true);
    assert_eq!(d.in_doubt(), Vec::<u32>::new());
    // Fencing disabled: nothing could settle a doubt, so there is none.
    let mut disabled = DecisionConfig::new(1, 1..=3);
    disabled.fencing_enabled = false;
    let mut d = started(disabled, 0, &[1, 2, 3], true);
    d.configuration(ring(2), &set(&[1, 2]), true);
    assert_eq!(d.in_doubt(), Vec::<u32>::new());
}
