//! A node that cannot make its ring sequence durable stops, with a clear error,
//! instead of going on at the risk of reusing a ring id after a restart (as
//! Corosync stops); the others re-form without it. Real nodes on loopback, a real
//! state directory: node 3's is replaced by a plain file, so its next write fails.

mod common;

use common::conf::loopback_node_addrs;

use common::wait::wait_until;
use crossbeam_channel::TryRecvError;
use phalanx::node::{Node, NodeOptions};
use phalanx::totem::Config;
use std::time::Duration;

#[test]
fn a_failed_ring_sequence_write_stops_the_node_and_the_others_reform() {
    let addrs = loopback_node_addrs(3);
    let root = std::env::temp_dir().join(format!("phalanx-persist-fail-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let ids = vec![1, 2, 3];
    let mut nodes: Vec<Option<Node>> = ids
        .iter()
        .map(|&id| {
            let mut o = NodeOptions::new(Config::new(id, ids.clone()), addrs.clone());
            o.state_dir = Some(root.join(format!("n{id}")));
            Some(Node::start(o).expect("node starts"))
        })
        .collect();
    let members = |n: &Node| n.handle().membership().members;
    wait_until("one ring of all three", Duration::from_secs(10), || {
        nodes.iter().flatten().all(|n| members(n) == ids)
    });
    let ring_file = root.join("n3").join("ringseq_3");
    assert!(
        ring_file.exists(),
        "formation persisted node 3's ring sequence"
    );

    // Node 3's state directory becomes a file: every later write fails.
    std::fs::remove_dir_all(root.join("n3")).unwrap();
    std::fs::write(root.join("n3"), b"not a directory").unwrap();
    // Node 1 leaves: {2, 3} must form a new ring, which needs a write on node 3.
    nodes[0].take().unwrap().leave().unwrap();
    let n3 = nodes[2].take().unwrap();
    // Its driver ends: the event stream disconnects (after what was queued).
    wait_until("node 3 to stop", Duration::from_secs(10), || {
        loop {
            match n3.events().try_recv() {
                Ok(_) => continue,
                Err(TryRecvError::Empty) => return false,
                Err(TryRecvError::Disconnected) => return true,
            }
        }
    });
    assert_ne!(
        members(&n3),
        vec![2, 3],
        "node 3 never installed the unpersisted ring"
    );
    let n2 = nodes[1].take().unwrap();
    wait_until(
        "node 2 alone in a new ring",
        Duration::from_secs(10),
        || n2.handle().is_operational() && members(&n2) == vec![2],
    );
    let err = n3.leave().expect_err("node 3 stopped with an error");
    assert!(
        err.to_string().contains("persisting RingSeq"),
        "a clear error: {err}"
    );
    n2.leave().unwrap();
    let _ = std::fs::remove_file(root.join("n3"));
    let _ = std::fs::remove_dir_all(&root);
}
