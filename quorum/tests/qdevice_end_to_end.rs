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
use std::collections::BTreeMap;
use std::time::Duration;

const KEY: &[u8] = b"an example cluster key, 32 bytes";
const IDS: &[NodeId] = &[1, 2, 3, 4];

struct World {
    cluster: Cluster,
    server: Qnetd,
    clients: BTreeMap<NodeId, QdeviceClient>,
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
        let mut server = Qnetd::new(
            ServerConfig::new([(b"c".to_vec(), KEY.to_vec())].into()),
            Time::ZERO,
        );
        let mut clients = BTreeMap::new();
        for &n in IDS {
            let mut c = QdeviceClient::new(ClientConfig {
                cluster: b"c".to_vec(),
                node: n,
                key: KEY.to_vec(),
                algorithm: alg,
                tie_breaker: tb.clone(),
                config_nodes: IDS.to_vec(),
                confirm_release: true,
            });
            server.accept(Time::ZERO, u64::from(n), [n as u8; 32]);
            c.connected(Time::ZERO, [n as u8 + 100; 32]);
            clients.insert(n, c);
        }
        World {
            cluster,
            server,
            clients,
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
                    self.server.handle_bytes(now, u64::from(n), &b);
                    moved = true;
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
                let n = conn as NodeId;
                self.clients.get_mut(&n).unwrap().handle_bytes(now, &b);
                moved = true;
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
