//! The arbitrator and its clients, sans-IO, on an in-memory network with virtual time:
//! ffsplit and lms even splits, heuristics, hand-over, lost holders, restarts, and the
//! invariant checked after every step: all clients that cast a vote cast it for one
//! ring.

use phalanx_quorum::qdevice::Heuristics;
use phalanx_quorum::qdevice::client::{ClientConfig, ClientEvent, QdeviceClient};
use phalanx_quorum::qdevice::proto::ErrorCode;
use phalanx_quorum::qdevice::server::{Qnetd, ServerConfig};
use phalanx_quorum::{Algorithm, NodeId, TieBreaker};
use phalanx_totem::{RingId, Time};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
const STEP: Duration = Duration::from_millis(50);

struct Node {
    client: QdeviceClient,
    cluster: Vec<u8>,
    conn: Option<u64>,
    /// Bytes are silently dropped in both directions (a cut cable).
    cut: bool,
    events: Vec<ClientEvent>,
}

struct Net {
    server: Qnetd,
    server_up: bool,
    nodes: BTreeMap<(Vec<u8>, NodeId), Node>,
    now: Time,
    next_conn: u64,
    nonce: u8,
}

impl Net {
    fn new(clusters: &[(&[u8], &[u8])]) -> Self {
        let keys = clusters
            .iter()
            .map(|(n, k)| (n.to_vec(), k.to_vec()))
            .collect();
        Net {
            server: Qnetd::new(ServerConfig::new(keys), Time::ZERO),
            server_up: true,
            nodes: BTreeMap::new(),
            now: Time::ZERO,
            next_conn: 0,
            nonce: 0,
        }
    }

    fn nonce(&mut self) -> [u8; 32] {
        self.nonce = self.nonce.wrapping_add(1);
        [self.nonce; 32]
    }

    fn add(&mut self, cluster: &[u8], node: NodeId, cfg: impl FnOnce(&mut ClientConfig)) {
        let mut c = ClientConfig {
            cluster: cluster.to_vec(),
            node,
            key: KEY.to_vec(),
            algorithm: Algorithm::Ffsplit,
            tie_breaker: TieBreaker::Lowest,
            config_nodes: vec![1, 2, 3, 4],
            confirm_release: false,
        };
        cfg(&mut c);
        self.nodes.insert(
            (cluster.to_vec(), node),
            Node {
                client: QdeviceClient::new(c),
                cluster: cluster.to_vec(),
                conn: None,
                cut: false,
                events: Vec::new(),
            },
        );
    }

    fn connect_all(&mut self) {
        let keys: Vec<_> = self.nodes.keys().cloned().collect();
        for k in keys {
            self.connect(&k.0, k.1);
        }
        self.pump();
    }

    fn connect(&mut self, cluster: &[u8], node: NodeId) {
        if !self.server_up {
            return;
        }
        self.next_conn += 1;
        let id = self.next_conn;
        let (sn, cn) = (self.nonce(), self.nonce());
        self.server.accept(self.now, id, sn);
        let n = self.nodes.get_mut(&(cluster.to_vec(), node)).unwrap();
        n.conn = Some(id);
        n.client.connected(self.now, cn);
    }

    fn membership(&mut self, parts: &[&[NodeId]], cluster: &[u8]) {
        for (i, p) in parts.iter().enumerate() {
            let ring = RingId {
                seq: 100 + i as u64 + self.now.as_nanos() / 1000,
                rep: p[0],
            };
            for &n in p.iter() {
                let node = self.nodes.get_mut(&(cluster.to_vec(), n)).unwrap();
                node.client.set_membership(self.now, ring, p);
            }
        }
        self.pump();
    }

