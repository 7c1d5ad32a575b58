//! Many seeds across threads (swarm), and single-seed replay with full traces.
//!
//! Each seed runs single-threaded and deterministically; threads only share a counter
//! of which seed is next. The node count is drawn from the seed by
//! [`nodes_for_seed`], in swarm and replay alike, so `replay <seed>` reproduces a
//! swarm failure exactly.

use crate::engine::{RunReport, Sim, SimOptions};
use crate::node::NodeFactory;
use crate::rng::{Rng, mix};
use std::io::Write;
use std::ops::RangeInclusive;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Upper bound on nodes per run (paths are an n×n table).
pub const MAX_NODES: usize = 64;

/// The node count seed `seed` runs with, drawn within `nodes` (clamped to
/// `1..=MAX_NODES`; an empty range means its start).
pub fn nodes_for_seed(seed: u64, nodes: &RangeInclusive<usize>) -> usize {
    let lo = (*nodes.start()).clamp(1, MAX_NODES);
    let hi = (*nodes.end()).clamp(lo, MAX_NODES);
    // A stream of its own, so the node count never shifts the run's other draws.
    Rng::new(mix(&[seed, 0x006e_6f64_6573])).gen_range(lo as u64..=hi as u64) as usize
}

/// The options seed `seed` runs with in swarm and replay.
pub fn options_for_seed(seed: u64, nodes: &RangeInclusive<usize>) -> SimOptions {
    SimOptions::new(nodes_for_seed(seed, nodes), seed)
}

/// What a swarm found.
#[derive(Clone, Debug, PartialEq)]
pub struct SwarmSummary {
    /// Seeds run.
    pub seeds: u64,
    /// Seeds with at least one violation (or a panic), ascending.
    pub violating_seeds: Vec<u64>,
    /// Wall-clock time taken.
    pub elapsed: Duration,
    /// Throughput.
    pub seeds_per_sec: f64,
}

/// Runs one seed, turning a panic inside the node under test into a violation.
fn run_caught(opts: SimOptions, factory: &mut dyn NodeFactory) -> Result<RunReport, String> {
    catch_unwind(AssertUnwindSafe(|| Sim::new(opts, factory).run())).map_err(|e| {
        e.downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| e.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_string())
    })
}

/// Runs seeds `start, start+1, ...` (`count` of them, wrapping) over `jobs` threads,
/// printing each violation as `violation seed=<seed> nodes=<n> property=<p>: <detail>`
/// when found and finally `swarm: <N> seeds, <V> violations, <R> seeds/s`, where V
/// counts violating seeds.
pub fn run_swarm<F: NodeFactory>(
    start: u64,
    count: u64,
    nodes: RangeInclusive<usize>,
    jobs: usize,
    make_factory: impl Fn() -> F + Sync,
) -> SwarmSummary {
    let began = Instant::now();
    let next = AtomicU64::new(0);
    let bad = Mutex::new(Vec::new());
    let jobs = jobs
        .clamp(1, 1024)
        .min(usize::try_from(count).unwrap_or(usize::MAX).max(1));
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                let mut factory = make_factory();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    let seed = start.wrapping_add(i);
                    let opts = options_for_seed(seed, &nodes);
                    let n = opts.nodes;
                    let lines: Vec<String> = match run_caught(opts, &mut factory) {
                        Ok(report) if report.violations.is_empty() => Vec::new(),
                        Ok(report) => {
                            let mut lines: Vec<String> = report
                                .violations
                                .iter()
                                .map(|v| {
                                    format!(
                                        "violation seed={seed} nodes={n} property={}: {}",
                                        v.property, v.detail
                                    )
                                })
                                .collect();
                            // The same seed again with flight recorders on: every
                            // node's records, merged on virtual time.
                            let mut opts = options_for_seed(seed, &nodes);
                            opts.flight_recorder_bytes = 1 << 20;
                            if let Ok(again) = run_caught(opts, &mut factory) {
                                lines.push(format!(
                                    "flight records of seed {seed} (replay {seed} for the trace):"
                                ));
                                lines.extend(
                                    again
                                        .flight_recorder_lines()
                                        .into_iter()
                                        .map(|l| format!("  {l}")),
                                );
                            }
                            lines
                        }
                        Err(msg) => {
                            // The factory may be left inconsistent by the unwind.
                            factory = make_factory();
                            vec![format!(
                                "violation seed={seed} nodes={n} property=panic: {msg}"
                            )]
                        }
                    };
                    if !lines.is_empty() {
                        let out = std::io::stdout();
                        let mut out = out.lock();
                        for l in &lines {
                            let _ = writeln!(out, "{l}");
                        }
                        let _ = out.flush();
                        if let Ok(mut b) = bad.lock() {
                            b.push(seed);
                        }
                    }
                }
            });
        }
    });
    let elapsed = began.elapsed();
    let mut violating_seeds = bad.into_inner().unwrap_or_default();
    violating_seeds.sort_unstable();
    let secs = elapsed.as_secs_f64();
    let seeds_per_sec = if secs > 0.0 { count as f64 / secs } else { 0.0 };
    let _ = writeln!(
        std::io::stdout(),
        "swarm: {count} seeds, {} violations, {seeds_per_sec:.1} seeds/s",
        violating_seeds.len()
    );
    SwarmSummary {
        seeds: count,
        violating_seeds,
        elapsed,
        seeds_per_sec,
    }
}

/// Re-runs one seed with the trace and flight recorders on, and prints the plan, the
/// per-event trace, every node's flight-recorder records in virtual-time order, and the
/// violations to stdout.
pub fn replay(
    seed: u64,
    nodes: RangeInclusive<usize>,
    factory: &mut dyn NodeFactory,
) -> Option<RunReport> {
    let out = std::io::stdout();
    replay_to(seed, nodes, factory, &mut out.lock())
}

/// [`replay`], writing to `w`. `None` if the node under test panicked (the panic
/// message is written).
pub fn replay_to(
    seed: u64,
    nodes: RangeInclusive<usize>,
    factory: &mut dyn NodeFactory,
    w: &mut dyn Write,
) -> Option<RunReport> {
    let mut opts = options_for_seed(seed, &nodes);
    opts.trace = true;
    opts.flight_recorder_bytes = 1 << 20;
    let n = opts.nodes;
    let report = match run_caught(opts, factory) {
        Ok(r) => r,
        Err(msg) => {
            let _ = writeln!(w, "violation seed={seed} nodes={n} property=panic: {msg}");
            return None;
        }
    };
    let _ = writeln!(w, "=== trace (seed {seed}, {n} nodes) ===");
    for l in &report.trace_lines {
        let _ = writeln!(w, "{l}");
    }
    let _ = writeln!(w, "=== flight recorder ===");
    for l in report.flight_recorder_lines() {
        let _ = writeln!(w, "{l}");
    }
    let _ = writeln!(w, "=== stats ===\n{:?}", report.stats);
    let _ = writeln!(w, "=== violations ===");
    for v in &report.violations {
        let _ = writeln!(
            w,
            "violation seed={seed} nodes={n} property={}: {}",
            v.property, v.detail
        );
    }
    let _ = writeln!(
        w,
        "replay: seed {seed}, {} violations",
        report.violations.len()
    );
    Some(report)
}
