//! Pause detection: a node whose own token timer is handled more than half a token
//! timeout late (its process was not scheduled) re-arms the timer once instead of
//! declaring everyone else gone; a punctual expiry is still a token loss.

use phalanx_totem::testing::MemNet;
use phalanx_totem::{Config, State};
use std::time::Duration;

#[test]
fn a_late_token_timer_is_a_pause_not_a_loss() {
    let mut net = MemNet::new(3, Config::new);
    assert!(net.run_until_formed(1_000_000));
    let token = net.nodes[1].config().token_timeout;
    let node = &mut net.nodes[1];
    assert_eq!(node.state(), State::Operational);

    // Every timer of node 2 is due and long past: the process was stalled.
    let resumed = net.now + token * 10;
    node.handle_timeout(resumed);
    assert_eq!(
        node.state(),
        State::Operational,
        "a pause declared the ring lost"
    );
    assert_eq!(node.stats().pauses_detected, 1);
    assert_eq!(node.stats().token_losses, 0);

    // The re-armed timer, handled on time, with still no token: a real loss.
    let next = node.poll_timeout().expect("a timer is armed");
    assert!(next <= resumed + token, "re-armed for one token timeout");
    let mut now = next;
    while node.stats().token_losses == 0 {
        node.handle_timeout(now + Duration::from_millis(1));
        now = node.poll_timeout().expect("a timer is armed");
        assert!(
            now <= resumed + token * 3,
            "no loss declared after the pause"
        );
    }
    assert_eq!(node.stats().pauses_detected, 1);
    assert_eq!(node.state(), State::Gather);
}
