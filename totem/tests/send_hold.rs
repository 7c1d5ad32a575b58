//! The send hold (`Config::send_hold`): a node that has sent everything it had
//! keeps the token a little longer for more of its own messages, which then go
//! out on the same visit instead of a rotation later. Its messages are delivered
//! to itself at once all the same, the hold ends on time, and it never lets the
//! visit exceed `max_messages` frames.

use phalanx_totem::testing::MemNet;
use phalanx_totem::{Config, Guarantee, NodeId};
use std::time::Duration;

const HOLD: Duration = Duration::from_micros(200);

fn with_hold(id: NodeId, ids: Vec<NodeId>) -> Config {
    let mut c = Config::new(id, ids);
    c.send_hold = HOLD;
    c
}

/// A formed 3-node ring whose nodes hold the token `HOLD` after sending.
fn ring() -> MemNet {
    let mut net = MemNet::new(3, with_hold);
    assert!(net.run_until_formed(1_000_000));
    net
}

/// Runs until node index `i` holds the token for sending, after it sent `msg`.
fn send_and_hold(net: &mut MemNet, i: usize, msg: &[u8]) {
    let now = net.now;
    net.nodes[i].mcast(now, Guarantee::Agreed, msg).unwrap();
    net.drain(i);
    assert!(
        net.run_until(1_000_000, |n| n.nodes[i].holds_token_for_sending()),
        "node index {i} never held the token after sending"
    );
}

#[test]
fn a_message_sent_during_the_hold_goes_out_on_the_same_visit() {
    let mut net = ring();
    send_and_hold(&mut net, 0, b"first");
    let node = &mut net.nodes[0];
    let (tokens, frames, delivered) = (
        node.stats().tokens_tx,
        node.stats().mcast_tx,
        net.delivered[0],
    );
    // The application answers its own delivery within the hold.
    let now = net.now + HOLD / 4;
    node.mcast(now, Guarantee::Agreed, b"second").unwrap();
    node.handle_timeout(now);
    net.drain(0);
    let node = &net.nodes[0];
    assert_eq!(
        node.stats().mcast_tx,
        frames + 1,
        "not sent on the held visit"
    );
    assert_eq!(node.stats().send_hold_frames, 1);
    assert_eq!(
        net.delivered[0],
        delivered + 1,
        "not delivered to the sender at once"
    );
    assert_eq!(
        node.stats().tokens_tx,
        tokens,
        "the token left before the hold ended"
    );
    assert!(
        node.holds_token_for_sending(),
        "time is left: the hold goes on"
    );
    // Everyone gets both, in order.
    assert!(net.run_until(1_000_000, |n| n.delivered.iter().all(|d| *d >= 2)));
}

#[test]
fn the_hold_ends_on_time_and_the_token_moves_on() {
    let mut net = ring();
    send_and_hold(&mut net, 0, b"only");
    let start = net.now;
    let tokens = net.nodes[0].stats().tokens_tx;
    let deadline = net.nodes[0].poll_timeout().expect("the hold's timer");
    assert!(
        deadline > start && deadline <= start + HOLD,
        "{deadline:?} from {start:?}"
    );
    net.nodes[0].handle_timeout(deadline);
    net.drain(0);
    assert!(!net.nodes[0].holds_token_for_sending());
    assert_eq!(net.nodes[0].stats().tokens_tx, tokens + 1);
    assert!(net.run_until(1_000_000, |n| n.delivered.iter().all(|d| *d >= 1)));
}

#[test]
fn the_sender_gets_its_own_message_before_the_hold_on_an_idle_ring() {
    // The representative (index 0) of an idle ring holds the token; its message
    // ends that hold, goes out, and is delivered to it at once — the send hold
    // that follows must not delay it.
    let mut net = ring();
    assert!(
        net.run_until(1_000_000, |n| n.nodes[0].stats().token_holds > 0
            && n.nodes.iter().all(|c| c.is_quiescent()))
    );
    let before = net.delivered[0];
    let now = net.now;
    net.nodes[0].mcast(now, Guarantee::Agreed, b"ping").unwrap();
    net.nodes[0].handle_timeout(now);
    net.drain(0);
    assert_eq!(
        net.delivered[0],
        before + 1,
        "own message not delivered at once"
    );
    assert!(net.nodes[0].holds_token_for_sending());
}

#[test]
fn a_visit_never_sends_more_than_max_messages_frames() {
    let mut net = ring();
    let max = net.nodes[0].config().max_messages;
    send_and_hold(&mut net, 0, b"first");
    let frames = net.nodes[0].stats().mcast_tx;
    let tokens = net.nodes[0].stats().tokens_tx;
    let mut now = net.now;
    // One message at a time, each within the hold, until the visit is full.
    for k in 1..max {
        let node = &mut net.nodes[0];
        assert!(node.holds_token_for_sending(), "hold ended early at {k}");
        now = now + Duration::from_nanos(100);
        node.mcast(now, Guarantee::Agreed, b"more").unwrap();
        node.handle_timeout(now);
    }
    net.drain(0);
    let node = &net.nodes[0];
    // `max_messages` frames in all: the last one ends the hold.
    assert_eq!(node.stats().mcast_tx - frames, u64::from(max - 1));
    assert!(!node.holds_token_for_sending());
    assert_eq!(node.stats().tokens_tx, tokens + 1);
    assert!(net.run_until(1_000_000, |n| {
        n.delivered.iter().all(|d| *d >= u64::from(max))
    }));
}

#[test]
fn without_a_hold_the_token_moves_on_at_once() {
    let mut net = MemNet::new(3, Config::new);
    assert!(net.run_until_formed(1_000_000));
    let now = net.now;
    net.nodes[0].mcast(now, Guarantee::Agreed, b"x").unwrap();
    assert!(net.run_until(1_000_000, |n| n.delivered.iter().all(|d| *d >= 1)));
    assert!(net.nodes.iter().all(|n| n.stats().send_holds == 0));
}

#[test]
fn a_hold_longer_than_a_tenth_of_the_token_timeout_is_refused() {
    let mut c = Config::new(1, vec![1, 2]);
    c.send_hold = c.token_timeout / 5;
    assert!(c.validate().is_err());
    c.send_hold = c.token_timeout / 10;
    assert!(c.validate().is_ok());
}
