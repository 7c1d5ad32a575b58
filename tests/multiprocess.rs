//! Real processes on real UDP sockets (loopback): a 5-node and a 3-node cluster
//! form, order a continuous workload, survive `kill -9` and `SIGSTOP`/`SIGCONT` of
//! members and a restart, and every process's history passes the same EVS checkers
//! as the simulator (agreed order, virtual synchrony, self delivery, no duplication,
//! configuration agreement, safe delivery, transitional order, liveness).
//!
//! The test binary re-executes itself as each node (`child_node`, ignored unless
//! called that way), so no test-only binary ships. Nodes print one line per
//! observation; the parent parses them into a `phalanx_sim::History`.

use phalanx::node::{CryptoOptions, Membership, Node, NodeEvent, NodeOptions};
use phalanx::totem::{Config, ConfigKind as TotemKind, Guarantee};
use phalanx_sim::check;
use phalanx_sim::history::{
    ConfigKind, EventKind, Guarantee as SimGuarantee, History, MsgId, Observation,
};
use phalanx_sim::node::NodeStatus;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const HEADER: usize = 20;

// ---------------------------------------------------------------- child side

/// Entry point of a node process (run by the parent test, not on its own).
#[test]
#[ignore = "entry point of the node processes the multi-process tests spawn"]
fn child_node() {
    let Ok(spec) = std::env::var("PHALANX_CHILD") else {
        return;
    };
    // spec: id;incarnation;state_dir;1=addr,2=addr,...
    let parts: Vec<&str> = spec.split(';').collect();
    let id: u32 = parts[0].parse().unwrap();
    let inc: u32 = parts[1].parse().unwrap();
    let state_dir = std::path::PathBuf::from(parts[2]);
    let addrs: BTreeMap<u32, SocketAddr> = parts[3]
        .split(',')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.parse().unwrap(), v.parse().unwrap())
        })
        .collect();
    let ids: Vec<u32> = addrs.keys().copied().collect();
    let mut opts = NodeOptions::new(Config::new(id, ids), addrs);
    opts.state_dir = Some(state_dir);
    // Crypto on, as in production: restarts bring new boot ids (new sessions).
    opts.crypto = Some(CryptoOptions {
        key: vec![0x5a; 256],
        cluster_name: "mp".into(),
        cipher: Default::default(),
    });
    let node = Node::start(opts).expect("node starts");
    let handle = node.handle();

    // Commands from the parent on stdin: "stop" (stop sending), "exit".
    let (cmd_tx, cmd_rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(l) = line else { break };
            if cmd_tx.send(l).is_err() {
                return;
            }
        }
        // The parent is gone (stdin closed): do not outlive it.
        let _ = cmd_tx.send("exit".to_string());
    });
    let out = std::io::stdout();
    let mut out = out.lock();
    let mut seq = 0u64;
    let mut sending = true;
    let mut next_send = Instant::now();
    loop {
        match cmd_rx.try_recv() {
            Ok(c) if c == "stop" => {
                sending = false;
                writeln!(out, "STOPPED").unwrap();
            }
            Ok(c) if c == "status" => {
                let Membership { ring, members, .. } = handle.membership();
                let m: Vec<String> = members.iter().map(|m| m.to_string()).collect();
                let (op, q) = (handle.is_operational() as u8, handle.is_quiescent() as u8);
                writeln!(
                    out,
                    "STATUS {op} {}.{} {} {q}",
                    ring.rep,
                    ring.seq,
                    m.join(",")
                )
                .unwrap();
            }
            Ok(c) if c == "exit" => break,
            _ => {}
        }
        if sending && Instant::now() >= next_send && handle.is_operational() {
            next_send = Instant::now() + Duration::from_millis(2);
            let g = if seq % 4 == 0 {
                Guarantee::Safe
            } else {
                Guarantee::Agreed
            };
            let size = (seq as usize * 37) % 1500;
            let data = payload(id, inc, seq, size);
            // The send is on record (flushed) before the message can leave: a kill -9
            // right after `mcast` must not make a delivered message look invented.
            // A refused send is withdrawn ("U"): it never left.
            writeln!(
                out,
                "S {seq} {}",
                if g == Guarantee::Safe {
                    "safe"
                } else {
                    "agreed"
                }
            )
            .unwrap();
            out.flush().unwrap();
            if handle.mcast(g, &data).is_ok() {
                seq += 1;
            } else {
                writeln!(out, "U {seq}").unwrap();
            }
        }
        while let Ok(ev) = node.events().recv_timeout(Duration::from_millis(1)) {
            match ev {
                NodeEvent::Deliver(d) => {
                    let (s, i, q, intact) = parse(&d.data, d.sender);
                    let g = if d.guarantee == Guarantee::Safe {
                        "safe"
                    } else {
                        "agreed"
                    };
                    writeln!(out, "D {s} {i} {q} {g} {}", intact as u8).unwrap();
                }
                NodeEvent::Config(c) => {
                    let kind = if c.kind == TotemKind::Regular {
                        "R"
                    } else {
                        "T"
                    };
                    let old = c
                        .previous
                        .map(|r| format!("{}.{}", r.rep, r.seq))
                        .unwrap_or("-".into());
                    let members: Vec<String> = c.members.iter().map(|m| m.to_string()).collect();
                    writeln!(
                        out,
                        "C {kind} {}.{} {old} {}",
                        c.ring.rep,
                        c.ring.seq,
                        members.join(",")
                    )
                    .unwrap();
                }
            }
        }
        out.flush().unwrap();
    }
    drop(out);
    node.leave().unwrap();
}

