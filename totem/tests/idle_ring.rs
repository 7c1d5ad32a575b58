//! On an idle ring the representative holds the token. Its own messages must not
//! wait for the hold to end, nor may it hold the token again right after sending:
//! the others need rotations to acknowledge (and safe delivery needs two).

use phalanx_totem::testing::MemNet;
use phalanx_totem::{Config, Guarantee, Time};
use std::time::Duration;

/// Forms a 3-node ring and runs until its representative (node 1) holds the token.
fn idle_ring() -> MemNet {
    let mut net = MemNet::new(3, Config::new);
    assert!(net.run_until_formed(1_000_000));
    assert_eq!(net.nodes[0].ring_id().rep, 1);
    let holds = net.nodes[0].stats().token_holds;
    assert!(
        net.run_until(1_000_000, |n| n.nodes[0].stats().token_holds > holds
            && n.nodes.iter().all(|c| c.is_quiescent())),
        "the ring never went idle"
    );
    net
}

fn time_to_deliver(net: &mut MemNet, sender: usize, guarantee: Guarantee) -> Duration {
    let before: Vec<u64> = net.delivered.clone();
    let t0: Time = net.now;
    net.nodes[sender].mcast(t0, guarantee, b"ping").unwrap();
    net.drain(sender);
    assert!(net.run_until(1_000_000, |n| {
        n.delivered.iter().zip(&before).all(|(d, b)| *d == b + 1)
    }));
    net.now - t0
}

#[test]
fn the_representative_sends_its_own_message_before_passing_a_held_token() {
    let mut net = idle_ring();
    let rep = &mut net.nodes[0];
    let (mcasts, tokens) = (rep.stats().mcast_tx, rep.stats().tokens_tx);
    let now = net.now;
    rep.mcast(now, Guarantee::Agreed, b"first").unwrap();
    rep.handle_timeout(now);
    assert_eq!(
        rep.stats().mcast_tx,
        mcasts + 1,
        "frame not sent with the held token"
    );
    assert_eq!(rep.stats().tokens_tx, tokens + 1);
}

#[test]
fn safe_messages_on_an_idle_ring_do_not_wait_for_the_hold_interval() {
    let hold = Config::new(1, vec![1, 2, 3]).hold;
    for sender in 0..3 {
        let mut net = idle_ring();
        let t = time_to_deliver(&mut net, sender, Guarantee::Safe);
        assert!(
            t < hold,
            "sender index {sender}: safe delivery took {t:?}, hold is {hold:?}"
        );
    }
}
