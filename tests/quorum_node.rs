//! Quorum through real nodes on loopback: three nodes become quorate, the
//! survivor of two departures loses quorum and is told so, phalanx-quorumtool
//! reports it (exit 2) and `-e 1` restores quorum cluster-wide through the admin
//! socket.

mod common;

use common::wait::{Deadline, wait_until};
use phalanx::node::{Node, NodeOptions, QuorumNotifications};
use phalanx::quorum::QuorumConfig;
use phalanx::totem::Config;
use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

fn quorumtool(sock: &std::path::Path, args: &[&str]) -> (i32, String) {
    common::recorder::admin_tool(env!("CARGO_BIN_EXE_phalanx-quorumtool"), sock, args)
}

#[test]
fn quorum_is_lost_reported_and_restored_through_the_admin_socket() {
    let ids = vec![1u32, 2, 3];
    let sockets: Vec<UdpSocket> = ids
        .iter()
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    let addrs: BTreeMap<u32, SocketAddr> = ids
        .iter()
        .zip(&sockets)
        .map(|(&id, s)| (id, s.local_addr().unwrap()))
        .collect();
    drop(sockets);
    let dir = std::env::temp_dir().join(format!("phalanx-quorum-node-{}", std::process::id()));
    let sock = dir.join("admin-1.sock");
    let mut nodes: Vec<Node> = ids
        .iter()
        .map(|&id| {
            let mut o = NodeOptions::new(Config::new(id, ids.clone()), addrs.clone());
            o.quorum = Some(QuorumConfig::new(id, &ids));
            if id == 1 {
                o.admin_socket = Some(sock.clone());
            }
            Node::start(o).unwrap()
        })
        .collect();
    wait_until("all three quorate", Duration::from_secs(20), || {
        nodes.iter().all(|n| n.quorum().is_quorate())
    });
    let (code, text) = quorumtool(&sock, &["-s"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("Quorate:          Yes"), "{text}");
    assert!(text.contains("Expected votes:   3"), "{text}");
    assert!(text.contains("Quorum:           2"), "{text}");

    let changes = nodes[0].quorum().notifications();
    let (cb_tx, cb_rx) = std::sync::mpsc::channel();
    let callback = nodes[0]
        .quorum()
        .on_change(move |c| {
            let _ = cb_tx.send(c.quorate);
        })
        .unwrap();
    for n in nodes.drain(1..) {
        n.leave().unwrap();
    }
    let t0 = Instant::now();
    // Node 2 leaves first ({1,3} stay quorate), then node 3.
    let lost = loop {
        let c = changes
            .recv_timeout(Duration::from_secs(20))
            .expect("a quorum change after the departures");
        if !c.quorate {
            break c;
        }
    };
    assert_eq!(
        lost.nodes
            .iter()
            .filter(|n| n.state == phalanx::quorum::NodeState::Member)
            .count(),
        1,
        "{lost:?}"
    );
    eprintln!("quorum lost {:?} after the departures", t0.elapsed());
    assert!(!nodes[0].quorum().is_quorate());
    // The callback saw the same loss.
    let deadline = Deadline::after("the callback's loss", Duration::from_secs(10));
    loop {
        if !cb_rx
            .recv_timeout(deadline.remaining())
            .expect("the callback is told of the loss")
        {
            break;
        }
    }
    let (code, text) = quorumtool(&sock, &["-s"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("Quorate:          No"), "{text}");

    // Dropping the guard ends the callback thread at once: the sender it
    // captured is gone once the drop returns, so no later change can reach it.
    drop(callback);
    while cb_rx.try_recv().is_ok() {}
    assert_eq!(
        cb_rx.try_recv(),
        Err(std::sync::mpsc::TryRecvError::Disconnected)
    );

    // Runtime change through the admin socket: one expected vote is enough.
    let (code, text) = quorumtool(&sock, &["-e", "1"]);
    assert_eq!(code, 0, "{text}");
    wait_until("quorate again", Duration::from_secs(10), || {
        nodes[0].quorum().is_quorate()
    });
    // The stream still subscribed sees the change the stopped callback does not.
    let regained = loop {
        let c = changes
            .recv_timeout(Duration::from_secs(10))
            .expect("the change back to quorate");
        if c.quorate {
            break c;
        }
    };
    assert_eq!(regained.ring, nodes[0].handle().membership().ring);
    let (code, text) = quorumtool(&sock, &["-l"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("(local)"), "{text}");
}

#[test]
fn a_subscriber_that_lagged_reads_the_current_state_last() {
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addrs: BTreeMap<u32, SocketAddr> =
        [(1, format!("127.0.0.1:{port}").parse().unwrap())].into();
    let opts =
        NodeOptions::new(Config::new(1, vec![1]), addrs).with_quorum(QuorumConfig::new(1, &[1]));
    let node = Node::start(opts).unwrap();
    let quorum = node.quorum();
    wait_until("the lone node quorate", Duration::from_secs(20), || {
        quorum.is_quorate()
    });

    // Subscribed, never read while quorum flips more than twice the queue's
    // capacity: expected votes 3 (one vote of three: not quorate), then 1. An
    // odd number of flips ends on "not quorate", which the oldest changes a
    // full queue would keep (ending on "quorate") are not.
    let changes = quorum.notifications();
    let capacity = QuorumNotifications::CAPACITY;
    let flips = 2 * capacity + 1;
    for i in 0..flips {
        let votes = if i % 2 == 0 { 3 } else { 1 };
        quorum.set_expected_votes(votes).unwrap();
    }
    // Every flip is one change; wait until the last is published.
    wait_until("every change published", Duration::from_secs(20), || {
        changes.skipped() + changes.len() as u64 >= flips as u64
    });
    let read: Vec<_> = changes.try_iter().collect();
    assert_eq!(read.len(), capacity, "a full queue's worth");
    assert_eq!(changes.skipped(), (flips - capacity) as u64);
    let last = read.last().unwrap();
    let now = quorum.info().unwrap();
    assert!(!last.quorate && !now.cluster.quorate, "{last:?}");
    assert_eq!(
        last.nodes, now.nodes,
        "the last change read is the current state"
    );
    assert_eq!(now.cluster.expected_votes, 3);
}
