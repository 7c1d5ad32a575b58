//! Votequorum cores + qdevice clients + the arbitrator, all sans-IO and wired the way
//! the Stack will wire them: client vote events become `set_device_vote`, the core's
//! `DeviceReleased` becomes `release_done` (`confirm_release` on). Checked after every
//! step: never two partitions quorate; and the expected side ends up quorate.

mod common;

use common::Cluster;
use phalanx_quorum::qdevice::client::{ClientConfig, ClientEvent, QdeviceClient};
use phalanx_quorum::qdevice::server::{Qnetd, ServerConfig};
use phalanx_quorum::{Algorithm, DeviceConfig, Event, NodeId, QuorumConfig, TieBreaker};
use phalanx_totem::Time;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const KEY: &[u8] = b"an example cluster key, 32 bytes";
const IDS: &[NodeId] = &[1, 2, 3, 4];

struct World {
    cluster: Cluster,
    server: Qnetd,
    clients: BTreeMap<NodeId, QdeviceClient>,
    /// Current connection of each node (None: down).
    conns: BTreeMap<NodeId, Option<u64>>,
    /// Nodes whose link to the arbitrator silently drops everything.
    cut: BTreeSet<NodeId>,
    next_conn: u64,
}

impl World {
    fn new(alg: Algorithm, tb: TieBreaker) -> Self {
        let cluster = Cluster::new(IDS, move |me| QuorumConfig {
            device: Some(DeviceConfig {
                algorithm: alg,
                votes: None,
            }),
            ..QuorumConfig::new(me, IDS)
        });
        let server = Qnetd::new(
            ServerConfig::new([(b"c".to_vec(), KEY.to_vec())].into()),
            Time::ZERO,
        );
        let mut clients = BTreeMap::new();
        for &n in IDS {
            let c = QdeviceClient::new(ClientConfig {
                cluster: b"c".to_vec(),
                node: n,
                key: KEY.to_vec(),
                algorithm: alg,
                tie_breaker: tb.clone(),
                config_nodes: IDS.to_vec(),
                confirm_release: true,
            });
            clients.insert(n, c);
        }
        let mut w = World {
            cluster,
            server,
            clients,
            conns: BTreeMap::new(),
            cut: BTreeSet::new(),
            next_conn: 0,
        };
        for &n in IDS {
            w.connect(n);
        }
        w
    }

    fn connect(&mut self, n: NodeId) {
        self.next_conn += 1;
        let id = self.next_conn;
        let now = self.cluster.now;
        self.server.accept(now, id, [id as u8; 32]);
        self.clients
            .get_mut(&n)
            .unwrap()
            .connected(now, [id as u8 ^ 0xff; 32]);
        self.conns.insert(n, Some(id));
    }

    /// Kills the arbitrator (all its state) and starts a new one; clients reconnect.
    fn restart_server(&mut self) {
        let now = self.cluster.now;
        self.server = Qnetd::new(
            ServerConfig::new([(b"c".to_vec(), KEY.to_vec())].into()),
            now,
        );
        for n in IDS {
            self.clients.get_mut(n).unwrap().disconnected(now);
            self.conns.insert(*n, None);
            if !self.cut.contains(n) {
                self.connect(*n);
            }
        }
        self.pump();
    }

    fn set_cut(&mut self, n: NodeId, cut: bool) {
        if cut {
            self.cut.insert(n);
        } else if self.cut.remove(&n) {
            // The link comes back: the client notices its old connection is dead.
            let now = self.cluster.now;
            self.clients.get_mut(&n).unwrap().disconnected(now);
            self.connect(n);
        }
    }

    fn partition(&mut self, parts: &[&[NodeId]]) {
        self.cluster.partition(parts);
        for p in parts {
            for &n in p.iter() {
                let ring = self.cluster.q(n).info().ring.unwrap();
                let now = self.cluster.now;
                self.clients
                    .get_mut(&n)
                    .unwrap()
                    .set_membership(now, ring, p);
            }
        }
        self.pump();
    }

    fn pump(&mut self) {
        for _ in 0..1000 {
            let now = self.cluster.now;
            let mut moved = false;
            for (&n, c) in self.clients.iter_mut() {
                while let Some(b) = c.poll_transmit() {
                    if let (Some(conn), false) = (self.conns[&n], self.cut.contains(&n)) {
                        self.server.handle_bytes(now, conn, &b);
                        moved = true;
                    }
                }
                while let Some(e) = c.poll_event() {
                    if let ClientEvent::Vote { ring, cast } = e {
                        // Refused only if the ring moved on, which is fine.
                        let _ = self.cluster.q(n).set_device_vote(ring, cast);
                        moved = true;
                    }
                }
            }
            while let Some((conn, b)) = self.server.poll_transmit() {
                let Some((&n, _)) = self.conns.iter().find(|(_, c)| **c == Some(conn)) else {
                    continue;
                };
                if !self.cut.contains(&n) {
                    self.clients.get_mut(&n).unwrap().handle_bytes(now, &b);
                    moved = true;
                }
            }
            while let Some(conn) = self.server.poll_close() {
                if let Some((&n, _)) = self.conns.iter().find(|(_, c)| **c == Some(conn)) {
                    if !self.cut.contains(&n) {
                        self.clients.get_mut(&n).unwrap().disconnected(now);
                        self.conns.insert(n, None);
                    }
                }
            }
            self.cluster.settle();
            for (n, evs) in std::mem::take(&mut self.cluster.events) {
                for e in evs {
                    if let Event::DeviceReleased { .. } = e {
                        self.clients.get_mut(&n).unwrap().release_done(now);
                        moved = true;
                    }
                }
            }
            self.cluster.assert_at_most_one_quorate("pump");
            if !moved {
                return;
            }
        }
        panic!("never settled");
    }

