//! Every datagram is authenticated: forged, replayed, spoofed and unknown-source
//! datagrams are dropped and counted, the membership does not change, and a node
//! without the cluster key cannot join.
//!
//! Nodes 1 and 2 run for real on loopback. Node 3's configured address is held by
//! an attacker socket: it captures the genuine datagrams the nodes send to "node 3"
//! (joins and merge probes go to every configured node) and throws them back, along
//! with garbage and datagrams sealed with the wrong key.

mod common;

use common::wait::wait_until;
use phalanx::crypto::{Cipher, DatagramCrypto};
use phalanx::node::{CryptoOptions, Node, NodeEvent, NodeHandle, NodeOptions};
use phalanx::totem::{Config, Guarantee, NodeId};
use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const KEY: [u8; 64] = [7; 64];

fn addrs() -> (BTreeMap<NodeId, SocketAddr>, Vec<UdpSocket>) {
    let socks: Vec<UdpSocket> = (0..3)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    let map = socks
        .iter()
        .enumerate()
        .map(|(i, s)| (i as NodeId + 1, s.local_addr().unwrap()))
        .collect();
    (map, socks)
}

fn start(id: NodeId, addrs: &BTreeMap<NodeId, SocketAddr>, key: &[u8]) -> Node {
    start_with_admin(id, addrs, key, None)
}

fn start_with_admin(
    id: NodeId,
    addrs: &BTreeMap<NodeId, SocketAddr>,
    key: &[u8],
    admin_socket: Option<PathBuf>,
) -> Node {
    let mut o = NodeOptions::new(Config::new(id, vec![1, 2, 3]), addrs.clone());
    o.admin_socket = admin_socket;
    o.crypto = Some(CryptoOptions {
        key: key.to_vec(),
        cluster_name: "sec".into(),
        cipher: Cipher::Aes256Gcm,
    });
    Node::start(o).unwrap()
}

fn members(h: &NodeHandle) -> Vec<NodeId> {
    h.membership().members
}

