//! Quorum through real nodes on loopback: three nodes become quorate, the
//! survivor of two departures loses quorum and is told so, phalanx-quorumtool
//! reports it (exit 2) and `-e 1` restores quorum cluster-wide through the admin
//! socket.

mod common;

use common::wait::{Deadline, wait_until};
use phalanx::node::{Node, NodeOptions};
use phalanx::quorum::QuorumConfig;
use phalanx::totem::Config;
use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

fn quorumtool(sock: &std::path::Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_phalanx-quorumtool"))
        .arg("--socket")
        .arg(sock)
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
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
    nodes[0]
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

    // Runtime change through the admin socket: one expected vote is enough.
    let (code, text) = quorumtool(&sock, &["-e", "1"]);
    assert_eq!(code, 0, "{text}");
    wait_until("quorate again", Duration::from_secs(10), || {
        nodes[0].quorum().is_quorate()
    });
    let (code, text) = quorumtool(&sock, &["-l"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("(local)"), "{text}");
}
