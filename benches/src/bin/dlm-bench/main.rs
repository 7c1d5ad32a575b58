//! `dlm-bench` — the lock manager's costs, in one run:
//!
//! 1. **core**: uncontended lock + unlock pairs on one resource mastered locally,
//!    one thread, on the sans-IO `DlmNode` itself (no thread hop);
//! 2. **handle, local**: the same through a one-node `Node`'s `Dlm` handle
//!    (`lock_wait` + `unlock_wait` on the caller's thread, up to 1 000 000 pairs);
//! 3. **remote**: three nodes in this process on loopback; node 1 locks (EX) and
//!    unlocks a resource mastered on node 2; lock latency p50/p99 beside the UDP
//!    round trip between two sockets on the same loopback, measured in the run;
//! 4. **bounce**: one thread per node taking EX on the same resource,
//!    releasing it and waiting until another node has had it; hand-overs
//!    between nodes per second (the locks ask for BASTs as `lock_wait` does;
//!    `--bounce-basts off`: none, their holders release at once anyway);
//!    **bounce-ast**: the same hand-overs driven by AST callbacks on the
//!    nodes' own threads (each grant's callback unlocks, each unlock's callback
//!    asks again), the way an AST-driven application (a filesystem's glocks)
//!    uses a DLM: no application thread per hand-over (`bounce_ast.rs`);
//! 5. **recovery**: three `phalanxd` processes with the real test fence agent,
//!    `--recovery N` locks held (default 100 000), one node killed; the phases
//!    from the kill to locks usable again (`recovery.rs`). Needs `phalanxd` beside
//!    this binary (or `PHALANXD`); **recovery-core**: the same layout on three
//!    sans-IO nodes in this thread, the lock manager's own CPU share
//!    (`core_recovery.rs`).
//!
//! ```text
//! cargo build --release -p phalanx --bin phalanxd -p phalanx-bench --bin dlm-bench
//! target/release/dlm-bench [--pairs N] [--remote N] [--bounce-secs S] [--recovery N]
//!     [--driver-spin-us US] [--dlm-answer-spin-us US] [--paths ring,direct] [--bounce-basts on|off]
//!     [--only core,handle,remote,bounce,bounce-ast,recovery-core,recovery]
//! ```

mod bounce_ast;
mod core_recovery;
mod procs;
mod recovery;

use phalanx::dlm::cluster::{DlmConfig, DlmNode, Input, Output};
use phalanx::dlm::{LockFlags, LockRequest, Mode, Owner, UnlockRequest};
use phalanx::node::{LockCall, Node, NodeOptions};
use phalanx::totem::Config;
use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

struct Args {
    pairs: usize,
    remote: usize,
    bounce_secs: u64,
    recovery: usize,
    /// `NodeOptions::spin_before_park` of the nodes' drivers, µs (0: park at once).
    driver_spin_us: u64,
    /// `NodeOptions::dlm_answer_spin` of the nodes' drivers, µs (0: sleep at once).
    answer_spin_us: u64,
    /// Which lock traffic paths `remote` and `bounce` run: ring, direct or both.
    paths: Vec<bool>,
    /// Whether the bounced locks ask for blocking ASTs (`--bounce-basts on`).
    bounce_basts: bool,
    only: Vec<String>,
}

impl Args {
    fn runs(&self, scenario: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == scenario)
    }
}

