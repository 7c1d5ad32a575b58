//! `dlm-bench` — the lock manager's costs, in one run:
//!
//! 1. **core**: uncontended lock + unlock pairs on one resource mastered locally,
//!    one thread, on the sans-IO `DlmNode` itself (no thread hop);
//! 2. **handle, local**: the same through a one-node `Node`'s `Dlm` handle
//!    (`lock_wait` + `unlock_wait`: two round trips to the node's thread);
//! 3. **remote**: three nodes in this process on loopback; node 1 locks (EX) and
//!    unlocks a resource mastered on node 2; lock latency p50/p99 beside the UDP
//!    round trip between two sockets on the same loopback, measured in the run;
//! 4. **bounce**: one thread per node taking EX on the same resource and
//!    releasing it; grants per second cluster-wide.
//!
//! ```text
//! cargo run --release -p phalanx-bench --bin dlm-bench -- [--pairs N] [--remote N] [--bounce-secs S]
//! ```

use phalanx::dlm::cluster::{DlmConfig, DlmNode, Input, Output};
use phalanx::dlm::{LockFlags, LockRequest, Mode, Owner, UnlockRequest};
use phalanx::node::{Node, NodeOptions};
use phalanx::totem::Config;
use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

struct Args {
    pairs: usize,
    remote: usize,
    bounce_secs: u64,
}

fn args() -> Args {
    let mut a = Args {
        pairs: 2_000_000,
        remote: 2000,
        bounce_secs: 5,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i + 1 < v.len() {
        let n: usize = v[i + 1].parse().expect("a number");
        match v[i].as_str() {
            "--pairs" => a.pairs = n,
            "--remote" => a.remote = n,
            "--bounce-secs" => a.bounce_secs = n as u64,
            other => panic!("unknown option {other}"),
        }
        i += 2;
    }
    a
}

fn core_pairs(n: usize) -> f64 {
    let mut node = DlmNode::new(1, DlmConfig::default()).unwrap();
    node.handle_input(Input::Members {
        lockspace: 1,
        epoch: 1,
        members: vec![1],
        failed: vec![],
    })
    .unwrap();
    let owner = Owner::new(1, 1);
    let t0 = Instant::now();
    let mut completions = 0usize;
    for _ in 0..n {
        let id = node
            .lock(1, LockRequest::new(owner, "r", Mode::Ex))
            .unwrap();
        node.unlock(1, UnlockRequest::new(owner, id)).unwrap();
        while let Some(o) = node.poll_output() {
            completions += usize::from(matches!(o, Output::Completion { .. }));
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    assert_eq!(completions, 2 * n);
    n as f64 / secs
}

fn addrs(n: u32) -> BTreeMap<u32, SocketAddr> {
    let socks: Vec<UdpSocket> = (0..n)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    (1..=n)
        .zip(&socks)
        .map(|(id, s)| (id, s.local_addr().unwrap()))
        .collect()
}

fn start(n: u32) -> Vec<Node> {
    let addrs = addrs(n);
    let ids: Vec<u32> = (1..=n).collect();
    ids.iter()
        .map(|&id| {
            let mut o = NodeOptions::new(Config::new(id, ids.clone()), addrs.clone());
            o.dlm = Some(Default::default());
            Node::start(o).expect("node starts")
        })
        .collect()
}

fn handle_local(n: usize) -> f64 {
    let nodes = start(1);
    let ls = nodes[0].dlm().lockspace("bench").unwrap();
    let t0 = Instant::now();
    for _ in 0..n {
        let g = ls
            .lock_wait(b"r", Mode::Ex, LockFlags::EMPTY, None)
            .unwrap();
        ls.unlock_wait(g.id, LockFlags::EMPTY, None).unwrap();
    }
    let rate = n as f64 / t0.elapsed().as_secs_f64();
    for n in nodes {
        n.leave().unwrap();
    }
    rate
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p) as usize]
}

fn udp_rtt(n: usize) -> Vec<Duration> {
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b_addr = b.local_addr().unwrap();
    let echo = std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        for _ in 0..n {
            let (len, from) = b.recv_from(&mut buf).unwrap();
            b.send_to(&buf[..len], from).unwrap();
        }
    });
    let mut buf = [0u8; 64];
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        a.send_to(&[7u8; 48], b_addr).unwrap();
        a.recv_from(&mut buf).unwrap();
        out.push(t.elapsed());
    }
    echo.join().unwrap();
    out
}

/// Waits until every node sees all of them in the lockspace.
fn all_joined(nodes: &[Node], n: usize) {
    let t0 = Instant::now();
    while !nodes.iter().all(|node| {
        node.dlm()
            .dump()
            .unwrap()
            .lockspaces
            .iter()
            .any(|(name, m, recovering)| name == "bench" && m.len() == n && !recovering)
    }) {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "lockspace never formed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn main() {
    let a = args();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at start: {}", load.trim());

    let core = core_pairs(a.pairs);
    println!(
        "core: {} uncontended lock+unlock pairs (local master, one thread): {:.0} pairs/s",
        a.pairs, core
    );
    let local = handle_local(a.pairs.min(100_000));
    println!("handle, one node: lock_wait+unlock_wait {local:.0} pairs/s");

    let nodes = start(3);
    let spaces: Vec<_> = nodes
        .iter()
        .map(|n| n.dlm().lockspace("bench").unwrap())
        .collect();
    all_joined(&nodes, 3);
    // Node 2 asks first: it becomes the master; its NL lock keeps it mastered.
    let keep = spaces[1]
        .lock_wait(b"remote", Mode::Nl, LockFlags::EMPTY, None)
        .unwrap();
    let mut lat = Vec::with_capacity(a.remote);
    for _ in 0..a.remote {
        let t = Instant::now();
        let g = spaces[0]
            .lock_wait(b"remote", Mode::Ex, LockFlags::EMPTY, None)
            .unwrap();
        lat.push(t.elapsed());
        spaces[0].unlock_wait(g.id, LockFlags::EMPTY, None).unwrap();
    }
    spaces[1]
        .unlock_wait(keep.id, LockFlags::EMPTY, None)
        .unwrap();
    let (p50, p99) = (percentile(&mut lat, 0.5), percentile(&mut lat, 0.99));
    let mut rtt = udp_rtt(a.remote);
    let (r50, r99) = (percentile(&mut rtt, 0.5), percentile(&mut rtt, 0.99));
    println!(
        "remote master (node 2, the first to ask): lock latency \
         p50 {:.1} µs p99 {:.1} µs; UDP round trip p50 {:.1} µs p99 {:.1} µs",
        p50.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6,
        r50.as_secs_f64() * 1e6,
        r99.as_secs_f64() * 1e6
    );

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let threads: Vec<_> = spaces
        .iter()
        .cloned()
        .map(|ls| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut grants = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let g = ls
                        .lock_wait(b"hot", Mode::Ex, LockFlags::EMPTY, None)
                        .unwrap();
                    grants += 1;
                    ls.unlock_wait(g.id, LockFlags::EMPTY, None).unwrap();
                }
                grants
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(a.bounce_secs));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let per: Vec<u64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let total: u64 = per.iter().sum();
    println!(
        "bounce EX between 3 nodes: {:.0} grants/s (per node {per:?} in {} s)",
        total as f64 / a.bounce_secs as f64,
        a.bounce_secs
    );
    for s in spaces {
        let _ = s.leave();
    }
    for n in nodes {
        n.leave().unwrap();
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at end: {}", load.trim());
}
