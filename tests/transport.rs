//! Transports beyond IPv4 unicast, in process: a 3-node cluster on IPv6 loopback
//! (`::1`), and the IP multicast transport (`transport: udp`), IPv4 and IPv6, in a
//! private network namespace (root and iproute2 needed; fails, never skips,
//! without them).

mod common;

use common::wait::{Deadline, wait_until};
use phalanx::node::{CryptoOptions, Multicast, Node, NodeEvent, NodeHandle, NodeOptions};
use phalanx::totem::{Config, Guarantee, NodeId};
use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

fn free_addrs(ip: &str, n: u32) -> BTreeMap<NodeId, SocketAddr> {
    let socks: Vec<UdpSocket> = (0..n)
        .map(|_| {
            UdpSocket::bind((ip, 0))
                .unwrap_or_else(|e| panic!("cannot bind a UDP socket on {ip}: {e}"))
        })
        .collect();
    socks
        .iter()
        .enumerate()
        .map(|(i, s)| (i as NodeId + 1, s.local_addr().unwrap()))
        .collect()
}

fn crypto() -> Option<CryptoOptions> {
    Some(CryptoOptions {
        key: vec![9; 64],
        cluster_name: "transport".into(),
        cipher: Default::default(),
    })
}

/// Starts the nodes, has each send `per_node` messages, and returns every node's
/// delivered (sender, index) sequence once all have delivered everything.
fn form_and_order(nodes: &[Node], per_node: u32) -> Vec<Vec<(NodeId, u32)>> {
    let handles: Vec<NodeHandle> = nodes.iter().map(|n| n.handle()).collect();
    let ids: Vec<NodeId> = handles.iter().map(|h| h.node_id()).collect();
    wait_until("a ring of every node", Duration::from_secs(20), || {
        handles
            .iter()
            .all(|h| h.is_operational() && h.membership().members == ids)
    });
    for i in 0..per_node {
        for h in &handles {
            let mut data = i.to_le_bytes().to_vec();
            data.resize(64, 0);
            wait_until("send room", Duration::from_secs(10), || {
                h.mcast(Guarantee::Agreed, &data).is_ok()
            });
        }
    }
    let total = per_node as usize * nodes.len();
    nodes
        .iter()
        .map(|n| {
            let mut got = Vec::new();
            let deadline = Deadline::after("every delivery", Duration::from_secs(20));
            while got.len() < total {
                deadline.check(|| format!("{} of {total} delivered", got.len()));
                if let Ok(NodeEvent::Deliver(d)) =
                    n.events().recv_timeout(Duration::from_millis(50))
                {
                    got.push((
                        d.sender,
                        u32::from_le_bytes(d.data[..4].try_into().unwrap()),
                    ));
                }
            }
            got
        })
        .collect()
}

/// Every node delivered the same sequence, and each sender's `per_node` messages
/// in sending order.
fn assert_one_order(orders: &[Vec<(NodeId, u32)>], per_node: u32) {
    assert!(
        orders.iter().all(|o| *o == orders[0]),
        "agreed order differs between nodes"
    );
    for s in 1..=orders.len() as NodeId {
        let mine: Vec<u32> = orders[0]
            .iter()
            .filter(|(f, _)| *f == s)
            .map(|(_, i)| *i)
            .collect();
        assert_eq!(mine, (0..per_node).collect::<Vec<_>>());
    }
}

#[test]
fn ipv6_loopback_cluster_forms_and_orders() {
    let addrs = free_addrs("::1", 3);
    let nodes: Vec<Node> = (1..=3)
        .map(|id| {
            let mut o = NodeOptions::new(Config::new(id, vec![1, 2, 3]), addrs.clone());
            o.crypto = crypto();
            Node::start(o).unwrap()
        })
        .collect();
    assert_one_order(&form_and_order(&nodes, 300), 300);
    for n in nodes {
        n.leave().unwrap();
    }
}

