//! Multi-node runs of the CIB replication service under seeded interleavings
//! with partitions and heals (harness in `service_harness/`).

mod service_harness;

use service_harness::{Cluster, start_cib};

/// One seeded run: requests, deliveries and configuration changes, then a heal
/// and quiescence, then the final checks.
fn run(seed: u64, steps: usize, frame_size: usize) -> Cluster {
    let nodes = 2 + (seed % 4) as usize;
    let mut c = Cluster::new(nodes, seed, frame_size, &start_cib());
    for _ in 0..steps {
        let roll = c.rng.below(100);
        if roll < 40 {
            c.random_request();
        } else if roll < 97 {
            c.deliver_one();
        } else {
            c.change_configuration();
        }
    }
    if c.groups.len() > 1 {
        c.change_configuration();
    }
    c.settle();
    c.check_final();
    c
}

/// Seeds `CIB_SERVICE_SEED_START..+CIB_SERVICE_SEEDS` (default 0..1000).
fn seeds() -> std::ops::Range<u64> {
    let var = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let start = var("CIB_SERVICE_SEED_START", 0);
    start..start + var("CIB_SERVICE_SEEDS", 1000)
}

#[test]
fn seeded_partitions_converge_without_silent_loss() {
    let (mut divergences, mut interrupted, mut acked, mut syncs) = (0, 0, 0, 0);
    let range = seeds();
    let n = range.end - range.start;
    for seed in range {
        // Small frames on odd seeds: requests and syncs span several frames,
        // and configuration changes cut some of them.
        let frame = if seed % 2 == 1 { 200 } else { 64 << 10 };
        let c = run(seed, 60, frame);
        divergences += c.divergences;
        interrupted += c.interrupted;
        acked += c.acked_markers.len();
        syncs += c.syncs;
    }
    eprintln!(
        "{n} seeds: {acked} acknowledged markers, {divergences} divergences reported, {interrupted} interrupted, {syncs} syncs"
    );
    // The workload must exercise what is checked.
    assert!(divergences > 0 && interrupted > 0 && acked > 0);
}