fn payload(id: u32, inc: u32, seq: u64, size: usize) -> Vec<u8> {
    let mut d = Vec::with_capacity(HEADER + size);
    d.extend_from_slice(&id.to_le_bytes());
    d.extend_from_slice(&inc.to_le_bytes());
    d.extend_from_slice(&seq.to_le_bytes());
    d.extend_from_slice(&[0; 4]);
    d.extend((0..size).map(|i| (seq as usize).wrapping_add(i) as u8));
    let crc = crc32c::crc32c(&d[..16]) ^ crc32c::crc32c(&d[HEADER..]);
    d[16..20].copy_from_slice(&crc.to_le_bytes());
    d
}

fn parse(d: &[u8], from: u32) -> (u32, u32, u64, bool) {
    if d.len() < HEADER {
        return (from, u32::MAX, u64::MAX, false);
    }
    let s = u32::from_le_bytes(d[0..4].try_into().unwrap());
    let i = u32::from_le_bytes(d[4..8].try_into().unwrap());
    let q = u64::from_le_bytes(d[8..16].try_into().unwrap());
    let crc = u32::from_le_bytes(d[16..20].try_into().unwrap());
    let ok = s == from && crc32c::crc32c(&d[..16]) ^ crc32c::crc32c(&d[HEADER..]) == crc;
    (s, i, q, ok)
}

// ---------------------------------------------------------------- parent side

/// (node, incarnation).
type Process = (u32, u32);
/// (sender, incarnation, seq).
type Msg = (u32, u32, u64);

struct Proc {
    child: Child,
    stdin: ChildStdin,
    inc: u32,
}

struct Cluster {
    n: u32,
    spec: String,
    dir: std::path::PathBuf,
    procs: BTreeMap<u32, Proc>,
    lines: mpsc::Receiver<(u32, u32, String)>,
    lines_tx: mpsc::Sender<(u32, u32, String)>,
    history: History,
    start: Instant,
    /// Latest regular configuration per live process.
    regular: BTreeMap<u32, Vec<u32>>,
    sent: BTreeMap<(u32, u32), BTreeSet<u64>>,
    delivered: BTreeMap<Process, BTreeSet<Msg>>,
    /// Messages delivered since the process's latest regular configuration.
    since_regular: BTreeMap<Process, BTreeSet<Msg>>,
    status: BTreeMap<u32, NodeStatus>,
}

impl Cluster {
    fn new(n: u32, tag: &str) -> Cluster {
        // Free loopback ports: bind, note, release.
        let socks: Vec<UdpSocket> = (0..n)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let addrs: Vec<String> = socks
            .iter()
            .enumerate()
            .map(|(i, s)| format!("{}={}", i + 1, s.local_addr().unwrap()))
            .collect();
        drop(socks);
        let dir = std::env::temp_dir().join(format!("phalanx-mp-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (lines_tx, lines) = mpsc::channel();
        let mut c = Cluster {
            n,
            spec: addrs.join(","),
            dir,
            procs: BTreeMap::new(),
            lines,
            lines_tx,
            history: History::new((1..=n).collect()),
            start: Instant::now(),
            regular: BTreeMap::new(),
            sent: BTreeMap::new(),
            delivered: BTreeMap::new(),
            since_regular: BTreeMap::new(),
            status: BTreeMap::new(),
        };
        for id in 1..=n {
            c.spawn(id, 0);
        }
        c
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    fn spawn(&mut self, id: u32, inc: u32) {
        let spec = format!(
            "{id};{inc};{};{}",
            self.dir.join(format!("n{id}")).display(),
            self.spec
        );
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "child_node",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("PHALANX_CHILD", spec)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take().unwrap();
        let tx = self.lines_tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(l) = line else { break };
                if tx.send((id, inc, l)).is_err() {
                    break;
                }
            }
        });
        if inc > 0 {
            let t = self.now();
            self.history.push(t, id, inc, EventKind::Restart);
        }
        self.procs.insert(id, Proc { child, stdin, inc });
    }