#[test]
fn batched_system_calls_form_and_order_the_same() {
    // sendmmsg / recvmmsg (`batch_io`) on IPv4 loopback, crypto on: the same ring and
    // the same agreed order as one datagram per call.
    let addrs = free_addrs("127.0.0.1", 3);
    let nodes: Vec<Node> = (1..=3)
        .map(|id| {
            let mut o =
                NodeOptions::new(Config::new(id, vec![1, 2, 3]), addrs.clone()).with_batch_io(true);
            o.crypto = crypto();
            Node::start(o).unwrap()
        })
        .collect();
    assert_one_order(&form_and_order(&nodes, 1000), 1000);
    // Counters are published every few milliseconds.
    let h = nodes[0].handle();
    wait_until("the counters published", Duration::from_secs(5), || {
        let t = h.stats().driver.transport;
        t.tx > 0 && t.rx > 0
    });
    let t = h.stats().driver.transport;
    assert_eq!(t.tx_errors, 0, "{t:?}");
    for n in nodes {
        n.leave().unwrap();
    }
}

#[test]
fn nodes_with_and_without_segmentation_offload_order_the_same() {
    // Nodes 1 and 2 send runs with UDP_SEGMENT and read with UDP_GRO; node 3 does
    // neither (the kernel splits the runs before its socket). Crypto on: every
    // segment is a whole sealed datagram.
    let addrs = free_addrs("127.0.0.1", 3);
    let nodes: Vec<Node> = (1..=3)
        .map(|id| {
            let mut o = NodeOptions::new(Config::new(id, vec![1, 2, 3]), addrs.clone())
                .with_segmentation_offload(id != 3);
            o.crypto = crypto();
            Node::start(o).unwrap()
        })
        .collect();
    assert_one_order(&form_and_order(&nodes, 1000), 1000);
    for n in nodes {
        n.leave().unwrap();
    }
}

#[test]
fn drivers_that_spin_before_parking_form_and_order_the_same() {
    // `spin_before_park`: the drivers take datagrams and sends during a short spin
    // instead of sleeping; the ring and its order must not notice.
    let addrs = free_addrs("127.0.0.1", 3);
    let nodes: Vec<Node> = (1..=3)
        .map(|id| {
            let o = NodeOptions::new(Config::new(id, vec![1, 2, 3]), addrs.clone())
                .with_spin_before_park(Duration::from_micros(50));
            Node::start(o).unwrap()
        })
        .collect();
    assert_one_order(&form_and_order(&nodes, 500), 500);
    for n in nodes {
        n.leave().unwrap();
    }
}

#[test]
fn nodes_that_hold_the_token_for_sending_order_the_same_and_answer_on_the_visit() {
    // Totem's send hold: a node that sent everything it had keeps the token for
    // more of its own messages. Everything is ordered as without it, and a sender
    // that answers its own delivery sends on the same visit (counted).
    let addrs = free_addrs("127.0.0.1", 3);
    let nodes: Vec<Node> = (1..=3)
        .map(|id| {
            let mut c = Config::new(id, vec![1, 2, 3]);
            c.send_hold = Duration::from_millis(5);
            Node::start(NodeOptions::new(c, addrs.clone())).unwrap()
        })
        .collect();
    assert_one_order(&form_and_order(&nodes, 300), 300);
    // Node 1 pings: each message waits for its own delivery before the next.
    const PINGS: u32 = 100;
    let h = nodes[0].handle();
    for i in 0..PINGS {
        let mut data = (1_000 + i).to_le_bytes().to_vec();
        data.resize(64, 0);
        h.mcast(Guarantee::Agreed, &data).unwrap();
        let deadline = Deadline::after("own delivery", Duration::from_secs(10));
        loop {
            deadline.check(|| format!("ping {i}"));
            if let Ok(NodeEvent::Deliver(d)) =
                nodes[0].events().recv_timeout(Duration::from_millis(50))
                && d.sender == 1
                && d.data[..4] == (1_000 + i).to_le_bytes()
            {
                break;
            }
        }
    }
    // Every node delivers the pings, in order.
    for n in &nodes[1..] {
        let mut next = 0;
        let deadline = Deadline::after("the pings", Duration::from_secs(10));
        while next < PINGS {
            deadline.check(|| format!("{next} of {PINGS} pings"));
            if let Ok(NodeEvent::Deliver(d)) = n.events().recv_timeout(Duration::from_millis(50)) {
                let k = u32::from_le_bytes(d.data[..4].try_into().unwrap());
                if k >= 1_000 {
                    assert_eq!((d.sender, k), (1, 1_000 + next));
                    next += 1;
                }
            }
        }
    }
    // A ping answered within 5 ms of its visit went out on that visit: with a
    // hundred of them, some did.
    wait_until(
        "a ping sent while the token was held",
        Duration::from_secs(5),
        || h.stats().totem.send_hold_frames > 0,
    );
    for n in nodes {
        n.leave().unwrap();
    }
}

