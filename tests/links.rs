//! Link fail-over for real: three node processes, each in its own network
//! namespace, each with two links — link 0 (IPv4) and link 1 (IPv6) — made of veth
//! pairs plugged into one bridge per link in a "hub" namespace. The test pulls
//! cables (`ip link set DEV down`) while the nodes send continuously, and checks
//! that the membership never changes, that every node keeps delivering every
//! message in order, that the links are reported down and traffic moves to link 1,
//! and that traffic fails back to link 0 when the cable returns. It prints the
//! measured fail-over (detection) times and the longest delivery gaps.
//!
//! Needs root (network namespaces) and iproute2's `ip`; `.ci/run` installs it. It
//! fails — never skips — when either is missing.
//!
//! The nodes are this test binary re-executed (`child_link_node`) under
//! `ip netns exec`, configured from a corosync.conf the parent writes (so the
//! config keys `ring1_addr`, `link_mode`, `knet_link_priority` are exercised end
//! to end).

use phalanx::node::{LinkState, Node, NodeEvent, NodeOptions};
use phalanx::totem::{ConfigKind, Guarantee};
mod common;

use common::netns::Namespaces;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const NODES: u32 = 3;

// ---------------------------------------------------------------- child side

/// Entry point of a node process (run by the parent test, not on its own).
#[test]
#[ignore = "entry point of the node processes the link test spawns"]
fn child_link_node() {
    let Ok(spec) = std::env::var("PHALANX_LINK_CHILD") else {
        return;
    };
    let (conf, id) = spec.split_once(';').unwrap();
    let id: u32 = id.parse().unwrap();
    let text = std::fs::read_to_string(conf).unwrap();
    let cfg = phalanx::config::from_corosync_str(&text, conf)
        .expect("config loads")
        .config;
    let opts = NodeOptions::from_config(&cfg, id).expect("node options");
    let node = Node::start(opts).expect("node starts");
    let h = node.handle();
    let (cmd_tx, cmd_rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(l) = line else { break };
            if cmd_tx.send(l).is_err() {
                return;
            }
        }
        let _ = cmd_tx.send("exit".into());
    });
    let out = std::io::stdout();
    let mut out = out.lock();
    // The test harness has printed "test child_link_node ... " without a newline.
    writeln!(out).unwrap();
    let mut seq = 0u64;
    let mut next_send = Instant::now();
    let mut states: BTreeMap<(u32, u8), LinkState> = BTreeMap::new();
    loop {
        match cmd_rx.try_recv() {
            Ok(c) if c == "exit" => break,
            Ok(c) if c == "stats" => {
                let mut tx = [0u64; 8];
                for l in h.links() {
                    tx[usize::from(l.link)] += l.stats.tx_packets;
                }
                writeln!(out, "TX {} {}", tx[0], tx[1]).unwrap();
            }
            _ => {}
        }
        for l in h.links() {
            if states.insert((l.peer, l.link), l.state) != Some(l.state) {
                let s = if l.state == LinkState::Up {
                    "up"
                } else {
                    "down"
                };
                let rtt = l.rtt.map_or(0, |d| d.as_micros());
                writeln!(out, "L {} {} {s} {rtt}", l.peer, l.link).unwrap();
            }
        }
        if Instant::now() >= next_send && h.is_operational() {
            next_send = Instant::now() + Duration::from_millis(2);
            let mut data = seq.to_le_bytes().to_vec();
            data.extend_from_slice(&[id as u8; 100]);
            if h.mcast(Guarantee::Agreed, &data).is_ok() {
                seq += 1;
            }
        }
        // One bounded wait, then drain what is queued: the loop must come round
        // often to report link changes promptly (they are timed by the parent).
        let first = node.events().recv_timeout(Duration::from_millis(1)).ok();
        for ev in first
            .into_iter()
            .chain(std::iter::from_fn(|| node.events().try_recv().ok()))
        {
            match ev {
                NodeEvent::Deliver(d) => {
                    let s = u64::from_le_bytes(d.data[..8].try_into().unwrap());
                    writeln!(out, "D {} {s}", d.sender).unwrap();
                }
                NodeEvent::Config(c) => {
                    let k = if c.kind == ConfigKind::Regular {
                        "R"
                    } else {
                        "T"
                    };
                    let m: Vec<String> = c.members.iter().map(|m| m.to_string()).collect();
                    writeln!(out, "C {k} {} {}", c.ring, m.join(",")).unwrap();
                }
            }
        }
    }
    drop(out);
    node.leave().unwrap();
}

// ---------------------------------------------------------------- network

