//! Swarm seeds against the Stack hosting the CIB replication service on every
//! node: 2..=7 nodes, random CIB requests from every node (marker objects created,
//! nvpairs and a shared resource modified, objects deleted, a section replaced,
//! status updates, epoch bumps, queries) under each seed's loss, duplication,
//! reordering, partitions, crashes and restarts from the simulated disk, pauses,
//! leaves, failed and slow writes, and clock drift. The totem checkers and the CIB
//! checkers (`cib_convergence`, `cib_quorate_kept` — `cib_acked_kept` without
//! quorum —, `cib_versions`, `cib_apply_order`) must pass on every seed.
//!
//! `CIB_SWARM_SEEDS=N` (default 20: about a second a seed in the test build) and
//! `CIB_SWARM_SEED_START=S` choose the seeds.
//! The acceptance run is the binary:
//! `cargo run --release --bin phalanx-swarm -- --layer cib swarm --seeds 100000`.

use phalanx_sim::history::{CibObservation, ConfigKind, EventKind, Observation};
use phalanx_sim::swarm::options_for_seed;
use phalanx_sim::{NodeFactory, Sim};
use phalanx_swarm::CibFactory;
use std::collections::BTreeSet;

fn var(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// What a batch of seeds did, and the violations found.
#[derive(Default)]
struct Batch {
    applied: u64,
    acked: u64,
    divergences: u64,
    restarts_from_disk: u64,
    /// Seeds that pass only because a ring that became writable in its
    /// transitional deliveries is reported (see [`without_transitional_writable`]),
    /// with what the checkers say without that report.
    transitional_gap: Vec<String>,
    failures: Vec<String>,
}

/// The history without the `Writable` reports of rings whose gate opened in
/// their transitional deliveries: those a node reports after it already
/// reported the next regular configuration. The swarm reported only the others
/// before seed 50390; the seeds that need them are listed by [`run_seeds`].
fn without_transitional_writable(h: &phalanx_sim::History) -> phalanx_sim::History {
    let mut out = h.clone();
    let mut current: std::collections::BTreeMap<(u32, u32), (u32, u64)> = Default::default();
    out.events.retain(|e| match &e.kind {
        EventKind::Observation(Observation::Config {
            kind: ConfigKind::Regular,
            ring,
            ..
        }) => {
            current.insert((e.node, e.incarnation), *ring);
            true
        }
        EventKind::Observation(Observation::Cib(CibObservation::Writable { ring })) => {
            current.get(&(e.node, e.incarnation)) == Some(ring)
        }
        _ => true,
    });
    out
}

fn run_seeds(factory: &mut CibFactory, start: u64, seeds: u64) -> Batch {
    let mut b = Batch::default();
    for seed in start..start + seeds {
        let report = Sim::new(options_for_seed(seed, &(2..=7)), &mut *factory).run();
        let mut first_states = std::collections::BTreeSet::new();
        for e in &report.history.events {
            let EventKind::Observation(Observation::Cib(o)) = &e.kind else {
                continue;
            };
            match o {
                CibObservation::Applied { .. } => b.applied += 1,
                CibObservation::Acked {
                    marker: Some(_), ..
                } => b.acked += 1,
                CibObservation::Divergence { .. } => b.divergences += 1,
                // A restarted process's first state: what it loaded from disk.
                CibObservation::State { version, .. }
                    if e.incarnation > 0 && first_states.insert((e.node, e.incarnation)) =>
                {
                    b.restarts_from_disk += u64::from(version.1 > 1);
                }
                _ => {}
            }
        }
        if report.violations.is_empty() {
            let before = factory.check(&without_transitional_writable(&report.history));
            if !before.is_empty() {
                let detail: Vec<String> = before
                    .iter()
                    .map(|v| format!("  {}: {}", v.property, v.detail))
                    .collect();
                let line = format!(
                    "seed={seed} nodes={} passes only with a transitional Writable:\n{}",
                    report.nodes,
                    detail.join("\n")
                );
                eprintln!("{line}");
                b.transitional_gap.push(line);
            }
        }
        for v in &report.violations {
            b.failures.push(format!(
                "seed={seed} nodes={} {}: {}",
                report.nodes, v.property, v.detail
            ));
        }
    }
    eprintln!(
        "{seeds} seeds: {} requests applied, {} markers acknowledged, \
         {} divergence reports, {} restarted copies from disk, {} seeds passing only \
         with a ring writable in its transitional deliveries",
        b.applied,
        b.acked,
        b.divergences,
        b.restarts_from_disk,
        b.transitional_gap.len()
    );
    assert!(
        b.failures.is_empty(),
        "{} violations, e.g.:\n{}",
        b.failures.len(),
        b.failures[..b.failures.len().min(20)].join("\n")
    );
    b
}

#[test]
fn cib_swarm_seeds_pass_every_checker() {
    // Writes only with quorum: no acknowledged change may be lost.
    let start = var("CIB_SWARM_SEED_START", 0);
    let seeds = var("CIB_SWARM_SEEDS", 20);
    let b = run_seeds(&mut CibFactory::default(), start, seeds);
    // The workload reached the checked paths.
    assert!(
        b.applied > 50 * seeds && b.acked > 5 * seeds,
        "{} applied, {} acked",
        b.applied,
        b.acked
    );
    assert!(b.restarts_from_disk > 0);
}

#[test]
fn cib_swarm_without_quorum_reports_every_discard() {
    // Pacemaker's plain rule: partitions write, the highest version wins, and a
    // discarded change must be reported.
    let start = var("CIB_SWARM_SEED_START", 0);
    let seeds = var("CIB_SWARM_SEEDS", 20);
    let b = run_seeds(&mut CibFactory::without_quorum(), start, seeds);
    assert!(
        b.applied > 100 * seeds && b.acked > 10 * seeds,
        "{} applied, {} acked",
        b.applied,
        b.acked
    );
    assert!(b.divergences > 0 && b.restarts_from_disk > 0);
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
        v.iter().any(|v| v.property == "cib_quorate_kept"),
        "not caught: {v:?}"
    );
    // A divergence report naming it excuses the loss under the plain rule, but
    // not when writes need quorum.
    let mut reported = h.clone();
    let mut report = reported
        .events
        .iter()
        .find(|e| matches!(e.kind, EventKind::Observation(Observation::Cib(_))))
        .expect("a CIB observation")
        .clone();
    report.kind = EventKind::Observation(Observation::Cib(CibObservation::Divergence {
        markers: vec![marker.clone()],
    }));
    reported.events.push(report);
    let plain = CibFactory::without_quorum().check(&reported);
    assert!(
        !plain.iter().any(|v| v.property == "cib_acked_kept"),
        "reported, so accepted under the plain rule: {plain:?}"
    );
    let strict = factory.check(&reported);
    assert!(
        strict.iter().any(|v| v.property == "cib_quorate_kept"),
        "a reported loss must still be caught with quorum: {strict:?}"
    );
}