    fn kill9(&mut self, id: u32) {
        let mut p = self.procs.remove(&id).unwrap();
        p.child.kill().unwrap();
        p.child.wait().unwrap();
        let t = self.now();
        self.history.push(t, id, p.inc, EventKind::Crash);
        self.regular.remove(&id);
    }

    fn signal(&self, id: u32, sig: i32) {
        let pid = self.procs[&id].child.id() as i32;
        // SAFETY: plain kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
    }

    fn tell(&mut self, id: u32, cmd: &str) {
        let p = self.procs.get_mut(&id).unwrap();
        writeln!(p.stdin, "{cmd}").unwrap();
        p.stdin.flush().unwrap();
    }

    /// Consumes node output until `done` holds; fails after `limit`.
    fn until(
        &mut self,
        what: &str,
        limit: Duration,
        mut done: impl FnMut(&Cluster) -> bool,
    ) -> Duration {
        let t0 = Instant::now();
        while !done(self) {
            assert!(
                t0.elapsed() < limit,
                "timed out after {limit:?} waiting for {what}; regular configs {:?}",
                self.regular
            );
            if let Ok((id, inc, line)) = self.lines.recv_timeout(Duration::from_millis(50)) {
                if std::env::var("MP_DEBUG").is_ok()
                    && !line.starts_with('D')
                    && !line.starts_with('S')
                {
                    eprintln!("n{id}#{inc}: {line}");
                }
                self.ingest(id, inc, &line);
            }
        }
        t0.elapsed()
    }

    fn ingest(&mut self, id: u32, inc: u32, line: &str) {
        // Lines of a process already killed may still be buffered: keep them, they
        // belong to its (now failed) history.
        let t = self.now();
        // libtest announces the child's test without a newline before its output.
        let line = line.strip_prefix("test child_node ... ").unwrap_or(line);
        let f: Vec<&str> = line.split(' ').collect();
        let ring = |s: &str| -> (u32, u64) {
            let (a, b) = s.split_once('.').unwrap();
            (a.parse().unwrap(), b.parse().unwrap())
        };
        let ids = |s: &str| -> Vec<u32> {
            if s.is_empty() {
                vec![]
            } else {
                s.split(',').map(|x| x.parse().unwrap()).collect()
            }
        };
        let g = |s: &str| {
            if s == "safe" {
                SimGuarantee::Safe
            } else {
                SimGuarantee::Agreed
            }
        };
        match f[0] {
            "U" => {
                let seq: u64 = f[1].parse().unwrap();
                if let Some(s) = self.sent.get_mut(&(id, inc)) {
                    s.remove(&seq);
                }
                self.history.events.retain(|e| {
                    !(e.node == id
                        && e.incarnation == inc
                        && matches!(&e.kind, EventKind::Observation(Observation::Sent { msg, .. }) if msg.seq == seq))
                });
            }
            "S" => {
                let seq: u64 = f[1].parse().unwrap();
                self.sent.entry((id, inc)).or_default().insert(seq);
                let msg = MsgId {
                    sender: id,
                    incarnation: inc,
                    seq,
                };
                self.history.observe(
                    t,
                    id,
                    inc,
                    Observation::Sent {
                        msg,
                        guarantee: g(f[2]),
                    },
                );
            }
            "D" => {
                let (s, i, q) = (
                    f[1].parse().unwrap(),
                    f[2].parse().unwrap(),
                    f[3].parse().unwrap(),
                );
                self.delivered
                    .entry((id, inc))
                    .or_default()
                    .insert((s, i, q));
                self.since_regular
                    .entry((id, inc))
                    .or_default()
                    .insert((s, i, q));
                let msg = MsgId {
                    sender: s,
                    incarnation: i,
                    seq: q,
                };
                self.history.observe(
                    t,
                    id,
                    inc,
                    Observation::Deliver {
                        msg,
                        guarantee: g(f[4]),
                        intact: f[5] == "1",
                    },
                );
            }
            "C" => {
                let members = ids(f[4]);
                let kind = if f[1] == "R" {
                    ConfigKind::Regular
                } else {
                    ConfigKind::Transitional
                };
                if kind == ConfigKind::Regular {
                    self.since_regular.insert((id, inc), BTreeSet::new());
                    if self.procs.get(&id).is_some_and(|p| p.inc == inc) {
                        self.regular.insert(id, members.clone());
                    }
                }
                let old_ring = if kind == ConfigKind::Transitional && f[3] != "-" {
                    Some(ring(f[3]))
                } else {
                    None
                };
                self.history.observe(
                    t,
                    id,
                    inc,
                    Observation::Config {
                        kind,
                        ring: ring(f[2]),
                        old_ring,
                        members,
                    },
                );
            }
            "STATUS" => {
                let r = ring(f[2]);
                self.status.insert(
                    id,
                    NodeStatus {
                        operational: f[1] == "1",
                        ring: Some(r),
                        members: ids(f[3]),
                        quiescent: f[4] == "1",
                    },
                );
            }
            _ => {}
        }
    }