    fn pump(&mut self) {
        for _ in 0..1000 {
            let mut moved = false;
            let keys: Vec<_> = self.nodes.keys().cloned().collect();
            for k in &keys {
                let now = self.now;
                let n = self.nodes.get_mut(k).unwrap();
                while let Some(b) = n.client.poll_transmit() {
                    if let (Some(c), false, true) = (n.conn, n.cut, self.server_up) {
                        self.server.handle_bytes(now, c, &b);
                        moved = true;
                    }
                }
                while let Some(e) = n.client.poll_event() {
                    if matches!(e, ClientEvent::Refused(_) | ClientEvent::ProtocolError) {
                        n.conn = None;
                    }
                    n.events.push(e);
                }
            }
            while let Some((c, b)) = self.server.poll_transmit() {
                if let Some(n) = self.nodes.values_mut().find(|n| n.conn == Some(c)) {
                    if !n.cut {
                        n.client.handle_bytes(self.now, &b);
                        moved = true;
                    }
                }
            }
            while let Some(c) = self.server.poll_close() {
                if let Some(n) = self.nodes.values_mut().find(|n| n.conn == Some(c)) {
                    if !n.cut {
                        n.conn = None;
                        n.client.disconnected(self.now);
                    }
                }
            }
            self.check();
            if !moved {
                return;
            }
        }
        panic!("network never settled");
    }

    /// The invariant: per cluster, every casting client casts for the same ring.
    fn check(&self) {
        let mut rings: BTreeMap<&[u8], BTreeSet<RingId>> = BTreeMap::new();
        for n in self.nodes.values() {
            if let Some(r) = n.client.vote() {
                rings.entry(&n.cluster).or_default().insert(r);
            }
        }
        for (c, r) in rings {
            assert!(
                r.len() <= 1,
                "at {}: cluster {c:?} votes for rings {r:?}",
                self.now
            );
        }
    }

    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.now = self.now + STEP;
            if self.server_up {
                self.server.handle_timeout(self.now);
            }
            for n in self.nodes.values_mut() {
                n.client.handle_timeout(self.now);
            }
            self.pump();
        }
    }

    fn voters(&self, cluster: &[u8]) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|((c, _), n)| c == cluster && n.client.vote().is_some())
            .map(|((_, id), _)| *id)
            .collect()
    }

    /// Stops the arbitrator for `down_for`, restarts it, reconnects every client.
    /// Returns who cast a vote just before the restart.
    fn restart_server(&mut self, down_for: Duration) -> Vec<NodeId> {
        self.server_up = false;
        for n in self.nodes.values_mut() {
            n.conn = None;
            n.client.disconnected(self.now);
        }
        self.advance(down_for);
        let before = self.voters(b"c");
        self.server = Qnetd::new(
            ServerConfig::new([(b"c".to_vec(), KEY.to_vec())].into()),
            self.now,
        );
        self.server_up = true;
        self.connect_all();
        before
    }
}

fn four(alg: Algorithm, tb: TieBreaker) -> Net {
    let mut net = Net::new(&[(b"c", KEY)]);
    for n in 1..=4 {
        let tb = tb.clone();
        net.add(b"c", n, move |c| {
            c.algorithm = alg;
            c.tie_breaker = tb;
        });
    }
    net.connect_all();
    net
}

/// Startup quarantine: one lease + margin (5 s by default) before a first grant.
const SETTLE: Duration = Duration::from_secs(6);

#[test]
fn ffsplit_even_split_each_tie_breaker() {
    for (tb, want) in [
        (TieBreaker::Lowest, vec![1, 2]),
        (TieBreaker::Highest, vec![3, 4]),
        (TieBreaker::Nodes(vec![3]), vec![3, 4]),
    ] {
        let mut net = four(Algorithm::Ffsplit, tb.clone());
        net.membership(&[&[1, 2], &[3, 4]], b"c");
        net.advance(SETTLE);
        assert_eq!(net.voters(b"c"), want, "{tb:?}");
    }
}

#[test]
fn ffsplit_whole_cluster_gets_the_vote_and_heuristics_weigh() {
    let mut net = four(Algorithm::Ffsplit, TieBreaker::Lowest);
    net.membership(&[&[1, 2, 3, 4]], b"c");
    net.advance(SETTLE);
    assert_eq!(net.voters(b"c"), vec![1, 2, 3, 4]);
    // Split; node 1's heuristics fail, so the other half wins despite the tie-breaker.
    net.nodes
        .get_mut(&(b"c".to_vec(), 1))
        .unwrap()
        .client
        .set_heuristics(net.now, Heuristics::Fail);
    net.membership(&[&[1, 2], &[3, 4]], b"c");
    net.advance(Duration::from_secs(1));
    assert_eq!(net.voters(b"c"), vec![3, 4]);
}

