//! Datagram encryption cost: one `seal` plus one `open` per datagram, both ciphers,
//! 64 B / 1 KiB / 16 KiB / 64 KiB plaintexts.
//!
//! Run: `cargo bench -p phalanx-totem --bench crypto` (release profile). Prints, per
//! cipher and size, the best of 5 rounds: ns per seal+open, and MB/s of plaintext
//! (10⁶ bytes per second, through both operations).

use std::hint::black_box;
use std::time::Instant;

use phalanx::crypto::{Cipher, DatagramCrypto};

fn main() {
    let key = [0x42u8; 256];
    let nodes = [1, 2];
    println!(
        "{:<18} {:>8} {:>12} {:>10}",
        "cipher", "size", "ns/seal+open", "MB/s"
    );
    for cipher in Cipher::ALL {
        for size in [64usize, 1024, 16 * 1024, 64 * 1024] {
            let mut tx = DatagramCrypto::new(&key, "bench", 1, &nodes, cipher, 1).unwrap();
            let mut rx = DatagramCrypto::new(&key, "bench", 2, &nodes, cipher, 2).unwrap();
            let msg = vec![0xabu8; size];
            let mut wire = Vec::with_capacity(size + DatagramCrypto::overhead());
            let mut scratch = Vec::with_capacity(size);
            // About 200 MB of plaintext per round, at least 20k iterations.
            let iters = (200_000_000 / size).max(20_000);
            let mut best = f64::INFINITY;
            for _ in 0..5 {
                let t = Instant::now();
                for _ in 0..iters {
                    wire.clear();
                    tx.seal(black_box(&msg), &mut wire).unwrap();
                    let (from, p) = rx.open(black_box(&wire), &mut scratch).unwrap();
                    black_box((from, p.len()));
                }
                let ns = t.elapsed().as_nanos() as f64 / iters as f64;
                best = best.min(ns);
            }
            let label = if size >= 1024 {
                format!("{} KiB", size / 1024)
            } else {
                format!("{size} B")
            };
            println!(
                "{:<18} {:>8} {:>12.0} {:>10.0}",
                cipher.name(),
                label,
                best,
                size as f64 / best * 1e3
            );
            assert_eq!(rx.stats().ok, 5 * iters as u64);
        }
    }
}
