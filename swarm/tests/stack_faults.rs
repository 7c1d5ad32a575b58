//! The faults the Stack's own layers answer for, each alone and on purpose: a link
//! cut in one direction under load, replayed and forged datagrams, a ring-sequence
//! write that fails. Seeds and plans are fixed, so every run is the same run.

use phalanx::config::LinkMode;
use phalanx::crypto::Cipher;
use phalanx_sim::faults::{FaultPlan, FaultWeights, Jitter};
use phalanx_sim::history::{ConfigKind, EventKind, Observation};
use phalanx_sim::{RunReport, Sim, SimOptions};
use phalanx_swarm::{LinkPlan, StackRawFactory};

/// A calm network (100–200 µs, no loss) with only the given faults, a busy
/// workload, 5 s of them, then the liveness phase.
fn plan(weights: FaultWeights, fault_interval_ns: u64) -> FaultPlan {
    FaultPlan {
        safety_ns: 5_000_000_000,
        latency_ns: (100_000, 200_000),
        jitter: Jitter::Uniform { max_ns: 50_000 },
        loss: 0.0,
        dup: 0.0,
        reorder: 0.0,
        reorder_delay_ns: 0,
        mtu: None,
        drift_ppm: 50,
        clock_offset_max_ns: 0,
        fault_interval_ns,
        weights,
        app_tick_ns: 2_000_000,
        persist_fail: 0.0,
        persist_slow: 0.0,
    }
}

fn run(nodes: usize, seed: u64, plan: FaultPlan, links: LinkPlan) -> RunReport {
    let mut opts = SimOptions::new(nodes, seed);
    opts.plan = Some(plan);
    // PHALANX_TRACE=1: keep the per-event trace and the flight records, printed
    // when an assertion below fails (`RunReport`'s Debug is too big otherwise).
    opts.trace = std::env::var_os("PHALANX_TRACE").is_some();
    if opts.trace {
        opts.flight_recorder_bytes = 1 << 20;
    }
    let mut factory = StackRawFactory::with_links(links);
    let r = Sim::new(opts, &mut factory).run();
    if !r.trace_lines.is_empty() {
        let path = std::env::temp_dir().join(format!("stack_faults-{seed}.trace"));
        let mut text = r.trace_lines.join("\n");
        text.push('\n');
        text.push_str(&r.flight_recorder_lines().join("\n"));
        std::fs::write(&path, text).unwrap();
        eprintln!("trace: {}", path.display());
    }
    r
}

fn regular_configs(r: &RunReport, node: u32) -> Vec<Vec<u32>> {
    r.history
        .events
        .iter()
        .filter(|e| e.node == node)
        .filter_map(|e| match &e.kind {
            EventKind::Observation(Observation::Config {
                kind: ConfigKind::Regular,
                members,
                ..
            }) => Some(members.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_link_cut_in_one_direction_under_load_changes_no_membership() {
    for mode in [LinkMode::Passive, LinkMode::Active] {
        let links = LinkPlan {
            links: 2,
            mode,
            cipher: Some(Cipher::Aes256Gcm),
        };
        let weights = FaultWeights {
            link_cut: 1,
            ..FaultWeights::default()
        };
        let r = run(3, 11, plan(weights, 150_000_000), links);
        assert!(r.violations.is_empty(), "{mode:?}: {:?}", r.violations);
        // The judge had something to judge: cuts that ate datagrams under load,
        // and the quiet-network rule (`link_failover`) in force.
        assert!(r.history.quiet_network);
        assert!(r.stats.link_cuts >= 10, "{mode:?}: {:?}", r.stats);
        assert!(r.stats.dropped_link > 0, "{mode:?}: {:?}", r.stats);
        let delivered = r
            .history
            .events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Observation(Observation::Deliver { .. })))
            .count();
        assert!(delivered > 5_000, "{mode:?}: {delivered} deliveries");
        for node in 1..=3 {
            let configs = regular_configs(&r, node);
            let full = configs.iter().position(|m| m == &[1, 2, 3]);
            assert_eq!(
                full.map(|i| configs.len() - i),
                Some(1),
                "{mode:?}: n{node} configurations {configs:?}"
            );
        }
    }
}

#[test]
fn replayed_and_forged_datagrams_are_never_accepted() {
    let links = LinkPlan {
        links: 2,
        mode: LinkMode::Passive,
        cipher: Some(Cipher::ChaCha20Poly1305),
    };
    let weights = FaultWeights {
        replay: 1,
        forge: 1,
        ..FaultWeights::default()
    };
    let r = run(4, 5, plan(weights, 20_000_000), links);
    // The engine flags any injected datagram a node accepts (`link_authentication`).
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    assert!(r.stats.injected >= 100, "{:?}", r.stats);
    assert_eq!(r.stats.injected_rejected, r.stats.injected, "{:?}", r.stats);
}

#[test]
fn without_crypto_replays_are_accepted_by_the_links_and_the_judge_says_nothing_about_them() {
    // The control for the test above: the verdict really depends on crypto.
    let links = LinkPlan {
        links: 1,
        mode: LinkMode::Passive,
        cipher: None,
    };
    let weights = FaultWeights {
        replay: 1,
        ..FaultWeights::default()
    };
    let r = run(3, 5, plan(weights, 20_000_000), links);
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    assert!(r.stats.injected >= 100, "{:?}", r.stats);
    assert!(
        r.stats.injected_rejected < r.stats.injected,
        "{:?}",
        r.stats
    );
}

#[test]
fn a_failed_ring_sequence_write_stops_the_node_and_its_ring_ids_stay_fresh() {
    let links = LinkPlan {
        links: 1,
        mode: LinkMode::Passive,
        cipher: Some(Cipher::Aes256Gcm),
    };
    // Writes fail now and then; crashes re-form the ring so there are writes.
    let mut p = plan(
        FaultWeights {
            crash: 1,
            ..FaultWeights::default()
        },
        400_000_000,
    );
    p.persist_fail = 0.3;
    let r = run(3, 3, p, links);
    // `ring_id_fresh` and `config_agreement` are among the checkers run.
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    assert!(r.stats.stops >= 1, "{:?}", r.stats);
    assert!(r.stats.persist_failed >= r.stats.stops, "{:?}", r.stats);
    // A stopped node shows as a crash of its incarnation; after it, the others
    // install a configuration without it, and it comes back in a later one.
    let events = &r.history.events;
    let (at, node) = events
        .iter()
        .find_map(|e| (e.kind == EventKind::Crash).then_some((e.time, e.node)))
        .expect("a crash or a stop");
    let reformed = events.iter().any(|e| {
        e.time > at
            && e.node != node
            && matches!(&e.kind, EventKind::Observation(Observation::Config {
                kind: ConfigKind::Regular, members, ..
            }) if !members.contains(&node))
    });
    assert!(reformed, "the others re-formed without n{node}");
    let final_ring: Vec<_> = r
        .history
        .final_status
        .iter()
        .map(|(_, s)| s.as_ref().map(|s| s.members.clone()))
        .collect();
    assert!(
        final_ring
            .iter()
            .all(|m| m.as_deref() == Some(&[1, 2, 3][..])),
        "{final_ring:?}"
    );
}
