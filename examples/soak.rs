//! Soak: N node processes on loopback, every one flooding as fast as flow control
//! allows, for a given time; reports every configuration change after the first
//! ring formed (there should be none) and the delivery rate.
//!
//! `cargo run --release --example soak -- [--nodes 3] [--secs 600] [--size 1024] [--crypto on|off] [--rt on|off]`
//!
//! `--rt on` runs each node's driver thread under SCHED_RR (`NodeOptions::realtime_priority`).

use phalanx::node::{CryptoOptions, Node, NodeEvent, NodeOptions, NodeStats};
use phalanx::totem::{Config, ConfigKind, Guarantee};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn arg(name: &str, default: &str) -> String {
    let a: Vec<String> = std::env::args().collect();
    a.iter()
        .position(|x| x == name)
        .and_then(|i| a.get(i + 1))
        .cloned()
        .unwrap_or(default.to_string())
}

fn main() {
    if std::env::args().any(|a| a == "--child") {
        return child();
    }
    let nodes: u32 = arg("--nodes", "3").parse().unwrap();
    let secs: u64 = arg("--secs", "600").parse().unwrap();
    let socks: Vec<UdpSocket> = (0..nodes)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    let spec: Vec<String> = socks
        .iter()
        .enumerate()
        .map(|(i, s)| format!("{}={}", i + 1, s.local_addr().unwrap()))
        .collect();
    drop(socks);
    let (tx, rx) = std::sync::mpsc::channel();
    let mut kids = Vec::new();
    for id in 1..=nodes {
        let mut c = Command::new(std::env::current_exe().unwrap())
            .args([
                "--child",
                "--id",
                &id.to_string(),
                "--addrs",
                &spec.join(","),
                "--secs",
                &secs.to_string(),
            ])
            .args([
                "--size",
                &arg("--size", "1024"),
                "--crypto",
                &arg("--crypto", "on"),
                "--rt",
                &arg("--rt", "off"),
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = c.stdout.take().unwrap();
        let tx = tx.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send((id, l));
            }
        });
        kids.push(c);
    }
    drop(tx);
    println!("soak: {nodes} processes flooding for {secs} s");
    for (id, line) in rx {
        println!("node {id}: {line}");
    }
    let mut ok = true;
    for mut k in kids {
        ok &= k.wait().map(|s| s.success()).unwrap_or(false);
    }
    if !ok {
        std::process::exit(1);
    }
}

fn child() {
    let id: u32 = arg("--id", "1").parse().unwrap();
    let secs: u64 = arg("--secs", "600").parse().unwrap();
    let size: usize = arg("--size", "1024").parse().unwrap();
    let addrs: BTreeMap<u32, SocketAddr> = arg("--addrs", "")
        .split(',')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.parse().unwrap(), v.parse().unwrap())
        })
        .collect();
    let n = addrs.len();
    let mut o = NodeOptions::new(Config::new(id, addrs.keys().copied().collect()), addrs);
    if arg("--crypto", "on") == "on" {
        o.crypto = Some(CryptoOptions {
            key: vec![0x42; 256],
            cluster_name: "soak".into(),
            cipher: Default::default(),
        });
    }
    if arg("--rt", "off") == "on" {
        o.realtime_priority = Some(50);
    }
    let node = Node::start(o).unwrap();
    let h = node.handle();
    let mut out = std::io::stdout();
    // Start barrier: a ring of everyone.
    loop {
        if let Ok(NodeEvent::Config(c, _)) = node.events().recv() {
            if c.kind == ConfigKind::Regular && c.members.len() == n {
                break;
            }
        }
    }
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let payload = vec![id as u8; size];
    let (mut delivered, mut changes, mut tryagain, mut last_report) =
        (0u64, 0u64, 0u64, Instant::now());
    while Instant::now() < end {
        // Keep the send queue full.
        for _ in 0..64 {
            match h.mcast(Guarantee::Agreed, &payload) {
                Ok(()) => {}
                Err(_) => {
                    tryagain += 1;
                    break;
                }
            }
        }
        while let Ok(ev) = node.events().try_recv() {
            match ev {
                NodeEvent::Deliver(_) => delivered += 1,
                NodeEvent::Config(c, _) => {
                    changes += 1;
                    writeln!(
                        out,
                        "CONFIGURATION CHANGE at {:.3}s: {:?} {} {:?}",
                        start.elapsed().as_secs_f64(),
                        c.kind,
                        c.ring,
                        c.members
                    )
                    .unwrap();
                }
                _ => {}
            }
        }
        if last_report.elapsed() >= Duration::from_secs(60) {
            last_report = Instant::now();
            let d = h.stats().driver;
            writeln!(
                out,
                "{:4.0}s delivered {delivered} ({:.0}/s) changes {changes} max loop stall {:?}",
                start.elapsed().as_secs_f64(),
                delivered as f64 / start.elapsed().as_secs_f64(),
                d.max_busy
            )
            .unwrap();
        }
        std::thread::yield_now();
    }
    let NodeStats {
        totem: s,
        driver: d,
        ..
    } = h.stats();
    writeln!(
        out,
        "done: {:.0} s, delivered {delivered} ({:.0} msgs/s, {:.1} MB/s), configuration changes {changes}, token losses {}, token retransmits {}, tryagain {tryagain}, max loop stall {:?}",
        start.elapsed().as_secs_f64(),
        delivered as f64 / start.elapsed().as_secs_f64(),
        delivered as f64 * size as f64 / start.elapsed().as_secs_f64() / 1e6,
        s.token_losses,
        s.token_retransmits,
        d.max_busy
    )
    .unwrap();
    // Leave only once every node has stopped counting (their ends differ by the
    // few milliseconds between their start barriers).
    let grace = Instant::now() + Duration::from_secs(2);
    while Instant::now() < grace {
        let _ = node.events().recv_timeout(Duration::from_millis(10));
    }
    drop(node);
}
