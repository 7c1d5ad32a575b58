//! A member that announced an unclean start (`FenceDecision::announced_start`):
//! its host's previous process ended holding DLM locks nobody released, so it is
//! in doubt and owed a fencing while it is a member (docs/dlm.md).

use phalanx_fence::core::{DecisionConfig, DecisionOutput, FenceDecision, NodeFenceState};
use std::collections::BTreeSet;

fn set(v: &[u32]) -> BTreeSet<u32> {
    v.iter().copied().collect()
}

fn decision(local: u32, n: u32, quorate: bool) -> FenceDecision {
    let mut d = FenceDecision::new(DecisionConfig::new(local, 1..=n));
    d.membership(&(1..=n).collect(), quorate);
    while d.poll().is_some() {}
    d
}

fn requests(d: &mut FenceDecision) -> Vec<(u32, u64)> {
    let mut out = Vec::new();
    while let Some(o) = d.poll() {
        if let DecisionOutput::Fence { node, loss, .. } = o {
            out.push((node, loss));
        }
    }
    out
}

#[test]
fn the_lowest_other_member_asks_once_and_the_fencing_ends_the_doubt() {
    // Seen from nodes 1 and 2 (node 3's own view is the next test's).
    for local in 1..=2 {
        let mut d = decision(local, 3, true);
        d.announced_unclean(3);
        assert_eq!(d.in_doubt(), vec![3], "node {local}");
        let asked = requests(&mut d);
        if local == 1 {
            assert_eq!(asked, vec![(3, 1)]);
        } else {
            assert!(asked.is_empty(), "node {local} asked: {asked:?}");
        }
        // Announced again (every configuration): no second request.
        d.announced_unclean(3);
        assert!(requests(&mut d).is_empty());
        d.fenced(3, d.joined_ring(3));
        assert_eq!(d.in_doubt(), vec![3], "in doubt until the fencing ended it");
        d.membership(&set(&[1, 2]), true);
        assert!(matches!(d.state(3), NodeFenceState::Fenced { .. }));
        assert!(d.in_doubt().is_empty(), "node {local}: {:?}", d.in_doubt());
        assert!(requests(&mut d).is_empty(), "fenced: nothing more to ask");
    }
}

#[test]
fn the_coordinator_itself_is_asked_for_by_the_next_member() {
    let mut d = decision(2, 3, true);
    d.announced_unclean(1);
    assert_eq!(requests(&mut d), vec![(1, 1)]);
    for (local, node) in [(1, 1), (3, 3)] {
        let mut d = decision(local, 3, true);
        d.announced_unclean(node);
        assert_eq!(d.in_doubt(), vec![node], "its own doubt counts too");
        assert!(requests(&mut d).is_empty(), "nobody fences itself");
    }
}

#[test]
fn without_quorum_nobody_asks_and_a_failed_request_is_asked_again() {
    let mut d = decision(1, 3, false);
    d.announced_unclean(3);
    assert_eq!(d.in_doubt(), vec![3]);
    assert!(
        requests(&mut d).is_empty(),
        "an inquorate partition fences nobody"
    );
    d.membership(&set(&[1, 2, 3]), true);
    let asked = requests(&mut d);
    assert_eq!(asked, vec![(3, 1)]);
    d.request_failed(3, 1);
    assert_eq!(requests(&mut d), vec![(3, 1)], "asked again");
}

#[test]
fn a_clean_word_after_an_unclean_one_is_a_newer_process_on_a_new_boot() {
    let mut d = decision(1, 3, true);
    d.announced_start(3, true);
    assert_eq!(d.in_doubt(), vec![3]);
    let _ = requests(&mut d);
    // Fenced and restarted faster than the membership saw it go: its next
    // process found a marker of an older boot.
    d.fenced(3, d.joined_ring(3));
    d.announced_start(3, false);
    assert!(d.in_doubt().is_empty());
    assert!(requests(&mut d).is_empty());
}

#[test]
fn an_announcement_of_a_node_not_a_member_is_ignored() {
    let mut d = decision(1, 3, true);
    d.membership(&set(&[1, 2]), true);
    let _ = requests(&mut d);
    d.announced_unclean(9);
    d.announced_unclean(3);
    assert_eq!(
        d.in_doubt(),
        vec![3],
        "node 3 is in doubt as lost, not as announced"
    );
    d.fenced(3, d.joined_ring(3));
    assert!(d.in_doubt().is_empty());
}

/// Found by `tests/dlm_cluster.rs` (a failure in CI): node 2 and node 3's
/// unclean process formed ring 4 without node 1; node 2 asked for node 3's
/// fencing naming ring 4. Node 1 joined in ring 8 and saw node 3 join there;
/// the fencing completed. Naming ring 4, it did not count on node 1, which
/// then asked for a second fencing — and the agent killed node 3's *next*
/// process, started clean meanwhile. Node 3's word now names its process's
/// first ring (a ring holds one process per node): the fencing counts on
/// node 1 whichever comes first, the word or the result.
#[test]
fn a_fencing_that_names_the_process_s_first_ring_counts_for_a_node_that_saw_it_join_later() {
    use phalanx_totem::RingId;
    let ring = |seq| RingId { seq, rep: 1 };
    for word_first in [true, false] {
        let mut d = FenceDecision::new(DecisionConfig::new(1, 1..=3));
        d.configuration(ring(8), &set(&[1, 2, 3]), true);
        while d.poll().is_some() {}
        if word_first {
            assert!(d.announced_first_ring(3, ring(4)));
            d.fenced(3, Some(ring(4))); // node 2's request named ring 4
        } else {
            d.fenced(3, Some(ring(4))); // not known yet: does not count
            assert!(!d.is_fenced_member(3));
            assert!(d.announced_first_ring(3, ring(4)));
            // The Stack then feeds the completed fencings that name the ring.
            d.fenced(3, Some(ring(4)));
        }
        d.announced_unclean(3);
        assert!(d.is_fenced_member(3), "word first: {word_first}");
        assert!(
            requests(&mut d).is_empty(),
            "a second fencing of node 3 (word first: {word_first})"
        );
        // Node 3's loss is fenced; its next process (first ring 12) is not
        // covered by a late result naming ring 4.
        d.configuration(ring(9), &set(&[1, 2]), true);
        assert!(matches!(d.state(3), NodeFenceState::Fenced { .. }));
        d.configuration(ring(12), &set(&[1, 2, 3]), true);
        assert!(d.announced_first_ring(3, ring(12)));
        d.fenced(3, Some(ring(4)));
        assert!(!d.is_fenced_member(3));
        assert!(!d.is_fenced_since(3, d.incarnation(3)));
        assert_eq!(d.joined_ring(3), Some(ring(12)));
    }
}