/// One hub bridge per link (`br<link>`) and a cable per node and link
/// (`h<node>l<link>` on the hub side, `e<link>` on the node side: link 0 IPv4
/// 10.77.0.<node>, link 1 IPv6 fd77:1::<node>).
fn links_net(tag: &str, n: u32) -> Namespaces {
    let net = Namespaces::create(tag, n);
    for l in 0..2 {
        net.bridge(&format!("br{l}"));
    }
    for i in 1..=n {
        net.plug(
            i,
            &format!("h{i}l0"),
            "br0",
            "e0",
            &format!("10.77.0.{i}/24"),
        );
        net.plug(
            i,
            &format!("h{i}l1"),
            "br1",
            "e1",
            &format!("fd77:1::{i}/64"),
        );
    }
    net
}

// ---------------------------------------------------------------- parent side

struct Proc {
    child: Child,
    stdin: ChildStdin,
}

/// What the parent has seen of every node.
#[derive(Default)]
struct View {
    /// Configuration changes per node.
    configs: BTreeMap<u32, Vec<String>>,
    /// Per node and sender: the next sequence number expected (gap-free order).
    next: BTreeMap<(u32, u32), u64>,
    delivered: BTreeMap<u32, u64>,
    /// Per node: arrival of its latest delivery, and the longest gap since `mark`.
    last_delivery: BTreeMap<u32, Instant>,
    max_gap: BTreeMap<u32, Duration>,
    /// Per (node, peer, link): state and when the parent learned it.
    links: BTreeMap<(u32, u32, u8), (LinkState, Instant)>,
    tx: BTreeMap<u32, (u64, u64)>,
    /// Link-down reports seen so far (any node, peer, link).
    downs: u64,
}

struct Cluster {
    procs: BTreeMap<u32, Proc>,
    lines: mpsc::Receiver<(u32, Instant, String)>,
    view: View,
}

impl Cluster {
    fn start(net: &Namespaces, dir: &std::path::Path, mode: &str) -> Cluster {
        let conf = dir.join("corosync.conf");
        std::fs::write(dir.join("authkey"), [0x42u8; 256]).unwrap();
        let mut nodes = String::new();
        for i in 1..=NODES {
            nodes += &format!(
                "    node {{\n        nodeid: {i}\n        name: n{i}\n        \
                 ring0_addr: 10.77.0.{i}\n        ring1_addr: fd77:1::{i}\n    }}\n"
            );
        }
        let text = format!(
            "totem {{\n    cluster_name: links\n    transport: knet\n    link_mode: {mode}\n    \
             crypto_cipher: aes256\n    crypto_hash: sha256\n    keyfile: {key}\n    \
             interface {{\n        linknumber: 0\n        knet_link_priority: 1\n    }}\n    \
             interface {{\n        linknumber: 1\n        knet_link_priority: 0\n    }}\n}}\n\
             system {{\n    state_dir: {dir}\n}}\nnodelist {{\n{nodes}}}\n",
            key = dir.join("authkey").display(),
            dir = dir.display(),
        );
        std::fs::write(&conf, text).unwrap();
        let (tx, lines) = mpsc::channel();
        let mut procs = BTreeMap::new();
        let exe = std::env::current_exe().unwrap();
        for id in 1..=NODES {
            let mut child = Command::new("ip")
                .args(["netns", "exec", &net.nodes[id as usize - 1]])
                .arg(&exe)
                .args([
                    "--ignored",
                    "--exact",
                    "child_link_node",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("PHALANX_LINK_CHILD", format!("{};{id}", conf.display()))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("spawn a node under `ip netns exec`");
            let stdout = child.stdout.take().unwrap();
            let stdin = child.stdin.take().unwrap();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(l) = line else { break };
                    if tx.send((id, Instant::now(), l)).is_err() {
                        break;
                    }
                }
            });
            procs.insert(id, Proc { child, stdin });
        }
        Cluster {
            procs,
            lines,
            view: View::default(),
        }
    }

    fn tell(&mut self, id: u32, cmd: &str) {
        let p = self.procs.get_mut(&id).unwrap();
        writeln!(p.stdin, "{cmd}").unwrap();
        p.stdin.flush().unwrap();
    }

    fn absorb(&mut self, id: u32, at: Instant, line: &str) {
        let v = &mut self.view;
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["D", sender, seq] => {
                let (sender, seq): (u32, u64) = (sender.parse().unwrap(), seq.parse().unwrap());
                let next = v.next.entry((id, sender)).or_insert(seq);
                assert_eq!(
                    seq, *next,
                    "node {id} delivered {sender}:{seq}, expected {sender}:{next} (loss or reorder)"
                );
                *next += 1;
                *v.delivered.entry(id).or_default() += 1;
                if let Some(prev) = v.last_delivery.insert(id, at) {
                    let gap = at.saturating_duration_since(prev);
                    let m = v.max_gap.entry(id).or_default();
                    *m = (*m).max(gap);
                }
            }
            ["C", ..] => v.configs.entry(id).or_default().push(line.to_string()),
            ["L", peer, link, state, _rtt] => {
                let s = if *state == "up" {
                    LinkState::Up
                } else {
                    LinkState::Down
                };
                let key = (id, peer.parse().unwrap(), link.parse().unwrap());
                if s == LinkState::Down
                    && v.links.get(&key).is_some_and(|(o, _)| *o == LinkState::Up)
                {
                    v.downs += 1;
                }
                v.links
                    .insert((id, peer.parse().unwrap(), link.parse().unwrap()), (s, at));
            }
            ["TX", a, b] => {
                v.tx.insert(id, (a.parse().unwrap(), b.parse().unwrap()));
            }
            _ => {}
        }
    }

    /// Consumes node output until `done` holds; fails after `limit`.
    fn until(&mut self, what: &str, limit: Duration, mut done: impl FnMut(&View) -> bool) {
        let t0 = Instant::now();
        while !done(&self.view) {
            assert!(
                t0.elapsed() < limit,
                "timed out after {limit:?} waiting for {what}; configs {:?}; links {:?}",
                self.view.configs,
                self.view.links
            );
            if let Ok((id, at, line)) = self.lines.recv_timeout(Duration::from_millis(20)) {
                self.absorb(id, at, &line);
            }
        }
    }

    /// Reads every node's per-link transmit counters.
    fn tx(&mut self) -> BTreeMap<u32, (u64, u64)> {
        self.view.tx.clear();
        for id in 1..=NODES {
            self.tell(id, "stats");
        }
        self.until("transmit counters", Duration::from_secs(10), |v| {
            v.tx.len() == NODES as usize
        });
        self.view.tx.clone()
    }

    fn link(&self, node: u32, peer: u32, link: u8) -> Option<(LinkState, Instant)> {
        self.view.links.get(&(node, peer, link)).copied()
    }

    fn delivered(&self) -> u64 {
        self.view.delivered.values().copied().min().unwrap_or(0)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for p in self.procs.values_mut() {
            let _ = writeln!(p.stdin, "exit");
        }
        for p in self.procs.values_mut() {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }
}

