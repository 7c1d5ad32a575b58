//! The demo: a real 3-process Phalanx cluster on loopback (UDP, crypto on).
//!
//! `cargo run --release --example cluster`
//!
//! Starts three node processes from `examples/conf/demo-3node.conf` (generating the
//! cluster key in /tmp/phalanx-demo if needed), lets each multicast a stream of
//! messages, kills one with SIGKILL, restarts it, and finally checks that every node
//! delivered the same messages of the final ring in the same order.

use phalanx::config;
use phalanx::node::{Node, NodeEvent, NodeOptions};
use phalanx::totem::{ConfigKind, Guarantee};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const CONF: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/conf/demo-3node.conf");

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--node") {
        return child(args[i + 1].parse().expect("node id"));
    }
    parent();
}

// ---- a node process ----

/// Runs one node: sends a numbered message every 5 ms while told to, prints
/// configurations, and on "report" prints how many messages it delivered in its
/// current ring and an order hash over them.
fn child(id: u32) {
    let cfg = config::load(CONF).expect("demo config").config;
    let opts = NodeOptions::from_config(&cfg, id).expect("node options");
    let node = Node::start(opts).expect("node starts");
    let h = node.handle();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::stdin().lock().lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
        let _ = tx.send("exit".into());
    });
    let mut out = std::io::stdout().lock();
    let (mut seq, mut sending, mut next) = (0u64, true, Instant::now());
    let (mut count, mut hash) = (0u64, 0xcbf2_9ce4_8422_2325u64);
    loop {
        match rx.try_recv().as_deref() {
            Ok("stop") => sending = false,
            Ok("report") => writeln!(out, "REPORT {count} {hash:016x}").unwrap(),
            Ok("exit") => break,
            _ => {}
        }
        if sending && h.is_operational() && Instant::now() >= next {
            next += Duration::from_millis(5);
            if h.mcast(Guarantee::Agreed, &seq.to_le_bytes()).is_ok() {
                seq += 1;
            }
        }
        while let Ok(ev) = node.events().recv_timeout(Duration::from_millis(1)) {
            match ev {
                NodeEvent::Config(c, _) if c.kind == ConfigKind::Regular => {
                    (count, hash) = (0, 0xcbf2_9ce4_8422_2325);
                    writeln!(out, "RING {} {:?}", c.ring, c.members).unwrap();
                }
                NodeEvent::Config(..) => {}
                NodeEvent::Deliver(d) => {
                    count += 1;
                    for b in d.sender.to_le_bytes().iter().chain(d.data.iter()) {
                        hash = (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
                    }
                }
                _ => {}
            }
        }
        out.flush().unwrap();
    }
    drop(out);
    node.leave().expect("clean leave");
}

// ---- the orchestrator ----

struct Demo {
    t0: Instant,
    procs: BTreeMap<u32, Child>,
    lines: mpsc::Receiver<(u32, String)>,
    tx: mpsc::Sender<(u32, String)>,
    rings: BTreeMap<u32, String>,
}

impl Demo {
    fn say(&self, s: &str) {
        println!("[{:6.2}s] {s}", self.t0.elapsed().as_secs_f64());
    }

    fn spawn(&mut self, id: u32) {
        let mut c = Command::new(std::env::current_exe().unwrap())
            .args(["--node", &id.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn node");
        let out = c.stdout.take().unwrap();
        let tx = self.tx.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send((id, l));
            }
        });
        self.say(&format!("started node {id} (pid {})", c.id()));
        self.procs.insert(id, c);
    }

    fn tell(&mut self, id: u32, cmd: &str) {
        let stdin = self.procs.get_mut(&id).unwrap().stdin.as_mut().unwrap();
        writeln!(stdin, "{cmd}").unwrap();
        stdin.flush().unwrap();
    }

    /// Reads node output until every listed node is in a ring of exactly them.
    fn until_ring(&mut self, ids: &[u32]) -> Duration {
        let start = Instant::now();
        let want = format!("{ids:?}");
        while !ids
            .iter()
            .all(|i| self.rings.get(i).is_some_and(|r| r.ends_with(&want)))
        {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "no ring {want} after 20 s: {:?}",
                self.rings
            );
            if let Ok((id, l)) = self.lines.recv_timeout(Duration::from_millis(50)) {
                if let Some(r) = l.strip_prefix("RING ") {
                    self.say(&format!("node {id} installed ring {r}"));
                    self.rings.insert(id, r.to_string());
                }
            }
        }
        start.elapsed()
    }
}

fn parent() {
    std::fs::create_dir_all("/tmp/phalanx-demo").unwrap();
    if !std::path::Path::new("/tmp/phalanx-demo/authkey").exists() {
        phalanx::crypto::generate_key_file("/tmp/phalanx-demo/authkey", false).unwrap();
    }
    println!("Phalanx demo: three node processes on 127.0.0.1:5405/5415/5425, UDP, AES-256-GCM");
    println!("config: {CONF}\n");
    let (tx, lines) = mpsc::channel();
    let mut d = Demo {
        t0: Instant::now(),
        procs: BTreeMap::new(),
        lines,
        tx,
        rings: BTreeMap::new(),
    };
    for id in 1..=3 {
        d.spawn(id);
    }
    let t = d.until_ring(&[1, 2, 3]);
    d.say(&format!(
        "cluster formed in {t:?}; every node multicasts 200 messages/s"
    ));
    std::thread::sleep(Duration::from_secs(1));

    d.say("kill -9 node 3");
    let mut victim = d.procs.remove(&3).unwrap();
    victim.kill().unwrap();
    victim.wait().unwrap();
    d.rings.remove(&3);
    let t = d.until_ring(&[1, 2]);
    d.say(&format!(
        "survivors installed the new configuration {:.0} ms after the kill",
        t.as_secs_f64() * 1e3
    ));

    d.spawn(3);
    let t = d.until_ring(&[1, 2, 3]);
    d.say(&format!(
        "node 3 rejoined {:.0} ms after starting",
        t.as_secs_f64() * 1e3
    ));
    std::thread::sleep(Duration::from_secs(1));

    for id in 1..=3 {
        d.tell(id, "stop");
    }
    // Ask until the reports agree (messages still in flight make them differ for
    // a moment), for at most 5 s.
    let asked = Instant::now();
    let reports = loop {
        for id in 1..=3 {
            d.tell(id, "report");
        }
        let mut reports = BTreeMap::new();
        while reports.len() < 3 {
            let (id, l) = d
                .lines
                .recv_timeout(Duration::from_secs(10))
                .expect("report");
            if let Some(r) = l.strip_prefix("REPORT ") {
                reports.insert(id, r.to_string());
            }
        }
        if reports.values().all(|r| r == &reports[&1]) || asked.elapsed() > Duration::from_secs(5) {
            break reports;
        }
    };
    println!();
    for (id, r) in &reports {
        let (n, h) = r.split_once(' ').unwrap();
        println!("node {id}: delivered {n} messages in the final ring, order hash {h}");
    }
    let same = reports.values().all(|r| r == &reports[&1]);
    println!(
        "\n{}",
        if same {
            "all nodes delivered the same messages in the same order"
        } else {
            "MISMATCH: the nodes disagree"
        }
    );
    for id in 1..=3 {
        d.tell(id, "exit");
    }
    for (_, mut c) in std::mem::take(&mut d.procs) {
        let _ = c.wait();
    }
    if !same {
        std::process::exit(1);
    }
}
