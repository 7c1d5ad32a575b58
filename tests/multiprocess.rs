//! Real processes on real UDP sockets (loopback): a 5-node and a 3-node cluster
//! of `phalanxd` processes form, order a continuous workload, survive `kill -9`
//! and `SIGSTOP`/`SIGCONT` of members and a restart, and every process's history
//! passes the same EVS checkers as the simulator (agreed order, virtual
//! synchrony, self delivery, no duplication, configuration agreement, safe
//! delivery, transitional order, liveness).
//!
//! The nodes run under the multi-process harness (`tests/common/cluster.rs`):
//! each generates load (`load 2 1500 4`: a message every 2 ms, sizes sweeping
//! 0..=1500 bytes, every 4th safe) and reports every message it sends and
//! delivers, which the test turns into a `phalanx_sim::History`.

mod common;

use common::cluster::{Cluster, Observed, Observer, mono_ns};
use common::conf::{TestDir, corosync_conf, loopback_addrs, one_link};
use common::events::{Config, Event};
use phalanx_sim::check;
use phalanx_sim::history::{
    ConfigKind, EventKind, Guarantee as SimGuarantee, History, MsgId, Observation,
};
use phalanx_sim::node::NodeStatus;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// (node, incarnation).
type Process = (u32, u32);
/// (sender, incarnation, seq).
type Msg = (u32, u32, u64);

/// What the test has seen: the history for the checkers, and what it waits on.
struct Model {
    history: History,
    /// Times in the history are nanoseconds since this (CLOCK_MONOTONIC).
    start: u64,
    /// The running process of each node.
    live: BTreeMap<u32, u32>,
    /// Latest regular configuration per running process.
    regular: BTreeMap<u32, Vec<u32>>,
    sent: BTreeMap<Process, BTreeSet<u64>>,
    delivered: BTreeMap<Process, BTreeSet<Msg>>,
    /// Messages delivered since the process's latest regular configuration.
    since_regular: BTreeMap<Process, BTreeSet<Msg>>,
}

impl Observer for Model {
    fn observe(&mut self, o: &Observed) {
        // Lines of a process already killed may still arrive: they belong to its
        // (now failed) history.
        let t = o.at.saturating_sub(self.start);
        let p = (o.node, o.incarnation);
        let g = |safe: bool| {
            if safe {
                SimGuarantee::Safe
            } else {
                SimGuarantee::Agreed
            }
        };
        let obs = match &o.event {
            Event::Sent { seq, safe } => {
                self.sent.entry(p).or_default().insert(*seq);
                Observation::Sent {
                    msg: MsgId {
                        sender: o.node,
                        incarnation: o.incarnation,
                        seq: *seq,
                    },
                    guarantee: g(*safe),
                }
            }
            Event::Unsent { seq } => {
                // Reported before the attempt, retracted after it failed.
                self.sent.entry(p).or_default().remove(seq);
                let msg = MsgId {
                    sender: o.node,
                    incarnation: o.incarnation,
                    seq: *seq,
                };
                let at = self.history.events.iter().rposition(|e| {
                    matches!(&e.kind, EventKind::Observation(Observation::Sent { msg: m, .. }) if *m == msg)
                });
                self.history
                    .events
                    .remove(at.expect("unsent follows its sent"));
                return;
            }
            Event::Deliver(d) => {
                let (i, q) = d.msg.unwrap_or((u32::MAX, u64::MAX));
                self.delivered.entry(p).or_default().insert((d.from, i, q));
                self.since_regular
                    .entry(p)
                    .or_default()
                    .insert((d.from, i, q));
                Observation::Deliver {
                    msg: MsgId {
                        sender: d.from,
                        incarnation: i,
                        seq: q,
                    },
                    guarantee: g(d.safe),
                    intact: d.intact,
                }
            }
            Event::Config(Config {
                regular,
                ring,
                prev,
                members,
                ..
            }) => {
                if *regular {
                    self.since_regular.insert(p, BTreeSet::new());
                    if self.live.get(&o.node) == Some(&o.incarnation) {
                        self.regular.insert(o.node, members.clone());
                    }
                }
                Observation::Config {
                    kind: if *regular {
                        ConfigKind::Regular
                    } else {
                        ConfigKind::Transitional
                    },
                    ring: *ring,
                    old_ring: if *regular { None } else { *prev },
                    members: members.clone(),
                }
            }
            _ => return,
        };
        self.history.observe(t, o.node, o.incarnation, obs);
    }