fn args() -> Args {
    let mut a = Args {
        pairs: 2_000_000,
        remote: 2000,
        bounce_secs: 5,
        recovery: 100_000,
        driver_spin_us: 0,
        answer_spin_us: 100,
        paths: vec![false, true],
        bounce_basts: true,
        only: Vec::new(),
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i + 1 < v.len() {
        let value = &v[i + 1];
        let n = || -> usize { value.parse().expect("a number") };
        match v[i].as_str() {
            "--pairs" => a.pairs = n(),
            "--remote" => a.remote = n(),
            "--bounce-secs" => a.bounce_secs = n() as u64,
            "--recovery" => a.recovery = n(),
            "--driver-spin-us" => a.driver_spin_us = n() as u64,
            "--dlm-answer-spin-us" => a.answer_spin_us = n() as u64,
            "--only" => a.only = value.split(',').map(str::to_string).collect(),
            "--bounce-basts" => a.bounce_basts = value == "on",
            "--paths" => {
                a.paths = value
                    .split(',')
                    .map(|p| match p {
                        "ring" => false,
                        "direct" => true,
                        other => panic!("unknown lock traffic path {other}"),
                    })
                    .collect()
            }
            other => panic!("unknown option {other}"),
        }
        i += 2;
    }
    a
}

/// `n` uncontended pairs on one locally mastered resource while the node holds
/// `held` locks on other resources (a per-call cost that grows with them shows).
fn core_pairs(n: usize, held: usize) -> f64 {
    let mut node = DlmNode::new(1, DlmConfig::default()).unwrap();
    node.handle_input(Input::Members {
        lockspace: 1,
        epoch: 1,
        members: vec![1],
        failed: vec![],
    })
    .unwrap();
    let owner = Owner::new(1, 1);
    for i in 0..held {
        node.lock(1, LockRequest::new(owner, format!("held-{i}"), Mode::Pr))
            .unwrap();
        while node.poll_output().is_some() {}
    }
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

/// `n` nodes in this process; `direct`: the DLM's lock traffic point-to-point
/// over the links (`DlmSetup::direct`) instead of agreed CPG messages;
/// `driver_spin`: the drivers' `NodeOptions::spin_before_park`; `answer_spin`:
/// their `NodeOptions::dlm_answer_spin`.
fn start(n: u32, direct: bool, driver_spin: Duration, answer_spin: Duration) -> Vec<Node> {
    let addrs = addrs(n);
    let ids: Vec<u32> = (1..=n).collect();
    ids.iter()
        .map(|&id| {
            let mut o = NodeOptions::new(Config::new(id, ids.clone()), addrs.clone())
                .with_spin_before_park(driver_spin);
            o.dlm_answer_spin = answer_spin;
            o.dlm = Some(phalanx::stack::DlmSetup {
                direct,
                ..Default::default()
            });
            Node::start(o).expect("node starts")
        })
        .collect()
}

fn handle_local(n: usize) -> f64 {
    let nodes = start(1, false, Duration::ZERO, Duration::ZERO);
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

/// A UDP ping-pong between two threads on the same loopback: one round trip
/// per [`UdpPing::once`], so that lock samples and round trips can alternate
/// and see the same machine.
struct UdpPing {
    a: UdpSocket,
    b_addr: SocketAddr,
    echo: Option<std::thread::JoinHandle<()>>,
}

impl UdpPing {
    fn new() -> UdpPing {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b_addr = b.local_addr().unwrap();
        let echo = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            loop {
                let (len, from) = b.recv_from(&mut buf).unwrap();
                b.send_to(&buf[..len], from).unwrap();
                if len == 1 {
                    return; // the stop ping
                }
            }
        });
        UdpPing {
            a,
            b_addr,
            echo: Some(echo),
        }
    }

    fn once(&self) -> Duration {
        let mut buf = [0u8; 64];
        let t = Instant::now();
        self.a.send_to(&[7u8; 48], self.b_addr).unwrap();
        self.a.recv_from(&mut buf).unwrap();
        t.elapsed()
    }
}

impl Drop for UdpPing {
    fn drop(&mut self) {
        let mut buf = [0u8; 64];
        let _ = self.a.send_to(&[0u8], self.b_addr);
        let _ = self.a.recv_from(&mut buf);
        if let Some(e) = self.echo.take() {
            let _ = e.join();
        }
    }
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

/// Node 1 locks (EX) a resource mastered on node 2 and unlocks it, `n` times;
/// each lock is followed by a UDP round trip on the same loopback (the two
/// alternate, so both are measured under the same conditions).
fn remote(spaces: &[phalanx::node::Lockspace], n: usize) {
    // Node 2 asks first: it becomes the master; its NL lock keeps it mastered.
    let keep = spaces[1]
        .lock_wait(b"remote", Mode::Nl, LockFlags::EMPTY, None)
        .unwrap();
    let ping = UdpPing::new();
    let mut lat = Vec::with_capacity(n);
    let mut rtt = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let g = spaces[0]
            .lock_wait(b"remote", Mode::Ex, LockFlags::EMPTY, None)
            .unwrap();
        lat.push(t.elapsed());
        spaces[0].unlock_wait(g.id, LockFlags::EMPTY, None).unwrap();
        rtt.push(ping.once());
    }
    // And a block of round trips alone after the locks (the cluster idle but
    // running), as earlier runs measured it.
    let mut alone: Vec<Duration> = (0..n).map(|_| ping.once()).collect();
    drop(ping);
    spaces[1]
        .unlock_wait(keep.id, LockFlags::EMPTY, None)
        .unwrap();
    let (p50, p99) = (percentile(&mut lat, 0.5), percentile(&mut lat, 0.99));
    let (r50, r99) = (percentile(&mut rtt, 0.5), percentile(&mut rtt, 0.99));
    let a50 = percentile(&mut alone, 0.5);
    println!(
        "remote master (node 2, the first to ask): lock latency \
         p50 {:.1} µs p99 {:.1} µs; UDP round trip (alternating with the locks) p50 {:.1} µs \
         p99 {:.1} µs, p50 ratio {:.2}; UDP round trip after the locks p50 {:.1} µs, ratio {:.2}",
        p50.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6,
        r50.as_secs_f64() * 1e6,
        r99.as_secs_f64() * 1e6,
        p50.as_secs_f64() / r50.as_secs_f64(),
        a50.as_secs_f64() * 1e6,
        p50.as_secs_f64() / a50.as_secs_f64(),
    );
}

/// What a remote lock's latency is made of: the same cluster's agreed CPG round
/// trip between nodes 1 and 2 (the path a DLM `Request` and its `Ast` take:
/// one agreed message each way, a member thread echoing), and a lock mastered on
/// node 1 itself (the handle's thread hops, no message).
fn remote_parts(nodes: &[Node], spaces: &[phalanx::node::Lockspace], n: usize) {
    use phalanx::cpg::{CpgEvent, Guarantee};
    let a = nodes[0].cpg().member().unwrap();
    let b = nodes[1].cpg().member().unwrap();
    a.join(b"ping").unwrap();
    b.join(b"ping").unwrap();
    let both = |m: &phalanx::node::CpgMember| loop {
        match m.events().recv_timeout(Duration::from_secs(20)).unwrap() {
            CpgEvent::Change(c) if c.members.len() == 2 => break,
            _ => {}
        }
    };
    both(&a);
    both(&b);
    let (a_id, b_id) = (a.id(), b.id());
    let echo = std::thread::spawn(move || {
        let mut echoed = 0;
        while echoed < n {
            if let CpgEvent::Deliver(m) = b.events().recv().unwrap()
                && m.sender == a_id
            {
                b.mcast(b"ping", Guarantee::Agreed, &m.data).unwrap();
                echoed += 1;
            }
        }
        b
    });
    let mut rtt = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        a.mcast(b"ping", Guarantee::Agreed, &(i as u64).to_be_bytes())
            .unwrap();
        loop {
            if let CpgEvent::Deliver(m) = a.events().recv().unwrap()
                && m.sender == b_id
            {
                break;
            }
        }
        rtt.push(t.elapsed());
    }
    let b = echo.join().unwrap();
    let _ = a.leave(b"ping");
    let _ = b.leave(b"ping");
    let (c50, c99) = (percentile(&mut rtt, 0.5), percentile(&mut rtt, 0.99));

    // Node 1 masters "mine" (it asks first; its NL lock keeps it mastered).
    let keep = spaces[0]
        .lock_wait(b"mine", Mode::Nl, LockFlags::EMPTY, None)
        .unwrap();
    let mut local = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let g = spaces[0]
            .lock_wait(b"mine", Mode::Ex, LockFlags::EMPTY, None)
            .unwrap();
        local.push(t.elapsed());
        spaces[0].unlock_wait(g.id, LockFlags::EMPTY, None).unwrap();
    }
    spaces[0]
        .unlock_wait(keep.id, LockFlags::EMPTY, None)
        .unwrap();
    let (l50, l99) = (percentile(&mut local, 0.5), percentile(&mut local, 0.99));
    println!(
        "  parts: agreed CPG round trip node 1 → 2 → 1 p50 {:.1} µs p99 {:.1} µs; \
         lock_wait on a resource mastered locally (3-node cluster) p50 {:.1} µs p99 {:.1} µs",
        c50.as_secs_f64() * 1e6,
        c99.as_secs_f64() * 1e6,
        l50.as_secs_f64() * 1e6,
        l99.as_secs_f64() * 1e6
    );
}

