//! `phalanx-swarm`: the simulator over a chosen layer of the Stack.
//!
//! `totem` runs the whole Stack (links, crypto, persistence, totem) with raw
//! multicasts, judged by the totem checkers; `cpg` (the default) adds a workload
//! that churns closed process groups, judged by the totem and CPG checkers;
//! `quorum` runs votequorum (options drawn per run from the seed) with raw
//! messages, judged by the totem and quorum checkers; `cib` runs the CIB
//! replication service on every node with random CIB requests and its writes on the
//! simulated disks, judged by the totem and CIB checkers (with votequorum, writes
//! only with quorum, and no acknowledged change may be lost; `cib-no-quorum`:
//! Pacemaker's plain highest-version rule, discards must be reported); `core` runs the bare Totem
//! core without the Stack (as `phalanx-sim`). Every layer but `core` draws per seed
//! 1–3 links per node with single-link cuts, crypto on or off with replayed and
//! forged datagrams, and failed or slow durable writes. Output as `phalanx-sim`:
//! `swarm: N seeds, V violations, R seeds/s`.
//!
//! Exit status: 0 clean, 1 violations found, 2 usage error.

use clap::{Parser, Subcommand, ValueEnum};

/// The swarm clones, diffs and frees whole CIB trees for every applied request on
/// every node: with the system allocator `malloc`/`free` were about a third of its
/// CPU time (`perf`, `--layer cib`). Only this binary; the libraries allocate with
/// whatever the application chose.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use phalanx_sim::NodeFactory;
use phalanx_swarm::{CibFactory, CpgFactory, QuorumFactory, StackRawFactory};
use std::ops::RangeInclusive;
use std::process::ExitCode;

/// The layer under test.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Layer {
    /// The Stack with raw multicasts; totem checkers.
    Totem,
    /// The Stack with group churn; totem and CPG checkers.
    Cpg,
    /// The Stack with votequorum; totem and quorum checkers.
    Quorum,
    /// The Stack with votequorum and the CIB service taking writes only with
    /// quorum, and CIB requests; totem and CIB checkers (no acknowledged change lost).
    Cib,
    /// The CIB service without quorum (highest version wins); totem and CIB
    /// checkers (a discarded change must be reported).
    CibNoQuorum,
    /// The bare Totem core, no Stack (links, crypto and disks not simulated).
    Core,
}

#[derive(Parser, Debug)]
#[command(
    name = "phalanx-swarm",
    version,
    about = "Deterministic simulation of the Phalanx Stack: swarm many seeds or replay one"
)]
struct Cli {
    /// Which layer to run.
    #[arg(long, value_enum, default_value_t = Layer::Cpg)]
    layer: Layer,
    /// Cluster sizes to draw from: `A..B` or `A..=B` (inclusive), or `N`.
    #[arg(long, default_value = "2..7", value_parser = parse_nodes, global = true)]
    nodes: RangeInclusive<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs seeds START..START+SEEDS and reports every violating seed.
    Swarm {
        /// How many seeds.
        #[arg(long)]
        seeds: u64,
        /// The first seed.
        #[arg(long, default_value_t = 0)]
        start: u64,
        /// Worker threads (default: the machine's cores).
        #[arg(long)]
        jobs: Option<usize>,
    },
    /// Runs one seed with a per-event trace and every node's flight records.
    Replay {
        /// The seed.
        seed: u64,
    },
}

/// `A..B` and `A..=B` both mean A through B inclusive; a bare `A` means exactly A.
fn parse_nodes(s: &str) -> Result<RangeInclusive<usize>, String> {
    let (a, b) = match s.split_once("..") {
        Some((a, b)) => (a, b.strip_prefix('=').unwrap_or(b)),
        None => (s, s),
    };
    let bad = || format!("bad node range {s:?}: want A..B with 1 <= A <= B");
    let (a, b): (usize, usize) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
    if a >= 1 && a <= b {
        Ok(a..=b)
    } else {
        Err(bad())
    }
}

fn run_with<F: NodeFactory>(cli: &Cli, make: impl Fn() -> F + Sync) -> bool {
    match cli.command {
        Command::Swarm { seeds, start, jobs } => {
            let jobs = jobs.unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1)
            });
            let summary = phalanx_sim::run_swarm(start, seeds, cli.nodes.clone(), jobs, make);
            summary.violating_seeds.is_empty()
        }
        Command::Replay { seed } => {
            let mut factory = make();
            let report = phalanx_sim::replay(seed, cli.nodes.clone(), &mut factory);
            report.is_some_and(|r| r.violations.is_empty())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let clean = match cli.layer {
        Layer::Totem => run_with(&cli, StackRawFactory::default),
        Layer::Cpg => run_with(&cli, CpgFactory::default),
        Layer::Quorum => run_with(&cli, QuorumFactory::default),
        Layer::Cib => run_with(&cli, CibFactory::default),
        Layer::CibNoQuorum => run_with(&cli, CibFactory::without_quorum),
        Layer::Core => run_with(&cli, phalanx_sim::default_factory),
    };
    if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
