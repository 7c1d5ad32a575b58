//! A late frame of the old ring — sent by a member that was paused past the token
//! timeout, kept its ring and sent on it after resuming — must not reach the
//! transitional configuration of only some of the members.
//!
//! A node reports its old-ring aru and highest sequence when it fills its entry of
//! the commit token; the recovery plan is fixed from those entries (when they show
//! every transitional member complete, nobody re-sends anything). A frame that
//! node took afterwards — in COMMIT — was held by it alone and delivered by it
//! alone in the transitional configuration: virtual synchrony and safe delivery
//! violated (simulator seeds 17060 and 22087, 6 nodes).

use phalanx_totem::testing::MemNet;
use phalanx_totem::wire::{self, Message};
use phalanx_totem::{Config, ConfigKind, Event, Guarantee, State};

const STEPS: u64 = 1_000_000;

fn is_mcast_of_node_3(datagram: &[u8]) -> bool {
    wire::decode(datagram).is_ok_and(|d| d.sender == 3 && matches!(d.message, Message::Mcast(_)))
}

/// The payloads node `i` delivered between its transitional and its regular
/// configuration of the ring it installed last.
fn delivered_in_transitional(net: &MemNet, i: usize) -> Vec<Vec<u8>> {
    let events = &net.events[i];
    let trans = events
        .iter()
        .rposition(|e| matches!(e, Event::Config(c) if c.kind == ConfigKind::Transitional))
        .expect("a transitional configuration was installed");
    events[trans + 1..]
        .iter()
        .take_while(|e| !matches!(e, Event::Config(_)))
        .filter_map(|e| match e {
            Event::Deliver(d) => Some(d.data.to_vec()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_late_old_ring_frame_taken_in_commit_is_not_delivered_by_one_member_alone() {
    let mut net = MemNet::new(3, Config::new);
    assert!(net.run_until_formed(STEPS));
    let old_ring = net.nodes[0].ring_id();

    // What node 3 would send on the old ring if it ran on: a safe message in a
    // frame numbered past everything the others hold. Taken from a copy of the
    // network, so the real nodes 1 and 2 never see it on their ring.
    let mut ghost = net.clone();
    ghost.capture = true;
    ghost.nodes[2]
        .mcast(ghost.now, Guarantee::Safe, b"late")
        .unwrap();
    let found = ghost.run_until(STEPS, |g| g.captured.iter().any(|d| is_mcast_of_node_3(d)));
    assert!(found, "node 3 sent its frame");
    let late = ghost
        .captured
        .iter()
        .find(|d| is_mcast_of_node_3(d))
        .unwrap()
        .clone();
    match wire::decode(&late).unwrap().message {
        Message::Mcast(m) => assert_eq!(m.ring, old_ring, "a frame of the old ring"),
        _ => unreachable!(),
    }

    // Node 3 stops (a pause); nodes 1 and 2 lose the token and form {1,2}. Node 2
    // fills its commit entry and waits in COMMIT for the second rotation: that is
    // when the late frame arrives.
    net.keep_events = true;
    net.crash(2);
    assert!(
        net.run_until(STEPS, |n| n.nodes[1].state() == State::Commit),
        "node 2 reached COMMIT"
    );
    net.nodes[1].handle_datagram(net.now, &late);
    net.drain(1);
    assert!(net.run_until(STEPS, |n| {
        (0..2).all(|i| n.nodes[i].is_operational() && n.nodes[i].members() == [1, 2])
    }));

    let at_1 = delivered_in_transitional(&net, 0);
    let at_2 = delivered_in_transitional(&net, 1);
    assert_eq!(
        at_1, at_2,
        "nodes 1 and 2 moved together from the old ring but delivered different messages in the transitional configuration"
    );
    assert!(
        !at_2.contains(&b"late".to_vec()),
        "the late frame, held by node 2 alone, was delivered"
    );
}