/// Who had the bounced lock last, shared by the bounce threads.
#[derive(Default)]
struct Baton {
    /// The index of the node whose thread was granted the lock last.
    last: Mutex<Option<usize>>,
    /// Signalled when `last` changes or the run stops.
    changed: Condvar,
    /// Set (under `last`'s mutex) to end the run.
    stop: AtomicBool,
    /// Grants to a node other than the previous holder's, cluster-wide.
    hand_overs: AtomicU64,
    /// Grants to the previous holder's node (the workload makes these 0).
    same_node: AtomicU64,
    /// Set while a thread holds the lock: two holders at once is a failure.
    held: AtomicBool,
}

/// One thread per node takes EX on one resource, does nothing, releases it and
/// then waits until another node has had it (so no node re-locks its own
/// release: the master node's thread would otherwise re-lock on the caller's
/// thread in about a microsecond and take most grants). Counts **hand-overs**:
/// grants to a node other than the previous holder's. Exclusion is checked on
/// the way (a second holder at once panics).
fn bounce(spaces: &[phalanx::node::Lockspace], secs: u64, basts: bool) {
    let baton = Arc::new(Baton::default());
    let threads: Vec<_> = spaces
        .iter()
        .cloned()
        .enumerate()
        .map(|(me, ls)| {
            let baton = baton.clone();
            std::thread::spawn(move || {
                let mut mine = 0u64;
                loop {
                    {
                        let mut last = baton.last.lock().unwrap();
                        while *last == Some(me) && !baton.stop.load(Ordering::Relaxed) {
                            last = baton.changed.wait(last).unwrap();
                        }
                        if baton.stop.load(Ordering::Relaxed) {
                            return mine;
                        }
                    }
                    let mut call = LockCall::new(&b"hot"[..], Mode::Ex);
                    call.bast = basts;
                    let g = ls.lock_wait_with(call).unwrap();
                    assert!(
                        !baton.held.swap(true, Ordering::SeqCst),
                        "two EX holders at once"
                    );
                    {
                        let mut last = baton.last.lock().unwrap();
                        if *last == Some(me) {
                            baton.same_node.fetch_add(1, Ordering::Relaxed);
                        } else {
                            baton.hand_overs.fetch_add(1, Ordering::Relaxed);
                            mine += 1;
                        }
                        *last = Some(me);
                    }
                    baton.changed.notify_all();
                    baton.held.store(false, Ordering::SeqCst);
                    ls.unlock_wait(g.id, LockFlags::EMPTY, None).unwrap();
                }
            })
        })
        .collect();
    // The first grant includes the lookup that makes the master: count from it.
    {
        let mut last = baton.last.lock().unwrap();
        while last.is_none() {
            last = baton.changed.wait(last).unwrap();
        }
    }
    let (t0, h0) = (Instant::now(), baton.hand_overs.load(Ordering::Relaxed));
    std::thread::sleep(Duration::from_secs(secs));
    let (elapsed, h1) = (t0.elapsed(), baton.hand_overs.load(Ordering::Relaxed));
    {
        let _last = baton.last.lock().unwrap();
        baton.stop.store(true, Ordering::Relaxed);
    }
    baton.changed.notify_all();
    let per: Vec<u64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    println!(
        "bounce EX between 3 nodes, locks {} BASTs: {:.0} hand-overs/s between nodes \
         (per node {per:?}, re-grants to the previous holder's node {})",
        if basts { "with" } else { "without" },
        (h1 - h0) as f64 / elapsed.as_secs_f64(),
        baton.same_node.load(Ordering::Relaxed),
    );
}

