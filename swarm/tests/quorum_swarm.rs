//! A fixed set of swarm seeds against the Stack running votequorum: 2..=7 nodes with
//! per-run options (votes 1–3, expected votes from the node list or explicit,
//! wait_for_all, auto_tie_breaker lowest/highest/off) under each seed's partitions,
//! crashes, pauses, leaves, loss and clock drift. The totem checkers,
//! `quorum_uniqueness`, `quorum_convergence` and `quorum_outcome` must pass on every
//! seed, and the uniqueness checker must catch tampered histories.
//!
//! The acceptance run is the binary:
//! `cargo run --release --bin phalanx-swarm -- --layer quorum swarm --seeds 100000`.

use phalanx_sim::check::quorum_uniqueness;
use phalanx_sim::history::{EventKind, Observation};
use phalanx_sim::swarm::options_for_seed;
use phalanx_sim::{History, NodeFactory, RunReport, Sim};
use phalanx_swarm::{QuorumFactory, full_cluster_quorate, quorum_config_for};

const SEEDS: u64 = 300;

fn run(seed: u64, factory: &mut QuorumFactory) -> RunReport {
    Sim::new(options_for_seed(seed, &(2..=7)), factory).run()
}

/// The history with every inquorate state turned quorate: each minority claims
/// quorum while the majority holds it.
fn every_minority_claims_quorum(h: &History) -> History {
    let mut h = h.clone();
    for e in &mut h.events {
        if let EventKind::Observation(Observation::Quorum { quorate, .. }) = &mut e.kind {
            *quorate = true;
        }
    }
    h
}

#[test]
fn quorum_swarm_seeds_pass_and_tampering_is_caught() {
    let mut factory = QuorumFactory::default();
    let mut failures = Vec::new();
    let (mut quorate, mut inquorate, mut caught, mut quorate_runs) = (0u64, 0u64, 0u64, 0u64);
    for seed in 0..SEEDS {
        let report = run(seed, &mut factory);
        for v in &report.violations {
            failures.push(format!(
                "seed={seed} nodes={} {}: {}",
                report.nodes, v.property, v.detail
            ));
        }
        for e in &report.history.events {
            if let EventKind::Observation(Observation::Quorum { quorate: q, .. }) = &e.kind {
                if *q {
                    quorate += 1;
                } else {
                    inquorate += 1;
                }
            }
        }
        let cfg = quorum_config_for(1, &report.history.nodes, seed);
        quorate_runs += u64::from(full_cluster_quorate(&cfg));
        let tampered = every_minority_claims_quorum(&report.history);
        caught += u64::from(!quorum_uniqueness::check(&tampered).is_empty());
    }
    eprintln!(
        "{SEEDS} seeds: {quorate_runs} quorate runs, {quorate} quorate / {inquorate} \
         inquorate states, tampering caught in {caught}"
    );
    assert!(
        failures.is_empty(),
        "{} violations, e.g.:\n{}",
        failures.len(),
        failures[..failures.len().min(20)].join("\n")
    );
    // Not vacuous: most runs end quorate, partitions leave minorities inquorate
    // while others are quorate, and the checker sees those as split brains once
    // the minorities are made to claim quorum.
    assert!(
        quorate_runs > SEEDS / 2 && quorate > 1000 && inquorate > 100,
        "{quorate_runs} quorate runs, {quorate} quorate / {inquorate} inquorate states"
    );
    assert!(
        caught >= SEEDS / 3,
        "tampering caught in only {caught} seeds"
    );
}

#[test]
fn a_second_quorate_partition_is_a_violation() {
    // A clean run, then two nodes that each claim quorum alone at the end.
    let mut factory = QuorumFactory::default();
    let report = run(7, &mut factory);
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    let mut h = report.history.clone();
    let t = h.end;
    for n in [1, 2] {
        let inc = h
            .events
            .iter()
            .filter(|e| e.node == n)
            .map(|e| e.incarnation)
            .max()
            .unwrap_or(0);
        h.observe(
            t,
            n,
            inc,
            Observation::Quorum {
                quorate: true,
                ring: (n, u64::MAX),
                members: vec![n],
            },
        );
    }
    let v = factory.check(&h);
    assert!(
        v.iter().any(|v| v.property == "quorum_uniqueness"),
        "not caught: {v:?}"
    );
    assert!(quorum_uniqueness::check(&report.history).is_empty());
}