    fn all_in_one_ring(&self, ids: &[u32]) -> bool {
        ids.iter()
            .all(|i| self.regular.get(i).is_some_and(|m| m == ids))
    }

    /// Nothing is left in flight: every live sender has delivered all it sent (so
    /// every message is ordered), and all live processes, being in one ring, have
    /// delivered the same messages since installing it (EVS: members that stay
    /// together deliver the same set).
    fn drained(&self) -> bool {
        let live: Vec<(u32, u32)> = self.procs.iter().map(|(id, p)| (*id, p.inc)).collect();
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

    fn finish(mut self) -> History {
        let ids: Vec<u32> = self.procs.keys().copied().collect();
        for id in &ids {
            self.tell(*id, "stop");
        }
        self.until(
            "all messages delivered everywhere",
            Duration::from_secs(30),
            |c| c.drained(),
        );
        // Everyone reports before anyone leaves (a leave re-forms the others).
        for id in &ids {
            self.tell(*id, "status");
        }
        let n = ids.len();
        self.until("final status of every node", Duration::from_secs(10), |c| {
            c.status.len() == n
        });
        for id in &ids {
            self.tell(*id, "exit");
        }
        for (_, mut p) in std::mem::take(&mut self.procs) {
            assert!(p.child.wait().unwrap().success());
        }
        // Lines still buffered.
        while let Ok((id, inc, line)) = self.lines.try_recv() {
            self.ingest(id, inc, &line);
        }
        self.history.end = self.now();
        self.history.final_status = (1..=self.n)
            .map(|id| (id, self.status.get(&id).cloned()))
            .collect();
        let _ = std::fs::remove_dir_all(&self.dir);
        self.history
    }
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
    let mut c = Cluster::new(5, "five");
    let all = [1, 2, 3, 4, 5];
    c.until("a ring of all five", Duration::from_secs(20), |c| {
        c.all_in_one_ring(&all)
    });
    c.until("traffic", Duration::from_secs(20), |c| {
        c.delivered.values().all(|d| d.len() > 300) && c.delivered.len() == 5
    });

    c.kill9(5);
    let t = c.until(
        "the survivors to exclude the killed node",
        Duration::from_secs(10),
        |c| c.all_in_one_ring(&[1, 2, 3, 4]),
    );
    eprintln!("kill -9 to new configuration on all survivors: {t:?}");

    c.signal(4, libc::SIGSTOP);
    let t = c.until(
        "the others to exclude the stopped node",
        Duration::from_secs(10),
        |c| c.all_in_one_ring(&[1, 2, 3]),
    );
    eprintln!("SIGSTOP to new configuration on the others: {t:?}");
    c.signal(4, libc::SIGCONT);
    let t = c.until("the stopped node to rejoin", Duration::from_secs(20), |c| {
        c.all_in_one_ring(&[1, 2, 3, 4])
    });
    eprintln!("SIGCONT to rejoined: {t:?}");

    c.spawn(5, 1);
    let t = c.until(
        "the restarted node to rejoin",
        Duration::from_secs(20),
        |c| c.all_in_one_ring(&all),
    );
    eprintln!("restart to rejoined: {t:?}");
    c.until("traffic after the restart", Duration::from_secs(20), |c| {
        c.delivered.get(&(5, 1)).is_some_and(|d| d.len() > 300)
    });

    let h = c.finish();
    assert_clean(&h);
}

#[test]
fn three_processes_survive_kill9_of_the_representative() {
    let mut c = Cluster::new(3, "three");
    c.until("a ring of all three", Duration::from_secs(20), |c| {
        c.all_in_one_ring(&[1, 2, 3])
    });
    c.until("traffic", Duration::from_secs(20), |c| {
        c.delivered.values().all(|d| d.len() > 300) && c.delivered.len() == 3
    });
    c.kill9(1);
    let t = c.until(
        "the survivors to exclude node 1",
        Duration::from_secs(10),
        |c| c.all_in_one_ring(&[2, 3]),
    );
    eprintln!("kill -9 of the representative to new configuration: {t:?}");
    c.spawn(1, 1);
    c.until("node 1 to rejoin", Duration::from_secs(20), |c| {
        c.all_in_one_ring(&[1, 2, 3])
    });
    c.until("traffic after the restart", Duration::from_secs(20), |c| {
        c.delivered.get(&(1, 1)).is_some_and(|d| d.len() > 300)
    });
    let h = c.finish();
    assert_clean(&h);
}