    fn describe(&self) -> String {
        format!("regular configurations {:?}", self.regular)
    }
}

impl Model {
    fn all_in_one_ring(&self, ids: &[u32]) -> bool {
        ids.iter()
            .all(|i| self.regular.get(i).is_some_and(|m| m == ids))
    }

    /// Nothing is left in flight: every live sender has delivered all it sent (so
    /// every message is ordered), and all live processes, being in one ring, have
    /// delivered the same messages since installing it (EVS: members that stay
    /// together deliver the same set).
    fn drained(&self) -> bool {
        let live: Vec<Process> = self.live.iter().map(|(id, inc)| (*id, *inc)).collect();
        let ids: Vec<u32> = live.iter().map(|p| p.0).collect();
        let self_done = live.iter().all(|p| {
            let got = self.delivered.get(p);
            self.sent.get(p).is_none_or(|seqs| {
                seqs.iter()
                    .all(|q| got.is_some_and(|g| g.contains(&(p.0, p.1, *q))))
            })
        });
        let empty = BTreeSet::new();
        let first = self.since_regular.get(&live[0]).unwrap_or(&empty);
        self_done
            && self.all_in_one_ring(&ids)
            && live
                .iter()
                .all(|p| self.since_regular.get(p).unwrap_or(&empty) == first)
    }

    fn delivered_by(&self, p: Process) -> usize {
        self.delivered.get(&p).map_or(0, BTreeSet::len)
    }
}

/// The cluster and the test's model of it.
struct Run {
    c: Cluster,
    m: Model,
    _dir: TestDir,
}

impl Run {
    fn new(n: u32, tag: &str) -> Run {
        let dir = TestDir::new(&format!("mp-{tag}"));
        let addrs = one_link(&loopback_addrs(n as usize));
        let conf = dir.write_conf(&corosync_conf(&dir, "mp", "", &addrs, ""));
        let start = mono_ns();
        let c = Cluster::start(&conf, 1..=n, None);
        let mut r = Run {
            c,
            m: Model {
                history: History::new((1..=n).collect()),
                start,
                live: (1..=n).map(|id| (id, 0)).collect(),
                regular: BTreeMap::new(),
                sent: BTreeMap::new(),
                delivered: BTreeMap::new(),
                since_regular: BTreeMap::new(),
            },
            _dir: dir,
        };
        for id in 1..=n {
            r.c.send(id, "load 2 1500 4");
        }
        r
    }

    fn now(&self) -> u64 {
        mono_ns() - self.m.start
    }

    fn until(&mut self, what: &str, secs: u64, done: impl FnMut(&Model) -> bool) -> Duration {
        self.c
            .until(&mut self.m, what, Duration::from_secs(secs), done)
    }

    fn kill9(&mut self, id: u32) {
        let inc = self.m.live.remove(&id).unwrap();
        self.c.kill9(id);
        let t = self.now();
        self.m.history.push(t, id, inc, EventKind::Crash);
        self.m.regular.remove(&id);
    }

    fn restart(&mut self, id: u32) -> u32 {
        let inc = self.c.spawn(id);
        let t = self.now();
        self.m.history.push(t, id, inc, EventKind::Restart);
        self.m.live.insert(id, inc);
        self.c.send(id, "load 2 1500 4");
        inc
    }