fn all_links(v: &View, link: u8, state: LinkState, pairs: &[(u32, u32)]) -> bool {
    pairs.iter().all(|(a, b)| {
        v.links
            .get(&(*a, *b, link))
            .is_some_and(|(s, _)| *s == state)
    })
}

fn every_pair() -> Vec<(u32, u32)> {
    let mut v = Vec::new();
    for a in 1..=NODES {
        for b in (1..=NODES).filter(|b| *b != a) {
            v.push((a, b));
        }
    }
    v
}

#[test]
fn passive_link_down_fails_over_without_a_membership_change_and_fails_back() {
    exercise("passive");
}

#[test]
fn active_link_down_keeps_the_membership_and_traffic_on_the_other_link() {
    exercise("active");
}

fn exercise(mode: &str) {
    let net = links_net(&mode[..3], NODES);
    let dir = std::env::temp_dir().join(format!("phalanx-links-{mode}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut c = Cluster::start(&net, &dir, mode);
    let pairs = every_pair();

    c.until(
        "ring {1,2,3} and both links up everywhere",
        Duration::from_secs(20),
        |v| {
            (1..=NODES).all(|n| {
                v.configs
                    .get(&n)
                    .and_then(|c| c.iter().rev().find(|l| l.starts_with("C R")))
                    .is_some_and(|l| l.ends_with(" 1,2,3"))
            }) && all_links(v, 0, LinkState::Up, &pairs)
                && all_links(v, 1, LinkState::Up, &pairs)
        },
    );
    let configs_before: Vec<usize> = (1..=NODES).map(|n| c.view.configs[&n].len()).collect();
    let txa = c.tx();
    let downs = c.view.downs;
    let d0 = c.delivered();
    c.until("traffic", Duration::from_secs(10), |v| {
        v.delivered.values().min().copied().unwrap_or(0) > d0 + 300
    });
    let tx0 = c.tx();
    for n in 1..=NODES {
        let (l0, l1) = (tx0[&n].0 - txa[&n].0, tx0[&n].1 - txa[&n].1);
        assert!(l0 > 100, "node {n} sends on link 0: {txa:?} → {tx0:?}");
        if mode == "passive" && c.view.downs == downs {
            // Link 0 has the higher priority: link 1 carries nothing but pings
            // (unless a link flapped meanwhile, e.g. on a starved machine).
            assert_eq!(l1, 0, "node {n} sends on link 1 in passive mode");
        } else {
            assert!(l1 > 100, "node {n} sends on link 1 in active mode");
        }
    }
    c.view.max_gap.clear();

    // ---- Pull node 3's link-0 cable: 1–3 and 2–3 fail over to link 1; 1–2 stays.
    let cut = Instant::now();
    net.set_hub_link("h3l0", false);
    let three: Vec<(u32, u32)> = pairs
        .iter()
        .copied()
        .filter(|(a, b)| *a == 3 || *b == 3)
        .collect();
    c.until("link 0 to/from node 3 down", Duration::from_secs(10), |v| {
        all_links(v, 0, LinkState::Down, &three)
    });
    let detect: Vec<Duration> = three
        .iter()
        .map(|(a, b)| c.link(*a, *b, 0).unwrap().1.saturating_duration_since(cut))
        .collect();
    let d1 = c.delivered();
    c.until("traffic over link 1", Duration::from_secs(10), |v| {
        v.delivered.values().min().copied().unwrap_or(0) > d1 + 500
    });
    assert!(
        matches!(c.link(1, 2, 0), Some((LinkState::Up, _))),
        "1–2 keeps link 0"
    );
    let tx1 = c.tx();
    assert!(
        tx1[&3].1 > tx0[&3].1 + 100,
        "node 3 sends on link 1 now: {tx0:?} → {tx1:?}"
    );
    let gap_cable = c.view.max_gap.values().copied().max().unwrap();
    eprintln!(
        "{mode}: cable pulled: link down detected after {:?} (max {:?}); longest delivery gap {gap_cable:?}",
        detect,
        detect.iter().max().unwrap()
    );

    // ---- Plug it back: fail-back to link 0.
    let plug = Instant::now();
    net.set_hub_link("h3l0", true);
    c.until(
        "link 0 to/from node 3 up again",
        Duration::from_secs(10),
        |v| all_links(v, 0, LinkState::Up, &three),
    );
    let back = three
        .iter()
        .map(|(a, b)| c.link(*a, *b, 0).unwrap().1.saturating_duration_since(plug))
        .max()
        .unwrap();
    let tx2 = c.tx();
    let d2 = c.delivered();
    c.until("traffic after fail-back", Duration::from_secs(10), |v| {
        v.delivered.values().min().copied().unwrap_or(0) > d2 + 500
    });
    let tx3 = c.tx();
    assert!(
        tx3[&3].0 > tx2[&3].0 + 100,
        "node 3 sends on link 0 again: {tx2:?} → {tx3:?}"
    );
    eprintln!("{mode}: cable plugged: link up again after {back:?}");

    // ---- Switch link 0 off entirely: every pair fails over.
    c.view.max_gap.clear();
    let off = Instant::now();
    net.set_hub_link("br0", false);
    c.until("link 0 down everywhere", Duration::from_secs(10), |v| {
        all_links(v, 0, LinkState::Down, &pairs)
    });
    let detect_all = pairs
        .iter()
        .map(|(a, b)| c.link(*a, *b, 0).unwrap().1.saturating_duration_since(off))
        .max()
        .unwrap();
    let d3 = c.delivered();
    c.until("traffic with link 0 off", Duration::from_secs(10), |v| {
        v.delivered.values().min().copied().unwrap_or(0) > d3 + 500
    });
    let gap_switch = c.view.max_gap.values().copied().max().unwrap();
    eprintln!(
        "{mode}: link 0 switched off: all pairs down after {detect_all:?}; longest delivery gap {gap_switch:?}"
    );
    net.set_hub_link("br0", true);
    c.until("link 0 up everywhere again", Duration::from_secs(10), |v| {
        all_links(v, 0, LinkState::Up, &pairs)
    });
    let d4 = c.delivered();
    c.until("traffic at the end", Duration::from_secs(10), |v| {
        v.delivered.values().min().copied().unwrap_or(0) > d4 + 200
    });

    // Not one configuration change through all of it.
    let configs_after: Vec<usize> = (1..=NODES).map(|n| c.view.configs[&n].len()).collect();
    assert_eq!(
        configs_before, configs_after,
        "membership changed: {:?}",
        c.view.configs
    );
    drop(c);
    let _ = std::fs::remove_dir_all(&dir);
}