#[test]
fn seed_1058_passes() {
    // 3 nodes. Until this stop's totem change (a retransmission request asked
    // again is served by the next holders too) it ended in the crash gap: m-2-1-1
    // acknowledged in quorate ring 1.4 = {1,2}, lost to quorate ring 2.6 formed
    // from processes that never held it; its test also showed the excuse exact (a
    // member of 2.6 holding the marker was caught). The change moved its history:
    // m-2-1-1 is no longer acknowledged, and the seed passes every checker.
    passes_with_acknowledged(1058, &[]);
}

#[test]
fn seed_1328_passes() {
    // 5 nodes. Until this stop's totem change it ended in the crash gap (m-2-0-39
    // acknowledged in quorate ring 2.2 = {2,4,5}, lost to ring 1.5 = {1,3,5}
    // after node 5 restarted from a disk without it); the history moved and the
    // seed passes every checker.
    passes_with_acknowledged(1328, &[]);
}

/// Runs `seed` (nodes drawn from 2..=7 as the swarm does) and checks the crash
/// gap it contains: `marker` was acknowledged, then discarded at a merge (and
/// reported) because quorate configuration `newer` formed from processes that
/// never held it; the run passes every checker. Then the excuse is shown to be
/// exact: the same history with `member`'s process of `newer` holding the marker
/// just before it joined is a `cib_quorate_kept` violation.
fn crash_gap_seed(
    seed: u64,
    marker: &str,
    newer: (u32, u64),
    member: u32,
) -> (CibFactory, phalanx_sim::History) {
    let (factory, history) = clean_run(seed);
    let h = &history;
    let cib = |e: &phalanx_sim::history::Event| match &e.kind {
        EventKind::Observation(Observation::Cib(o)) => Some(o.clone()),
        _ => None,
    };
    assert!(
        h.events.iter().filter_map(cib).any(|o| matches!(
            o,
            CibObservation::Acked { marker: Some(m), .. } if m == marker
        )),
        "seed {seed}: {marker} no longer acknowledged"
    );
    assert!(
        h.events.iter().filter_map(cib).any(|o| matches!(
            &o,
            CibObservation::Divergence { markers } if markers.iter().any(|m| m == marker)
        )),
        "seed {seed}: {marker} no longer discarded at a merge"
    );
    assert!(
        h.events.iter().filter_map(cib).any(|o| matches!(
            o,
            CibObservation::Writable { ring } if ring == newer
        )),
        "seed {seed}: {newer:?} no longer writable"
    );
    // Without `newer`'s `Writable` report nothing excuses the loss: the gap
    // is what the run passes through.
    let v = factory.check(&without_writable(h, Some(&[newer])));
    assert!(
        v.iter()
            .any(|v| v.property == "cib_quorate_kept" && v.detail.contains(marker)),
        "seed {seed}: {marker} is excused without {newer:?}: {v:?}"
    );
    // `member` held the marker when it joined `newer`: no longer the crash gap.
    let mut held = h.clone();
    let at = held
        .events
        .iter()
        .position(|e| {
            e.node == member
                && matches!(
                    &e.kind,
                    EventKind::Observation(Observation::Config { kind: ConfigKind::Regular, ring, .. })
                        if *ring == newer
                )
        })
        .expect("the member reported the newer configuration");
    let mut state = held.events[at].clone();
    state.kind = EventKind::Observation(Observation::Cib(CibObservation::State {
        version: (0, 0, 0),
        digest: [0; 16],
        markers: vec![marker.to_string()],
    }));
    held.events.insert(at, state);
    let v = factory.check(&held);
    assert!(
        v.iter()
            .any(|v| v.property == "cib_quorate_kept" && v.detail.contains(marker)),
        "seed {seed}: a loss by a lineage that held {marker} is not caught: {v:?}"
    );
    (factory, history)
}