    fn finish(mut self) -> History {
        let ids = self.c.running();
        self.c.request_all(&mut self.m, &ids, "load-stop");
        self.until("all messages delivered everywhere", 30, Model::drained);
        // Everyone reports before anyone leaves (a leave re-forms the others).
        let status = self.c.request_all(&mut self.m, &ids, "status");
        self.c.leave(&mut self.m, &ids);
        let n = self.m.history.nodes.len() as u32;
        self.m.history.end = self.now();
        self.m.history.final_status = (1..=n)
            .map(|id| {
                let s = status.get(&id).map(|r| NodeStatus {
                    operational: r.get("operational") == "1",
                    ring: Some(ring(r.get("ring"))),
                    members: r
                        .get("members")
                        .split(',')
                        .filter_map(|m| m.parse().ok())
                        .collect(),
                    quiescent: r.get("quiescent") == "1",
                });
                (id, s)
            })
            .collect();
        self.m.history
    }
}

fn ring(s: &str) -> (u32, u64) {
    let (a, b) = s.split_once('.').unwrap();
    (a.parse().unwrap(), b.parse().unwrap())
}

fn assert_clean(h: &History) {
    let v = check::all(h);
    assert!(
        v.is_empty(),
        "{} violations:\n{}",
        v.len(),
        v.iter()
            .take(20)
            .map(|v| format!("{}: {}", v.property, v.detail))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let deliveries = h
        .events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Observation(Observation::Deliver { .. })))
        .count();
    assert!(
        deliveries > 1000,
        "only {deliveries} deliveries: the workload did not run"
    );
}

#[test]
fn five_processes_survive_kill9_sigstop_and_restart() {
    let mut r = Run::new(5, "five");
    let all = [1, 2, 3, 4, 5];
    r.until("a ring of all five", 20, |m| m.all_in_one_ring(&all));
    r.until("traffic", 20, |m| {
        all.iter().all(|&id| m.delivered_by((id, 0)) > 300)
    });

    r.kill9(5);
    let t = r.until("the survivors to exclude the killed node", 10, |m| {
        m.all_in_one_ring(&[1, 2, 3, 4])
    });
    eprintln!("kill -9 to new configuration on all survivors: {t:?}");

    r.c.signal(4, libc::SIGSTOP);
    let t = r.until("the others to exclude the stopped node", 10, |m| {
        m.all_in_one_ring(&[1, 2, 3])
    });
    eprintln!("SIGSTOP to new configuration on the others: {t:?}");
    r.c.signal(4, libc::SIGCONT);
    let t = r.until("the stopped node to rejoin", 20, |m| {
        m.all_in_one_ring(&[1, 2, 3, 4])
    });
    eprintln!("SIGCONT to rejoined: {t:?}");

    let inc = r.restart(5);
    assert_eq!(inc, 1);
    let t = r.until("the restarted node to rejoin", 20, |m| {
        m.all_in_one_ring(&all)
    });
    eprintln!("restart to rejoined: {t:?}");
    r.until("traffic after the restart", 20, |m| {
        m.delivered_by((5, 1)) > 300
    });

    let h = r.finish();
    assert_clean(&h);
}

#[test]
fn three_processes_survive_kill9_of_the_representative() {
    let mut r = Run::new(3, "three");
    r.until("a ring of all three", 20, |m| m.all_in_one_ring(&[1, 2, 3]));
    r.until("traffic", 20, |m| {
        (1..=3).all(|id| m.delivered_by((id, 0)) > 300)
    });
    r.kill9(1);
    let t = r.until("the survivors to exclude node 1", 10, |m| {
        m.all_in_one_ring(&[2, 3])
    });
    eprintln!("kill -9 of the representative to new configuration: {t:?}");
    r.restart(1);
    r.until("node 1 to rejoin", 20, |m| m.all_in_one_ring(&[1, 2, 3]));
    r.until("traffic after the restart", 20, |m| {
        m.delivered_by((1, 1)) > 300
    });
    let h = r.finish();
    assert_clean(&h);
}