#[test]
fn ffsplit_vote_moves_only_after_release() {
    let mut net = four(Algorithm::Ffsplit, TieBreaker::Lowest);
    net.membership(&[&[1, 2], &[3, 4]], b"c");
    net.advance(SETTLE);
    assert_eq!(net.voters(b"c"), vec![1, 2]);
    // {1,2} falls apart: each quarter is not eligible; {3,4} (a half) is.
    net.membership(&[&[1], &[2], &[3, 4]], b"c");
    net.advance(Duration::from_secs(1));
    assert_eq!(net.voters(b"c"), vec![3, 4]);
}

#[test]
fn lost_holder_keeps_its_lease_and_the_vote_waits_for_it() {
    let mut net = four(Algorithm::Ffsplit, TieBreaker::Lowest);
    net.membership(&[&[1, 2], &[3, 4]], b"c");
    net.advance(SETTLE);
    assert_eq!(net.voters(b"c"), vec![1, 2]);
    // Cut {1,2} off the arbitrator without telling anyone, then the partition changes
    // so that {3,4} becomes the winner. The arbitrator must wait out their leases.
    for n in [1, 2] {
        net.nodes.get_mut(&(b"c".to_vec(), n)).unwrap().cut = true;
    }
    net.membership(&[&[3, 4]], b"c");
    let t0 = net.now;
    let mut moved_at = None;
    for _ in 0..200 {
        net.advance(STEP);
        if net.voters(b"c").contains(&3) {
            moved_at = Some(net.now);
            break;
        }
    }
    let moved_at = moved_at.expect("vote moved eventually");
    assert!(
        moved_at - t0 >= Duration::from_secs(3),
        "moved after {:?}",
        moved_at - t0
    );
    assert_eq!(net.voters(b"c"), vec![3, 4]);
}

#[test]
fn arbitrator_restart_keeps_one_holder() {
    let mut net = four(Algorithm::Ffsplit, TieBreaker::Lowest);
    net.membership(&[&[1, 2], &[3, 4]], b"c");
    net.advance(SETTLE);
    assert_eq!(net.voters(b"c"), vec![1, 2]);
    // Short outage: holders keep their leases, report them on reconnect, and are
    // renewed; the invariant is checked at every step throughout.
    assert_eq!(net.restart_server(Duration::from_millis(500)), vec![1, 2]);
    net.advance(Duration::from_secs(1));
    assert_eq!(net.voters(b"c"), vec![1, 2]);
    // Long outage: leases run out; once every node has reported to the new
    // incarnation, nobody can hold an unknown grant and the vote is given again.
    assert!(net.restart_server(Duration::from_secs(8)).is_empty());
    net.advance(Duration::from_secs(1));
    assert_eq!(net.voters(b"c"), vec![1, 2]);
}

#[test]
fn restart_with_a_missing_node_waits_for_quarantine() {
    let mut net = four(Algorithm::Ffsplit, TieBreaker::Highest);
    net.membership(&[&[1, 2], &[3, 4]], b"c");
    net.advance(SETTLE);
    assert_eq!(net.voters(b"c"), vec![3, 4]);
    // Holders 3 and 4 lose their link for good; the arbitrator restarts. The new
    // incarnation must not give {1,2} the vote until 3 and 4's leases surely ended.
    for n in [3, 4] {
        net.nodes.get_mut(&(b"c".to_vec(), n)).unwrap().cut = true;
    }
    net.membership(&[&[1, 2]], b"c");
    assert_eq!(net.restart_server(Duration::from_millis(100)), vec![3, 4]);
    let t0 = net.now;
    while !net.voters(b"c").contains(&1) {
        assert!(net.now - t0 < Duration::from_secs(20), "never granted");
        net.advance(STEP);
    }
    assert!(
        net.now - t0 >= Duration::from_secs(4),
        "granted after {:?}",
        net.now - t0
    );
}