#[test]
fn seed_1438_loses_a_change_only_through_the_crash_gap() {
    // 7 nodes. m-6-0-8 is acknowledged, then discarded at a merge (reported):
    // quorate ring 1.3 = {1,3,4,5}, newer than the acknowledging ring, formed
    // from processes none of which held it (the crash gap). Found with
    // `search_crash_gap_seeds` after this stop's totem change moved seeds 1058
    // and 1328 out of the gap.
    let _ = crash_gap_seed(1438, "m-6-0-8", (1, 3), 3);
}

#[test]
fn seed_2193_loses_a_change_only_through_the_crash_gap() {
    // 5 nodes. m-4-0-1 is acknowledged, then discarded at a merge (reported):
    // quorate ring 1.6 = {1,2,5}, newer than the acknowledging ring, formed from
    // processes none of which held it.
    let _ = crash_gap_seed(2193, "m-4-0-1", (1, 6), 2);
}

/// Runs `seed` (nodes drawn from 2..=7 as the swarm does) and checks that every
/// checker passes; the checkers and the history, for more checks.
fn clean_run(seed: u64) -> (CibFactory, phalanx_sim::History) {
    let mut factory = CibFactory::default();
    let report = Sim::new(options_for_seed(seed, &(2..=7)), &mut factory).run();
    assert!(
        report.violations.is_empty(),
        "seed {seed}: {:?}",
        report.violations
    );
    (factory, report.history)
}

