//! `phalanx-swarm [--layer totem|cpg|quorum] swarm --seeds N [--start S] [--nodes A..B] [--jobs J]`
//! `phalanx-swarm [--layer totem|cpg|quorum] replay <seed> [--nodes A..B]`
//!
//! The simulator over a chosen layer: `totem` runs the bare Totem core (as
//! `phalanx-sim`), `cpg` (the default) runs the facade's Stack with a workload that
//! churns closed process groups, judged by the totem and the CPG checkers; `quorum`
//! runs the Stack with votequorum (options drawn per run from the seed: votes 1–3
//! per node, expected votes from the node list or explicit, wait_for_all,
//! auto_tie_breaker lowest/highest/off) and raw messages, judged by the totem and the
//! quorum checkers (`quorum_uniqueness`, `quorum_convergence`). Output
//! as `phalanx-sim`: `swarm: N seeds, V violations, R seeds/s`.
//!
//! Exit status: 0 clean, 1 violations found, 2 usage error.

use phalanx::simulate::{CpgFactory, QuorumFactory};
use phalanx_sim::NodeFactory;
use std::ops::RangeInclusive;
use std::process::ExitCode;

const USAGE: &str = "usage:\n  phalanx-swarm [--layer totem|cpg|quorum] swarm --seeds N [--start S] [--nodes A..B] [--jobs J]\n  phalanx-swarm [--layer totem|cpg|quorum] replay <seed> [--nodes A..B]";

/// `A..B` and `A..=B` both mean A through B inclusive; a bare `A` means exactly A.
fn parse_nodes(s: &str) -> Option<RangeInclusive<usize>> {
    let (a, b) = match s.split_once("..") {
        Some((a, b)) => (a, b.strip_prefix('=').unwrap_or(b)),
        None => (s, s),
    };
    let (a, b) = (a.parse().ok()?, b.parse().ok()?);
    (a >= 1 && a <= b).then_some(a..=b)
}

struct Args {
    layer: String,
    nodes: RangeInclusive<usize>,
    seeds: Option<u64>,
    start: u64,
    jobs: usize,
    positional: Vec<String>,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut a = Args {
        layer: "cpg".to_string(),
        nodes: 2..=7,
        seeds: None,
        start: 0,
        jobs: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        positional: Vec::new(),
    };
    let mut it = args.iter().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--layer" => a.layer = value()?,
            "--nodes" => {
                a.nodes = parse_nodes(&value()?).ok_or("bad --nodes, want A..B with 1 <= A <= B")?
            }
            "--seeds" => a.seeds = Some(value()?.parse().map_err(|e| format!("--seeds: {e}"))?),
            "--start" => a.start = value()?.parse().map_err(|e| format!("--start: {e}"))?,
            "--jobs" => a.jobs = value()?.parse().map_err(|e| format!("--jobs: {e}"))?,
            _ if arg.starts_with("--") => return Err(format!("unknown option {arg}")),
            _ => a.positional.push(arg.clone()),
        }
    }
    Ok(a)
}

fn run_with<F: NodeFactory>(a: &Args, make: impl Fn() -> F + Sync) -> Result<bool, String> {
    match a.positional.first().map(String::as_str) {
        Some("swarm") => {
            let count = a.seeds.ok_or("swarm needs --seeds N")?;
            let summary = phalanx_sim::run_swarm(a.start, count, a.nodes.clone(), a.jobs, make);
            Ok(summary.violating_seeds.is_empty())
        }
        Some("replay") => {
            let seed = a.positional.get(1).ok_or("replay needs a seed")?;
            let seed: u64 = seed.parse().map_err(|e| format!("seed: {e}"))?;
            let mut factory = make();
            let report = phalanx_sim::replay(seed, a.nodes.clone(), &mut factory);
            Ok(report.is_some_and(|r| r.violations.is_empty()))
        }
        _ => Err("missing command".to_string()),
    }
}

fn run(args: &[String]) -> Result<bool, String> {
    let a = parse(args)?;
    match a.layer.as_str() {
        "cpg" => run_with(&a, CpgFactory::default),
        "quorum" => run_with(&a, QuorumFactory::default),
        "totem" => run_with(&a, phalanx_sim::default_factory),
        other => Err(format!("unknown layer {other}")),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("phalanx-swarm: {e}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