#[test]
fn lms_even_split_and_last_man() {
    let mut net = four(Algorithm::Lms, TieBreaker::Lowest);
    net.membership(&[&[1, 2], &[3, 4]], b"c");
    net.advance(SETTLE);
    assert_eq!(net.voters(b"c"), vec![1, 2]);
    // Everyone isolated, only node 4 still reaches the arbitrator: it gets the vote.
    for n in [1, 2, 3] {
        net.nodes.get_mut(&(b"c".to_vec(), n)).unwrap().cut = true;
    }
    net.membership(&[&[1], &[2], &[3], &[4]], b"c");
    net.advance(SETTLE);
    assert_eq!(net.voters(b"c"), vec![4]);

    let mut net = four(Algorithm::Lms, TieBreaker::Highest);
    net.membership(&[&[1, 2], &[3, 4]], b"c");
    net.advance(SETTLE);
    assert_eq!(net.voters(b"c"), vec![3, 4]);
}

#[test]
fn authentication_and_cluster_selection() {
    let mut net = Net::new(&[(b"c", KEY), (b"d", KEY)]);
    net.add(b"c", 1, |c| {
        c.key = b"wrong key wrong key wrong key!!!".to_vec()
    });
    net.add(b"x", 1, |_| {});
    net.add(b"d", 1, |c| c.config_nodes = vec![1, 2]);
    net.add(b"d", 2, |c| c.config_nodes = vec![1, 2]);
    net.connect_all();
    net.membership(&[&[1]], b"c");
    net.membership(&[&[1, 2]], b"d");
    net.advance(SETTLE);
    let ev = |net: &Net, c: &[u8]| net.nodes[&(c.to_vec(), 1)].events.clone();
    // The wrong key: the client rejects the server's proof (it cannot verify), and no
    // vote is ever cast.
    assert!(
        ev(&net, b"c").contains(&ClientEvent::ProtocolError),
        "{:?}",
        ev(&net, b"c")
    );
    assert!(ev(&net, b"x").contains(&ClientEvent::Refused(ErrorCode::UnknownCluster)));
    assert!(net.voters(b"c").is_empty() && net.voters(b"x").is_empty());
    assert_eq!(net.voters(b"d"), vec![1, 2]);
}

#[test]
fn config_mismatch_is_refused() {
    let mut net = Net::new(&[(b"c", KEY)]);
    net.add(b"c", 1, |_| {});
    net.add(b"c", 2, |c| c.algorithm = Algorithm::Lms);
    net.connect_all();
    net.membership(&[&[1, 2]], b"c");
    assert!(
        net.nodes[&(b"c".to_vec(), 2)]
            .events
            .contains(&ClientEvent::Refused(ErrorCode::ConfigMismatch))
    );
}

#[test]
fn garbage_never_panics_the_server() {
    let mut s = Qnetd::new(
        ServerConfig::new([(b"c".to_vec(), KEY.to_vec())].into()),
        Time::ZERO,
    );
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for conn in 0..2000u64 {
        s.accept(Time::ZERO, conn, [0; 32]);
        let len = (x % 64) as usize;
        let mut b = Vec::with_capacity(len + 4);
        b.extend_from_slice(&(len as u32).to_le_bytes());
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b.push(x as u8);
        }
        if conn % 3 == 0 {
            b[4..]
                .iter_mut()
                .take(3)
                .zip(b"QN\x01")
                .for_each(|(d, s)| *d = *s);
        }
        s.handle_bytes(Time::ZERO, conn, &b);
        while s.poll_transmit().is_some() {}
        while let Some(c) = s.poll_close() {
            s.closed(Time::ZERO, c);
        }
    }
}

#[test]
fn pending_heuristics_hold_the_decision() {
    let mut net = four(Algorithm::Ffsplit, TieBreaker::Lowest);
    net.nodes
        .get_mut(&(b"c".to_vec(), 1))
        .unwrap()
        .client
        .heuristics_pending();
    net.membership(&[&[1, 2], &[3, 4]], b"c");
    net.advance(SETTLE);
    // Node 1's heuristics are still running: nobody gets the vote yet.
    assert!(net.voters(b"c").is_empty());
    let now = net.now;
    net.nodes
        .get_mut(&(b"c".to_vec(), 1))
        .unwrap()
        .client
        .set_heuristics(now, Heuristics::Fail);
    net.advance(Duration::from_secs(1));
    assert_eq!(net.voters(b"c"), vec![3, 4]);
}