/// Runs `seed` (nodes drawn from 2..=7 as the swarm does): every checker passes
/// and each of `markers` is still acknowledged in the run.
fn passes_with_acknowledged(seed: u64, markers: &[&str]) {
    let (_, history) = clean_run(seed);
    for marker in markers {
        assert!(
            history.events.iter().any(|e| matches!(
                &e.kind,
                EventKind::Observation(Observation::Cib(CibObservation::Acked { marker: Some(m), .. }))
                    if m == marker
            )),
            "seed {seed}: {marker} no longer acknowledged"
        );
    }
}

#[test]
fn seed_50390_passes() {
    // 5 nodes. Found with the lineage file written after `cib.xml`: m-4-1-2 and
    // m-4-1-3, acknowledged in quorate ring 2.2 = {2,3,4}, were lost to ring
    // 1.6 = {1,3,5}, formed from processes that never held them and writable
    // only in its transitional deliveries (unreported then): the crash gap. The
    // lineage file now goes first and a failed one fails the CIB write, which
    // changes this seed's writes (node 4's failed lineage write now stops its
    // CIB writes), so the scenario itself is gone; seed 78543 below still has
    // it, and `a_gate_opened_in_the_transitional_deliveries_names_its_configuration`
    // (cib) tests the report.
    passes_with_acknowledged(50390, &["m-4-1-2", "m-4-1-3"]);
}

#[test]
fn seed_57905_passes() {
    // 3 nodes. The same class as 50390 (ring 2.2 = {2,3} writable in its
    // transitional deliveries before ring 1.4); the scenario is gone with the
    // lineage file written first (different writes), the seed must still pass.
    passes_with_acknowledged(57905, &["m-1-0-2", "m-2-0-4", "m-3-0-10"]);
}

#[test]
fn seed_60276_passes() {
    // 3 nodes. Found with the lineage file written after `cib.xml`: m-2-0-6 and
    // m-2-0-8, acknowledged in quorate ring 2.2 = {2,3}, were synced to node 1
    // in quorate ring 1.7 (lineage 7); node 1's slow `cib.xml` write landed after
    // it crashed, its lineage file still said 0, and in ring 1.8 node 2's older
    // copy of lineage 2 won and discarded them — a durable holder in the winning
    // ring claimed less than it held. The lineage file now goes first and names
    // its content (`persist` tests
    // `the_lineage_read_at_start_is_the_one_of_the_content_on_disk`). With that
    // order node 1's slow write is the lineage file and its `cib.xml` with the
    // markers never lands: the seed now ends in the documented crash gap (ring
    // 1.8 from processes that never held them), which the checker verifies.
    passes_with_acknowledged(60276, &["m-2-0-6", "m-2-0-8"]);
}

#[test]
fn seed_82230_passes() {
    // 5 nodes. m-3-2-2 was acknowledged in quorate ring 2.4 = {2,3,5} (lineage 4)
    // and held only by node 3. Node 5's copy of lineage 4, still at (0,2,0), won
    // inquorate ring 1.6 against node 1's older lineage at (0,6,0) and was raised
    // to (0,7,0); in the final ring of all five it won against node 3's (0,3,0) of
    // the same lineage on the raised version, and m-3-2-2 was discarded. Offers
    // now rank a lineage's copies by their lineage version (`docs/cib-service.md`
    // § Quorum, rule 5).
    passes_with_acknowledged(82230, &["m-3-2-2"]);
}

#[test]
fn seed_78543_passes() {
    // 3 nodes. Until this stop's totem change it ended in the crash gap through a
    // ring writable only in its transitional deliveries (m-1-1-27, ring 2.5); the
    // history moved and the seed passes every checker.
    passes_with_acknowledged(78543, &[]);
}

#[test]
fn seed_64716_passes() {
    // 3 nodes. Until this stop's totem change it ended in the crash gap through a
    // ring writable only in its transitional deliveries (m-2-1-3, ring 1.7); the
    // history moved and the seed passes every checker.
    passes_with_acknowledged(64716, &[]);
}