fn main() {
    let a = args();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at start: {}", load.trim());

    if a.runs("core") {
        let core = core_pairs(a.pairs, 0);
        println!(
            "core: {} uncontended lock+unlock pairs (local master, one thread): {:.0} pairs/s",
            a.pairs, core
        );
        let held = 100_000;
        let core = core_pairs(a.pairs / 4, held);
        println!(
            "core, {held} other locks held: {} pairs: {:.0} pairs/s",
            a.pairs / 4,
            core
        );
    }
    if a.runs("handle") {
        let local = handle_local(a.pairs.min(1_000_000));
        println!("handle, one node: lock_wait+unlock_wait {local:.0} pairs/s");
    }
    for direct in a.paths.iter().copied() {
        if !(a.runs("remote") || a.runs("bounce") || a.runs("bounce-ast")) {
            break;
        }
        println!(
            "--- lock traffic {}, drivers spin {} µs before parking, {} µs for a peer's answer",
            if direct {
                "point-to-point over the links (DlmSetup::direct)"
            } else {
                "as agreed CPG messages (default)"
            },
            a.driver_spin_us,
            a.answer_spin_us
        );
        let nodes = start(
            3,
            direct,
            Duration::from_micros(a.driver_spin_us),
            Duration::from_micros(a.answer_spin_us),
        );
        let spaces: Vec<_> = nodes
            .iter()
            .map(|n| n.dlm().lockspace("bench").unwrap())
            .collect();
        all_joined(&nodes, 3);
        if a.runs("remote") {
            remote(&spaces, a.remote);
            remote_parts(&nodes, &spaces, a.remote);
        }
        if a.runs("bounce") {
            bounce(&spaces, a.bounce_secs, a.bounce_basts);
        }
        if a.runs("bounce-ast") {
            bounce_ast::run(&spaces, a.bounce_secs);
        }
        for s in spaces {
            let _ = s.leave();
        }
        for n in nodes {
            n.leave().unwrap();
        }
    }
    if a.runs("recovery-core") && a.recovery > 0 {
        core_recovery::run(a.recovery);
    }
    if a.runs("recovery") && a.recovery > 0 {
        recovery::run(a.recovery);
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at end: {}", load.trim());
}
