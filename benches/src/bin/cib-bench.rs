//! `cib-bench` — replicated CIB modifications: three nodes in this process on
//! loopback, each with its CIB files in a temporary state directory (written with
//! fsync as in production), a CIB of a chosen size, and small nvpair changes sent
//! through node 1's `Cib` handle by `--clients` threads. Prints operations per
//! second and the latency (request until applied on every node and answered).
//!
//! ```text
//! cargo run --release -p phalanx-bench --bin cib-bench -- --size-kb 1024 --ops 2000 --clients 4
//! ```

use phalanx::cib::ops::{CallOptions, CibOp, Scope};
use phalanx::cib::xml::{Element, parse};
use phalanx::node::{Node, NodeOptions};
use phalanx::totem::Config;
use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

struct Args {
    size_kb: usize,
    ops: usize,
    clients: usize,
}

fn args() -> Args {
    let mut a = Args {
        size_kb: 1024,
        ops: 2000,
        clients: 4,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i + 1 < v.len() {
        let n: usize = v[i + 1].parse().expect("a number");
        match v[i].as_str() {
            "--size-kb" => a.size_kb = n,
            "--ops" => a.ops = n,
            "--clients" => a.clients = n.max(1),
            other => panic!("unknown option {other}"),
        }
        i += 2;
    }
    a
}

/// A CIB of about `kb` KiB: primitives with a few nvpairs each, plus the
/// property set the benchmark changes.
fn big_cib(kb: usize) -> Element {
    let mut res = String::new();
    let mut i = 0;
    while res.len() < kb * 1024 {
        res += &format!(
            r#"<primitive id="r{i}" class="ocf" provider="heartbeat" type="Dummy"><instance_attributes id="r{i}-ia"><nvpair id="r{i}-a" name="a" value="{i}"/><nvpair id="r{i}-b" name="state" value="/run/r{i}"/></instance_attributes><operations><op id="r{i}-mon" name="monitor" interval="10s"/></operations></primitive>"#
        );
        i += 1;
    }
    let xml = format!(
        r#"<cib crm_feature_set="3.16.1" validate-with="pacemaker-3.9" admin_epoch="1" epoch="1" num_updates="0"><configuration><crm_config><cluster_property_set id="cps"><nvpair id="bench" name="bench" value="0"/></cluster_property_set></crm_config><nodes/><resources>{res}</resources><constraints/></configuration><status/></cib>"#
    );
    parse(&xml).expect("generated CIB parses")
}

fn main() {
    let a = args();
    let ids = vec![1u32, 2, 3];
    let socks: Vec<UdpSocket> = ids
        .iter()
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    let addrs: BTreeMap<u32, SocketAddr> = ids
        .iter()
        .zip(&socks)
        .map(|(&id, s)| (id, s.local_addr().unwrap()))
        .collect();
    drop(socks);
    // $TMPDIR if set (put it on a real disk to include fsync costs), else /tmp.
    let dir = std::env::temp_dir().join(format!("phalanx-cib-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let nodes: Vec<Node> = ids
        .iter()
        .map(|&id| {
            let mut o = NodeOptions::new(Config::new(id, ids.clone()), addrs.clone());
            o.cib = true;
            o.state_dir = Some(dir.clone());
            Node::start(o).expect("node starts")
        })
        .collect();
    let cib = nodes[0].cib();
    let t0 = Instant::now();
    let input = big_cib(a.size_kb);
    cib.request(CibOp::Replace {
        scope: Scope::Whole,
        input,
        digest: None,
        options: CallOptions::default(),
    })
    .expect("replace with the big CIB");
    println!(
        "loaded a {} KiB CIB on 3 nodes in {:?}",
        a.size_kb,
        t0.elapsed()
    );
    let per_client = a.ops / a.clients;
    let start = Instant::now();
    let mut lat: Vec<Duration> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..a.clients)
            .map(|c| {
                let cib = nodes[0].cib();
                s.spawn(move || {
                    let mut lat = Vec::with_capacity(per_client);
                    for k in 0..per_client {
                        let xml = format!(
                            r#"<cluster_property_set id="cps"><nvpair id="bench-{c}" name="bench-{c}" value="{k}"/></cluster_property_set>"#
                        );
                        let op = CibOp::Modify {
                            scope: Scope::Section("crm_config".into()),
                            input: parse(&xml).unwrap(),
                            options: CallOptions::default(),
                        };
                        let t = Instant::now();
                        cib.request(op).expect("modify");
                        lat.push(t.elapsed());
                    }
                    lat
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let wall = start.elapsed();
    lat.sort_unstable();
    let q = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize];
    let n = lat.len();
    println!(
        "{} KiB CIB, {} clients: {n} modifies in {:.2} s = {:.0} ops/s; latency p50 {:.2} ms, p99 {:.2} ms",
        a.size_kb,
        a.clients,
        wall.as_secs_f64(),
        n as f64 / wall.as_secs_f64(),
        q(0.5).as_secs_f64() * 1e3,
        q(0.99).as_secs_f64() * 1e3
    );
    // The others apply the last change a moment after node 1 answered it.
    let digests = || -> Vec<String> {
        nodes
            .iter()
            .map(|n| n.cib().status().map(|s| s.digest).unwrap_or_default())
            .collect()
    };
    let until = Instant::now() + Duration::from_secs(10);
    while !digests().windows(2).all(|w| w[0] == w[1]) {
        assert!(Instant::now() < until, "copies differ: {:?}", digests());
        std::thread::sleep(Duration::from_millis(10));
    }
    for node in nodes {
        let _ = node.leave();
    }
    let _ = std::fs::remove_dir_all(&dir);
}