#[test]
fn seed_82798_passes() {
    // 7 nodes, found in the chunk from 80800: eight markers acknowledged in the
    // first rings were lost, with the lineage file written after `cib.xml`, to a
    // newer quorate ring writable only in its transitional deliveries (the
    // transitional-Writable class of 50390). With the lineage file written first
    // the seed's writes differ and nothing is lost; it must keep passing.
    passes_with_acknowledged(82798, &["m-1-0-8", "m-1-0-10", "m-2-0-11", "m-4-0-10"]);
}

/// The history without the `Writable` reports of `rings` (all of them with
/// `None`): a loss the crash-gap excuse allowed through one of those rings
/// becomes a violation.
fn without_writable(
    h: &phalanx_sim::History,
    rings: Option<&[(u32, u64)]>,
) -> phalanx_sim::History {
    let mut out = h.clone();
    out.events.retain(|e| match &e.kind {
        EventKind::Observation(Observation::Cib(CibObservation::Writable { ring })) => {
            rings.is_some_and(|rs| !rs.contains(ring))
        }
        _ => true,
    });
    out
}

/// Lists the seeds that pass only through the crash-gap excuse, with the marker
/// and the newer quorate ring that excused it — the search that finds seeds for
/// tests like [`seed_1438_loses_a_change_only_through_the_crash_gap`] when a
/// change moves the histories. `CIB_SWARM_SEED_START`, `CIB_SWARM_SEEDS`
/// (default 1000); run it in release:
/// `cargo test --release -p phalanx-swarm --test cib_swarm -- --ignored --nocapture search`.
#[test]
#[ignore = "a search, not a check: prints seeds"]
fn search_crash_gap_seeds() {
    let start = var("CIB_SWARM_SEED_START", 0);
    let seeds = var("CIB_SWARM_SEEDS", 1000);
    let mut factory = CibFactory::default();
    let mut found = 0;
    for seed in start..start + seeds {
        let report = Sim::new(options_for_seed(seed, &(2..=7)), &mut factory).run();
        if !report.violations.is_empty() {
            eprintln!("seed={seed} VIOLATION {:?}", report.violations);
            continue;
        }
        let h = &report.history;
        let gaps: Vec<_> = factory
            .check(&without_writable(h, None))
            .into_iter()
            .filter(|v| v.property == "cib_quorate_kept")
            .collect();
        if gaps.is_empty() {
            continue;
        }
        found += 1;
        let writable: BTreeSet<(u32, u64)> = h
            .events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Observation(Observation::Cib(CibObservation::Writable { ring })) => {
                    Some(*ring)
                }
                _ => None,
            })
            .collect();
        for gap in &gaps {
            // The rings whose `Writable` alone excuses this loss.
            let marker = gap.detail.split_whitespace().nth(1).unwrap_or_default();
            let excused_by: Vec<_> = writable
                .iter()
                .filter(|ring| {
                    let others: Vec<_> = writable.iter().copied().filter(|r| r != *ring).collect();
                    !factory
                        .check(&without_writable(h, Some(&others)))
                        .iter()
                        .any(|v| v.property == "cib_quorate_kept" && v.detail.contains(marker))
                })
                .map(|ring| (*ring, members_of(h, *ring)))
                .collect();
            eprintln!(
                "seed={seed} nodes={} {marker} excused by {excused_by:?}: {}",
                report.nodes, gap.detail
            );
        }
    }
    eprintln!("{seeds} seeds from {start}: {found} pass through the crash gap");
}

/// The members of regular configuration `ring`, as its first reporter saw them.
fn members_of(h: &phalanx_sim::History, ring: (u32, u64)) -> Vec<u32> {
    h.events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Observation(Observation::Config {
                kind: ConfigKind::Regular,
                ring: r,
                members,
                ..
            }) if *r == ring => Some(members.to_vec()),
            _ => None,
        })
        .unwrap_or_default()
}
