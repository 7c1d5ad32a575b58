//! The arbitrator core (qnetd): authenticated connections from many clusters' nodes,
//! one decision per cluster, and the no-double-vote rule (see the module docs of
//! [`super`]).
//!
//! ```text
//! loop {
//!     accept(now, conn, nonce) | handle_bytes(now, conn, &bytes) | closed(now, conn)
//!     handle_timeout(now)
//!     drain: poll_transmit() -> (conn, bytes);  poll_close() -> conn to close
//!     sleep until poll_timeout()
//! }
//! ```

mod decide;

use super::auth::{self, LEN, Role, Session};
use super::proto::{self, Decision, Deframer, ErrorCode, Msg, Status};
use crate::NodeId;
use decide::{Outcome, decide};
use phalanx_totem::{RingId, Time};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

/// A connection handle chosen by the driver.
pub type ConnId = u64;

/// Arbitrator settings.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Cluster name → key bytes (the cluster's key file).
    pub keys: BTreeMap<Vec<u8>, Vec<u8>>,
    /// How long a granted vote lasts without renewal. Default 4 s.
    pub lease: Duration,
    /// Safety margin added on the arbitrator side to every lease (covers clock-rate
    /// differences between the hosts). Default lease / 4.
    pub margin: Duration,
    /// Most connections at once (`0` = unlimited).
    pub max_clients: usize,
}

impl ServerConfig {
    /// Defaults with the given keys.
    pub fn new(keys: BTreeMap<Vec<u8>, Vec<u8>>) -> Self {
        ServerConfig {
            keys,
            lease: Duration::from_secs(4),
            margin: Duration::from_secs(1),
            max_clients: 0,
        }
    }
    fn heartbeat(&self) -> Duration {
        self.lease / 4
    }
    fn server_lease(&self) -> Duration {
        self.lease + self.margin
    }
}

/// Counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Frames that failed to decode or authenticate (connection closed).
    pub bad_frames: u64,
    /// Failed authentications.
    pub auth_failures: u64,
    /// Votes granted (acks sent).
    pub acks: u64,
    /// Nacks sent.
    pub nacks: u64,
}

enum Conn {
    AwaitHello {
        nonce: [u8; LEN],
        since: Time,
    },
    AwaitAuth {
        cluster: Vec<u8>,
        node: NodeId,
        client_nonce: [u8; LEN],
        nonce: [u8; LEN],
        since: Time,
    },
    Active {
        cluster: Vec<u8>,
        node: NodeId,
        session: Session,
        last_heard: Time,
    },
}

struct ConnState {
    st: Conn,
    rx: Deframer,
}

/// What the arbitrator knows of one node.
#[derive(Debug, Default)]
struct NodeView {
    conn: Option<ConnId>,
    status: Option<Status>,
    /// Reported (or granted) since this arbitrator started: `grant` is then exact.
    known: bool,
    /// The ring this node may hold a vote for, and until when (arbitrator clock).
    grant: Option<(RingId, Time)>,
    /// Last decision sent for its latest status.
    sent: Option<(u64, Decision)>,
}

#[derive(Debug, Default)]
struct Cluster {
    nodes: BTreeMap<NodeId, NodeView>,
    /// Members of the last partition granted the vote (keep-active).
    last_holders: BTreeSet<NodeId>,
}

/// The arbitrator.
pub struct Qnetd {
    cfg: ServerConfig,
    started: Time,
    conns: BTreeMap<ConnId, ConnState>,
    clusters: BTreeMap<Vec<u8>, Cluster>,
    out: VecDeque<(ConnId, Vec<u8>)>,
    close: VecDeque<ConnId>,
    stats: ServerStats,
}

impl Qnetd {
    /// A fresh arbitrator started at `now`. It grants nothing that could conflict with
    /// a grant of a previous incarnation until one lease and margin have passed.
    pub fn new(cfg: ServerConfig, now: Time) -> Self {
        Qnetd {
            cfg,
            started: now,
            conns: BTreeMap::new(),
            clusters: BTreeMap::new(),
            out: VecDeque::new(),
            close: VecDeque::new(),
            stats: ServerStats::default(),
        }
    }