/// Runs iproute2's `ip` in the calling thread's network namespace.
fn ip(args: &[&str]) {
    let st = std::process::Command::new("ip")
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("cannot run iproute2's `ip` ({e}); `.ci/run` installs it"));
    assert!(st.success(), "`ip {}` failed", args.join(" "));
}

/// Moves the calling thread into a fresh network namespace (the nodes' sockets
/// and driver threads, created from this thread, follow) and returns an address
/// to run the nodes on: IPv4 on `lo` made multicast-capable; IPv6 on a veth pair
/// (IPv6 multicast is not looped back on `lo`).
fn private_network(v6: bool) -> &'static str {
    // SAFETY: unshare(2) with CLONE_NEWNET affects only the calling thread.
    let r = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(
        r,
        0,
        "unshare(CLONE_NEWNET) failed ({}): the multicast test needs root",
        std::io::Error::last_os_error()
    );
    ip(&["link", "set", "lo", "up"]);
    if !v6 {
        ip(&["link", "set", "lo", "multicast", "on"]);
        return "127.0.0.1";
    }
    ip(&["link", "add", "va", "type", "veth", "peer", "name", "vb"]);
    ip(&["link", "set", "vb", "up"]);
    ip(&["link", "set", "va", "up"]);
    ip(&["-6", "addr", "add", "fd00:77::1/64", "dev", "va", "nodad"]);
    "fd00:77::1"
}

#[test]
fn multicast_transport_sends_one_datagram_per_frame() {
    multicast_cluster(false, "239.192.77.1:5405");
}

#[test]
fn ipv6_multicast_transport_sends_one_datagram_per_frame() {
    multicast_cluster(true, "[ff15::77]:5405");
}

fn multicast_cluster(v6: bool, group: &str) {
    let ip = private_network(v6);
    let addrs = free_addrs(ip, 3);
    let group: SocketAddr = group.parse().unwrap();
    let nodes: Vec<Node> = (1..=3)
        .map(|id| {
            let mut o = NodeOptions::new(Config::new(id, vec![1, 2, 3]), addrs.clone());
            o.crypto = crypto();
            o.links.link0.multicast = Some(Multicast { group, ttl: 1 });
            Node::start(o).unwrap()
        })
        .collect();
    let orders = form_and_order(&nodes, 300);
    assert!(
        orders.iter().all(|o| *o == orders[0]),
        "agreed order differs between nodes"
    );
    // Frames for the ring went as one multicast datagram each (counters are
    // published every 10 ms), and each node heard its own copy looped back.
    for n in &nodes {
        let h = n.handle();
        wait_until("multicast counters", Duration::from_secs(5), || {
            let t = h.stats().driver.transport;
            t.tx_multicast > 0 && t.rx_own > 0
        });
    }
    for n in nodes {
        n.leave().unwrap();
    }
}
