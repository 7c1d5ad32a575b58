//! ns per record written, 1 and 2 threads, for the discard, memory and file-backed
//! recorders. Run: `cargo bench -p phalanx-logsys --bench record`.
//!
//! Each thread writes `N` records `record!(log, i, node, Debug, "totem",
//! "token seq {} aru {}", i, 42u64)` (a ~100-byte frame); the figure is the wall time
//! divided by the records each thread wrote (so, per thread, the cost of one record),
//! best of `RUNS`.

use phalanx_logsys::{Logger, record};
use std::hint::black_box;
use std::time::Instant;

const N: u64 = 2_000_000;
const RUNS: usize = 5;

fn write_n(log: &Logger, node: u32) {
    for i in 0..N {
        record!(
            log,
            black_box(i),
            node,
            Debug,
            "totem",
            "token seq {} aru {}",
            i,
            42u64
        );
    }
}

/// Best ns per record per thread with `threads` writers.
fn measure(log: &Logger, threads: u32) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..RUNS {
        let start = Instant::now();
        std::thread::scope(|s| {
            for t in 0..threads {
                s.spawn(move || write_n(log, t));
            }
        });
        best = best.min(start.elapsed().as_nanos() as f64 / N as f64);
    }
    best
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs us with no args: keep
    // that quick.
    if !std::env::args().any(|a| a == "--bench") {
        let log = Logger::memory(1 << 16);
        record!(
            log,
            1,
            1,
            Debug,
            "totem",
            "token seq {} aru {}",
            1u64,
            42u64
        );
        assert_eq!(log.records().len(), 1);
        return;
    }
    let path = std::env::temp_dir().join(format!("phalanx-bench-{}", std::process::id()));
    let file = Logger::file(&path, 8 << 20).expect("create recorder file");
    let probe = Logger::memory(1 << 16);
    record!(
        probe,
        1,
        1,
        Debug,
        "totem",
        "token seq {} aru {}",
        1u64,
        42u64
    );
    let frame = probe.snapshot().map_or(0, |s| s.valid_end);
    let cases: [(&str, Logger); 3] = [
        ("discard", Logger::discard()),
        ("memory 8 MiB", Logger::memory(8 << 20)),
        ("file 8 MiB (mmap)", file),
    ];
    println!("frame size: {frame} bytes; {N} records per thread, best of {RUNS}");
    println!("{:<20} {:>14} {:>14}", "recorder", "1 thread", "2 threads");
    for (name, log) in &cases {
        let one = measure(log, 1);
        let two = measure(log, 2);
        println!("{name:<20} {one:>11.1} ns {two:>11.1} ns");
    }
    // Reading is off the hot path; shown for scale.
    let log = &cases[2].1;
    let start = Instant::now();
    let n = log.records().len();
    let per = start.elapsed().as_nanos() as f64 / n.max(1) as f64;
    println!("read+format {n} records of the file ring: {per:.1} ns/record");
    // The simulator creates one memory ring per node per run.
    let start = Instant::now();
    for _ in 0..1_000 {
        black_box(Logger::memory(1 << 20));
    }
    let per = start.elapsed().as_nanos() as f64 / 1_000.0 / 1_000.0;
    println!("Logger::memory(1 MiB) create + drop: {per:.1} us");
    let _ = std::fs::remove_file(&path);
}
