//! Core benchmark: messages ordered through an in-memory N-node ring (no sockets,
//! no copies to the kernel). This is the ceiling the network driver approaches.
//!
//! `cargo bench --bench core_ring` (release). One node floods; the figure is the
//! rate at which the *slowest* node delivers, all nodes running on one thread.

use phalanx_totem::testing::MemNet;
use phalanx_totem::{Config, Guarantee, SendError};
use std::time::Instant;

fn run(
    nodes: usize,
    size: usize,
    guarantee: Guarantee,
    max_frame: usize,
    total_bytes: usize,
) -> (f64, f64) {
    let mut net = MemNet::new(nodes, |id, ids| {
        let mut c = Config::new(id, ids);
        c.max_frame = max_frame;
        c
    });
    assert!(net.run_until_formed(1_000_000), "ring did not form");
    let count = (total_bytes / size).max(1000) as u64;
    let payload = vec![0xA5u8; size];
    let start = Instant::now();
    let mut sent = 0u64;
    while net.delivered.iter().any(|d| *d < count) {
        while sent < count {
            match net.nodes[0].mcast(net.now, guarantee, &payload) {
                Ok(()) => sent += 1,
                Err(SendError::TryAgain) => break,
                Err(e) => panic!("{e}"),
            }
        }
        if !net.step() {
            break;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    assert!(
        net.delivered.iter().all(|d| *d == count),
        "lost messages: {:?}",
        net.delivered
    );
    let rate = count as f64 / secs;
    (rate, rate * size as f64 / 1e6)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let total = if quick { 8 << 20 } else { 64 << 20 };
    println!("| nodes | size B | guarantee | frame B | msgs/s | MB/s |");
    println!("|---:|---:|---|---:|---:|---:|");
    for nodes in [3, 5] {
        for size in [64usize, 1024, 16384] {
            for guarantee in [Guarantee::Agreed, Guarantee::Safe] {
                for frame in [1400usize, 65000] {
                    let (msgs, mb) = run(nodes, size, guarantee, frame, total);
                    let g = if guarantee == Guarantee::Safe {
                        "safe"
                    } else {
                        "agreed"
                    };
                    println!("| {nodes} | {size} | {g} | {frame} | {msgs:.0} | {mb:.1} |");
                }
            }
        }
    }
}