    fn advance(&mut self, d: Duration) {
        let step = Duration::from_millis(50);
        let end = self.cluster.now + d;
        while self.cluster.now < end {
            self.cluster.advance(step);
            let now = self.cluster.now;
            self.server.handle_timeout(now);
            for c in self.clients.values_mut() {
                c.handle_timeout(now);
            }
            let down: Vec<NodeId> = IDS
                .iter()
                .copied()
                .filter(|n| self.conns[n].is_none() && !self.cut.contains(n))
                .collect();
            for n in down {
                self.connect(n);
            }
            self.pump();
        }
    }
}

#[test]
fn ffsplit_even_split_then_hand_over() {
    let mut w = World::new(Algorithm::Ffsplit, TieBreaker::Lowest);
    w.partition(&[&[1, 2, 3, 4]]);
    w.advance(Duration::from_secs(1));
    assert_eq!(w.cluster.quorate_of(IDS), vec![true; 4]);
    assert_eq!(w.cluster.q(1).info().total_votes, 5);
    w.partition(&[&[1, 2], &[3, 4]]);
    w.advance(Duration::from_secs(1));
    assert_eq!(w.cluster.quorate_of(IDS), vec![true, true, false, false]);
    // {1,2} splits: the vote must travel to {3,4} without overlap (checked in pump).
    w.partition(&[&[1], &[2], &[3, 4]]);
    w.advance(Duration::from_secs(1));
    assert_eq!(w.cluster.quorate_of(IDS), vec![false, false, true, true]);
}

#[test]
fn ffsplit_highest() {
    let mut w = World::new(Algorithm::Ffsplit, TieBreaker::Highest);
    w.partition(&[&[1, 2], &[3, 4]]);
    w.advance(Duration::from_secs(6));
    assert_eq!(w.cluster.quorate_of(IDS), vec![false, false, true, true]);
}

#[test]
fn lms_even_split_and_single_survivor() {
    let mut w = World::new(Algorithm::Lms, TieBreaker::Lowest);
    w.partition(&[&[1, 2], &[3, 4]]);
    w.advance(Duration::from_secs(6));
    assert_eq!(w.cluster.quorate_of(IDS), vec![true, true, false, false]);
    assert_eq!(w.cluster.q(1).info().expected_votes, 7);
    w.partition(&[&[1], &[2], &[3], &[4]]);
    w.advance(Duration::from_secs(1));
    // Every node alone, all see the arbitrator: exactly one (1 + 3 votes of 7) is
    // quorate. Which one depends on the order the reports arrive in (while 1 and 2
    // have reported and 3, 4 not yet, {3,4} is the best partition and gets the vote,
    // keep-active then prefers 3), as it would on a real network.
    let q = w.cluster.quorate_of(IDS);
    assert_eq!(q.iter().filter(|x| **x).count(), 1, "{q:?}");
}

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// Random partitions, cut arbitrator links and arbitrator restarts, under both
/// algorithms: never two quorate partitions (checked after every message exchange).
#[test]
fn swarm_with_device() {
    let seeds: u64 = std::env::var("QDEVICE_SWARM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(150);
    let mut quorate_steps = 0;
    for seed in 1..=seeds {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let alg = if rng.below(2) == 0 {
            Algorithm::Ffsplit
        } else {
            Algorithm::Lms
        };
        let tb = [
            TieBreaker::Lowest,
            TieBreaker::Highest,
            TieBreaker::Nodes(vec![3]),
        ][rng.below(3) as usize]
            .clone();
        let mut w = World::new(alg, tb);
        for _ in 0..12 {
            match rng.below(8) {
                0 => w.restart_server(),
                1 | 2 => {
                    let n = 1 + rng.below(4) as NodeId;
                    let cut = !w.cut.contains(&n);
                    w.set_cut(n, cut);
                }
                _ => {}
            }
            let mut groups: Vec<Vec<NodeId>> = vec![Vec::new(); 1 + rng.below(3) as usize];
            for &id in IDS {
                let g = rng.below(groups.len() as u64) as usize;
                groups[g].push(id);
            }
            groups.retain(|g| !g.is_empty());
            let refs: Vec<&[NodeId]> = groups.iter().map(|g| g.as_slice()).collect();
            w.partition(&refs);
            w.advance(Duration::from_millis(200 * (1 + rng.below(40))));
            quorate_steps += usize::from(IDS.iter().any(|n| w.cluster.quorate(*n)));
        }
    }
    assert!(
        quorate_steps as u64 > seeds * 4,
        "only {quorate_steps} quorate steps"
    );
}
