//! A fixed set of swarm seeds against the Stack running CPG: 2..=7 nodes, group
//! churn (join, leave, dropped handles, multicasts in three groups) under each seed's
//! loss, duplication, reordering, partitions, crashes, pauses, leaves and clock
//! drift. The totem checkers and every CPG checker must pass on every seed.
//!
//! The acceptance run is the binary:
//! `cargo run --release --bin phalanx-swarm -- --layer cpg swarm --seeds 100000`.

use phalanx_sim::history::{EventKind, Observation};
use phalanx_sim::swarm::options_for_seed;
use phalanx_sim::{NodeFactory, Sim};
use phalanx_swarm::CpgFactory;

#[test]
fn cpg_swarm_seeds_pass_every_checker() {
    let mut factory = CpgFactory::default();
    let mut failures = Vec::new();
    let (mut views, mut deliveries, mut procdowns, mut nodedowns) = (0u64, 0u64, 0u64, 0u64);
    for seed in 0..200u64 {
        let opts = options_for_seed(seed, &(2..=7));
        let report = Sim::new(opts, &mut factory).run();
        for e in &report.history.events {
            match &e.kind {
                EventKind::Observation(Observation::CpgView { left, .. }) => {
                    views += 1;
                    for (_, r) in left {
                        match r {
                            phalanx_sim::CpgReason::ProcDown => procdowns += 1,
                            phalanx_sim::CpgReason::NodeDown => nodedowns += 1,
                            _ => {}
                        }
                    }
                }
                EventKind::Observation(Observation::CpgDeliver { .. }) => deliveries += 1,
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
    assert!(
        failures.is_empty(),
        "{} violations, e.g.:\n{}",
        failures.len(),
        failures[..failures.len().min(20)].join("\n")
    );
    // The workload really churned: views, deliveries, and both kinds of departure.
    assert!(
        views > 1000 && deliveries > 10_000,
        "{views} views, {deliveries} deliveries"
    );
    assert!(
        procdowns > 0 && nodedowns > 0,
        "{procdowns} PROCDOWN, {nodedowns} NODEDOWN"
    );
}

#[test]
fn cpg_checkers_catch_a_broken_history() {
    // A run judged clean, then tampered with: a member that was never there shows
    // up in the last view one member received.
    let mut factory = CpgFactory::default();
    let report = Sim::new(options_for_seed(7, &(3..=3)), &mut factory).run();
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    let mut h = report.history.clone();
    let last_view = h
        .events
        .iter_mut()
        .rev()
        .find_map(|e| match &mut e.kind {
            EventKind::Observation(Observation::CpgView { members, .. }) => Some(members),
            _ => None,
        })
        .expect("the workload joins groups");
    last_view.push((99, 99));
    let v = factory.check(&h);
    assert!(v.iter().any(|v| v.property.starts_with("cpg_")), "{v:?}");
}
