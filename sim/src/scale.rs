//! Formation and failover times of large simulated clusters (`phalanx-sim scale`).
//!
//! The real-process figures (`phalanx-nemesis --failovers`) stop where two cores
//! stop carrying node processes; the simulator runs the same totem core with 32 or
//! more nodes in virtual time. Each seed runs a LAN-like network (fixed 100 µs
//! latency, small jitter, no loss) whose only faults are crashes and restarts,
//! every checker on; the history then gives, in virtual time:
//!
//! - **formation**: from the start until every node has installed a regular
//!   configuration of all nodes;
//! - **failover**: from a crash until every node still running has installed a
//!   regular configuration without the crashed node;
//! - **rejoin**: from a restart until every node running has installed a regular
//!   configuration with it again.
//!
//! A crash or restart whose window another fault interrupts is not timed (its
//! time would be the sum of two). Token timeouts vary per seed as in the swarm
//! (150, 300 or 500 ms): the figures are reported per token timeout.

use crate::engine::{Sim, SimOptions};
use crate::faults::{FaultPlan, FaultWeights, Jitter};
use crate::history::{ConfigKind, EventKind, History, Observation};
use crate::node::NodeFactory;
use crate::totem_node::config_for;
use std::collections::{BTreeMap, BTreeSet};

/// What one seed measured (virtual nanoseconds).
#[derive(Clone, Debug, Default)]
pub struct ScaleRun {
    /// The seed.
    pub seed: u64,
    /// The run's totem token timeout, ms.
    pub token_ms: u64,
    /// Start → every node in a regular configuration of all nodes.
    pub formation_ns: Option<u64>,
    /// Crash → every running node in a configuration without it, per timed crash.
    pub failover_ns: Vec<u64>,
    /// Restart → every running node in a configuration with it, per timed restart.
    pub rejoin_ns: Vec<u64>,
    /// Checker violations of the run (must be none).
    pub violations: Vec<String>,
}

/// The fault plan of a scale run: a quiet LAN with crashes (and their restarts)
/// every `fault_interval_ns` on average during `safety_ns`.
pub fn scale_plan(safety_ns: u64, fault_interval_ns: u64) -> FaultPlan {
    FaultPlan {
        safety_ns,
        latency_ns: (100_000, 100_000),
        jitter: Jitter::Uniform { max_ns: 20_000 },
        loss: 0.0,
        dup: 0.0,
        reorder: 0.0,
        reorder_delay_ns: 0,
        mtu: None,
        drift_ppm: 0,
        clock_offset_max_ns: 0,
        fault_interval_ns,
        weights: FaultWeights {
            crash: 1,
            ..FaultWeights::default()
        },
        app_tick_ns: 20_000_000,
        persist_fail: 0.0,
        persist_slow: 0.0,
    }
}

/// Runs one seed with `nodes` nodes and measures it.
pub fn measure(nodes: usize, seed: u64, factory: &mut dyn NodeFactory) -> ScaleRun {
    let mut opts = SimOptions::new(nodes, seed);
    opts.plan = Some(scale_plan(8_000_000_000, 2_000_000_000));
    // Restarts come after the failover they follow has finished even at the
    // slowest token timeout (500 ms: ~1 s), so both get timed.
    opts.faults.restart_delay_ns = 1_500_000_000..=2_500_000_000;
    opts.max_events = 50_000_000;
    let report = Sim::new(opts, factory).run();
    let all: Vec<u32> = (1..=nodes as u32).collect();
    let token_ms = config_for(1, &all, seed).token_timeout.as_millis() as u64;
    let mut run = analyse(&report.history);
    run.seed = seed;
    run.token_ms = token_ms;
    run.violations = report
        .violations
        .iter()
        .map(|v| format!("{}: {}", v.property, v.detail))
        .collect();
    run
}

/// Formation, failover and rejoin times read off a history.
pub fn analyse(h: &History) -> ScaleRun {
    let all: BTreeSet<u32> = h.nodes.iter().copied().collect();
    // Per node: its regular configurations (time, members), and when it ran.
    let mut regular: BTreeMap<u32, Vec<(u64, BTreeSet<u32>)>> = BTreeMap::new();
    // Crash / restart events in order: (time, node, crashed?).
    let mut faults: Vec<(u64, u32, bool)> = Vec::new();
    for e in &h.events {
        match &e.kind {
            EventKind::Observation(Observation::Config {
                kind: ConfigKind::Regular,
                members,
                ..
            }) => regular
                .entry(e.node)
                .or_default()
                .push((e.time, members.iter().copied().collect())),
            EventKind::Crash => faults.push((e.time, e.node, true)),
            EventKind::Restart => faults.push((e.time, e.node, false)),
            _ => {}
        }
    }
    let first_regular_after = |node: u32, after: u64, pred: &dyn Fn(&BTreeSet<u32>) -> bool| {
        regular
            .get(&node)
            .and_then(|v| v.iter().find(|(t, m)| *t >= after && pred(m)))
            .map(|(t, _)| *t)
    };
    let mut run = ScaleRun::default();
    // Formation: only if no fault came before every node had the full ring.
    let formed = all
        .iter()
        .map(|&n| first_regular_after(n, 0, &|m| *m == all))
        .collect::<Option<Vec<u64>>>()
        .and_then(|v| v.into_iter().max());
    if let Some(t) = formed
        && faults.first().is_none_or(|f| f.0 > t)
    {
        run.formation_ns = Some(t);
    }
    // Who runs, replayed through the faults.
    let mut down: BTreeSet<u32> = BTreeSet::new();
    for (i, &(t, node, crashed)) in faults.iter().enumerate() {
        if crashed {
            down.insert(node);
        } else {
            down.remove(&node);
        }
        let running: Vec<u32> = all.iter().copied().filter(|n| !down.contains(n)).collect();
        let done = running
            .iter()
            .map(|&n| {
                first_regular_after(n, t, &|m| {
                    if crashed {
                        !m.contains(&node)
                    } else {
                        m.contains(&node)
                    }
                })
            })
            .collect::<Option<Vec<u64>>>()
            .and_then(|v| v.into_iter().max());
        let next_fault = faults.get(i + 1).map_or(u64::MAX, |f| f.0);
        if let Some(end) = done
            && end < next_fault
        {
            if crashed {
                run.failover_ns.push(end - t);
            } else {
                run.rejoin_ns.push(end - t);
            }
        }
    }
    run
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::totem_node::TotemFactory;

    /// Eight nodes: the cluster forms, crashes are timed, nothing is violated —
    /// and the figures are what the protocol's timers allow: failover takes at
    /// least the token timeout (detection) and formation less than a second.
    #[test]
    fn eight_nodes_form_fail_over_and_rejoin() {
        let mut f = TotemFactory::default();
        let mut timed = 0;
        for seed in 0..3 {
            let r = measure(8, seed, &mut f);
            assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
            let formation = r.formation_ns.expect("formed before any crash");
            assert!(
                formation < 1_000_000_000,
                "seed {seed}: formation {formation} ns"
            );
            for &d in &r.failover_ns {
                assert!(
                    d >= r.token_ms * 1_000_000,
                    "seed {seed}: failover {d} ns faster than the token timeout {} ms",
                    r.token_ms
                );
            }
            timed += r.failover_ns.len() + r.rejoin_ns.len();
        }
        assert!(timed > 0, "no crash or restart was timed in 3 seeds");
    }
}