#[test]
fn forged_replayed_spoofed_and_unknown_datagrams_are_dropped_and_counted() {
    let (addrs, mut socks) = addrs();
    let attacker = socks.pop().unwrap(); // holds node 3's address
    drop(socks); // free nodes 1 and 2's ports for them
    attacker
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let dir = std::env::temp_dir().join(format!("phalanx-security-{}", std::process::id()));
    let admin = dir.join("admin-1.sock");
    let n1 = start_with_admin(1, &addrs, &KEY, Some(admin.clone()));
    let n2 = start(2, &addrs, &KEY);
    let (h1, h2) = (n1.handle(), n2.handle());
    wait_until("ring {1,2}", Duration::from_secs(10), || {
        members(&h1) == [1, 2] && members(&h2) == [1, 2] && h1.is_operational()
    });
    let ring = h1.membership().ring;

    // Capture genuine sealed datagrams addressed to node 3.
    let mut captured = Vec::new();
    let mut buf = [0u8; 65_536];
    let t0 = Instant::now();
    while captured.len() < 20 && t0.elapsed() < Duration::from_secs(10) {
        if let Ok((n, _)) = attacker.recv_from(&mut buf) {
            captured.push(buf[..n].to_vec());
        }
    }
    assert!(
        captured.len() >= 5,
        "captured only {} datagrams",
        captured.len()
    );

    let targets = [addrs[&1], addrs[&2]];
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut forger =
        DatagramCrypto::new(&[9u8; 64], "sec", 3, &[1, 2, 3], Cipher::Aes256Gcm, 42).unwrap();
    let mut rng = 0x1234_5678_9abc_def0u64;
    for round in 0..100u32 {
        for t in targets {
            // Replays of genuine traffic from node 3's address.
            attacker
                .send_to(&captured[round as usize % captured.len()], t)
                .unwrap();
            // Sealed with the wrong key, claiming to be node 3.
            let mut forged = Vec::new();
            forger.seal(&round.to_le_bytes(), &mut forged).unwrap();
            attacker.send_to(&forged, t).unwrap();
            // Garbage.
            let garbage: Vec<u8> = (0..64 + round % 200)
                .map(|_| {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    rng as u8
                })
                .collect();
            attacker.send_to(&garbage, t).unwrap();
            // Genuine bytes from an address outside the node list.
            stranger.send_to(&captured[0], t).unwrap();
        }
    }

    // Both nodes count what they dropped; give them time to read it all (bounded).
    let dropped = |h: &NodeHandle| {
        let d = h.stats().driver;
        (
            d.crypto.replayed + d.crypto.too_old,
            d.crypto.auth_failed,
            d.crypto.malformed,
            d.transport.rx_unknown_addr,
            d.rx_spoofed,
        )
    };
    wait_until(
        "every bad datagram to be counted",
        Duration::from_secs(10),
        || {
            [&h1, &h2].iter().all(|h| {
                let (replayed, auth, malformed, unknown, spoofed) = dropped(h);
                // Captured datagrams were addressed to node 3 by node 1 or 2: replayed to
                // their own sender they are rejected too (as replays of our own counter
                // range or as spoofed — node 3's address is not theirs).
                replayed + spoofed >= 100 && auth >= 100 && malformed >= 100 && unknown >= 100
            })
        },
    );
    for h in [&h1, &h2] {
        let (replayed, auth, malformed, unknown, spoofed) = dropped(h);
        eprintln!(
            "node {}: replayed {replayed}, auth failed {auth}, malformed {malformed}, unknown address {unknown}, spoofed {spoofed}",
            h.node_id()
        );
    }
    // An operator sees the same drops with `phalanx-stats` (the admin socket).
    let out = Command::new(env!("CARGO_BIN_EXE_phalanx-stats"))
        .arg("--socket")
        .arg(&admin)
        .arg("stats.rx_drop")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = |key: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("stats.rx_drop.{key} (u64) = ")))
            .unwrap_or_else(|| panic!("no {key} in:\n{text}"))
            .parse()
            .unwrap()
    };
    eprintln!("phalanx-stats on node 1:\n{text}");
    assert!(shown("auth_failed") >= 100, "{text}");
    assert!(shown("malformed") >= 100, "{text}");
    assert!(shown("unknown_address") >= 100, "{text}");
    assert!(
        shown("replayed") + shown("too_old") + shown("spoofed") >= 100,
        "{text}"
    );
    assert!(
        text.lines().all(|l| l.starts_with("stats.rx_drop.")),
        "the prefix filter let other keys through:\n{text}"
    );

    // Nothing reached the protocol: same ring, and it still orders.
    assert_eq!(
        h1.membership().ring,
        ring,
        "the attack changed the membership"
    );
    assert_eq!(h2.membership().ring, ring);
    let stats = h1.stats().totem;
    assert_eq!(stats.rx_malformed, 0, "a bad datagram reached the core");
    h1.mcast(Guarantee::Safe, b"still here").unwrap();
    let got = |n: &Node| {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            if let Ok(NodeEvent::Deliver(d)) = n.events().recv_timeout(Duration::from_millis(50)) {
                if d.data[..] == b"still here"[..] {
                    return true;
                }
            }
        }
        false
    };
    assert!(got(&n1) && got(&n2));
    assert_eq!(h1.membership().ring, ring);
    drop((n1, n2));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_node_without_the_key_cannot_join() {
    let (addrs, socks) = addrs();
    drop(socks);
    let n1 = start(1, &addrs, &KEY);
    let n2 = start(2, &addrs, &KEY);
    let (h1, h2) = (n1.handle(), n2.handle());
    wait_until("ring {1,2}", Duration::from_secs(10), || {
        members(&h1) == [1, 2] && members(&h2) == [1, 2] && h1.is_operational()
    });
    let ring = h1.membership().ring;
    let intruder = start(3, &addrs, &[8u8; 64]);
    let h3 = intruder.handle();
    // The intruder forms its own ring and keeps probing (joins, merge detection)
    // well past a consensus timeout; the others reject every datagram.
    wait_until(
        "the intruder to form its own ring",
        Duration::from_secs(10),
        || h3.is_operational(),
    );
    wait_until(
        "the others to reject its probes",
        Duration::from_secs(10),
        || h1.stats().driver.crypto.auth_failed >= 10,
    );
    assert_eq!(members(&h3), [3]);
    assert_eq!(
        h1.membership().ring,
        ring,
        "a node without the key changed the membership"
    );
    assert_eq!(members(&h1), [1, 2]);
    assert_eq!(members(&h2), [1, 2]);
}
