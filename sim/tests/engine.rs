//! Engine-level tests: determinism, fault injection, and checkers catching injected
//! bugs through the whole engine.

use phalanx_sim::testnode::{Bug, TestFactory};
use phalanx_sim::{EventKind, RunReport, Sim, SimOptions, nodes_for_seed, swarm::options_for_seed};

fn run(seed: u64, nodes: usize, trace: bool, bug: Bug) -> RunReport {
    let mut opts = SimOptions::new(nodes, seed);
    opts.trace = trace;
    opts.flight_recorder_bytes = if trace { 1 << 16 } else { 0 };
    Sim::new(opts, &mut TestFactory { bug }).run()
}

#[test]
fn same_seed_same_trace_and_history() {
    for seed in [0, 1, u64::MAX, 0xdead_beef] {
        let a = run(seed, 4, true, Bug::None);
        let b = run(seed, 4, true, Bug::None);
        assert_eq!(a.trace_lines, b.trace_lines);
        assert_eq!(a.history, b.history);
        assert_eq!(a.stats, b.stats);
        assert_eq!(a.flight_recorder_lines(), b.flight_recorder_lines());
        assert!(a.violations.is_empty(), "seed {seed}: {:?}", a.violations);
        // Tracing and flight recording must not perturb the run.
        let quiet = run(seed, 4, false, Bug::None);
        assert_eq!(quiet.history, a.history);
        assert!(quiet.trace_lines.is_empty());
    }
}

#[test]
fn different_seeds_differ() {
    let a = run(1, 4, true, Bug::None);
    let b = run(2, 4, true, Bug::None);
    assert_ne!(a.trace_lines, b.trace_lines);
    assert_ne!(a.history, b.history);
}

#[test]
fn faults_are_injected_across_seeds() {
    let mut total = phalanx_sim::Stats::default();
    for seed in 0..40 {
        let r = run(seed, 5, false, Bug::None);
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
        total.crashes += r.stats.crashes;
        total.pauses += r.stats.pauses;
        total.leaves += r.stats.leaves;
        total.partitions += r.stats.partitions;
        total.dropped_loss += r.stats.dropped_loss;
        total.duplicated += r.stats.duplicated;
        total.dropped_overflow += r.stats.dropped_overflow;
        let restarts = r
            .history
            .events
            .iter()
            .filter(|e| e.kind == EventKind::Restart)
            .count() as u64;
        assert_eq!(restarts, r.stats.restarts);
        // Every node is up at the end: the liveness phase restarted them all.
        assert!(r.history.final_status.iter().all(|(_, s)| s.is_some()));
    }
    assert!(
        total.crashes > 0 && total.pauses > 0 && total.leaves > 0 && total.partitions > 0,
        "{total:?}"
    );
    assert!(total.dropped_loss > 0 && total.duplicated > 0, "{total:?}");
}

#[test]
fn trace_lines_look_right() {
    let r = run(7, 3, true, Bug::None);
    let has = |s: &str| r.trace_lines.iter().any(|l| l.contains(s));
    assert!(has(" n1 send all "), "{:?}", &r.trace_lines[..5]);
    assert!(has(" recv from n"));
    assert!(has(" n1 config REG 1.0 [1,2,3]"));
    assert!(has(" deliver 1:0:1 agreed"));
    assert!(has("LIVENESS phase"));
    assert!(
        r.trace_lines[1].starts_with("    0.000000ms "),
        "{}",
        r.trace_lines[1]
    );
    assert!(
        r.flight_recorder_lines()
            .iter()
            .any(|l| l.contains(" n1 NOTICE testnode boot 1"))
    );
}

fn properties(bug: Bug) -> Vec<&'static str> {
    let mut p: Vec<&'static str> = (0..5)
        .flat_map(|seed| run(seed, 3, false, bug).violations)
        .map(|v| v.property)
        .collect();
    p.sort_unstable();
    p.dedup();
    p
}

#[test]
fn injected_bugs_are_caught() {
    assert!(properties(Bug::DeliverOnReceipt).contains(&"agreed_order"));
    assert_eq!(properties(Bug::SkipSelfDelivery), ["self_delivery"]);
    assert_eq!(properties(Bug::DuplicateDelivery), ["no_duplication"]);
    assert!(properties(Bug::WrongMembers).contains(&"config_agreement"));
    assert_eq!(properties(Bug::NeverOperational), ["liveness"]);
}

#[test]
fn swarm_and_replay_agree_on_node_count() {
    let range = 2..=7;
    for seed in [0, 5, u64::MAX] {
        let n = nodes_for_seed(seed, &range);
        assert!(range.contains(&n));
        assert_eq!(options_for_seed(seed, &range).nodes, n);
    }
    let mut f = TestFactory::default();
    let mut buf = Vec::new();
    let report =
        phalanx_sim::swarm::replay_to(u64::MAX, 2..=3, &mut f, &mut buf).expect("no panic");
    assert!(report.violations.is_empty());
    let text = String::from_utf8(buf).expect("utf8");
    assert!(text.contains("=== flight recorder ===") && text.ends_with("0 violations\n"));
}

#[test]
fn swarm_wraps_and_counts() {
    let s = phalanx_sim::run_swarm(u64::MAX - 2, 6, 1..=3, 2, TestFactory::default);
    assert_eq!(s.seeds, 6);
    assert!(s.violating_seeds.is_empty());
    let s = phalanx_sim::run_swarm(0, 4, 3..=3, 2, || TestFactory {
        bug: Bug::SkipSelfDelivery,
    });
    assert_eq!(s.violating_seeds, vec![0, 1, 2, 3]);
    let s = phalanx_sim::run_swarm(0, 0, 0..=0, 0, TestFactory::default);
    assert_eq!(s.seeds, 0);
}

#[test]
fn odd_node_counts_do_not_panic() {
    for n in [0, 1, 2] {
        let r = run(3, n, true, Bug::None);
        assert!(r.violations.is_empty(), "{n}: {:?}", r.violations);
    }
}