    /// A new connection; `nonce` is 32 fresh random bytes from the driver.
    pub fn accept(&mut self, now: Time, conn: ConnId, nonce: [u8; LEN]) {
        if self.cfg.max_clients != 0 && self.conns.len() >= self.cfg.max_clients {
            self.send_plain(conn, &Msg::Error(ErrorCode::TooManyClients));
            self.close.push_back(conn);
            return;
        }
        self.conns.insert(
            conn,
            ConnState {
                st: Conn::AwaitHello { nonce, since: now },
                rx: Deframer::default(),
            },
        );
    }

    /// The connection is gone (closed by the peer or the driver).
    pub fn closed(&mut self, now: Time, conn: ConnId) {
        if let Some(c) = self.conns.remove(&conn) {
            if let Conn::Active { cluster, node, .. } = c.st {
                if let Some(cl) = self.clusters.get_mut(&cluster) {
                    if let Some(v) = cl.nodes.get_mut(&node) {
                        if v.conn == Some(conn) {
                            // Its grant (if any) stays until its lease ends.
                            v.conn = None;
                            v.status = None;
                            v.sent = None;
                        }
                    }
                }
                self.evaluate(now, &cluster);
            }
        }
    }

    /// Bytes received on a connection.
    pub fn handle_bytes(&mut self, now: Time, conn: ConnId, data: &[u8]) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.rx.push(data);
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            match c.rx.next_frame() {
                None => return,
                Some(Err(_)) => return self.fail(now, conn, ErrorCode::Protocol),
                Some(Ok(f)) => self.frame(now, conn, &f),
            }
        }
    }

    fn frame(&mut self, now: Time, conn: ConnId, f: &[u8]) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let msg = match &mut c.st {
            Conn::Active {
                session,
                last_heard,
                ..
            } => {
                let ok = proto::split_tag(f)
                    .ok()
                    .filter(|(b, t)| session.open(b, t))
                    .map(|(b, _)| proto::decode_frame_body(b));
                *last_heard = now;
                match ok {
                    Some(Ok(m)) => m,
                    _ => return self.fail(now, conn, ErrorCode::Protocol),
                }
            }
            _ => match proto::decode_frame_body(f) {
                Ok(m) => m,
                Err(_) => return self.fail(now, conn, ErrorCode::Protocol),
            },
        };
        let st = std::mem::replace(
            &mut c.st,
            Conn::AwaitHello {
                nonce: [0; LEN],
                since: now,
            },
        );
        match (st, msg) {
            (
                Conn::AwaitHello { nonce, .. },
                Msg::Hello {
                    cluster,
                    node,
                    nonce: client_nonce,
                },
            ) => {
                let Some(key) = self.cfg.keys.get(&cluster) else {
                    return self.fail(now, conn, ErrorCode::UnknownCluster);
                };
                if node == 0 {
                    return self.fail(now, conn, ErrorCode::Protocol);
                }
                let proof = auth::proof(key, Role::Server, &cluster, node, &client_nonce, &nonce);
                self.set_state(
                    conn,
                    Conn::AwaitAuth {
                        cluster,
                        node,
                        client_nonce,
                        nonce,
                        since: now,
                    },
                );
                self.send_plain(conn, &Msg::Challenge { nonce, proof });
            }
            (
                Conn::AwaitAuth {
                    cluster,
                    node,
                    client_nonce,
                    nonce,
                    ..
                },
                Msg::Auth { proof },
            ) => {
                let Some(key) = self.cfg.keys.get(&cluster) else {
                    return self.fail(now, conn, ErrorCode::UnknownCluster);
                };
                let want = auth::proof(key, Role::Client, &cluster, node, &client_nonce, &nonce);
                if !auth::verify(&want, &proof) {
                    self.stats.auth_failures += 1;
                    return self.fail(now, conn, ErrorCode::AuthFailed);
                }
                let session =
                    Session::new(key, Role::Server, &cluster, node, &client_nonce, &nonce);
                self.set_state(
                    conn,
                    Conn::Active {
                        cluster: cluster.clone(),
                        node,
                        session,
                        last_heard: now,
                    },
                );
                // A node reconnecting replaces its old connection.
                let cl = self.clusters.entry(cluster.clone()).or_default();
                let v = cl.nodes.entry(node).or_default();
                let old = v.conn.replace(conn);
                v.status = None;
                v.sent = None;
                if let Some(old) = old.filter(|o| *o != conn) {
                    self.conns.remove(&old);
                    self.close.push_back(old);
                }
                let lease_ms = u32::try_from(self.cfg.lease.as_millis()).unwrap_or(u32::MAX);
                let heartbeat_ms = u32::try_from(self.cfg.heartbeat().as_millis())
                    .unwrap_or(u32::MAX)
                    .max(1);
                self.send_sealed(
                    conn,
                    &Msg::Welcome {
                        lease_ms,
                        heartbeat_ms,
                    },
                );
            }
            (
                Conn::Active {
                    cluster,
                    node,
                    session,
                    last_heard,
                },
                Msg::Status(s),
            ) => {
                let name = cluster.clone();
                self.set_state(
                    conn,
                    Conn::Active {
                        cluster,
                        node,
                        session,
                        last_heard,
                    },
                );
                self.status(now, conn, &name, node, s);
            }
            _ => self.fail(now, conn, ErrorCode::Protocol),
        }
    }

    fn status(&mut self, now: Time, conn: ConnId, cluster: &[u8], node: NodeId, s: Status) {
        let valid = s.members.contains(&node)
            && s.config_nodes.contains(&node)
            && s.members.iter().all(|m| s.config_nodes.contains(m));
        if !valid {
            return self.fail(now, conn, ErrorCode::Protocol);
        }
        let server_lease = self.cfg.server_lease();
        let Some(cl) = self.clusters.get_mut(cluster) else {
            return;
        };
        // Every connected client of a cluster must agree on its settings.
        let mismatch = cl.nodes.iter().any(|(n, v)| {
            *n != node
                && v.status.as_ref().is_some_and(|o| {
                    o.algorithm != s.algorithm
                        || o.tie_breaker != s.tie_breaker
                        || o.config_nodes != s.config_nodes
                })
        });
        if mismatch {
            return self.fail(now, conn, ErrorCode::ConfigMismatch);
        }
        let v = cl.nodes.entry(node).or_default();
        // What the node reports holding is the truth as of when it sent this status:
        // it accepts an ack only for its latest status, so no older ack can still
        // reach it and make it hold something it did not report.
        v.grant = s.holding.map(|r| (r, now + server_lease));
        v.known = true;
        v.sent = None;
        v.status = Some(s);
        self.evaluate(now, cluster);
    }

    /// Re-decides one cluster and sends every changed decision.
    fn evaluate(&mut self, now: Time, cluster: &[u8]) {
        let quarantine_end = self.started + self.cfg.server_lease();
        let server_lease = self.cfg.server_lease();
        let Some(cl) = self.clusters.get_mut(cluster) else {
            return;
        };
        let outcome = decide(cl);
        let winner_ring = match &outcome {
            Outcome::Winner(w) => Some(w.ring),
            _ => None,
        };
        // A grant for any other ring that may still be in use blocks granting.
        let mut blocked = cl.nodes.values().any(|v| {
            v.grant
                .is_some_and(|(r, end)| now < end && Some(r) != winner_ring)
        });
        // After a restart, a node not heard from yet may hold a grant of the previous
        // incarnation, for an unknown ring, until one lease has passed.
        if now < quarantine_end {
            let config_nodes = cl
                .nodes
                .values()
                .find_map(|v| v.status.as_ref().map(|s| s.config_nodes.clone()))
                .unwrap_or_default();
            blocked |= config_nodes
                .iter()
                .any(|n| cl.nodes.get(n).is_none_or(|v| !v.known));
        }
        let mut sends = Vec::new();
        for (id, v) in cl.nodes.iter_mut() {
            let (Some(conn), Some(s)) = (v.conn, v.status.as_ref()) else {
                continue;
            };
            let d = match &outcome {
                Outcome::Winner(w) if w.ring == s.ring && w.members.contains(id) => {
                    if blocked {
                        Decision::Wait
                    } else {
                        Decision::Ack
                    }
                }
                Outcome::Winner(_) => Decision::Nack,
                // No partition qualifies: take back whatever is held.
                Outcome::NoWinner => Decision::Nack,
                // Reports disagree (a membership change is propagating): change
                // nothing, let leases run.
                Outcome::Unstable => Decision::Wait,
            };
            if d == Decision::Ack {
                v.grant = Some((s.ring, now + server_lease));
            }
            let key = (s.seq, d);
            if v.sent != Some(key) {
                v.sent = Some(key);
                sends.push((
                    conn,
                    Msg::Vote {
                        seq: s.seq,
                        ring: s.ring,
                        decision: d,
                    },
                ));
            }
        }
        if let (Outcome::Winner(w), false) = (&outcome, blocked) {
            cl.last_holders = w.members.clone();
        }
        for (conn, m) in sends {
            match &m {
                Msg::Vote {
                    decision: Decision::Ack,
                    ..
                } => self.stats.acks += 1,
                Msg::Vote {
                    decision: Decision::Nack,
                    ..
                } => self.stats.nacks += 1,
                _ => {}
            }
            self.send_sealed(conn, &m);
        }
    }

    /// Fires due deadlines: handshakes and silent clients time out, leases end.
    pub fn handle_timeout(&mut self, now: Time) {
        let hb = self.cfg.heartbeat();
        let dead: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| match &c.st {
                Conn::AwaitHello { since, .. } | Conn::AwaitAuth { since, .. } => {
                    now >= *since + hb * 4
                }
                Conn::Active { last_heard, .. } => now >= *last_heard + hb * 4,
            })
            .map(|(id, _)| *id)
            .collect();
        for id in dead {
            self.close.push_back(id);
            self.closed(now, id);
        }
        let names: Vec<Vec<u8>> = self.clusters.keys().cloned().collect();
        for n in names {
            self.evaluate(now, &n);
        }
    }

    /// The next deadline.
    pub fn poll_timeout(&self) -> Option<Time> {
        let hb = self.cfg.heartbeat();
        let mut t: Option<Time> = None;
        let mut at = |x: Time| t = Some(t.map_or(x, |t| t.min(x)));
        for c in self.conns.values() {
            match &c.st {
                Conn::AwaitHello { since, .. } | Conn::AwaitAuth { since, .. } => {
                    at(*since + hb * 4)
                }
                Conn::Active { last_heard, .. } => at(*last_heard + hb * 4),
            }
        }
        let q = self.started + self.cfg.server_lease();
        for cl in self.clusters.values() {
            for v in cl.nodes.values() {
                if let Some((_, end)) = v.grant {
                    at(end);
                }
                if !v.known {
                    at(q);
                }
            }
            at(q);
        }
        t
    }

    /// The next bytes to write on a connection.
    pub fn poll_transmit(&mut self) -> Option<(ConnId, Vec<u8>)> {
        self.out.pop_front()
    }

    /// The next connection to close (after writing what `poll_transmit` gave for it).
    pub fn poll_close(&mut self) -> Option<ConnId> {
        self.close.pop_front()
    }

    /// Counters.
    pub fn stats(&self) -> ServerStats {
        self.stats
    }

    /// The nodes of `cluster` the arbitrator currently considers holding a vote, with
    /// the ring (for tests and status output).
    pub fn holders(&self, now: Time, cluster: &[u8]) -> Vec<(NodeId, RingId)> {
        self.clusters.get(cluster).map_or_else(Vec::new, |cl| {
            cl.nodes
                .iter()
                .filter_map(|(n, v)| match v.grant {
                    Some((r, end)) if now < end => Some((*n, r)),
                    _ => None,
                })
                .collect()
        })
    }

    fn set_state(&mut self, conn: ConnId, st: Conn) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.st = st;
        }
    }

    fn send_plain(&mut self, conn: ConnId, m: &Msg) {
        self.out
            .push_back((conn, proto::frame(&proto::encode_frame_body(m), None)));
    }

    fn send_sealed(&mut self, conn: ConnId, m: &Msg) {
        let Some(ConnState {
            st: Conn::Active { session, .. },
            ..
        }) = self.conns.get_mut(&conn)
        else {
            return;
        };
        let body = proto::encode_frame_body(m);
        let tag = session.seal(&body);
        self.out.push_back((conn, proto::frame(&body, Some(&tag))));
    }

    fn fail(&mut self, now: Time, conn: ConnId, code: ErrorCode) {
        self.stats.bad_frames += u64::from(code == ErrorCode::Protocol);
        match self
            .conns
            .get(&conn)
            .map(|c| matches!(c.st, Conn::Active { .. }))
        {
            Some(true) => self.send_sealed(conn, &Msg::Error(code)),
            Some(false) => self.send_plain(conn, &Msg::Error(code)),
            None => {}
        }
        self.close.push_back(conn);
        self.closed(now, conn);
    }
}
