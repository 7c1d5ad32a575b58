//! Swarm seeds against the Stack hosting the CIB replication service on every
//! node: 2..=7 nodes, random CIB requests from every node (marker objects created,
//! nvpairs and a shared resource modified, objects deleted, a section replaced,
//! status updates, epoch bumps, queries) under each seed's loss, duplication,
//! reordering, partitions, crashes and restarts from the simulated disk, pauses,
//! leaves, failed and slow writes, and clock drift. The totem checkers and the CIB
//! checkers (`cib_convergence`, `cib_acked_kept`, `cib_versions`,
//! `cib_apply_order`) must pass on every seed.
//!
//! `CIB_SWARM_SEEDS=N` (default 20: about a second a seed in the test build) and
//! `CIB_SWARM_SEED_START=S` choose the seeds.
//! The acceptance run is the binary:
//! `cargo run --release --bin phalanx-swarm -- --layer cib swarm --seeds 100000`.

use phalanx_sim::history::{CibObservation, EventKind, Observation};
use phalanx_sim::swarm::options_for_seed;
use phalanx_sim::{NodeFactory, Sim};
use phalanx_swarm::CibFactory;

fn var(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[test]
fn cib_swarm_seeds_pass_every_checker() {
    let start = var("CIB_SWARM_SEED_START", 0);
    let seeds = var("CIB_SWARM_SEEDS", 20);
    let mut factory = CibFactory::default();
    let mut failures = Vec::new();
    let (mut applied, mut acked, mut divergences, mut restarts_from_disk) = (0u64, 0, 0, 0);
    for seed in start..start + seeds {
        let report = Sim::new(options_for_seed(seed, &(2..=7)), &mut factory).run();
        let mut first_states = std::collections::BTreeSet::new();
        for e in &report.history.events {
            let EventKind::Observation(Observation::Cib(o)) = &e.kind else {
                continue;
            };
            match o {
                CibObservation::Applied { .. } => applied += 1,
                CibObservation::Acked {
                    marker: Some(_), ..
                } => acked += 1,
                CibObservation::Divergence { .. } => divergences += 1,
                // A restarted process's first state: what it loaded from disk.
                CibObservation::State { version, .. }
                    if e.incarnation > 0 && first_states.insert((e.node, e.incarnation)) =>
                {
                    restarts_from_disk += u64::from(version.1 > 1);
                }
                _ => {}
            }
        }
        for v in &report.violations {
            failures.push(format!(
                "seed={seed} nodes={} {}: {}",
                report.nodes, v.property, v.detail
            ));
        }
    }
    eprintln!(
        "{seeds} seeds: {applied} requests applied, {acked} markers acknowledged, \
         {divergences} divergence reports, {restarts_from_disk} restarted copies from disk"
    );
    assert!(
        failures.is_empty(),
        "{} violations, e.g.:\n{}",
        failures.len(),
        failures[..failures.len().min(20)].join("\n")
    );
    // The workload reached the checked paths.
    assert!(
        applied > 100 * seeds && acked > 10 * seeds,
        "{applied} applied, {acked} acked"
    );
    assert!(divergences > 0 && restarts_from_disk > 0);
}

#[test]
fn a_silently_lost_marker_is_caught() {
    // A clean run, then one acknowledged marker taken out of every copy.
    let mut factory = CibFactory::default();
    let report = Sim::new(options_for_seed(1, &(3..=3)), &mut factory).run();
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    let mut h = report.history.clone();
    let marker = h
        .events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Observation(Observation::Cib(CibObservation::Acked {
                marker: Some(m),
                ..
            })) => Some(m.clone()),
            _ => None,
        })
        .expect("an acknowledged marker");
    for e in &mut h.events {
        if let EventKind::Observation(Observation::Cib(CibObservation::State { markers, .. })) =
            &mut e.kind
        {
            markers.retain(|m| *m != marker);
        }
    }
    let v = factory.check(&h);
    assert!(
        v.iter().any(|v| v.property == "cib_acked_kept"),
        "not caught: {v:?}"
    );
}
