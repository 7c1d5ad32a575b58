//! `phalanx-sim swarm --seeds N [--start S] [--nodes A..B] [--jobs J]`
//! `phalanx-sim replay <seed> [--nodes A..B]`
//! `phalanx-sim scale --nodes N --seeds K [--start S]` (formation and failover times)
//!
//! Exit status: 0 clean, 1 violations found, 2 usage error.

use std::ops::RangeInclusive;
use std::process::ExitCode;

const USAGE: &str = "usage:\n  phalanx-sim swarm --seeds N [--start S] [--nodes A..B] [--jobs J]\n  phalanx-sim replay <seed> [--nodes A..B]\n  phalanx-sim scale --nodes N --seeds K [--start S]";

/// `A..B` and `A..=B` both mean A through B inclusive; a bare `A` means exactly A.
fn parse_nodes(s: &str) -> Option<RangeInclusive<usize>> {
    let (a, b) = match s.split_once("..") {
        Some((a, b)) => (a, b.strip_prefix('=').unwrap_or(b)),
        None => (s, s),
    };
    let (a, b) = (a.parse().ok()?, b.parse().ok()?);
    (a >= 1 && a <= b).then_some(a..=b)
}

fn run(args: &[String]) -> Result<bool, String> {
    let mut nodes = 2..=7;
    let mut seeds = None;
    let mut start = 0u64;
    let mut jobs = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut positional = Vec::new();
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--nodes" => {
                nodes = parse_nodes(&value()?).ok_or("bad --nodes, want A..B with 1 <= A <= B")?
            }
            "--seeds" => {
                seeds = Some(
                    value()?
                        .parse::<u64>()
                        .map_err(|e| format!("--seeds: {e}"))?,
                )
            }
            "--start" => start = value()?.parse().map_err(|e| format!("--start: {e}"))?,
            "--jobs" => jobs = value()?.parse().map_err(|e| format!("--jobs: {e}"))?,
            _ if a.starts_with("--") => return Err(format!("unknown option {a}")),
            _ => positional.push(a.clone()),
        }
    }
    match positional.first().map(String::as_str) {
        Some("swarm") => {
            let count = seeds.ok_or("swarm needs --seeds N")?;
            let summary =
                phalanx_sim::run_swarm(start, count, nodes, jobs, phalanx_sim::default_factory);
            Ok(summary.violating_seeds.is_empty())
        }
        Some("replay") => {
            let seed = positional.get(1).ok_or("replay needs a seed")?;
            let seed: u64 = seed.parse().map_err(|e| format!("seed: {e}"))?;
            let mut factory = phalanx_sim::default_factory();
            let report = phalanx_sim::replay(seed, nodes, &mut factory);
            Ok(report.is_some_and(|r| r.violations.is_empty()))
        }
        Some("scale") => {
            let count = seeds.ok_or("scale needs --seeds K")?;
            Ok(scale(*nodes.end(), start, count))
        }
        _ => Err("missing command".to_string()),
    }
}

/// Runs `count` seeds of the scale measurement and prints one line per seed and
/// a summary per token timeout; whether every run was free of violations.
fn scale(nodes: usize, start: u64, count: u64) -> bool {
    let mut factory = phalanx_sim::totem_node::TotemFactory::default();
    let ms = |ns: u64| ns as f64 / 1e6;
    let mut by_token: std::collections::BTreeMap<u64, [Vec<u64>; 3]> = Default::default();
    let mut clean = true;
    for seed in start..start + count {
        let r = phalanx_sim::scale::measure(nodes, seed, &mut factory);
        println!(
            "seed {seed}: nodes {nodes}, token {} ms: formation {} ms; failover {:?} ms; rejoin {:?} ms; violations {}",
            r.token_ms,
            r.formation_ns
                .map_or("-".into(), |t| format!("{:.1}", ms(t))),
            r.failover_ns
                .iter()
                .map(|t| (ms(*t) * 10.0).round() / 10.0)
                .collect::<Vec<_>>(),
            r.rejoin_ns
                .iter()
                .map(|t| (ms(*t) * 10.0).round() / 10.0)
                .collect::<Vec<_>>(),
            r.violations.len()
        );
        for v in &r.violations {
            println!("  violation: {v}");
        }
        clean &= r.violations.is_empty();
        let e = by_token.entry(r.token_ms).or_default();
        e[0].extend(r.formation_ns);
        e[1].extend(&r.failover_ns);
        e[2].extend(&r.rejoin_ns);
    }
    for (token, mut v) in by_token {
        let stat = |v: &mut Vec<u64>| -> String {
            v.sort_unstable();
            match v.len() {
                0 => "-".into(),
                n => format!(
                    "p50 {:.1} / max {:.1} ms (n={n})",
                    ms(v[n / 2]),
                    ms(v[n - 1])
                ),
            }
        };
        println!(
            "SCALE-SIM nodes={nodes} token_ms={token}: formation {}; failover {}; rejoin {}",
            stat(&mut v[0]),
            stat(&mut v[1]),
            stat(&mut v[2])
        );
    }
    clean
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("phalanx-sim: {e}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
